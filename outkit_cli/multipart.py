"""Creates with attachments: the `multipart/form-data` request the official JavaScript and
C# clients send (RFC 7578).

Parts: `message` (the message object as JSON, the same text the JSON create would carry
inside `{"message": ...}`), `disposition` (`attachment` or `inline`, for every file) and
one `attachments[]` part per file with its filename and content type. The signature covers
the `message` part's exact text, as the JavaScript client signs it (docs/send.md); the
sandbox also accepts a signature over the whole body. The body is encoded by urllib3's
`encode_multipart_formdata` (already our HTTP stack), loaded only when a file is attached.
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
import secrets
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from outkit_cli.errors import UsageError

DISPOSITIONS = ("attachment", "inline")
# The API reference documents no attachment limits; these are the sandbox's (its multipart
# parser, sandbox.attachments, and its request body limit, sandbox.app.MAX_BODY). A file
# over them is refused before it is read: a 3 GB file was read whole into memory and
# ended in MemoryError (attacker trial).
MAX_ATTACHMENTS = 10  # files per message
MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024  # each
# all the files of one message together: the sandbox's 10 MiB request less room for the
# message part (at most 1 MiB there) and the part headers
MAX_ATTACHMENTS_TOTAL = 9 * 1024 * 1024
_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+")


@dataclass(frozen=True)
class FileSpec:
    """One `--attach` value: where the file is, the name and type it is sent with."""

    path: Path
    filename: str
    content_type: str


@dataclass(frozen=True)
class AttachedFile:
    filename: str
    content_type: str
    data: bytes
    path: str  # as the user gave it, for summaries


def parse_attach(value: str, base: Path | None = None) -> FileSpec:
    """`FILE` or `FILE;type=TYPE` (as curl -F writes it). The type is guessed from the
    name when not given (`application/octet-stream` if unknown). ``base``: the directory
    relative paths start from (a batch file's). Raises UsageError (exit 2)."""
    path_text, content_type = value, None
    head, sep, tail = value.rpartition(";")
    if sep and tail.lower().startswith("type="):
        path_text, content_type = head, tail[5:].strip()
        if not _TYPE.fullmatch(content_type):
            raise UsageError(f"--attach {value}: type must be a MIME type such as image/png")
    if not path_text:
        raise UsageError("--attach needs a file name")
    path = Path(path_text)
    if base is not None and not path.is_absolute():
        path = base / path
    return FileSpec(path, path.name, content_type or guess_type(path.name))


def guess_type(filename: str) -> str:
    """The MIME type for a file name (Python's mimetypes table), else
    application/octet-stream."""
    return mimetypes.guess_type(filename, strict=False)[0] or "application/octet-stream"


def read_files(specs: Sequence[FileSpec]) -> list[AttachedFile]:
    """Each file's bytes; UsageError naming the file when it cannot be read or is over a
    limit (`check_sizes`), before any file is read whole."""
    out = []
    opened = []
    try:
        for spec in specs:
            try:
                mode = spec.path.stat().st_mode
                if stat.S_ISDIR(mode):
                    raise UsageError(f"--attach {spec.path}: is a directory, not a file")
                if not stat.S_ISREG(mode):  # a FIFO or a device would block or never end
                    raise UsageError(f"--attach {spec.path}: is not a regular file")
                opened.append(open(spec.path, "rb"))  # noqa: SIM115 (closed below)
            except OSError as exc:
                raise UsageError(f"cannot read --attach {spec.path}: {exc.strerror}") from None
        named = zip(opened, specs, strict=True)
        check_sizes([(fh.fileno(), f"--attach {spec.path}") for fh, spec in named], "--attach")
        for fh, spec in zip(opened, specs, strict=True):
            who = f"--attach {spec.path}"
            try:
                data = read_bounded(fh, who)
            except OSError as exc:
                raise UsageError(f"cannot read {who}: {exc.strerror}") from None
            out.append(AttachedFile(spec.filename, spec.content_type, data, os.fspath(spec.path)))
    finally:
        for fh in opened:
            fh.close()
    return out


def check_sizes(files: Sequence[tuple[int, str]], source: str) -> None:
    """Check open files against the attachment limits before any is read.

    Args:
        files: (file descriptor, how to name it in an error) per file, in order.
        source: where the files were named (``--attach``, ``column attachments``), for
            the error about their number.

    Raises:
        UsageError: naming the first file that is not a regular file, is over
            ``MAX_ATTACHMENT_BYTES``, or takes the files over ``MAX_ATTACHMENTS_TOTAL``
            (sizes from fstat of the open file: what is read, not what a path names now).
    """
    if len(files) > MAX_ATTACHMENTS:
        raise UsageError(
            f"{source}: {len(files)} files, over the limit of {MAX_ATTACHMENTS} per message"
        )
    total = 0
    for fd, who in files:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{who}: is not a regular file")
        if info.st_size > MAX_ATTACHMENT_BYTES:
            raise UsageError(
                f"{who}: {_mib(info.st_size)}, over the limit of "
                f"{_mib(MAX_ATTACHMENT_BYTES)} per file"
            )
        total += info.st_size
        if total > MAX_ATTACHMENTS_TOTAL:
            raise UsageError(
                f"{who}: the files come to {_mib(total)}, over the limit of "
                f"{_mib(MAX_ATTACHMENTS_TOTAL)} per message"
            )


def read_bounded(fh: Any, who: str) -> bytes:
    """An open file's bytes, never more than ``MAX_ATTACHMENT_BYTES``: a file that grew
    after `check_sizes` is refused (UsageError naming it), not read on. OSError passes."""
    data = fh.read(MAX_ATTACHMENT_BYTES + 1)
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise UsageError(f"{who}: over the limit of {_mib(MAX_ATTACHMENT_BYTES)} per file")
    return bytes(data)


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB" if size % (1024 * 1024) else f"{size >> 20} MiB"


def message_part(msg: Mapping[str, Any]) -> bytes:
    """The `message` part: the message object as compact UTF-8 JSON (what gets signed)."""
    return json.dumps(dict(msg), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Form:
    """An encoded multipart create: what is sent, what is signed, what is shown."""

    content_type: str
    body: bytes
    signed: bytes  # the message part's text
    summary: bytes  # the body with each file's bytes replaced by a one-line summary
    disposition: str = "attachment"
    files: tuple[AttachedFile, ...] = ()


def encode(msg: Mapping[str, Any], files: Sequence[AttachedFile], disposition: str) -> Form:
    from urllib3.filepost import encode_multipart_formdata

    if disposition not in DISPOSITIONS:
        raise UsageError(f"disposition must be attachment or inline, not {disposition!r}")
    text = message_part(msg)
    boundary = "outkit-" + secrets.token_hex(16)

    def fields(summarised: bool) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = [
            ("message", (None, text, "application/json")),
            ("disposition", (None, disposition.encode(), None)),
        ]
        for f in files:
            data = f.data
            if summarised:
                data = f"[{len(f.data)} bytes from {f.path}]".encode("utf-8", "replace")
            out.append(("attachments[]", (f.filename, data, f.content_type)))
        return out

    body, content_type = encode_multipart_formdata(fields(False), boundary=boundary)
    summary, _ = encode_multipart_formdata(fields(True), boundary=boundary)
    if boundary.encode() in text or any(boundary.encode() in f.data for f in files):
        raise UsageError("the multipart boundary occurs in the data; run the command again")
    return Form(content_type, body, text, summary, disposition, tuple(files))


def _curl_quoted(text: str) -> str:
    # inside double quotes in a curl -F value, backslash escapes " and \
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def curl_command(method: str, url: str, headers: Mapping[str, str], form: Form) -> str:
    """A runnable curl command that sends the same parts: curl builds the body with its
    own boundary, which the signature (over the message part) does not cover."""
    from outkit_cli.terminal import shell_quote

    parts = [f"curl -sS -X {method} {shell_quote(url)}"]
    for name, value in headers.items():
        if name.lower() not in ("content-type", "content-length", "connection"):
            parts.append(f"-H {shell_quote(f'{name}: {value}')}")
    # --form-string: the value is taken as it is (-F would read '@...' or '<...' as a file)
    parts.append(f"--form-string {shell_quote('message=' + form.signed.decode('utf-8'))}")
    parts.append(f"--form-string {shell_quote('disposition=' + form.disposition)}")
    for f in form.files:
        value = (
            f"attachments[]=@{_curl_quoted(f.path)};filename={_curl_quoted(f.filename)};"
            f"type={f.content_type}"
        )
        parts.append(f"-F {shell_quote(value)}")
    return " \\\n  ".join(parts)
