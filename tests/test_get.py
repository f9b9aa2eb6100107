"""`outkit get` against the sandbox: one id, several, listing, bodies, --wait, --open."""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import pytest

from tests.helpers import run, run_subprocess
from tests.sandbox_fixture import Sandbox


@pytest.fixture(scope="module")
def delivered(sandbox: Sandbox) -> list[dict]:
    """Two delivered messages, made once for the module."""
    ref = f"get-{uuid.uuid4()}"
    out = []
    for name in ("Ada", "Grace"):
        status, doc = sandbox.request(
            "POST",
            "/messages",
            {
                "message": {
                    "type": "email",
                    "to": f"{name.lower()}@example.com",
                    "project": "demo",
                    "template": "welcome",
                    "data": {"name": name},
                    "id_from_submitter": ref,
                }
            },
        )
        assert status == 200, doc
        out.append(sandbox.wait_done(doc["data"]["id"]))
    return out


def get(box: Sandbox, *args: str, env: dict | None = None):
    return run("get", *args, env={**box.env(), **(env or {})})


def test_one_id_human_json_and_fields(sandbox: Sandbox, delivered: list[dict]) -> None:
    msg = delivered[0]
    human = get(sandbox, msg["id"])
    assert human.exit_code == 0
    assert msg["id"] in human.stdout and "delivered" in human.stdout
    assert "ada@example.com" in human.stdout

    as_json = get(sandbox, msg["id"], "--json")
    assert json.loads(as_json.stdout) == msg  # the API's data object, unchanged

    fields = get(sandbox, msg["id"], "--field", "status", "--field", "to", "--field", "data")
    assert fields.stdout == 'delivered\tada@example.com\t{"name":"Ada"}\n'
    assert fields.stderr == ""


def test_unknown_field_is_a_usage_error(sandbox: Sandbox, delivered: list[dict]) -> None:
    result = get(sandbox, delivered[0]["id"], "--field", "colour")
    assert result.exit_code == 2
    assert "unknown field 'colour'" in result.stderr


def test_unknown_id_exit_4(sandbox: Sandbox) -> None:
    result = get(sandbox, "no-such-message")
    assert result.exit_code == 4
    assert result.stdout == ""
    assert result.stderr.startswith("error: message no-such-message: not found")
    assert len(result.stderr.splitlines()) == 1


def test_several_ids_show_the_others_and_exit_with_first_failure(
    sandbox: Sandbox, delivered: list[dict]
) -> None:
    a, b = (m["id"] for m in delivered)
    result = get(sandbox, a, "missing-1", b, "missing-2", "--json")
    assert result.exit_code == 4
    assert [m["id"] for m in json.loads(result.stdout)] == [a, b]
    assert result.stderr.count("error: message missing-") == 2

    table = get(sandbox, a, b)
    assert table.exit_code == 0
    assert a in table.stdout and b in table.stdout

    fields = get(sandbox, a, b, "--field", "id")
    assert fields.stdout == f"{a}\n{b}\n"


def test_body_prints_the_rendered_body_raw(sandbox: Sandbox, delivered: list[dict]) -> None:
    msg = delivered[1]
    html = get(sandbox, msg["id"], "--body", "html")
    assert html.exit_code == 0
    assert html.stdout == msg["html_body"]
    text = get(sandbox, msg["id"], "--body", "text")
    assert text.stdout == msg["text_body"] and "Grace" in text.stdout


def test_body_at_a_terminal_ends_its_line(sandbox: Sandbox, delivered: list[dict]) -> None:
    """The HTML body has no final newline: at a terminal one is added so the prompt starts
    a line (newcomer trial); a file gets the body exactly (the test above)."""
    from outkit_cli import terminal

    msg = delivered[1]
    assert not msg["html_body"].endswith("\n")
    with terminal.use(terminal.Terminal(stdout_tty=True)):
        html = get(sandbox, msg["id"], "--body", "html")
    assert html.exit_code == 0
    assert html.stdout == msg["html_body"] + "\n"


