"""Handlebars rendering (pybars3) and CSS inlining (css-inline).

pybars3 is the maintained pure-Python Handlebars (if, unless, each, with, else, paths,
triple-stash). Its parser silently drops everything after a construct it cannot parse
(`{{#if x}}unclosed` renders as ""), so `check_syntax` first checks that every `{{` is
closed and every block is closed by a matching `{{/name}}`; a template that fails either
check, or raises while rendering, is a `RenderError`.

Compiling costs milliseconds (pybars generates Python code), so compiled templates are
cached by source text. The compiler is not thread-safe, hence the lock.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from outkit_cli.sandbox.errors import RenderError

_CACHE_SIZE = 256
_TAG = re.compile(r"\{\{!--.*?--\}\}|\{\{(\{?)(.*?)\}?\}\}", re.DOTALL)
_ESCAPED = re.compile(r"[&\"'`<>]")


def _line(source: str, pos: int) -> int:
    return source.count("\n", 0, pos) + 1


def _tag(source: str, pos: int) -> str:
    """The block tag starting at ``pos`` as written, for messages (shortened)."""
    end = source.find("}}", pos)
    text = source[pos : end + 2] if end >= 0 else source[pos : pos + 40]
    return repr(text if len(text) <= 40 else text[:37] + "...")


def check_syntax(source: str, what: str) -> None:
    """Raise RenderError for an unclosed `{{` or an unbalanced block."""
    stack: list[tuple[str, int]] = []
    pos = 0
    for match in _TAG.finditer(source):
        gap = source[pos : match.start()]
        if "{{" in gap:
            at = pos + gap.index("{{")
            raise RenderError(f"{what}: unclosed '{{{{' at line {_line(source, at)}")
        pos = match.end()
        body = match.group(2)
        if body is None:  # {{!-- comment --}}
            continue
        body = body.strip().strip("~").strip()
        if body.startswith("!"):
            continue
        if body[:1] in ("#", "^") and body[1:].strip():
            name = body[1:].strip().lstrip("*>").split()[0]
            stack.append((name, match.start()))
        elif body.startswith("/"):
            name = body[1:].strip()
            if not stack:
                raise RenderError(
                    f"{what}: '{{{{/{name}}}}}' at line {_line(source, match.start())} "
                    "closes no open block"
                )
            opened, at = stack.pop()
            if opened != name:
                raise RenderError(
                    f"{what}: {_tag(source, at)} at line {_line(source, at)} is "
                    f"closed by '{{{{/{name}}}}}' at line {_line(source, match.start())}"
                )
    if "{{" in source[pos:]:
        at = pos + source[pos:].index("{{")
        raise RenderError(f"{what}: unclosed '{{{{' at line {_line(source, at)}")
    if stack:
        name, at = stack[-1]
        raise RenderError(
            f"{what}: {_tag(source, at)} at line {_line(source, at)} is never closed "
            f"(add '{{{{/{name}}}}}')"
        )


class Renderer:
    def __init__(self) -> None:
        # pybars builds its grammar when imported, which takes a second or more: it is
        # loaded on first use (or by warm_up in the background), not before the server
        # can answer.
        self._compiler: Any = None
        self._strlist: Any = None
        self._cache: OrderedDict[str, Callable[..., Any]] = OrderedDict()
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            self._load()

    def _load(self) -> None:
        if self._compiler is None:
            import pybars

            self._strlist = pybars.strlist
            self._compiler = pybars.Compiler()

    def _compiled(self, source: str, what: str) -> Callable[..., Any]:
        with self._lock:
            fn = self._cache.get(source)
            if fn is not None:
                self._cache.move_to_end(source)
                return fn
            check_syntax(source, what)
            self._load()
            try:
                fn = self._compiler.compile(source)
            except Exception as exc:  # the parser's own errors, with a position
                raise RenderError(f"{what}: {exc}") from None
            self._cache[source] = fn
            if len(self._cache) > _CACHE_SIZE:
                _, evicted = self._cache.popitem(last=False)
                _forget(evicted)
            return fn

    def render(self, source: str, data: dict[str, Any], *, html: bool, what: str) -> str:
        """Render ``source`` with ``data``; HTML-escape values only for an HTML part."""
        fn = self._compiled(source, what)
        try:
            context = self._locals(data, html)  # after _compiled: pybars is loaded
            return str(fn(context))
        except Exception as exc:  # any failure inside the template is the template's
            raise RenderError(f"{what}: {type(exc).__name__}: {exc}") from None

    def _locals(self, value: Any, html: bool) -> Any:
        # pybars looks a name up as a key, then as an attribute: `{{#each items}}` over
        # data without "items" would find dict.items. `_Locals` answers None for any
        # missing key, so attributes are never consulted.
        # pybars also HTML-escapes every {{value}}; a text part must not get "&amp;".
        # It never escapes a `strlist`, so for text, strings that would change are
        # wrapped in one.
        if isinstance(value, dict):
            return _Locals((k, self._locals(v, html)) for k, v in value.items())
        if isinstance(value, list):
            return [self._locals(v, html) for v in value]
        if not html and isinstance(value, str) and _ESCAPED.search(value):
            return self._strlist([value])
        return value


def _forget(fn: Callable[..., Any]) -> None:
    # pybars registers every compiled template as a module in sys.modules (and its source
    # in linecache); without this, distinct inline templates would grow memory for ever
    import linecache
    import sys

    sys.modules.pop(fn.__module__, None)
    linecache.cache.pop(fn.__code__.co_filename, None)


class _Locals(dict):  # type: ignore[type-arg]
    def __missing__(self, key: Any) -> None:
        return None


def inline_css(html: str, css: str | None) -> str:
    """Move CSS (the template's, and any <style> in the HTML) onto style attributes."""
    if not css and "<style" not in html:
        return html
    import css_inline

    try:
        return css_inline.CSSInliner(extra_css=css or None).inline(html)
    except (ValueError, css_inline.InlineError) as exc:
        raise RenderError(f"template_styles: {exc}") from None
