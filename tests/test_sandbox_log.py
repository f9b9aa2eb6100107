"""The sandbox's batched log: every line, in order, in few writes; never an exception."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

from outkit_cli.sandbox.logbuf import BatchedLog


def _child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OUTKIT_")}


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_lines_from_many_threads_are_all_written_in_order_per_thread() -> None:
    stream = CountingStream()
    log = BatchedLog(stream)

    def burst(tag: str) -> None:
        for i in range(500):
            log(f"{tag} {i}")

    threads = [threading.Thread(target=burst, args=(f"t{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2000
    for k in range(4):
        assert [int(x.split()[1]) for x in lines if x.startswith(f"t{k} ")] == list(range(500))
    # batched: a burst of 2,000 lines takes far fewer writes than lines
    assert stream.writes < 200


def test_a_line_is_written_soon_without_close() -> None:
    stream = CountingStream()
    log = BatchedLog(stream)
    log("GET /v1/messages/x 200 0.1ms")
    deadline = time.monotonic() + 10  # generous on a loaded machine; it takes ~20 ms
    while not stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert stream.getvalue() == "GET /v1/messages/x 200 0.1ms\n"
    log("second")  # the thread went back to sleep: the next line wakes it again
    deadline = time.monotonic() + 10
    while "second" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert stream.getvalue().endswith("second\n")
    log.close()


def test_lines_after_close_are_written_at_once() -> None:
    stream = CountingStream()
    log = BatchedLog(stream)
    log.close()
    log("late")
    assert stream.getvalue() == "late\n"


def test_a_broken_stream_loses_lines_but_raises_nothing() -> None:
    stream = io.StringIO()
    stream.close()  # writes raise ValueError
    log = BatchedLog(stream)
    log("lost")
    log.close()
    log("lost too")


def test_a_stream_that_blocks_holds_a_bounded_number_of_lines() -> None:
    release = threading.Event()

    class Blocking(CountingStream):
        def write(self, text: str) -> int:
            release.wait(30)  # a pipe nobody reads, until it is read again
            return super().write(text)

    stream = Blocking()
    log = BatchedLog(stream, max_queued=100)
    log("first")  # taken by the writer, which then blocks in write()
    deadline = time.monotonic() + 10
    while log._lines and time.monotonic() < deadline:
        time.sleep(0.005)
    for i in range(1000):
        log(f"line {i}")
    assert len(log._lines) == 100
    release.set()
    log.close()
    lines = stream.getvalue().splitlines()
    assert lines[:101] == ["first"] + [f"line {i}" for i in range(100)]
    assert lines[101:] == ["(log: 900 lines left out: stderr was not read)"]


def test_a_sandbox_whose_stderr_nobody_reads_keeps_answering(tmp_path: Path) -> None:
    """`outkit serve 2> pipe` with the pipe not read (a paused pager): once the pipe's
    buffer (64 KiB on Linux) is full, the log waits, not the requests. Before the batched
    log, the event loop blocked in its write and every request timed out."""
    import http.client
    import subprocess
    import sys

    from outkit_cli.sandbox.process import start_url_process, stop_process
    from outkit_cli.signing import auth_headers

    data_dir = tmp_path / "data"
    proc, url = start_url_process(
        [sys.executable, "-m", "outkit_cli", "serve", "--port", "0", "--data-dir", str(data_dir)],
        env=_child_env(),
        stderr=subprocess.PIPE,
    )
    try:
        keys = json.loads((data_dir / "keys.json").read_text())["keys"]
        key = next(k for k in keys if k["signed"])
        creds = {"key": key["key"], "passphrase": key["passphrase"], "secret": key["secret"]}
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        answered = 0
        for i in range(2000):  # about 90 KB of log lines
            path = f"/v1/messages/unread-stderr-{i}"
            conn.request("GET", path, headers=auth_headers(method="GET", path=path, body=b"",
                                                           **creds))  # fmt: skip
            response = conn.getresponse()
            response.read()
            answered += response.status == 404
        conn.close()
        assert answered == 2000
    finally:
        proc.terminate()
        try:  # a clean stop writes the log out; reading it lets the server finish
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            stop_process(proc, timeout=0)
            raise
        log = err.decode("utf-8", "replace")
    assert log.count("GET /v1/messages/unread-stderr-") == 2000
