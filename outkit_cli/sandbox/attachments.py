"""Creates with attachments: `multipart/form-data` as the official JavaScript and C#
clients send it.

Layout (RFC 7578): a `message` part (the message object as JSON; the `{"message": ...}`
wrapper is accepted too), an optional `disposition` part (`attachment` or `inline`, any
case: the C# client sends `Attachment`) and one `attachments[]` part per file, with its
filename and content type. The body is tokenised by python-multipart (the parser behind
Starlette); this module only reads the parts it yields.

Signing (not documented by Outkit; the decision of this server, see docs/sandbox.md): a
signature is valid over the whole body as sent (what the API reference says of any body),
over the `message` part's exact text (what the JavaScript client signs), or over that text
wrapped as `{"message":` + text + `}` (what the C# client signs).
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from typing import Any
from urllib.parse import quote

# the client checks the same limits before reading a file (outkit_cli.multipart); the
# whole body is bounded by the HTTP layer
from outkit_cli.multipart import MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS
from outkit_cli.sandbox.errors import ApiError, bad_data

MAX_FIELD_BYTES = 1024 * 1024  # the message and disposition parts
MAX_PART_HEADERS = 16
# parts read at most: past this the rest of the body is not parsed (thousands of tiny
# parts would cost seconds of CPU for a request refused anyway)
MAX_PARTS = MAX_ATTACHMENTS + 8
MAX_FILENAME = 255
DISPOSITIONS = ("attachment", "inline")
# characters a cid: URL carries as they are (RFC 2392: the Content-ID's addr-spec, with
# URL-unsafe characters %-encoded); everything else in a filename is %-encoded
_CID_SAFE = "!$&'*+-.=^_`{|}~@"
_ENCODED_WORD = re.compile(r"=\?[^?]+\?[bBqQ]\?[^?]*\?=")


@dataclass
class Attachment:
    """One file of a message, as stored and delivered."""

    filename: str
    content_type: str  # type/subtype, lower case
    disposition: str  # attachment | inline
    data: bytes
    content_id: str | None = None  # inline files: the Content-ID, without angle brackets

    def describe(self) -> dict[str, Any]:
        """The entry in the message object's `attachments` list (an addition of this
        server): filename, content_type, size (bytes), disposition, content_id."""
        return {
            "filename": self.filename,
            "content_type": self.content_type,
            "size": len(self.data),
            "disposition": self.disposition,
            "content_id": self.content_id,
        }


@dataclass
class MultipartCreate:
    message: bytes  # the `message` part's exact bytes
    disposition: str
    attachments: list[Attachment] = field(default_factory=list)
    # a limit or value refused: reported once the request is authenticated (the
    # signature may cover the message part, so it is still read)
    error: ApiError | None = None

    def signed_payloads(self) -> tuple[bytes, ...]:
        """What a signature may cover besides the whole body (see the module docstring)."""
        return (self.message, b'{"message":' + self.message + b"}")

    def message_body(self) -> bytes:
        """The message as a JSON create body, `{"message": {...}}`."""
        text = self.message.strip()
        try:
            obj = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            return text  # parse_message reports it
        if isinstance(obj, dict) and set(obj) == {"message"}:
            return text
        return b'{"message":' + text + b"}"


def is_multipart(content_type: str | None) -> bool:
    return bool(content_type) and content_type.split(";", 1)[0].strip().lower() == (  # type: ignore[union-attr]
        "multipart/form-data"
    )


def content_id_for(filename: str) -> str:
    """The Content-ID of an inline file: its filename, %-encoded where RFC 2392's cid URL
    needs it, so that HTML refers to `logo.png` as `cid:logo.png`."""
    return quote(filename, safe=_CID_SAFE)


class _TooManyParts(Exception):
    pass


class _Collector:
    """Receives python-multipart's callbacks: each part's headers and bytes."""

    def __init__(self) -> None:
        self.parts: list[tuple[dict[str, bytes], bytearray]] = []
        self.ended = False
        self._field = bytearray()
        self._value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._data = bytearray()
        self._limit = MAX_FIELD_BYTES
        self._name = ""
        self.error: ApiError | None = None
        self.begun = 0

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": lambda d, s, e: self._field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._value.extend(d[s:e]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_end": self.end,
        }

    def part_begin(self) -> None:
        self.begun += 1
        if self.begun > MAX_PARTS:
            raise _TooManyParts
        self._headers, self._data = {}, bytearray()

    def header_end(self) -> None:
        if len(self._headers) >= MAX_PART_HEADERS:
            raise bad_data("multipart: too many headers in one part")
        self._headers[self._field.decode("latin-1").strip().lower()] = bytes(self._value).strip()
        self._field, self._value = bytearray(), bytearray()

    def headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, params = parse_options_header(self._headers.get("content-disposition", b""))
        self._name = params.get(b"name", b"").decode("latin-1")
        is_file = self._name == "attachments[]" or b"filename" in params
        self._limit = MAX_ATTACHMENT_BYTES if is_file else MAX_FIELD_BYTES

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if len(self._data) > self._limit:
            return  # already refused: the rest is not kept
        self._data.extend(data[start:end])
        if len(self._data) > self._limit and self.error is None:
            if self._limit == MAX_ATTACHMENT_BYTES:
                self.error = ApiError(
                    413, "payload_too_large",
                    f"an attachment is larger than {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MiB "
                    "(the limit per file)",
                )  # fmt: skip
            else:
                self.error = bad_data(
                    f"multipart: the {self._name or 'unnamed'} part is larger than 1 MiB"
                )

    def part_end(self) -> None:
        if len(self.parts) > MAX_ATTACHMENTS + 2:
            if self.error is None:
                self.error = bad_data(
                    f"too many attachments: at most {MAX_ATTACHMENTS} per message"
                )
            return  # not kept: a body of thousands of empty parts costs no memory
        self.parts.append((self._headers, self._data))

    def end(self) -> None:
        self.ended = True


def _text_param(raw: bytes) -> str:
    """A Content-Disposition parameter as the clients write it: UTF-8 in quotes (the
    JavaScript form-data package, browsers), or an RFC 2047 encoded-word (.NET)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    # browsers and urllib3 write a quote in a filename as %22 (WHATWG HTML form encoding)
    text = text.replace("%22", '"')
    if _ENCODED_WORD.fullmatch(text.strip()):
        with contextlib.suppress(ValueError, LookupError, UnicodeDecodeError):
            text = str(make_header(decode_header(text.strip())))  # else kept as written
    return text


