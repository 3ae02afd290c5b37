"""What the server runs on: httptools or h11, uvloop or asyncio, and where a decision
runs (the event loop for quick ones when the PDP does no blocking I/O, else a thread)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from test_server_limits import ALLOW_ALL, SECRET, VALID, Live, closed, request, response
from test_server_tls import Certificate

from zerotrust import PolicyDecisionPoint
from zerotrust.server import ServerConfig, create_app
from zerotrust.server.connections import deadline_protocol
from zerotrust.server.runner import make_server
from zerotrust.server.slots import INLINE_BODY_BYTES, INLINE_PAUSE_SECONDS, Inline

ROOT = Path(__file__).resolve().parents[1]
AUTH = {"authorization": f"Bearer {SECRET}", "content-type": "application/json"}


class Threads:
    """A decision log that records whether each decision ran on the event loop's thread."""

    def __init__(self) -> None:
        self.on_loop: list[bool] = []

    def emit(self, decision: Any, request: Any, extra: Any) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a worker thread
            self.on_loop.append(False)
        else:
            self.on_loop.append(True)


def client(log: Threads, *, decide_inline: bool) -> TestClient:
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": ALLOW_ALL}, decision_log=log)
    config = ServerConfig(bearer_secrets=(SECRET,))
    return TestClient(create_app(pdp, config=config, decide_inline=decide_inline))


def test_quick_small_evaluations_are_decided_on_the_event_loop_when_allowed() -> None:
    log = Threads()
    with client(log, decide_inline=True) as http:
        for path in ("/access/v1/evaluation", "/access/v1/evaluations"):
            r = http.post(path, content=VALID, headers=AUTH)
            assert r.status_code == 200
        body = json.loads(VALID)
        body["context"] = {"padding": "x" * INLINE_BODY_BYTES}
        r = http.post("/access/v1/evaluation", json=body, headers=AUTH)
        assert r.status_code == 200 and r.json()["decision"] is True
    assert log.on_loop == [True, True, False]  # a large body: a worker thread


def test_decisions_run_in_worker_threads_unless_allowed() -> None:
    log = Threads()
    with client(log, decide_inline=False) as http:
        for _ in range(3):
            assert http.post("/access/v1/evaluation", content=VALID, headers=AUTH).is_success
    assert log.on_loop == [False, False, False]


def test_a_slow_decision_sends_the_next_ones_to_threads_for_a_while() -> None:
    now = [100.0]
    inline = Inline(True, clock=lambda: now[0])
    assert inline.fits(10)
    assert not inline.fits(INLINE_BODY_BYTES + 1)
    inline.took(0.001)  # quick: no pause
    assert inline.fits(10)
    inline.took(0.05)  # a one-off: no pause
    assert inline.fits(10)
    now[0] += 5.1  # long after: again a one-off
    inline.took(0.001)
    inline.took(0.05)
    assert inline.fits(10)
    inline.took(0.05)  # twice within 5 s, 50 ms on the loop each: 5 s of threads
    assert not inline.fits(10)
    now[0] += 4.9
    assert not inline.fits(10)
    now[0] += 0.2
    assert inline.fits(10)
    inline.took(10.0)
    inline.took(10.0)  # however slow, the pause is bounded
    assert not inline.fits(10)
    now[0] += INLINE_PAUSE_SECONDS + 0.1
    assert inline.fits(10)
    assert not Inline(False).fits(10)


def test_the_protocol_is_over_httptools_when_installed() -> None:
    pytest.importorskip("httptools", exc_type=ImportError)
    from zerotrust.server.fastparse import DeadlineHttpToolsProtocol

    assert deadline_protocol() is DeadlineHttpToolsProtocol
    with Live() as live, live.connect() as sock:
        assert isinstance(live._server.config.http_protocol_class, type)
        assert issubclass(live._server.config.http_protocol_class, DeadlineHttpToolsProtocol)
        sock.sendall(request())
        answer = response(sock)
        assert answer is not None and answer[0] == 200


