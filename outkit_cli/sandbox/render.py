"""Handlebars rendering (dotpromptz-handlebars) and CSS inlining (css-inline).

Templates and message data are untrusted (issue 9). dotpromptz-handlebars interprets a
template: it parses the text into nodes and walks them, never generating or executing code
from it. A path step reads a key of a JSON object or an index of a JSON array, nothing else,
so `{{name.__class__}}` is simply missing. Values render as Handlebars.js renders them
(`true`, `1`, an array joined with commas, an object as `[object Object]`), HTML-escaped in
HTML parts only. A template that does not parse raises RenderError naming the part and the
line of the offending tag; nothing is ever rendered from half a template.

The sandbox calls this module only inside a render process with resource limits
(render_pool.py); `render_parts` is that process's entry point.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from outkit_cli.htmlhead import head_insertion_point
from outkit_cli.sandbox.errors import RenderError

_CACHE_SIZE = 256
# Handlebars.js's default nesting limit is the JavaScript stack; this engine's is explicit.
MAX_NESTING = 100


def _engine(html: bool) -> Any:
    from dotpromptz_handlebars import Handlebars

    engine = Handlebars(escape_html=html, max_depth=MAX_NESTING)
    # Handlebars.js `log` writes to the browser console and renders nothing; this engine's
    # would print on the server's stdout, whose first line scripts read as the URL.
    engine.register_helper("log", lambda args, options: "")
    return engine


class _Lines:
    """Line numbers of increasing offsets, counted incrementally (linear over a scan)."""

    def __init__(self, source: str) -> None:
        self.source, self.pos, self.line = source, 0, 1

    def at(self, pos: int) -> int:
        self.line += self.source.count("\n", self.pos, pos)
        self.pos = pos
        return self.line


def _shown(tag: str) -> str:
    return repr(tag if len(tag) <= 40 else tag[:37] + "...")


def locate_error(source: str, engine: Any) -> str | None:
    """Where a template that `engine` refused to parse goes wrong, for people.

    Returns "'{{tag}}' at line N ..." or None when no single tag is to blame. One linear
    pass over the tags checks the block structure; then each distinct tag is given to the
    engine alone (wrapped in its block when it opens one), so a tag the engine cannot read
    is found without re-parsing the template for every tag.
    """
    stack: list[tuple[str, int, str]] = []  # (block name, line, tag as written)
    probes: dict[str, tuple[int, str]] = {}  # probe text -> (line, tag) of its first use
    lines = _Lines(source)
    pos = 0
    while True:
        start = source.find("{{", pos)
        if start < 0:
            break
        first = start
        while first > pos and source[first - 1] == "\\":
            first -= 1
        if start - first == 1:  # \{{ is literal text (\\{{ is a backslash and a tag)
            pos = start + 2
            continue
        line = lines.at(start)
        if source.startswith("{{{{", start):  # raw block: its content is text
            end = source.find("}}}}", start + 4)
            header = source[start + 4 : end].split() if end >= 0 else []
            close = source.find("{{{{/" + header[0] + "}}}}", end) if header else -1
            if close < 0:
                return f"raw block '{{{{{{{{' at line {line} is never closed"
            pos = close + 4
            continue
        after = start + 3 if source.startswith("~", start + 2) else start + 2
        if source.startswith("!--", after):
            end = source.find("--", start + 5)
            while end >= 0 and not source.startswith(("}}", "~}}"), end + 2):
                end = source.find("--", end + 1)
            if end < 0:
                return f"comment '{{{{!--' at line {line} is never closed (add '--}}}}')"
            pos = end + (4 if source.startswith("}}", end + 2) else 5)
            continue
        triple = source.startswith("{", after)
        end = source.find("}}}" if triple else "}}", start + 2)
        if end < 0:
            return f"unclosed '{{{{' at line {line}"
        pos = end + (3 if triple else 2)
        tag = source[start:pos]
        body = tag[2:-2].strip("{}").strip().strip("~").strip()
        if body.startswith("!"):
            continue
        if body.startswith(("#", "^")):
            name = body[1:].lstrip("*>").split()[0] if body[1:].lstrip("*>").split() else ""
            if body.startswith("#*inline"):
                name = "inline"
            stack.append((name, line, tag))
            if len(stack) > MAX_NESTING:
                return f"{_shown(tag)} at line {line} nests blocks deeper than {MAX_NESTING}"
            probe = f"{tag}{{{{/{name}}}}}"
        elif body.startswith("/"):
            name = body[1:].strip()
            if not stack:
                return f"{_shown(tag)} at line {line} closes no open block"
            opened, at, opened_tag = stack.pop()
            if opened != name:
                return (
                    f"{_shown(opened_tag)} at line {at} is closed by {_shown(tag)} at line {line}"
                )
            continue
        elif body == "else" or body.startswith("else "):
            if not stack:
                return f"{_shown(tag)} at line {line} is outside a block"
            probe = f"{{{{#if x}}}}{tag}{{{{/if}}}}"
        else:
            probe = tag
        probes.setdefault(probe, (line, tag))
    if stack:
        name, at, tag = stack[-1]
        return f"{_shown(tag)} at line {at} is never closed (add '{{{{/{name}}}}}')"
    for probe, (line, tag) in probes.items():
        try:
            engine.compile(probe)
        except Exception as exc:  # the engine's words for what is wrong with this tag
            return f"{_shown(tag)} at line {line}: {exc}"
    return None


class Renderer:
    """Parses and renders Handlebars; parsed templates are cached by source text.

    Thread-safe: the engine keeps no state between renders, and the cache is only read and
    written under the GIL (OrderedDict operations are single bytecodes).
    """

    def __init__(self) -> None:
        self._engines = {True: _engine(True), False: _engine(False)}
        self._cache: OrderedDict[tuple[bool, str], Callable[..., str]] = OrderedDict()

    def _compiled(self, source: str, html: bool, what: str) -> Callable[..., str]:
        key = (html, source)
        fn = self._cache.get(key)
        if fn is not None:
            return fn
        engine = self._engines[html]
        try:
            fn = engine.compile(source)
        except Exception as exc:
            where = locate_error(source, engine)
            raise RenderError(f"{what}: {where or exc}") from None
        self._cache[key] = fn
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return fn

    def render(self, source: str, data: dict[str, Any], *, html: bool, what: str) -> str:
        """Render ``source`` (Handlebars) with ``data`` (parsed JSON: dicts, lists, str,
        int, float, bool, None); values are HTML-escaped only when ``html``.

        Raises RenderError("<what>: <reason>") when the template does not parse (the reason
        names the tag and its line) or fails while rendering (e.g. a missing helper).
        """
        fn = self._compiled(source, html, what)
        try:
            return fn(data)
        except RecursionError:
            raise RenderError(f"{what}: templates and partials nest too deeply") from None
        except MemoryError:
            raise  # a limit of the render process, reported by it
        except Exception as exc:  # any failure inside the template is the template's
            raise RenderError(f"{what}: {exc}") from None


_RENDERER: Renderer | None = None


def render_parts(job: dict[str, Any], *, max_output: int) -> dict[str, str]:
    """Render a message's parts in this process (the render process's entry point).

    ``job`` = {"data": {...}, "parts": [{"name": str, "source": str, "html": bool,
    "what": str, "css": str | None}, ...]}; returns {name: text}. An HTML part gets its
    CSS inlined. Raises RenderError, also for a part longer than ``max_output`` characters.
    """
    global _RENDERER
    if _RENDERER is None:
        _RENDERER = Renderer()
    out: dict[str, str] = {}
    for part in job["parts"]:
        what = part["what"]
        text = _RENDERER.render(part["source"], job["data"], html=part["html"], what=what)
        if part["html"]:
            text = inline_css(text, part.get("css"))
        if len(text) > max_output:
            raise RenderError(
                f"{what}: the rendered text is {len(text):,} characters, over the limit of "
                f"{max_output:,}"
            )
        out[part["name"]] = text
    return out


def inline_css(html: str, css: str | None) -> str:
    """Move CSS (the template's, and any <style> in the HTML) onto style attributes.

    Rules that cannot be inlined (`@media`, `:hover`, `::before`...) stay in a <style>
    element in the head, where email clients read them; remote stylesheets are never
    fetched (templates are untrusted).
    """
    if not css and "<style" not in html:
        return html
    import css_inline

    if css:
        # as a <style> element rather than css-inline's extra_css, whose rules that
        # cannot be inlined would be dropped; "</" cannot close the element in CSS
        at = head_insertion_point(html)  # before a doctype, the doctype would be dropped
        html = html[:at] + "<style>" + css.replace("</", "<\\/") + "</style>" + html[at:]
    try:
        out = css_inline.CSSInliner(
            keep_style_tags=True, remove_inlined_selectors=True, load_remote_stylesheets=False
        ).inline(html)
    except (ValueError, css_inline.InlineError) as exc:
        raise RenderError(f"template_styles: {exc}") from None
    return _EMPTY_STYLE.sub("", out)


_EMPTY_STYLE = re.compile(r"<style>\s*</style>")
