"""`outkit send`: create a message (POST /v1/messages), optionally wait until it is done.

Thin layer: options -> `message.MessageInput` -> `client.Client` -> `message_view`; with
--batch FILE the batch path (`batch.command`) takes over. Heavy modules (requests, rich)
load inside the functions, only when needed.
"""

from __future__ import annotations

import builtins
import keyword
import sys
import time
from typing import Any

import click

from outkit_cli.batch.options import BatchRequest, batch_options, check_batch_combinations
from outkit_cli.commands import command
from outkit_cli.commands.options import OutputSpec, network_options, output_options, wait_options
from outkit_cli.errors import OutkitError, UsageError
from outkit_cli.fields import SENT, Field
from outkit_cli.message import MessageInput
from outkit_cli.output import shown

FILE_HELP = " '@FILE' reads it from a file, '@-' from stdin."


def _param(field: Field) -> str:
    # click's parameter name: `type` and `from` get a trailing underscore (a keyword, a builtin)
    name = field.name
    return name + "_" if keyword.iskeyword(name) or hasattr(builtins, name) else name


def _message_options(func: Any) -> Any:
    """One option per message field a client may send (fields.py), in its order; `data`
    has options of its own (--data, --data-file)."""
    for field in reversed(SENT):
        if field.option is None:
            continue
        if field.type == "bool":
            name = field.option
            func = click.option(
                f"{name}/--no-{name[2:]}", _param(field), default=None, help=field.help
            )(func)
        elif field.type == "string":
            decls = [d for d in (field.short, field.option) if d]
            help_ = field.help + (FILE_HELP if field.file else "")
            func = click.option(*decls, _param(field), metavar=field.metavar, help=help_)(func)
    return func


# click parameter name -> message field, for every option _message_options adds
OPTION_FIELDS = {_param(f): f.name for f in SENT if f.type in ("string", "bool")}


