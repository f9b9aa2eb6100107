"""`outkit sign`: the human view, --json/--field, --verify, --curl, credentials, bad input."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outkit_cli import signing
from outkit_cli.config import save_profile
from tests.helpers import run, run_on_pty
from tests.netservers import QuietHandler, serving

BODY = '{"message":{"type":"email","to":"some.email@example.com"}}'
SIG = "WcgNBkmlED60m1K4lM4xUn6eB65k8NIKg2ydaSjbCx0="
EXAMPLE = ("sign", "POST", "/v1/messages", "--body", BODY, "--timestamp", "1496837645")
CREDS = ("--key", "the-key", "--passphrase", "pass-phrase-1234", "--secret", "test-secret")


def sign_json(*args: str, **kw: Any) -> dict[str, Any]:
    result = run("sign", *args, "--json", **kw)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_human_view_shows_parts_signature_and_masked_headers() -> None:
    result = run(*EXAMPLE, *CREDS)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for label, value in [
        ("timestamp", "1496837645"),
        ("method", "POST"),
        ("path", "/v1/messages"),
        ("body", BODY),
    ]:
        assert any(line.split()[:2] == [label, value] for line in out.splitlines()), label
    assert f"1496837645POST/v1/messages{BODY}" in out
    assert f"({len(BODY)} bytes)" in out
    assert SIG in out
    assert "Outkit-Access-Key: the-key" in out
    assert f"Outkit-Access-Signature: {SIG}" in out
    assert "Outkit-Access-Timestamp: 1496837645" in out
    # the passphrase is masked in this view, the secret never shown at all
    assert "pass-phrase-1234" not in result.output
    assert "test-secret" not in result.output
    assert "Outkit-Access-Passphrase: ********\n" in out
    assert "\x1b[" not in out  # not a TTY: no colour codes
    assert result.stderr == ""


def test_json_has_the_documented_keys_and_real_values() -> None:
    data = sign_json(*EXAMPLE[1:], *CREDS)
    assert data == {
        "timestamp": "1496837645",
        "method": "POST",
        "path": "/v1/messages",
        "body": BODY,
        "presignature": f"1496837645POST/v1/messages{BODY}",
        "signature": SIG,
        "headers": {
            "Outkit-Access-Key": "the-key",
            "Outkit-Access-Passphrase": "pass-phrase-1234",
            "Outkit-Access-Timestamp": "1496837645",
            "Outkit-Access-Signature": SIG,
        },
    }


def test_field_prints_raw_values_tab_separated() -> None:
    result = run(*EXAMPLE, *CREDS, "--field", "signature", "--field", "timestamp")
    assert result.exit_code == 0
    assert result.stdout == f"{SIG}\t1496837645\n"
    bad = run(*EXAMPLE, *CREDS, "--field", "nope")
    assert bad.exit_code == 2
    assert "unknown field 'nope'" in bad.stderr


def test_method_is_upper_cased_and_a_get_has_no_body() -> None:
    data = sign_json("get", "/v1/messages/abc?x=1", "--secret", "s", "--timestamp", "9")
    assert data["method"] == "GET"
    assert data["presignature"] == "9GET/v1/messages/abc?x=1"
    assert data["signature"] == signing.sign("s", 9, "GET", "/v1/messages/abc?x=1")


def test_default_timestamp_is_now_in_integer_seconds() -> None:
    before = signing.now()
    data = sign_json("GET", "/v1/messages", "--secret", "s")
    assert data["timestamp"].isdigit()
    assert before <= int(data["timestamp"]) <= signing.now()


def test_decimal_timestamp_like_the_javascript_client() -> None:
    data = sign_json("GET", "/v1/messages", "--secret", "s", "--timestamp", "1496837645.123")
    assert data["presignature"].startswith("1496837645.123GET")


def test_full_url_signs_its_path_and_query() -> None:
    data = sign_json("GET", "http://127.0.0.1:1/v1/messages?a=b", "--secret", "s")
    assert data["path"] == "/v1/messages?a=b"


def test_body_file_is_read_as_bytes(tmp_path: Path) -> None:
    raw = b'{"message":{"text_body":"caf\xe9\r\n"}}'  # Latin-1, not UTF-8, and a CRLF
    body_file = tmp_path / "body.bin"
    body_file.write_bytes(raw)
    data = sign_json("POST", "/v1/messages", "--body-file", str(body_file), "--secret", "s")
    assert data["signature"] == signing.sign("s", data["timestamp"], "POST", "/v1/messages", raw)
    import base64

    assert base64.b64decode(data["body_base64"]) == raw


def test_body_from_stdin_with_dash() -> None:
    data = sign_json(
        "POST", "/v1/messages", "--body-file", "-", "--secret", "s", "--timestamp", "1",
        input=BODY.encode() + b"\n",
    )  # fmt: skip
    assert data["body"] == BODY + "\n"
    assert data["signature"] == signing.sign("s", 1, "POST", "/v1/messages", BODY + "\n")
    assert "body_base64" not in data


def test_control_characters_are_shown_escaped_in_the_human_view() -> None:
    result = run("sign", "POST", "/v1/messages", "--body", '{\n\t"a": 1}', "--secret", "s")
    assert result.exit_code == 0
    assert '{\\n\\t"a": 1}' in result.stdout
    assert "(control characters are shown escaped" in result.stdout


def test_verify_match_exits_0() -> None:
    result = run(*EXAMPLE, "--secret", "test-secret", "--verify", SIG)
    assert result.exit_code == 0, result.stderr
    assert "signature matches" in result.stdout


def test_verify_mismatch_exits_3_and_names_the_presignature() -> None:
    wrong = signing.sign("test-secret", 1496837645, "POST", "/messages", BODY)
    result = run(*EXAMPLE, "--secret", "test-secret", "--verify", wrong)
    assert result.exit_code == 3
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: signature")
    assert "does not match" in lines[0]
    assert json.dumps(f"1496837645POST/v1/messages{BODY}") in lines[0]
    assert SIG in lines[0]
    assert "no --timestamp was given" not in lines[0]


def test_verify_without_timestamp_says_the_current_time_was_used() -> None:
    result = run("sign", "POST", "/v1/messages", "--body", BODY, "--secret", "x", "--verify", SIG)
    assert result.exit_code == 3
    assert "no --timestamp was given" in result.stderr


def test_verify_with_json_prints_the_record_and_still_sets_the_exit_code() -> None:
    good = run(*EXAMPLE, "--secret", "test-secret", "--verify", SIG, "--json")
    assert good.exit_code == 0
    assert json.loads(good.stdout)["signature"] == SIG
    bad = run(*EXAMPLE, "--secret", "other", "--verify", SIG, "--json")
    assert bad.exit_code == 3
    assert json.loads(bad.stdout)["signature"] != SIG


def test_no_credentials_exits_3_naming_the_ways_to_give_them() -> None:
    result = run("sign", "POST", "/v1/messages", "--body", "{}")
    assert result.exit_code == 3
    assert result.stdout == ""
    line = result.stderr.strip()
    assert "\n" not in line
    for way in ("--secret", "OUTKIT_ACCESS_SECRET", "outkit keys add", "--profile"):
        assert way in line


def test_missing_key_and_passphrase_are_left_out_and_said_so() -> None:
    data = sign_json(*EXAMPLE[1:], "--secret", "test-secret")
    assert set(data["headers"]) == {"Outkit-Access-Timestamp", "Outkit-Access-Signature"}
    human = run(*EXAMPLE, "--secret", "test-secret")
    assert "Outkit-Access-Key: (not set" in human.stdout


def test_credentials_precedence_flag_over_env_over_profile(config_file: Path) -> None:
    save_profile(
        config_file,
        "prod",
        {"key": "prof-key", "passphrase": "prof-pass", "secret": "prof-secret"},
    )
    data = sign_json(*EXAMPLE[1:])
    assert data["headers"]["Outkit-Access-Key"] == "prof-key"
    assert data["signature"] == signing.sign(
        "prof-secret", 1496837645, "POST", "/v1/messages", BODY
    )
    env = {"OUTKIT_ACCESS_SECRET": "env-secret", "OUTKIT_ACCESS_KEY": "env-key"}
    # another key from the environment: the default profile (prof-key's) is not used...
    alone = sign_json(*EXAMPLE[1:], env=env)
    assert alone["headers"]["Outkit-Access-Key"] == "env-key"
    assert "Outkit-Access-Passphrase" not in alone["headers"]
    # ... unless chosen: then the environment's values come over the profile's
    data = sign_json(*EXAMPLE[1:], "-p", "prod", env=env)
    assert data["headers"]["Outkit-Access-Key"] == "env-key"
    assert data["headers"]["Outkit-Access-Passphrase"] == "prof-pass"
    assert data["signature"] == signing.sign("env-secret", 1496837645, "POST", "/v1/messages", BODY)
    data = sign_json(*EXAMPLE[1:], "-p", "prod", "--secret", "test-secret", env=env)
    assert data["signature"] == SIG


def test_profile_is_selected_with_the_global_option(config_file: Path) -> None:
    save_profile(config_file, "a", {"key": "ka", "passphrase": "pa", "secret": "sa"})
    save_profile(config_file, "b", {"key": "kb", "passphrase": "pb", "secret": "sb"})
    result = run("--profile", "b", *EXAMPLE, "--json")
    assert json.loads(result.stdout)["headers"]["Outkit-Access-Key"] == "kb"
    result = run(*EXAMPLE, "--json", env={"OUTKIT_PROFILE": "b"})
    assert json.loads(result.stdout)["headers"]["Outkit-Access-Key"] == "kb"
    missing = run("--profile", "c", *EXAMPLE)
    assert missing.exit_code == 2
    assert "unknown profile 'c'" in missing.stderr
    assert "a, b" in missing.stderr


def test_unsigned_profile_sends_the_secret_masked_in_the_human_view(config_file: Path) -> None:
    save_profile(
        config_file,
        "legacy",
        {"key": "k", "passphrase": "p", "secret": "legacy-secret-value", "signed": False},
    )
    data = sign_json(*EXAMPLE[1:])
    assert data["headers"] == {
        "Outkit-Access-Key": "k",
        "Outkit-Access-Passphrase": "p",
        "Outkit-Access-Secret": "legacy-secret-value",
    }
    human = run(*EXAMPLE)
    assert "legacy-secret-value" not in human.stdout
    assert "opted out of signing" in human.stdout


@pytest.mark.parametrize(
    ("path", "api_url", "warned"),
    [
        ("/messages", "http://h/v1", True),
        ("/v1/messages", "http://h/v1", False),
        ("/v1", "http://h/v1/", False),
        ("/v10/messages", "http://h/v1", True),
        ("/v1?page=2", "http://h/v1", False),
        ("/messages?v1/x", "http://h/v1", True),
        ("/messages", "http://h", False),
        ("http://h/messages", "http://h/v1", False),
    ],
)
def test_warning_when_path_lacks_the_api_url_prefix(path: str, api_url: str, warned: bool) -> None:
    result = run("--api-url", api_url, "sign", "GET", path, "--secret", "s", "--json")
    assert result.exit_code == 0
    json.loads(result.stdout)  # the warning never lands on stdout
    if warned:
        assert result.stderr.startswith("warning: PATH ")
        assert "signs the full path" in result.stderr
        assert f"did you mean /v1{path}?" in result.stderr
    else:
        assert result.stderr == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("P OST", "/v1/messages"), "METHOD must be an HTTP method"),
        (("PÖST", "/v1/messages"), "METHOD must be an HTTP method"),
        (("POST", "v1/messages"), "PATH must start with /"),
        (("POST", "ftp://h/v1/messages"), "PATH must start with /"),
        (("GET", "/v1/messages", "--timestamp", "yesterday"), "--timestamp must be Unix seconds"),
        (("GET", "/v1/messages", "--timestamp", "-5"), "--timestamp must be Unix seconds"),
        (("POST", "/v1/messages", "--body", "{}", "--body-file", "-"), "not both"),
        (("POST", "/v1/messages", "--body-file", "/nonexistent/x"), "cannot read --body-file"),
        (("POST", "/v1/messages", "--curl", "--json"), "--curl cannot be combined"),
        (("POST", "/v1/messages", "--curl", "--verify", "x"), "--curl cannot be combined"),
        (("POST", "/v1/messages", "--json", "--field", "x"), "cannot be used together"),
        (("POST",), "Missing argument 'PATH'"),
        (("GET", "/v1/caf\udce9"), "PATH must be UTF-8 text"),
        (("GET", "/v1/m", "--key", "k\udcff"), "--key must be UTF-8 text"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    result = run("sign", *args, "--secret", "s")
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.splitlines()) == 1
    assert message in result.stderr


@pytest.fixture
def capture_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(origin, the requests it got); every request is answered 200 with no body."""
    seen: list[dict[str, Any]] = []

    class Handler(QuietHandler):
        def _handle(self) -> None:
            seen.append(self.record(self.read_body()))
            self.send_json(200, b"")

        do_GET = do_POST = do_PUT = _handle

    with serving(Handler) as origin:
        yield origin, seen


