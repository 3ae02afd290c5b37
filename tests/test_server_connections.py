"""Connection floods: the number of open connections is bounded below the open-file
limit, the longest-idle connection makes room, and a flood is a few log lines.

``zerotrust serve`` runs in a subprocess started under a low ``RLIMIT_NOFILE`` and is
flooded with real sockets; the bound's own rules are also checked in process, over
real uvicorn, and as a property of the connection registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import ipaddress
import itertools
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import ConnectionEvent, connection_events
from test_server_limits import SECRET, VALID, Live, Logs, closed, head, request, response

from zerotrust.server.connections import MIN_OPEN_FILES, capacity
from zerotrust.server.registry import GRACE_SECONDS, Connections, client_address
from zerotrust.server.throttle import Throttled, ThrottleWarnings, accept_errors

ALLOW_ALL = "policy: everything\nrules:\n  - {id: allow-all, effect: allow}\n"
# Sets the limit in the child, then runs the real entry point (as `python -m zerotrust`).
LIMITED = (
    "import resource, runpy, sys; "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[2]))); "
    "sys.argv = ['zerotrust', *sys.argv[3:]]; "
    "runpy.run_module('zerotrust', run_name='__main__')"
)
needs_rlimit = pytest.mark.skipif(sys.platform == "win32", reason="POSIX open-file limits")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """``zerotrust serve`` in a subprocess with ``soft``/``hard`` open-file limits."""

    def __init__(self, tmp: Path, soft: int, hard: int, timeout: float = 5) -> None:
        (tmp / "p.yaml").write_text(ALLOW_ALL)
        (tmp / "server.yaml").write_text(
            f"bearer_secrets: [{SECRET}]\nrequest_timeout_seconds: {timeout}\n"
        )
        self.port = free_port()
        self.log_path = tmp / "stderr.txt"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-c", LIMITED, str(soft), str(hard), "serve"),
                *("--policies", str(tmp / "p.yaml"), "--config", str(tmp / "server.yaml")),
                *("--port", str(self.port)),
            ],
            stdout=self._log,
            stderr=self._log,
        )

    def __enter__(self) -> Served:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the server exited: " + self.log())
            with contextlib.suppress(OSError):
                if self.healthz() == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError("the server did not start: " + self.log())

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text()

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def healthz(self) -> int:
        client = http.client.HTTPConnection("127.0.0.1", self.port, timeout=3)
        try:
            client.request("GET", "/healthz")
            return client.getresponse().status
        finally:
            client.close()


def noise(log: str) -> list[str]:
    """The log's lines other than start-up and access lines."""
    quiet = ("listening on", "Started server process", '"GET /healthz HTTP/1.1" 200')
    return [line for line in log.splitlines() if not any(q in line for q in quiet)]


@needs_rlimit
def test_idle_connection_flood_cannot_exhaust_file_descriptors(tmp_path: Path) -> None:
    """1,000 connections that send nothing, against 256 file descriptors: once the
    flood's connections have waited the grace period, /healthz is answered throughout,
    and the flood is a few log lines, not a traceback per slot."""
    with Served(tmp_path, 256, 256) as server:
        socks = []
        try:
            for _ in range(1000):
                socks.append(server.connect())
            time.sleep(GRACE_SECONDS + 0.2)
            assert server.healthz() == 200
            for _ in range(100):  # malformed requests: uvicorn warns, once
                with server.connect() as sock:
                    sock.sendall(b"NOT HTTP\r\n\r\n")
            time.sleep(1)
            assert server.healthz() == 200
        finally:
            for sock in socks:
                sock.close()
        time.sleep(0.3)
        assert server.healthz() == 200
        log = server.log()
    assert "Traceback" not in log
    assert "Too many open files" not in log
    lines = noise(log)
    assert len(lines) <= 5, lines
    assert sum("limit (144): closing" in line for line in lines) == 1, lines
    assert sum("limit (144), every connection busy or too new" in line for line in lines) <= 1
    assert sum("Invalid HTTP request" in line for line in lines) == 1


@pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="reads /proc")
def test_soft_file_limit_is_raised_to_the_hard_limit_at_start(tmp_path: Path) -> None:
    with Served(tmp_path, 256, 4096) as server:
        limits = Path(f"/proc/{server.proc.pid}/limits").read_text()
    row = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    assert row.split()[3:5] == ["4096", "4096"]


