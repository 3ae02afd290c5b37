"""Per-connection bounds of ``zerotrust serve``: time, number and file descriptors.

uvicorn bounds header size (h11, 16 KiB) and idle keep-alive time, but nothing bounds
how long a client may take to send a request: ``timeout_keep_alive`` restarts on every
byte, and there is no timer at all before the first request (uvicorn issue 157).
:class:`DeadlineProtocol` adds that timer, so a slow client holds a connection for
``request_timeout`` at most while the server waits for its request, and twice that
once the request is in the app (which answers 408 or 503 by ``request_timeout``).

Nor does anything bound how many connections are open. Past the open-file limit,
asyncio's accept loop fails, logs a traceback for every pending connection and
retries, and every client, ``/healthz`` included, is refused. :class:`Connections`
keeps the number open below what the limit allows: at the bound the connection idle
the longest (waiting for a request, as a flood's connections do) is closed to make
room, so a client that sends its request at once is still served. A TLS connection is
counted from the moment it is accepted, its handshake included: asyncio would give a
handshake 60 s, before the protocol (and so this count) hears of the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.utils import get_remote_addr

try:
    import fcntl
    import termios
except ImportError:  # Windows: pipelining is then seen only in what uvicorn has read
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "GRACE_SECONDS",
    "MIN_OPEN_FILES",
    "Connections",
    "DeadlineProtocol",
    "ThrottleWarnings",
    "Throttled",
    "accept_errors",
    "capacity",
    "client_address",
    "raise_open_file_limit",
]

_log = logging.getLogger("zerotrust.server")
_LARGEST_BACKLOG = 128
_SMALLEST_BACKLOG = 8
#: File descriptors kept for the process's own files (standard streams, the event
#: loop, listening sockets, the decision log, policy reloads, JWKS fetches).
_RESERVED_FILES = 64
#: The lowest open-file limit to serve with (it leaves room for 40 connections).
MIN_OPEN_FILES = 128
#: When the soft limit has no hard limit above it: as high as Linux goes by default.
_UNLIMITED_TARGET = 1 << 20
#: How long a new connection is never closed to make room, if it has sent no request
#: yet: long enough for a lost first packet to be sent again (TCP's retransmission
#: timeout is 200 ms to 1 s, RFC 6298) and a keep-alive pool to use its connection.
GRACE_SECONDS = 1.0


def raise_open_file_limit() -> int | None:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit where the system allows (a
    process may do so unprivileged); the soft limit in force after, None on platforms
    without one (Windows)."""
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        # OSError, ValueError: a ceiling below the hard limit (macOS, Linux's nr_open)
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else int(soft)