def test_a_tls_server_runs_on_asyncio_and_plain_http_on_the_default_loop(tmp_path: Path) -> None:
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": ALLOW_ALL})
    config = ServerConfig(bearer_secrets=(SECRET,))
    plain = make_server(create_app(pdp, config=config), config)
    assert plain.config.loop == "auto"  # uvloop when installed
    tls = make_server(create_app(pdp, config=config), config, **Certificate(tmp_path).options())
    assert tls.config.loop == "asyncio"


FALLBACK = """
import socket, sys, threading, time
from zerotrust import PolicyDecisionPoint
from zerotrust.server import ServerConfig, create_app
from zerotrust.server.connections import DeadlineProtocol, deadline_protocol
from zerotrust.server.runner import listen, make_server

assert deadline_protocol() is DeadlineProtocol, deadline_protocol()
pdp = PolicyDecisionPoint.from_texts({"p.yaml": sys.argv[1]})
config = ServerConfig(bearer_secrets=(sys.argv[2],))
server = make_server(create_app(pdp, config=config, decide_inline=True), config)
sockets = listen("127.0.0.1", 0)
port = sockets[0].getsockname()[1]
thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
thread.start()
while not server.started:
    time.sleep(0.01)
body = sys.argv[3].encode()
with socket.create_connection(("127.0.0.1", port)) as sock:
    sock.sendall(
        b"POST /access/v1/evaluation HTTP/1.1\\r\\nHost: pdp\\r\\n"
        b"Authorization: Bearer " + sys.argv[2].encode() + b"\\r\\n"
        b"Content-Type: application/json\\r\\nConnection: close\\r\\n"
        b"Content-Length: " + str(len(body)).encode() + b"\\r\\n\\r\\n" + body
    )
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
server.should_exit = True
thread.join(10)
print(answer.split(b"\\r\\n")[0].decode())
print("uvloop" in sys.modules)
"""


def test_without_httptools_and_uvloop_the_server_runs_on_h11_and_asyncio(tmp_path: Path) -> None:
    """The stdlib fallback: the server extra's fast parts hidden, the same server."""
    for name in ("httptools", "uvloop"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('hidden for the test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    result = subprocess.run(
        [sys.executable, "-c", FALLBACK, ALLOW_ALL, SECRET, VALID.decode()],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first.endswith("HTTP/1.1 200 OK")
    assert second == "False"


def test_a_head_sent_piece_by_piece_is_refused_past_16_kib() -> None:
    """httptools gathers a header's pieces itself, calling back only once it is whole:
    the reads are counted, so a header that never ends is refused long before the
    request deadline (10 s here), not held until it."""
    with Live(request_timeout=10) as live, live.connect() as sock:
        started = time.monotonic()
        sock.sendall(b"POST /access/v1/evaluation HTTP/1.1\r\nHost: pdp\r\nX-Big: ")
        answer = None
        try:
            for _ in range(40):  # 40 KiB, each KiB its own read
                sock.sendall(b"a" * 1024)
                time.sleep(0.01)
            answer = response(sock)
        except (ConnectionResetError, BrokenPipeError):
            pass  # refused and closed before the client had sent it all
        assert answer is None or answer[0] == 400
        assert closed(sock)
        assert time.monotonic() - started < 5


def test_slow_decisions_interleaved_with_quick_ones_cannot_hold_the_loop() -> None:
    """The attack: a client alternates a request whose decision is slow (a 3.5 KB body
    under INLINE_BODY_BYTES, a condition quadratic in a list it sends: ~90 ms here) with
    a quick one. "Two slow in a row" never holds, so every slow decision runs on the
    event loop, holding up /healthz and every other connection nearly all the time,
    far beyond the 1% the bound promises."""
    now = [100.0]
    inline = Inline(True, clock=lambda: now[0])
    on_loop = 0.0
    for _ in range(100):
        if inline.fits(3500):
            inline.took(0.09)
            on_loop += 0.09
        now[0] += 0.09
        if inline.fits(100):
            inline.took(0.00001)
        now[0] += 0.001
    elapsed = now[0] - 100.0
    assert on_loop <= 0.05 * elapsed  # (at most a few percent of the time on the loop)
