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
import logging
import ssl
import sys
from typing import TYPE_CHECKING, Any

from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.utils import get_remote_addr

from zerotrust.server.registry import Connections, client_address
from zerotrust.server.throttle import Throttled

try:
    import fcntl
    import termios
except ImportError:  # Windows: pipelining is then seen only in what uvicorn has read
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "MIN_OPEN_FILES",
    "Deadline",
    "DeadlineProtocol",
    "capacity",
    "deadline_protocol",
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


if TYPE_CHECKING:  # the attributes both uvicorn protocols have, typed as h11's
    _Base = H11Protocol
else:
    _Base = object


def deadline_protocol() -> type[Deadline]:
    """The protocol class to subclass per server: over httptools when it is installed
    (uvicorn's fastest parser, what its ``http="auto"`` picks), else over h11."""
    try:
        from zerotrust.server.fastparse import DeadlineHttpToolsProtocol
    except ImportError:  # httptools is not installed: the pure-Python parser
        return DeadlineProtocol
    return DeadlineHttpToolsProtocol


class Deadline(_Base):
    """One of uvicorn's HTTP/1.1 protocols with a deadline on every connection, counted in
    :class:`Connections` from the moment it is accepted.

    Waiting for a request (from the connection's opening, or from the first byte
    after the previous answer was taken) may take ``timeout``; a request inside the
    app may take ``2 * timeout`` (the app answers by ``timeout``; the rest lets a slow
    reader take its answer). Past either, the connection is closed, at once if an
    answer is still unsent. Of uvicorn's protocol, only its ``app``, ``flow`` and
    ``connections`` attributes and its ``on_response_complete`` hook are used, and
    :meth:`_parsed_ahead` says what the parser holds of a next request.

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
        # The requests in the app: uvicorn's ``send`` is its request cycle's method.
        self._cycles: list[Any] = []
        inner = self.app

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            self._in_app += 1
            self._arm(2 * self.timeout)
            self._account()
            cycle = getattr(send, "__self__", None)
            if cycle is not None:
                self._cycles.append(cycle)
            try:
                await inner(scope, receive, send)
            finally:
                if cycle is not None:
                    self._cycles.remove(cycle)
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
            self._pipelined = self._parsed_ahead() or self._more_to_read()
            self._account()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        self._cut()
        if self.transport is None:  # TLS, lost before the handshake ended: not uvicorn's
            self._early = None
            return
        super().connection_lost(exc)

    def shutdown(self) -> None:
        if self.transport is None:  # TLS, still handshaking
            self.close_now()
            return
        super().shutdown()

    def _parsed_ahead(self) -> bool:
        """Whether the parser already holds bytes of a request after the one answered."""
        raise NotImplementedError

    def close_now(self) -> None:
        """Close at once, dropping anything unsent (room for a new connection)."""
        self._disarm()
        transport = self.transport if self.transport is not None else self._raw
        if transport is not None:
            transport.abort()
            self._cut()

    def _cut(self) -> None:
        """The connection is gone, or aborted (the loop says so a turn later): the
        requests in the app send nothing more. uvicorn marks only the request it parsed
        last (with httptools, pipelined requests are queued behind the one in the app),
        and uvloop's transport raises on a write where asyncio's ignores it."""
        for cycle in (*self._cycles, self.cycle):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()

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
        if self._raw is None:  # plain TCP: asked after every step of every request
            return self.transport.get_write_buffer_size() if self.transport is not None else 0
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
            self._cut()
        elif not self.transport.is_closing():
            what = "answered" if self._in_app else "a whole request received"
            self.slow("closed the connection of %s: not %s within the timeout", client, what)
            self.transport.close()


class DeadlineProtocol(Deadline, H11Protocol):
    """:class:`Deadline` over h11 (pure Python; bounds an incomplete head at 16 KiB)."""

    def _parsed_ahead(self) -> bool:
        return bool(self.conn.trailing_data[0])


class _Beneath(asyncio.BufferedProtocol):
    """Between the TCP transport and asyncio's TLS protocol over it: passes everything
    on, and tells the connection when the TCP transport has sent what it held, which
    the TLS transport does not report (its buffer may be empty while the TCP
    transport's is not)."""

    def __init__(self, tls: asyncio.BufferedProtocol, connection: Deadline) -> None:
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
