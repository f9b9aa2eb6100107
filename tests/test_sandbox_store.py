"""The SQLite store: group commit under concurrency, one bad row failing alone, restarts."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from outkit_cli.sandbox.store import Store


def _doc(i: int, tag: str = "t") -> dict[str, object]:
    return {"id": f"{tag}-{i}", "status": "received", "done": False,
            "id_from_submitter": tag, "n": i}  # fmt: skip


def test_concurrent_inserts_all_land_newest_first(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    threads = [
        threading.Thread(target=lambda k=k: [store.insert(_doc(k * 100 + j)) for j in range(50)])
        for k in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    texts, _ = store.list_texts(limit=10000, id_from_submitter="t")
    assert len(texts) == 400
    assert len(store.pending_ids()) == 400
    store.close()
    again = Store(tmp_path / "db.sqlite3")  # everything committed is there after reopening
    assert len(again.list_texts(limit=10000)[0]) == 400
    again.close()


def test_a_failing_row_fails_alone(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    store.insert(_doc(1))
    errors: list[Exception] = []

    def insert(i: int) -> None:
        try:
            store.insert(_doc(i))  # i == 1 is a duplicate id
        except sqlite3.IntegrityError as exc:
            errors.append(exc)

    # hold the write lock until all six are queued, so they go in as one batch
    with store._write_lock:
        threads = [threading.Thread(target=insert, args=(i,)) for i in (1, 2, 3, 4, 5, 6)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while len(store._queue) < 6 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(store._queue) == 6
    for t in threads:
        t.join()
    assert len(errors) == 1
    assert sorted(store.get(f"t-{i}")["n"] for i in range(1, 7)) == [1, 2, 3, 4, 5, 6]  # type: ignore[index]
    store.close()


def test_update_and_filters(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    doc = _doc(1, "a")
    store.insert(doc)
    store.insert(_doc(2, "b"))
    doc.update(status="delivered", done=True)
    store.update(doc)
    assert store.get("a-1") == doc
    assert store.list_texts(limit=5, status="delivered")[0] == [store.get_text("a-1")]
    assert store.pending_ids() == ["b-2"]
    assert store.get("nope") is None
    with pytest.raises(KeyError):
        store.update({"status": "x"})
    store.close()


def test_a_batch_that_cannot_run_fails_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "db.sqlite3")
    store.close()  # empty the pool: the next commit must open a connection
    real_connect, calls = Store._connect, []

    def connect_fails_once(self: Store) -> sqlite3.Connection:
        calls.append(1)
        if len(calls) == 1:
            raise sqlite3.OperationalError("unable to open database file")
        return real_connect(self)

    monkeypatch.setattr(Store, "_connect", connect_fails_once)
    outcomes: dict[int, str] = {}

    def insert(i: int) -> None:
        try:
            store.insert(_doc(i))
            outcomes[i] = "stored"
        except sqlite3.OperationalError:
            outcomes[i] = "failed"

    with store._write_lock:  # both rows go into one batch, whose connection fails
        threads = [threading.Thread(target=insert, args=(i,)) for i in (1, 2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while len(store._queue) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
    for t in threads:
        t.join()
    # neither request may think its row was stored when it was not
    assert outcomes == {1: "failed", 2: "failed"}
    assert store.get("t-1") is None and store.get("t-2") is None


def test_a_document_sqlite_cannot_parse_does_not_break_the_list(tmp_path: Path) -> None:
    # a message stored before numbers were checked: json.dumps wrote 1e999 as Infinity,
    # which SQLite's json_extract refuses ("malformed JSON") for the whole query
    store = Store(tmp_path / "db.sqlite3")
    store.insert({**_doc(1), "subject": "fine"})
    store.insert({**_doc(2), "data": {"a": float("inf")}})
    rows = store.page(limit=10)
    assert [doc["id"] for _, doc in rows] == ["t-2", "t-1"]
    assert rows[1][1]["subject"] == "fine" and rows[0][1]["status"] == "received"
    assert [doc["id"] for _, doc in store.page(limit=10, search="fine")] == ["t-1"]
    assert store.page(limit=10, where={"type": "email"}) == []


def _in_database(path: Path, message_id: str) -> str | None:
    """The message's text as another process would read it (no cache of ours)."""
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT doc FROM messages WHERE id = ?", (message_id,)).fetchone()
    finally:
        conn.close()
    return row[0] if row else None


