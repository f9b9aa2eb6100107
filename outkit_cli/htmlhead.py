"""Where an element put into an HTML document lands in its head, by HTML's parsing rules.

`outkit get --open` puts a Content-Security-Policy ``<meta>`` into a message's HTML, and the
sandbox's renderer a ``<style>``: both must be parsed into the ``<head>`` (a policy outside
it is ignored) and after a leading doctype (one after any element is ignored, and the page
falls into quirks mode). A regular expression with Python's ``\\s`` got this wrong: it takes
NBSP, U+2028 or U+001C as whitespace, HTML does not, so the parser had opened ``<body>``
before the doctype and the policy was ignored (attacker trial: the script ran).
"""

from __future__ import annotations

# HTML's ASCII whitespace: TAB, LF, FF, CR, SPACE (WHATWG HTML 13.2.5, 'initial' insertion
# mode; Infra's ASCII whitespace). Not VT, NBSP, U+2028 or the \x1c-\x1f separators.
_WHITESPACE = "\t\n\f\r "
_BOM = "\ufeff"


def head_insertion_point(html: str) -> int:
    """The index in ``html`` where an inserted ``<meta>`` or ``<style>`` is parsed into the head.

    ``html`` is the document as text. A leading U+FEFF is the byte order mark the decoder
    drops (WHATWG Encoding, "decode"); then, while the tree builder is in its 'initial'
    insertion mode (WHATWG HTML 13.2.6.4.1), whitespace and comments are passed over and a
    DOCTYPE token is taken. Returns the index just after that doctype's ``>``, when the
    document has one there; otherwise the index after the BOM (0 without one): anything
    there, even one NBSP, is content, which the parser would already put in ``<body>``, and
    a doctype after it counts for nothing. Never raises.
    """
    start = 1 if html.startswith(_BOM) else 0
    at = start
    while at < len(html):
        char = html[at]
        if char in _WHITESPACE:
            at += 1
            continue
        if html.startswith("<!--", at):
            end = _comment_end(html, at)
            if end is None:  # a comment to the end of the file: nothing after it is parsed
                return start
            at = end
            continue
        if _is_doctype(html, at):
            close = html.find(">", at)  # '>' ends a doctype even inside its quotes
            return start if close < 0 else close + 1
        if html.startswith(("<?", "<!"), at):  # a bogus comment, up to the first '>'
            close = html.find(">", at + 2)
            if close < 0:
                return start
            at = close + 1
            continue
        return start
    return start


def _is_doctype(html: str, at: int) -> bool:
    head = html[at : at + 9]
    return head.isascii() and head.lower() == "<!doctype"


def _comment_end(html: str, at: int) -> int | None:
    """The index after the comment opening at ``at`` (``<!--``), None when it never closes.

    WHATWG HTML 13.2.5.43-52: ``<!-->`` and ``<!--->`` are whole (empty) comments; else
    the first ``-->`` or ``--!>`` closes it.
    """
    body = at + 4
    if html.startswith(">", body):
        return body + 1
    if html.startswith("->", body):
        return body + 2
    ends = [i for i in (html.find("-->", body), html.find("--!>", body)) if i >= 0]
    if not ends:
        return None
    first = min(ends)
    return first + (3 if html.startswith("-->", first) else 4)
