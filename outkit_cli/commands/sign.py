"""`outkit sign METHOD PATH`: show exactly how a request is signed, verify a signature,
or print a ready-to-run curl command.

This command must start fast: it imports neither `requests` nor `rich`, so its human view
is drawn with click styling only.
"""

from __future__ import annotations

import sys
from typing import Any, BinaryIO

import click

from outkit_cli.commands import command
from outkit_cli.commands.options import OutputSpec, output_options
from outkit_cli.config import DEFAULT_API_PATH, DEFAULT_API_URL

# every C0 control and DEL as an escape, so that each byte of the pre-signature can be seen
# (str.translate, not a regex: nothing to compile at start-up)
_VISIBLE = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)}
_VISIBLE.update({0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"})

PART_COLOURS = {"timestamp": "cyan", "method": "magenta", "path": "green", "body": "yellow"}


def _arg_bytes(text: str) -> bytes:
    # argv that was not valid UTF-8 arrives as surrogate escapes: give back the original bytes
    return text.encode("utf-8", "surrogateescape")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def is_url(path: str) -> bool:
    if path.startswith("/"):  # never a URL: no need to import urllib.parse (issue 10)
        return False
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(path)
    except ValueError:  # 'http://[x': an unbalanced IPv6 bracket
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def check_credentials(**values: str | None) -> None:
    """Header values must be text: a flag holding invalid UTF-8 is refused, not crashed on."""
    from outkit_cli.errors import UsageError
    from outkit_cli.signing import is_utf8_text  # here: `sign --help` needs no hashlib

    for name, value in values.items():
        if value is not None and not is_utf8_text(value):
            raise UsageError(f"--{name} must be UTF-8 text")


def check_inputs(method: str, path: str, timestamp: str) -> None:
    from outkit_cli.errors import UsageError
    from outkit_cli.signing import is_utf8_text

    if not (method.isascii() and method.isalpha()):  # letters A-Z, a-z only
        raise UsageError(f"METHOD must be an HTTP method such as GET or POST, not {method!r}")
    if not is_utf8_text(path):
        raise UsageError("PATH must be UTF-8 text")
    if not (path.startswith("/") or is_url(path)):
        raise UsageError(
            f"PATH must start with / (e.g. /v1/messages) or be a full http(s) URL, not {path!r}"
        )
    if not is_timestamp(timestamp):
        raise UsageError(f"--timestamp must be Unix seconds such as 1496837645, not {timestamp!r}")


def is_timestamp(text: str) -> bool:
    """Unix seconds as ASCII digits, with decimals too (``1496837645.123``): the official
    JavaScript client sends them."""
    whole, dot, fraction = text.partition(".")
    return text.isascii() and whole.isdigit() and (not dot or fraction.isdigit())


def origin(url: str) -> str:
    """``url``'s origin (RFC 6454: scheme, host, port) as ``scheme://host[:port]``, the
    default port left out and the host lower-cased; ``url`` itself when it does not parse."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme.lower(), parts.hostname or "", parts.port
    except ValueError:  # a bad port or bracket: not comparable, so never "the same"
        return url
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{host}" + ("" if port in (None, default) else f":{port}")


def other_host_warning(
    api_url: str, path: str, settings_source: str, *, signed: bool = True
) -> str | None:
    """The warning when PATH is a full URL on another origin than the API URL in use: the
    printed --curl command and --json carry that key's real credentials there."""
    if not is_url(path):
        return None
    theirs, ours = origin(path), origin(api_url)
    if theirs == ours:
        return None
    what = "access key and passphrase" if signed else "access key, passphrase and secret"
    return (
        f"PATH is on {theirs}, not on the API host {ours} ({settings_source}): this output "
        f"carries the real {what} meant for {ours}; make sure {theirs} is meant"
    )


def request_url(api_url: str, path: str) -> str:
    """The URL a request for PATH goes to: PATH is the full path, so only the API URL's
    scheme and host are kept (`/v1/messages` + `http://h/v1` -> `http://h/v1/messages`)."""
    from urllib.parse import urlsplit

    if is_url(path):
        return path
    try:
        parts = urlsplit(api_url)
    except ValueError:  # 'http://[x': an unbalanced IPv6 bracket
        from outkit_cli.errors import UsageError

        raise UsageError(f"API URL {api_url!r} is not a valid URL") from None
    return f"{parts.scheme}://{parts.netloc}{path}"


def path_prefix_warning(api_url: str, path: str) -> str | None:
    """A warning when PATH lacks the API URL's path prefix: the service signs the full path."""
    if is_url(path):
        return None
    if api_url == DEFAULT_API_URL:  # its path is known: no urllib.parse at start-up
        prefix = DEFAULT_API_PATH
    else:
        from urllib.parse import urlsplit

        try:
            prefix = urlsplit(api_url).path.rstrip("/")
        except ValueError:  # not a URL at all: nothing to compare with (--curl says so)
            return None
    bare = path.split("?", 1)[0]
    if not prefix or bare == prefix or bare.startswith(prefix + "/"):
        return None
    return (
        f"PATH {path} does not start with {prefix}, the path of the API URL {api_url}; "
        f"the service signs the full path (did you mean {_prefixed(prefix, path)}?)"
    )


def _prefixed(prefix: str, path: str) -> str:
    """PATH under the API URL's path, not repeating what they share: `/v1/messages` under
    `/outkit/v1` is `/outkit/v1/messages`, `/messages` under it `/outkit/v1/messages`."""
    segments = prefix.strip("/").split("/")
    for i in range(len(segments)):
        tail = "/" + "/".join(segments[i:])
        if path == tail or path.startswith(tail + "/") or path.startswith(tail + "?"):
            return "/" + "/".join(segments[:i]) + path if i else path
    return prefix + path


# What RFC 3986 allows unencoded in a path and query (unreserved, sub-delims, ':', '@',
# '/', '?') plus '%' so that an already encoded PATH stays as it is.
_TARGET_SAFE = "/?:@!$&'()*+,;=-._~%"
# what quote(..., safe=_TARGET_SAFE) leaves as it is: _TARGET_SAFE and ASCII letters and digits
_TARGET_CHARS = frozenset(
    _TARGET_SAFE + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)


def encoding_warning(path: str) -> str | None:
    """A warning when PATH holds characters a request line cannot carry (a space, non-ASCII
    text): a client sends them percent-encoded (RFC 3986, section 2.1) and the service checks
    the signature over what was sent, so the path to sign is the encoded one."""
    if is_url(path) or _TARGET_CHARS.issuperset(path):  # the usual case: nothing to encode
        return None
    from urllib.parse import quote

    encoded = quote(path, safe=_TARGET_SAFE)
    if encoded == path:
        return None
    return (
        f"PATH {path!r} holds characters that are sent percent-encoded, and the signature "
        f"covers the path as sent: sign {encoded} instead"
    )


def signing_record(
    *,
    method: str,
    path: str,
    body: bytes,
    timestamp: str,
    key: str | None,
    passphrase: str | None,
    secret: str,
    signed: bool,
) -> dict[str, Any]:
    """Everything `sign` shows, as the `--json` object (real header values)."""
    from outkit_cli import signing

    method = method.upper()
    presig = signing.presignature(timestamp, method, path, body)
    sig = signing.signature(_arg_bytes(secret), presig)
    headers: dict[str, str] = {}
    # a missing key or passphrase is left out rather than sent empty; the human view says so
    if key:
        headers[signing.KEY_HEADER] = key
    if passphrase:
        headers[signing.PASSPHRASE_HEADER] = passphrase
    if signed:
        headers[signing.TIMESTAMP_HEADER] = timestamp
        headers[signing.SIGNATURE_HEADER] = sig
    else:
        headers[signing.SECRET_HEADER] = secret
    record: dict[str, Any] = {
        "timestamp": timestamp,
        "method": method,
        "path": signing.request_target(path),
        "body": _text(body),
        "presignature": _text(presig),
        "signature": sig,
        "headers": headers,
    }
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        import base64

        # JSON cannot carry arbitrary bytes: give them exactly, next to the lossy text
        record["body_base64"] = base64.b64encode(body).decode("ascii")
    return record


def visible(text: str) -> str:
    """Control characters escaped, so every byte of the pre-signature can be seen."""
    return text.translate(_VISIBLE)


def human_lines(record: dict[str, Any], body: bytes, *, signed: bool) -> list[str]:
    """The people's view: the four parts told apart, the signature, the headers."""
    from outkit_cli import signing
    from outkit_cli.output import color_enabled, mask
    from outkit_cli.terminal import current

    colour = color_enabled() and current().stdout_tty

    def style(text: str, part: str = "", bold: bool = False) -> str:
        return click.style(text, fg=PART_COLOURS.get(part), bold=bold or None) if colour else text

    lines = [style("Pre-signature", bold=True) + " = timestamp + method + path + body"]
    for part in PART_COLOURS:
        value, note = style(visible(record[part]), part), ""
        if part == "body":
            note = f"  ({len(body)} bytes)" if body else "(empty)"
        lines.append(f"  {part:<10} {value}{note}")
    joined = "".join(style(visible(record[part]), part) for part in PART_COLOURS)
    lines.append(f"  {'string':<10} {joined}")
    if visible(record["presignature"]) != record["presignature"]:
        lines.append(f"  {'':<10} (control characters are shown escaped, e.g. \\n)")
    lines += [
        "",
        style("Signature", bold=True) + " = base64(HMAC-SHA256(secret, pre-signature))",
        f"  {record['signature']}",
        "",
        style("Headers", bold=True),
    ]
    headers = record["headers"]
    hidden = (signing.PASSPHRASE_HEADER, signing.SECRET_HEADER)
    for name in (signing.KEY_HEADER, signing.PASSPHRASE_HEADER):
        if name not in headers:
            lines.append(f"  {name}: (not set: pass --key/--passphrase or use a profile)")
    for name, value in headers.items():
        lines.append(f"  {name}: {mask(value) if name in hidden else value}")
    if not signed:
        lines += [
            "",
            "This profile's key opted out of signing: it sends Outkit-Access-Secret instead "
            "of a timestamp and signature.",
        ]
    return lines


def read_body(body: str | None, body_file: str | None) -> bytes:
    from outkit_cli.errors import UsageError

    if body is not None and body_file is not None:
        raise UsageError("give the body with --body or --body-file, not both")
    if body is not None:
        return _arg_bytes(body)
    if body_file is None:
        return b""
    if body_file == "-":
        stream: BinaryIO = sys.stdin.buffer
        return stream.read()
    try:
        with open(body_file, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise UsageError(f"cannot read --body-file {body_file}: {exc.strerror}") from None


def mismatch_message(record: dict[str, Any], body: bytes, given: str, explicit_ts: bool) -> str:
    import json

    hint = "" if explicit_ts else "; no --timestamp was given, so the current time was used"
    return (
        f"signature {given!r} does not match: the secret gives {record['signature']} over the "
        f"pre-signature {json.dumps(record['presignature'], ensure_ascii=False)} "
        f"(timestamp {record['timestamp']}, method {record['method']}, path "
        f"{record['path']}, body {len(body)} bytes){hint}. Check the secret, the timestamp, "
        "the full path with its query string, and that the body is the exact bytes sent"
    )


NO_SECRET = (
    "no secret to sign with: pass --secret, set OUTKIT_ACCESS_SECRET, or use a profile "
    "(`outkit keys add NAME`, then --profile NAME or OUTKIT_PROFILE)"
)


@command(
    "sign",
    exit_codes={
        0: "signed (with --verify: the signature matches)",
        2: None,
        3: "no secret to sign with, or --verify: the signature does not match",
    },
    examples=[
        'outkit sign POST /v1/messages --body \'{"message":{"type":"email"}}\'',
        "outkit sign GET /v1/messages/42 --timestamp 1496837645 --verify 'WcgN...='",
        "outkit sign POST /v1/messages --body-file message.json --curl | sh",
        'outkit sign POST /v1/messages --multipart --body \'{"type":"email"}\'',
    ],
)
@click.argument("method")
@click.argument("path")
@click.option("--body", metavar="BODY", help="The request body, exactly as sent.")
@click.option(
    "--body-file",
    type=click.Path(dir_okay=False, allow_dash=True),
    metavar="FILE",
    help="Read the body from FILE as bytes (- is stdin).",
)
@click.option("--timestamp", metavar="N", help="Unix timestamp to sign (default: now).")
@click.option("--key", metavar="KEY", help="Access key (overrides OUTKIT_ACCESS_KEY and profile).")
@click.option(
    "--passphrase",
    metavar="PASSPHRASE",
    help="Passphrase (overrides OUTKIT_ACCESS_PASSPHRASE and the profile).",
)
@click.option(
    "--secret", metavar="SECRET", help="Secret (overrides OUTKIT_ACCESS_SECRET and the profile)."
)
@click.option(
    "--verify",
    "given",
    metavar="SIGNATURE",
    help="Check SIGNATURE: exit 0 when it matches, 3 when it does not.",
)
@click.option("--curl", is_flag=True, help="Print a ready-to-run curl command instead.")
@click.option(
    "--multipart",
    is_flag=True,
    help="The body is the `message` part of a create with attachments (what gets signed).",
)
@output_options
@click.pass_obj
def sign(
    app: Any,
    method: str,
    path: str,
    body: str | None,
    body_file: str | None,
    timestamp: str | None,
    key: str | None,
    passphrase: str | None,
    secret: str | None,
    given: str | None,
    curl: bool,
    multipart: bool,
    output: OutputSpec,
) -> None:
    """Shows the pre-signature with its parts, the signature and the headers. PATH is the
    full request path with its query string (/v1/messages, not /messages), or a full
    URL. The passphrase is masked here; --json and --curl carry real values."""
    from outkit_cli.diagnostics import warn
    from outkit_cli.errors import AuthError, UsageError

    if curl and (output.machine or given is not None):
        raise UsageError("--curl cannot be combined with --verify, --json or --field")
    explicit_ts = timestamp is not None
    if timestamp is None:
        from outkit_cli.signing import now

        timestamp = str(now())
    check_inputs(method, path, timestamp)
    check_credentials(key=key, passphrase=passphrase, secret=secret)
    data = read_body(body, body_file)
    settings = app.settings(key=key, passphrase=passphrase, secret=secret)
    if not settings.secret:
        raise AuthError(NO_SECRET)
    for problem in (encoding_warning(path), path_prefix_warning(settings.api_url, path)):
        if problem:
            warn(problem)
    # --curl and --json carry real values (the human view masks them): said when they are
    # for another host than the API URL's
    source = settings.sources.get("api_url", "the built-in default")
    other_host = other_host_warning(
        settings.api_url, path, f"API URL from {source}", signed=settings.signed
    )
    record = signing_record(
        method=method,
        path=path,
        body=data,
        timestamp=timestamp,
        key=settings.key,
        passphrase=settings.passphrase,
        secret=settings.secret,
        signed=settings.signed,
    )
    if curl:
        from outkit_cli.client import check_api_url
        from outkit_cli.message_view import curl_command, secret_warning

        # the API-URL rule of every command: no credentials over plain http to another host
        url = request_url(check_api_url(settings.api_url), path)
        if is_url(path):
            check_api_url(path)
        if other_host:
            warn(other_host)
        if settings.passphrase or not settings.signed:
            warn(secret_warning(signed=settings.signed))
        click.echo(
            curl_command(
                record["method"], url, record["headers"], data, body_file, multipart=multipart
            )
        )
        return
    if output.machine:
        from outkit_cli.output import emit

        if other_host:
            warn(other_host)
        emit(output, [record], single=True, human=lambda: None)
    if given is not None:
        import hmac

        if not hmac.compare_digest(record["signature"].encode(), _arg_bytes(given.strip())):
            raise AuthError(mismatch_message(record, data, given, explicit_ts))
        if not output.machine:
            click.echo(f"OK: the signature matches (timestamp {timestamp}).")
        return
    if not output.machine:
        # human_lines styles only when the terminal object says so: click's own isatty
        # check must not overrule it (a second source of terminal facts)
        click.echo("\n".join(human_lines(record, data, signed=settings.signed)), color=True)
        if multipart:
            click.echo(
                "\nA create with attachments (multipart/form-data) signs the text of its "
                "`message` part, given here as the body, as the JavaScript client does; the "
                "files are not covered. `outkit send --attach FILE --dry-run` shows the whole "
                "request."
            )