def test_get_text_always_answers_what_the_database_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import outkit_cli.sandbox.store as store_module

    path = tmp_path / "db.sqlite3"
    # a small memory for recent texts, so that some are dropped and read from the database
    monkeypatch.setattr(store_module, "RECENT_CHARS", 2000)
    monkeypatch.setattr(store_module, "RECENT_TEXT_MAX", 400)
    store = Store(path)
    for i in range(40):
        store.insert(_doc(i))
    store.insert({**_doc(99), "big": "x" * 1000})  # over RECENT_TEXT_MAX: never kept
    doc = {**_doc(5), "status": "delivered", "done": True}
    store.update(doc)
    assert store.delete("t-7")
    for i in (*range(40), 99):
        assert store.get_text(f"t-{i}") == _in_database(path, f"t-{i}"), i
    assert store.get("t-5") == doc and store.get_text("t-7") is None
    assert store.clear() == 40
    assert store.get_text("t-5") is None and store.get_text("t-39") is None
    store.close()


def test_an_update_that_fails_leaves_get_text_on_the_stored_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "db.sqlite3"
    store = Store(path)
    store.insert(_doc(1))
    before = store.get_text("t-1")

    def broken(self: Store) -> object:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Store, "connection", broken)
    with pytest.raises(sqlite3.OperationalError):
        store.update({**_doc(1), "status": "delivered", "done": True})
    monkeypatch.undo()
    assert store.get_text("t-1") == before == _in_database(path, "t-1")
    store.close()


def test_concurrent_updates_and_reads_end_on_the_last_write(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    store = Store(path)
    for i in range(20):
        store.insert(_doc(i))

    def writer(k: int) -> None:
        for n in range(30):
            i = (k * 7 + n) % 20
            store.update({**_doc(i), "n": n, "by": k})

    def reader() -> None:
        for n in range(300):
            assert store.get_text(f"t-{n % 20}") is not None

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(20):
        assert store.get_text(f"t-{i}") == _in_database(path, f"t-{i}")
    store.close()


def test_a_database_from_before_gets_the_partial_submitter_index(tmp_path: Path) -> None:
    # data dirs made before the index on id_from_submitter became partial (only rows that
    # have one): the old index is replaced on open, and lookups still use an index
    path = tmp_path / "db.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE messages (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
        "status TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0, id_from_submitter TEXT, "
        "doc TEXT NOT NULL);"
        "CREATE INDEX messages_submitter ON messages (id_from_submitter);"
    )
    old.execute(
        "INSERT INTO messages (id, status, id_from_submitter, doc) VALUES "
        "('a-1', 'received', 'a', '{\"id\": \"a-1\"}')"
    )
    old.commit()
    old.close()
    store = Store(path)
    store.insert({**_doc(2, "b"), "id_from_submitter": None})
    store.insert(_doc(3, "c"))
    with store.connection() as conn:
        names = {row[1] for row in conn.execute("PRAGMA index_list(messages)")}
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT id, doc FROM messages WHERE id_from_submitter IN (?, ?) "
            "ORDER BY seq DESC LIMIT ?",
            ("a", "c", 10),
        ).fetchall()
    assert "messages_submitter" not in names and "messages_submitter_given" in names
    assert any("messages_submitter_given" in row[-1] for row in plan), plan
    texts, _ = store.list_texts(limit=10, id_from_submitter=["a", "c"])
    assert [json.loads(t)["id"] for t in texts] == ["c-3", "a-1"]
    store.close()