def capacity(open_files: int | None, wanted: int) -> tuple[int, int] | None:
    """``(connections, backlog)`` for a process allowed ``open_files`` descriptors, or
    None when that is too few to serve (fewer than :data:`MIN_OPEN_FILES`).

    asyncio accepts up to ``backlog`` connections in one turn of the loop, before any
    of them reaches :class:`Connections`, and a closed connection's descriptor is
    released a turn later; so the bound keeps three backlogs and the process's own
    files free, and accept() never runs out of descriptors.
    """
    if open_files is None:
        return wanted, _LARGEST_BACKLOG
    if open_files < MIN_OPEN_FILES:
        return None
    backlog = min(_LARGEST_BACKLOG, max(_SMALLEST_BACKLOG, open_files // 16))
    return min(wanted, open_files - _RESERVED_FILES - 3 * backlog), backlog


class _Window:
    """At most one event per ``interval`` seconds passes; the others are counted."""

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self._interval = interval
        self._clock = clock
        self._next = -math.inf
        self._held = 0

    def allow(self) -> int | None:
        """None to hold this event back, else how many were held back before it."""
        now = self._clock()
        if now < self._next:
            self._held += 1
            return None
        self._next = now + self._interval
        held, self._held = self._held, 0
        return held


_MORE = " (and %d more like it since the last such line)"


class Throttled:
    """One kind of log line, at most once per ``interval`` seconds; the lines held back
    are counted in the next one. A flood of connections must not become a flood of
    log lines (each one a write the attacker gets for free)."""

    def __init__(
        self, level: int, interval: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._level = level
        self._window = _Window(interval, clock)

    def __call__(self, message: str, *args: object) -> None:
        held = self._window.allow()
        if held is None:
            return
        if held:
            message, args = message + _MORE, (*args, held)
        _log.log(self._level, message, *args)


class ThrottleWarnings(logging.Filter):
    """A logging filter: each kind of WARNING (its message template) at most once per
    ``interval`` seconds. For uvicorn's "Invalid HTTP request received.", which any
    client can cause once per connection."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        key = str(record.msg)
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= 100:  # templates, not values: a few in practice
                self._windows.clear()
            window = self._windows[key] = _Window(self._interval, self._clock)
        held = window.allow()
        if held is None:
            return False
        if held and isinstance(record.args, tuple):
            record.msg, record.args = key + _MORE, (*record.args, held)
        return True


class _Closable(Protocol):
    def close_now(self) -> None: ...


class _Pool:
    """Connections ``waiting`` on their client (for a request, or to take an answer),
    in the order they began to wait, with that time; and ``busy`` ones (a request in
    the app). Times come from one monotonic clock, so the first waiting is the oldest."""

    __slots__ = ("busy", "waiting")

    def __init__(self) -> None:
        self.waiting: dict[_Closable, float] = {}
        self.busy: set[_Closable] = set()

    def __len__(self) -> int:
        return len(self.waiting) + len(self.busy)

    def longest_waiting(self, since: float) -> _Closable | None:
        """The connection waiting the longest, if it began to wait by ``since``."""
        first = next(iter(self.waiting.items()), None)
        return None if first is None or first[1] > since else first[0]

    def remove(self, connection: _Closable) -> None:
        self.waiting.pop(connection, None)
        self.busy.discard(connection)


class Connections:
    """The open connections of one server, at most ``limit``, at most ``per_address``
    from one client address (a :func:`client_address`); event-loop thread only.

    A new connection over either bound closes the connection that has waited the
    longest on its client, for a request or to take an answer, if it has waited
    ``grace`` seconds or more. With ``per_address``, that is a connection of the
    address holding the most connections (the new one's own address when it holds
    as many; else the address that came to hold that many last, as a flood does): so
    a new connection closes another address's only if that address holds more
    connections than its own, and a flood from one address, once it holds the most,
    closes only its own. A busy connection (a request in the app, its answer being
    taken) is never closed, nor one that began waiting less than ``grace`` ago; when
    the connection to close is one of those, the new one is refused (closed) instead.
    So a client that sends its request within ``grace`` of connecting, or of taking
    an answer, keeps its connection however fast a flood connects; and a client that
    pipelines requests without taking the answers waits, and is closable, like an
    idle one. Cost: a few dict operations per change of state.
    """

    def __init__(
        self,
        limit: int,
        per_address: int | None = None,
        grace: float = GRACE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        # A share of the whole is no share: the limit's own message is the clearer one.
        self.per_address = None if per_address is None or per_address >= limit else per_address
        self.grace = grace
        self._clock = clock
        self._all = _Pool()
        self._pools: dict[str, _Pool] = {}
        self._address: dict[_Closable, str] = {}
        # The addresses holding each number of connections, in the order they came to
        # hold it; and the most any holds. Counts change by one, so both stay O(1).
        self._holding: dict[int, dict[str, None]] = {}
        self._most = 0
        self._full_closed = Throttled(logging.WARNING)
        self._full_refused = Throttled(logging.WARNING)
        self._share_closed = Throttled(logging.WARNING)
        self._share_refused = Throttled(logging.WARNING)

    def __len__(self) -> int:
        return len(self._all)

    def count(self, address: str) -> int:
        """How many connections ``address`` holds."""
        pool = self._pools.get(address)
        return 0 if pool is None else len(pool)

    def admit(self, connection: _Closable, address: str) -> bool:
        """Whether ``connection`` from ``address`` may stay open (then it is waiting,
        and counted), after closing the connection that makes room for it if need be."""
        if self.per_address is not None and self.count(address) >= self.per_address:
            # No address holds more than its share: this one holds the most.
            if not self._make_room(self._pools[address]):
                self._share_refused(
                    _SHARE + ", each busy or too new to close: refusing its new ones",
                    address,
                    self.per_address,
                )
                return False
            self._share_closed(
                _SHARE + ": closing its connections idle the longest", address, self.per_address
            )
        elif len(self._all) >= self.limit:
            if self.per_address is None:
                pool, whose = self._all, ""
            else:
                largest = self._largest(address)
                pool, whose = self._pools[largest], f" of {largest}, the address holding the most,"
            if not self._make_room(pool):
                self._full_refused(
                    "at the connection limit (%d), every connection%s busy "
                    "or too new to close: refusing new ones",
                    self.limit,
                    whose,
                )
                return False
            self._full_closed(
                "at the connection limit (%d): closing the connections%s idle the longest",
                self.limit,
                whose,
            )
        pool = self._pools.setdefault(address, _Pool())  # making room may have emptied it
        self._all.waiting[connection] = pool.waiting[connection] = self._clock()
        self._address[connection] = address
        self._counted(address, len(pool) - 1)
        return True

    def busy(self, connection: _Closable) -> None:
        """``connection`` has a request in the app, and takes its answers."""
        if connection in self._address and connection not in self._all.busy:
            for pool in self._pools_of(connection):
                pool.remove(connection)
                pool.busy.add(connection)

    def idle(self, connection: _Closable) -> None:
        """``connection`` waits on its client: for a request, or to take an answer."""
        if connection in self._address and connection not in self._all.waiting:
            now = self._clock()
            for pool in self._pools_of(connection):
                pool.remove(connection)
                pool.waiting[connection] = now

    def discard(self, connection: _Closable) -> None:
        address = self._address.pop(connection, None)
        if address is not None:
            self._all.remove(connection)
            pool = self._pools[address]
            pool.remove(connection)
            self._counted(address, len(pool) + 1)
            if not pool:
                del self._pools[address]

    def _largest(self, address: str) -> str:
        """The address holding the most connections: ``address`` if it holds as many,
        else the one that came to hold that many last (a flood is the one growing)."""
        if self.count(address) >= self._most:
            return address
        return next(reversed(self._holding[self._most]))

    def _counted(self, address: str, before: int) -> None:
        """``address`` held ``before`` connections, and holds one more or one fewer."""
        after = self.count(address)
        if before:
            held = self._holding[before]
            del held[address]
            if not held:
                del self._holding[before]
        if after:
            self._holding.setdefault(after, {})[address] = None
        if after > self._most or self._most not in self._holding:
            self._most = after

    def _pools_of(self, connection: _Closable) -> tuple[_Pool, _Pool]:
        return self._all, self._pools[self._address[connection]]

    def _make_room(self, pool: _Pool) -> bool:
        victim = pool.longest_waiting(self._clock() - self.grace)
        if victim is None:
            return False
        self.discard(victim)
        victim.close_now()
        return True


_SHARE = "%s is at its share of connections (%d, max_connections_per_address)"


class DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on every connection, counted in
    :class:`Connections` from the moment it is accepted.

    Waiting for a request (from the connection's opening, or from the first byte
    after the previous answer was taken) may take ``timeout``; a request inside the
    app may take ``2 * timeout`` (the app answers by ``timeout``; the rest lets a slow
    reader take its answer). Past either, the connection is closed, at once if an
    answer is still unsent. Of uvicorn's protocol, only its ``app``, ``flow``,
    ``conn`` (h11) and ``connections`` attributes and its ``on_response_complete``
    hook are used.

    With ``tls``, the server listens for plain TCP and the TLS handshake begins here
    (``loop.start_tls``), so a connection is counted while it handshakes, waiting on
    its client like one that has sent no request, and the handshake has ``timeout``
    (asyncio's default: 60 s), as has the TLS shutdown (30 s); uvicorn's protocol
    hears of the connection once the handshake is done.

    A connection counts as busy (never closed to make room) only while the app runs
    a request its client sent after taking the previous answer. A client that does
    not take an answer (bytes of it not yet taken by the kernel, in either layer with
    TLS), or sends requests before their previous answers are sent (HTTP pipelining,
    which RFC 9112 section 9.3.2 lets a server end at any time), counts as waiting on
    its client since it last took an answer in full, and may be closed like an idle one.
    """

    timeout: float = 5.0  # set per server by make_server
    registry: Connections  # set per server by make_server (uvicorn has .connections)
    slow: Throttled  # set per server by make_server
    tls: ssl.SSLContext | None = None  # set per server by make_server: uvicorn's context
    handshakes: Throttled  # set per server by make_server

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        # Requests in the app: a pipelined one may start before the previous one returns.
        self._in_app = 0
        # Whether the request in the app was sent before the previous answer was taken.
        self._pipelined = False
        # TLS: the TCP transport under it, the handshake, and what the client sent
        # between the handshake's end and uvicorn's protocol taking the connection.
        self._raw: asyncio.Transport | None = None
        self._handshake: asyncio.Task[None] | None = None  # held: the loop holds tasks weakly
        self._early: list[bytes] | None = None
        inner = self.app

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            self._in_app += 1
            self._arm(2 * self.timeout)
            self._account()
            try:
                await inner(scope, receive, send)
            finally:
                self._in_app -= 1
                if not self._in_app and not self._unsent():
                    self._disarm()  # else the rest of the deadline is to take the answer
                self._account()

        self.app = app

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if self.tls is None:
            super().connection_made(transport)
            # Paused whenever the kernel has not taken every byte (size > high).
            self.transport.set_write_buffer_limits(high=0)
            if not self.registry.admit(self, client_address(self.client)):
                self.close_now()
                return
            self._arm(self.timeout)
            return
        raw = self._raw = transport
        self.client = get_remote_addr(raw)
        self.connections.add(self)  # so that uvicorn's shutdown closes it
        if not self.registry.admit(self, client_address(self.client)):
            self.close_now()
            return
        raw.set_write_buffer_limits(high=0)  # the TLS layer keeps what the kernel would not take
        self._early = []
        self._handshake = self.loop.create_task(self._start_tls(raw, self.tls))

    async def _start_tls(self, raw: asyncio.Transport, context: ssl.SSLContext) -> None:
        try:
            if raw.is_closing():  # closed to make room, or by a shutdown, before this ran
                tls = None
            else:
                tls = await self.loop.start_tls(
                    *(raw, self, context),
                    server_side=True,
                    ssl_handshake_timeout=self.timeout,
                    ssl_shutdown_timeout=self.timeout,  # for the client's close_notify
                )
        except OSError as exc:  # ssl.SSLError, the deadline, the client gone
            self._forget()
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            self.handshakes("TLS handshake with %s not completed: %s", client, exc)
            return
        except BaseException:  # cancelled (the loop is closing), or a fault of ours
            self._forget()
            raise
        finally:
            self._handshake = None
        # None: the connection was lost (or aborted) as the handshake ended.
        if tls is None or tls.is_closing() or self._early is None:
            self._forget()
            if tls is not None:
                tls.abort()
            return
        beneath = raw.get_protocol()
        if isinstance(beneath, asyncio.BufferedProtocol):  # asyncio's (another loop's may differ)
            raw.set_protocol(_Beneath(beneath, self))
        early, self._early = self._early, None
        super().connection_made(tls)
        # asyncio's TLS transport pauses at size >= high: high=1, low=0 mean what
        # high=0 means to the TCP transport (paused while any byte is untaken).
        tls.set_write_buffer_limits(high=1, low=0)
        self._arm(self.timeout)
        for data in early:
            self.data_received(data)

    def data_received(self, data: bytes) -> None:
        if self._early is not None:  # TLS: before uvicorn's protocol has the connection
            self._early.append(data)
            return
        if self._timer is None and not self._in_app:
            self._arm(self.timeout)
        super().data_received(data)

    def pause_writing(self) -> None:
        if self.flow is not None:
            super().pause_writing()
            self._account()

    def resume_writing(self) -> None:
        if self.flow is not None:
            super().resume_writing()
            self._drained()

    def on_response_complete(self) -> None:
        # The answer is sent. Bytes already here were sent before the client had it:
        # the next request is pipelined (RFC 9112 section 9.3.2).
        if not self.transport.is_closing():
            self._pipelined = bool(self.conn.trailing_data[0]) or self._more_to_read()
            self._account()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        if self.transport is None:  # TLS, lost before the handshake ended: not uvicorn's
            self._early = None
            return
        super().connection_lost(exc)

    def shutdown(self) -> None:
        if self.transport is None:  # TLS, still handshaking
            self.close_now()
            return
        super().shutdown()

    def close_now(self) -> None:
        """Close at once, dropping anything unsent (room for a new connection)."""
        self._disarm()
        transport = self.transport if self.transport is not None else self._raw
        if transport is not None:
            transport.abort()

    def _forget(self) -> None:
        self._disarm()
        self.registry.discard(self)
        self.connections.discard(self)

    def _drained(self) -> None:
        """A transport has sent what it held (with TLS, there are two)."""
        if not self._in_app and not self._unsent():
            self._arm(self.timeout)  # the answer is taken: the next request within the timeout
        self._account()

    def _unsent(self) -> int:
        """Bytes of answers the kernel has not taken: in the transport, and with TLS in
        the TCP transport under it."""
        size = 0
        for transport in (self.transport, self._raw):
            if transport is not None:
                # AttributeError: asyncio's TLS transport, once closed twice.
                with contextlib.suppress(AttributeError):
                    size += transport.get_write_buffer_size()
        return size

    def _more_to_read(self) -> bool:
        """Whether the client has sent bytes not read yet: held by the TLS layer, or in
        the kernel. Best effort: False when it cannot be known."""
        if self._raw is not None:
            held = getattr(self.transport, "get_read_buffer_size", None)
            with contextlib.suppress(AttributeError):  # closed twice, as above
                if held is not None and held():
                    return True
            return _readable(self._raw)
        return _readable(self.transport)

    def _account(self) -> None:
        if self._in_app and not self._unsent() and not self._pipelined:
            self.registry.busy(self)
        else:
            self.registry.idle(self)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        if self._unsent():
            # close() would wait for the client to take the rest, which it may never do.
            self.slow(
                "closed the connection of %s: its answer not taken within the timeout", client
            )
            self.transport.abort()
        elif not self.transport.is_closing():
            what = "answered" if self._in_app else "a whole request received"
            self.slow("closed the connection of %s: not %s within the timeout", client, what)
            self.transport.close()


class _Beneath(asyncio.BufferedProtocol):
    """Between the TCP transport and asyncio's TLS protocol over it: passes everything
    on, and tells the connection when the TCP transport has sent what it held, which
    the TLS transport does not report (its buffer may be empty while the TCP
    transport's is not)."""

    def __init__(self, tls: asyncio.BufferedProtocol, connection: DeadlineProtocol) -> None:
        self._tls = tls
        self._connection = connection

    def get_buffer(self, sizehint: int) -> Any:
        return self._tls.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self._tls.buffer_updated(nbytes)

    def eof_received(self) -> bool | None:
        return self._tls.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._tls.connection_lost(exc)

    def pause_writing(self) -> None:
        self._tls.pause_writing()
        self._connection._account()

    def resume_writing(self) -> None:
        self._tls.resume_writing()
        self._connection._drained()


def _readable(transport: asyncio.BaseTransport) -> bool:
    """Whether the kernel holds bytes from the client not read yet (FIONREAD); best
    effort, never raising: False when it cannot be known."""
    if fcntl is None:
        return False
    try:
        sock = transport.get_extra_info("socket")
        if sock is None:
            return False
        pending = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except (AttributeError, OSError, ValueError):  # a closed transport or socket
        return False
    return int.from_bytes(pending, sys.byteorder) > 0


def client_address(client: tuple[str, int] | None) -> str:
    """The address a connection counts against its share under: an IPv4 address, or
    the /64 network of an IPv6 one (the least one host is given, RFC 4291 section
    2.5.4), so that a host cannot take more by using more of its addresses; ``""`` when
    unknown (a Unix socket)."""
    if client is None:
        return ""
    try:
        ip = ipaddress.ip_address(client[0])
    except ValueError:
        return client[0]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


def accept_errors(report: Throttled) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """An event-loop exception handler: asyncio's "socket.accept() out of system
    resource" (one per pending connection, with a traceback) as one throttled line;
    anything else to the loop's default handler."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exception = context.get("exception")
        if context.get("message") == "socket.accept() out of system resource":
            report("cannot accept connections: %s; retrying in a second", exception)
            return
        loop.default_exception_handler(context)

    return handle
