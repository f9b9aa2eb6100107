"""No message is sent twice (attacker trial 1, findings 1, 3 and 4).

A POST is retried only when the server certainly did not take it (429; a connection that
failed before the request left). Any other failure of a POST (a 5xx, a lost answer, an
answer of the wrong shape) may come after the server stored the message: `send` exits 8
saying how to check, a batch looks the row up before sending it again. A lookup says "not
found" only when the answer shows the server applied the `id_from_submitter` filter;
otherwise the row is `unknown` and is not sent without `--resend-unknown`.

Each test counts what a loopback API stored (tests/storing_api.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Result, run
from tests.storing_api import Store, storing_api
from tests.test_client import env_for

SEND = ("send", "--to", "a@example.com", "--project", "p", "--text-body", "x")
GATEWAY = {"error": {"message": "upstream timed out", "code": "gateway"}}


def rows_file(tmp_path: Path, n: int) -> Path:
    src = tmp_path / "rows.csv"
    src.write_text("to\n" + "".join(f"p{i}@example.com\n" for i in range(n)))
    return src


def batch(url: str, src: Path, *extra: str) -> Result:
    return run("send", "--batch", str(src), "--project", "p", "--text-body", "hello", *extra,
               env=env_for(url))  # fmt: skip


def statuses(result: Result) -> list[str]:
    return sorted(json.loads(line)["status"] for line in result.stdout.splitlines())


def stored_once(store: Store, n: int) -> None:
    counts = store.stored()
    assert len(counts) == n, counts
    assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v > 1}


def journal_statuses(src: Path) -> set[str]:
    journal = src.with_name(src.name + ".outkit-journal")
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    return {r["status"] for r in records if r.get("type") == "result"}


# ------------------------------------------------------------- finding 1: 5xx to a POST


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_send_answered_5xx_is_not_sent_again(status: int) -> None:
    with storing_api(lambda n: (status, GATEWAY)) as (url, store):
        result = run(*SEND, "--id-from-submitter", "order-1", "--retries", "3",
                     env=env_for(url))  # fmt: skip
    assert store.stored() == {"order-1": 1}
    assert store.posts == 1
    assert result.exit_code == 8, result
    assert f"HTTP {status}" in result.stderr
    assert "may have been created" in result.stderr
    assert "outkit get --id-from-submitter order-1" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_send_answered_429_is_retried() -> None:
    """A 429 is the server saying it did not take the request: sending again is safe."""
    slow_down = {"error": {"message": "slow down", "code": "rate_limited"}}
    with storing_api(refuse=lambda n: (429, slow_down) if n == 1 else None) as (url, store):
        result = run(*SEND, "--id-from-submitter", "order-2", "--retries", "3", "-q",
                     env=env_for(url))  # fmt: skip
    assert result.exit_code == 0, result
    assert store.posts == 2
    assert store.stored() == {"order-2": 1}


@pytest.mark.parametrize("status", [500, 502, 504])
def test_batch_rows_answered_5xx_are_looked_up_not_resent(tmp_path: Path, status: int) -> None:
    src = rows_file(tmp_path, 20)
    with storing_api(lambda n: (status, GATEWAY) if n <= 3 else None) as (url, store):
        result = batch(url, src)
    assert result.exit_code == 0, result
    assert statuses(result) == ["accepted"] * 20
    stored_once(store, 20)
    assert store.posts == 20


# ------------------------------------------------------------- finding 3: odd 2xx answers


def test_send_answered_with_the_wrong_shape_is_in_doubt() -> None:
    with storing_api(lambda n: (200, {"data": None})) as (url, store):
        result = run(*SEND, "--id-from-submitter", "order-3", env=env_for(url))
    assert store.stored() == {"order-3": 1}
    assert result.exit_code == 8, result
    assert "may have been created" in result.stderr
    assert "outkit get --id-from-submitter order-3" in result.stderr


def test_batch_rows_answered_with_the_wrong_shape_are_looked_up(tmp_path: Path) -> None:
    src = rows_file(tmp_path, 20)
    odd = {"on": True}
    with storing_api(lambda n: (200, {"data": None}) if odd["on"] else None) as (url, store):
        first = batch(url, src)
        assert first.exit_code == 0, first
        assert statuses(first) == ["accepted"] * 20  # found on the server
        assert "failed" not in journal_statuses(src)
        odd["on"] = False
        again = batch(url, src)
    assert again.exit_code == 0, again
    assert statuses(again) == ["skipped"] * 20
    stored_once(store, 20)


def test_wrong_shape_and_a_lookup_that_cannot_tell_leave_rows_unknown(tmp_path: Path) -> None:
    """Answers of the wrong shape, and a list that ignores the filter and shows only the 5
    newest messages: the other rows cannot be found out, so they are unknown, in the run
    and in the journal, and the rerun does not send them."""
    src = rows_file(tmp_path, 20)
    odd = {"on": True}
    fault: Any = lambda n: (200, {"data": None}) if odd["on"] else None  # noqa: E731
    with storing_api(fault, filters=False, page=5) as (url, store):
        first = batch(url, src)
        assert first.exit_code == 8, first
        # rows are let through one at a time until a lookup has found one this run
        # created; once the server holds messages, its lookups cannot tell (unknown)
        sent = statuses(first).count("accepted")
        assert 1 <= sent <= 5 and statuses(first) == ["accepted"] * sent + ["unknown"] * (
            20 - sent
        ), first.stdout
        assert journal_statuses(src) == {"accepted", "unknown"}
        odd["on"] = False
        again = batch(url, src)
    assert again.exit_code == 8, again
    assert statuses(again) == ["skipped"] * sent + ["unknown"] * (20 - sent)
    assert "--resend-unknown" in again.stdout
    stored_once(store, sent)


# ------------------------------------------------------------- finding 4: unfiltered lists


def test_lost_answers_are_found_in_a_list_that_ignores_the_filter(tmp_path: Path) -> None:
    """(a) The server ignores `id_from_submitter` but honours `limit`: a lookup must not
    take the newest, unrelated message's absence of a match for "not sent". (A first run
    against such a server sends rows only when told: --resend-unknown.)"""
    src = rows_file(tmp_path, 20)
    with storing_api(lambda n: "drop" if n <= 3 else None, filters=False) as (url, store):
        result = batch(url, src, "--resend-unknown")
    assert result.exit_code == 0, result
    assert statuses(result) == ["accepted"] * 20
    stored_once(store, 20)


def test_lost_answers_against_a_list_that_never_lists_anything(tmp_path: Path) -> None:
    """A list that answers [] whatever the server holds looks like an honest "not found":
    a lookup of a message this run created shows it is not, so the rows whose answers
    were lost are unknown, not sent again."""
    src = rows_file(tmp_path, 20)
    with storing_api(lambda n: "drop" if n <= 3 else None, blind=True) as (url, store):
        result = batch(url, src)
    assert result.exit_code == 8, result
    # rows go one at a time until a lookup finds one this run created: the first three
    # answers are lost, the fourth row is created and not listed; nothing else is sent
    assert statuses(result) == ["accepted"] + ["unknown"] * 19
    assert "does not list a message this run created" in result.stdout
    stored_once(store, 4)


def test_a_list_that_never_lists_anything_gets_one_row_per_run(tmp_path: Path) -> None:
    """Attacker trial 3: such a list looks like an empty server, and every copy of a file
    sent its first chunk (64 rows) again. One row goes first; the others wait until its
    message is looked up, and the list's answers are not believed after that."""
    src = rows_file(tmp_path, 90)
    with storing_api(blind=True) as (url, store):
        for copy in range(3):
            d = tmp_path / f"copy{copy}"
            d.mkdir()
            (d / "rows.csv").write_bytes(src.read_bytes())
            result = batch(url, d / "rows.csv")
            assert result.exit_code == 8, result
            assert statuses(result).count("accepted") <= 1, result.stdout
    assert store.posts <= 3


