"""`outkit keys test [NAME]`: do these credentials work? One harmless signed request.

It GETs a message id that cannot exist: 404 means the key, passphrase and signature were
accepted; 401 means they were not (the server says why). The `keys` group attaches this
command as `test`; module-level imports stay light because `outkit keys --help` loads it.
"""

from __future__ import annotations

import time
from typing import Any

import click

from outkit_cli.commands import command
from outkit_cli.commands.options import (
    OutputSpec,
    complete_profile,
    network_options,
    output_options,
)

# A syntactically valid id that no message will ever have.
PROBE_ID = "00000000-0000-0000-0000-000000000000"


def probe(settings: Any) -> dict[str, Any]:
    """One authenticated GET; returns the report, raises OutkitError on failure."""
    from outkit_cli.client import SKEW_REPORT_SECONDS, Client, message_path

    with Client(settings) as client:
        started = time.monotonic()
        resp = client.request("GET", message_path(PROBE_ID), accept=(404,))
        latency = time.monotonic() - started
    skew = resp.skew
    return {
        "profile": settings.profile,
        "api_url": settings.api_url,
        "key": settings.key,
        "signed": settings.signed,
        "ok": True,
        "http_status": resp.status,
        "latency_ms": round(latency * 1000, 1),
        "clock_skew_s": None if skew is None else round(skew, 1),
        "clock_ok": skew is None or abs(skew) <= SKEW_REPORT_SECONDS,
    }


@command(
    "test",
    summary="Check that a profile's credentials are accepted by the API.",
    exit_codes={0: "credentials OK", 2: "unknown profile or bad setting",
                3: "rejected (the server's reason is shown)", 5: None, 6: None, 7: None,
                8: "unreachable"},
    examples=["outkit keys test", "outkit keys test production --json",
              "outkit -p staging keys test --timeout 5"],
)  # fmt: skip
@click.argument("name", required=False, metavar="[NAME]", shell_complete=complete_profile)
@network_options
@output_options
@click.pass_obj
def keys_test(
    app: Any,
    output: OutputSpec,
    name: str | None,
    timeout: float | None,
    retries: int | None,
) -> None:
    """NAME defaults to the selected profile; with NAME, that profile's own credentials only
    (OUTKIT_ACCESS_* are ignored). Makes one harmless authenticated request and
    reports whether the credentials are accepted, the latency, and whether this machine's
    clock agrees with the server's."""
    if name is not None:
        app = app.with_profile(name)
    settings = app.settings(timeout=timeout, retries=retries)
    report = probe(settings)
    from outkit_cli.output import emit

    emit(output, [report], single=True, human=lambda: _print_human(report))


def _print_human(report: dict[str, Any]) -> None:
    from outkit_cli.client import describe_skew

    ok = click.style("credentials OK", fg="green")
    skew = report["clock_skew_s"]
    if skew is None:
        clock = "unknown (the server sent no Date header)"
    elif abs(skew) < 2:  # the Date header has whole seconds: closer than this is noise
        clock = "in sync with the server"
    elif report["clock_ok"]:
        clock = f"in sync with the server (off by {skew:+.0f} s)"
    else:
        clock = click.style(
            f"{describe_skew(skew)}: signed requests may be rejected; sync the clock (NTP)",
            fg="yellow",
        )
    from outkit_cli.terminal import one_line

    rows = [  # profile, URL and key come from a file: shown, never acted on
        ("profile", one_line(report["profile"] or "(environment)")),
        ("api_url", one_line(report["api_url"])),
        ("key", one_line(report["key"] or "")),
        ("signed", "yes" if report["signed"] else "no (sends the secret)"),
        ("result", ok),
        ("latency", f"{report['latency_ms']:.0f} ms"),
        ("clock", clock),
    ]
    for label, value in rows:
        click.echo(f"{label:<8} {value}")
