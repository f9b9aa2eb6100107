"""`outkit send --attach`, `send --batch` with an attachments column, `sign --multipart`."""

from __future__ import annotations

import email
import email.policy
import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import run
from tests.sandbox_fixture import Sandbox
from tests.test_send import ref, stored
from tests.test_send import send as _send


def send(box: Sandbox, *args: str) -> object:
    return _send(box, "--project", "demo", *args)


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "logo.png").write_bytes(PNG)
    (tmp_path / "Grüße 2026.txt").write_text("Frohes neues Jahr", "utf-8")
    (tmp_path / "data.weird").write_bytes(b"\x00\x01")
    return tmp_path


def _eml(msg: dict) -> email.message.EmailMessage:
    with open(msg["backend_response"]["path"], "rb") as fh:
        return email.message_from_bytes(fh.read(), policy=email.policy.default)  # type: ignore[return-value]


def test_send_attach_delivers_files_with_names_and_types(sandbox: Sandbox, files: Path) -> None:
    result = send(
        sandbox, "--to", "ada@example.com", "--subject", "files", "--text-body", "see",
        "--attach", str(files / "Grüße 2026.txt"),
        "--attach", f"{files / 'data.weird'};type=application/x-thing",
        "--sync", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    msg = json.loads(result.stdout)
    assert msg["status"] == "delivered"
    assert [(a["filename"], a["content_type"], a["size"]) for a in msg["attachments"]] == [
        ("Grüße 2026.txt", "text/plain", 17),
        ("data.weird", "application/x-thing", 2),
    ]
    parsed = _eml(msg)
    got = [(p.get_filename(), p.get_content_type()) for p in parsed.iter_attachments()]
    assert got == [("Grüße 2026.txt", "text/plain"), ("data.weird", "application/x-thing")]


def test_send_attach_inline_is_referable_by_cid(sandbox: Sandbox, files: Path) -> None:
    result = send(
        sandbox, "--to", "ada@example.com", "--subject", "logo", "--text-body", "logo",
        "--html-body", '<p><img src="cid:logo.png"></p>', "--attach", str(files / "logo.png"),
        "--inline", "--sync", "--json",
    )  # fmt: skip
    msg = json.loads(result.stdout)
    assert msg["attachments"][0]["disposition"] == "inline"
    image = next(p for p in _eml(msg).walk() if p.get_content_type() == "image/png")
    assert image["Content-ID"] == "<logo.png>" and image.get_content() == PNG


def test_dry_run_shows_the_multipart_request_with_files_summarised(
    sandbox: Sandbox, files: Path
) -> None:
    mark = ref()
    result = send(
        sandbox, "--to", "ada@example.com", "--text-body", "x", "--id-from-submitter", mark,
        "--attach", str(files / "logo.png"), "--dry-run",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "Content-Type: multipart/form-data; boundary=" in out
    assert 'name="message"' in out and 'name="disposition"' in out
    assert 'name="attachments[]"; filename="logo.png"' in out
    assert f"[{len(PNG)} bytes from {files / 'logo.png'}]" in out
    assert "PNG" not in out.split("filename=")[1]  # the bytes themselves are not printed
    assert stored(sandbox, mark) == []  # nothing was sent


@pytest.mark.skipif(subprocess.run(["which", "curl"], capture_output=True).returncode != 0,
                    reason="needs curl")  # fmt: skip
def test_curl_sends_the_same_parts_and_is_accepted(sandbox: Sandbox, files: Path) -> None:
    mark = ref()
    result = send(
        sandbox, "--to", "ada@example.com", "--text-body", "x", "--id-from-submitter", mark,
        "--attach", str(files / "Grüße 2026.txt"), "--curl",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    out = subprocess.run(["sh", "-c", result.stdout], capture_output=True, timeout=60)
    msg = json.loads(out.stdout)["data"]
    assert [a["filename"] for a in msg["attachments"]] == ["Grüße 2026.txt"]
    assert stored(sandbox, mark)[0]["id"] == msg["id"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--attach", "/nonexistent/x.pdf"], "cannot read --attach /nonexistent/x.pdf"),
        (["--attach", "."], "is a directory"),
        (["--attach", "/dev/zero"], "is not a regular file"),
        (["--attach", "x.pdf;type=not a type"], "MIME type"),
        (["--inline"], "--inline goes with --attach"),
    ],
)
def test_bad_attach_values_are_usage_errors(sandbox: Sandbox, args: list[str], needle: str) -> None:
    result = send(sandbox, "--to", "ada@example.com", "--text-body", "x", *args)
    assert result.exit_code == 2 and needle in result.stderr
    assert "Traceback" not in result.output


def test_batch_attachments_column_relative_to_the_input_file(
    sandbox: Sandbox, files: Path, tmp_path: Path
) -> None:
    mark = ref()
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "in").mkdir()
    (batch / "in" / "logo.png").write_bytes(PNG)
    (batch / "in" / "Grüße.txt").write_text("hei", "utf-8")
    (batch / "in" / "link.png").symlink_to(files / "logo.png")  # points out of the directory
    rows = batch / "rows.csv"
    rows.write_text(
        "to,subject,id_from_submitter,attachments\n"
        f"a@example.com,one,{mark}-1,in/logo.png;in/Grüße.txt\n"
        f"b@example.com,two,{mark}-2,\n"
        f"c@example.com,three,{mark}-3,../logo.png\n"
        f"d@example.com,four,{mark}-4,{files / 'logo.png'}\n"
        f"e@example.com,five,{mark}-5,in/missing.pdf\n"
        f"f@example.com,six,{mark}-6,in/link.png\n",
        "utf-8",
    )
    result = send(sandbox, "--batch", str(rows), "--text-body", "x", "--no-auto-id")
    lines = {row["row"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert lines[2]["status"] == "accepted" and lines[3]["status"] == "accepted"
    assert (
        lines[4]["status"] == "invalid"
        and "outside the input file's directory" in (lines[4]["error"])
    )
    assert lines[5]["status"] == "invalid" and "outside" in lines[5]["error"]
    assert (
        lines[6]["status"] == "invalid"
        and "cannot read in/missing.pdf: No such file" in (lines[6]["error"])
    )
    assert lines[7]["status"] == "invalid" and "symbolic link" in lines[7]["error"]
    (first,) = stored(sandbox, f"{mark}-1")
    assert [a["filename"] for a in first["attachments"]] == ["logo.png", "Grüße.txt"]
    (second,) = stored(sandbox, f"{mark}-2")
    assert second["attachments"] == []


def test_batch_jsonl_attachments_as_a_list(sandbox: Sandbox, tmp_path: Path) -> None:
    mark = ref()
    (tmp_path / "a.txt").write_text("a")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"to": "a@example.com", "id_from_submitter": mark,
                                "attachments": ["a.txt"]}) + "\n")  # fmt: skip
    result = send(sandbox, "--batch", str(rows), "--text-body", "x", "--no-auto-id")
    assert result.exit_code == 0, result.output
    (msg,) = stored(sandbox, mark)
    assert msg["attachments"][0]["filename"] == "a.txt"


