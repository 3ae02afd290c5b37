"""Stub PDPs on 127.0.0.1 for the client tests: a closed port, a listener that never
answers, one that drops the connection, and an HTTP server answering whatever a test
says. Each counts what reached it."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

Answer = tuple[int, dict[str, str], bytes]
Responder = Callable[[str, str, bytes], Answer]

JSON = {"content-type": "application/json"}


def closed_port() -> str:
    """A loopback URL nothing listens on: connecting is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Listener:
    """A TCP listener that accepts and then holds (``mode="hold"``), closes
    (``"close"``) or resets (``"reset"``) each connection; ``accepted`` counts them."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            if self.mode == "hold":
                self._held.append(conn)
                continue
            conn.settimeout(1)
            with contextlib.suppress(OSError):
                conn.recv(65536)  # the request has arrived: now drop it unanswered
            if self.mode == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        for conn in self._held:
            conn.close()


@contextlib.contextmanager
def listener(mode: str) -> Iterator[Listener]:
    stub = Listener(mode)
    try:
        yield stub
    finally:
        stub.close()


class StubPDP:
    """An HTTP/1.1 server whose every answer comes from ``responder``; ``requests``
    lists ``(method, path, body)`` of each request it received."""

    def __init__(self, responder: Responder) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.headers: list[dict[str, str]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                stub.requests.append((self.command, self.path, body))
                stub.headers.append({k.lower(): v for k, v in self.headers.items()})
                status, headers, payload = responder(self.command, self.path, body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if not any(k.lower() in ("content-length", "transfer-encoding") for k in headers):
                    self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def stub_pdp(responder: Responder) -> Iterator[StubPDP]:
    server = StubPDP(responder)
    try:
        yield server
    finally:
        server.close()


def always(status: int, body: bytes, headers: dict[str, str] | None = None) -> Responder:
    """The same answer to everything except the metadata, which is absent (404)."""

    def respond(method: str, path: str, _: bytes) -> Answer:
        if path.startswith("/.well-known/"):
            return 404, {"content-type": "text/plain"}, b"no metadata"
        return status, JSON if headers is None else headers, body

    return respond


class CountingTransport(httpx.HTTPTransport):
    """httpx's own transport, counting the requests handed to it (attempts)."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        return super().handle_request(request)


class AsyncCountingTransport(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        return await super().handle_async_request(request)
