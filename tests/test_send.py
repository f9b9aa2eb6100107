"""`outkit send` against a real sandbox: the happy path, machine output, dry runs, and
every exit code provoked for real."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from outkit_cli import signing
from outkit_cli.config import save_profile
from tests.helpers import run
from tests.sandbox_fixture import Sandbox

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ref() -> str:
    """A unique id_from_submitter, to find a test's messages in the shared sandbox."""
    return f"test-{uuid.uuid4()}"


def stored(box: Sandbox, id_from_submitter: str) -> list[dict]:
    status, doc = box.request("GET", f"/messages?id_from_submitter={id_from_submitter}")
    if status == 429:  # a rate-limited sandbox: its limit is per second
        time.sleep(1.1)
        status, doc = box.request("GET", f"/messages?id_from_submitter={id_from_submitter}")
    assert status == 200, doc
    return doc["data"]


def send(box: Sandbox, *args: str, input: str | None = None, env: dict | None = None):
    return run("send", *args, input=input, env={**box.env(), **(env or {})})


def test_send_get_wait_delivered(sandbox: Sandbox) -> None:
    """The main job: send from a template, follow it until delivered, find the email."""
    r = ref()
    sent = send(
        sandbox, "--template", "welcome", "--to", "jane@example.com", "--project", "demo",
        "--data", "name=Jane", "--id-from-submitter", r, "-q",
    )  # fmt: skip
    assert sent.exit_code == 0, sent.stderr
    message_id = sent.stdout.strip()
    assert UUID_RE.match(message_id)

    status = run("get", message_id, "--field", "status", env=sandbox.env())
    assert status.exit_code == 0
    assert status.stdout.strip() in {
        "received", "queued_for_rendering", "rendered", "queued_for_delivery", "delivered"
    }  # fmt: skip

    waited = run("get", message_id, "--wait", "--field", "status", "--field", "done",
                 env=sandbox.env())  # fmt: skip
    assert waited.exit_code == 0, waited.stderr
    assert waited.stdout == "delivered\ttrue\n"

    body = run("get", message_id, "--body", "text", env=sandbox.env())
    assert body.exit_code == 0
    assert "Jane" in body.stdout
    delivered = list((sandbox.outbox() / "new").iterdir())
    assert any("jane@example.com" in p.read_text("utf-8", "replace") for p in delivered)


def test_send_wait_human_view_and_profile_defaults(sandbox: Sandbox, config_file: Path) -> None:
    # the project comes from the profile, the credentials from the profile too
    save_profile(
        config_file,
        "sbx",
        {
            "key": sandbox.key,
            "passphrase": sandbox.passphrase,
            "secret": sandbox.secret,
            "api_url": sandbox.url,
            "project": "demo",
        },
    )
    result = run("send", "--to", "ops@example.com", "--subject", "Report",
                 "--text-body", "All good", "--wait")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert re.search(r"^status\s+delivered\s*$", result.stdout, re.M)
    assert re.search(r"^project\s+demo\s*$", result.stdout, re.M)
    assert result.stderr == ""  # no spinner without a TTY


