"""The sandbox API behind the HTTP layer: validation, messages, the lifecycle.

`SandboxApp.handle` takes a parsed request and returns (status, JSON text, headers); the
HTTP layer in `server.py` only moves bytes. Routes: POST /v1/messages,
GET /v1/messages/{id}, GET /v1/messages (newest first; limit, status, id_from_submitter
repeatable).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import re
import sqlite3
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import getaddresses
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from outkit_cli import fields
from outkit_cli import message as message_rules
from outkit_cli.sandbox.attachments import Attachment, is_multipart, parse_create
from outkit_cli.sandbox.auth import Authenticator
from outkit_cli.sandbox.delivery import Outbox, Smtp
from outkit_cli.sandbox.errors import (
    ApiError,
    BackendError,
    RenderError,
    bad_data,
    config_issue,
)
from outkit_cli.sandbox.faults import Faults
from outkit_cli.sandbox.keys import ApiKey
from outkit_cli.sandbox.logbuf import BatchedLog
from outkit_cli.sandbox.render_pool import RenderLimits, RenderPool, RenderStopped
from outkit_cli.sandbox.storage import (
    DB_NAME,
    DEFAULT_MAX_STORAGE,
    Quota,
    human_size,
    storage_error,
    written_size,
)
from outkit_cli.sandbox.store import Store, dumps
from outkit_cli.sandbox.templates import (
    Catalog,
    Project,
    Template,
    find_template,
    stable_id,
)
from outkit_cli.sandbox.worker import Activity, Worker

if TYPE_CHECKING:
    from outkit_cli.sandbox.inbox import Inbox

PREFIX = "/v1/messages"
# Plain `a@b.c` and `Name <a@b.c>` are checked with a regex; anything else (quoted names,
# lists) goes through email.utils.getaddresses, which is much slower.
_SIMPLE_ADDRESS = re.compile(
    r"[^@\s<>,\"()]+@[^@\s<>,\"()]+|[\w .'-]*<[^@\s<>,\"()]+@[^@\s<>,\"()]+>"
)
MAX_BODY = 10 * 1024 * 1024
# Template sources are parsed and interpreted, so they are bounded below MAX_BODY (issue 9);
# each field's limit is declared in fields.py (max_bytes, max_chars).
MAX_SUBJECT = fields.MAX_SUBJECT_CHARS  # also of the subject as rendered
DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 10000
MAX_LOOKUP_IDS = 100  # id_from_submitter values in one list request
# Sync creates that may wait for their render at once. Each holds one of the HTTP front
# end's threads (8) until the render ends (at most the render time limit), so without a
# bound a burst of hostile sync creates stalls every other request; one over the bound
# gets a 503 before anything is stored (docs/sandbox.md).
MAX_SYNC_WAITS = 3
# A create whose JSON is over this many bytes waits for no other: while one is handled, the
# next gets a 503 (nothing stored, retry after 1 s). Parsing, checking and writing out a
# large body takes the GIL for long stretches; two clients sending 200,000-value bodies
# back to back kept a GET waiting 2.2 s (attacker trial). Attachments' bytes do not count.
LARGE_CREATE = 256 * 1024
# A list answer stops before its JSON passes this (one message always fits): 30 bodies of
# 9.5 MB once made a 285 MB answer and took the server to 1 GB.
MAX_LIST_BYTES = 8 * 1024 * 1024

# The message fields (fields.py): the create request's, by JSON type, and the answer's.
STRING_FIELDS = fields.STRING_FIELDS
BOOL_FIELDS = fields.BOOL_FIELDS
INPUT_BOOL_FIELDS = (*BOOL_FIELDS, "no_send")
TYPES = ("email", "sms")
STATUSES = message_rules.STATUSES
# Every field of a message as the API returns it (the reference's example), null if unset.
MESSAGE_FIELDS = fields.ANSWERED_FIELDS
# Added to every message object: `public_id` (= id; the Elixir and C# clients read the id
# from it) and, as an addition of this server, `attachments` (see attachments.py).
EXTRA_FIELDS = ("public_id", "attachments")


def now_iso() -> str:
    """ISO 8601 UTC with microseconds, as the API writes it: 2018-04-21T09:02:24.607840Z."""
    # isoformat takes half the time of strftime; "+00:00" becomes "Z"
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")[:-6] + "Z"


@dataclass
class Backend:
    name: str
    id: str
    provider_id: str
    impl: Any
    types: tuple[str, ...]
    slow: bool = False  # talks to another server: save the message before delivering


@dataclass
class Response:
    """An answer for the HTTP front end to send.

    `body` is JSON text for the API; the inbox also sends HTML (str) and downloads (bytes)
    and names its own Content-Type in `headers` (application/json otherwise). `stream`,
    when set, is a zero-argument callable returning an async iterator of bytes chunks,
    sent as they come after the headers (no Content-Length) until it ends or the client
    leaves: the inbox's server-sent events.
    """

    status: int
    body: str | bytes
    headers: dict[str, str]
    stream: Callable[[], AsyncIterator[bytes]] | None = None


def error_body(code: str, message: str) -> str:
    return json.dumps({"error": {"message": message, "code": code}})


class SandboxApp:
    def __init__(
        self,
        *,
        data_dir: Path,
        keys: list[ApiKey],
        catalog: Catalog,
        faults: Faults | None = None,
        smtp: tuple[str, int] | None = None,
        log: Any = None,
        render_limits: RenderLimits | None = None,
        max_storage: int | None = DEFAULT_MAX_STORAGE,
    ) -> None:
        self.data_dir = data_dir
        self.store = Store(data_dir / DB_NAME)
        self.quota = Quota(data_dir, max_storage)
        self.catalog = catalog
        self.faults = faults or Faults()
        # the browser inbox (paths outside /v1), set up by runner.start once the address
        # is known; the HTTP front end routes to it when it is set
        self.inbox: Inbox | None = None
        self.auth = Authenticator(keys, clock=self.faults.now)
        self.renderer = RenderPool(render_limits)
        self._sync_waits = threading.BoundedSemaphore(MAX_SYNC_WAITS)
        self._large_create = threading.Lock()
        # the request log of `outkit serve` goes to stderr in batches (logbuf.py)
        self._own_log = BatchedLog(sys.stderr) if log is None else None
        self.log: Callable[[str], Any] = log if self._own_log is None else self._own_log
        outbox = Backend(
            "outbox",
            stable_id("backend", "outbox"),
            stable_id("provider", "outbox"),
            Outbox(data_dir / "outbox"),
            TYPES,
        )
        self.backends = {"outbox": outbox}
        self.default_backend = {"email": outbox, "sms": outbox}
        if smtp is not None:
            relay = Backend(
                "smtp",
                stable_id("backend", "smtp"),
                stable_id("provider", "smtp"),
                Smtp(*smtp),
                ("email",),
                slow=True,
            )
            self.backends["smtp"] = relay
            self.default_backend["email"] = relay
        # requests in the HTTP front end's hands, which the worker gives way to (worker.py)
        self.activity = Activity()
        self.worker = Worker(
            process=self.process_many, load=self.store.get, log=self.log, activity=self.activity
        )

    # -- lifecycle of the app ------------------------------------------------------------
    def start(self) -> None:
        threading.Thread(target=self.renderer.warm_up, name="render-warm-up", daemon=True).start()
        self.worker.start()
        self.quota.start()
        for message_id, size in self.store.pending():  # resume what a crash or stop left
            self.worker.submit(message_id, size=size)

    def close(self) -> None:
        self.quota.stop()
        # a render still running is killed first (a hostile one would hold the stop for its
        # whole deadline): its message stays pending and is rendered again on next start
        self.renderer.close()
        self.worker.stop()
        self.store.close()
        if self._own_log is not None:
            self._own_log.close()  # the lines still queued are written

    # -- routing ---------------------------------------------------------------------------
    @staticmethod
    def route(method: str, target: str) -> tuple[str, str | None, str]:
        """(route name, message id, query) or raise 404/405 before the body is looked at."""
        path, _, query = target.partition("?")
        if path.startswith(("http://", "https://")):  # absolute-form request target
            from outkit_cli.signing import request_target

            path, _, query = request_target(target).partition("?")
        path = path.rstrip("/") or "/"
        if path == PREFIX:
            if method not in ("GET", "POST"):
                raise ApiError(405, "method_not_allowed", f"{method} is not allowed on {path}",
                               {"Allow": "GET, POST"})  # fmt: skip
            return ("create" if method == "POST" else "list", None, query)
        if path.startswith(PREFIX + "/") and "/" not in path[len(PREFIX) + 1 :]:
            if method != "GET":
                raise ApiError(405, "method_not_allowed", f"{method} is not allowed on {path}",
                               {"Allow": "GET"})  # fmt: skip
            return ("get", path[len(PREFIX) + 1 :], query)
        raise ApiError(404, "not_found", f"no such endpoint: {path}")

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        """One request whose body was read in full. Never raises for a client's mistake."""
        limits: dict[str, str] = {}
        resp = self._answer(method, target, headers, body, limits)
        if limits:  # the key's rate limit (--rate-limit) goes on every answer to it
            resp.headers = {**resp.headers, **limits}
        return resp

    def _answer(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes,
        limits: dict[str, str],
    ) -> Response:
        """`handle`'s answer; ``limits`` gets the key's RateLimit headers once it is known."""
        try:
            name, message_id, query = self.route(method, target)
            if self.faults.should_fail():
                raise ApiError(503, "unavailable", "the sandbox was asked to fail this request "
                               "(--fail-rate); nothing was done, try again")  # fmt: skip
            upload, upload_error = None, None
            content_type = headers.get("Content-Type")
            if name == "create" and is_multipart(content_type):
                try:
                    upload = parse_create(content_type or "", body)
                except ApiError as exc:  # reported once the request is authenticated
                    upload_error = exc
            also = upload.signed_payloads() if upload is not None else ()
            key = self.auth.authenticate(headers, method, target, body, also)
            wait, limit_headers = self.faults.admit(key.key)
            limits.update(limit_headers)
            if wait is not None:
                raise ApiError(
                    429, "rate_limited",
                    f"too many requests: the limit is {self.faults.rate_limit:g} per second "
                    f"for this key; retry after {wait} s",
                    {"Retry-After": str(wait)},
                )  # fmt: skip
            if name == "get":
                text = self.store.get_text(message_id or "")
                if text is None:
                    raise ApiError(404, "not_found", f"no message with id {message_id}")
                return Response(200, '{"data":' + text + "}", {})
            if name == "list":
                return self._list(query)
            if upload_error is not None:
                raise upload_error
            if upload is not None and upload.error is not None:
                raise upload.error
            self.quota.check(len(body))
            message_body = upload.message_body() if upload is not None else body
            large = len(message_body) > LARGE_CREATE
            busy = (f"another create of over {LARGE_CREATE // 1024} KiB of JSON is being "
                    "handled (one at a time)")  # fmt: skip
            with _turn(self._large_create, busy) if large else contextlib.nullcontext():
                text = self.create(message_body, upload.attachments if upload else None)
            return Response(200, '{"data":' + text + "}", {})
        except ApiError as exc:
            return Response(exc.status, error_body(exc.code, exc.message), exc.headers)
        except (OSError, sqlite3.Error) as exc:
            err = storage_error(exc, self.data_dir)
            assert err is not None
            self.log(f"storage error: {type(exc).__name__}: {exc}")
            return Response(err.status, error_body(err.code, err.message), {})

    def _list(self, query: str) -> Response:
        """GET /v1/messages: at most `limit` messages and about MAX_LIST_BYTES of JSON.
        When the size cap cut the list short, a `Link: <...>; rel="next"` header (RFC 8288)
        gives the URL of the next page (`before=` the last id listed)."""
        filters = self._list_filters(query)
        try:
            texts, more = self.store.list_texts(**filters, max_bytes=MAX_LIST_BYTES)
        except KeyError:
            raise bad_data(f"before: no message with id {filters['before']}") from None
        headers = {}
        if more is not None:
            params = {k: v for k, v in filters.items() if v is not None}
            params["before"] = more
            headers["Link"] = f'<{PREFIX}?{urlencode(params)}>; rel="next"'
        return Response(200, '{"data":[' + ",".join(texts) + "]}", headers)

    @staticmethod
    def _list_filters(query: str) -> dict[str, Any]:
        params = parse_qs(query, keep_blank_values=True)
        # other parameters (page, cursors of other API versions...) are ignored, as on
        # every endpoint: a client's extra parameter never makes a request fail
        out: dict[str, Any] = {"limit": DEFAULT_LIST_LIMIT}
        if "limit" in params:
            raw = params["limit"][-1]
            # isascii: isdigit() also takes "²", which int() refuses
            if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIST_LIMIT:
                raise bad_data(f"limit must be an integer from 1 to {MAX_LIST_LIMIT}")
            out["limit"] = int(raw)
        if "status" in params:
            status = params["status"][-1]
            if status not in STATUSES:
                raise bad_data(f"status must be one of {', '.join(STATUSES)}")
            out["status"] = status
        if "id_from_submitter" in params:
            # repeated: any of them (a batch asks for a chunk of its rows in one request)
            ids = params["id_from_submitter"]
            if len(ids) > MAX_LOOKUP_IDS:
                raise bad_data(f"at most {MAX_LOOKUP_IDS} id_from_submitter values per request")
            out["id_from_submitter"] = ids
        if "before" in params:  # the sandbox's paging (a Link rel="next" points at it)
            out["before"] = params["before"][-1]
        return out

    # -- creating a message ----------------------------------------------------------------
    def create(self, body: bytes, attachments: list[Attachment] | None = None) -> str:
        """Validate and store a new message (and its files); its JSON text."""
        msg = parse_message(body)
        project = self.catalog.find_project(msg.get("project"), msg.get("project_id"))
        if project is None:
            raise config_issue(
                f"unknown project {_named(msg, 'project')} "
                f"(known: {', '.join(sorted(self.catalog.projects()))})"
            )
        template = None
        if msg.get("template") is not None or msg.get("template_id") is not None:
            template = find_template(project, msg.get("template"), msg.get("template_id"))
            if template is None:
                raise config_issue(
                    f"unknown template {_named(msg, 'template')} in project {project.name} "
                    f"(known: {', '.join(sorted(project.templates)) or 'none'})"
                )
            if template.type != msg["type"]:
                raise bad_data(
                    f"message.template: {template.name} is an {template.type} template, "
                    f"the message type is {msg['type']}"
                )
        check_content(msg, template)
        if attachments and msg["type"] != "email":
            raise bad_data("attachments: only email messages carry attachments")
        backend = self._backend(msg)
        doc = self._new_doc(msg, project, template, backend)
        # what this message will write once processed (its .eml, its stored bodies) is
        # held now, so that queued messages cannot take the data dir past --max-storage;
        # a render's parts are held when they are known (process)
        files = sum(len(a.data) for a in attachments or ())
        self.quota.hold(doc["id"], written_size((doc["html_body"], doc["text_body"]), files))
        try:
            return self._create_held(doc, attachments)
        except BaseException:
            self.quota.settle(doc["id"])
            raise

    def _create_held(self, doc: dict[str, Any], attachments: list[Attachment] | None) -> str:
        if not doc["sync"]:
            text = self._store_new(doc, attachments)
            self.worker.submit(doc["id"], doc, size=len(text))
            return text
        busy = (f"too many sync requests at once (at most {MAX_SYNC_WAITS} wait for their "
                "render)")  # fmt: skip
        with _turn(self._sync_waits, busy, also="or send without sync and read the result "
                   "with GET /v1/messages/ID"):  # fmt: skip
            self._store_new(doc, attachments)
            return dumps(self.process(doc))

    def _store_new(self, doc: dict[str, Any], attachments: list[Attachment] | None) -> str:
        if attachments:
            doc["attachments"] = [a.describe() for a in attachments]
            self.store.add_attachments(doc["id"], attachments)
        return self.store.insert(doc)  # committed before anything is answered

    def _backend(self, msg: dict[str, Any]) -> Backend:
        name, backend_id = msg.get("backend"), msg.get("backend_id")
        if name is None and backend_id is None:
            return self.default_backend[msg["type"]]
        for backend in self.backends.values():
            if (name is None or backend.name == name) and (
                backend_id is None or backend.id == backend_id
            ):
                if msg["type"] not in backend.types:
                    raise config_issue(f"backend {backend.name} cannot deliver {msg['type']}")
                return backend
        hint = "" if "smtp" in self.backends else "; start the sandbox with --smtp for smtp"
        raise config_issue(
            f"unknown backend {_named(msg, 'backend')} "
            f"(known: {', '.join(sorted(self.backends))}{hint})"
        )

    @staticmethod
    def _new_doc(
        msg: dict[str, Any], project: Project, template: Template | None, backend: Backend
    ) -> dict[str, Any]:
        doc: dict[str, Any] = dict.fromkeys(MESSAGE_FIELDS)
        doc.update({k: v for k, v in msg.items() if k in MESSAGE_FIELDS})
        for flag in BOOL_FIELDS:
            doc[flag] = bool(msg.get(flag, False))
        doc["data"] = msg.get("data") or {}  # PHP's json_encode sends an empty map as []
        doc["backend_response"] = {}  # the reference's example shows {} before delivery
        # a random UUID4 without os.urandom: that syscall gives up the GIL, and getting it
        # back under load costs more than the rest of this function (ids are not secrets)
        doc["id"] = doc["public_id"] = str(uuid.UUID(int=random.getrandbits(128), version=4))
        doc["attachments"] = []
        doc["project"], doc["project_id"] = project.name, project.id
        if template is not None:
            doc["template"], doc["template_id"] = template.name, template.id
        doc["backend"], doc["backend_id"] = backend.name, backend.id
        doc["provider_id"] = backend.provider_id
        sender = msg.get("from") or (template.from_ if template else None) or project.from_
        doc["from"] = sender
        doc["status"], doc["done"] = "received", False
        doc["received_at"] = now_iso()
        return doc

    # -- the lifecycle -----------------------------------------------------------------------
    def process(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Move one message on until it is done and save it (see `process_many`)."""
        self.process_many([doc])
        return doc

    def process_many(self, docs: list[dict[str, Any]]) -> None:
        """Move each message on until it is done; resumable from any saved status.

        The steps run in memory, each setting its timestamp, and the messages done are
        saved together at the end, in one transaction (each save costs time taken from
        answering requests; saving many at once costs about as much as one), plus each
        once before a delivery that may be slow (SMTP). A crash before the save leaves
        them pending, and they are processed again on the next start. Raises OSError or
        sqlite3.Error when the disk or the database fails: the messages done before the
        failure are saved first, the others stay pending (worker.py tries again).
        """
        done: list[dict[str, Any]] = []
        try:
            for doc in docs:
                self._process(doc)
                if doc["done"]:
                    done.append(doc)
        finally:
            try:
                self.store.update_many(done)
            finally:
                for doc in docs:
                    self.quota.settle(doc["id"])  # what it held is written (or never will be)

    def _process(self, doc: dict[str, Any]) -> dict[str, Any]:
        try:
            if doc["status"] == "received":
                given = doc["html_body"] is not None or doc["text_body"] is not None
                if given and doc["render_only"]:
                    self._step(doc, "rendered", "rendered_at", done=True)
                    return doc
                if given:
                    self._step(doc, "queued_for_delivery", "queued_for_delivery_at")
                else:
                    self._step(doc, "queued_for_rendering", "queued_for_rendering_at")
            if doc["status"] == "queued_for_rendering":
                unrendered = (doc["subject"], doc["html_body"], doc["text_body"])
                try:
                    self._render(doc)
                    self._hold_rendered(doc)
                except RenderError as exc:
                    doc["subject"], doc["html_body"], doc["text_body"] = unrendered
                    return self._fail(doc, "render_error", str(exc))
                except RenderStopped:
                    return doc  # not saved: the next start renders it again
                self._step(doc, "rendered", "rendered_at", done=doc["render_only"])
                if doc["render_only"]:
                    return doc
            if doc["status"] == "rendered" and not doc["done"]:
                self._step(doc, "queued_for_delivery", "queued_for_delivery_at")
            if doc["status"] == "queued_for_delivery":
                backend = self.backends.get(doc["backend"])
                if not doc["test"] and backend is not None and backend.slow:
                    self.store.update(doc)  # visible while the SMTP server is talked to
                try:
                    self._deliver(doc)
                except BackendError as exc:
                    return self._fail(doc, "backend_error", str(exc))
                self._step(doc, "delivered", "delivered_at", done=True)
        except (OSError, sqlite3.Error):
            raise  # a full or failing disk: pending, the worker tries again (worker.py)
        except Exception as exc:  # a sandbox bug must not leave the message pending forever
            self.log(f"internal error on message {doc.get('id')}: {type(exc).__name__}: {exc}")
            self._fail(doc, "internal_error", f"internal error: {type(exc).__name__}")
        return doc

    def _hold_rendered(self, doc: dict[str, Any]) -> None:
        """Hold what the rendered parts will take on disk before anything stores them;
        RenderError naming --max-storage when that would pass the quota (a hostile
        template renders up to RenderLimits.output characters per part from a 1 KB request)."""
        size = written_size((doc["subject"], doc["html_body"], doc["text_body"]))
        try:
            self.quota.hold(doc["id"], size)
        except ApiError:
            assert self.quota.limit is not None
            raise RenderError(
                f"storage: the rendered message would take {human_size(size)} in the data "
                f"dir, which would pass --max-storage ({human_size(self.quota.limit)}); "
                "nothing rendered was stored or delivered (clear the inbox to make room)"
            ) from None

    @staticmethod
    def _step(doc: dict[str, Any], status: str, stamp: str, *, done: bool = False) -> None:
        doc["status"], doc[stamp], doc["done"] = status, now_iso(), done

    @staticmethod
    def _fail(doc: dict[str, Any], status: str, message: str) -> dict[str, Any]:
        doc["status"], doc["status_message"] = status, message
        doc["failed_at"], doc["done"] = now_iso(), True
        return doc

    def _render(self, doc: dict[str, Any]) -> None:
        project = self.catalog.find_project(doc["project"], None)
        template = None
        if project is None:
            raise RenderError(f"project {doc['project']} no longer exists")
        if project.error:
            raise RenderError(project.error)
        if doc["template"] is not None:
            template = find_template(project, doc["template"], None)
            if template is None:
                raise RenderError(f"template {doc['template']} no longer exists")
            if template.error:
                raise RenderError(template.error)
        local: dict[str, Any] = {**project.data}
        if template is not None:
            local.update(template.data)
        local.update(doc["data"] or {})
        html_src = doc["html_template_body"]
        text_src = doc["text_template_body"]
        css = doc["template_styles"]
        if template is not None:
            html_src = html_src if html_src is not None else template.html
            text_src = text_src if text_src is not None else template.text
            css = css if css is not None else template.css
        parts: list[dict[str, Any]] = []
        if doc["type"] == "email":
            if html_src is not None:
                parts.append({"name": "html", "source": html_src, "html": True, "css": css,
                              "what": _part_name(doc, template, "html")})  # fmt: skip
            subject, what = doc["subject"], "subject"
            if subject is None and template is not None:
                subject = template.subject  # the template's default, rendered like a part
                what = f"{template.file_name('meta')} subject"
            if subject is not None:
                parts.append({"name": "subject", "source": subject, "html": False, "what": what})
        if text_src is not None:
            parts.append({"name": "text", "source": text_src, "html": False,
                          "what": _part_name(doc, template, "text")})  # fmt: skip
        # all parts at once, in the render process: a message gets all its parts or none
        out = self.renderer.render({"data": local, "parts": parts}) if parts else {}
        if "subject" in out:
            rendered = out["subject"]
            if "\n" in rendered or "\r" in rendered:
                raise RenderError("subject: the rendered subject contains a line break")
            if len(rendered) > MAX_SUBJECT:
                raise RenderError(
                    f"subject: the rendered subject is {len(rendered):,} characters, over the "
                    f"limit of {MAX_SUBJECT:,}"
                )
            doc["subject"] = rendered
        doc["html_body"] = out.get("html", doc["html_body"])
        doc["text_body"] = out.get("text", doc["text_body"])
        if doc["html_body"] is None and doc["text_body"] is None:
            raise RenderError("nothing to render: the template has no part for this type")

    def _deliver(self, doc: dict[str, Any]) -> None:
        if doc["test"]:  # decision: test messages never reach a backend
            doc["backend_response"] = {"test": True, "note": "test message: not delivered"}
            return
        backend = self.backends.get(doc["backend"])
        if backend is None:
            raise BackendError(f"backend {doc['backend']} is not configured in this sandbox")
        files = self.store.attachments(doc["id"]) if doc.get("attachments") else []
        id_from_backend, response = backend.impl.deliver(doc, files)
        doc["id_from_backend"], doc["backend_response"] = id_from_backend, response


def _part_name(doc: dict[str, Any], template: Template | None, part: str) -> str:
    """How a render error names the part: the message field, or the template's file."""
    field = f"{part}_template_body"
    if doc[field] is not None or template is None:
        return field
    return template.file_name(part)


def _named(msg: dict[str, Any], field: str) -> str:
    name, ident = msg.get(field), msg.get(field + "_id")
    return repr(name) if name is not None else f"with id {ident!r}"


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; they are not JSON and would be stored and
    # sent back to clients whose parsers reject them
    raise ValueError(f"{name} is not valid JSON")


@contextlib.contextmanager
def _turn(
    lock: threading.Lock | threading.BoundedSemaphore, busy: str, also: str = ""
) -> Iterator[None]:
    """Hold `lock` for the block, or, when it is taken, raise a 503 ApiError that says
    `busy`, that nothing was stored and to retry after 1 s (`also`: another way out)."""
    if not lock.acquire(blocking=False):
        raise ApiError(
            503, "unavailable",
            f"{busy}; nothing was stored: retry after 1 s{', ' + also if also else ''}",
            {"Retry-After": "1"},
        )  # fmt: skip
    try:
        yield
    finally:
        lock.release()


class _TooBig(ValueError):
    """A value that is valid JSON but past what the sandbox takes."""


# Digits of an integer in a body. Writing an integer back out costs time quadratic in its
# digits, with the GIL held: 2,300 integers of 3,999 digits took 0.7 s to write each time
# the message was stored, answered or handed to the render process, and two clients sending
# such bodies kept a GET waiting 1.8 s (attacker trial). 100 digits is past any id or
# amount, and far past what JavaScript (Handlebars.js) reads exactly (2^53, 16 digits).
MAX_INT_DIGITS = 100


def _bounded_int(text: str) -> int:
    # Python refuses to convert an integer of over 4,300 digits, with a message about its
    # own settings; this one says what is wrong with the request
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _TooBig(
            f"the body has an integer of {digits:,} digits; the sandbox takes at most "
            f"{MAX_INT_DIGITS:,}"
        )
    return int(text)


def _finite_float(text: str) -> float:
    # 1e999 is valid JSON that Python reads as inf: stored, it would be written back as
    # Infinity (not JSON) by GET /v1/messages and break SQLite's json functions
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is too large (not a finite number)")
    return value


def _reject_lone_surrogates(payload: Any) -> None:
    # a lone '\ud800' escape is valid JSON syntax but no character: it cannot be encoded as UTF-8,
    # so storing the message would fail (a 500) and so would every answer that carries it
    try:
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a \\u escape is a lone surrogate, not a Unicode character") from None


MAX_JSON_DEPTH = 100  # arrays and objects inside one another, the body's own object included
# Commas and opening brackets and braces in a create body (each JSON value but the first
# follows one of them, so they bound the number of values, keys included). Parsing and
# writing a body out hold the GIL from start to end: 0.7 us a key to parse, up to 4 us a
# float to write (1.2345678901234567e-300): 800,000 keys, or 199,000 such floats, held the
# server 0.55 s and 0.85 s at a time, and two clients sending such bodies kept a signed GET
# waiting 2.3 s (attacker trials). At 50,000 the worst GET in the same floods was 0.45 s.
# Counted on the raw bytes before parsing (3 ms for 10 MB); characters inside strings
# count too, which only a body with a very large text comes near.
MAX_JSON_ITEMS = 50_000


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether JSON ``value`` nests arrays/objects more than ``limit`` levels (iterative)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_message(body: bytes) -> dict[str, Any]:
    """The `message` object of a create request, type-checked; 422 bad_data naming the field."""
    items = body.count(b",") + body.count(b"{") + body.count(b"[")
    if items > MAX_JSON_ITEMS:
        raise bad_data(
            f"the body holds too many JSON values: {items:,} commas and opening brackets and "
            "braces, "
            f"the sandbox takes at most {MAX_JSON_ITEMS:,} (one request may not hold up the "
            "server); send fewer data values"
        )
    try:
        # strict UTF-8 (RFC 8259): json.loads(bytes) would also take UTF-16 and encoded
        # surrogates, which no later step can store or send back
        text = body.decode("utf-8")
        payload = json.loads(
            text, parse_constant=_reject_constant, parse_float=_finite_float,
            parse_int=_bounded_int,
        )  # fmt: skip
        if "\\ud" in text or "\\uD" in text:  # cheap test first: escapes are rare
            _reject_lone_surrogates(payload)
    except _TooBig as exc:
        raise bad_data(str(exc)) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_data(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise bad_data("the body is not valid JSON: nested too deeply") from None
    # each level of nesting opens with a [ or {: with no more of them than the limit in the
    # whole text, the body cannot be nested deeper (the walk is skipped for most bodies)
    brackets = text.count("{") + text.count("[")
    if brackets > MAX_JSON_DEPTH and _deeper_than(payload, MAX_JSON_DEPTH):
        # the same verdict on every Python: 3.11 raises RecursionError near 1,000 levels,
        # 3.13 parses far deeper, and every later step (store, render) recurses again
        raise bad_data(f"the body is nested more than {MAX_JSON_DEPTH} levels deep")
    if not isinstance(payload, dict) or not isinstance(payload.get("message"), dict):
        raise bad_data('message: the body must be a JSON object {"message": {...}}')
    msg = {k: v for k, v in payload["message"].items() if v is not None}
    for name in STRING_FIELDS:
        if name in msg and not isinstance(msg[name], str):
            raise bad_data(f"message.{name} must be a string")
    for name in INPUT_BOOL_FIELDS:
        if name in msg and not isinstance(msg[name], bool):
            raise bad_data(f"message.{name} must be true or false")
    if msg.get("data") == []:  # PHP's json_encode writes an empty array (no locals) as []
        del msg["data"]
    if "data" in msg and not isinstance(msg["data"], dict):
        raise bad_data("message.data must be an object")
    if msg.pop("no_send", False) is True:
        # the Elixir client's no_send: this server renders such a message and never
        # delivers it, exactly as render_only (documented in docs/sandbox.md)
        msg["render_only"] = True
    if not msg.get("type"):
        raise bad_data("message.type is required (email or sms)")
    if msg["type"] not in TYPES:
        raise bad_data(f"message.type must be email or sms, not {msg['type']!r}")
    if not msg.get("to", "").strip():
        raise bad_data("message.to is required")
    for field in fields.HEADER_FIELDS:
        if field.name in msg and ("\n" in msg[field.name] or "\r" in msg[field.name]):
            raise bad_data(f"message.{field.name} must not contain a line break")
        if field.name in msg and (control := fields.header_control(msg[field.name])):
            # NUL and escape sequences would be written raw into the .eml's header
            raise bad_data(
                f"message.{field.name} must not contain a control character (U+{ord(control):04X})"
            )
    check_sizes(msg)
    for field in fields.HEADER_FIELDS:
        if field.mailbox and len(msg.get(field.name, "")) > MAX_MAILBOX_LIST:
            raise bad_data(
                f"message.{field.name} is {len(msg[field.name]):,} characters, over the "
                f"limit of {MAX_MAILBOX_LIST:,} for a list of addresses"
            )
    if msg["type"] == "email":
        for field in fields.HEADER_FIELDS:
            if field.mailbox and len(msg.get(field.name, "")) > MAX_ADDRESS:
                _check_mailbox_lengths(field, msg[field.name])
        for name in _EMAIL_ADDRESS_FIELDS:
            if name in msg and not _is_email_address(msg[name]):
                raise bad_data(f"message.{name} is not an email address: {msg[name]!r}")
    if not msg.get("project") and not msg.get("project_id"):
        raise bad_data("message.project or message.project_id is required")
    return msg


_EMAIL_ADDRESS_FIELDS = fields.names(tuple(f for f in fields.SENT if f.email_address))
_BYTE_LIMITS = tuple((f.name, f.max_bytes) for f in fields.SENT if f.max_bytes)
_CHAR_LIMITS = tuple((f.name, f.max_chars) for f in fields.SENT if f.max_chars)


# RFC 5321 section 4.5.3.1.3: a path is at most 256 octets, its angle brackets included
MAX_ADDRESS = 254
# RFC 5322 section 2.1.1: a line is at most 998 characters; a mailbox (a display name and
# its address) goes on one line after its header name. Non-ASCII names are encoded and
# folded (RFC 2047), so only a long ASCII name can pass it.
MAX_LINE = 998
# A list of addresses is parsed by email.utils.getaddresses, whose time grows with the
# length (3 MB took 20 s): a list is bounded (some 600 addresses).
MAX_MAILBOX_LIST = 16 * 1024


def _check_mailbox_lengths(field: fields.Field, value: str) -> None:
    """422 for an address over 254 octets (RFC 5321 section 4.5.3.1.3) or a mailbox that
    would make a header line over 998 characters (RFC 5322 section 2.1.1)."""
    try:
        pairs = getaddresses([value])
    except RecursionError:  # the email package recurses into each nested comment
        raise bad_data(
            f"message.{field.name} is not an email address: its comments (parentheses) "
            "are nested too deeply"
        ) from None
    for name, address in pairs:
        size = len(address.encode("utf-8"))
        if size > MAX_ADDRESS:
            raise bad_data(
                f"message.{field.name}: an address is {size:,} bytes, over the {MAX_ADDRESS} "
                "an email address may have (RFC 5321 section 4.5.3.1.3)"
            )
        line = len(field.header or "") + 2 + len(name) + len(address) + 3
        if name.isascii() and line > MAX_LINE:
            raise bad_data(
                f"message.{field.name}: a display name of {len(name):,} characters makes a "
                f"header line of {line:,}, over the {MAX_LINE} a line may have "
                "(RFC 5322 section 2.1.1)"
            )


def _is_email_address(value: str) -> bool:
    """Each address of an RFC 5322 address list has an `@` (what the API checks)."""
    if _SIMPLE_ADDRESS.fullmatch(value):
        return True
    addresses = getaddresses([value])  # display names, lists: the slow path
    return bool(addresses) and all("@" in addr for _, addr in addresses)


def check_sizes(msg: dict[str, Any]) -> None:
    """422 bad_data for a field over its limit (fields.py: max_bytes of UTF-8, e.g. the
    template fields; max_chars, e.g. the subject), naming the field and the limit."""
    for name, limit in _BYTE_LIMITS:
        if name in msg and len(msg[name]) > limit // 4:  # cheap: most are short
            size = len(msg[name].encode("utf-8"))
            if size > limit:
                raise bad_data(
                    f"message.{name} is {size:,} bytes, over the limit of {limit:,} "
                    f"({limit // 1024} KiB)"
                )
    for name, limit in _CHAR_LIMITS:
        if name in msg and len(msg[name]) > limit:
            raise bad_data(
                f"message.{name} is {len(msg[name]):,} characters, over the limit of {limit:,}"
            )


def check_content(msg: dict[str, Any], template: Template | None) -> None:
    has_body = "html_body" in msg or "text_body" in msg
    has_inline = "html_template_body" in msg or "text_template_body" in msg
    if template is None and not has_body and not has_inline:
        raise bad_data(
            "message has no content: give template (or template_id), html_template_body / "
            "text_template_body, or html_body / text_body"
        )
    if msg["type"] == "sms":
        given = "html_body" in msg or "text_body" in msg
        has_text = (
            "text_body" in msg
            if given
            else ("text_template_body" in msg or (template is not None and bool(template.text)))
        )
        if not has_text:
            raise bad_data(
                "an sms needs text: text_body, text_template_body or a template with a text part"
            )
