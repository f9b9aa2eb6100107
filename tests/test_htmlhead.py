"""Where `outkit get --open` puts its Content-Security-Policy <meta> (and the sandbox's
renderer a template's <style>): by HTML's parsing rules, in the head, after a leading
doctype. A regex with Python's \\s put it after '\\u00a0<!doctype html>', where the parser
had already opened <body>, and the message's script ran (attacker trial). The same pages in
headless Chromium: tests/test_inbox_browser.py."""

from __future__ import annotations

import re

import pytest

from outkit_cli.commands.get import OPEN_CSP, guarded_html
from outkit_cli.htmlhead import head_insertion_point
from outkit_cli.sandbox.render import inline_css

META = f'<meta http-equiv="Content-Security-Policy" content="{OPEN_CSP}">'
SCRIPT = "<script>document.title='PWNED-'+location.href</script>"
# characters Python's str.isspace / \s takes and HTML does not (HTML: TAB LF FF CR SPACE)
NOT_HTML_SPACE = ["\u00a0", "\u2028", "\u2029", "\x1c", "\x1d", "\x1e", "\x1f", "\x0b",
                  "\u3000", "\u200b", "\x85", "\x00", "\ufeff\ufeff"]  # fmt: skip
# what the parser passes over before a doctype: a BOM (first only), whitespace, comments
BEFORE_DOCTYPE = ["", "\ufeff", " \t\r\n\f", "<!-- hi -->", "\ufeff\n<!-- a --> <!---->\n",
                  "<!-->", "<!--->", "<!-- a --!>", "<?xml version='1.0'?>\n",
                  "<!-- -- > still a comment -->"]  # fmt: skip
DOCTYPES = ["<!doctype html>", "<!DOCTYPE html>",
            "<!DocType HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\">",
            "<!DOCTYPE html SYSTEM 'about:legacy-compat'>"]  # fmt: skip
# the part before the policy may hold only what the parser puts before the head
PREFIX = re.compile(
    r"\A\ufeff?(?:[\t\n\f\r ]|<!--(?:>|->|.*?--!?>)|<\?[^>]*>)*(?:<!doctype[^>]*>)?\Z",
    re.IGNORECASE | re.DOTALL,
)


def prefix(page: str) -> str:
    assert page.count(META) == 1
    return page[: page.index(META)]


@pytest.mark.parametrize("lead", NOT_HTML_SPACE)
@pytest.mark.parametrize("doctype", DOCTYPES)
def test_content_before_a_doctype_puts_the_policy_first(lead: str, doctype: str) -> None:
    html = lead + doctype + SCRIPT
    page = guarded_html(html)
    before = prefix(page)
    # the lead is content: the parser opens <body> at it, so the policy goes before it
    assert before == ("\ufeff" if lead.startswith("\ufeff") else "")
    assert page.index(META) < page.index(SCRIPT)
    assert page.replace(META, "", 1) == html  # the message itself is unchanged


@pytest.mark.parametrize("lead", BEFORE_DOCTYPE)
@pytest.mark.parametrize("doctype", DOCTYPES)
def test_a_leading_doctype_stays_first_and_the_policy_follows_it(lead: str, doctype: str) -> None:
    html = lead + doctype + "\n<html><head><title>t</title></head><body>" + SCRIPT
    page = guarded_html(html)
    assert prefix(page) == lead + doctype  # standards mode kept, policy in the head
    assert PREFIX.match(prefix(page))
    assert page.replace(META, "", 1) == html


@pytest.mark.parametrize(
    "html",
    ["<p>hi</p>" + SCRIPT, "x<!doctype html>" + SCRIPT, "<!-- never closed <!doctype html>",
     "\u00a0" + SCRIPT, "</p><!doctype html>" + SCRIPT, ""],
)  # fmt: skip
def test_no_leading_doctype_puts_the_policy_at_the_start(html: str) -> None:
    page = guarded_html(html)
    assert page.startswith(META) and page[len(META) :] == html


def test_the_renderer_puts_template_css_where_the_policy_goes() -> None:
    # a template's <style> before a doctype would drop the doctype (quirks mode); after
    # content the parser treats as body it still applies, but by the same rule as above
    html = "\u00a0<!doctype html><p class=x>hi</p>"
    assert head_insertion_point(html) == 0
    out = inline_css(html, ".x { color: red }")
    assert 'style="color: red' in out or 'style="color:red' in out
    assert head_insertion_point("<!-- c -->\n<!DOCTYPE html><p>") == len(
        "<!-- c -->\n<!DOCTYPE html>"
    )


@pytest.mark.parametrize(
    ("html", "doctype"),
    [('<!DOCTYPE html PUBLIC "a>b">' + SCRIPT, '<!DOCTYPE html PUBLIC "a>'),
     ("<!doctype html" + SCRIPT, "<!doctype html<script>")],
)  # fmt: skip
def test_a_doctype_ends_at_its_first_greater_than_sign(html: str, doctype: str) -> None:
    # the tokenizer ends a doctype at '>' even inside its quotes (HTML 13.2.5.60)
    page = guarded_html(html)
    assert prefix(page) == doctype