def test_send_json_is_the_api_data_object_unchanged(sandbox: Sandbox) -> None:
    r = ref()
    result = send(sandbox, "--to", "a@example.com", "--project", "demo", "--text-body", "hi",
                  "--id-from-submitter", r, "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    [row] = stored(sandbox, r)
    assert data["id"] == row["id"]
    assert set(data) == set(row)  # every field, null where unset
    assert data["text_body"] == "hi" and data["id_from_submitter"] == r


def test_data_typed_values_message_file_and_data_file_from_stdin(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    r = ref()
    msg = tmp_path / "msg.json"
    msg.write_text(json.dumps({"message": {"to": "file@example.com", "project": "demo",
                   "template": "welcome", "data": {"name": "File"}}}))  # fmt: skip
    result = send(
        sandbox, "--message-file", str(msg), "--to", "flag@example.com", "--data-file", "-",
        "--data", "count:=3", "--id-from-submitter", r, "--json",
        input='{"name": "Stdin", "tags": ["a"]}',
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["to"] == "flag@example.com"
    assert data["data"] == {"name": "Stdin", "tags": ["a"], "count": 3}


def test_body_from_at_path(sandbox: Sandbox, tmp_path: Path) -> None:
    html = tmp_path / "b.html"
    html.write_text("<p>Hei, «verden» — ✓</p>", encoding="utf-8")
    result = send(sandbox, "--to", "a@example.com", "--project", "demo", "--subject", "s",
                  "--html-body", f"@{html}", "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["html_body"] == "<p>Hei, «verden» — ✓</p>"


def test_sync_answer_needs_no_polling(sandbox: Sandbox) -> None:
    result = run("-v", "send", "--to", "a@example.com", "--project", "demo", "--text-template",
                 "Hi", "--sync", "--wait", "--field", "status", env=sandbox.env())  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "delivered\n"
    assert "> POST" in result.stderr
    assert "> GET" not in result.stderr


def test_render_only_wait_ends_rendered(sandbox: Sandbox) -> None:
    result = send(sandbox, "--to", "a@example.com", "--project", "demo", "--text-template",
                  "Hello {{name}}", "--data", "name=Ada", "--render-only", "--wait",
                  "--field", "status", "--field", "text_body")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "rendered\tHello Ada\n"


def test_dry_run_shows_exact_request_masks_secrets_sends_nothing(sandbox: Sandbox) -> None:
    r = ref()
    result = send(sandbox, "--to", "a@example.com", "--project", "demo", "--text-body", "x",
                  "--id-from-submitter", r, "--dry-run")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"POST {sandbox.url}/messages\n")
    assert f"{signing.PASSPHRASE_HEADER}: ****" in out
    assert sandbox.passphrase not in out and sandbox.secret not in out
    assert "nothing was sent" in result.stderr
    # the body shown is the body that would be signed: the shown signature verifies
    head, body = out.split("\n\n", 1)
    headers = dict(line.split(": ", 1) for line in head.splitlines()[1:])
    body_bytes = body.rstrip("\n").encode()
    assert json.loads(body_bytes)["message"]["id_from_submitter"] == r
    assert signing.verify(
        sandbox.secret, headers[signing.TIMESTAMP_HEADER], "POST", "/v1/messages",
        body_bytes, headers[signing.SIGNATURE_HEADER],
    )  # fmt: skip
    assert stored(sandbox, r) == []


def test_dry_run_json(sandbox: Sandbox) -> None:
    result = send(sandbox, "--to", "a@example.com", "--project", "demo", "--text-body", "x",
                  "--dry-run", "--json")  # fmt: skip
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["method"] == "POST" and doc["url"] == f"{sandbox.url}/messages"
    assert doc["headers"][signing.PASSPHRASE_HEADER] == "****"
    assert json.loads(doc["body"])["message"]["text_body"] == "x"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_command_runs_and_creates_the_message(sandbox: Sandbox) -> None:
    r = ref()
    # a quote and a newline in the body: the shell quoting must survive both
    result = send(sandbox, "--to", "a@example.com", "--project", "demo", "--text-body",
                  "it's\nfine", "--id-from-submitter", r, "--curl")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert stored(sandbox, r) == []  # printing it sent nothing
    proc = subprocess.run(["sh", "-c", result.stdout], capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)["data"]
    assert data["text_body"] == "it's\nfine"
    assert [m["id"] for m in stored(sandbox, r)] == [data["id"]]


def test_exit_3_wrong_secret(sandbox: Sandbox) -> None:
    result = send(sandbox, "--to", "a@example.com", "--project", "demo", "--text-body", "x",
                  env={"OUTKIT_ACCESS_SECRET": "not-the-secret"})  # fmt: skip
    assert result.exit_code == 3
    assert result.stderr.startswith("error: authentication failed: ")
    assert "HTTP 401" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_exit_3_no_credentials() -> None:
    result = run("send", "--to", "a@example.com", "--project", "demo", "--text-body", "x")
    assert result.exit_code == 3
    assert "no credentials" in result.stderr


def test_exit_5_unknown_template(sandbox: Sandbox) -> None:
    result = send(sandbox, "--template", "no-such-template", "--to", "a@example.com",
                  "--project", "demo")  # fmt: skip
    assert result.exit_code == 5
    assert "rejected" in result.stderr and "HTTP 422" in result.stderr
    assert "no-such-template" in result.stderr


def test_exit_9_template_fails_to_render(sandbox: Sandbox) -> None:
    bad = "{{#if x}}unclosed"
    result = send(sandbox, "--to", "a@example.com", "--project", "demo", "--subject", "s",
                  "--html-template", bad, "--wait", "--field", "status")  # fmt: skip
    assert result.exit_code == 9
    assert result.stdout == "render_error\n"  # the final state is still printed
    assert re.match(r"error: message \S+ ended in render_error: \S", result.stderr)


def test_exit_10_latency_beyond_wait_timeout(start_sandbox) -> None:
    box = start_sandbox(latency=700)
    result = send(box, "--to", "a@example.com", "--project", "demo", "--text-body", "x",
                  "--wait", "--wait-timeout", "0.3", "-q")  # fmt: skip
    assert result.exit_code == 10
    message_id = result.stdout.strip()
    assert UUID_RE.match(message_id)
    assert f"message {message_id} not done after 0.3 s" in result.stderr


def test_exit_6_rate_limited_and_retries_that_succeed(start_sandbox) -> None:
    box = start_sandbox(rate_limit=1)
    args = ("--to", "a@example.com", "--project", "demo", "--text-body", "x")
    # use up this second's allowance, then ask again at once without retries
    codes = []
    for _ in range(4):
        result = send(box, *args, "--retries", "0")
        codes.append(result.exit_code)
        if result.exit_code == 6:
            break
    assert codes[-1] == 6, codes
    assert "rate limited" in result.stderr and "HTTP 429" in result.stderr

    # the same situation with retries: Retry-After is honoured and the message goes through
    r = ref()
    box.request("GET", "/messages?limit=1")
    result = run("-v", "send", *args, "--retries", "3", "--id-from-submitter", r, "-q",
                 env=box.env())  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "retrying in" in result.stderr and "HTTP 429" in result.stderr
    assert [m["id"] for m in stored(box, r)] == [result.stdout.strip()]


def test_exit_8_server_errors_to_a_post_are_not_retried(start_sandbox) -> None:
    """A 5xx to a POST may come after the message was stored (a gateway's 502/504): it is
    not sent again; exit 8, maybe sent, with how to check (docs/network.md)."""
    box = start_sandbox(fail_rate=1.0)
    args = ("--to", "a@example.com", "--project", "demo", "--text-body", "x")
    result = send(box, *args, "--retries", "3", "--id-from-submitter", "ref-503")
    assert result.exit_code == 8
    assert "server error" in result.stderr and "HTTP 503" in result.stderr
    assert "may have been created" in result.stderr
    assert "outkit get --id-from-submitter ref-503" in result.stderr
    # one attempt (the sandbox may write its log line just after answering: wait for it)
    deadline = time.monotonic() + 3
    while not re.findall(r"^POST /v1/messages 503", box.log(), re.M):
        assert time.monotonic() < deadline, box.log()
        time.sleep(0.05)
    assert len(re.findall(r"^POST /v1/messages 503", box.log(), re.M)) == 1
    # a GET answered 503 is retried
    result = run("get", "m-1", "--retries", "1", env=box.env())
    assert result.exit_code == 7
    assert "gave up after 2 attempts" in result.stderr


def test_exit_8_closed_port(free_port: int) -> None:
    url = f"http://127.0.0.1:{free_port}/v1"
    env = {"OUTKIT_API_URL": url, "OUTKIT_ACCESS_KEY": "k", "OUTKIT_ACCESS_PASSPHRASE": "p",
           "OUTKIT_ACCESS_SECRET": "s"}  # fmt: skip
    result = run("send", "--to", "a@example.com", "--project", "demo", "--text-body", "x",
                 "--retries", "1", env=env)  # fmt: skip
    assert result.exit_code == 8
    assert f"cannot connect to 127.0.0.1:{free_port}" in result.stderr
    assert "refused" in result.stderr.lower()
    assert "gave up after 2 attempts" in result.stderr


def test_exit_2_plain_http_to_a_remote_host() -> None:
    env = {"OUTKIT_ACCESS_KEY": "k", "OUTKIT_ACCESS_PASSPHRASE": "p", "OUTKIT_ACCESS_SECRET": "s"}
    result = run("--api-url", "http://api.outkit.example/v1", "send", "--to", "a@example.com",
                 "--project", "demo", "--text-body", "x", env=env)  # fmt: skip
    assert result.exit_code == 2
    assert "refusing plain http://" in result.stderr


def test_secret_never_in_any_output_even_verbose(sandbox: Sandbox) -> None:
    outputs = []
    base = ("--to", "a@example.com", "--project", "demo", "--text-template", "Hi {{name}}")
    for args in (
        ("-v", "send", *base, "--wait"),
        ("-v", "send", *base, "--dry-run"),
        ("-v", "send", *base, "--dry-run", "--json"),
        ("-v", "send", *base, "--curl"),
        ("-v", "get", "--limit", "3"),
        ("-v", "get", "--limit", "1", "--json"),
        ("-v", "get", "no-such-id"),
    ):
        result = run(*args, env=sandbox.env())
        outputs.append(result.output)
    result = run("-v", "send", *base, env={**sandbox.env(), "OUTKIT_ACCESS_SECRET": "wrong-one"})
    assert result.exit_code == 3
    outputs.append(result.output)
    for i, text in enumerate(outputs):
        assert sandbox.secret not in text
        assert "wrong-one" not in text
        if i != 3:  # only --curl shows the real passphrase: it must be runnable
            assert sandbox.passphrase not in text
    # the verbose request log is there, with the passphrase masked
    assert "debug: > Outkit-Access-Passphrase: ****" in outputs[0]


def test_wait_spinner_only_when_stderr_is_a_terminal(sandbox: Sandbox) -> None:
    """stderr on a terminal gets the spinner; stdout (a pipe) only the fields."""
    from outkit_cli.terminal import Terminal, use

    args = ("send", "--to", "a@example.com", "--project", "demo", "--text-template", "Hi",
            "--wait", "--field", "status")  # fmt: skip
    with use(Terminal(stdout_tty=False, stderr_tty=True)):
        shown = run(*args, env=sandbox.env())
    assert shown.exit_code == 0, shown.stderr
    assert shown.stdout == "delivered\n"
    assert "waiting for " in shown.stderr
    piped = run(*args, env=sandbox.env())
    assert piped.exit_code == 0, piped.stderr
    assert piped.stdout == "delivered\n" and "waiting for " not in piped.stderr


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_unsigned_key_send_and_curl(sandbox: Sandbox, config_file: Path) -> None:
    """A key that opted out of signing sends its secret; --curl then contains it (warned)."""
    save_profile(
        config_file,
        "unsigned",
        {"key": sandbox.unsigned_key, "passphrase": sandbox.unsigned_passphrase,
         "secret": sandbox.unsigned_secret, "signed": False, "api_url": sandbox.url,
         "project": "demo"},
    )  # fmt: skip
    sent = run("send", "--to", "u@example.com", "--text-body", "x", "--field", "status")
    assert sent.exit_code == 0, sent.stderr
    curl = run("send", "--to", "u@example.com", "--text-body", "x", "--curl")
    assert curl.exit_code == 0
    assert f"Outkit-Access-Secret: {sandbox.unsigned_secret}" in curl.stdout
    assert "Outkit-Access-Signature" not in curl.stdout
    assert "contains the key's secret" in curl.stderr
    proc = subprocess.run(["sh", "-c", curl.stdout], capture_output=True, timeout=30)
    assert json.loads(proc.stdout)["data"]["to"] == "u@example.com"


def test_poll_delays_grow_from_a_fifth_of_a_second_to_two_seconds() -> None:
    from itertools import islice, pairwise

    from outkit_cli.waiting import poll_delays

    delays = list(islice(poll_delays(), 10))
    assert delays[0] == 0.2
    assert all(b >= a for a, b in pairwise(delays))
    assert delays[-1] == 2.0 and max(delays) == 2.0


def test_ctrl_c_while_waiting_names_the_created_message(start_sandbox) -> None:
    """Ctrl-C during --wait stops the waiting, not the message: the id still reaches stdout
    and stderr says how to follow it (it used to vanish with the spinner line)."""
    import os
    import signal
    import sys

    box = start_sandbox(latency=3_000)  # every answer 3 s late: the waiting goes on
    proc = subprocess.Popen(
        [sys.executable, "-m", "outkit_cli", "-v", "send", "--to", "a@example.com",
         "--project", "demo", "--text-body", "x", "--wait", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **box.env()},
    )  # fmt: skip
    assert proc.stderr is not None
    seen = []
    try:
        for line in iter(proc.stderr.readline, b""):
            seen.append(line.decode())
            if line.startswith(b"debug: > GET "):  # the POST was answered: now waiting
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    message_id = out.decode().strip()
    assert proc.returncode == 130, "".join(seen) + err.decode()
    assert UUID_RE.match(message_id)
    assert (
        f"interrupted while waiting: message {message_id} was created; follow it with: "
        f"outkit get {message_id} --wait"
    ) in err.decode()
    assert "Traceback" not in err.decode()


@pytest.mark.parametrize("ref", ["ord-11", None])
def test_ctrl_c_while_the_post_is_in_flight_says_it_may_have_been_sent(
    start_sandbox, ref: str | None
) -> None:
    """Ctrl-C while the API has the POST: the message may exist. Say how to check, like
    every other "maybe sent" path (newcomer trial: a bare "Aborted.")."""
    import os
    import signal
    import sys

    box = start_sandbox(latency=3_000)
    extra = ["--id-from-submitter", ref] if ref else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "outkit_cli", "-v", "send", "--to", "a@example.com",
         "--project", "demo", "--text-body", "x", "-q", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **box.env()},
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        for line in iter(proc.stderr.readline, b""):
            if line.startswith(b"debug: > POST "):
                break
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.decode()
    assert proc.returncode == 130, text
    assert "interrupted while sending: the message may have been created" in text
    if ref:
        assert "look for it with: outkit get --id-from-submitter ord-11" in text
    else:
        assert "set --id-from-submitter next time" in text
    assert "Aborted" not in text and "Traceback" not in text and out == b""
