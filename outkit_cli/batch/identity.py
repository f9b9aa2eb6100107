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
from array import array
from collections.abc import Mapping
from typing import Any

PREFIX = "outkit-"
_DIGEST_BYTES = 15  # 120 bits: 24 base32 characters


def content_digest(value: Any) -> bytes:
    """A digest of a JSON-shaped value, independent of key order (sorted keys)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:_DIGEST_BYTES]


class DigestTable:
    """A set of 64-bit keys with a number for each (a count or a line), in flat arrays:
    8 bytes a key, at most 85% full (open addressing, double hashing). Numbers other than 1
    are kept aside (a count: few rows repeat) or, with ``numbered``, in a second array
    of 8 bytes a slot (a line: every row has its own). The keys are digests' first 64
    bits: uniform already.

    What the batch remembers per row, so that a 200,000-row run does not hold 200,000
    Python objects (docs/batch.md, "Memory"). Two different keys are never confused;
    two different digests sharing their first 64 bits would be (one chance in about 10^9
    for 200,000 rows)."""

    _MAX_LOAD = 0.85

    def __init__(self, expected: int = 0, *, numbered: bool = False) -> None:
        size = 1024
        while size * self._MAX_LOAD < expected:
            size *= 2
        self._keys = array("Q", bytes(8 * size))  # 0: an empty slot
        self._values = array("Q", bytes(8 * size)) if numbered else None
        self._used = 0
        self._numbers: dict[int, int] = {}  # the numbers other than 1 (without _values)

    @staticmethod
    def key(digest: bytes) -> int:
        return int.from_bytes(digest[:8], "little") or 1

    def _slot(self, key: int) -> int:
        keys = self._keys
        mask = len(keys) - 1
        i = key & mask
        step = ((key >> 32) & mask) | 1  # odd: visits every slot of a power-of-two table
        while keys[i] != key and keys[i] != 0:
            i = (i + step) & mask
        return i

    def get(self, key: int) -> int:
        """The key's number; 0 when the key is not in the table."""
        i = self._slot(key)
        if self._keys[i] != key:
            return 0
        if self._values is not None:
            return self._values[i]
        return self._numbers.get(key, 1)

    def put(self, key: int, number: int) -> None:
        """Add ``key`` (or renumber it); ``number`` is at least 1."""
        i = self._slot(key)
        if self._keys[i] != key:
            self._keys[i] = key
            self._used += 1
        if self._values is not None:
            self._values[i] = number
        elif number == 1:
            self._numbers.pop(key, None)
        else:
            self._numbers[key] = number
        if self._used > len(self._keys) * self._MAX_LOAD:
            self._grow()

    def _grow(self) -> None:
        keys, values = self._keys, self._values
        self._keys = array("Q", bytes(16 * len(keys)))
        if values is not None:
            self._values = array("Q", bytes(16 * len(keys)))
        for j, key in enumerate(keys):
            if key:
                i = self._slot(key)
                self._keys[i] = key
                if values is not None and self._values is not None:
                    self._values[i] = values[j]


class RowIdentities:
    """Gives each row of one file its identity, in file order (not thread-safe).

    Memory: a fixed-size entry per row (`DigestTable`), whatever the row holds;
    ``expected_rows`` sizes the tables once when the row count is known."""

    def __init__(
        self, defaults: Mapping[str, Any], generation: int = 0, expected_rows: int = 0
    ) -> None:
        self._defaults = {k: v for k, v in defaults.items() if k != "id_from_submitter"}
        self._generation = generation
        self._expected = expected_rows
        self._seen = DigestTable(expected_rows)  # content digest -> rows with it so far
        self._own: DigestTable | None = None  # own id_from_submitter's digest -> its line

    @staticmethod
    def _own_key(own: str) -> int:
        return DigestTable.key(hashlib.sha256(own.encode("utf-8", "surrogatepass")).digest())

    def identity(self, line: int, fields: Mapping[str, Any]) -> str:
        """The row's identity (see the module docstring). Raises ValueError when the row's
        own id_from_submitter repeats an earlier row's."""
        own = fields.get("id_from_submitter")
        if own:
            if self._own is None:
                self._own = DigestTable(self._expected, numbered=True)
            key = self._own_key(own)
            first = self._own.get(key)
            if not first:
                self._own.put(key, line)
            elif first != line:
                raise ValueError(
                    f"id_from_submitter {own!r} is also line {first}'s: each row needs its own"
                )
            return own if not self._generation else f"{own}#r{self._generation}"
        content = {k: v for k, v in fields.items() if k != "id_from_submitter"}
        digest = content_digest({"command": self._defaults, "row": content})
        key = DigestTable.key(digest)
        n = self._seen.get(key) + 1
        self._seen.put(key, n)
        name = PREFIX + base64.b32encode(digest).decode("ascii").lower()
        if n > 1:
            name += f"-{n}"
        if self._generation:
            name += f"-r{self._generation}"
        return name

    def present(self, identity: str) -> bool:
        """Whether an identity of this rule names a row read so far (own ids too)."""
        if self._own is not None and self._own.get(self._own_key(identity.split("#", 1)[0])):
            return True
        if not identity.startswith(PREFIX):
            return False
        head, _, rest = identity[len(PREFIX) :].partition("-")
        try:
            digest = base64.b32decode(head.upper())
        except ValueError:
            return False
        n = next((int(p) for p in rest.split("-") if p.isdigit()), 1) if rest else 1
        return self._seen.get(DigestTable.key(digest)) >= n


def sent_id(identity: str) -> str:
    """The id_from_submitter a row with this identity is sent with."""
    return identity.split("#", 1)[0]


class BatchKey:
    """The content identity of a whole batch, for batch.locks.RowsLock: a hash of what the
    command gives every row and of the multiset of the rows' contents, which is exactly
    what the rows' identities (without a --resend generation) are made of. Copies of one
    file, a file rewritten with the same rows, or those rows in another order have one key.

    Cheaper than the identities: a sum of the rows' content digests (order-independent,
    constant memory, no count of repeats: a row twice adds its digest twice), and the
    command's part hashed once, not per row."""

    def __init__(self, defaults: Mapping[str, Any]) -> None:
        self._command = content_digest(
            {k: v for k, v in defaults.items() if k != "id_from_submitter"}
        )
        self._sum = 0

    def add(self, fields: Mapping[str, Any]) -> None:
        """Count one row in."""
        own = fields.get("id_from_submitter")
        if own:  # the row's identity is its own id, whatever its content
            digest = content_digest({"own": own})
        else:
            digest = content_digest({k: v for k, v in fields.items() if k != "id_from_submitter"})
        self._sum = (self._sum + int.from_bytes(digest, "big")) % (1 << 128)

    def hexdigest(self) -> str:
        """32 hex digits (128 bits)."""
        return hashlib.sha256(self._command + self._sum.to_bytes(16, "big")).hexdigest()[:32]
