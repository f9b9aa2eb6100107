"""Both transports (requests, and the stdlib one batches use) behave the same under the
client's rules: the same tests run against each, on small loopback servers."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from outkit_cli import signing
from outkit_cli.client import Client
from outkit_cli.config import Settings
from outkit_cli.errors import AuthError, MaybeSentError, NetworkError, ServerError
from outkit_cli.transport import RequestsTransport, StdlibTransport
from tests.helpers import server_tls
from tests.sandbox_fixture import Sandbox
from tests.test_client import MESSAGE, OK, fake_api

BODY = b'{"message":{"type":"sms","to":"+4790000000","project":"demo","text_body":"x"}}'


def settings_for(url: str, **extra: object) -> Settings:
    return Settings(key="k1", passphrase="pp", secret="s3cr3t", api_url=url, **extra)


@pytest.fixture(params=[False, True], ids=["requests", "stdlib"])
def fast(request: pytest.FixtureRequest) -> bool:
    return request.param


def test_transport_choice(fast: bool) -> None:
    with Client(settings_for("http://127.0.0.1:9/v1"), fast=fast) as client:
        kind = StdlibTransport if fast else RequestsTransport
        assert isinstance(client.transport, kind)


def test_proxy_in_environment_keeps_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with Client(settings_for("https://api.example.com/v1"), fast=True) as client:
        assert isinstance(client.transport, RequestsTransport)


def test_signed_post_and_keep_alive(fast: bool) -> None:
    with fake_api(OK) as (url, seen), Client(settings_for(url), fast=fast) as client:
        for _ in range(3):
            assert client.create_message(BODY).data == MESSAGE
    assert len(seen) == 3
    for req in seen:
        h = req["headers"]
        assert req["path"] == "/v1/messages" and req["body"] == BODY
        assert h["User-Agent"].startswith("outkit-cli/")
        ts, sig = h[signing.TIMESTAMP_HEADER], h[signing.SIGNATURE_HEADER]
        assert signing.verify("s3cr3t", ts, "POST", "/v1/messages", BODY, sig)


def test_query_string_is_signed_as_sent(fast: bool) -> None:
    answer = (200, {}, {"data": []})
    with fake_api(answer) as (url, seen), Client(settings_for(url), fast=fast) as client:
        client.list_messages(id_from_submitter="a b&c", limit=5)
    (req,) = seen
    assert req["path"] == "/v1/messages?limit=5&id_from_submitter=a+b%26c"
    h = req["headers"]
    assert signing.verify(
        "s3cr3t", h[signing.TIMESTAMP_HEADER], "GET", req["path"], b"", h[signing.SIGNATURE_HEADER]
    )


def test_lost_post_answer_is_maybe_sent_not_retried(fast: bool) -> None:
    with fake_api("close") as (url, seen):
        settings = settings_for(url, retries=3)
        with Client(settings, fast=fast) as client, pytest.raises(MaybeSentError) as info:
            client.create_message(BODY, id_from_submitter="ref-1")
    assert len(seen) == 1
    assert "may have been created" in info.value.message and "ref-1" in info.value.message


def test_post_read_timeout_is_maybe_sent(fast: bool) -> None:
    with fake_api("hang") as (url, seen):
        settings = settings_for(url, retries=3, timeout=0.3)
        with Client(settings, fast=fast) as client, pytest.raises(MaybeSentError) as info:
            client.create_message(BODY)
    assert len(seen) == 1
    assert "within 0.3 s" in info.value.message


def test_lost_get_answer_is_retried(fast: bool) -> None:
    with fake_api("close", OK) as (url, seen), Client(settings_for(url, retries=1), fast=fast) as c:
        assert c.get_message("m-1").data == MESSAGE
    assert len(seen) == 2


def test_503_retried_with_retry_after(fast: bool) -> None:
    busy = (503, {"Retry-After": "1"}, {"error": {"message": "busy", "code": "x"}})
    with fake_api(busy, OK) as (url, seen), Client(settings_for(url, retries=2), fast=fast) as c:
        assert c.create_message(BODY).data == MESSAGE
    assert len(seen) == 2
    assert seen[1]["at"] - seen[0]["at"] >= 0.9


def test_errors_map_the_same(fast: bool) -> None:
    denied = (401, {}, {"error": {"message": "bad signature", "code": "unauthorized"}})
    with (
        fake_api(denied) as (url, _),
        Client(settings_for(url), fast=fast) as client,
        pytest.raises(AuthError, match="bad signature"),
    ):
        client.get_message("m-1")
    with (
        fake_api((200, {}, b"<html>")) as (url, _),
        Client(settings_for(url), fast=fast) as client,
        pytest.raises(ServerError, match="not an Outkit JSON response"),
    ):
        client.get_message("m-1")


def test_refused_connection_is_retried_then_network_error(fast: bool) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = settings_for(f"http://127.0.0.1:{port}/v1", retries=1)
    with Client(settings, fast=fast) as client:
        client.backoff.base = 0.01
        with pytest.raises(NetworkError) as info:
            client.create_message(BODY)
    assert not isinstance(info.value, MaybeSentError)
    assert "cannot connect" in info.value.message and "2 attempts" in info.value.message


def test_server_closing_idle_connection_is_reconnected(fast: bool) -> None:
    closing = (200, {"Connection": "close"}, {"data": MESSAGE})
    with fake_api(closing) as (url, seen), Client(settings_for(url), fast=fast) as client:
        for _ in range(3):
            assert client.create_message(BODY).data == MESSAGE
            time.sleep(0.05)
    assert len(seen) == 3


def test_tls_trusted_only_with_the_ca_bundle(fast: bool, cert: tuple[Path, Path]) -> None:
    with fake_api(OK, tls=server_tls(cert)) as (url, _):
        with (
            Client(settings_for(url, retries=0), fast=fast) as client,
            pytest.raises(NetworkError, match="TLS error"),
        ):
            client.get_message("m-1")
        with Client(settings_for(url, ca_bundle=str(cert[0])), fast=fast) as client:
            assert client.get_message("m-1").data == MESSAGE


def test_shared_by_threads_against_the_sandbox(fast: bool, sandbox: Sandbox) -> None:
    settings = Settings(key=sandbox.key, passphrase=sandbox.passphrase, secret=sandbox.secret,
                        api_url=sandbox.url)  # fmt: skip
    errors: list[BaseException] = []
    created: list[str] = []
    with Client(settings, pool_size=4, fast=fast) as client:

        def go(n: int) -> None:
            try:
                for i in range(5):
                    message = {"type": "sms", "to": f"+4791{n}{i}", "project": "demo",
                               "text_body": f"{n}-{i}"}  # fmt: skip
                    body = json.dumps({"message": message})
                    msg = client.create_message(body.encode()).data
                    assert client.get_message(msg["id"]).data["text_body"] == f"{n}-{i}"
                    created.append(msg["id"])
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=go, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert len(set(created)) == 20
