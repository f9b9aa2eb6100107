"""No secret or passphrase leaks: every command, its verbose and error paths, and every
file they leave behind, run with distinctive credentials.

The only places allowed to show them are the commands that exist to print them
(`sign --json`, `sign --curl`, `send --curl`, `keys show --reveal`), and there they must
appear: a test that never finds them could not tell masking from a typo. The config file
and the sandbox's keys.json hold them by design and are not scanned.
"""

from __future__ import annotations

import json
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path

from tests.helpers import Result, run
from tests.sandbox_fixture import Sandbox

KEY = "sbx_leakcheck0001"
SECRET = "SeCrEt-7f3a9c-Do-Not-Print"
PASSPHRASE = "PaSsPhRaSe-41d2e8-Hidden"
UNSIGNED_KEY = "sbx_leakcheck0002"
UNSIGNED_SECRET = "UnSiGnEd-9b1c77-Header-Only"
UNSIGNED_PASSPHRASE = "UnSiGnEd-PaSs-03aa5e"
WRONG_SECRET = "WrOnG-5e6f11-Not-The-Secret"
ALL = (SECRET, PASSPHRASE, UNSIGNED_SECRET, UNSIGNED_PASSPHRASE, WRONG_SECRET)


def _keys_file(data_dir: Path) -> None:
    """The sandbox's key store, written before it starts, so it serves our credentials."""
    data_dir.mkdir(parents=True, exist_ok=True)
    keys = [
        {"name": "s", "key": KEY, "passphrase": PASSPHRASE, "secret": SECRET, "signed": True},
        {"name": "u", "key": UNSIGNED_KEY, "passphrase": UNSIGNED_PASSPHRASE,
         "secret": UNSIGNED_SECRET, "signed": False},
    ]  # fmt: skip
    path = data_dir / "keys.json"
    path.write_text(json.dumps({"keys": keys}))
    path.chmod(0o600)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_command_prints_or_writes_a_secret(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path, config_file: Path
) -> None:
    data_dir = tmp_path / "sandbox"
    _keys_file(data_dir)
    box = start_sandbox(data_dir=data_dir)
    # `serve --init-profile` writes the credentials into a config file: the file holds
    # them (0600), its log must not
    init_config = tmp_path / "init" / "config.toml"
    second = start_sandbox(
        data_dir=data_dir / "second",
        extra_args=("--init-profile",),
        env={"OUTKIT_CONFIG": str(init_config)},
    )
    assert stat.S_IMODE(init_config.stat().st_mode) == 0o600
    assert second.secret in init_config.read_text()
    second_secrets = (second.secret, second.passphrase, second.unsigned_secret)

    quiet: list[tuple[tuple[str, ...], Result]] = []  # must show none of the secrets
    shown: dict[str, Result] = {}  # commands that exist to print them

    def check(*args: str, codes: tuple[int, ...] = (0,), **kw: object) -> Result:
        result = run(*args, **kw)  # type: ignore[arg-type]
        assert result.exit_code in codes, (args, result)
        assert "Traceback" not in result.output, (args, result)
        quiet.append((args, result))
        return result

    def reveal(name: str, *args: str, **kw: object) -> Result:
        result = run(*args, **kw)  # type: ignore[arg-type]
        assert result.exit_code == 0, (args, result)
        shown[name] = result
        return result

    work = tmp_path / "work"
    work.mkdir()
    closed = f"http://127.0.0.1:{_closed_port()}/v1"

    # -- keys: add (flags and --secret-stdin), list, show, default, test --------------------
    check("keys", "add", "prod", "--key", KEY, "--passphrase", PASSPHRASE, "--secret", SECRET,
          "--api-url", box.url, "--project", "demo")  # fmt: skip
    check("keys", "add", "plain", "--key", UNSIGNED_KEY, "--passphrase", UNSIGNED_PASSPHRASE,
          "--secret-stdin", "--unsigned", "--api-url", box.url, "--project", "demo",
          input=UNSIGNED_SECRET + "\n")  # fmt: skip
    check("keys", "add", "wrong", "--key", KEY, "--passphrase", PASSPHRASE,
          "--secret", WRONG_SECRET, "--api-url", box.url, "--project", "demo")  # fmt: skip
    check("keys", "add", "closed", "--key", KEY, "--passphrase", PASSPHRASE,
          "--secret", SECRET, "--api-url", closed, "--project", "demo")  # fmt: skip
    check("keys", "default", "prod")
    check("keys", "default")
    for args in (("keys", "list"), ("keys", "list", "--json"), ("-v", "keys", "list")):
        check(*args)
    for name in ("prod", "plain"):
        check("keys", "show", name)
        check("keys", "show", name, "--json")
        check("-v", "keys", "show", name)
    check("keys", "test")
    check("-v", "keys", "test", "--json")
    check("-p", "plain", "-v", "keys", "test")
    check("-p", "wrong", "-v", "keys", "test", codes=(3,))
    check("-p", "closed", "-v", "keys", "test", "--retries", "0", codes=(8,))

    # -- send: plain, verbose, json, quiet, wait, dry run, errors ----------------------------
    welcome = ("--template", "welcome", "--to", "ada@example.com", "--data", "name=Ada")
    created = check("send", *welcome, "--json")
    message_id = json.loads(created.stdout)["id"]
    check("send", *welcome)
    check("-v", "send", *welcome, "--wait")
    check("-p", "plain", "-v", "send", *welcome, "-q")
    check("send", *welcome, "--dry-run")
    check("-v", "send", *welcome, "--dry-run", "--json")
    check("-p", "plain", "send", *welcome, "--dry-run", "--json")
    check("-p", "wrong", "-v", "send", *welcome, codes=(3,))
    check("-v", "send", "--template", "no-such-template", "--to", "a@b.co", codes=(5,))
    check("-p", "closed", "-v", "send", *welcome, "--retries", "0", codes=(8,))
    check("-v", "send", "--to", "a@b.co", codes=(2,))  # nothing to send
    env_creds = {
        "OUTKIT_ACCESS_KEY": KEY,
        "OUTKIT_ACCESS_PASSPHRASE": PASSPHRASE,
        "OUTKIT_ACCESS_SECRET": WRONG_SECRET,
    }
    check("-v", "send", *welcome, env=env_creds, codes=(3,))

    # -- get: one, json, wait, list, verbose, errors -----------------------------------------
    check("get", message_id)
    check("get", message_id, "--json")
    check("-v", "get", message_id, "--wait")
    check("get")
    check("-v", "get", "--json")
    check("-v", "get", "no-such-id", codes=(4,))
    check("-p", "wrong", "-v", "get", message_id, codes=(3,))
    check("-p", "closed", "-v", "get", message_id, "--retries", "0", codes=(8,))

    # -- sign: human view, verify (match and mismatch) ---------------------------------------
    check("sign", "GET", "/v1/messages")
    check("-v", "sign", "POST", "/v1/messages", "--body", '{"message":{}}')
    check("-p", "plain", "sign", "GET", "/v1/messages")
    signed = json.loads(reveal("sign --json", "sign", "GET", "/v1/messages", "--timestamp",
                               "1700000000", "--json").stdout)  # fmt: skip
    check("sign", "GET", "/v1/messages", "--timestamp", "1700000000",
          "--verify", signed["signature"])  # fmt: skip
    check("-v", "sign", "GET", "/v1/messages", "--timestamp", "1700000000",
          "--verify", "AAAA" + signed["signature"][4:], codes=(3,))  # fmt: skip
    check("sign", "GET", "/v1/messages", "--secret", WRONG_SECRET, "--verify", "x", codes=(3,))

    # -- the commands that exist to print them ------------------------------------------------
    reveal("sign --curl", "sign", "POST", "/v1/messages", "--body", "{}", "--curl")
    reveal("sign --json unsigned", "-p", "plain", "sign", "GET", "/v1/messages", "--json")
    reveal("sign --curl unsigned", "-p", "plain", "sign", "GET", "/v1/messages", "--curl")
    reveal("send --curl", "send", *welcome, "--curl")
    reveal("send --curl unsigned", "-p", "plain", "send", *welcome, "--curl")
    reveal("keys show --reveal", "keys", "show", "prod", "--reveal")
    reveal("keys show --reveal unsigned", "keys", "show", "plain", "--reveal", "--json")

    # -- send --batch: results, journal, a failing row, dry run, verbose ----------------------
    rows = work / "rows.csv"
    rows.write_text(
        "to,data.name,template\nada@example.com,Ada,welcome\nbob@example.com,Bob,no-such-template\n"
        "cy@example.com,Cy,welcome\n"
    )
    results, journal = work / "results.jsonl", work / "rows.journal"
    check("-v", "send", "--batch", str(rows), "--results", str(results), "--journal",
          str(journal), codes=(5,))  # fmt: skip
    check("send", "--batch", str(rows), "--dry-run")
    check("-p", "wrong", "send", "--batch", str(rows), "--results", str(work / "wrong.jsonl"),
          "--journal", str(work / "wrong.journal"), codes=(3,))  # fmt: skip
    check("-p", "plain", "send", "--batch", str(rows), "--results", str(work / "plain.jsonl"),
          codes=(5,))  # fmt: skip
    assert results.stat().st_size > 0 and journal.stat().st_size > 0

    # -- removing a profile, last ---------------------------------------------------------------
    check("keys", "remove", "wrong", "--yes")
    check("-v", "keys", "remove", "closed", "--yes")

    # == what must not appear ===================================================================
    for args, result in quiet:
        for value in (*ALL, *second_secrets):
            assert value not in result.output, (args, value, result)
    scanned = 0
    for root in (work, data_dir):
        for path in root.rglob("*"):
            if not path.is_file() or path.name == "keys.json":
                continue
            content = path.read_bytes()
            scanned += 1
            for value in (*ALL, *second_secrets):
                assert value.encode() not in content, (path, value)
    assert (data_dir / "serve.log").stat().st_size > 0  # the sandbox's own log was scanned
    assert scanned >= 5
    assert "Traceback" not in box.log()
    # the environment was never polluted with them either (the tests run in-process)
    assert not any(v in os.environ.values() for v in ALL)

    # == what must appear where a command exists to print it ====================================
    for name, result in shown.items():
        unsigned = "unsigned" in name
        passphrase = UNSIGNED_PASSPHRASE if unsigned else PASSPHRASE
        assert passphrase in result.stdout, name
        if unsigned or name.startswith("keys show"):
            # an unsigned key sends its secret; --reveal shows it
            assert (UNSIGNED_SECRET if unsigned else SECRET) in result.stdout, name
        else:
            assert SECRET not in result.output, name  # signed: only the signature travels
