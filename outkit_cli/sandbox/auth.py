"""Request authentication as the API reference describes it.

Every request carries Outkit-Access-Key and Outkit-Access-Passphrase. Signed keys add
Outkit-Access-Timestamp (integer or decimal Unix time, within MAX_SKEW seconds) and
Outkit-Access-Signature, computed over the timestamp header's exact text, the method, the
path with query string and the raw body bytes; they must not send the secret. Unsigned keys
send Outkit-Access-Secret. Every comparison of a secret value is constant-time, and no
message ever contains a secret.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable, Mapping

from outkit_cli import signing
from outkit_cli.sandbox.errors import unauthorized
from outkit_cli.sandbox.keys import ApiKey

MAX_SKEW = 300
_TIMESTAMP = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")


def _eq(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


class Authenticator:
    def __init__(self, keys: list[ApiKey], clock: Callable[[], float] = time.time) -> None:
        self._keys = {k.key: k for k in keys}
        self._clock = clock  # the sandbox's (possibly skewed, see --clock-skew) time

    def authenticate(
        self,
        headers: Mapping[str, str],
        method: str,
        target: str,
        body: bytes,
        also: tuple[bytes, ...] = (),
    ) -> ApiKey:
        """The request's key, or 401 `unauthorized` saying why. ``also``: other payloads
        a signature may cover instead of the body (a multipart create's message part,
        see attachments.py)."""
        key, timestamp, sig = self._check_head(headers)
        if timestamp is None or sig is None:
            return key  # an unsigned key's secret, checked
        if not any(
            signing.verify(key.secret, timestamp, method, target, payload, sig)
            for payload in (body, *also)
        ):
            what = "body (or the message part's text)" if also else "body"
            raise unauthorized(
                f"bad signature: {signing.SIGNATURE_HEADER} must be "
                f"base64(HMAC-SHA256(secret, timestamp + METHOD + path with query + {what})) "
                f"for {method} {signing.request_target(target)} with {len(body)} body bytes"
            )
        return key

    def precheck(self, headers: Mapping[str, str]) -> ApiKey:
        """What can be checked before the body is read: a known key, its passphrase, and
        either its secret (unsigned keys) or a timestamp within MAX_SKEW seconds and a
        signature header (the signature itself covers the body). The HTTP front end asks
        this before it reserves room for a request body, so that strangers cannot hold
        the body budget. Raises 401 `unauthorized` as `authenticate` does."""
        return self._check_head(headers)[0]

    def _check_head(self, headers: Mapping[str, str]) -> tuple[ApiKey, str | None, str | None]:
        """(key, timestamp, signature) after every check of the headers alone; timestamp
        and signature are None when an unsigned key's secret was given and is right."""
        key_id = headers.get(signing.KEY_HEADER)
        if not key_id:
            raise unauthorized(f"missing header {signing.KEY_HEADER}")
        key = self._keys.get(key_id)
        if key is None:
            raise unauthorized(f"unknown access key (check {signing.KEY_HEADER})")
        passphrase = headers.get(signing.PASSPHRASE_HEADER)
        if passphrase is None:
            raise unauthorized(f"missing header {signing.PASSPHRASE_HEADER}")
        if not _eq(passphrase, key.passphrase):
            raise unauthorized(
                f"wrong passphrase for this access key ({signing.PASSPHRASE_HEADER})"
            )
        given_secret = headers.get(signing.SECRET_HEADER)
        if not key.signed and given_secret is not None:
            if not _eq(given_secret, key.secret):
                raise unauthorized(f"wrong secret ({signing.SECRET_HEADER})")
            return key, None, None
        if key.signed and given_secret is not None:
            raise unauthorized(
                f"this key signs its requests: send {signing.TIMESTAMP_HEADER} and "
                f"{signing.SIGNATURE_HEADER}, never {signing.SECRET_HEADER}"
            )
        timestamp = headers.get(signing.TIMESTAMP_HEADER)
        sig = headers.get(signing.SIGNATURE_HEADER)
        if timestamp is None and sig is None and not key.signed:
            raise unauthorized(
                f"missing header {signing.SECRET_HEADER} (this key does not sign requests)"
            )
        if timestamp is None:
            raise unauthorized(f"missing header {signing.TIMESTAMP_HEADER}")
        if sig is None:
            raise unauthorized(f"missing header {signing.SIGNATURE_HEADER}")
        if not _TIMESTAMP.fullmatch(timestamp):
            raise unauthorized(
                f"malformed {signing.TIMESTAMP_HEADER}: expected Unix seconds such as "
                "1496837645 or 1496837645.123"
            )
        now = self._clock()
        if abs(now - float(timestamp)) > MAX_SKEW:
            raise unauthorized(
                f"stale timestamp: {signing.TIMESTAMP_HEADER} is {timestamp}, server time is "
                f"{int(now)} (allowed difference {MAX_SKEW} s)"
            )
        return key, timestamp, sig
