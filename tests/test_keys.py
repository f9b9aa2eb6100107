"""`outkit keys`: add, list, show, remove, default; prompts on a TTY only; completion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outkit_cli.config import load_config
from outkit_cli.terminal import Terminal, use
from tests.helpers import Result, run, run_on_pty

SECRET = "s3cr3t-value-never-listed"
PASSPHRASE = "pass-phrase-never-listed"


def add(name: str, *extra: str, input: str | None = None) -> None:
    result = run(
        "keys", "add", name, "--key", f"key-{name}", "--passphrase", PASSPHRASE,
        "--secret", SECRET, *extra, input=input,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr


def test_add_writes_the_profile_and_the_first_becomes_default(config_file: Path) -> None:
    result = run(
        "keys", "add", "prod", "--key", "k1", "--passphrase", "p1", "--secret", "s1",
        "--api-url", "http://127.0.0.1:9/v1/", "--project", "acme",
        "--from", "Acme <a@acme.example>", "--backend", "mailgun",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "added profile 'prod'" in result.stdout
    assert "(the default profile)" in result.stdout
    data = load_config(config_file)
    assert data == {
        "default_profile": "prod",
        "profiles": {
            "prod": {
                "key": "k1",
                "passphrase": "p1",
                "secret": "s1",
                "api_url": "http://127.0.0.1:9/v1",
                "signed": True,
                "project": "acme",
                "from": "Acme <a@acme.example>",
                "backend": "mailgun",
            }
        },
    }
    add("second")
    assert load_config(config_file)["default_profile"] == "prod"
    add("third", "--default")
    assert load_config(config_file)["default_profile"] == "third"


def test_add_again_needs_force_in_scripts(config_file: Path) -> None:
    add("prod")
    result = run("keys", "add", "prod", "--key", "new", "--passphrase", "p", "--secret", "s")
    assert result.exit_code == 2
    assert result.stderr == "error: profile 'prod' exists: pass --force to replace it\n"
    assert load_config(config_file)["profiles"]["prod"]["key"] == "key-prod"
    result = run(
        "keys", "add", "prod", "--key", "new", "--passphrase", "p", "--secret", "s", "--force"
    )
    assert result.exit_code == 0
    assert "replaced profile 'prod'" in result.stdout
    assert load_config(config_file)["profiles"]["prod"]["key"] == "new"


def test_replacing_credentials_keeps_the_profiles_settings(config_file: Path) -> None:
    """Replacing a sandbox profile's key must not point it at production: the API URL,
    signing, project, sender, backend and hand-added settings stay unless given."""
    add("local", "--api-url", "http://127.0.0.1:8025/v1", "--unsigned", "--project", "demo")
    edit = config_file.read_text().replace('project = "demo"', 'project = "demo"\nrate = 5')
    config_file.write_text(edit)
    result = run(
        "keys", "add", "local", "--key", "k2", "--passphrase", "p2", "--secret", "s2", "--force"
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    prof = load_config(config_file)["profiles"]["local"]
    assert prof["key"] == "k2" and prof["secret"] == "s2"
    assert prof["api_url"] == "http://127.0.0.1:8025/v1"
    assert prof["signed"] is False
    assert (prof["project"], prof["rate"]) == ("demo", 5)
    result = run(
        "keys", "add", "local", "--key", "k3", "--passphrase", "p3", "--secret", "s3",
        "--force", "--signed", "--project", "acme",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    prof = load_config(config_file)["profiles"]["local"]
    assert (prof["signed"], prof["project"], prof["key"]) == (True, "acme", "k3")
    assert prof["api_url"] == "http://127.0.0.1:8025/v1"


def test_unsigned_is_stored(config_file: Path) -> None:
    add("legacy", "--unsigned")
    assert load_config(config_file)["profiles"]["legacy"]["signed"] is False


def test_secret_from_stdin_stays_off_the_command_line(config_file: Path) -> None:
    result = run(
        "keys", "add", "ci", "--key", "k", "--passphrase", "p", "--secret-stdin",
        input=f"{SECRET}\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert load_config(config_file)["profiles"]["ci"]["secret"] == SECRET
    assert SECRET not in result.output


@pytest.mark.parametrize(
    ("args", "input", "message"),
    [
        (("--key", "k"), None, "missing --passphrase, --secret (or --secret-stdin)"),
        (("--passphrase", "p", "--secret", "s"), None, "missing --key"),
        (("--key", "k", "--passphrase", "p", "--secret-stdin"), "", "stdin held no secret"),
        (("--key", "k", "--secret-stdin"), "s\n", "missing --passphrase"),
        (("--secret", "s", "--secret-stdin"), "s\n", "not both"),
        (("--key", "k", "--passphrase", "p", "--secret-stdin"), b"\xff\n", "must be UTF-8"),
        (("--key", "k\udcff", "--passphrase", "p", "--secret", "s"), None,
         "--key must be UTF-8 text"),
        (("--key", "k", "--passphrase", "p", "--secret", "s", "--api-url", "api.io"), None,
         "is not an https:// URL"),
    ],
)  # fmt: skip
def test_add_without_a_tty_never_prompts(
    config_file: Path, args: tuple[str, ...], input: str | bytes | None, message: str
) -> None:
    result = run("keys", "add", "x", *args, input=input)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.splitlines()) == 1
    assert message in result.stderr
    assert not config_file.exists()


@pytest.mark.parametrize("name", ["", "-x", "a b", "a/b", "ü"])
def test_bad_profile_names(name: str) -> None:
    result = run("keys", "add", name, "--key", "k", "--passphrase", "p", "--secret", "s")
    assert result.exit_code == 2
    assert "profile name" in result.stderr or "No such option" in result.stderr


def test_list_never_shows_secrets() -> None:
    add("prod")
    add("staging", "--api-url", "http://127.0.0.1:9/v1", "--unsigned")
    human = run("keys", "list")
    assert human.exit_code == 0
    lines = human.stdout.splitlines()
    assert "name" in lines[0] and "API URL" in lines[0] and "default" in lines[0]
    prod = next(line for line in lines if "prod" in line)
    assert "key-prod" in prod and "https://api.outkit.io/v1" in prod and "*" in prod
    staging = next(line for line in lines if "staging" in line)
    assert "false" in staging and "*" not in staging
    as_json = run("keys", "list", "--json")
    assert json.loads(as_json.stdout) == [
        {
            "name": "prod",
            "key": "key-prod",
            "api_url": "https://api.outkit.io/v1",
            "signed": True,
            "default": True,
        },
        {
            "name": "staging",
            "key": "key-staging",
            "api_url": "http://127.0.0.1:9/v1",
            "signed": False,
            "default": False,
        },
    ]
    for result in (human, as_json):
        assert SECRET not in result.output and PASSPHRASE not in result.output
        assert SECRET[:3] not in result.output
    fields = run("keys", "list", "--field", "name", "--field", "default")
    assert fields.stdout == "prod\ttrue\nstaging\tfalse\n"


def test_list_when_empty() -> None:
    assert run("keys", "list", "--json").stdout == "[]\n"
    empty = run("keys", "list")
    assert empty.exit_code == 0
    assert empty.stdout == ""
    assert "outkit keys add NAME" in empty.stderr


def test_show_masks_unless_revealed() -> None:
    add("prod", "--project", "acme")
    masked = run("keys", "show", "prod")
    assert masked.exit_code == 0
    assert SECRET not in masked.stdout and PASSPHRASE not in masked.stdout
    assert "key-prod" in masked.stdout and "acme" in masked.stdout
    assert "ca_bundle" not in masked.stdout  # unset fields are left out for people
    data = json.loads(run("keys", "show", "prod", "--json").stdout)
    assert data["secret"] == data["passphrase"] == "********"  # wholly: not even a prefix
    assert "passphrase  ********\n" in masked.stdout and "secret      ********\n" in masked.stdout
    assert data["ca_bundle"] is None
    revealed = json.loads(run("keys", "show", "prod", "--reveal", "--json").stdout)
    assert revealed["secret"] == SECRET and revealed["passphrase"] == PASSPHRASE
    assert SECRET in run("keys", "show", "prod", "--reveal").stdout
    # without a name: the default profile
    assert json.loads(run("keys", "show", "--json").stdout)["name"] == "prod"
    assert run("keys", "show", "prod", "--field", "project").stdout == "acme\n"


def test_show_with_no_profiles_or_no_default(config_file: Path) -> None:
    none = run("keys", "show")
    assert none.exit_code == 2 and "no profiles yet" in none.stderr
    config_file.parent.mkdir(parents=True)
    config_file.write_text('[profiles.a]\nkey = "k"\n[profiles.b]\nkey = "k"\n')
    config_file.chmod(0o600)
    no_default = run("keys", "show")
    assert no_default.exit_code == 2 and "no default profile" in no_default.stderr


@pytest.mark.parametrize(
    "args",
    [("show", "nope"), ("remove", "nope", "--yes"), ("default", "nope")],
)
def test_unknown_profile_exits_2_with_the_known_names(
    config_file: Path, args: tuple[str, ...]
) -> None:
    add("prod")
    add("staging")
    before = config_file.read_bytes()
    result = run("keys", *args)
    assert result.exit_code == 2
    assert result.stderr == ("error: unknown profile 'nope' (known profiles: prod, staging)\n")
    assert config_file.read_bytes() == before


def test_unknown_profile_with_none_configured() -> None:
    result = run("keys", "show", "nope")
    assert result.exit_code == 2
    assert "known profiles: none; add one with `outkit keys add NAME`" in result.stderr


def test_remove_needs_yes_without_a_tty(config_file: Path) -> None:
    add("prod")
    result = run("keys", "remove", "prod")
    assert result.exit_code == 2
    assert "pass --yes" in result.stderr
    assert "prod" in load_config(config_file)["profiles"]
    assert run("keys", "remove", "prod", "--yes").exit_code == 0
    assert load_config(config_file) == {"profiles": {}}


def test_removing_the_default_profile(config_file: Path) -> None:
    add("a")
    add("b")
    add("c")
    result = run("keys", "remove", "a", "-y")
    assert result.exit_code == 0
    assert "no default profile now" in result.stderr
    assert "default_profile" not in load_config(config_file)
    run("keys", "remove", "b", "-y")
    # one profile left: it is the default
    assert load_config(config_file)["default_profile"] == "c"


def test_default_sets_and_prints(config_file: Path) -> None:
    add("a")
    add("b")
    assert run("keys", "default").stdout == "a\n"
    result = run("keys", "default", "b")
    assert result.exit_code == 0
    assert load_config(config_file)["default_profile"] == "b"
    assert run("keys", "default").stdout == "b\n"


def test_default_with_no_profiles() -> None:
    result = run("keys", "default")
    assert result.exit_code == 2
    assert "no default profile" in result.stderr


def test_keys_help_lists_the_subcommands() -> None:
    result = run("keys", "--help")
    assert result.exit_code == 0
    for name in ("add", "list", "show", "remove", "default", "test"):
        assert f"  {name} " in result.stdout


def complete(words: str, cword: int) -> list[str]:
    result = run(env={"_OUTKIT_COMPLETE": "bash_complete", "COMP_WORDS": words,
                      "COMP_CWORD": str(cword)})  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""  # anything here would garble the user's prompt
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]


def test_profile_names_complete_in_the_shell(config_file: Path) -> None:
    add("production")
    add("staging")
    add("prod-eu")
    assert complete("outkit keys show ", 3) == ["prod-eu", "production", "staging"]
    assert complete("outkit keys remove pro", 3) == ["prod-eu", "production"]
    assert complete("outkit keys default s", 3) == ["staging"]
    assert complete("outkit keys test prod", 3) == ["prod-eu", "production"]
    assert complete("outkit --profile st", 2) == ["staging"]
    assert complete("outkit -p ", 2) == ["prod-eu", "production", "staging"]
    other = config_file.parent / "other.toml"
    run("--config", str(other), "keys", "add", "elsewhere", "--key", "k", "--passphrase", "p",
        "--secret", "s")  # fmt: skip
    assert complete(f"outkit --config {other} keys show ", 5) == ["elsewhere"]


def test_completion_with_a_broken_config_offers_nothing(config_file: Path) -> None:
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text("not toml [")
    config_file.chmod(0o644)  # neither the parse error nor the mode is reported here
    assert complete("outkit keys show ", 3) == []


# --- on a terminal: prompts, hidden input, confirmation -----------------------------------


def on_a_tty(*args: str, input: str = "") -> Result:
    """`outkit ARGS` in this process with every stream taken for a terminal."""
    with use(Terminal(stdin_tty=True, stdout_tty=True, stderr_tty=True, color=False)):
        return run(*args, input=input)


def test_add_prompts_on_a_tty_with_hidden_secrets(config_file: Path) -> None:
    # a real pseudo-terminal: only one shows that typed secrets are not echoed
    env = {"OUTKIT_CONFIG": str(config_file)}
    code, shown = run_on_pty(
        "keys", "add", "tty",
        answers=[("Key:", "typed-key"), ("Passphrase:", PASSPHRASE), ("Secret:", SECRET)],
        env=env,
    )  # fmt: skip
    assert code == 0, shown
    assert "typed-key" in shown  # the key is echoed, it is not secret
    assert PASSPHRASE not in shown and SECRET not in shown
    prof = load_config(config_file)["profiles"]["tty"]
    assert (prof["key"], prof["passphrase"], prof["secret"]) == ("typed-key", PASSPHRASE, SECRET)


def test_add_over_an_existing_profile_asks_on_a_tty(config_file: Path) -> None:
    add("prod")
    args = ("keys", "add", "prod", "--key", "new", "--passphrase", "p", "--secret", "s")
    no = on_a_tty(*args, input="n\n")
    assert no.exit_code == 0, no.output
    assert "[y/N]" in no.output and "nothing changed" in no.output
    assert load_config(config_file)["profiles"]["prod"]["key"] == "key-prod"
    yes = on_a_tty(*args, input="y\n")
    assert yes.exit_code == 0, yes.output
    assert "replaced profile 'prod'" in yes.output
    assert load_config(config_file)["profiles"]["prod"]["key"] == "new"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--key", "", "--passphrase", ""), "error: --key, --passphrase are empty\n"),
        (("--key", "k", "--passphrase", "p", "--secret", ""), "error: --secret is empty\n"),
    ],
)
def test_empty_values_are_named_as_empty(args: tuple[str, ...], message: str) -> None:
    result = run("keys", "add", "ci", *args)
    assert (result.exit_code, result.stderr) == (2, message)


def test_remove_asks_on_a_tty(config_file: Path) -> None:
    add("prod")
    no = on_a_tty("keys", "remove", "prod", input="n\n")
    assert no.exit_code == 0, no.output
    assert "[y/N]" in no.output and "nothing removed" in no.output
    assert "prod" in load_config(config_file)["profiles"]
    yes = on_a_tty("keys", "remove", "prod", input="y\n")
    assert yes.exit_code == 0, yes.output
    assert "removed profile 'prod'" in yes.output
    assert load_config(config_file)["profiles"] == {}


def test_list_and_show_are_plain_text_when_piped() -> None:
    add("prod")
    add("staging", "--api-url", "http://127.0.0.1:9/v1", "--unsigned")
    assert run("keys", "list").stdout == (
        "name     key          API URL                   signed  default\n"
        "prod     key-prod     https://api.outkit.io/v1  true    *\n"
        "staging  key-staging  http://127.0.0.1:9/v1     false\n"
    )
    shown = run("keys", "show", "staging").stdout.splitlines()
    assert shown[0] == "name        staging"
    assert "api_url     http://127.0.0.1:9/v1" in shown


def test_list_and_show_draw_tables_on_a_terminal() -> None:
    add("prod")
    listed = on_a_tty("keys", "list")
    assert listed.exit_code == 0, listed.output
    assert "━" in listed.stdout and "│" in listed.stdout  # rich's table rules
    assert "key-prod" in listed.stdout and SECRET not in listed.output
    shown = on_a_tty("keys", "show", "prod")
    assert shown.exit_code == 0, shown.output
    assert "key-prod" in shown.stdout
    assert SECRET not in shown.output and PASSPHRASE not in shown.output


KEYS_WORDS = ["add", "list", "show", "remove", "default", "--key", "--passphrase", "--secret",
              "--secret-stdin", "--api-url", "--unsigned", "--default", "--reveal", "--yes",
              "--json", "--field", "name", "prod"]  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(args=st.lists(st.one_of(st.sampled_from(KEYS_WORDS), st.text(max_size=10)), max_size=7))
def test_any_keys_arguments_give_a_documented_exit_and_never_a_traceback(
    args: list[str],
) -> None:
    args = [a.replace("\x00", "") for a in args]  # argv cannot hold NUL
    result = run("keys", *args, input=b"s3cret\n")
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.stderr
    assert "error: unexpected" not in result.stderr


@pytest.mark.parametrize("flag", ["--key", "--passphrase"])
def test_add_refuses_credentials_a_header_cannot_carry(flag: str, config_file: Path) -> None:
    args = {"--key": "k1", "--passphrase": "p1", "--secret": "s1"}
    args[flag] = " padded\u2028"
    result = run("keys", "add", "bad", *[x for kv in args.items() for x in kv])
    assert result.exit_code == 2
    assert f"the {flag[2:]} cannot be sent in an HTTP header" in result.stderr
    assert "padded" not in result.stderr
    assert not config_file.exists()


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("http://api.example.com/v1", False),  # plain http to another host: refused later too
        ("http://127.0.0.1:8025/v1", True),
        ("http://localhost:8025/v1", True),
        ("http://[::1]:8025/v1", True),
        ("https://api.example.com/v1", True),
        ("ftp://api.example.com/v1", False),
    ],
)
def test_keys_add_applies_the_api_url_rule_of_every_command(
    config_file: Path, url: str, accepted: bool
) -> None:
    # one rule (client.check_api_url): keys add refuses what send/get/sign --curl refuse
    args = ("keys", "add", "a", "--key", "k", "--passphrase", "p", "--secret", "s")
    added = run(*args, "--api-url", url)
    sent = run("-p", "a", "send", "--curl", "--project", "p", "--to", "x@y.co", "--text-body", "x")
    if accepted:
        assert added.exit_code == 0, added
        assert sent.exit_code == 0, sent
    else:
        assert added.exit_code == 2 and len(added.stderr.splitlines()) == 1, added
        assert not config_file.exists() or "api_url" not in config_file.read_text()


def test_the_passphrase_can_stay_off_the_command_line(config_file: Path) -> None:
    from outkit_cli.config import load_config

    def stored(name: str) -> dict:
        return load_config(config_file)["profiles"][name]

    assert run("keys", "add", "a", "--key", "k", "--secret", "s", "--passphrase-stdin",
               input="pass-a\n").exit_code == 0  # fmt: skip
    assert stored("a")["passphrase"] == "pass-a"
    both = run("keys", "add", "b", "--key", "k", "--passphrase-stdin", "--secret-stdin",
               input="pass-b\nsecret-b\n")  # fmt: skip
    assert both.exit_code == 0, both
    assert (stored("b")["passphrase"], stored("b")["secret"]) == ("pass-b", "secret-b")
    env = run("keys", "add", "c", "--key", "k", "--secret-stdin", input="secret-c\n",
              env={"OUTKIT_ACCESS_PASSPHRASE": "pass-c"})  # fmt: skip
    assert env.exit_code == 0, env
    assert stored("c")["passphrase"] == "pass-c"
    empty = run("keys", "add", "d", "--key", "k", "--secret", "s", "--passphrase-stdin", input="")
    assert empty.exit_code == 2
    assert empty.stderr == "error: --passphrase-stdin: stdin held no passphrase\n"
