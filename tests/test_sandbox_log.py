"""The sandbox's batched log: every line, in order, in few writes; never an exception."""

from __future__ import annotations

import io
import threading
import time

from outkit_cli.sandbox.logbuf import BatchedLog


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
