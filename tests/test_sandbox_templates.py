"""Templates: the syntax check, rendering, and a user's --templates directory."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outkit_cli.sandbox.errors import RenderError
from outkit_cli.sandbox.render import Renderer
from outkit_cli.sandbox.templates import Catalog, builtin_dir, find_template
from tests.sandbox_fixture import Sandbox
from tests.test_sandbox_api import error, post

Start = Callable[..., Sandbox]
RENDERER = Renderer()


@pytest.mark.parametrize(
    "source",
    [
        "plain", "{{name}}", "{{{raw}}}", "{{!-- a }} comment --}}", "{{! note }}",
        "{{#if a}}x{{else}}y{{/if}}", "{{#each xs}}{{#with this}}{{b}}{{/with}}{{/each}}",
        "{{~#if a~}} x {{~/if~}}", "{{^xs}}none{{/xs}}", "\\{{literal",
        "{{{{raw}}}}{{x{{{{/raw}}}}",
    ],
)  # fmt: skip
def test_valid_templates_render(source: str) -> None:
    assert isinstance(RENDERER.render(source, {}, html=True, what="t"), str)


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        ("{{#if x}}unclosed", "'{{#if x}}' at line 1 is never closed"),
        ("a\n{{#each x}}{{/if}}", "'{{#each x}}' at line 2 is closed by '{{/if}}' at line 2"),
        ("{{/if}}", "'{{/if}}' at line 1 closes no open block"),
        ("x {{name", "unclosed '{{' at line 1"),
        ("{{a}} {{ b\n}} {{c", "unclosed '{{' at line 2"),
        ("a\nb {{!-- never closed", "comment '{{!--' at line 2 is never closed"),
        ("{{else}}", "'{{else}}' at line 1 is outside a block"),
        ("\n\n{{a.[b}} x", "'{{a.[b}}' at line 3: unclosed path"),
        # pybars3 delivered '<p>Hello ' for this one (issue 9)
        ('<p>Hello {{lookup name "x}}</p><p>Bye</p>', "'{{lookup name \"x}}' at line 1"),
        ("{{#if a}}" * 101 + "{{/if}}" * 101, "at line 1 nests blocks deeper than 100"),
    ],
)
def test_templates_that_do_not_parse_name_the_tag_and_line(source: str, needle: str) -> None:
    with pytest.raises(RenderError, match=r"^t: ") as info:
        RENDERER.render(source, {"x": 1, "name": "N"}, html=True, what="t")
    assert needle in str(info.value)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="{}#/^!ab ~\n-", max_size=30))
def test_any_text_renders_or_raises_render_error(source: str) -> None:
    # a template can fail, but only ever as RenderError (render_error), never as a crash
    try:
        out = RENDERER.render(source, {"a": True, "b": [1, 2]}, html=True, what="t")
    except RenderError:
        return
    assert isinstance(out, str)


def test_missing_names_render_empty_even_when_they_are_dict_methods() -> None:
    out = RENDERER.render("[{{items}}][{{#each keys}}k{{/each}}][{{get}}]", {}, html=True, what="t")
    assert out == "[][][]"


def test_text_parts_are_not_html_escaped_but_html_parts_are() -> None:
    data = {"n": "<a & 'b'>", "xs": ["<i>"], "o": {"p": "&"}}
    src = "{{n}} {{#each xs}}{{this}}{{/each}} {{o.p}}"
    assert RENDERER.render(src, data, html=False, what="t") == "<a & 'b'> <i> &"
    assert RENDERER.render(src, data, html=True, what="t") == (
        "&lt;a &amp; &#x27;b&#x27;&gt; &lt;i&gt; &amp;"
    )


def test_shipped_demo_project() -> None:
    demo = Catalog(builtin_dir()).find_project("demo", None)
    assert demo is not None and demo.error is None
    welcome = find_template(demo, "welcome", None)
    reminder = find_template(demo, "reminder", None)
    assert welcome and welcome.type == "email" and welcome.html and welcome.text and welcome.css
    assert welcome.subject and welcome.from_ and "{{#if name}}" in welcome.html
    assert reminder and reminder.type == "sms" and reminder.text and not reminder.html
    assert find_template(demo, None, welcome.id) is welcome


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_user_templates_add_override_and_reload(start_sandbox: Start, tmp_path: Path) -> None:
    tdir = tmp_path / "templates"
    _write(tdir / "acme" / "project.json", json.dumps({"from": "Acme <hi@acme.test>",
                                                        "data": {"co": "Acme"}}))  # fmt: skip
    _write(tdir / "acme" / "hello.html", "<h1>Hello {{name}} from {{co}}</h1>")
    _write(tdir / "acme" / "hello.txt", "Hello {{name}} from {{co}}")
    _write(tdir / "acme" / "hello.json", json.dumps({"subject": "Hi {{name}}",
                                                      "data": {"name": "friend"}}))  # fmt: skip
    _write(tdir / "acme" / "ping.txt", "ping {{n}}")
    _write(tdir / "acme" / "ping.json", json.dumps({"type": "sms", "from": "ACME"}))
    _write(tdir / "demo" / "welcome.txt", "my own welcome, {{name}}")
    sb = start_sandbox(templates=tdir)

    _, doc = post(sb, {"type": "email", "to": "a@example.com", "project": "acme",
                       "template": "hello", "sync": True})  # fmt: skip
    msg = doc["data"]
    assert msg["status"] == "delivered", msg["status_message"]
    assert msg["subject"] == "Hi friend" and msg["from"] == "Acme <hi@acme.test>"
    assert msg["text_body"] == "Hello friend from Acme"
    assert "<h1>Hello friend from Acme</h1>" in msg["html_body"]

    _, doc = post(sb, {"type": "sms", "to": "+1", "project": "acme", "template": "ping",
                       "data": {"n": 7}, "sync": True})  # fmt: skip
    assert doc["data"]["text_body"] == "ping 7" and doc["data"]["from"] == "ACME"

    # the user's demo/welcome replaces the shipped one wholesale (text only now)
    _, doc = post(sb, {"type": "email", "to": "a@example.com", "project": "demo",
                       "template": "welcome", "data": {"name": "Bo"}, "sync": True})  # fmt: skip
    assert doc["data"]["text_body"] == "my own welcome, Bo" and doc["data"]["html_body"] is None
    # ...and the shipped reminder is still there
    _, doc = post(sb, {"type": "sms", "to": "+1", "project": "demo", "template": "reminder",
                       "sync": True})  # fmt: skip
    assert doc["data"]["status"] == "delivered"

    # edits are picked up without a restart, new templates too
    path = tdir / "acme" / "hello.txt"
    _write(path, "Changed text for {{name}}!")
    os.utime(path, ns=(1, path.stat().st_mtime_ns + 10**9))
    _write(tdir / "acme" / "later.txt", "later {{co}}")
    _, doc = post(sb, {"type": "email", "to": "a@example.com", "project": "acme",
                       "template": "hello", "sync": True})  # fmt: skip
    assert doc["data"]["text_body"] == "Changed text for friend!"
    _, doc = post(sb, {"type": "email", "to": "a@example.com", "project": "acme",
                       "template": "later", "sync": True})  # fmt: skip
    assert doc["data"]["text_body"] == "later Acme"

    status, doc = post(sb, {"type": "email", "to": "a@example.com", "project": "acme",
                            "template": "nope"})  # fmt: skip
    assert status == 422 and error(doc)[0] == "config_issue" and "hello" in error(doc)[1]


def test_broken_user_template_files_end_in_render_error(
    start_sandbox: Start, tmp_path: Path
) -> None:
    tdir = tmp_path / "templates"
    _write(tdir / "mine" / "bad.txt", "fine {{x}}")
    _write(tdir / "mine" / "bad.json", "{not json")
    _write(tdir / "mine" / "open.txt", "{{#each xs}}never closed")
    sb = start_sandbox(templates=tdir)
    _, doc = post(sb, {"type": "email", "to": "a@example.com", "project": "mine",
                       "template": "bad", "sync": True})  # fmt: skip
    assert doc["data"]["status"] == "render_error"
    assert "bad.json" in doc["data"]["status_message"]
    _, doc = post(sb, {"type": "email", "to": "a@example.com", "project": "mine",
                       "template": "open", "sync": True})  # fmt: skip
    assert doc["data"]["status"] == "render_error"
    assert doc["data"]["status_message"] == (
        "mine/open.txt: '{{#each xs}}' at line 1 is never closed (add '{{/each}}')"
    )


def test_parsed_template_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from outkit_cli.sandbox import render

    monkeypatch.setattr(render, "_CACHE_SIZE", 4)
    renderer = Renderer()
    for i in range(20):
        assert renderer.render(f"n{i} {{{{a}}}}", {"a": 1}, html=True, what="t") == f"n{i} 1"
    assert len(renderer._cache) == 4


def test_template_files_resolving_outside_the_directory_are_refused(
    start_sandbox: Start, tmp_path: Path
) -> None:
    secret = tmp_path / "config.toml"
    secret.write_text('[profiles.live]\naccess_secret = "s3cret-value"\n')
    tdir = tmp_path / "templates"
    _write(tdir / "demo" / "inside.txt", "shared {{name}}")
    (tdir / "demo" / "leak.txt").symlink_to(secret)  # issue 9: served the config
    (tdir / "demo" / "alias.txt").symlink_to(tdir / "demo" / "inside.txt")  # stays inside
    outside = tmp_path / "elsewhere"
    _write(outside / "hello.txt", "from outside")
    _write(outside / "project.json", '{"data": {"x": 1}}')
    (tdir / "linked").symlink_to(outside, target_is_directory=True)
    _write(tdir / "demo" / "huge.txt", "x" * (512 * 1024 + 1))
    sb = start_sandbox(templates=tdir)

    def send(project: str, template: str) -> dict[str, Any]:
        _, doc = post(sb, {"type": "email", "to": "a@example.com", "project": project,
                           "template": template, "sync": True})  # fmt: skip
        return doc["data"]

    msg = send("demo", "leak")
    assert msg["status"] == "render_error" and msg["text_body"] is None
    assert "leak.txt resolves outside the templates directory: refused" in msg["status_message"]
    assert "s3cret" not in json.dumps(msg)
    msg = send("linked", "hello")
    assert msg["status"] == "render_error"
    assert "project.json resolves outside the templates directory" in msg["status_message"]
    assert send("demo", "alias")["text_body"] == "shared "
    msg = send("demo", "huge")
    assert msg["status"] == "render_error"
    assert "huge.txt is over the limit of 524,288 bytes (512 KiB)" in msg["status_message"]


INJECTED = "Evil <a@b.test>\r\nBcc: victim@x.test"


@pytest.mark.parametrize(
    ("files", "named", "problem"),
    [
        ({"project.json": {"from": INJECTED}}, "evil/project.json", "line break"),
        ({"project.json": {"from": "Evil <a@b.test>\x1b[2J"}}, "evil/project.json",
         "control character"),
        ({"project.json": {"from": ["a@b.test"]}}, "evil/project.json", "must be a string"),
        ({"hello.json": {"from": INJECTED}}, "evil/hello.json", "line break"),
        ({"hello.json": {"from": "x" * 300 + "@b.test"}}, "evil/hello.json", "254"),
        ({"hello.json": {"subject": "Hi\x1b]0;PWN\x07"}}, "evil/hello.json",
         "control character"),
    ],
)  # fmt: skip
def test_a_sender_from_a_file_passes_the_message_fields_checks(
    start_sandbox: Start, tmp_path: Path, files: dict[str, Any], named: str, problem: str
) -> None:
    """A project's or template's `from` (a template's `subject`) gets the checks a
    message's own field gets (which
    answers 422): a CRLF in project.json's from put a second address (Bcc) into the
    delivered email (attacker trial). Here its messages end in render_error naming the
    file and the field, and nothing is delivered."""
    tdir = tmp_path / "templates"
    _write(tdir / "evil" / "hello.txt", "hello")
    for name, content in files.items():
        _write(tdir / "evil" / name, json.dumps(content))
    sb = start_sandbox(templates=tdir)
    status, doc = post(sb, {"type": "email", "to": "a@example.com", "project": "evil",
                            "template": "hello", "sync": True})  # fmt: skip
    assert status == 200, doc
    msg = doc["data"]
    assert msg["status"] == "render_error"
    field = '"subject"' if "subject" in json.dumps(files) else '"from"'
    assert named in msg["status_message"] and field in msg["status_message"]
    assert problem in msg["status_message"]
    assert msg["from"] != INJECTED
    assert not list(sb.outbox().rglob("*.eml"))
    # the same value in the message itself: 422
    status, doc = post(sb, {"type": "email", "to": "a@example.com", "project": "demo",
                            "template": "welcome", "from": INJECTED})  # fmt: skip
    assert status == 422 and "line break" in error(doc)[1]
