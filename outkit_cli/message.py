"""The message fields of the API, and building a valid message from options and files.

Everything here runs before a request is made: a problem is a `UsageError` (exit 2) with
one line naming it. Standard library only.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from outkit_cli import fields as _fields
from outkit_cli.errors import UsageError
from outkit_cli.signing import is_utf8_text

TYPES = ("email", "sms")
DEFAULT_TYPE = "email"

# The fields of a create request and of an answer: declared in fields.py.
STRING_FIELDS = _fields.STRING_FIELDS
BOOL_FIELDS = _fields.BOOL_FIELDS
FIELDS = _fields.names(_fields.SENT)
RESPONSE_FIELDS = _fields.RESPONSE_FIELDS
# Fields whose option value may be '@path' (read the file) or '@-' (read stdin).
FILE_FIELDS = _fields.FILE_FIELDS
# The option that sets each field, for error messages.
OPTION_FOR = {f.name: f.option for f in _fields.SENT if f.option}
_EMAIL_ONLY_FIELDS = tuple(f.name for f in _fields.SENT if f.email_only)
# besides `to` (check_recipient), fields that must hold email addresses in an email
_EMAIL_ADDRESS_FIELDS = tuple(f.name for f in _fields.SENT if f.email_address and f.name != "to")

# Message states (see the API reference): `done` says whether anything more will happen.
ERROR_STATUSES = frozenset({"render_error", "backend_error", "internal_error"})
# every status, in lifecycle order (reference/outkit-facts.md, "Lifecycle")
STATUSES = (
    "received", "queued_for_rendering", "rendered", "queued_for_delivery", "delivered",
    "render_error", "backend_error", "internal_error",
)  # fmt: skip


class Stdin:
    """Standard input, readable once: two options cannot both take '-'."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream
        self.used_by: str | None = None

    def read(self, who: str) -> str:
        if self.used_by is not None:
            raise UsageError(f"{who} and {self.used_by} cannot both read standard input")
        self.used_by = who
        stream = self._stream or sys.stdin
        try:
            return stream.read()
        except UnicodeDecodeError:
            raise UsageError(f"{who}: standard input is not valid UTF-8") from None


def read_text_file(path: str, who: str, stdin: Stdin) -> str:
    if path == "-":
        return stdin.read(who)
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{who}: file {path} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"{who}: {path} is a directory") from None
    except UnicodeDecodeError:
        raise UsageError(f"{who}: file {path} is not valid UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"{who}: cannot read {path}: {exc.strerror}") from None


def text_arg(value: str, who: str, stdin: Stdin) -> str:
    """'@path' reads a file, '@-' stdin, '@@text' is the literal '@text'."""
    if value.startswith("@@"):
        return value[1:]
    if value.startswith("@"):
        if len(value) == 1:
            raise UsageError(f"{who}: '@' needs a file name ('@path', or '@-' for stdin)")
        return read_text_file(value[1:], who, stdin)
    return value


def _reject_constant(name: str) -> Any:
    # Python's json takes NaN and Infinity; they are not JSON and the API refuses them
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    # 1e999 is valid JSON that Python reads as inf, which json.dumps would then send as
    # Infinity (not JSON); the sandbox and the API refuse it
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:40]} is too large (not a finite number)")
    return value


def loads_strict(text: str) -> Any:
    """Parse JSON text (RFC 8259) as the API accepts it: no NaN or Infinity constants and
    no number too large for a finite float (1e999).

    Raises ValueError (json.JSONDecodeError for a syntax error) and RecursionError.
    """
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)


