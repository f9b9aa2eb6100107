"""Every field of an Outkit message, declared once.

One `Field` per field of the message object (API reference, "Messages": the create
request's `message` object and the `data` object of every answer). Everything that
enumerates message fields reads this table: `outkit send`'s options
(`commands/send.py`), the message builder and its checks (`message.py`), the batch's CSV
columns and JSON Lines keys (`batch/rows.py`, through `message.py`), the record view
(`message_view.py`), and the sandbox's validation, stored object and delivered headers
(`sandbox/app.py`, `sandbox/delivery.py`). A test (`tests/test_fields.py`) fails when a
declared field is missing from any of them.

Plain data, standard library only: the sandbox (which stands alone) imports it, and so
may any start-up path. To add a field, add one `Field` below and a line to docs/send.md's
option table (ARCHITECTURE.md, "Add a message field").
"""

from __future__ import annotations

from typing import NamedTuple

# Sandbox limits (docs/sandbox.md). A large email template is tens of KB; a subject is one
# header, folded into lines of at most 998 characters (RFC 5322 2.1.1) when delivered, and
# mail clients show about 80.
MAX_TEMPLATE_BYTES = 512 * 1024  # UTF-8 bytes of a template source (field or file)
MAX_SUBJECT_CHARS = 4096  # characters, of the subject as given and as rendered


class Field(NamedTuple):
    """One message field.

    name: the API's name (`html_template_body`).
    type: its JSON type: "string", "bool" or "object".
    option: the long option of `outkit send` that sets it (`--html-template`); None for a
        field only the API sets.
    short, metavar, help: the rest of that option (help without the '@FILE' sentence,
        which `file` adds).
    sent: a client may send it in a create request (and a batch row may hold it).
    answered: every message object the API answers carries it (null when unset).
    shown: a line of `outkit get`'s record view (in the order of this table).
    file: the option's value may be '@path' (read a file) or '@-' (stdin).
    header: the MIME header an email carries it in (the sandbox delivers it so); a header
        value may not contain a line break (the CLI and the sandbox refuse one).
    mailbox: the value is an RFC 5322 address list (a mailbox header: encoded as one).
    email_address: in an email message, each address must have an `@` (checked by the CLI,
        exit 2, and the sandbox, 422).
    email_only: an SMS has no such thing (the CLI refuses it on an SMS, exit 2).
    max_bytes, max_chars: the sandbox's size limits (UTF-8 bytes; characters), 422 beyond.
    """

    name: str
    type: str
    option: str | None = None
    short: str | None = None
    metavar: str | None = None
    help: str = ""
    sent: bool = True
    answered: bool = True
    shown: bool = False
    file: bool = False
    header: str | None = None
    mailbox: bool = False
    email_address: bool = False
    email_only: bool = False
    max_bytes: int | None = None
    max_chars: int | None = None


def _answer(name: str, type_: str = "string", *, shown: bool = False) -> Field:
    """A field only the API sets."""
    return Field(name, type_, sent=False, shown=shown)