def test_attach_with_batch_is_a_usage_error(sandbox: Sandbox, files: Path, tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("to\na@example.com\n")
    result = send(sandbox, "--batch", str(rows), "--text-body", "x", "--attach", str(files))
    assert result.exit_code == 2 and "attachments column" in result.stderr


def test_sign_multipart_signs_the_message_part(sandbox: Sandbox) -> None:
    body = '{"type":"email","project":"demo","to":"a@example.com","text_body":"x"}'
    result = run("sign", "POST", "/v1/messages", "--multipart", "--body", body,
                 "--timestamp", "1496837645", "--secret", "s3cret", "--json")  # fmt: skip
    record = json.loads(result.stdout)
    from outkit_cli import signing

    assert record["presignature"] == "1496837645POST/v1/messages" + body
    assert record["signature"] == signing.sign("s3cret", "1496837645", "POST", "/v1/messages",
                                               body.encode())  # fmt: skip
    human = run("sign", "POST", "/v1/messages", "--multipart", "--body", body, "--secret", "s")
    assert "`message` part" in human.stdout and "files are not covered" in human.stdout
    curl = run("sign", "POST", "/v1/messages", "--multipart", "--body", body, "--curl",
               env=sandbox.env())  # fmt: skip
    assert "--form-string 'message=" in curl.stdout and "--data-raw" not in curl.stdout