@needs_rlimit
def test_file_limit_too_low_to_serve_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(ALLOW_ALL)
    result = subprocess.run(
        [
            *(sys.executable, "-c", LIMITED, "100", "100", "serve", "--insecure-local"),
            *("--policies", str(tmp_path / "p.yaml"), "--port", str(free_port())),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "zerotrust serve: the open-file limit (100) leaves no room for connections: "
        f"raise it (ulimit -n) to at least {MIN_OPEN_FILES}"
    ]


def test_capacity_keeps_accept_within_the_file_limit() -> None:
    for files in (MIN_OPEN_FILES, 256, 1024, 4096, 1 << 20):
        found = capacity(files, 1 << 30)
        assert found is not None
        connections, backlog = found
        assert connections >= 40 and connections + 3 * backlog + 64 <= files
    assert capacity(MIN_OPEN_FILES - 1, 4096) is None
    assert capacity(1 << 20, 4096) == (4096, 128)


# --- the bound's rules, over real uvicorn ------------------------------------------------


def is_open(sock: socket.socket) -> bool:
    sock.settimeout(0.2)
    try:
        return sock.recv(1) != b""
    except TimeoutError:
        return True
    except ConnectionResetError:
        return False


def test_at_the_bound_the_longest_idle_connection_makes_room() -> None:
    with Logs() as logs, Live(max_connections=5, request_timeout=5) as live:
        idle = []
        for _ in range(5):
            idle.append(live.connect())
            time.sleep(0.02)  # in order
        time.sleep(GRACE_SECONDS)  # past the grace period, each may be closed
        try:
            with live.connect() as sock:  # the sixth: served
                sock.sendall(head(len(VALID)) + VALID)
                answer = response(sock)
                assert answer is not None and answer[0] == 200
            assert not is_open(idle[0])  # the oldest made room
            assert all(is_open(sock) for sock in idle[2:])
        finally:
            for sock in idle:
                sock.close()
    assert logs.errors() == []
    warned = logs.lines("at the connection limit (5)")
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING


def test_when_every_connection_is_busy_a_new_one_is_closed_at_once() -> None:
    """Connections with a request in the app are never closed to make room."""
    with Logs() as logs, Live(max_connections=2, request_timeout=1.5) as live:
        busy = [live.connect() for _ in range(2)]
        try:
            for sock in busy:  # in the app, reading a body that does not come
                sock.sendall(head(len(VALID)) + VALID[:5])
            time.sleep(0.2)
            with live.connect() as sock:
                started = time.monotonic()
                assert closed(sock)
                assert time.monotonic() - started < 0.5
            for sock in busy:  # the busy ones were kept, and end as usual
                answer = response(sock)
                assert answer is not None and answer[0] == 408
        finally:
            for sock in busy:
                sock.close()
    assert len(logs.lines("every connection busy")) == 1
    assert logs.errors() == []


def test_pipelining_without_reading_answers_cannot_hold_the_connections() -> None:
    """Each of the flood's connections sends requests back to back and never reads an
    answer. Once its socket buffers are full it waits on its client like an idle one,
    and makes room for a new client, which is served."""
    with Logs() as logs, Live(max_connections=4, request_timeout=5) as live:
        flood = [live.connect() for _ in range(4)]
        try:
            for sock in flood:
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    for _ in range(20_000):
                        sock.send(request())
            time.sleep(GRACE_SECONDS + 0.5)
            with live.connect() as sock:
                sock.sendall(request())
                answer = response(sock)
                assert answer is not None and answer[0] == 200
        finally:
            for sock in flood:
                sock.close()
    assert logs.errors() == []
    assert len(logs.lines("at the connection limit (4): closing")) == 1


def test_a_client_slow_to_send_its_request_is_not_cut_off_by_a_flood() -> None:
    """A client that waits less than the grace period before its request keeps its
    connection however many connections a flood opens meanwhile."""
    with Logs(), Live(max_connections=8, request_timeout=5) as live:
        client = live.connect()
        flood: list[socket.socket] = []
        try:
            for _ in range(300):
                flood.append(live.connect())
            time.sleep(GRACE_SECONDS / 2)
            client.sendall(request())
            answer = response(client)
            assert answer is not None and answer[0] == 200
            assert sum(is_open(sock) for sock in flood) <= 7
        finally:
            client.close()
            for sock in flood:
                sock.close()


def from_address(live: Live, address: str) -> socket.socket:
    return socket.create_connection(
        ("127.0.0.1", live.port), timeout=10, source_address=(address, 0)
    )


def test_one_address_keeps_to_its_share_of_the_connections() -> None:
    """With ``max_connections_per_address``, a flood from one address holds its share
    at most, and a client from another address is served at once, even while the
    flood's connections are within their grace period."""
    with (
        Logs() as logs,
        Live(max_connections=8, max_connections_per_address=3, request_timeout=5) as live,
    ):
        flood: list[socket.socket] = []
        try:
            for _ in range(50):
                flood.append(from_address(live, "127.0.0.2"))
            with from_address(live, "127.0.0.1") as sock:
                sock.sendall(request())
                answer = response(sock)
                assert answer is not None and answer[0] == 200
            assert sum(is_open(sock) for sock in flood) == 3
            time.sleep(GRACE_SECONDS)
            newest = from_address(live, "127.0.0.2")  # past the grace: the oldest makes room
            flood.append(newest)
            newest.sendall(request())
            answer = response(newest)
            assert answer is not None and answer[0] == 200
            assert not is_open(flood[0])
        finally:
            for sock in flood:
                sock.close()
    assert len(logs.lines("127.0.0.2 is at its share of connections (3")) == 2


def test_a_flood_from_one_address_under_its_share_closes_others_only_to_an_even_split() -> None:
    """At the connection limit, a flood from an address still under its share closes
    connections of the address holding the most, never of one holding fewer than the
    flood: two clients holding 5 idle connections each keep 3 each against a flood
    that takes 4, the most an even split of 10 gives it (before: the longest idle of
    anyone's, 5 of one client's)."""
    with (
        Logs() as logs,
        Live(max_connections=10, max_connections_per_address=5, request_timeout=5) as live,
    ):
        clients: dict[str, list[socket.socket]] = {"127.0.0.3": [], "127.0.0.4": []}
        flood: list[socket.socket] = []
        try:
            for address, socks in clients.items():
                for _ in range(5):  # kept alive after an answer
                    sock = from_address(live, address)
                    socks.append(sock)
                    sock.sendall(request())
                    answer = response(sock)
                    assert answer is not None and answer[0] == 200
            time.sleep(GRACE_SECONDS + 0.2)  # each may be closed to make room
            for _ in range(8):
                flood.append(from_address(live, "127.0.0.2"))
            time.sleep(0.5)  # each accepted, or refused
            kept = {
                address: sum(is_open(sock) for sock in socks) for address, socks in clients.items()
            }
            assert kept == {"127.0.0.3": 3, "127.0.0.4": 3}
            assert sum(is_open(sock) for sock in flood) == 4
        finally:
            for sock in flood + clients["127.0.0.3"] + clients["127.0.0.4"]:
                sock.close()
    assert logs.errors() == []
    assert len(logs.lines("the address holding the most, idle the longest")) == 1


@given(st.ip_addresses(), st.integers(0, 2**64 - 1))
def test_an_address_counts_as_its_ipv4_address_or_its_ipv6_slash_64(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, host: int
) -> None:
    """Every address of one IPv6 /64 is one client; an IPv4-mapped address is its IPv4
    address (RFC 4291 sections 2.5.4 and 2.5.5.2)."""
    counted = client_address((str(address), 1))
    if isinstance(address, ipaddress.IPv4Address):
        assert counted == str(address)
        mapped = ipaddress.IPv6Address(f"::ffff:{address}")
        assert client_address((str(mapped), 1)) == counted
    else:
        neighbour = ipaddress.IPv6Address(int(address) >> 64 << 64 | host)
        if address.ipv4_mapped is None and neighbour.ipv4_mapped is None:
            assert client_address((str(neighbour), 2)) == counted
            assert ipaddress.ip_address(counted.split("/")[0]) in ipaddress.ip_network(counted)
    assert client_address(None) == ""


# --- the property: any sequence of connections and requests -------------------------------


class Stand:
    """What the registry needs of a connection: to be closed now."""

    def __init__(self) -> None:
        self.closed = False

    def close_now(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@attrs.define(eq=False)
class Held:
    """The model of one open connection."""

    stand: Stand
    address: int
    busy: bool = False


@settings(max_examples=500, deadline=None)
@given(
    events=connection_events(),
    limit=st.integers(1, 6),
    share=st.none() | st.integers(1, 4),
    grace=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_any_flood_keeps_the_bounds_and_closes_only_the_longest_waiting_past_grace(
    events: list[ConnectionEvent], limit: int, share: int | None, grace: float
) -> None:
    """Never more than ``limit`` open, nor more than ``share`` from one address; never a
    busy connection closed, nor one waiting for less than ``grace``; the one closed to
    make room is the one waiting the longest: of all, or with a share, of the address
    holding the most (the new one's if it holds as many, else the one whose count
    changed last), so never one of an address holding no more than the new one's; a
    new connection is refused only when that one may not be closed."""
    clock = Clock()
    registry = Connections(limit, share, grace=grace, clock=clock)
    held: list[Held] = []
    waiting: list[tuple[float, Held]] = []  # the model: in the order they began to wait
    changes = itertools.count(1)
    changed = [0, 0, 0]  # per address: when its count last changed (in changes)
    for event in events:
        counts = [sum(h.address == a for h in held) for a in range(3)]
        if event.kind == "tick":
            clock.now += (event.index % 16) / 10
        elif event.kind == "open":
            address = event.index % 3
            shared = share is not None and share < limit
            at_share = share is not None and counts[address] >= share
            if shared and (at_share or len(held) >= limit):
                most = max(counts)
                largest = address
                if counts[address] < most:
                    largest = max(
                        (a for a in range(3) if counts[a] == most), key=changed.__getitem__
                    )
                pool = [(t, h) for t, h in waiting if h.address == largest]
            elif len(held) >= limit:
                pool = waiting
            else:
                pool = None
            victim = None
            if pool is not None:
                victim = next((h for t, h in pool if t <= clock.now - grace), None)
            new = Held(Stand(), address)
            admitted = registry.admit(new.stand, str(address))
            closed = [h for h in held if h.stand.closed]
            assert admitted == (pool is None or victim is not None)
            assert closed == ([] if victim is None else [victim])
            if victim is not None:
                if shared:  # never one of an address holding no more than the new one's
                    assert victim.address == address or counts[victim.address] > counts[address]
                held.remove(victim)
                waiting = [(t, h) for t, h in waiting if h is not victim]
                changed[victim.address] = next(changes)
            if admitted:
                held.append(new)
                waiting.append((clock.now, new))
                changed[address] = next(changes)
        elif held:
            target = held[event.index % len(held)]
            if event.kind == "start" and not target.busy:
                registry.busy(target.stand)
                target.busy = True
                waiting = [(t, h) for t, h in waiting if h is not target]
            elif event.kind == "end" and target.busy:
                registry.idle(target.stand)
                target.busy = False
                waiting.append((clock.now, target))
            elif event.kind == "close":
                registry.discard(target.stand)
                held.remove(target)
                waiting = [(t, h) for t, h in waiting if h is not target]
                changed[target.address] = next(changes)
        assert len(registry) == len(held) <= limit
        for address in range(3):
            count = sum(h.address == address for h in held)
            assert registry.count(str(address)) == count
            assert share is None or count <= share


# --- a flood of one message is one line ---------------------------------------------------


def test_a_flood_of_one_warning_is_one_line_per_interval_with_a_count() -> None:
    clock = Clock()
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("zerotrust.test.throttle")
    logger.addFilter(ThrottleWarnings(interval=10, clock=clock))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for _ in range(10_000):
        logger.warning("Invalid HTTP request received.")
    logger.info("an info line is never held back")
    clock.now = 10.0
    logger.warning("Invalid HTTP request received.")
    assert [r.getMessage() for r in records] == [
        "Invalid HTTP request received.",
        "an info line is never held back",
        "Invalid HTTP request received. (and 9999 more like it since the last such line)",
    ]


def test_accept_out_of_resources_is_one_line_not_a_traceback_per_connection() -> None:
    """asyncio reports a failed accept() once per pending connection, with a traceback;
    the server's handler turns a burst of them into one line."""

    async def burst() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(accept_errors(Throttled(logging.WARNING)))
        error = OSError(24, "Too many open files")
        for _ in range(2048):
            loop.call_exception_handler(
                {"message": "socket.accept() out of system resource", "exception": error}
            )

    with Logs() as logs:
        asyncio.run(burst())
    lines = logs.lines("cannot accept connections")
    assert len(lines) == 1 and lines[0].exc_info is None
    assert "Too many open files" in lines[0].getMessage()
    assert len(logs.records) == 1


def test_a_flood_of_asyncio_warnings_is_one_line_with_the_servers_logging(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Clients that keep a TLS connection half closed make asyncio warn once each ("SSL
    connection is closed"); under the server's logging that is one line per 10 s."""
    import logging.config

    from zerotrust.server.runner import logging_config

    config = logging_config()
    # dictConfig changes process-wide loggers: put every one it touches back afterwards.
    touched = [logging.getLogger(name) for name in config["loggers"]]
    saved = [(logger, logger.__dict__.copy()) for logger in touched]
    logging.config.dictConfig(config)
    try:
        for _ in range(500):
            logging.getLogger("asyncio").warning("SSL connection is closed")
    finally:
        for logger, state in saved:
            logger.__dict__.clear()
            logger.__dict__.update(state)
    err = capsys.readouterr().err
    assert err.count("SSL connection is closed") == 1