@command(
    "send",
    exit_codes={
        0: "sent (with --wait: delivered, or rendered with --render-only)",
        2: "bad input, nothing sent (a batch: a row was invalid, others may be sent)",
        3: None,
        4: None,
        5: None,
        6: None,
        7: None,
        8: "network error, or maybe sent (a 5xx, lost or odd answer; not retried)",
        9: None,
        10: None,
        130: "interrupted (Ctrl-C)",
    },
    examples=[
        "outkit send --template welcome --to jane@example.com --data name=Jane",
        "outkit send --to +4790000000 --type sms --text-body 'Your code is 1234'",
        "outkit send --message-file msg.json --to someone@example.com --wait",
        "id=$(outkit send -q --template welcome --to jane@example.com)",
        "outkit send --batch customers.csv --template welcome --results out.jsonl",
        "outkit send --template welcome --to jane@example.com --attach report.pdf",
    ],
)
@_message_options
@click.option(
    "--data",
    "data_items",
    multiple=True,
    metavar="KEY=VALUE",
    help="Template local (repeatable); KEY:=JSON for a typed value, e.g. count:=3.",
)
@click.option(
    "--data-file", metavar="FILE", help="Template locals from a JSON object ('-': stdin)."
)
@click.option(
    "--message-file",
    metavar="FILE",
    help="A whole message as JSON ('-': stdin); options override its fields.",
)
@click.option(
    "--attach",
    "attach",
    multiple=True,
    metavar="FILE",
    help="Attach FILE (repeatable); 'FILE;type=TYPE' sets its MIME type, else guessed from "
    "the name. Sends multipart/form-data as the official JavaScript client does.",
)
@click.option("--inline", is_flag=True, help='Attach the files inline (for <img src="cid:NAME">).')
@wait_options(
    "Wait until the message is done (delivered or failed).",
    "Give up waiting after this long (exit 10).",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the exact request (secrets masked); send nothing."
)
@click.option(
    "--curl", is_flag=True, help="Print the request as a runnable curl command; send nothing."
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the new message id.")
@batch_options
@network_options
@output_options
@click.pass_obj
def send(app: Any, output: OutputSpec, **params: Any) -> None:
    """One message from options (or --message-file), or one per row of a --batch file."""
    message = MessageInput(
        options={OPTION_FIELDS[k]: params.pop(k) for k in OPTION_FIELDS},
        message_file=params.pop("message_file"),
        data_file=params.pop("data_file"),
        data_items=params.pop("data_items"),
    )
    request = BatchRequest.from_params(params)  # takes the batch-only options out of params
    check_batch_combinations(
        request,
        machine=output.machine,
        id_from_submitter=message.options.get("id_from_submitter"),
        **params,
    )
    if params["inline"] and not params["attach"]:
        raise UsageError("--inline goes with --attach FILE")
    if request.source is not None:
        if params.pop("attach"):
            raise UsageError(
                "--attach cannot be used with --batch: give each row's files in an "
                "attachments column"
            )
        from outkit_cli.batch.command import run_batch_command

        code = run_batch_command(app, message, request, **params)
        click.get_current_context().exit(code)
    send_one(app, output, message, **params)


def send_one(
    app: Any,
    output: OutputSpec,
    message: MessageInput,
    *,
    wait: bool,
    wait_timeout: float,
    dry_run: bool,
    curl: bool,
    quiet: bool,
    timeout: float | None,
    retries: int | None,
    attach: tuple[str, ...] = (),
    inline: bool = False,
) -> None:
    """The single-message path: build, check, then print the request or send it."""
    from outkit_cli.message import check_field_names, request_body, validate_message

    _check_combinations(output, wait=wait, dry_run=dry_run, curl=curl, quiet=quiet)
    check_field_names(output.fields)
    settings = app.settings(timeout=timeout, retries=retries)
    msg = message.build(
        defaults={"project": settings.project, "from": settings.from_, "backend": settings.backend}
    )
    validate_message(msg)
    body = request_body(msg)
    form = None
    if attach:
        from outkit_cli import multipart

        files = multipart.read_files([multipart.parse_attach(value) for value in attach])
        form = multipart.encode(msg, files, "inline" if inline else "attachment")
    if dry_run or curl:
        _show_request(settings, body, output, curl=curl, form=form)
        return

    from outkit_cli.client import Client

    with Client(settings) as client:
        ref = msg.get("id_from_submitter")
        try:
            created = client.create_message(body, id_from_submitter=ref, form=form).data
        except KeyboardInterrupt:
            # the request may have left, and the API may hold the message: say how to
            # check, as for a lost answer (exit 130: the user stopped it)
            check = (
                f"look for it with: outkit get --id-from-submitter {shown(ref)}"
                if ref
                else "set --id-from-submitter next time so it can be looked up"
            )
            click.echo(
                f"interrupted while sending: the message may have been created; {check}",
                err=True,
            )
            sys.exit(130)
        problem: OutkitError | None = None
        if wait:
            from outkit_cli.waiting import outcome_error, wait_until_done

            deadline = time.monotonic() + wait_timeout
            try:
                created, timed_out = wait_until_done(client, created, deadline=deadline)
                problem = outcome_error(created, timed_out, wait_timeout)
            except OutkitError as exc:
                # the message exists: still print what is known (the id above all), then fail
                problem = exc
            except KeyboardInterrupt:
                # Ctrl-C stops the waiting, not the message: say which one was created
                _show_created(output, created, quiet=quiet)
                click.echo(
                    f"interrupted while waiting: message {shown(created.get('id'))} was "
                    f"created; follow it with: outkit get {shown(created.get('id'))} --wait",
                    err=True,
                )
                sys.exit(130)
    _show_created(output, created, quiet=quiet)
    if problem is not None:
        raise problem


def _show_created(output: OutputSpec, created: Any, *, quiet: bool) -> None:
    from outkit_cli.message_view import show_messages

    if quiet:
        click.echo(created.get("id"))
    else:
        show_messages(output, [created], single=True)


def _check_combinations(
    output: OutputSpec, *, wait: bool, dry_run: bool, curl: bool, quiet: bool
) -> None:
    if dry_run and curl:
        raise UsageError("--dry-run and --curl cannot be used together (--curl sends nothing)")
    if wait and (dry_run or curl):
        raise UsageError(f"--wait cannot be used with {'--curl' if curl else '--dry-run'}")
    if quiet and output.machine:
        raise UsageError("-q/--quiet cannot be used with --json or --field")
    if quiet and (dry_run or curl):
        raise UsageError(f"-q/--quiet cannot be used with {'--curl' if curl else '--dry-run'}")
    if output.fields and (dry_run or curl):
        raise UsageError("--field cannot be used with --dry-run or --curl")
    if output.json and curl:
        raise UsageError("--json cannot be used with --curl")


def _show_request(
    settings: Any, body: bytes, output: OutputSpec, *, curl: bool, form: Any = None
) -> None:
    from outkit_cli.client import exact_headers, mask_headers, prepare_call
    from outkit_cli.diagnostics import warn
    from outkit_cli.message_view import curl_command, print_prepared, secret_warning
    from outkit_cli.output import emit

    call = prepare_call(settings, "POST", "messages", body=body, form=form)
    if form is not None:
        # file contents summarised: a dry run shows the layout, not megabytes of binary
        from dataclasses import replace

        call = replace(call, body=form.summary)
    if not call.has_credentials:
        warn("no credentials configured: the authentication headers are left out")
    if curl:
        if call.has_credentials:
            warn(secret_warning(signed=settings.signed))
        if form is not None:
            from outkit_cli.multipart import curl_command as form_curl

            click.echo(form_curl(call.method, call.url, call.headers, form))
        else:
            click.echo(curl_command(call.method, call.url, call.headers, call.body))
        return
    headers = mask_headers(exact_headers(call))
    request = {
        "method": call.method,
        "url": call.url,
        "headers": headers,
        "body": call.body.decode("utf-8"),
    }
    # the one machine-output path of every command (output.emit): --json and --field
    emit(output, [request], single=True, human=lambda: print_prepared(call, headers))
    click.echo("dry run: nothing was sent", err=True)
