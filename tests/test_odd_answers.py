"""No answer from the API is "a bug" (issue 12, part 4): whatever JSON shape and status a
server on loopback sends, `get`, `get --wait`, `get` (listing) and `send` end with an exit
code from the documented table for that status, one line on stderr, never exit 1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fake_api import FakeApi, fake_api
from tests.helpers import run
from tests.hypothesis_profiles import reliability

SEND = ("send", "--to", "a@example.com", "--project", "p", "--text-body", "x")
COMMANDS = {
    "get": ("get", "m-1"),
    "get --wait": ("get", "m-1", "--wait", "--wait-timeout", "0.3"),
    "get (list)": ("get",),
    "send": SEND,
    "send --wait": (*SEND, "--wait", "--wait-timeout", "0.3"),
}


class Scripted:
    """The route of the fake API: every request gets the current (status, body)."""

    def __init__(self) -> None:
        self.answer: tuple[int, Any] = (200, {})
        self.lock = threading.Lock()

    def __call__(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        with self.lock:
            return self.answer


SCRIPT = Scripted()


@pytest.fixture(scope="module")
def api() -> Iterator[FakeApi]:
    with fake_api(SCRIPT) as server:
        yield server


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
message_like = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=10), json_values),
        "status": st.one_of(
            st.sampled_from(["received", "delivered", "render_error"]), json_values
        ),
        "done": json_values,
        "status_message": json_values,
        "to": json_values,
        "subject": json_values,
        "received_at": json_values,
    },
)
datas = st.one_of(json_values, message_like, st.lists(message_like, max_size=3))
errors = st.one_of(
    json_values, st.fixed_dictionaries({"message": json_values, "code": json_values})
)
bodies = st.one_of(
    json_values,
    st.builds(lambda d: {"data": d}, datas),
    st.builds(lambda e: {"error": e}, errors),
    st.binary(max_size=40),
    st.just(b"[" * 100_000 + b"]" * 100_000),
)
statuses = st.sampled_from([200, 201, 202, 204, 301, 400, 401, 403, 404, 409, 418, 422, 429,
                            500, 502, 503, 504])  # fmt: skip


def allowed_codes(status: int, posted: bool = False) -> set[int]:
    """Exit codes the table allows for an answer with this status. ``posted``: the answer
    to a send's POST, where a 5xx or a wrong shape may follow a created message (8)."""
    if posted and (status >= 500 or 200 <= status < 300):
        return {0, 7, 8, 9, 10} if status < 300 else {8}  # --wait polls answer 7
    if 200 <= status < 300:
        return {0, 7, 9, 10}  # fine, wrong shape (7), --wait outcomes
    if status == 401:
        return {3}
    if status == 404:
        return {4}
    if status == 429:
        return {6}
    if status >= 500:
        return {7}
    if 400 <= status < 500:
        return {5}
    return {7}  # a redirect or other status the API never sends


@pytest.mark.parametrize("command", list(COMMANDS))
@reliability(40)
@given(status=statuses, body=bodies)
def test_any_answer_ends_in_a_documented_exit_code(
    api: FakeApi, command: str, status: int, body: Any
) -> None:
    SCRIPT.answer = (status, body)
    result = run(*COMMANDS[command], env=api.env())
    assert result.exit_code != 1, result
    posted = command.startswith("send")
    assert result.exit_code in allowed_codes(status, posted), (status, body, result)
    errors = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
    if result.exit_code == 0:
        assert errors == [], result
    else:
        assert len(errors) == 1 and errors[0].startswith("error: "), result