def test_lost_journal_rerun_against_an_unfiltered_list_sends_nothing_twice(
    tmp_path: Path,
) -> None:
    """(b) A rerun after the journal was lost (a cron job): the server answers its 50
    newest messages whatever the filter. Those rows are skipped; the others cannot be
    told apart from rows never sent: unknown, not sent, and a warning says why."""
    src = rows_file(tmp_path, 120)
    with storing_api(filters=False, page=50) as (url, store):
        # a first run told that nothing was sent before (the second chunk's lookups see
        # the first chunk's messages, so they cannot tell)
        first = batch(url, src, "--resend-unknown")
        assert first.exit_code == 0, first
        src.with_name(src.name + ".outkit-journal").unlink()
        again = batch(url, src)
    assert again.exit_code == 8, again
    assert statuses(again) == ["skipped"] * 50 + ["unknown"] * 70
    stored_once(store, 120)
    warning = [line for line in again.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1, again.stderr
    assert "ignores the id_from_submitter filter" in warning[0]
    assert "cannot be detected" in warning[0] and "--resend-unknown" in warning[0]


def test_first_run_against_an_unfiltered_list_asks_before_sending(tmp_path: Path) -> None:
    """A first run whose lookups cannot tell (the server holds other messages and ignores
    the filter) sends nothing until told to with --resend-unknown, then each row once."""
    src = rows_file(tmp_path, 10)
    with storing_api(filters=False) as (url, store):
        store.add({"to": "old@example.com", "id_from_submitter": "someone-else"})
        first = batch(url, src)
        assert first.exit_code == 8, first
        assert statuses(first) == ["unknown"] * 10
        assert store.posts == 0
        told = batch(url, src, "--resend-unknown")
        assert told.exit_code == 0, told
        assert statuses(told) == ["accepted"] * 10
        again = batch(url, src)
    assert again.exit_code == 0, again
    assert statuses(again) == ["skipped"] * 10
    counts = store.stored()
    del counts["someone-else"]
    assert len(counts) == 10 and set(counts.values()) == {1}


def test_rows_whose_lookup_failed_are_looked_up_again_by_the_rerun(tmp_path: Path) -> None:
    """A cron job lost its journal; the next run's lookups fail over the network, so no row
    is sent (failed, "looking for it on the server failed"). The run after that must still
    look each row up, not send it: the server holds every one of them already."""
    src = rows_file(tmp_path, 6)
    with storing_api() as (url, store):
        first = batch(url, src)
        assert first.exit_code == 0, first
        src.with_name(src.name + ".outkit-journal").unlink()
        store.drop_gets = True
        lost = batch(url, src, "--retries", "0")
        assert statuses(lost) == ["failed"] * 6, lost
        assert "looking for it on the server failed" in lost.stdout
        assert store.posts == 6
        store.drop_gets = False
        again = batch(url, src)
    assert again.exit_code == 0, again
    assert statuses(again) == ["skipped"] * 6  # found on the server, not sent
    stored_once(store, 6)


@pytest.mark.parametrize("repeated", ["first", "last"])
def test_a_list_applying_one_value_of_a_repeated_filter_sends_nothing_twice(
    tmp_path: Path, repeated: str
) -> None:
    """Attacker trial 2, finding 1: a server that keeps only the first (or last) of the
    repeated id_from_submitter parameters answered each chunk lookup for one id, and the
    other 29 rows of a copy looked unsent. The batch finds that out and looks rows up one
    by one."""
    src = rows_file(tmp_path, 30)
    with storing_api(repeated=repeated) as (url, store):
        first = batch(url, src)
        assert first.exit_code == 0, first
        copy = tmp_path / "elsewhere"
        copy.mkdir()
        (copy / "rows.csv").write_bytes(src.read_bytes())
        again = batch(url, copy / "rows.csv")
    assert again.exit_code == 0, again
    assert statuses(again) == ["skipped"] * 30
    stored_once(store, 30)


def test_a_list_cut_at_a_page_size_of_its_own_sends_nothing_twice(tmp_path: Path) -> None:
    """Attacker trial 2, finding 2: a server that answers at most 50 messages whatever the
    limit, with no next page: a chunk lookup of 64 rows that were all sent listed 50, and
    14 looked unsent on every copy. Rows a partial answer leaves out are looked up alone."""
    src = rows_file(tmp_path, 120)
    with storing_api(page=50) as (url, store):
        first = batch(url, src)
        assert first.exit_code == 0, first
        src.with_name(src.name + ".outkit-journal").unlink()
        again = batch(url, src)
    assert again.exit_code == 0, again
    assert statuses(again) == ["skipped"] * 120
    stored_once(store, 120)


def test_a_first_run_against_an_empty_server_looks_rows_up_by_chunk(tmp_path: Path) -> None:
    """The fast path stays: once a lookup has found a row this run created, one lookup
    request per chunk of rows, not one per row."""
    src = rows_file(tmp_path, 640)
    with storing_api() as (url, store):
        result = batch(url, src)
    assert result.exit_code == 0, result
    stored_once(store, 640)
    # rows dispatched before that check (the reader keeps at most three chunks of 64 ahead
    # of the workers) go row by row, the other seven chunks by chunk; a few checks besides
    assert store.gets < 3 * 64 + 7 + 20, store.gets


def test_lost_answers_against_a_list_that_lags_behind_writes(tmp_path: Path) -> None:
    """Attacker trial 2, finding 4: a list served from a replica shows a message 1.5 s
    after it was stored; rows whose answers were lost were looked up at once, not found,
    and sent again. A row in doubt is looked up no sooner than LIST_LAG after its POST."""
    src = rows_file(tmp_path, 20)
    with storing_api(lambda n: "drop" if n % 5 == 0 else None, lag=1.5) as (url, store):
        result = batch(url, src, "--concurrency", "2")
    assert result.exit_code == 0, result
    assert statuses(result) == ["accepted"] * 20
    stored_once(store, 20)


def test_a_first_run_stopped_halfway_still_looks_rows_up_on_its_rerun(tmp_path: Path) -> None:
    """Newcomer trial 2: a file whose last rows were sent before from elsewhere; its first
    run is stopped (SIGINT) before it reaches them; the rerun's journal is no longer new,
    and it sent those rows without looking them up: stored twice. Until a run has gone
    through every row, each run looks its rows up."""
    import os
    import signal
    import subprocess
    import sys

    from tests.batch_helpers import wait_for_results

    sent_before = tmp_path / "before.csv"
    sent_before.write_text("to\n" + "".join(f"p{i}@example.com\n" for i in range(260, 300)))
    # rows 260-299 are the same as before.csv's, beyond the chunks a stopped run journals
    src = rows_file(tmp_path, 300)
    journal = src.with_name(src.name + ".outkit-journal")
    with storing_api() as (url, store):
        assert batch(url, sent_before).exit_code == 0
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTKIT_")}
        env.update(env_for(url))
        child = subprocess.Popen(
            [sys.executable, "-m", "outkit_cli", "send", "--batch", str(src), "--project",
             "p", "--text-body", "hello", "--rate", "10"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        wait_for_results(journal, 5, child)
        child.send_signal(signal.SIGINT)
        child.communicate(timeout=60)
        assert child.returncode == 130
        assert store.posts < 40 + 200  # it never reached rows 260-299
        again = batch(url, src)
    assert again.exit_code == 0, again
    stored_once(store, 300)
