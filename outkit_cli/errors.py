"""Exception types and the exit codes they map to.

Every foreseeable failure is raised as an ``OutkitError`` subclass; the root command
(``cli.main``) is the one place that turns them into a line on stderr and an exit code.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    AUTH = 3
    NOT_FOUND = 4
    REJECTED = 5
    RATE_LIMITED = 6
    SERVER = 7
    NETWORK = 8
    MESSAGE_FAILED = 9
    WAIT_TIMEOUT = 10


EXIT_CODE_HELP: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.UNEXPECTED: "unexpected error (a bug: please report it)",
    ExitCode.USAGE: "usage error or bad input, found before anything is sent",
    ExitCode.AUTH: "authentication failed (401) or no credentials configured",
    ExitCode.NOT_FOUND: "not found (404)",
    ExitCode.REJECTED: "the API rejected the request (422 and other 4xx)",
    ExitCode.RATE_LIMITED: "rate limited (429) and retries ran out",
    ExitCode.SERVER: "server error (5xx) and retries ran out",
    ExitCode.NETWORK: "network error or timeout; send: maybe sent (outcome unknown)",
    ExitCode.MESSAGE_FAILED: "--wait: the message ended in an error status",
    ExitCode.WAIT_TIMEOUT: "--wait: the timeout passed before the message was done",
}


class OutkitError(Exception):
    """A failure with a message for the user and a documented exit code."""

    exit_code: ExitCode = ExitCode.UNEXPECTED

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # extra lines shown only with --verbose
        self.detail = detail


class UsageError(OutkitError):
    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """The config file cannot be read, parsed or written."""


class AuthError(OutkitError):
    exit_code = ExitCode.AUTH


class NotFoundError(OutkitError):
    exit_code = ExitCode.NOT_FOUND


class RejectedError(OutkitError):
    exit_code = ExitCode.REJECTED


class RateLimitedError(OutkitError):
    exit_code = ExitCode.RATE_LIMITED


class ServerError(OutkitError):
    exit_code = ExitCode.SERVER


class NetworkError(OutkitError):
    exit_code = ExitCode.NETWORK


class UnreachableError(NetworkError):
    """No connection to the server could be made (refused, no route, no such host, connect
    timed out, proxy unreachable), after the retries: the request was certainly not sent."""


class MaybeSentError(NetworkError):
    """A request went out and its answer was lost: it may have taken effect."""


# 128 + SIGPIPE: the shell's status for a writer whose reader went away (`| head`)
OUTPUT_CLOSED_EXIT = 141


class OutputClosedError(OutkitError):
    """stdout's reader went away while a batch was sending (`send --batch f.csv | head -1`):
    the batch stops as after Ctrl-C and exits OUTPUT_CLOSED_EXIT; its journal has every row
    sent, so running it again sends the rest."""

    # the summary counts it as a failure; the batch command then exits OUTPUT_CLOSED_EXIT
    exit_code = ExitCode.USAGE


class UndeterminedLookupError(OutkitError):
    """A lookup by id_from_submitter whose answer cannot show the message is absent (the
    server ignored the filter, or cut the list short): whether it was sent is unknown."""

    exit_code = ExitCode.NETWORK

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # "the server at HOST <reason>", for a run's warning line


class UnverifiedLookupError(UndeterminedLookupError):
    """A lookup found nothing before the run could check that lookups find what it created
    (ClientBatchApi.lists_find): the row is looked up again when it is about to be sent."""


class MessageFailedError(OutkitError):
    exit_code = ExitCode.MESSAGE_FAILED


class WaitTimeoutError(OutkitError):
    exit_code = ExitCode.WAIT_TIMEOUT


def exit_code_table() -> str:
    """The exit-code table as plain text, for ``outkit --help`` and the README."""
    return "\n".join(f"{int(code):>3}  {text}" for code, text in EXIT_CODE_HELP.items())
