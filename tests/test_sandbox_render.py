"""Rendering as Handlebars.js renders, and templates that are data, never code (issue 9)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from outkit_cli.sandbox.errors import RenderError
from outkit_cli.sandbox.render import Renderer
from tests.helpers import run
from tests.sandbox_fixture import Sandbox
from tests.test_sandbox_api import post

RENDERER = Renderer()


def html(source: str, **data: Any) -> str:
    return RENDERER.render(source, data, html=True, what="t")


def text(source: str, **data: Any) -> str:
    return RENDERER.render(source, data, html=False, what="t")


# What Handlebars.js 4.7 prints for each (checked against it by hand and by the engine's
# own conformance suite): the README's promises plus the value rules of issue 9.
@pytest.mark.parametrize(
    ("source", "data", "expected"),
    [
        ("Hi {{name}}", {"name": "<b>&\"'`="}, "Hi &lt;b&gt;&amp;&quot;&#x27;&#x60;&#x3D;"),
        ("{{{name}}}|{{&name}}", {"name": "<b>"}, "<b>|<b>"),
        ("{{list}}", {"list": ["a&b", "c"]}, "a&amp;b,c"),
        ("{{obj}}", {"obj": {"a": 1}}, "[object Object]"),
        ("{{a}} {{b}} {{c}} [{{d}}] {{e}} {{f}}",
         {"a": 1.0, "b": 1.5, "c": True, "d": None, "e": 0, "f": False}, "1 1.5 true [] 0 false"),
        ("{{#each items}}{{@index}}:{{this}} {{/each}}", {"items": ["x", "y"]}, "0:x 1:y "),
        ("{{#each items}}{{../t}}{{.}};{{/each}}", {"items": ["x", "y"], "t": "T"}, "Tx;Ty;"),
        ("{{#each o}}{{@key}}={{this}},{{/each}}", {"o": {"a": 1, "b": 2}}, "a=1,b=2,"),
        ("{{#each i}}{{#if @first}}F{{/if}}{{this}}{{#if @last}}L{{/if}}{{/each}}",
         {"i": [1, 2, 3]}, "F123L"),
        ("{{#each i}}x{{else}}none{{/each}}", {"i": []}, "none"),
        ("{{#if a}}A{{else}}B{{/if}}{{#unless a}}U{{/unless}}", {"a": 0}, "BU"),
        ("{{#if a}}A{{else if b}}B{{else}}C{{/if}}", {"b": 1}, "B"),
        ("{{#with p}}{{name}}/{{../x}}{{/with}}{{#with q}}y{{else}}none{{/with}}",
         {"p": {"name": "N"}, "x": "X"}, "N/Xnone"),
        ("a{{! c }}b{{!-- }} --}}c", {}, "abc"),
        ("{{#if a}}\nx\n{{/if}}\ny", {"a": 1}, "x\ny"),
        ("a  {{~name~}}  b", {"name": "N"}, "aNb"),
        ("\\{{name}}", {"name": "N"}, "{{name}}"),
        ("{{a.b.c}} {{a/b/c}} {{a.[b].c}} {{items.[1]}}",
         {"a": {"b": {"c": "C"}}, "items": ["x", "y"]}, "C C C y"),
        ("{{lookup o k}}{{#if (lookup o k)}}!{{/if}}", {"o": {"z": "Z"}, "k": "z"}, "Z!"),
        ("[{{nope}}][{{a.b.c}}]", {}, "[][]"),
        ("{{#each i}}{{@root.t}}{{/each}}", {"i": [1], "t": "R"}, "R"),
        ("{{#each i as |v k|}}{{k}}{{v}}{{/each}}", {"i": ["a"]}, "0a"),
        ("{{log 'to the console'}}x", {}, "x"),
    ],
)  # fmt: skip
def test_renders_like_handlebars_js(source: str, data: dict[str, Any], expected: str) -> None:
    assert html(source, **data) == expected


def test_text_parts_are_not_escaped_and_values_are_never_python_reprs() -> None:
    data = {"n": "<a & 'b'>", "xs": ["<i>", "j"], "o": {"p": "&"}, "t": True, "f": 2.0}
    src = "{{n}} {{xs}} {{o}} {{o.p}} {{t}} {{f}}"
    assert RENDERER.render(src, data, html=False, what="t") == (
        "<a & 'b'> <i>,j [object Object] & true 2"
    )
    assert "['" not in html("{{xs}}", xs=["a&b"])  # pybars3 gave [&#x27;a&amp;b&#x27;]


RCE = [
    # the issue's payload: pybars3 pasted a [...] segment into Python source and ran it
    "Hi {{x.[a', __import__('os').system('touch {mark}'), u'b]}} done",
    "{{x.[a\\', __import__(\\'os\\').system(\\'touch {mark}\\'), u\\'b]}}",
    "{{#each x.[a', __import__('os').system('touch {mark}'), u'b]}}y{{/each}}",
    "{{lookup x \"a', __import__('os').system('touch {mark}'), u'b\"}}",
    "{{> (lookup x \"__import__('os').system('touch {mark}')\")}}",
    "{{#with x}}{{[', __import__('os').system('touch {mark}'), ']}}{{/with}}",
    # Handlebars.js's own RCE gadget chains (handlebars.js issues 1267, 1495, 1595), in
    # Python terms: there are no methods or constructors to reach, only keys
    "{{#with 'touch {mark}|'}}{{#with (split '|' 1)}}{{#> p constructor.constructor}}"
    "{{> (apply 0 ../this)}}{{/p}}{{/with}}{{/with}}",
    "{{#with (__lookupGetter__ '__proto__')}}{{#with (./constructor.getOwnPropertyDescriptor "
    "'valueOf')}}x{{/with}}{{/with}}",
    "{{#with x}}{{#with __class__.__init__.__globals__ as |g|}}{{g.os.system 'touch {mark}'}}"
    "{{/with}}{{/with}}",
]


@pytest.mark.parametrize("payload", RCE)
def test_template_text_never_runs_as_code(payload: str, tmp_path: Path) -> None:
    mark = tmp_path / "pwned"
    source = payload.format(mark=mark)
    for part in (True, False):
        with contextlib.suppress(RenderError):
            RENDERER.render(source, {"x": {"a": "A"}}, html=part, what="t")
    assert not mark.exists()


@pytest.mark.parametrize(
    "source",
    [
        "{{name.__class__}}", "{{name.__class__.__mro__}}", "{{name.[__class__]}}",
        "{{xs.__len__}}", "{{o.items}}", "{{o.keys}}", "{{o.__dict__}}", "{{name.upper}}",
        "{{#each name.__class__.__mro__}}x{{/each}}", "{{#each o.items}}x{{/each}}",
        "{{#with name.__class__}}x{{/with}}", "{{lookup name '__class__'}}",
        "{{lookup o '__class__'}}", "{{lookup (lookup name '__class__') '__name__'}}",
        "{{name.__init__.__globals__}}", "{{@root.__class__}}", "{{this.__class__}}",
        "{{name.[0]}}",
    ],
)  # fmt: skip
def test_lookups_reach_only_the_message_data(source: str) -> None:
    # every one of these reached a Python attribute under pybars3; now each is just a
    # missing key (strings and numbers have no keys; a JSON object only its own)
    assert html(source, name="s", xs=[1], o={"a": 1}) == ""


def test_data_keys_are_read_whatever_their_name() -> None:
    # data is data: an underscore or a dict method's name is an ordinary key of the message
    assert html("{{_id}} {{o.items}} {{o.__class__}}", _id=7, o={"items": 3, "__class__": "c"}) == (
        "7 3 c"
    )


def test_a_template_that_does_not_parse_never_renders_half(sandbox: Sandbox) -> None:
    # pybars3 dropped everything after the tag and the message was delivered as '<p>Hello '
    _, doc = post(sandbox, {"type": "email", "to": "a@example.com", "project": "demo",
                            "html_template_body": '<p>Hello {{lookup name "x}}</p><p>Bye</p>',
                            "data": {"name": "N"}, "sync": True})  # fmt: skip
    msg = doc["data"]
    assert msg["status"] == "render_error" and msg["html_body"] is None
    assert msg["status_message"].startswith("html_template_body: '{{lookup name \"x}}' at line 1: ")


def test_the_issues_payload_runs_nothing_through_outkit_send(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    mark = tmp_path / "pwned.txt"
    payload = f"Hi {{{{x.[a', __import__('os').system('id > {mark}'), u'b]}}}} done"
    result = run(
        "send",
        "--to",
        "a@example.com",
        "--project",
        "demo",
        "--text-template",
        payload,
        "--subject",
        payload,
        "--wait",
        "--json",
        env=sandbox.env(),
    )
    assert not mark.exists()
    assert result.exit_code == 0, result.stderr
    msg = json.loads(result.stdout)
    assert msg["status"] == "delivered"
    assert msg["text_body"] == "Hi  done" and msg["subject"] == "Hi  done"


def test_template_files_render_with_their_file_named_in_errors(
    start_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    tdir = tmp_path / "templates" / "acme"
    tdir.mkdir(parents=True)
    (tdir / "bad.html").write_text("<p>\n\n{{#each items}}\n")
    (tdir / "bad.txt").write_text("fine")
    (tdir / "subj.txt").write_text("fine")
    (tdir / "subj.json").write_text('{"subject": "Hi {{name"}')
    sb = start_sandbox(templates=tmp_path / "templates")
    _, doc = post(sb, {"type": "email", "to": "a@example.com", "project": "acme",
                       "template": "bad", "sync": True})  # fmt: skip
    assert doc["data"]["status_message"] == (
        "acme/bad.html: '{{#each items}}' at line 3 is never closed (add '{{/each}}')"
    )
    _, doc = post(sb, {"type": "email", "to": "a@example.com", "project": "acme",
                       "template": "subj", "sync": True})  # fmt: skip
    assert doc["data"]["status_message"] == "acme/subj.json subject: unclosed '{{' at line 1"


def test_pybars3_is_gone() -> None:
    import outkit_cli.sandbox.app  # noqa: F401  (imports everything rendering needs)

    assert "pybars" not in sys.modules
