"""`outkit get ID...`: show messages (GET /v1/messages/{id}); no id lists recent ones.

Kept lean on purpose: `outkit get ID --json` is run in loops by scripts, so rich is loaded
only to draw a table and requests only once a request is made.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from outkit_cli.commands import command
from outkit_cli.commands.options import OutputSpec, network_options, output_options, wait_options
from outkit_cli.errors import NotFoundError, OutkitError, RejectedError, UsageError
from outkit_cli.htmlhead import head_insertion_point
from outkit_cli.message import STATUSES
from outkit_cli.output import shown
from outkit_cli.terminal import current as current_terminal
from outkit_cli.terminal import escape_controls

DEFAULT_LIMIT = 20


@command(
    "get",
    exit_codes={
        0: None,
        2: None,
        3: None,
        4: "not found (with several ids: the first failure's code)",
        5: None,
        6: None,
        7: None,
        8: None,
        9: None,
        10: None,
    },
    examples=[
        "outkit get 6dc5b9a6-863a-4be2-bd58-8540f2d9120a",
        'status=$(outkit get "$id" --field status)',
        'outkit get "$id" --wait --json',
        'outkit get "$id" --body html > message.html',
        "outkit get --status render_error --limit 5",
        "outkit get --limit 1 -p sandbox",
    ],
)
@click.argument("ids", nargs=-1, metavar="[ID]...")
@wait_options(
    "Wait until each message is done.",
    "Give up waiting after this long, for all ids together (exit 10).",
)
@click.option(
    "--body",
    type=click.Choice(["html", "text"]),
    help="Print this rendered body raw (for piping), instead of the fields.",
)
@click.option(
    "--open",
    "open_",
    is_flag=True,
    help="Open the HTML body in the web browser; from the sandbox (outkit serve), the "
    "message's page in its inbox.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    metavar="N",
    help=f"Listing: at most N messages, newest first [default: {DEFAULT_LIMIT}].",
)
@click.option(
    "--status",
    type=click.Choice(STATUSES),
    metavar="STATUS",
    help="Listing: only messages in this status (received, ..., delivered, render_error, "
    "backend_error, internal_error).",
)
@click.option(
    "--id-from-submitter", metavar="REF", help="Listing: only messages with this reference."
)
@network_options
@output_options
@click.pass_context
def get(
    ctx: click.Context,
    output: OutputSpec,
    ids: tuple[str, ...],
    wait: bool,
    wait_timeout: float,
    body: str | None,
    open_: bool,
    limit: int | None,
    status: str | None,
    id_from_submitter: str | None,
    timeout: float | None,
    retries: int | None,
) -> None:
    """With several ids, every message that exists is shown; the exit code is that of the
    first failure."""
    filters = (limit, status, id_from_submitter)
    _check_combinations(output, ids, wait=wait, body=body, open_=open_, listing_filters=filters)
    settings = ctx.obj.settings(timeout=timeout, retries=retries)

    from outkit_cli.client import Client
    from outkit_cli.message_view import show_messages

    with Client(settings) as client:
        if not ids:
            resp = client.list_messages(
                limit=limit or DEFAULT_LIMIT, status=status, id_from_submitter=id_from_submitter
            )
            kept = len(resp.data)
            others = resp.listed - kept if kept < (limit or DEFAULT_LIMIT) else 0
            if id_from_submitter is not None and status is None and others > 0:
                from outkit_cli.diagnostics import warn

                # the check `send` advises after a lost answer: an empty list must not
                # read as "not sent" (docs/get.md)
                warn(
                    f"the server ignored the id_from_submitter filter (it listed {others} "
                    "other messages): a message missing here may still exist"
                )
            show_messages(output, resp.data, single=False)
            return
        messages, not_found, from_sandbox = _fetch(client, ids)
        late: list[OutkitError] = []
        if wait and messages:
            late += _wait_all(client, messages, wait_timeout)
    if body:
        late += _print_bodies(messages, body)
    elif not open_ or output.machine:  # --open alone: its one line, not the fields too
        show_messages(output, messages, single=len(ids) == 1)
    if open_:
        root = _inbox_root(settings.api_url) if from_sandbox else None
        late += _open_in_inbox(messages, root) if root else _open_bodies(messages)
    _exit_with(ctx, not_found, late)


def _check_combinations(
    output: OutputSpec,
    ids: tuple[str, ...],
    *,
    wait: bool,
    body: str | None,
    open_: bool,
    listing_filters: tuple[Any, ...],
) -> None:
    if not ids:
        for flag, used in (("--wait", wait), ("--body", body), ("--open", open_)):
            if used:
                raise UsageError(f"{flag} needs a message ID")
    elif any(f is not None for f in listing_filters):
        raise UsageError("--limit, --status and --id-from-submitter apply only to listing (no ID)")
    if body and output.machine:
        raise UsageError("--body cannot be used with --json or --field")
    for message_id in ids:
        if not message_id.strip():
            raise UsageError("a message ID is empty")


def _fetch(
    client: Any, ids: tuple[str, ...]
) -> tuple[list[dict[str, Any]], list[OutkitError], bool]:
    """Every message that exists; a missing (or refused) id does not stop the others.

    The flag: an answer came from `outkit serve` (its Server header), whose browser inbox
    can show the message."""
    messages: list[dict[str, Any]] = []
    failures: list[OutkitError] = []
    from_sandbox = False
    for message_id in ids:
        try:
            resp = client.get_message(message_id)
            messages.append(resp.data)
            from_sandbox |= str(resp.headers.get("Server", "")).startswith(SANDBOX_SERVER)
        except (NotFoundError, RejectedError) as exc:
            exc.message = f"message {message_id}: {exc.message}"
            _report(exc)
            failures.append(exc)
    return messages, failures, from_sandbox


def _wait_all(
    client: Any, messages: list[dict[str, Any]], wait_timeout: float
) -> list[OutkitError]:
    from outkit_cli.waiting import outcome_error, wait_until_done

    deadline = time.monotonic() + wait_timeout
    failures = []
    for i, msg in enumerate(messages):
        try:
            messages[i], timed_out = wait_until_done(client, msg, deadline=deadline)
        except OutkitError as exc:
            # the API stopped answering: show what is known so far, then fail with its code
            failures.append(exc)
            break
        problem = outcome_error(messages[i], timed_out, wait_timeout)
        if problem is not None:
            failures.append(problem)
    return failures


def _print_bodies(messages: Sequence[Mapping[str, Any]], kind: str) -> list[OutkitError]:
    failures: list[OutkitError] = []
    for msg in messages:
        text = msg.get(f"{kind}_body")
        if not isinstance(text, str):
            hint = "" if msg.get("done") else "; add --wait"
            failures.append(
                NotFoundError(
                    f"message {msg.get('id')} has no {kind} body (status {msg.get('status')}{hint})"
                )
            )
            continue
        terminal = current_terminal()
        sys.stdout.write(terminal.raw(text, multiline=True))
        if terminal.stdout_tty and not text.endswith("\n"):
            # at a terminal, the prompt on a line of its own; a file or pipe gets the
            # body exactly as stored
            sys.stdout.write("\n")
    sys.stdout.flush()
    return failures


OPEN_KEEP_SECONDS = 24 * 3600


def open_dir() -> Path:
    """The private (0700) directory `get --open` writes HTML into, in the user cache dir:
    not /tmp, where names can be guessed and files pile up. Files older than a day are
    removed on each use (the browser has long read them)."""
    import platformdirs

    from outkit_cli.fsutil import ensure_private_dir, remove_stale

    cache = ensure_private_dir(platformdirs.user_cache_path("outkit"))
    directory = ensure_private_dir(cache / "open")
    remove_stale(directory, older_than=OPEN_KEEP_SECONDS)
    return directory


SANDBOX_SERVER = "outkit-sandbox"  # the Server header of `outkit serve`'s answers


def _inbox_root(api_url: str) -> str | None:
    """The sandbox inbox's root for its API base URL (http://HOST:PORT/v1 -> .../)."""
    return api_url[: -len("/v1")] + "/" if api_url.endswith("/v1") else None


