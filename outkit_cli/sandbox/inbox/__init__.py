"""The sandbox's inbox in the browser: every path outside `/v1`.

Set-up (the HTTP front end's side of the contract)::

    inbox = Inbox(app, api_url="http://127.0.0.1:8025/v1", token=None)
    app.inbox = inbox
    # then, per request whose path does not start with /v1:
    response = inbox.handle(method, target, headers, body)

`handle(method, target, headers, body) -> Response` has the signature of
`SandboxApp.handle`: `target` is the request target as sent (path and query), `headers` a
mapping whose `.get` takes any case, `body` the request body's bytes. The `Response` it
returns may carry `body` as str or bytes, its own `Content-Type` in `headers`, and a
`stream`: a zero-argument callable returning an async iterator of bytes chunks that the
front end sends as they come (no Content-Length) until the iterator ends or the client
leaves; the live views (server-sent events) use it and never hold a thread while they wait.

Safety: pages are Jinja2 templates with autoescaping, and carry a Content-Security-Policy
that allows only this server's own script and styles; a message's HTML is served on its
own URL with a policy that forbids scripts, forms, plugins and every network load
(`sandbox` directive and a sandboxed iframe), remote images only on request. With `token`
set (any host that is not loopback) every path requires it, as the password of HTTP Basic
authentication (RFC 7617) or in `?token=`; never in a cookie: cookies ignore ports (RFC
6265 section 8.5), so every other server on the host would receive it, while a browser
keeps Basic credentials for this origin (scheme, host and port) only.
On loopback the Host header must name a loopback host (no DNS rebinding). POSTs require
the per-server CSRF token.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlencode

from outkit_cli.fields import HEADER_FIELDS
from outkit_cli.sandbox.app import STATUSES, TYPES, Response
from outkit_cli.sandbox.inbox import preview, sms
from outkit_cli.sandbox.store import SearchCutShort

if TYPE_CHECKING:
    from jinja2 import Environment

    from outkit_cli.sandbox.app import SandboxApp

HERE = Path(__file__).parent
PAGE_SIZE = 50
MAX_SEARCH = 200
# HTTP Basic authentication (RFC 7617): the user name is not checked; this one is shown
BASIC_USER = "outkit"
CHALLENGE = 'Basic realm="outkit inbox", charset="UTF-8"'
# Searches at once, and the time each may take: a search reads every body it passes
# (json_extract and LIKE), and 40 bodies of 9 MB took 4-7 s each; ten at once held every
# HTTP thread and an API GET waited 29.5 s (attacker trial 1, finding 12).
MAX_SEARCHES = 2
SEARCH_SECONDS = 1.0
# how often a live view looks at the store's change counter (seconds); a change shows in
# the browser within this plus one fetch, and each open tab fetches at most this often
POLL_INTERVAL = 0.5
# Header fields message.html lays out in places of their own; every other header field
# (fields.py) gets a row of the message page's field list.
OWN_PLACE = frozenset({"from", "to", "subject"})
ROWS_CACHE = 16  # rendered lists kept per (query, store version): open tabs share one
HEARTBEAT = 15.0  # a comment line this often finds clients that left

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
# A message's own HTML: no script, no form, no plugin, nothing from the network; the
# `sandbox` directive gives it an opaque origin even when opened outside the iframe.
BODY_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox"
)
REMOTE_BODY_CSP = BODY_CSP.replace("img-src data:", "img-src data: http: https:")
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
TIMELINE = (
    ("received", "received_at"),
    ("queued_for_rendering", "queued_for_rendering_at"),
    ("rendered", "rendered_at"),
    ("queued_for_delivery", "queued_for_delivery_at"),
    ("delivered", "delivered_at"),
)
# a remote load in a message's HTML: src/background/srcset attributes or CSS url()
_REMOTE = re.compile(
    r"""(?:\b(?:src|background|srcset|poster)\s*=\s*["']?\s*|url\(\s*["']?\s*)(?:https?:)?//""",
    re.IGNORECASE,
)
_LOOPBACK_HOST = re.compile(r"(localhost|127(\.\d{1,3}){3}|\[::1\])(:\d{1,5})?", re.IGNORECASE)


class Refused(Exception):
    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.headers = dict(headers or {})


class Inbox:
    def __init__(self, app: SandboxApp, *, api_url: str, token: str | None = None) -> None:
        """`api_url`: the API base URL shown in copyable command lines
        (http://HOST:PORT/v1). `token`: required on every request when set (give one for
        any host that is not loopback); None: loopback only, checked by Host header."""
        self.app = app
        self.api_url = api_url
        self.token = token
        self.csrf = secrets.token_urlsafe(32)
        self._env: Environment | None = None
        self._rows_cache: OrderedDict[tuple[str, int], Response] = OrderedDict()
        self._rows_lock = threading.Lock()
        self._searches = threading.BoundedSemaphore(MAX_SEARCHES)
        self._catalog_version = 0  # bumped by the template watcher on each change
        self._catalog_watch: threading.Thread | None = None
        self._watch_lock = threading.Lock()
        self._static = {
            p.name: (p.read_bytes(), STATIC_TYPES[p.suffix])
            for p in (HERE / "static").iterdir()
            if p.suffix in STATIC_TYPES
        }

    @property
    def base_url(self) -> str:
        """The inbox's root URL (never with the token: see `login`)."""
        return self.api_url.rsplit("/v1", 1)[0] + "/"

    @property
    def login(self) -> str | None:
        """How to sign in when a token is required (None: no token), for the start line."""
        if self.token is None:
            return None
        return f"user {BASIC_USER}, password {self.token}"

    def message_url(self, message_id: str) -> str:
        return self.api_url.rsplit("/v1", 1)[0] + "/messages/" + quote(message_id, safe="")

    # -- the entry point -------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Answer one request for a path outside /v1 (see the module docstring)."""
        path, _, raw_query = target.partition("#")[0].partition("?")
        if path.startswith(("http://", "https://")):  # absolute-form (RFC 9112 §3.2.2)
            path = "/" + (path.split("/", 3)[3:] or [""])[0]
        query = parse_qs(raw_query)
        try:
            redirect = self._check_access(path, query, headers)
            if redirect is not None:
                return redirect
            if method == "POST":
                return self._post(path, body, headers)
            if method not in ("GET", "HEAD"):
                raise Refused(405, f"{method} is not allowed here")
            return self._get(path, query)
        except Refused as exc:
            page = self._page(exc.status, "error.html", message=exc.message)
            page.headers.update(exc.headers)
            return page

    # -- access ------------------------------------------------------------------------------
    def _check_access(
        self, path: str, query: dict[str, list[str]], headers: Mapping[str, str]
    ) -> Response | None:
        if self.token is None:
            host = headers.get("host") or ""
            if not _LOOPBACK_HOST.fullmatch(host):
                # a page elsewhere that got its name resolved to 127.0.0.1 (DNS rebinding)
                raise Refused(403, "this inbox answers only to a loopback host name")
            return None
        given = query.get("token", [""])[-1] or _basic_password(headers.get("authorization"))
        if given and hmac.compare_digest(given.encode(), self.token.encode()):
            return None
        raise Refused(
            401,
            "this inbox needs the token that `outkit serve` printed at start (as the "
            "password when the browser asks)",
            {"WWW-Authenticate": CHALLENGE},
        )

    def _check_csrf(self, form: dict[str, list[str]], headers: Mapping[str, str]) -> None:
        given = form.get("csrf", [""])[-1] or headers.get("x-csrf-token") or ""
        if not hmac.compare_digest(given.encode(), self.csrf.encode()):
            raise Refused(403, "this action needs the page's CSRF token: reload the page")

    # -- routes -------------------------------------------------------------------------------
    def _get(self, path: str, query: dict[str, list[str]]) -> Response:
        seg = [s for s in path.split("/") if s]
        if not seg:
            return self._inbox_page(query)
        head = seg[0]
        if head == "static" and len(seg) == 2 and seg[1] in self._static:
            data, ctype = self._static[seg[1]]
            return Response(200, data, {"Content-Type": ctype, **COMMON_HEADERS})
        if head == "rows" and len(seg) == 1:
            return self._rows(query)
        if head == "events" and len(seg) == 1:
            return self._stream(self._store_changes)
        if head == "messages" and len(seg) >= 2:
            message_id = unquote(seg[1])
            rest = seg[2:]
            if not rest:
                return self._message_page(message_id, remote=_flag(query, "remote"))
            if rest == ["body.html"]:
                return self._message_body(message_id, remote=_flag(query, "remote"))
            if rest == ["raw.eml"]:
                return self._message_raw(message_id)
            if len(rest) == 2 and rest[0] == "attachments":
                return self._attachment(message_id, rest[1])
        if head == "templates":
            names = [unquote(s) for s in seg[1:]]
            if not names:
                return self._templates_page()
            if names == ["events"]:
                return self._stream(self._catalog_changes)
            if len(names) == 2:
                return self._template_page(*names)
            if len(names) == 3 and names[2] == "render":
                return self._template_render(names[0], names[1], query)
            if len(names) == 3 and names[2] == "preview.html":
                return self._template_preview(names[0], names[1], query)
        raise Refused(404, "no such page")

    def _post(self, path: str, body: bytes, headers: Mapping[str, str]) -> Response:
        try:
            form = parse_qs(body.decode("utf-8"), max_num_fields=10)
        except (UnicodeDecodeError, ValueError):
            raise Refused(400, "the form is not valid") from None
        self._check_csrf(form, headers)
        seg = [s for s in path.split("/") if s]
        if seg == ["clear"]:
            self.app.store.clear()
            return _redirect("/")
        if len(seg) == 3 and seg[0] == "messages" and seg[2] == "delete":
            if not self.app.store.delete(unquote(seg[1])):
                raise Refused(404, "no such message (deleted already?)")
            return _redirect("/")
        raise Refused(404, "no such action")

    # -- the list ------------------------------------------------------------------------------
    def _filters(self, query: dict[str, list[str]]) -> dict[str, Any]:
        def one(name: str) -> str:
            return (query.get(name, [""])[-1] or "").strip()

        where = {}
        for name, allowed in (("status", STATUSES), ("type", TYPES)):
            value = one(name)
            if value and value in allowed:
                where[name] = value
        for name in ("project", "template"):
            if one(name):
                where[name] = one(name)[:200]
        before = one("before")
        return {
            "where": where,
            "search": one("q")[:MAX_SEARCH],
            "before": _sequence(before),
        }

    def _list_context(self, query: dict[str, list[str]]) -> dict[str, Any]:
        f = self._filters(query)
        search = f["search"] or None
        # a search reads every body it passes: few at once, each with a deadline, so that
        # searches over large messages hold neither the HTTP threads nor the database
        if search is not None and not self._searches.acquire(blocking=False):
            raise Refused(503, f"{MAX_SEARCHES} searches are running already; try again "
                          "in a moment")  # fmt: skip
        cut_short = False
        try:
            rows = self.app.store.page(
                limit=PAGE_SIZE + 1, before=f["before"], where=f["where"], search=search,
                seconds=SEARCH_SECONDS if search is not None else None,
            )  # fmt: skip
        except SearchCutShort as exc:
            rows, cut_short = exc.rows, True
        finally:
            if search is not None:
                self._searches.release()
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        keep = {**f["where"], **({"q": f["search"]} if f["search"] else {})}
        older = urlencode({**keep, "before": rows[-1][0]}) if more and rows else None
        return {
            "rows": [_row(doc) for _, doc in rows],
            "older": older,
            "newest": urlencode(keep) if f["before"] is not None else None,
            "filters": f["where"],
            "search": f["search"],
            "first_page": f["before"] is None,
            "cut_short": cut_short,
            "search_seconds": SEARCH_SECONDS,
        }

    def _inbox_page(self, query: dict[str, list[str]]) -> Response:
        catalog = self.app.catalog.projects()
        templates = sorted({t for p in catalog.values() for t in p.templates})
        return self._page(
            200,
            "inbox.html",
            statuses=STATUSES,
            types=TYPES,
            projects=sorted(catalog),
            templates=templates,
            **self._list_context(query),
        )

    def _rows(self, query: dict[str, list[str]]) -> Response:
        # Every open tab asks for the list after each change: the tabs showing the same
        # filters share one rendering (the version is read first: a change during the
        # query only makes the next event fetch again).
        key = (urlencode(sorted((k, v[-1]) for k, v in query.items())), self.app.store.changes)
        with self._rows_lock:
            cached = self._rows_cache.get(key)
        if cached is not None:
            return cached
        resp = self._page(200, "rows.html", **self._list_context(query))
        with self._rows_lock:
            self._rows_cache[key] = resp
            while len(self._rows_cache) > ROWS_CACHE:
                self._rows_cache.popitem(last=False)
        return resp

    # -- one message ------------------------------------------------------------------------
    def _doc(self, message_id: str) -> dict[str, Any]:
        doc = self.app.store.get(message_id)
        if doc is None:
            raise Refused(404, "no such message (deleted?)")
        return doc

    def _message_page(self, message_id: str, *, remote: bool = False) -> Response:
        doc = self._doc(message_id)
        timeline = [
            {"status": status, "at": doc.get(stamp)} for status, stamp in TIMELINE if doc.get(stamp)
        ]
        if doc.get("failed_at"):
            timeline.append({"status": doc["status"], "at": doc["failed_at"]})
        sms_count = None
        if doc.get("type") == "sms":
            sms_count = sms.count(doc.get("text_body") or "")
        html = doc.get("html_body")
        return self._page(
            200,
            "message.html",
            m=doc,
            timeline=timeline,
            sms=sms_count,
            attachments=_attachments(doc),
            remote=remote,
            has_remote=isinstance(html, str) and bool(_REMOTE.search(html)),
            locals_json=json.dumps(doc.get("data") or {}, indent=2, ensure_ascii=False),
            headers=[
                (f.header, doc[f.name])
                for f in HEADER_FIELDS
                if f.name not in OWN_PLACE and isinstance(doc.get(f.name), str)
            ],
            api_json=json.dumps({"data": doc}, indent=2, ensure_ascii=False, sort_keys=True),
            get_line=f"outkit get {_shell_quote(doc['id'])}",
            curl_line=self._curl_line(doc["id"]),
            quoted_id=quote(doc["id"], safe=""),
        )

    def _curl_line(self, message_id: str) -> str:
        # the sandbox's unsigned key sends its secret as a header (API reference,
        # "Authentication"); the values come from the environment, never the page
        url = self.api_url + "/messages/" + quote(message_id, safe="")
        return (
            f"curl -sS {_shell_quote(url)} "
            '-H "Outkit-Access-Key: $OUTKIT_ACCESS_KEY" '
            '-H "Outkit-Access-Passphrase: $OUTKIT_ACCESS_PASSPHRASE" '
            '-H "Outkit-Access-Secret: $OUTKIT_ACCESS_SECRET"'
        )

    def _message_body(self, message_id: str, *, remote: bool) -> Response:
        doc = self._doc(message_id)
        html = doc.get("html_body")
        if not isinstance(html, str):
            raise Refused(404, "this message has no HTML part")
        if doc.get("attachments") and "cid:" in html:
            html = _inline_cid_images(html, self.app.store.attachments(message_id))
        return _html_document(html, remote=remote)

    def _message_raw(self, message_id: str) -> Response:
        from outkit_cli.sandbox.delivery import build_email

        doc = self._doc(message_id)
        if doc.get("type") != "email" or (doc.get("html_body") is None and doc.get("text_body")
                                          is None):  # fmt: skip
            raise Refused(404, "this message has no email to download (an SMS, or not rendered)")
        _, raw = build_email(doc, self.app.store.attachments(doc["id"]))
        return Response(
            200,
            raw,
            {
                "Content-Type": "message/rfc822",
                "Content-Disposition": f'attachment; filename="{_safe_filename(doc["id"])}.eml"',
                **COMMON_HEADERS,
            },
        )

    def _attachment(self, message_id: str, index: str) -> Response:
        self._doc(message_id)
        files = self.app.store.attachments(message_id)
        # a bounded number first: int() refuses over 4300 digits (ValueError, a 500)
        if not (index.isascii() and index.isdigit()) or len(index) > 4 or int(index) >= len(files):
            raise Refused(404, "no such attachment")
        item = files[int(index)]
        name = _safe_filename(item.filename or f"attachment-{index}")
        # always a download, never shown inline: an attachment is untrusted content
        return Response(
            200,
            item.data,
            {
                "Content-Type": "application/octet-stream",
                "Content-Disposition": f'attachment; filename="{name}"',
                "Content-Security-Policy": BODY_CSP,
                **COMMON_HEADERS,
            },
        )

    # -- templates --------------------------------------------------------------------------
    def _templates_page(self) -> Response:
        projects = self.app.catalog.projects()
        return self._page(
            200,
            "templates.html",
            projects=[
                (p.name, p.error, sorted(p.templates.values(), key=lambda t: t.name))
                for p in sorted(projects.values(), key=lambda p: p.name)
            ],
        )

    def _template(self, project_name: str, name: str) -> tuple[Any, Any]:
        from outkit_cli.sandbox.templates import find_template

        project = self.app.catalog.find_project(project_name, None)
        template = find_template(project, name, None) if project is not None else None
        if project is None or template is None:
            raise Refused(404, "no such template")
        return project, template

    def _template_page(self, project_name: str, name: str) -> Response:
        project, template = self._template(project_name, name)
        return self._page(
            200,
            "template.html",
            project=project,
            t=template,
            locals_json=json.dumps(
                preview.default_locals(project, template), indent=2, ensure_ascii=False
            ),
            base=f"/templates/{quote(project.name, safe='')}/{quote(template.name, safe='')}",
        )

    def _parts(
        self, project_name: str, name: str, query: dict[str, list[str]]
    ) -> tuple[list[preview.Part], str | None]:
        project, template = self._template(project_name, name)
        raw = query.get("locals", ["{}"])[-1] or "{}"
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("the locals must be a JSON object")
        except (ValueError, RecursionError) as exc:
            return [], f"locals: {exc}"
        return preview.render_parts(self.app.renderer, project, template, data), None

    def _template_render(
        self, project_name: str, name: str, query: dict[str, list[str]]
    ) -> Response:
        parts, error = self._parts(project_name, name, query)
        payload = {
            "locals_error": error,
            "parts": {p.name: {"value": p.value, "error": p.error} for p in parts},
        }
        return Response(
            200,
            json.dumps(payload, ensure_ascii=False),
            {"Content-Type": "application/json", **COMMON_HEADERS},
        )

    def _template_preview(
        self, project_name: str, name: str, query: dict[str, list[str]]
    ) -> Response:
        parts, _ = self._parts(project_name, name, query)
        html = next((p.value for p in parts if p.name == "html" and p.value is not None), "")
        return _html_document(html, remote=_flag(query, "remote"))

    # -- live views -------------------------------------------------------------------------
    def _stream(self, source: Callable[[], AsyncIterator[bytes]]) -> Response:
        return Response(
            200,
            "",
            {"Content-Type": "text/event-stream", **COMMON_HEADERS},
            stream=source,
        )

    async def _store_changes(self) -> AsyncIterator[bytes]:
        async for chunk in _changes(lambda: self.app.store.changes):
            yield chunk

    async def _catalog_changes(self) -> AsyncIterator[bytes]:
        # One watcher thread looks at the templates directory for every stream: each
        # stream looking itself (a stat of every file, twice a second, on the event loop)
        # made 1,000 streams over 300 files stall the API for 6-14 s (attacker trial 1,
        # finding 13). A stream reads the watcher's counter, an int.
        self._start_catalog_watch()
        async for chunk in _changes(lambda: self._catalog_version):
            yield chunk

    def _start_catalog_watch(self) -> None:
        with self._watch_lock:
            if self._catalog_watch is None:
                self._catalog_watch = threading.Thread(
                    target=self._watch_catalog, name="template-watch", daemon=True
                )
                self._catalog_watch.start()

    def _watch_catalog(self) -> None:
        # Catalog.projects() re-reads the user dir when a file's mtime or size changed and
        # returns a new dict then: a new dict is a change
        seen: object = None
        while True:
            projects: object
            try:
                projects = self.app.catalog.projects()
            except Exception as exc:  # a bug: logged, and the watch goes on
                self.app.log(f"template watch: {type(exc).__name__}: {exc}")
                projects = seen
            if projects is not seen:
                seen = projects
                self._catalog_version += 1
            time.sleep(POLL_INTERVAL)

    # -- rendering pages ----------------------------------------------------------------------
    def _page(self, status: int, name: str, **context: Any) -> Response:
        text = self.env.get_template(name).render(csrf=self.csrf, api_url=self.api_url, **context)
        return Response(
            status,
            text,
            {
                "Content-Type": "text/html; charset=utf-8",
                "Content-Security-Policy": PAGE_CSP,
                "X-Frame-Options": "DENY",
                **COMMON_HEADERS,
            },
        )

    @property
    def env(self) -> Environment:
        if self._env is None:
            from jinja2 import Environment, FileSystemLoader, StrictUndefined

            env = Environment(
                loader=FileSystemLoader(HERE / "templates"),
                autoescape=True,
                undefined=StrictUndefined,
            )
            env.filters["when"] = _when
            self._env = env
        return self._env


async def _changes(counter: Callable[[], Any]) -> AsyncIterator[bytes]:
    """Server-sent events: one `data:` event now and one each time `counter()` changes."""
    loop = asyncio.get_running_loop()
    last: Any = object()
    quiet_since = loop.time()
    yield b"retry: 1000\n\n"
    while True:
        value = counter()
        if value != last:
            last = value
            quiet_since = loop.time()
            yield f"data: {value}\n\n".encode()
        elif loop.time() - quiet_since > HEARTBEAT:
            quiet_since = loop.time()
            yield b": ping\n\n"
        await asyncio.sleep(POLL_INTERVAL)


def _html_document(html: str, *, remote: bool) -> Response:
    return Response(
        200,
        html,
        {
            "Content-Type": "text/html; charset=utf-8",
            "Content-Security-Policy": REMOTE_BODY_CSP if remote else BODY_CSP,
            **COMMON_HEADERS,
        },
    )


def _row(doc: dict[str, Any]) -> dict[str, Any]:
    text = doc.get("subject") if doc.get("type") == "email" else doc.get("text_body")
    text = text if isinstance(text, str) else ""
    return {**doc, "summary": text[:160], "quoted_id": quote(str(doc["id"]), safe="")}


def _attachments(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The message's `attachments` as rows for the page (whatever shape each item has)."""
    items = doc.get("attachments")
    rows = []
    for item in items if isinstance(items, list) else []:
        item = item if isinstance(item, dict) else {}
        size = item.get("size")
        rows.append(
            {
                "filename": str(item.get("filename") or "attachment"),
                "content_type": str(item.get("content_type") or ""),
                "size": size if isinstance(size, int) else "",
                "disposition": str(item.get("disposition") or ""),
                "content": True,  # stored with the message (store.attachments)
            }
        )
    return rows


_CID = re.compile(r"""cid:([^"'\s)>]+)""", re.IGNORECASE)
MAX_INLINE_IMAGE = 2 * 1024 * 1024


def _inline_cid_images(html: str, files: list[Any]) -> str:
    """`cid:NAME` references (RFC 2392) to the message's inline images, as data: URLs,
    which the preview's policy allows; anything else stays unresolved."""
    import base64

    images = {
        f.content_id: f
        for f in files
        if f.content_id and f.content_type.startswith("image/") and len(f.data) <= MAX_INLINE_IMAGE
        and re.fullmatch(r"image/[a-z0-9.+-]+", f.content_type)
    }  # fmt: skip

    def swap(match: re.Match[str]) -> str:
        found = images.get(unquote(match.group(1)))
        if found is None:
            return match.group(0)
        return f"data:{found.content_type};base64,{base64.b64encode(found.data).decode()}"

    return _CID.sub(swap, html)


def _when(value: Any) -> str:
    """ISO 8601 UTC as `YYYY-MM-DD HH:MM:SS` for the tables."""
    if not isinstance(value, str):
        return ""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value[:40]


def _sequence(value: str) -> int | None:
    """A list position from the query (the ``before`` of "older"), or None to ignore it.

    Digits only (``str.isdigit`` takes ``²``, which ``int`` refuses), and within SQLite's
    INTEGER (a signed 64-bit number): a larger one raised OverflowError in the query, a
    500 (attacker trial); one above every row means the newest page anyway.
    """
    if not (value.isascii() and value.isdigit()) or len(value) > 19:
        return None
    number = int(value)
    return number if number <= _SQLITE_MAX_INTEGER else None


_SQLITE_MAX_INTEGER = 2**63 - 1


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return query.get(name, [""])[-1] in ("1", "true", "yes")


def _basic_password(header: str | None) -> str:
    """The password of an ``Authorization: Basic`` header (RFC 7617), or "" for anything
    else (another scheme, bad base64, no colon)."""
    import base64
    import binascii

    scheme, _, value = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    _user, colon, password = decoded.partition(":")
    return password if colon else ""


def _redirect(location: str) -> Response:
    return Response(303, "", {"Location": location, **COMMON_HEADERS})


def _safe_filename(name: str) -> str:
    """A name for Content-Disposition: no path, quotes, controls or non-ASCII (RFC 6266
    quoted-string without escapes)."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(
        c if c.isascii() and c.isprintable() and c not in '"%;' else "_" for c in name
    )
    return cleaned.strip(". ")[:120] or "download"


def _shell_quote(value: str) -> str:
    import shlex

    return shlex.quote(value)
