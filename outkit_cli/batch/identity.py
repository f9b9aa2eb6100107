"""Row identity: which message a row is, from its content, so that editing a file never
sends a row twice.

A row is the message its content makes: its own fields and data together with what the
command gives every row (the command's message options, `--data`, `--data-file`,
`--message-file`; not the profile's defaults, which may differ from machine to machine).
The identity is a hash of that content; the n-th row with the same content in one file
(n >= 2) adds `-n`, so identical rows stay distinct messages and removing one of them
leaves the others' identities as they were. A row's own `id_from_submitter` is its
identity; two rows with the same one are refused.

The identity is also the `id_from_submitter` a row is sent with (`outkit-<hash>[-n]`),
so a rerun can find a row on the server when its journal is lost. `--resend` starts a
new generation g: the rows get `-r<g>` and are new messages.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

PREFIX = "outkit-"
_DIGEST_BYTES = 15  # 120 bits: 24 base32 characters


def content_digest(value: Any) -> bytes:
    """A digest of a JSON-shaped value, independent of key order (sorted keys)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:_DIGEST_BYTES]


class RowIdentities:
    """Gives each row of one file its identity, in file order (not thread-safe).

    Memory: one small entry per distinct row content, for counting repeats."""

    def __init__(self, defaults: Mapping[str, Any], generation: int = 0) -> None:
        self._defaults = {k: v for k, v in defaults.items() if k != "id_from_submitter"}
        self._generation = generation
        self._seen: dict[bytes, int] = {}
        self._own: dict[str, int] = {}  # own id_from_submitter -> line

    def identity(self, line: int, fields: Mapping[str, Any]) -> str:
        """The row's identity (see the module docstring). Raises ValueError when the row's
        own id_from_submitter repeats an earlier row's."""
        own = fields.get("id_from_submitter")
        if own:
            first = self._own.setdefault(own, line)
            if first != line:
                raise ValueError(
                    f"id_from_submitter {own!r} is also line {first}'s: each row needs its own"
                )
            return own if not self._generation else f"{own}#r{self._generation}"
        content = {k: v for k, v in fields.items() if k != "id_from_submitter"}
        digest = content_digest({"command": self._defaults, "row": content})
        n = self._seen.get(digest, 0) + 1
        self._seen[digest] = n
        name = PREFIX + base64.b32encode(digest).decode("ascii").lower()
        if n > 1:
            name += f"-{n}"
        if self._generation:
            name += f"-r{self._generation}"
        return name

    def present(self, identity: str) -> bool:
        """Whether an identity of this rule names a row read so far (own ids too)."""
        if identity in self._own or identity.split("#", 1)[0] in self._own:
            return True
        if not identity.startswith(PREFIX):
            return False
        head, _, rest = identity[len(PREFIX) :].partition("-")
        try:
            digest = base64.b32decode(head.upper())
        except ValueError:
            return False
        n = next((int(p) for p in rest.split("-") if p.isdigit()), 1) if rest else 1
        return self._seen.get(digest, 0) >= n


def sent_id(identity: str) -> str:
    """The id_from_submitter a row with this identity is sent with."""
    return identity.split("#", 1)[0]