def _open_in_inbox(messages: Sequence[Mapping[str, Any]], root: str) -> list[OutkitError]:
    """Open each message's page in the sandbox's browser inbox (`outkit serve`)."""
    import webbrowser
    from urllib.parse import quote

    for msg in messages:
        url = root + "messages/" + quote(str(msg.get("id")), safe="")
        opened = webbrowser.open(url)
        shown_url = escape_controls(url)  # the API URL is the user's setting
        click.echo(f"{'opened' if opened else 'no browser found; open'} {shown_url}", err=True)
    return []


# What a message opened from a file may do: show itself (inline styles, images, fonts) and
# nothing more. No script, plugin, frame, fetch, form or <base> rewrite: the HTML comes from
# the API, and a file:// page runs its scripts with the user's browser (CSP Level 3).
OPEN_CSP = (
    "default-src 'none'; img-src data: http: https:; style-src 'unsafe-inline' http: https:; "
    "font-src data: http: https:; media-src data: http: https:; base-uri 'none'; "
    "form-action 'none'"
)


def guarded_html(html: str) -> str:
    """``html`` with a Content-Security-Policy ``<meta>`` (``OPEN_CSP``) as its first element.

    The HTML parser puts a ``<meta>`` met before ``<html>`` into the head it creates, and a
    policy applies to everything parsed after it, so no script in the body runs; a leading
    doctype stays first (moving it would switch the page to quirks mode). A policy in the
    message itself can only add restrictions (CSP: policies combine by intersection).
    """
    meta = f'<meta http-equiv="Content-Security-Policy" content="{OPEN_CSP}">'
    at = head_insertion_point(html)  # after a doctype by HTML's rules, not a regex's
    return html[:at] + meta + html[at:]


def _open_bodies(messages: Sequence[Mapping[str, Any]]) -> list[OutkitError]:
    import tempfile
    import webbrowser

    failures: list[OutkitError] = []
    directory: Path | None = None
    for msg in messages:
        html = msg.get("html_body")
        if not isinstance(html, str):
            failures.append(
                NotFoundError(f"message {shown(msg.get('id'))} has no HTML body to open")
            )
            continue
        directory = directory or open_dir()
        # kept after exit: the browser reads it later (mkstemp: 0600, a random name; the
        # id is server text, so it never goes into the file name)
        fd, name = tempfile.mkstemp(prefix="message-", suffix=".html", dir=directory)
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write(guarded_html(html))
        opened = webbrowser.open(Path(name).as_uri())
        # the cache dir comes from the environment (XDG_CACHE_HOME)
        where = escape_controls(name)
        click.echo(
            f"{'opened' if opened else 'no browser found; the HTML is in'} {where}", err=True
        )
    return failures


def _report(exc: OutkitError) -> None:
    click.echo(f"error: {escape_controls(exc.message)}", err=True)


def _exit_with(ctx: click.Context, reported: list[OutkitError], late: list[OutkitError]) -> None:
    """Report the failures not reported yet; exit with the first failure's code."""
    for exc in late:
        _report(exc)
    failures = reported + late
    if failures:
        ctx.exit(int(failures[0].exit_code))