def test_body_missing_is_exit_4(sandbox: Sandbox) -> None:
    status, doc = sandbox.request(
        "POST",
        "/messages",
        {"message": {"type": "sms", "to": "+4790000000", "project": "demo", "text_body": "x"}},
    )
    assert status == 200
    result = get(sandbox, doc["data"]["id"], "--body", "html")
    assert result.exit_code == 4
    assert "has no html body" in result.stderr


def test_wait_on_several_ids(sandbox: Sandbox) -> None:
    ids = []
    for _ in range(2):
        status, doc = sandbox.request(
            "POST",
            "/messages",
            {
                "message": {
                    "type": "email",
                    "to": "w@example.com",
                    "project": "demo",
                    "text_template_body": "hi",
                }
            },
        )
        assert status == 200
        ids.append(doc["data"]["id"])
    result = get(sandbox, *ids, "--wait", "--field", "status")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "delivered\ndelivered\n"


def test_wait_reports_failure_exit_9(sandbox: Sandbox, delivered: list[dict]) -> None:
    status, doc = sandbox.request(
        "POST",
        "/messages",
        {
            "message": {
                "type": "email",
                "to": "w@example.com",
                "project": "demo",
                "html_template_body": "{{#each}}",
            }
        },
    )
    assert status == 200
    bad = doc["data"]["id"]
    result = get(sandbox, delivered[0]["id"], bad, "--wait", "--field", "status")
    assert result.exit_code == 9
    assert result.stdout == "delivered\nrender_error\n"
    assert f"message {bad} ended in render_error" in result.stderr


def test_listing(sandbox: Sandbox, delivered: list[dict]) -> None:
    ref = delivered[0]["id_from_submitter"]
    by_ref = get(sandbox, "--id-from-submitter", ref, "--json")
    assert by_ref.exit_code == 0
    assert {m["id"] for m in json.loads(by_ref.stdout)} == {m["id"] for m in delivered}

    limited = get(sandbox, "--limit", "1", "--json")
    assert len(json.loads(limited.stdout)) == 1

    only = get(sandbox, "--status", "delivered", "--limit", "50", "--field", "status")
    assert only.exit_code == 0
    assert set(only.stdout.split()) == {"delivered"}

    table = get(sandbox, "--limit", "5")
    assert table.exit_code == 0
    assert "ID" in table.stdout and "STATUS" in table.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--wait"], "--wait needs a message ID"),
        (["--body", "html"], "--body needs a message ID"),
        (["some-id", "--limit", "3"], "apply only to listing"),
        (["some-id", "--body", "text", "--json"], "--body cannot be used with --json"),
        (["some-id", "--json", "--field", "id"], "--json and --field cannot be used together"),
        (["some-id", "--timeout", "0"], "--timeout"),
    ],
)
def test_bad_combinations_exit_2(args: list[str], fragment: str) -> None:
    result = run("get", *args)
    assert result.exit_code == 2
    assert fragment in result.stderr
    assert len(result.stderr.splitlines()) == 1


