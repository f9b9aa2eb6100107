"""Building and checking a message from options and files, before anything is sent."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from outkit_cli.errors import UsageError
from outkit_cli.message import (
    Stdin,
    build_message,
    parse_data_items,
    request_body,
    text_arg,
    validate_message,
)
from tests.helpers import run

BASE = {"to": "jane@example.com", "project": "demo", "template": "welcome"}
BASE_ARGS = ["--to", "jane@example.com", "--project", "demo", "--template", "welcome"]


def build(options=None, **kwargs):
    return build_message(options={**BASE, **(options or {})}, **kwargs)


def test_defaults_type_email_and_fills_profile_defaults() -> None:
    msg = build_message(
        options={"to": "a@b.c", "template": "welcome"},
        defaults={"project": "acme", "from": "Acme <s@acme.example>", "backend": "ses"},
    )
    assert msg == {
        "to": "a@b.c",
        "template": "welcome",
        "type": "email",
        "project": "acme",
        "from": "Acme <s@acme.example>",
        "backend": "ses",
    }
    validate_message(msg)


def test_profile_defaults_do_not_override_either_form_of_a_field() -> None:
    msg = build_message(
        options={"to": "+4790000000", "type": "sms", "project_id": "p1", "backend_id": "b1"},
        defaults={"project": "acme", "from": "s@acme.example", "backend": "ses"},
    )
    assert "project" not in msg and "backend" not in msg
    # the profile's email sender never lands on an SMS
    assert "from" not in msg


def test_data_items_strings_and_typed_json() -> None:
    assert parse_data_items(["name=Jane", "n:=3", "flags:=[1,true]", "eq=a=b", "x:=null"]) == {
        "name": "Jane",
        "n": 3,
        "flags": [1, True],
        "eq": "a=b",
        "x": None,
    }


@pytest.mark.parametrize(
    ("item", "fragment"),
    [("novalue", "expected key=value"), ("=v", "key is empty"), ("n:={bad", "invalid JSON")],
)
def test_bad_data_items(item: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        parse_data_items([item])


def test_precedence_options_over_message_file_over_profile(tmp_path: Path) -> None:
    f = tmp_path / "m.json"
    f.write_text(
        json.dumps(
            {
                "message": {
                    "to": "file@example.com",
                    "subject": "from file",
                    "template": "welcome",
                    "project": "fileproj",
                    "data": {"a": "file", "b": "file"},
                }
            }
        )
    )
    d = tmp_path / "d.json"
    d.write_text('{"b": "datafile", "c": "datafile"}')
    msg = build_message(
        options={"to": "flag@example.com", "sync": True},
        message_file=str(f),
        data_file=str(d),
        data_items=["c=flag"],
        defaults={"project": "profile"},
    )
    assert msg["to"] == "flag@example.com"
    assert msg["subject"] == "from file"
    assert msg["project"] == "fileproj"
    assert msg["sync"] is True
    assert msg["data"] == {"a": "file", "b": "datafile", "c": "flag"}


def test_at_path_reads_files_and_stdin_once(tmp_path: Path) -> None:
    html = tmp_path / "body.html"
    html.write_text("<p>Hi {{name}}</p>", encoding="utf-8")
    stdin = Stdin(io.StringIO("plain {{name}}"))
    msg = build_message(
        options={
            "to": "a@b.c",
            "project": "demo",
            "html_template_body": f"@{html}",
            "text_template_body": "@-",
        },
        stdin=stdin,
    )
    assert msg["html_template_body"] == "<p>Hi {{name}}</p>"
    assert msg["text_template_body"] == "plain {{name}}"
    with pytest.raises(UsageError, match="cannot both read standard input"):
        build_message(
            options={**BASE, "text_body": "@-"}, data_file="-", stdin=Stdin(io.StringIO("{}"))
        )


def test_double_at_is_a_literal_at() -> None:
    assert text_arg("@@handle", "--text-body", Stdin()) == "@handle"


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"type": "fax"}, "unknown message type 'fax'"),
        ({"to": None}, "missing recipient"),
        ({"project": None}, "missing project"),
        ({"project_id": "p"}, "--project and --project-id cannot be used together"),
        ({"template_id": "t"}, "--template and --template-id cannot be used together"),
        ({"html_body": "<p>x</p>"}, "--template and --html-body cannot be used together"),
        ({"html_template_body": "x"}, "--template and --html-template cannot be used"),
        ({"template": None}, "nothing to send"),
        ({"template": None, "html_body": "b", "text_template_body": "t"}, "cannot be used"),
        ({"template_styles": "p{}"}, "--template-styles applies only"),
        ({"type": "sms", "to": "+4790000000", "subject": "Hi"}, "sms message has no subject"),
        ({"backend": "a", "backend_id": "b"}, "--backend and --backend-id"),
    ],
)
def test_validation_names_the_problem(changes: dict, fragment: str) -> None:
    msg = {k: v for k, v in {**BASE, "type": "email", **changes}.items() if v is not None}
    with pytest.raises(UsageError, match=fragment):
        validate_message(msg)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "invalid JSON at line 1"),
        ("[1, 2]", "expected a JSON object, got an array"),
        ('{"colour": "red"}', "unknown message field 'colour'"),
        ('{"sync": "yes"}', "sync must be true or false"),
        ('{"to": 5}', "to must be a string"),
        ('{"data": [1]}', "data must be a JSON object"),
    ],
)
def test_bad_message_files(tmp_path: Path, content: str, fragment: str) -> None:
    f = tmp_path / "m.json"
    f.write_text(content)
    with pytest.raises(UsageError, match=fragment):
        build_message(options={}, message_file=str(f))


def test_unreadable_files_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        build(data_file=str(tmp_path / "missing.json"))
    with pytest.raises(UsageError, match="is a directory"):
        build(message_file=str(tmp_path))
    bad = tmp_path / "latin1.html"
    bad.write_bytes(b"caf\xe9")
    with pytest.raises(UsageError, match="not valid UTF-8"):
        build({"template": None, "html_body": f"@{bad}"})


def test_request_body_is_compact_wrapped_utf8() -> None:
    body = request_body({"to": "æøå@example.com", "type": "email"})
    assert body == '{"message":{"to":"æøå@example.com","type":"email"}}'.encode()


# The same checks through the command line: one line on stderr, exit 2, nothing sent
# (no API URL is reachable here: these fail before any request is made).
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--to", "a@b.c", "--project", "demo"], "nothing to send"),
        (["--template", "welcome", "--project", "demo"], "missing recipient"),
        (["--to", "a@b.c", "--template", "w"], "missing project"),
        (["--to", "a@b.c", "-t", "pigeon", "--template", "w", "--project", "p"], "unknown message"),
        (
            ["--to", "a@b.c", "--project", "p", "--template", "w", "--template-id", "x"],
            "cannot be used together",
        ),
        ([*BASE_ARGS, "--data", "oops"], "key=value"),
        (
            [*BASE_ARGS, "--data-file", "/nonexistent"],
            "does not exist",
        ),
        (
            [*BASE_ARGS, "--wait", "--dry-run"],
            "--wait cannot",
        ),
        ([*BASE_ARGS, "-q", "--json"], "-q/--quiet cannot"),
        ([*BASE_ARGS, "--field", "staus"], "unknown field 'staus'"),
    ],
)
def test_send_rejects_bad_input_with_exit_2(args: list[str], fragment: str) -> None:
    result = run("--api-url", "http://127.0.0.1:9/v1", "send", *args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_send_bad_json_from_stdin_message_file() -> None:
    result = run("send", "--message-file", "-", input="{oops")
    assert result.exit_code == 2
    assert "--message-file -: invalid JSON at line 1, column 2" in result.stderr


def test_null_fields_in_a_message_file_mean_not_set(tmp_path: Path) -> None:
    f = tmp_path / "m.json"
    f.write_text('{"type": null, "subject": null, "to": "a@b.c", "project": "p", "template": "w"}')
    msg = build_message(options={}, message_file=str(f))
    assert msg == {"type": "email", "to": "a@b.c", "project": "p", "template": "w"}


def test_dry_run_without_credentials_shows_the_request_unsigned() -> None:
    """Nothing is sent, so no credentials are needed (and no network is touched)."""
    result = run("send", *BASE_ARGS, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("POST https://api.outkit.io/v1/messages\n")
    assert "Outkit-Access" not in result.stdout
    assert "no credentials configured" in result.stderr