def _filename(raw: bytes, position: int) -> str:
    name = _text_param(raw).replace("\\", "/").rsplit("/", 1)[-1]  # never a path
    # control characters would end up in the delivered email's headers
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    if not name or name in (".", ".."):
        name = f"attachment-{position}"
    if len(name) > MAX_FILENAME:
        raise bad_data(f"attachments[]: a filename is longer than {MAX_FILENAME} characters")
    return name


def _extended_filename(header: bytes) -> bytes | None:
    """`filename*=UTF-8''...` (RFC 5987/8187), which .NET, Postman and others send, alone or
    beside a plain `filename`; python-multipart leaves it out (RFC 7578 forbids it), so the
    stdlib's RFC 2231 parameter parser reads it."""
    if b"filename*" not in header:
        return None
    from email.message import Message

    holder = Message()
    holder["Content-Disposition"] = header.decode("latin-1")
    name = holder.get_filename()
    return name.encode("utf-8", "surrogateescape") if name else None


def _content_type(raw: bytes | None) -> str:
    from python_multipart.multipart import parse_options_header

    ctype = parse_options_header(raw or b"")[0].decode("latin-1").strip()
    if re.fullmatch(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+", ctype):
        return ctype
    return "application/octet-stream"


MAX_BOUNDARY = 70  # characters of a multipart boundary (RFC 2046 section 5.1.1)


def parse_create(content_type: str, body: bytes) -> MultipartCreate:
    """A multipart create request's parts. Raises 422 `bad_data` for a body that is not
    multipart/form-data with a `message` part; a limit passed (422, or 413 for a file over
    the size limit) or a bad disposition is set as `error` on the result."""
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise bad_data("multipart/form-data without a boundary parameter (RFC 7578)")
    if len(boundary) > MAX_BOUNDARY:
        raise bad_data(
            f"multipart/form-data: the boundary is {len(boundary):,} characters long, over "
            f"the {MAX_BOUNDARY} RFC 2046 section 5.1.1 allows"
        )
    collector = _Collector()
    parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    try:
        parser.write(body)
        parser.finalize()
    except _TooManyParts:
        collector.ended = True  # what was read so far is used (the message part, if any)
        collector.error = collector.error or bad_data(
            f"too many attachments: at most {MAX_ATTACHMENTS} per message"
        )
    except MultipartParseError as exc:
        raise bad_data(f"multipart: the body is not valid multipart/form-data ({exc})") from None
    if not collector.ended:
        raise bad_data("multipart: the body ends before the closing boundary")
    message: bytes | None = None
    disposition: str | None = None
    files: list[tuple[dict[str, bytes], bytes]] = []
    for headers, data in collector.parts:
        _, cd = parse_options_header(headers.get("content-disposition", b""))
        name = cd.get(b"name", b"").decode("latin-1")
        if name == "message":
            message = bytes(data)
        elif name == "disposition":
            disposition = bytes(data).decode("utf-8", "replace").strip().lower()
        elif name == "attachments[]" or name.startswith("attachments[") or b"filename" in cd:
            files.append((headers, bytes(data)))
        # other fields are ignored, as unknown message fields are
    if message is None:
        raise bad_data("multipart: no `message` part (the message as JSON)")
    if disposition is None:
        disposition = _disposition_in(message)
    out = MultipartCreate(message, disposition, error=collector.error)
    if disposition not in DISPOSITIONS:
        out.error = out.error or bad_data(
            f"disposition must be attachment or inline, not {disposition[:40]!r}"
        )
    if len(files) > MAX_ATTACHMENTS:
        out.error = out.error or bad_data(
            f"too many attachments: at most {MAX_ATTACHMENTS} per message"
        )
    if out.error is not None:
        return out
    for position, (headers, body) in enumerate(files, 1):
        _, cd = parse_options_header(headers.get("content-disposition", b""))
        raw_name = cd.get(b"filename") or _extended_filename(headers["content-disposition"])
        filename = _filename(raw_name or b"", position)
        out.attachments.append(
            Attachment(
                filename=filename,
                content_type=_content_type(headers.get("content-type")),
                disposition=disposition,
                data=bytes(body),
                content_id=content_id_for(filename) if disposition == "inline" else None,
            )
        )
    return out


def _disposition_in(message: bytes) -> str:
    """The JavaScript client also leaves `disposition` inside the message JSON."""
    try:
        obj = json.loads(message)
    except (ValueError, UnicodeDecodeError):
        return "attachment"
    if isinstance(obj, dict) and isinstance(obj.get("message"), dict):
        obj = obj["message"]
    value = obj.get("disposition") if isinstance(obj, dict) else None
    return value.strip().lower() if isinstance(value, str) else "attachment"