@pytest.mark.parametrize("data", [None, [], "str", 1, {}, {"id": 5}, {"no": "id"}], ids=json.dumps)
@pytest.mark.parametrize("command", ["get", "get --wait", "send"])
def test_wrong_shaped_data_is_exit_7_with_the_reason(api: FakeApi, command: str, data: Any) -> None:
    """A `send` is exit 8: its message may have been created (docs/exit-codes.md)."""
    SCRIPT.answer = (200, {"data": data})
    result = run(*COMMANDS[command], env=api.env())
    assert result.exit_code == (8 if command == "send" else 7), result
    assert len(result.stderr.splitlines()) == 1
    assert "unexpected answer from 127.0.0.1" in result.stderr
    if command == "send":
        # a POST: the message may exist; say so, and how to find it
        assert "may have been created" in result.stderr
        assert "outkit get" in result.stderr or "--id-from-submitter" in result.stderr


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        ({"message": {"field": ["to"], "why": 1}, "code": 422},
         'rejected: {"field":["to"],"why":1} (HTTP 422, 422)'),
        ({"message": 12.5, "code": {"k": None}}, 'rejected: 12.5 (HTTP 422, {"k":null})'),
        ({"message": ["a\x1b[2Jb", True], "code": False},
         'rejected: ["a\\u001b[2Jb",true] (HTTP 422, false)'),
        # the reason phrase the server sent: Python 3.13's http.server says "Unprocessable
        # Content" (RFC 9110), earlier ones "Unprocessable Entity"
        ({"message": None, "code": "bad_to"},
         f"rejected: {HTTPStatus(422).phrase} (HTTP 422, bad_to)"),
    ],
)  # fmt: skip
def test_an_error_answer_that_is_not_text_is_shown_as_json(
    api: FakeApi, error: dict[str, Any], shown: str
) -> None:
    SCRIPT.answer = (422, {"error": error})
    result = run("get", "m-1", env=api.env())
    assert result.exit_code == 5, result
    assert result.stderr.startswith(f"error: message m-1: {shown}; "), result.stderr
    assert "{'" not in result.stderr and "True" not in result.stderr  # no Python repr
    assert "\x1b" not in result.stderr


def test_a_waited_message_whose_status_is_not_text_is_shown_as_json() -> None:
    from outkit_cli.waiting import outcome_error

    message = {"id": "m-1", "done": False, "status": {"phase": 2}}
    timed_out = outcome_error(message, timed_out=True, wait_timeout=1)
    assert timed_out is not None
    assert timed_out.message.startswith('message m-1 not done after 1 s (status {"phase":2});')
    failed = {"id": "m-1", "done": True, "status": "render_error",
              "status_message": ["no", "\x1b]0;x\x07"]}  # fmt: skip
    error = outcome_error(failed, timed_out=False, wait_timeout=1)
    assert error is not None
    assert error.message == 'message m-1 ended in render_error: ["no","\\u001b]0;x\\u0007"]'


@pytest.mark.parametrize("odd", [["a"], {"a": 1}, 5, True], ids=json.dumps)
def test_a_list_with_a_non_string_id_from_submitter_is_an_odd_answer(
    api: FakeApi, odd: Any, tmp_path: Any
) -> None:
    """Attacker trial 2: `id_from_submitter` as a list in a list answer crashed the
    client's filter (unhashable type: exit 1) in `get --id-from-submitter` and in a
    batch's lookups. It is an answer of the wrong shape: exit 7; the batch's rows are not
    sent on it."""
    SCRIPT.answer = (200, {"data": [{"id": "x", "status": "delivered", "id_from_submitter": odd}]})
    result = run("get", "--id-from-submitter", "a", env=api.env())
    assert result.exit_code == 7, result
    assert "unexpected answer from 127.0.0.1" in result.stderr
    rows = tmp_path / "rows.csv"
    rows.write_text("to\na@example.com\n")
    batch = run("send", "--batch", str(rows), "--project", "p", "--text-body", "x",
                "--retries", "0", env=api.env())  # fmt: skip
    assert batch.exit_code not in (0, 1), batch
    assert "TypeError" not in batch.output and "a bug" not in batch.stderr
    statuses = [json.loads(line)["status"] for line in batch.stdout.splitlines()]
    assert statuses == ["failed"], batch
