"""Rows in doubt: sent, but whether the server took them is not known.

A row is in doubt when the process died while it was in flight (the journal says
*pending* and records no outcome) or when its POST's answer was lost. It is never sent
blindly again: it is looked up by its `id_from_submitter` first; found, it counts as
accepted; not found, it is sent; when the lookup fails too, it is `unknown`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from outkit_cli.batch.journal import Journal, JournalState
from outkit_cli.errors import ExitCode, OutkitError, UnverifiedLookupError

if TYPE_CHECKING:
    from outkit_cli.batch.plan import Task
    from outkit_cli.batch.runner import BatchApi


def resolve_in_doubt(
    state: JournalState,
    api: BatchApi,
    journal: Journal,
    concurrency: int,
    stop: threading.Event | None = None,
    fatal: tuple[type[OutkitError], ...] = (),
    on_fatal: Callable[[OutkitError], None] | None = None,
) -> tuple[dict[str, str | None], set[str]]:
    """Rows an earlier run left in flight: find each by its id_from_submitter.

    Found rows become accepted (in `state` and in the journal); rows the server never saw
    are sent again as usual; the rest (no id to look up by, or the lookup failed) are
    unknown. Returns the unknown ones (identity -> id_from_submitter) and the rows whose
    absence could not be checked yet (`UnverifiedLookupError`: looked up again when they
    are about to be sent, once the run can check its lookups). Once ``stop`` is
    set (Ctrl-C), no more lookups start: the rows not looked up stay pending in the
    journal, for the next run. A lookup failing with one of ``fatal`` (the API cannot be
    reached, keeps answering 429) is given to ``on_fatal`` and ends the lookups the same
    way: every other row's would fail alike, each after its own retries."""
    unknown: dict[str, str | None] = {
        key: ifs for key, (_, ifs) in state.in_doubt.items() if not ifs
    }
    recheck: set[str] = set()
    lookups = [(key, line, ifs) for key, (line, ifs) in state.in_doubt.items() if ifs]
    if not lookups:
        return unknown, recheck

    def find(item: tuple[str, int, str]) -> tuple[str, int, str, Mapping[str, Any] | None, bool]:
        key, line, ifs = item
        if (stop is not None and stop.is_set()) or halted.is_set():
            return key, line, ifs, None, False
        try:
            # no canary: nothing is created while these run, a canary would wait for ever
            return key, line, ifs, api.find(ifs, canary=False), True
        except UnverifiedLookupError:
            with lock:
                recheck.add(key)
            return key, line, ifs, None, True
        except fatal as exc:
            halted.set()
            if on_fatal is not None:
                on_fatal(exc)
            return key, line, ifs, None, False
        except OutkitError:
            return key, line, ifs, None, False

    halted = threading.Event()

    from concurrent.futures import ThreadPoolExecutor

    lock = threading.Lock()

    found: list[dict[str, Any]] = []
    # the first alone: an API that cannot be reached shows it once (after one lookup's
    # retries), not once for each worker at the same time
    first = find(lookups[0])
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for key, line, ifs, message, answered in [first, *pool.map(find, lookups[1:])]:
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
    return unknown, recheck


# How many times (at least: a batch gives its --retries) a row in doubt is looked up and,
# when the server certainly does not hold it, sent again in one run. Each resend follows a
# lookup that did not find the row, so it never sends twice; a server that keeps dropping
# connections or answering 503 gets that many chances.
SETTLE_ROUNDS = 3
# Seconds between a row's POST whose answer was lost and its lookup. A list served from a
# replica lags behind the writes: a lookup moments after the POST missed messages stored
# 1.5 s before and the rows were sent twice (attacker trial 2). Costs a run at most this
# long, once, and only when answers were lost.
LIST_LAG = 2.0


def settle_in_doubt(
    tasks: Iterable[Task],
    api: BatchApi,
    send: Callable[[Task], dict[str, Any]],
    record: Callable[[list[dict[str, Any]]], None],
    rounds: int = SETTLE_ROUNDS,
) -> None:
    """Rows whose answer was lost this run: look each up (no sooner than LIST_LAG seconds
    after its POST), resend only the unseen.

    A resend whose answer is lost again starts another round (at most ``rounds`` resends);
    a row still in doubt after them, or whose lookup fails, is recorded as ``unknown``.
    """
    for task in tasks:
        outcome = _settle(task, api, send, rounds)
        outcome["id_from_submitter"] = task.ifs
        outcome["key"] = task.identity
        outcome.pop("task", None)
        record([outcome])


def _settle(
    task: Task, api: BatchApi, send: Callable[[Task], dict[str, Any]], rounds: int
) -> dict[str, Any]:
    outcome: dict[str, Any] = {}
    for _ in range(max(1, rounds)):
        why = ""
        settle_for = LIST_LAG - (time.monotonic() - task.sent_at)
        if settle_for > 0:
            time.sleep(settle_for)
        try:
            found = api.find(task.ifs) if task.ifs else None
        except OutkitError as exc:
            found = None
            lookup_failed = True
            why = f": {exc.message}"
        else:
            lookup_failed = False
        if found is not None:
            return {"row": task.line, "status": "accepted", "id": found.get("id")}
        if lookup_failed or not task.ifs:
            return {
                "row": task.line,
                "status": "unknown",
                "error": "sent, but whether the server took it is unknown (no answer, a 5xx or "
                f"an odd answer) and looking it up did not tell{why}",
                "code": ExitCode.NETWORK,
            }
        outcome = send(task)
        if outcome["status"] != "in_doubt":
            return outcome
    return {**outcome, "status": "unknown", "code": ExitCode.NETWORK}