def recording_browser(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """$BROWSER set to a script that records the URL it is asked to open."""
    record = tmp_path / "opened.txt"
    browser = tmp_path / "browser.py"
    browser.write_text(
        f"import sys, pathlib; pathlib.Path({str(record)!r}).write_text(sys.argv[1])\n"
    )
    return {"BROWSER": f"{sys.executable} {browser} %s"}, record


def test_open_on_the_sandbox_opens_the_message_in_its_inbox(
    sandbox: Sandbox, delivered: list[dict], tmp_path: Path
) -> None:
    browser_env, record = recording_browser(tmp_path)
    env = {**sandbox.env(), **browser_env}
    env.pop("DISPLAY", None)
    msg = delivered[0]
    result = run_subprocess("get", msg["id"], "--open", "--field", "status", env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "delivered\n"
    url = record.read_text()
    assert url == f"{sandbox.inbox_url}messages/{msg['id']}"
    assert f"opened {url}" in result.stderr


def test_open_elsewhere_writes_html_and_calls_the_browser(tmp_path: Path) -> None:
    """An API that is not the sandbox has no inbox: the HTML body goes to a private file."""
    from tests.fake_api import fake_api

    msg = {"id": "m-1", "status": "delivered", "done": True, "html_body": "<p>hi</p>"}
    browser_env, record = recording_browser(tmp_path)
    with fake_api(lambda method, path, body: (200, {"data": msg})) as api:
        env = {**api.env(), **browser_env}
        env.pop("DISPLAY", None)
        result = run_subprocess("get", "m-1", "--open", "--field", "status", env=env)
        uri = record.read_text()
        # --open alone prints its one line and not the message's fields as well
        alone = run_subprocess("get", msg["id"], "--open", env=env)
    assert result.exit_code == 0, result.stderr
    assert uri.startswith("file://") and uri.endswith(".html")
    path = Path(uri.removeprefix("file://"))
    text = path.read_text(encoding="utf-8")
    assert text.endswith("<p>hi</p>")
    # the API's HTML runs no script from the file: a policy comes first
    assert text.startswith('<meta http-equiv="Content-Security-Policy"')
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert f"opened {path}" in result.stderr
    os.unlink(path)
    assert alone.exit_code == 0, alone.stderr
    assert alone.stdout == ""
    (line,) = alone.stderr.splitlines()
    assert line.startswith("opened ") and line.endswith(".html")
    os.unlink(line.removeprefix("opened "))


def test_get_in_a_script_never_imports_rich(sandbox: Sandbox, delivered: list[dict]) -> None:
    """Scripts call `outkit get` in loops: with stdout not a terminal, rich is not loaded."""
    for extra in ([], ["--json"]):
        result = run_subprocess(
            "get", delivered[0]["id"], *extra, env={**sandbox.env(), "PYTHONPROFILEIMPORTTIME": "1"}
        )
        assert result.exit_code == 0, result.stderr
        imported = {
            line.split("|")[-1].strip()
            for line in result.stderr.splitlines()
            if line.startswith("import time:")
        }
        assert "urllib3" in imported  # the check sees imports at all
        assert not any(name.split(".")[0] == "rich" for name in imported), extra


def test_terminal_table_keeps_ids_whole_on_a_narrow_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal the table is drawn by rich; ids must never be folded or cut."""
    from outkit_cli.message_view import print_message_table

    monkeypatch.setenv("COLUMNS", "80")
    rows = [
        {"id": str(uuid.uuid4()), "status": "render_error", "to": "someone.long@example.com",
         "subject": "A subject long enough to need cutting " * 3,
         "received_at": "2026-11-26T07:10:14.124334Z"}
        for _ in range(3)
    ]  # fmt: skip
    print_message_table(rows)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines)
    for row in rows:
        assert any(row["id"] in line and "render_error" in line for line in lines)
    assert "RECEIVED" not in out  # the time column gives way on a narrow terminal

    monkeypatch.setenv("COLUMNS", "160")
    print_message_table(rows)
    assert "2026-11-26 07:10:14" in capsys.readouterr().out


def test_an_empty_list_says_so_on_a_terminal_and_prints_nothing_to_a_pipe(
    sandbox: Sandbox,
) -> None:
    from outkit_cli.terminal import Terminal, use

    args = ("get", "--id-from-submitter", "no-such-ref")
    with use(Terminal(stdout_tty=True, stderr_tty=True, width=100)):
        seen = run(*args, env=sandbox.env())
    assert seen.exit_code == 0, seen.stderr
    assert (seen.stdout, seen.stderr) == ("", "no messages\n")
    piped = run(*args, env=sandbox.env())
    assert (piped.exit_code, piped.stdout, piped.stderr) == (0, "", "")
