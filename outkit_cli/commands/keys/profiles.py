"""Profiles as `outkit keys` shows and checks them: names, records, the fields listed.

Reading and writing the file is `outkit_cli.config`'s job (locked, atomic, never
overwriting a file that does not parse); this module only shapes what the commands show.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# what `keys list` and `keys show` print, in order; never the secret or passphrase in `list`
LIST_FIELDS = ("name", "key", "api_url", "signed", "default")
SHOW_FIELDS = (
    "name",
    "default",
    "key",
    "passphrase",
    "secret",
    "api_url",
    "signed",
    "project",
    "from",
    "backend",
    "timeout",
    "retries",
    "ca_bundle",
    "rate",
)


def stdin_is_tty() -> bool:
    from outkit_cli.terminal import current

    return current().stdin_tty


def check_name(name: str) -> None:
    from outkit_cli.errors import UsageError

    if not _NAME.fullmatch(name):
        raise UsageError(
            f"profile name {name!r} must start with a letter or digit and hold only letters, "
            "digits, '.', '_' and '-'"
        )


def profile_record(name: str, prof: Mapping[str, Any], default: str | None) -> dict[str, Any]:
    """A profile as shown: every known field, the built-in API URL when none is set."""
    from outkit_cli.config import DEFAULT_API_URL

    record: dict[str, Any] = {f: prof.get(f) for f in SHOW_FIELDS}
    record["name"] = name
    record["default"] = name == default
    record["api_url"] = prof.get("api_url") or DEFAULT_API_URL
    record["signed"] = prof.get("signed", True)
    return record


def list_records(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    from outkit_cli.config import default_profile_name, profiles

    default = default_profile_name(data)
    return [
        {f: rec[f] for f in LIST_FIELDS}
        for rec in (profile_record(n, p, default) for n, p in sorted(profiles(data).items()))
    ]


def remove_profile(data: dict[str, Any], name: str) -> str | None:
    """Drop a profile from parsed config data; returns the default profile afterwards."""
    from outkit_cli.config import profiles, unknown_profile

    if name not in profiles(data):
        raise unknown_profile(name, data)
    del data["profiles"][name]
    remaining = sorted(data["profiles"])
    if data.get("default_profile") == name or data.get("default_profile") not in remaining:
        data.pop("default_profile", None)
        if len(remaining) == 1:
            data["default_profile"] = remaining[0]
    return data.get("default_profile")


def default_marker(value: Any) -> str:
    return "*" if value else ""


LIST_COLUMNS = [
    ("name", "name"),
    ("key", "key"),
    ("api_url", "API URL"),
    ("signed", "signed"),
    ("default", "default"),
]


def stdout_is_tty() -> bool:
    from outkit_cli.terminal import current

    return current().stdout_tty
