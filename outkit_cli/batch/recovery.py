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
    from outkit_cli.batch.runner import BatchApi, Task


def resolve_in_doubt(
    state: JournalState, api: BatchApi, journal: Journal, concurrency: int
) -> dict[int, str | None]:
    """Rows an earlier run left in flight: find each by its id_from_submitter.

    Found rows become accepted; rows the server never saw are sent again as usual; the
    rest are unknown. Returns the unknown ones."""
    unknown: dict[int, str | None] = {line: None for line, ifs in state.in_doubt.items() if not ifs}
    lookups = [(line, ifs) for line, ifs in state.in_doubt.items() if ifs]

    def find(item: tuple[int, str]) -> tuple[int, str, Mapping[str, Any] | None, bool]:
        line, ifs = item
        try:
            return line, ifs, api.find(ifs), True
        except OutkitError:
            return line, ifs, None, False

    found: list[dict[str, Any]] = []
    if not lookups:
        return unknown
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for line, ifs, message, answered in pool.map(find, lookups):
            if not answered:
                unknown[line] = ifs
            elif message is not None:
                state.accepted[line] = message.get("id")
                found.append(
                    {"row": line, "status": "accepted", "id": message.get("id"), "error": None}
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
        outcome.pop("task", None)
        record([outcome])