def parse_json(text: str, who: str) -> Any:
    try:
        value = loads_strict(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        col = getattr(exc, "colno", None)
        where = f" at line {line}, column {col}" if line else ""
        msg = getattr(exc, "msg", str(exc))
        raise UsageError(f"{who}: invalid JSON{where}: {msg}") from None
    except RecursionError:
        raise UsageError(f"{who}: invalid JSON: nested too deeply") from None
    if not is_utf8_text(value):
        raise UsageError(f"{who}: invalid JSON: a \\u escape is a lone surrogate")
    return value


def load_json_object(path: str, who: str, stdin: Stdin) -> dict[str, Any]:
    value = parse_json(read_text_file(path, who, stdin), f"{who} {path}")
    if not isinstance(value, dict):
        raise UsageError(f"{who} {path}: expected a JSON object, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def parse_data_items(items: Iterable[str]) -> dict[str, Any]:
    """`--data key=value` (a string) and `--data key:=<json>` (any JSON value)."""
    data: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise UsageError(f"--data {item!r}: expected key=value or key:=<json>")
        typed = key.endswith(":")
        if typed:
            key = key[:-1]
        if not key:
            raise UsageError(f"--data {item!r}: the key is empty")
        data[key] = parse_json(raw, f"--data {key}") if typed else raw
    return data


def message_from_file(path: str, stdin: Stdin) -> dict[str, Any]:
    """A whole message from JSON: the message object, or the API's {"message": {...}}."""
    obj = load_json_object(path, "--message-file", stdin)
    if set(obj) == {"message"} and isinstance(obj["message"], dict):
        obj = obj["message"]
    for key, value in obj.items():
        check_field(key, value, f"--message-file {path}")
    return dict(obj)


def check_field(name: str, value: Any, where: str) -> None:
    if name not in FIELDS:
        raise UsageError(f"{where}: unknown message field {name!r}")
    if value is None:
        return
    if name in BOOL_FIELDS and not isinstance(value, bool):
        raise UsageError(f"{where}: {name} must be true or false")
    if name in STRING_FIELDS and not isinstance(value, str):
        raise UsageError(f"{where}: {name} must be a string")
    if name == "data" and not isinstance(value, dict):
        raise UsageError(f"{where}: data must be a JSON object")


def build_message(
    *,
    options: Mapping[str, Any],
    message_file: str | None = None,
    data_file: str | None = None,
    data_items: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
    stdin: Stdin | None = None,
) -> dict[str, Any]:
    """The message to send. Precedence: options > message file > profile defaults.

    ``options`` maps field names to option values (None = not given); values of
    FILE_FIELDS may be '@path'. ``defaults`` holds the profile's project, from, backend.
    """
    stdin = stdin or Stdin()
    msg: dict[str, Any] = message_from_file(message_file, stdin) if message_file else {}
    for name, value in options.items():
        if value is None:
            continue
        check_field(name, value, OPTION_FOR.get(name, name))
        if name in FILE_FIELDS:
            value = text_arg(value, OPTION_FOR[name], stdin)
        msg[name] = value
    data = dict(msg.get("data") or {})
    if data_file:
        data.update(load_json_object(data_file, "--data-file", stdin))
    data.update(parse_data_items(data_items))
    if data or "data" in msg:
        msg["data"] = data
    if msg.get("type") is None:
        msg["type"] = DEFAULT_TYPE
    apply_defaults(msg, defaults or {})
    # null in a message file means "not set"
    return {k: v for k, v in msg.items() if v is not None}


@dataclass(frozen=True)
class MessageInput:
    """A message as the command line gives it, before profile defaults: field options
    (API field name -> value, None when not given; FILE_FIELDS may be '@path'), a message
    file, a data file and `--data` items. `send` builds one message from it; a batch
    builds the defaults every row inherits."""

    options: Mapping[str, Any]
    message_file: str | None = None
    data_file: str | None = None
    data_items: tuple[str, ...] = ()

    def given(self) -> set[str]:
        """The fields set by an option (not by the message file or a default)."""
        return {k for k, v in self.options.items() if v is not None}

    def build(
        self, *, defaults: Mapping[str, Any] | None = None, stdin: Stdin | None = None
    ) -> dict[str, Any]:
        """The message (see build_message); raises UsageError for bad input."""
        return build_message(
            options=self.options,
            message_file=self.message_file,
            data_file=self.data_file,
            data_items=self.data_items,
            defaults=defaults,
            stdin=stdin,
        )


def apply_defaults(msg: dict[str, Any], defaults: Mapping[str, Any]) -> None:
    """Profile defaults fill only what the message leaves open (either form of a field)."""
    if defaults.get("project") and not (msg.get("project") or msg.get("project_id")):
        msg["project"] = defaults["project"]
    if defaults.get("backend") and not (msg.get("backend") or msg.get("backend_id")):
        msg["backend"] = defaults["backend"]
    # a profile's sender is an email sender: never put it on an SMS
    if defaults.get("from") and not msg.get("from") and msg.get("type") == "email":
        msg["from"] = defaults["from"]


def _given(msg: Mapping[str, Any], *names: str) -> list[str]:
    return [n for n in names if msg.get(n) not in (None, "")]


def _opts(names: Iterable[str]) -> str:
    return " and ".join(OPTION_FOR[n] for n in names)


def validate_message(msg: Mapping[str, Any]) -> None:
    """Raise UsageError naming the first problem that the API would reject."""
    check_values(msg)
    check_shape(msg)


def check_values(msg: Mapping[str, Any]) -> None:
    """The checks that look at field values (text, recipient, header line breaks)."""
    for name, value in msg.items():
        if not is_utf8_text(value):
            raise UsageError(f"{OPTION_FOR.get(name, name)} is not valid UTF-8 text")
    kind = msg.get("type")
    if kind not in TYPES:
        raise UsageError(f"unknown message type {kind!r} (use {' or '.join(TYPES)})")
    if not str(msg.get("to") or "").strip():
        raise UsageError("missing recipient: give --to")
    for field in _fields.HEADER_FIELDS:
        value = msg.get(field.name)
        # a header value: the API refuses line breaks (they would inject headers)
        if isinstance(value, str) and ("\n" in value or "\r" in value):
            raise UsageError(f"{OPTION_FOR[field.name]} must not contain a line break")
        if isinstance(value, str) and (control := _fields.header_control(value)):
            raise UsageError(
                f"{OPTION_FOR[field.name]} must not contain a control character "
                f"(U+{ord(control):04X})"
            )
    check_recipient(kind, msg["to"])
    for name in _EMAIL_ADDRESS_FIELDS if kind == "email" else ():
        value = msg.get(name)
        if isinstance(value, str) and not is_email_address(value):
            raise UsageError(f"{OPTION_FOR[name]} {value!r} is not an email address")


# What the API refuses as a recipient, checked before sending (the sandbox applies the
# same rule to email; the API reference: `to` is "an email address or phone number").
_SIMPLE_EMAIL = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+")
_PHONE = re.compile(r"\+?[0-9]{3,15}")
_PHONE_PUNCTUATION = str.maketrans("", "", " -.()/")


def is_phone_number(value: str) -> bool:
    """E.164 (`+4790000000`: a plus and up to 15 digits) or local digits (`90000000`),
    spaces, dashes, dots, slashes and parentheses allowed between them."""
    return _PHONE.fullmatch(value.strip().translate(_PHONE_PUNCTUATION)) is not None


def is_email_address(value: str) -> bool:
    """An address (`jane@example.com`), a named one (`Jane <jane@example.com>`) or a list
    of them: each must have an `@` (what the API checks; RFC 5322 syntax via
    email.utils.getaddresses)."""
    if _SIMPLE_EMAIL.fullmatch(value.strip()):
        return True
    from email.utils import getaddresses

    addresses = getaddresses([value])
    return bool(addresses) and all("@" in addr and addr.strip() for _, addr in addresses)


def check_recipient(kind: str, to: str) -> None:
    """Raise UsageError when `to` cannot be a recipient of a message of type `kind`."""
    if kind == "email" and not is_email_address(to):
        if is_phone_number(to):
            raise UsageError(
                f"recipient {to!r} is a phone number, not an email address: an SMS needs "
                "--type sms (or a type column), and so does an SMS template"
            )
        raise UsageError(f"recipient {to!r} is not an email address")
    if kind == "sms" and not is_phone_number(to):
        raise UsageError(
            f"recipient {to!r} is not a phone number (E.164 like +4790000000, or local digits)"
        )


def check_shape(msg: Mapping[str, Any]) -> None:
    """The checks that depend only on the type and on which fields are set (so a batch
    can check each shape of row once)."""
    kind = msg.get("type")
    for pair in (("project", "project_id"), ("template", "template_id"), ("backend", "backend_id")):
        if len(_given(msg, *pair)) == 2:
            raise UsageError(f"{_opts(pair)} cannot be used together")
    if not _given(msg, "project", "project_id"):
        raise UsageError(
            "missing project: give --project or --project-id (or set it in the profile)"
        )
    groups = {
        "template": _given(msg, "template", "template_id"),
        "inline": _given(msg, "html_template_body", "text_template_body"),
        "bodies": _given(msg, "html_body", "text_body"),
    }
    used = [names for names in groups.values() if names]
    if len(used) > 1:
        raise UsageError(
            f"{OPTION_FOR[used[0][0]]} and {OPTION_FOR[used[1][0]]} cannot be used together "
            "(give a stored template, an inline template, or ready bodies)"
        )
    empty = [n for n in ("text_body", "html_body", "text_template_body", "html_template_body")
             if msg.get(n) == ""]  # fmt: skip
    if not used and empty:
        raise UsageError(f"nothing to send: the {_opts(empty)} given is empty")
    if not used:
        raise UsageError(
            "nothing to send: give --template, --template-id, --html-template/--text-template "
            "or --html-body/--text-body"
        )
    if msg.get("template_styles") and not msg.get("html_template_body"):
        raise UsageError("--template-styles applies only to an inline --html-template")
    if kind == "sms":
        bad = _given(msg, *_EMAIL_ONLY_FIELDS)
        if bad:
            raise UsageError(
                f"an sms message has no {' or '.join(bad)} (email only): drop {_opts(bad)}"
            )


def request_body(msg: Mapping[str, Any]) -> bytes:
    """The exact bytes POSTed (and signed): the API's {"message": {...}} wrapper."""
    return json.dumps({"message": dict(msg)}, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def check_field_names(names: Iterable[str]) -> None:
    """--field names checked before sending: a typo must not cost a sent message."""
    known = set(FIELDS) | set(RESPONSE_FIELDS)
    for name in names:
        if name not in known:
            raise UsageError(f"unknown field {name!r} (fields: {', '.join(sorted(known))})")


def is_failed(message: Mapping[str, Any]) -> bool:
    status = message.get("status")  # from the server: any JSON value (a list is unhashable)
    return isinstance(status, str) and status in ERROR_STATUSES
