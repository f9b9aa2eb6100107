"""A small HTTP/1.1 client connection: one request at a time over a keep-alive socket.

Batches are CPU-bound on small machines, and most of `http.client`'s cost per request is
generic work this client never needs (header parsing through the `email` package, per-
header validation calls). This writes each request with one `sendall` and reads the answer
with a few `recv`s: Content-Length, chunked and read-until-close bodies; 1xx answers
skipped; `Connection: close` and HTTP/1.0 honoured.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024


class ProtocolError(Exception):
    """The server's answer is not valid HTTP/1.x, or the connection ended mid-answer."""


class Headers(dict):  # type: ignore[type-arg]
    """Response headers with case-insensitive lookups (`.get("Retry-After")`)."""

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


def encode_head(
    method: str, target: str, host: str, headers: Mapping[str, str], body: bytes
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name} contains a line break")
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Connection:
    """One keep-alive connection; not thread-safe (use one per thread)."""

    def __init__(self, hostname: str, port: int, host_header: str, ssl_context: Any = None) -> None:
        self.hostname = hostname
        self.port = port
        self.host_header = host_header
        self.ssl_context = ssl_context
        self.sock: socket.socket | None = None
        self._buf = bytearray()

    def connect(self, timeout: float) -> None:
        sock = socket.create_connection((self.hostname, self.port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.hostname)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._buf.clear()

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
                self._buf.clear()

    def send(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> None:
        assert self.sock is not None
        self.sock.sendall(encode_head(method, target, self.host_header, headers, body) + body)

    def read_response(self, method: str) -> tuple[int, str, Headers, bytes]:
        """(status, reason, headers, body) of the next final answer."""
        while True:
            version, status, reason, headers = self._read_head()
            if 100 <= status < 200:
                continue  # interim answer (100 Continue, 103 Early Hints)
            break
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked()
        elif headers.get("content-length") is not None:
            length = headers["content-length"].strip()
            if not length.isdigit() or int(length) > MAX_BODY:
                raise ProtocolError(f"bad Content-Length {length[:20]!r}")
            body = self._read_exact(int(length))
        else:
            body = self._read_to_close()
        connection = headers.get("connection", "").lower()
        if "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection):
            self.close()
        return status, reason, headers, body

    def _recv(self) -> bytes:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ProtocolError("the server closed the connection before answering in full")
        return chunk

    def _read_head(self) -> tuple[str, int, str, Headers]:
        buf = self._buf
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(buf) > MAX_HEAD:
                raise ProtocolError("answer headers too large")
            buf += self._recv()
        head = bytes(buf[:end]).decode("latin-1")
        del buf[: end + 4]
        status_line, *lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP answer: {status_line[:60]!r}")
        headers = Headers()
        for line in lines:
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError(f"bad header line {line[:60]!r}")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{dict.get(headers, key)}, {value}" if key in headers else value
        return parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "", headers

    def _read_exact(self, n: int) -> bytes:
        buf = self._buf
        while len(buf) < n:
            buf += self._recv()
        data = bytes(buf[:n])
        del buf[:n]
        return data

    def _read_line(self) -> bytes:
        buf = self._buf
        while True:
            end = buf.find(b"\r\n")
            if end >= 0:
                line = bytes(buf[:end])
                del buf[: end + 2]
                return line
            if len(buf) > MAX_HEAD:
                raise ProtocolError("chunk header too large")
            buf += self._recv()

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_text = self._read_line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
            if size < 0 or total + size > MAX_BODY:
                raise ProtocolError("bad chunk size")
            if size == 0:
                while self._read_line():  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self._read_exact(size))
            total += size
            if self._read_exact(2) != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")

    def _read_to_close(self) -> bytes:
        assert self.sock is not None
        data = bytearray(self._buf)
        self._buf.clear()
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if len(data) > MAX_BODY:
                raise ProtocolError("answer too large")
        self.close()
        return bytes(data)
