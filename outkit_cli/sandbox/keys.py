"""The sandbox's API keys: created once per data dir in keys.json (mode 0600), reused after."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from outkit_cli.fsutil import write_atomic

KEYS_FILE = "keys.json"


@dataclass(frozen=True)
class ApiKey:
    name: str
    key: str
    passphrase: str
    secret: str
    signed: bool


def _new_key(name: str, signed: bool) -> ApiKey:
    return ApiKey(
        name=name,
        key="sbx_" + secrets.token_hex(10),
        passphrase=secrets.token_urlsafe(12),
        secret=secrets.token_urlsafe(32),
        signed=signed,
    )


def load_or_create_keys(data_dir: Path) -> list[ApiKey]:
    """The keys in ``data_dir/keys.json``; a signed and an unsigned key on first start."""
    path = data_dir / KEYS_FILE
    try:
        raw = json.loads(path.read_text("utf-8"))
        return [
            ApiKey(
                name=str(k["name"]),
                key=str(k["key"]),
                passphrase=str(k["passphrase"]),
                secret=str(k["secret"]),
                signed=bool(k.get("signed", True)),
            )
            for k in raw["keys"]
        ]
    except FileNotFoundError:
        pass
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a valid keys file ({exc}); fix or remove it") from None
    keys = [_new_key("sandbox", True), _new_key("sandbox-unsigned", False)]
    doc = {"keys": [asdict(k) for k in keys]}
    write_atomic(path, (json.dumps(doc, indent=2) + "\n").encode("utf-8"))
    return keys
