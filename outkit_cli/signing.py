"""Request signing, exactly as the Outkit API reference describes it.

presignature = timestamp + METHOD + path-with-query + body; signature =
base64(HMAC-SHA256(secret, presignature)). Standard library only: `outkit sign`
must start fast and the sandbox verifies with the same functions.
"""

from __future__ import annotations

import binascii
import hmac
import time

KEY_HEADER = "Outkit-Access-Key"
PASSPHRASE_HEADER = "Outkit-Access-Passphrase"
TIMESTAMP_HEADER = "Outkit-Access-Timestamp"
SIGNATURE_HEADER = "Outkit-Access-Signature"
SECRET_HEADER = "Outkit-Access-Secret"


def is_utf8_text(value: object) -> bool:
    """Whether `value` (a str, or a JSON structure of them) can be encoded as UTF-8: False
    for text holding lone surrogates (a ``\\ud800`` JSON escape, or argv bytes that were
    not UTF-8, which Python keeps as surrogate escapes, PEP 383). Such text can be neither
    signed, sent in a request body (RFC 8259 section 8.1), nor stored in a TOML file. The
    one such check of the CLI (`send` data, `sign` arguments, `keys add` values)."""
    try:
        if isinstance(value, str):  # the common case, and 100 times cheaper than dumps
            value.encode("utf-8")
        elif isinstance(value, (dict, list)):
            import json

            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def request_target(path_or_url: str) -> str:
    """The path plus query string that gets signed, from a path or a full URL."""
    # only an http(s) URL with a host counts as a URL; anything else is signed as given
    # (urlsplit is not even tried on it: it raises on '//[' and costs time on every request)
    if not path_or_url[:8].lower().startswith(("http://", "https://")):
        return path_or_url
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(path_or_url)
    except ValueError:  # 'http://[x': an unbalanced IPv6 bracket is no URL either
        return path_or_url
    if parts.netloc:
        path = parts.path or "/"
        return f"{path}?{parts.query}" if parts.query else path
    return path_or_url


def presignature(timestamp: str | int, method: str, path: str, body: str | bytes = b"") -> bytes:
    """The exact bytes that are signed. ``body`` is the bytes sent (empty for GET)."""
    return (
        _bytes(str(timestamp))
        + method.upper().encode("ascii")
        + _bytes(request_target(path))
        + _bytes(body)
    )


def signature(secret: str | bytes, presig: bytes) -> str:
    # the one-shot form runs in OpenSSL; hmac.new builds a Python object per call
    digest = hmac.digest(_bytes(secret), presig, "sha256")
    # binascii, not base64: the same encoding without importing base64 (and struct) at startup
    return binascii.b2a_base64(digest, newline=False).decode("ascii")


def sign(
    secret: str | bytes, timestamp: str | int, method: str, path: str, body: str | bytes = b""
) -> str:
    return signature(secret, presignature(timestamp, method, path, body))


def verify(
    secret: str | bytes,
    timestamp: str,
    method: str,
    path: str,
    body: bytes,
    given: str,
) -> bool:
    """Constant-time check of a signature over the timestamp header's exact text."""
    expected = sign(secret, timestamp, method, path, body)
    return hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8", "replace"))


def now() -> int:
    return int(time.time())


def auth_headers(
    *,
    key: str,
    passphrase: str,
    secret: str,
    method: str,
    path: str,
    body: str | bytes = b"",
    signed: bool = True,
    timestamp: str | int | None = None,
) -> dict[str, str]:
    """The authentication headers for one request attempt.

    Signed keys never send the secret; keys that opted out of signing send it instead of
    a timestamp and signature. Call this for every attempt so retries get a fresh timestamp.
    """
    headers = {KEY_HEADER: key, PASSPHRASE_HEADER: passphrase}
    if not signed:
        headers[SECRET_HEADER] = secret
        return headers
    ts = str(now() if timestamp is None else timestamp)
    headers[TIMESTAMP_HEADER] = ts
    headers[SIGNATURE_HEADER] = sign(secret, ts, method, path, body)
    return headers