def _run_curl(command: str) -> None:
    subprocess.run(["bash", "-c", command], check=True, capture_output=True, timeout=20)


def test_curl_command_runs_and_sends_a_request_that_verifies(capture_server: Any) -> None:
    base, seen = capture_server
    body = """{"message":{"text_body":"it's $HOME `id` "quoted" \\\\ ünïcode\nline 2"}}"""
    result = run(
        "--api-url", f"{base}/v1", "sign", "POST", "/v1/messages?x=1&y=2",
        "--body", body, "--key", "k", "--passphrase", "p p", "--secret", "s3cret", "--curl",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    # the API URL's /v1 is not doubled
    assert f"{base}/v1/messages?x=1&y=2" in result.stdout
    assert "/v1/v1" not in result.stdout
    _run_curl(result.stdout)
    (req,) = seen
    assert req["method"] == "POST"
    assert req["path"] == "/v1/messages?x=1&y=2"
    assert req["body"] == body.encode("utf-8")
    headers = req["headers"]
    assert headers["Outkit-Access-Key"] == "k"
    assert headers["Outkit-Access-Passphrase"] == "p p"
    assert "Outkit-Access-Secret" not in headers
    assert signing.verify(
        "s3cret",
        headers["Outkit-Access-Timestamp"],
        req["method"],
        req["path"],
        req["body"],
        headers["Outkit-Access-Signature"],
    )


def test_curl_body_starting_with_at_is_sent_as_text(capture_server: Any) -> None:
    base, seen = capture_server
    result = run(
        "--api-url", base, "sign", "PUT", "/x", "--body", "@/etc/passwd", "--secret", "s", "--curl"
    )
    _run_curl(result.stdout)
    assert seen[0]["body"] == b"@/etc/passwd"


def test_curl_non_utf8_body_uses_the_file(capture_server: Any, tmp_path: Path) -> None:
    base, seen = capture_server
    raw = b"\xff\x00binary"
    path = tmp_path / "it's a body.bin"
    path.write_bytes(raw)
    result = run(
        "--api-url", base, "sign", "POST", "/v1/m", "--body-file", str(path),
        "--secret", "s", "--curl",
    )  # fmt: skip
    assert "--data-binary " + shlex.quote(f"@{path}") in result.stdout
    _run_curl(result.stdout)
    req = seen[0]
    assert req["body"] == raw
    headers = req["headers"]
    assert signing.verify(
        "s", headers["Outkit-Access-Timestamp"], "POST", "/v1/m", raw,
        headers["Outkit-Access-Signature"],
    )  # fmt: skip


def test_curl_non_utf8_body_from_stdin_is_refused() -> None:
    result = run(
        "sign", "POST", "/v1/m", "--body-file", "-", "--secret", "s", "--curl", input=b"\xff"
    )
    assert result.exit_code == 2
    assert "cannot be put on a command line" in result.stderr


def test_curl_uses_the_profile_api_url(config_file: Path) -> None:
    save_profile(
        config_file,
        "local",
        {"key": "k", "passphrase": "p", "secret": "s", "api_url": "http://127.0.0.1:7777/v1"},
    )
    result = run("sign", "GET", "/v1/messages", "--curl")
    assert shlex.split(result.stdout.replace("\\\n", " "))[:5] == [
        "curl", "-sS", "-X", "GET", "http://127.0.0.1:7777/v1/messages",
    ]  # fmt: skip


def test_credential_flags_never_mix_with_another_keys_default_profile(
    config_file: Path,
) -> None:
    """`sign --key prodkey --curl` with the sandbox as default profile printed prodkey with
    the sandbox's passphrase, signed with its secret, for its URL; as with OUTKIT_ACCESS_*,
    the default profile is used only for its own key."""
    save_profile(config_file, "sandbox", {"key": "sbx", "passphrase": "sbx-pass",
                                          "secret": "sbx-secret",
                                          "api_url": "http://127.0.0.1:7777/v1"})  # fmt: skip
    other = run("sign", "GET", "/v1/messages", "--key", "prodkey", "--secret", "s", "--json")
    assert other.exit_code == 0, other.stderr
    record = json.loads(other.stdout)
    assert "sbx-pass" not in other.stdout and "Outkit-Access-Passphrase" not in record["headers"]
    assert record["signature"] == signing.signature("s", record["presignature"].encode())
    curl = run("sign", "GET", "/v1/messages", "--key", "prodkey", "--secret", "s", "--curl")
    assert "https://api.outkit.io/v1/messages" in curl.stdout and "7777" not in curl.stdout
    same = run("sign", "GET", "/v1/messages", "--key", "sbx", "--json")
    assert json.loads(same.stdout)["headers"]["Outkit-Access-Passphrase"] == "sbx-pass"


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("mode", ["--curl", "--json"])
def test_full_url_on_another_host_is_warned_of_naming_both(
    config_file: Path, mode: str, signed: bool
) -> None:
    """`sign https://evil.example:8443/... --curl` printed the profile's real key and
    passphrase (and, for an unsigned key, its secret) for another host, without a word."""
    save_profile(config_file, "prod", {"key": "k", "passphrase": "pp", "secret": "s",
                                       "api_url": "https://api.outkit.io/v1",
                                       "signed": signed})  # fmt: skip
    result = run("sign", "POST", "https://evil.example:8443/v1/messages", mode)
    assert result.exit_code == 0, result.stderr
    [line] = [x for x in result.stderr.splitlines() if "evil" in x]
    assert line.startswith("warning: PATH is on https://evil.example:8443, not on the API "
                           "host https://api.outkit.io (API URL from profile prod)")  # fmt: skip
    assert ("passphrase and secret" in line) is (not signed)
    assert "pp" in result.stdout  # the values are real, as documented: hence the warning
    # the same origin spelled otherwise (case, the default port): no warning
    same = run("sign", "POST", "HTTPS://API.Outkit.io:443/v1/messages", mode)
    assert same.exit_code == 0 and "not on the API host" not in same.stderr
    # the human view masks the values: no warning needed
    human = run("sign", "POST", "https://evil.example:8443/v1/messages")
    assert human.exit_code == 0 and "not on the API host" not in human.stderr


@pytest.mark.parametrize(
    ("url", "api_url"),
    [
        ("http://127.0.0.1:7778/v1/messages", "http://127.0.0.1:7777/v1"),  # another port
        ("http://127.0.0.1:7777/v1/messages", "https://127.0.0.1:7777/v1"),  # another scheme
        ("https://api.outkit.io.evil.example/v1/m", "https://api.outkit.io/v1"),
        ("https://api.outkit.io@evil.example/v1/m", "https://api.outkit.io/v1"),
    ],
)
def test_other_origin_is_scheme_host_and_port(url: str, api_url: str) -> None:
    result = run("--api-url", api_url, "sign", "GET", url, "--secret", "s", "--json")
    assert result.exit_code == 0, result.stderr
    assert "not on the API host" in result.stderr


@settings(max_examples=40, deadline=None)
@given(body=st.text(max_size=100), secret=st.text(min_size=1, max_size=20))
def test_command_signature_matches_the_core(body: str, secret: str) -> None:
    # NUL cannot pass through argv; the core tests cover it
    body, secret = body.replace("\x00", ""), secret.replace("\x00", "") or "s"
    data = sign_json("POST", "/v1/messages", "--body", body, "--secret", secret, "--timestamp", "3")
    assert data["signature"] == signing.sign(secret, 3, "POST", "/v1/messages", body)
    assert data["body"] == body


def _sign_on_a_terminal(*global_args: str, no_color: str | None) -> str:
    """`outkit sign` with stdout taken for a terminal; returns what it drew."""
    from outkit_cli.terminal import Terminal, use

    with use(Terminal(stdout_tty=True)):
        result = run(*global_args, *EXAMPLE, "--secret", "s", env={"NO_COLOR": no_color})
    assert result.exit_code == 0, result.output
    return result.stdout


COLOURED = "\x1b[36m1496837645\x1b[0m\x1b[35mPOST\x1b[0m\x1b[32m/v1/messages"


def test_parts_are_coloured_on_a_terminal_unless_no_color() -> None:
    assert COLOURED in _sign_on_a_terminal(no_color=None)
    assert "\x1b[" not in _sign_on_a_terminal(no_color="1")
    assert "\x1b[" not in _sign_on_a_terminal("--no-color", no_color=None)
    # an empty NO_COLOR does not count (no-color.org)
    assert "\x1b[" in _sign_on_a_terminal(no_color="")
    # piped: no colour whatever NO_COLOR says
    assert "\x1b[" not in run(*EXAMPLE, "--secret", "s", env={"NO_COLOR": None}).stdout


def test_a_real_terminal_is_seen_as_one() -> None:
    # the one check through a real pseudo-terminal: the streams' own isatty() is read
    code, shown = run_on_pty(*EXAMPLE, "--secret", "s", env={"NO_COLOR": None})
    assert code == 0, shown
    assert COLOURED in shown


def test_a_body_argument_that_is_not_utf8_is_signed_as_its_bytes() -> None:
    # the shell handed over the bytes b"caf\xe9"; Python shows them as a surrogate escape
    data = sign_json("POST", "/v1/m", "--body", "caf\udce9", "--secret", "s", "--timestamp", "1")
    assert data["signature"] == signing.sign("s", 1, "POST", "/v1/m", b"caf\xe9")
    assert data["body_base64"] == "Y2Fm6Q=="


SIGN_OPTIONS = ["--body", "--body-file", "--timestamp", "--key", "--passphrase", "--secret",
                "--verify", "--curl", "--json", "--field", "-"]  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(args=st.lists(st.one_of(st.sampled_from(SIGN_OPTIONS), st.text(max_size=12)), max_size=8))
def test_any_arguments_give_a_documented_exit_and_never_a_traceback(args: list[str]) -> None:
    args = [a.replace("\x00", "") for a in args]  # argv cannot hold NUL
    result = run("sign", *args, input=b"")
    assert result.exit_code in (0, 2, 3), result.output
    assert "Traceback" not in result.stderr
    assert "error: unexpected" not in result.stderr  # the handler's wording for a bug
    if result.exit_code:
        assert result.stderr.startswith("error: ") or result.stderr.startswith("warning: ")
        assert result.stderr.splitlines()[-1].startswith("error: ")


def test_docs_sign_example_is_what_the_command_prints() -> None:
    readme = (Path(__file__).resolve().parent.parent / "docs" / "sign.md").read_text()
    start = readme.index("```console\n$ outkit sign ")
    block = readme[start : readme.index("```\n", start + 10)].splitlines()[1:]
    command_lines = []
    while True:
        line = block.pop(0)
        command_lines.append(line.removeprefix("$ ").strip().removesuffix("\\"))
        if not line.endswith("\\"):
            break
    args = shlex.split(" ".join(command_lines))
    assert args[0] == "outkit"
    result = run(*args[1:])
    assert result.exit_code == 0
    assert result.stdout.splitlines() == block


# --- against the sandbox: the service itself checks what `sign --curl` sends ---------------


def _curl_json(command: str) -> dict[str, Any]:
    proc = subprocess.run(["bash", "-c", command], capture_output=True, timeout=30, check=True)
    return json.loads(proc.stdout)


def test_curl_request_is_accepted_by_the_sandbox(sandbox: Any) -> None:
    body = json.dumps(
        {"message": {"type": "email", "project": "demo", "template": "welcome",
                     "to": "Zoë <zoe@example.com>", "data": {"first_name": "Zoë's"},
                     "test": True}},
        ensure_ascii=False,
    )  # fmt: skip
    result = run("sign", "POST", "/v1/messages", "--body", body, "--curl", env=sandbox.env())
    assert result.exit_code == 0, result.stderr
    created = _curl_json(result.stdout)
    message_id = created["data"]["id"]
    assert created["data"]["to"] == "Zoë <zoe@example.com>"
    # a GET signs an empty body and the id path
    get = run("sign", "GET", f"/v1/messages/{message_id}", "--curl", env=sandbox.env())
    assert _curl_json(get.stdout)["data"]["id"] == message_id


def test_curl_with_the_wrong_secret_is_refused_by_the_sandbox(sandbox: Any) -> None:
    env = {**sandbox.env(), "OUTKIT_ACCESS_SECRET": "not-the-secret"}
    result = run("sign", "GET", "/v1/messages", "--curl", env=env)
    answer = _curl_json(result.stdout)
    assert "error" in answer and "data" not in answer


def test_curl_for_an_unsigned_key_is_accepted_by_the_sandbox(sandbox: Any) -> None:
    # the environment has no way to say "unsigned": a profile does
    result = run(
        "keys", "add", "legacy", "--unsigned", "--key", sandbox.unsigned_key,
        "--passphrase", sandbox.unsigned_passphrase, "--secret", sandbox.unsigned_secret,
        "--api-url", sandbox.url,
    )  # fmt: skip
    assert result.exit_code == 0
    curl = run("sign", "GET", "/v1/messages", "--curl")
    assert "Outkit-Access-Secret" in curl.stdout and "Signature" not in curl.stdout
    assert isinstance(_curl_json(curl.stdout)["data"], list)


def test_curl_refuses_a_plain_http_api_url_to_another_host() -> None:
    # the credentials would cross the network in clear: the rule of every other command
    env = {"OUTKIT_ACCESS_KEY": "k", "OUTKIT_ACCESS_PASSPHRASE": "p", "OUTKIT_ACCESS_SECRET": "s"}
    for args in (
        ("--api-url", "http://api.example.com/v1", "sign", "GET", "/v1/messages", "--curl"),
        ("sign", "GET", "http://api.example.com/v1/messages", "--curl"),
    ):
        result = run(*args, env=env)
        assert result.exit_code == 2, result
        assert result.stdout == ""
        assert "refusing plain http:// API URL" in result.stderr
        assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(("signed", "needle"), [(True, "passphrase"), (False, "secret")])
def test_curl_warns_that_its_output_carries_credentials(
    config_file: Path, signed: bool, needle: str
) -> None:
    args = ["keys", "add", "a", "--key", "k", "--passphrase", "pp", "--secret", "ss"]
    assert run(*args, *([] if signed else ["--unsigned"])).exit_code == 0
    result = run("sign", "GET", "/v1/messages", "--curl")
    assert result.exit_code == 0, result
    warnings = result.stderr.splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("warning: ")
    assert f"contains the {needle}" in warnings[0] or f"the key's {needle}" in warnings[0]
    assert "Outkit-Access-Passphrase: pp" in result.stdout
