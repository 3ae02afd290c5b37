"""The AuthZEN server over TLS (``make_server(..., ssl_certfile=, ssl_keyfile=)``):
answers are delivered, requests leave no error in the log, and connections that
handshake slowly or never are counted, bounded in time and closed to make room, so
a flood of them cannot take every file descriptor.

Real TLS on 127.0.0.1, with a self-signed certificate made for each test session.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import logging
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from test_server_connections import free_port, is_open
from test_server_limits import ALLOW_ALL, SECRET, Live, Logs, closed, request, response

from zerotrust import PolicyDecisionPoint
from zerotrust.server import ServerConfig, ServerConfigError, create_app
from zerotrust.server.connections import _readable
from zerotrust.server.registry import GRACE_SECONDS
from zerotrust.server.runner import make_server

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: pdp\r\n\r\n"
needs_rlimit = pytest.mark.skipif(sys.platform == "win32", reason="POSIX open-file limits")


class Certificate:
    """A self-signed certificate for ``localhost`` and 127.0.0.1, its key, and a
    client context that trusts it (and checks the host name)."""

    def __init__(self, directory: Path) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zerotrust test server")])
        now = datetime.datetime.now(datetime.UTC)
        identifier = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(identifier, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(identifier),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        self.certfile = directory / "server.pem"
        self.keyfile = directory / "server.key"
        self.certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        self.keyfile.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.client = ssl.create_default_context(cafile=str(self.certfile))

    def options(self) -> dict[str, Any]:
        return {"ssl_certfile": str(self.certfile), "ssl_keyfile": str(self.keyfile)}


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return Certificate(tmp_path_factory.mktemp("tls"))


def tls_live(cert: Certificate, **config: Any) -> Live:
    return Live(server_options=cert.options(), **config)


def connect(port: int, cert: Certificate, timeout: float = 10) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return cert.client.wrap_socket(sock, server_hostname="localhost")
    except BaseException:
        sock.close()
        raise


def healthz(port: int, cert: Certificate) -> int | None:
    with connect(port, cert) as sock:
        sock.sendall(HEALTHZ)
        answer = response(sock)  # type: ignore[arg-type]
    return None if answer is None else answer[0]


def registry_size(live: Live) -> int:
    return len(live._server.config.http.registry)  # type: ignore[union-attr]


def until(condition: Any, limit: float = 10) -> bool:
    """Whether ``condition()`` holds within ``limit`` seconds (the server acts in its
    own thread)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def quiet(logs: Logs) -> None:
    """Nothing at ERROR, and no traceback at any level."""
    assert logs.errors() == []
    assert [r.getMessage() for r in logs.records if r.exc_info] == []


# --- answers are delivered, and leave no error behind -------------------------------------


def test_answers_over_tls_are_delivered_not_held_by_the_write_buffer_limit(
    cert: Certificate,
) -> None:
    """asyncio's TLS transport pauses writing at size >= high: a limit of 0 paused it on
    an empty buffer, and every answer waited forever for a drain that never came."""
    with (
        Logs() as logs,
        tls_live(cert, request_timeout=5) as live,
        connect(live.port, cert) as sock,  # kept alive: three answers on one connection
    ):
        for _ in range(3):
            sock.sendall(request())
            answer = response(sock)  # type: ignore[arg-type]
            assert answer is not None and answer[0] == 200
            assert json.loads(answer[2])["decision"] is True
        sock.sendall(b"GET /.well-known/authzen-configuration HTTP/1.1\r\nHost: pdp\r\n\r\n")
        answer = response(sock)  # type: ignore[arg-type]
        assert answer is not None and answer[0] == 200
        # The app sees the scheme the client used: uvicorn reads it from the transport.
        assert json.loads(answer[2])["policy_decision_point"].startswith("https://pdp")
    quiet(logs)