# The order is the record view's (`shown`) and `outkit send --help`'s.
FIELDS: tuple[Field, ...] = (
    _answer("id", shown=True),
    _answer("status", shown=True),
    _answer("status_message", shown=True),
    _answer("done", "bool", shown=True),
    Field("type", "string", "--type", "-t", "email|sms", "Message type [default: email].",
          shown=True),
    Field("to", "string", "--to", None, "ADDRESS", "Recipient (email address or phone number).",
          shown=True, header="To", mailbox=True, email_address=True),
    Field("from", "string", "--from", None, "ADDRESS", "Sender [default: profile 'from'].",
          shown=True, header="From", mailbox=True),
    Field("subject", "string", "--subject", None, "SUBJECT", "Subject (email only).",
          shown=True, header="Subject", email_only=True, max_chars=MAX_SUBJECT_CHARS),
    Field("template", "string", "--template", None, "NAME", "Stored template, by identifier.",
          shown=True),
    Field("template_id", "string", "--template-id", None, "ID", "Stored template, by id."),
    Field("project", "string", "--project", None, "NAME", "Project identifier [default: profile].",
          shown=True),
    Field("project_id", "string", "--project-id", None, "ID", "Project, by id."),
    Field("backend", "string", "--backend", None, "NAME", "Delivery backend [default: profile].",
          shown=True),
    Field("backend_id", "string", "--backend-id", None, "ID", "Delivery backend, by id."),
    Field("html_body", "string", "--html-body", None, "HTML", "Ready HTML body (no rendering).",
          file=True, email_only=True),
    Field("text_body", "string", "--text-body", None, "BODY", "Ready text body (no rendering).",
          file=True),
    Field("html_template_body", "string", "--html-template", None, "HBS",
          "Inline HTML template.", file=True, email_only=True, max_bytes=MAX_TEMPLATE_BYTES),
    Field("text_template_body", "string", "--text-template", None, "HBS",
          "Inline text template.", file=True, max_bytes=MAX_TEMPLATE_BYTES),
    Field("template_styles", "string", "--template-styles", None, "CSS",
          "CSS for --html-template.", file=True, email_only=True, max_bytes=MAX_TEMPLATE_BYTES),
    Field("id_from_submitter", "string", "--id-from-submitter", None, "REF",
          "Your own reference, stored.", shown=True),
    Field("render_only", "bool", "--render-only", help="Render only, never deliver.",
          shown=True),
    Field("sync", "bool", "--sync", help="Render (and deliver) before the API answers."),
    Field("test", "bool", "--test", help="Test message: never handed to a real delivery backend.",
          shown=True),
    # template locals: `send` gives them as --data KEY=VALUE / --data-file (its own options)
    Field("data", "object", "--data"),
    _answer("backend_response", "object"),
    _answer("id_from_backend"),
    _answer("provider_id"),
    _answer("received_at", shown=True),
    _answer("queued_for_rendering_at"),
    _answer("rendered_at", shown=True),
    _answer("queued_for_delivery_at"),
    _answer("delivered_at", shown=True),
    _answer("failed_at", shown=True),
)  # fmt: skip

BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}


def names(fields: tuple[Field, ...]) -> tuple[str, ...]:
    return tuple(f.name for f in fields)


SENT = tuple(f for f in FIELDS if f.sent)
# a create request's fields by JSON type (a batch's columns are these, plus `attachments`)
STRING_FIELDS = names(tuple(f for f in SENT if f.type == "string"))
BOOL_FIELDS = names(tuple(f for f in SENT if f.type == "bool"))
# every message object the API answers carries these (null where unset)
ANSWERED_FIELDS = names(tuple(f for f in FIELDS if f.answered))
RESPONSE_FIELDS = names(tuple(f for f in FIELDS if f.answered and not f.sent))
RECORD_FIELDS = names(tuple(f for f in FIELDS if f.shown))
FILE_FIELDS = names(tuple(f for f in FIELDS if f.file))
HEADER_FIELDS = tuple(f for f in FIELDS if f.header)


# Control characters a header field's value may not hold (line breaks are named on their
# own): C0 but tab, DEL, C1, and the Unicode line and paragraph separators. Written raw into
# an email's header (NUL, ESC), they corrupt it or reach a reader's terminal.
_HEADER_CONTROLS = frozenset(
    [*map(chr, range(0x20)), *map(chr, range(0x7F, 0xA0)), "\u2028", "\u2029"]
) - {"\t", "\n", "\r"}


def header_control(value: str) -> str | None:
    """The first control character in a header field's value (see _HEADER_CONTROLS), or
    None. The CLI (exit 2) and the sandbox (422) apply this one rule."""
    if value.isprintable():  # C speed; most values
        return None
    return next((c for c in value if c in _HEADER_CONTROLS), None)
