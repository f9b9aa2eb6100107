"""`outkit keys`: API key profiles in the config file, a module per subcommand.

`add`, `list` (listing.py), `show`, `remove`, `default`, and `test` (probe.py: it talks to
the API). Shared shapes and checks are in profiles.py.
"""

from __future__ import annotations

from outkit_cli.commands import command
from outkit_cli.commands.keys.add import add
from outkit_cli.commands.keys.default import default
from outkit_cli.commands.keys.listing import list_
from outkit_cli.commands.keys.probe import keys_test
from outkit_cli.commands.keys.remove import remove
from outkit_cli.commands.keys.show import show


@command(
    "keys",
    group=True,
    exit_codes={0: None, 2: "bad input, unknown profile, or a config file that does not parse",
                3: "keys test: the credentials were rejected", 8: "keys test: API unreachable"},
    examples=[
        "outkit keys add production --key KEY \\",
        "    --passphrase-stdin --secret-stdin < creds.txt",
        "outkit keys list",
        "outkit keys default production",
        "outkit keys test production",
    ],
)  # fmt: skip
def keys() -> None:
    """Each profile holds one API key, the API URL it talks to, and defaults for `send`."""


for _sub in (add, list_, show, remove, default):
    keys.add_command(_sub)
keys.add_command(keys_test, "test")