def test_tls_answer_that_closes_the_connection_is_not_an_error_traceback(
    cert: Certificate,
) -> None:
    """An answer with ``Connection: close`` closes asyncio's TLS transport, and uvicorn
    closes it again when the connection is lost: the transport then raises
    AttributeError on every call, which the end of the answer must not reach."""
    close = request().replace(b"Host: pdp", b"Host: pdp\r\nConnection: close")
    with Logs() as logs, tls_live(cert, request_timeout=5) as live:
        for _ in range(5):
            with connect(live.port, cert) as sock:
                sock.sendall(close)
                answer = response(sock)  # type: ignore[arg-type]
                assert answer is not None and answer[0] == 200
                assert closed(sock)
        with connect(live.port, cert) as sock:  # pipelined, the second one closing
            sock.sendall(request() + close)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        assert received.count(b"HTTP/1.1 200 OK\r\n") == 2
        assert until(lambda: registry_size(live) == 0)
    quiet(logs)


def test_tls_client_that_never_answers_close_notify_is_closed_at_the_request_timeout(
    cert: Certificate,
) -> None:
    """Closing a TLS connection waits for the client's close_notify (asyncio: 30 s); a
    client that never sends it holds the connection ``request_timeout`` at most."""
    close = request().replace(b"Host: pdp", b"Host: pdp\r\nConnection: close")
    with Logs() as logs, tls_live(cert, request_timeout=0.5) as live:
        sock = connect(live.port, cert)
        try:
            sock.sendall(close)  # then read nothing, nor close
            assert until(lambda: registry_size(live) == 0)
        finally:
            sock.close()
    quiet(logs)


def test_tls_startup_message_names_https(cert: Certificate) -> None:
    """uvicorn names the scheme after its ``config.ssl``, which make_server hands to
    the protocol (TLS begins there): the URL it logs must still say https."""
    config = ServerConfig(bearer_secrets=(SECRET,))
    app = create_app(PolicyDecisionPoint.from_texts({"p.yaml": ALLOW_ALL}), config=config)
    with Logs() as logs:
        server = make_server(app, config, host="127.0.0.1", port=0, **cert.options())
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not server.started and thread.is_alive() and time.monotonic() < deadline:
                time.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            assert healthz(port, cert) == 200
        finally:
            server.should_exit = True
            thread.join(15)
    started = logs.lines("Uvicorn running on")  # seen by two of the loggers Logs listens to
    assert {r.getMessage().split()[3] for r in started} == {f"https://127.0.0.1:{port}"}


