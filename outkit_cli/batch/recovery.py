"""Rows in doubt: sent, but whether the server took them is not known.

A row is in doubt when the process died while it was in flight (the journal says
*pending* and records no outcome) or when its POST's answer was lost. It is never sent
blindly again: it is looked up by its `id_from_submitter` first; found, it counts as
accepted; not found, it is sent; when the lookup fails too, it is `unknown`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from outkit_cli.batch.journal import Journal, JournalState
from outkit_cli.errors import ExitCode, OutkitError

if TYPE_CHECKING:
    from outkit_cli.batch.plan import Task
    from outkit_cli.batch.runner import BatchApi


def resolve_in_doubt(
    state: JournalState, api: BatchApi, journal: Journal, concurrency: int
) -> dict[str, str | None]:
    """Rows an earlier run left in flight: find each by its id_from_submitter.

    Found rows become accepted (in `state` and in the journal); rows the server never saw
    are sent again as usual; the rest (no id to look up by, or the lookup failed) are
    unknown. Returns the unknown ones: identity -> id_from_submitter."""
    unknown: dict[str, str | None] = {
        key: ifs for key, (_, ifs) in state.in_doubt.items() if not ifs
    }
    lookups = [(key, line, ifs) for key, (line, ifs) in state.in_doubt.items() if ifs]
    if not lookups:
        return unknown

    def find(item: tuple[str, int, str]) -> tuple[str, int, str, Mapping[str, Any] | None, bool]:
        key, line, ifs = item
        try:
            return key, line, ifs, api.find(ifs), True
        except OutkitError:
            return key, line, ifs, None, False

    from concurrent.futures import ThreadPoolExecutor

    found: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for key, line, ifs, message, answered in pool.map(find, lookups):
            if not answered:
                unknown[key] = ifs
            elif message is not None:
                state.accepted[key] = message.get("id")
                found.append(
                    {
                        "key": key,
                        "row": line,
                        "status": "accepted",
                        "id": message.get("id"),
                        "error": None,
                        "id_from_submitter": ifs,
                    }
                )
    journal.results(found)
    return unknown


def settle_in_doubt(
    tasks: Iterable[Task],
    api: BatchApi,
    send: Callable[[Task], dict[str, Any]],
    record: Callable[[list[dict[str, Any]]], None],
) -> None:
    """Rows whose answer was lost this run: look each up, resend only the unseen."""
    for task in tasks:
        outcome: dict[str, Any]
        why = ""
        try:
            found = api.find(task.ifs) if task.ifs else None
        except OutkitError as exc:
            found = None
            lookup_failed = True
            why = f": {exc.message}"
        else:
            lookup_failed = False
        if found is not None:
            outcome = {"row": task.line, "status": "accepted", "id": found.get("id")}
        elif lookup_failed or not task.ifs:
            outcome = {
                "row": task.line,
                "status": "unknown",
                "error": f"the answer was lost and the message could not be looked up{why}",
                "code": ExitCode.NETWORK,
            }
        else:
            outcome = send(task)
            if outcome["status"] == "in_doubt":
                outcome = {**outcome, "status": "unknown", "code": ExitCode.NETWORK}
        outcome["id_from_submitter"] = task.ifs
        outcome["key"] = task.identity
        outcome.pop("task", None)
        record([outcome])
