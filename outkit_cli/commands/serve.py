"""`outkit serve`: run the local Outkit-compatible sandbox in the foreground."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import click

from outkit_cli.commands import command
from outkit_cli.errors import UsageError
from outkit_cli.terminal import escape_controls

# Ten years either way: enough for any test, and the Date header can still be formatted.
MAX_CLOCK_SKEW = 10 * 365 * 86400
# An hour per response: more is a hung server, which `kill -STOP` shows better
MAX_LATENCY_MS = 3_600_000


def _check_size(value: str) -> int:
    from outkit_cli.sandbox.storage import parse_size

    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _check_skew(value: float) -> float:
    # click's float type takes 'nan' and 'inf', which no clock can be off by
    if not math.isfinite(value) or abs(value) > MAX_CLOCK_SKEW:
        raise click.BadParameter(f"must be a number of seconds within ±{MAX_CLOCK_SKEW}")
    return value


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:g}"


def _finite(low: float, high: float) -> Any:
    """A click callback: a float from ``low`` to ``high`` that is a finite number.
    click's FloatRange lets 'nan' through (no comparison is true for it)."""

    def check(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
        if value is None:
            return None
        if not (math.isfinite(value) and low <= value <= high):
            raise click.BadParameter(
                f"{value:g} is out of range: a number from {_number(low)} to {_number(high)} "
                "is expected"
            )
        return value

    return check


def _check_rate_limit(ctx: click.Context, param: click.Parameter, value: float | None) -> Any:
    if value is None:
        return None
    # imported here: the sandbox's modules stay out of `outkit serve --help`
    from outkit_cli.sandbox.faults import RATE_LIMIT_MAX, RATE_LIMIT_MIN

    return _finite(RATE_LIMIT_MIN, RATE_LIMIT_MAX)(ctx, param, value)


@command(
    "serve",
    exit_codes={
        0: "stopped by Ctrl-C or SIGTERM",
        2: "bad option, port in use, or the data dir is in use by another outkit serve",
    },
    examples=[
        "outkit serve --port 0 --init-profile",
        "outkit -p sandbox send --template welcome --to you@example.com \\",
        "    --data name=Ada",
        "outkit serve --data-dir ./data --templates ./templates --rate-limit 10",
    ],
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    metavar="ADDR",
    help="Address to bind; anything but loopback is reachable from other machines.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8025,
    show_default=True,
    metavar="PORT",
    help="Port to bind; 0 picks a free one.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Where messages, keys and the outbox live "
    "(default: the user data dir, e.g. ~/.local/share/outkit/sandbox).",
)
@click.option(
    "--templates",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    metavar="DIR",
    help="Directory of your own templates: DIR/<project>/<template>.html|.txt|"
    ".css|.json (re-read when they change).",
)
@click.option(
    "--init-profile",
    "init_profile",
    is_flag=False,
    flag_value="sandbox",
    default=None,
    metavar="[NAME]",
    help="Write a profile (default name: sandbox) pointing at this sandbox.",
)
@click.option(
    "--rate-limit",
    type=float,
    callback=_check_rate_limit,
    metavar="N",
    help="Allow N requests per second per key (0.001 to 1,000,000), then answer 429 with "
    "Retry-After; every "
    "answer to the key advertises the limit (RateLimit-Policy, RateLimit headers).",
)
@click.option(
    "--no-rate-limit-headers",
    "rate_limit_headers",
    flag_value=False,
    default=True,
    help="With --rate-limit, keep the limit secret, as an API that does not advertise it "
    "(clients learn it from 429s only).",
)
@click.option(
    "--fail-rate",
    type=float,
    callback=_finite(0, 1),
    default=0.0,
    metavar="P",
    help="Answer this share of requests (0..1) with 503, doing nothing.",
)
@click.option(
    "--latency",
    type=float,
    callback=_finite(0, MAX_LATENCY_MS),
    default=0.0,
    metavar="MS",
    help="Milliseconds added to every response.",
)
@click.option(
    "--clock-skew",
    type=float,
    default=0.0,
    metavar="SECONDS",
    callback=lambda ctx, param, value: _check_skew(value),
    help="Pretend the server's clock is SECONDS ahead (negative: behind): signed requests "
    "more than 300 s off are refused (401), and the Date header shows the skewed time.",
)
@click.option(
    "--smtp",
    metavar="HOST:PORT",
    help="Deliver emails to this SMTP server (backend 'smtp', the default for "
    "email) instead of the outbox.",
)
@click.option(
    "--max-storage",
    metavar="SIZE",
    default="1G",
    show_default=True,
    callback=lambda ctx, param, value: _check_size(value),
    help="Refuse new messages (507 insufficient_storage) once the data dir (database and "
    "outbox) holds this much: 500M, 2G, ... (K, M, G, T are powers of 1024; 0: no limit).",
)
@click.option(
    "--inbox-token/--no-inbox-token",
    default=None,
    help="Require a token (printed at start) for the browser inbox [default: only when "
    "--host is not loopback]; --inbox-token protects it from other users of this machine.",
)
@click.option(
    "--pin-cpu/--no-pin-cpu",
    default=True,
    show_default=True,
    help="Run the server's threads on one CPU (Linux): they share one GIL, and on one "
    "core they hand it over without waking another, which makes creates faster; the "
    "server moves to another CPU when other work keeps its own busy, and render processes "
    "get the CPUs it started with. Nothing is pinned with one CPU allowed or on a Python "
    "without a GIL; the start-up lines say which CPU.",
)
@click.pass_obj
def serve(
    app: Any,
    host: str,
    port: int,
    data_dir: Path | None,
    templates: Path | None,
    init_profile: str | None,
    rate_limit: float | None,
    rate_limit_headers: bool,
    fail_rate: float,
    latency: float,
    clock_skew: float,
    smtp: str | None,
    max_storage: int,
    inbox_token: bool | None,
    pin_cpu: bool,
) -> None:
    """The first line on stdout is the base URL (http://127.0.0.1:PORT/v1); the browser
    inbox's URL (http://127.0.0.1:PORT/) and one log line per request go to stderr. Ctrl-C
    or SIGTERM stop it. On first start the data dir gets an API key pair (keys.json) and the
    built-in `demo` project (templates `welcome`, email, and `reminder`, SMS). Emails are
    written to a Maildir in DATA_DIR/outbox, SMS to DATA_DIR/outbox/sms.jsonl."""
    # first, before the sandbox's imports: a SIGTERM or Ctrl-C while starting stops the
    # sandbox once started (exit 0)
    from outkit_cli.sandbox.stopping import StopRequest

    stop = StopRequest().install()
    from outkit_cli.diagnostics import warn
    from outkit_cli.netaddr import is_loopback
    from outkit_cli.sandbox import runner
    from outkit_cli.sandbox.faults import Faults

    if init_profile is not None:
        from outkit_cli.commands.keys.profiles import check_name

        check_name(init_profile)  # before anything starts: the same rule as `keys add`
    if not is_loopback(host):
        warn(
            f"binding to {host or 'every interface'}: anyone who can reach this port and "
            "holds a sandbox key can send mail through the configured SMTP server and read "
            "every stored message; bind to 127.0.0.1 unless you mean that"
        )
    smtp_addr = None
    if smtp:
        try:
            smtp_addr = runner.parse_hostport(smtp)
        except ValueError as exc:
            raise UsageError(f"--smtp: {exc}") from None
    # absolute: the paths it logs and stores (an email's outbox file) hold from anywhere
    directory = (data_dir or runner.default_data_dir()).absolute()
    _take_data_dir(directory)  # an fd left open: the lock is held until the process exits
    from outkit_cli.sandbox import affinity

    # before runner.start: the threads it starts inherit the CPU
    pinned: affinity.Pinned | str | None = None  # the CPU, or why not
    if pin_cpu:
        try:
            pinned = affinity.pin_to_one_cpu()
        except affinity.NotPinned as exc:
            pinned = str(exc)
    else:
        affinity.forget_cpus()
    try:
        running = runner.start(
            host=host,
            port=port,
            data_dir=directory,
            templates=templates,
            faults=Faults(
                rate_limit=rate_limit,
                rate_limit_headers=rate_limit_headers,
                fail_rate=fail_rate,
                latency_ms=latency,
                clock_skew=clock_skew,
            ),
            smtp=smtp_addr,
            inbox_token=inbox_token,
            max_storage=max_storage,
        )
    except OSError as exc:
        raise UsageError(
            f"cannot start the sandbox on {host}:{port} with data dir {directory}: "
            f"{exc.strerror or exc}"
        ) from None
    except ValueError as exc:  # e.g. a keys.json that does not parse
        raise UsageError(str(exc)) from None
    running.stop = stop
    if stop.requested:  # while starting: nothing was printed, nothing is left half-done
        running.close()
        return
    from outkit_cli.sandbox.storage import exposure_warning

    exposed = exposure_warning(directory)
    if exposed:
        warn(exposed)
    if init_profile is not None:
        from outkit_cli.config import save_profile

        key = running.signed_key()
        try:
            save_profile(
                app.config_path,
                init_profile,
                {
                    "key": key.key,
                    "passphrase": key.passphrase,
                    "secret": key.secret,
                    "signed": True,
                    "api_url": running.url,
                    "project": "demo",
                },
            )
        except Exception:
            running.close()
            raise
        click.echo(
            f"wrote profile {init_profile!r} to {escape_controls(str(app.config_path))}", err=True
        )
    # the URL line comes after the profile is written: a script that waits for it can use
    # the profile at once
    click.echo(running.url)
    sys.stdout.flush()  # scripts waiting for the URL line see it now
    login = running.inbox_login
    click.echo(f"inbox: {running.inbox_url}" + (f" ({login})" if login else ""), err=True)
    click.echo(f"sandbox data in {escape_controls(str(directory))}; Ctrl-C to stop", err=True)
    if isinstance(pinned, affinity.Pinned):
        affinity.Rebalancer(pinned.cpu, pinned.allowed, log=running.app.log).start()
        click.echo(
            f"threads on CPU {pinned.cpu} (of {affinity.format_cpus(pinned.allowed)}; moved "
            "when other work keeps it busy; --no-pin-cpu to leave them free)",
            err=True,
        )
    elif pinned is not None:
        click.echo(f"threads not pinned to a CPU: {pinned}", err=True)
    running.serve_until_stopped()
    # the log's last line says it stopped cleanly, not that it died
    click.echo("outkit serve stopped", err=True)


def _take_data_dir(directory: Path) -> int | None:
    """The data dir's lock, before anything in it is touched or a profile is written."""
    from outkit_cli.fsutil import ensure_private_dir
    from outkit_cli.sandbox.datalock import DataDirInUse, lock_data_dir

    try:
        ensure_private_dir(directory)
        return lock_data_dir(directory)
    except DataDirInUse as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        what = exc.filename or directory  # the lock file, when it is the one refused
        raise UsageError(
            f"cannot use data dir {directory}: {what}: {exc.strerror or exc}"
        ) from None