def test_make_server_with_an_unusable_certificate_is_one_config_error(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    config = ServerConfig(bearer_secrets=(SECRET,))
    app = create_app(PolicyDecisionPoint.from_texts({"p.yaml": ALLOW_ALL}), config=config)
    with pytest.raises(ServerConfigError, match="cannot set up TLS") as raised:
        make_server(app, config, ssl_certfile=str(tmp_path / "bad.pem"))
    assert f"cannot set up TLS (ssl_certfile={tmp_path / 'bad.pem'}): " in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_tls_transport_closed_twice_reads_as_nothing_more_to_read(cert: Certificate) -> None:
    """asyncio's TLS transport, once closed twice, raises AttributeError on every call;
    whether the client has sent more (pipelining) is then best effort: no."""

    async def scenario() -> bool:
        server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_side.load_cert_chain(cert.certfile, cert.keyfile)
        made: asyncio.Future[asyncio.BaseTransport] = asyncio.get_running_loop().create_future()

        class Accepting(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                made.set_result(transport)

        server = await asyncio.get_running_loop().create_server(
            Accepting, "127.0.0.1", 0, ssl=server_side
        )
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=cert.client, server_hostname="localhost"
        )
        writer.write(HEALTHZ)
        await writer.drain()
        transport = await made
        transport.close()
        transport.close()
        with pytest.raises(AttributeError):
            transport.get_extra_info("socket")
        readable = _readable(transport)
        writer.close()
        server.close()
        await server.wait_closed()
        return readable

    assert asyncio.run(scenario()) is False


# --- handshakes are counted and bounded ---------------------------------------------------


def test_tls_handshake_flood_is_counted_and_makes_room(cert: Certificate) -> None:
    """Connections that never send a ClientHello count from the moment they are
    accepted, as connections waiting on their client: past the grace period they
    make room for a client that completes its handshake, which is served."""
    with Logs() as logs, tls_live(cert, max_connections=5, request_timeout=5) as live:
        flood = []
        try:
            for _ in range(40):
                flood.append(live.connect())
            time.sleep(GRACE_SECONDS + 0.2)
            assert registry_size(live) <= 5
            assert healthz(live.port, cert) == 200
            assert sum(is_open(sock) for sock in flood) <= 4
        finally:
            for sock in flood:
                sock.close()
    quiet(logs)
    assert len(logs.lines("at the connection limit (5): closing")) == 1


def test_silent_tls_handshake_is_closed_at_the_request_timeout(cert: Certificate) -> None:
    """A connection that sends no ClientHello (asyncio would wait 60 s), or something
    else than TLS, is closed once ``request_timeout`` has passed, or at once; a flood
    of them is one log line, without a traceback."""
    with Logs() as logs, tls_live(cert, request_timeout=0.5) as live:
        silent = [live.connect() for _ in range(5)]
        try:
            with live.connect() as plain:  # HTTP to the TLS port
                plain.sendall(request())
                assert closed(plain)
            for sock in silent:
                assert closed(sock)
        finally:
            for sock in silent:
                sock.close()
        assert until(lambda: registry_size(live) == 0)
        assert healthz(live.port, cert) == 200
    quiet(logs)
    failed = logs.lines("TLS handshake with 127.0.0.1:")
    assert len(failed) == 1 and failed[0].levelno == logging.INFO


def test_shutdown_closes_connections_still_handshaking(cert: Certificate) -> None:
    """The handshake deadline is long here (30 s); shutting down does not wait for it."""
    with Logs() as logs:
        live = tls_live(cert, request_timeout=30)
        with live, live.connect() as silent:
            assert until(lambda: registry_size(live) == 1)  # accepted, and handshaking
            live._server.should_exit = True
            assert closed(silent)
        assert not live._thread.is_alive()
    quiet(logs)


def test_tls_pipelining_without_reading_answers_cannot_hold_the_connections(
    cert: Certificate,
) -> None:
    """As without TLS: connections that send requests back to back and never read an
    answer wait on their client (the answers stay in the TLS layer or the TCP
    transport under it), and make room for a new client."""
    with Logs() as logs, tls_live(cert, max_connections=4, request_timeout=5) as live:
        flood = [connect(live.port, cert) for _ in range(4)]
        try:
            for sock in flood:
                sock.setblocking(False)
                with contextlib.suppress(ssl.SSLWantWriteError, BlockingIOError):
                    for _ in range(20_000):
                        sock.send(request())
            time.sleep(GRACE_SECONDS + 0.5)
            with connect(live.port, cert) as sock:
                sock.sendall(request())
                answer = response(sock)  # type: ignore[arg-type]
                assert answer is not None and answer[0] == 200
        finally:
            for sock in flood:
                sock.close()
    quiet(logs)
    assert len(logs.lines("at the connection limit (4): closing")) == 1


# --- an answer larger than the socket buffers -------------------------------------------

BIG = 16 << 20  # more than the kernel holds for one connection (the client's buffer is small)


class BigAnswer:
    """An ASGI app answering every request with ``BIG`` bytes, in one ``send``; ``sent``
    is set once that ``send`` returns. Over TLS it returns at once: asyncio's TLS layer
    hands everything to the TCP transport under it, whose buffer then holds the rest,
    unseen by the TLS transport's ``get_write_buffer_size``."""

    def __init__(self) -> None:
        self.sent = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        headers = [(b"content-length", str(BIG).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"x" * BIG})
        self.sent.set()


def slow_reader(port: int, cert: Certificate) -> ssl.SSLSocket:
    """A TLS connection whose receive buffer stays small (no autotuning)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return cert.client.wrap_socket(sock, server_hostname="localhost")


def read_all(sock: ssl.SSLSocket) -> int:
    """How many bytes arrive until the end, or a reset."""
    received = 0
    with contextlib.suppress(ConnectionResetError, ssl.SSLEOFError):
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    return received


def test_tls_client_that_never_takes_a_large_answer_is_cut_off(cert: Certificate) -> None:
    """The answer's rest waits in the TCP transport under the TLS one: it counts as
    not taken, so the connection is closed at its deadline, as without TLS (closing
    it gracefully would wait for the client to take it, 30 s more with TLS)."""
    app = BigAnswer()
    with (
        Logs() as logs,
        Live(app=app, server_options=cert.options(), request_timeout=0.5) as live,
        slow_reader(live.port, cert) as sock,
    ):
        sock.sendall(HEALTHZ)
        assert app.sent.wait(10)
        assert until(lambda: logs.lines("its answer not taken within the timeout"))
        assert read_all(sock) < BIG
    quiet(logs)


def test_tls_answer_taken_late_gives_the_next_request_the_whole_timeout(
    cert: Certificate,
) -> None:
    """Once the client has taken the answer (the TCP transport under TLS has sent its
    rest), the next request has ``request_timeout`` from then, as without TLS; not
    what was left of the deadline for taking the answer."""
    app = BigAnswer()
    timeout = 30.0  # far from anything this test waits for
    with (
        Logs() as logs,
        # uvicorn's keep-alive runs from when the answer was written: longer than the read.
        Live(
            app=app,
            server_options={**cert.options(), "timeout_keep_alive": timeout},
            request_timeout=timeout,
        ) as live,
        slow_reader(live.port, cert) as sock,
    ):
        sock.sendall(HEALTHZ)
        assert app.sent.wait(10)
        (protocol,) = live._server.server_state.connections

        def left() -> float:
            timer = protocol._timer  # type: ignore[attr-defined]
            return float("inf") if timer is None else timer.when() - protocol.loop.time()

        assert left() > timeout  # the deadline to take the answer: twice the timeout
        answer = response(sock)  # type: ignore[arg-type]
        assert answer is not None and len(answer[2]) == BIG
        assert until(lambda: left() <= timeout)
        sock.sendall(HEALTHZ)  # and the connection serves the next one
        answer = response(sock)  # type: ignore[arg-type]
        assert answer is not None and len(answer[2]) == BIG
    quiet(logs)


# --- the flood against the open-file limit, in a process of its own -----------------------

CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
from zerotrust import PolicyDecisionPoint
from zerotrust.server import ServerConfig, create_app
from zerotrust.server.runner import listen, logging_config, make_server
config = ServerConfig(bearer_secrets=(sys.argv[1],))
pdp = PolicyDecisionPoint.from_texts({"p.yaml": sys.argv[2]})
server = make_server(create_app(pdp, config=config), config, log_config=logging_config(),
                     ssl_certfile=sys.argv[3], ssl_keyfile=sys.argv[4])
server.run(sockets=listen("127.0.0.1", int(sys.argv[5])))
"""


@contextlib.contextmanager
def served_over_tls(cert: Certificate, log: Path) -> Iterator[int]:
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-c", CHILD, SECRET, ALLOW_ALL),
                *(str(cert.certfile), str(cert.keyfile), str(port)),
            ],
            stdout=out,
            stderr=out,
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                with contextlib.suppress(OSError):
                    if healthz(port, cert) == 200:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start: " + log.read_text())
                time.sleep(0.1)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@needs_rlimit
def test_tls_handshake_flood_cannot_exhaust_file_descriptors(
    cert: Certificate, tmp_path: Path
) -> None:
    """600 TCP connections that never send a ClientHello, against 256 descriptors: they
    were not counted until their handshake ended (60 s later), accept() ran out of
    descriptors and /healthz timed out. Counted at accept, they make room."""
    log = tmp_path / "stderr.txt"
    with served_over_tls(cert, log) as port:
        flood = []
        try:
            for _ in range(600):
                flood.append(
                    socket.create_connection(
                        ("127.0.0.1", port), timeout=5, source_address=("127.0.0.2", 0)
                    )
                )
            time.sleep(GRACE_SECONDS + 0.2)
            assert healthz(port, cert) == 200
            assert healthz(port, cert) == 200
        finally:
            for sock in flood:
                sock.close()
        time.sleep(0.3)
        assert healthz(port, cert) == 200
    text = log.read_text()
    assert "Too many open files" not in text
    assert "Traceback" not in text
    assert "ERROR" not in text
