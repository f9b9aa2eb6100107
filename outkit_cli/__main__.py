"""The process entry point: the `outkit` console script and `python -m outkit_cli`.

Kept apart from cli.py, and free of imports at module level, so that it runs before click
is imported: start-up (issue 10) and Ctrl-C during start-up are handled here.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Import the CLI and run it; exit 130, silently, when interrupted while importing."""
    import gc

    # Importing click and the CLI creates tens of thousands of objects, all kept for the
    # life of the process: the cyclic collector would scan them some twenty times for
    # nothing (a tenth of `outkit sign`'s start-up, docs/benchmarks.md). So it is off while
    # importing; then those objects are frozen (moved out of the collector's view, as the
    # gc docs suggest for long-lived start-up objects) and it is on again before any
    # command runs. Without the freeze the first collection would scan them all at once.
    gc.disable()
    try:
        from outkit_cli.cli import main as run
    except KeyboardInterrupt:
        # Ctrl-C before the CLI could install its own handling: no traceback, the shell's
        # exit status for SIGINT (128 + 2), as the CLI itself exits later on
        sys.exit(130)
    finally:
        gc.freeze()
        gc.enable()
    run()


if __name__ == "__main__":
    main()
