"""Print pip constraints pinning every runtime dependency to its declared lower bound.

CI installs with these (``make test-lowest``) so that the lower bounds in pyproject.toml are
versions the suite passes with, not guesses. Only ``>=`` bounds are pinned; markers are kept.
certifi is left free: it is a CA bundle (data, the newest is the right one), and the pinned
test tools need a recent one.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
UNPINNED = {"certifi"}


def lowest(requirements: list[str]) -> list[str]:
    """``["click>=8.2.1", "x>=1; python_version < '3.11'"]`` -> ``["click==8.2.1", ...]``."""
    pins = []
    for requirement in requirements:
        spec, _, marker = requirement.partition(";")
        match = re.match(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([^,\s]+)", spec)
        if match and match.group(1) not in UNPINNED:
            name = re.sub(r"\[.*\]", "", match.group(1))
            pin = f"{name}=={match.group(2)}"
            pins.append(f"{pin}; {marker.strip()}" if marker else pin)
    return pins


def main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    sys.stdout.write("".join(f"{line}\n" for line in lowest(project["dependencies"])))


if __name__ == "__main__":
    main()
