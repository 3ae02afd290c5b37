"""What ``zerotrust serve`` does, minus printing: build the config, bind, run uvicorn.

The sockets are bound here, before uvicorn starts, so that every reason the server
cannot listen (a bad host or port, a port in use, an address not on this machine) is
one :class:`ListenError` the CLI prints as one line, instead of uvicorn's log lines,
tracebacks and its own exit status.

uvicorn bounds header size (h11, 16 KiB) and idle keep-alive time, but nothing bounds
how long a client may take to send a request: ``timeout_keep_alive`` restarts on every
byte, and there is no timer at all before the first request (uvicorn issue 157).
:class:`_DeadlineProtocol` adds that timer, so a slow client holds a connection for
``request_timeout`` at most while the server waits for its request, and twice that
once the request is in the app (which answers 408 or 503 by ``request_timeout``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol

from zerotrust.errors import ZeroTrustError
from zerotrust.server.config import ServerConfig, ServerConfigError, load_config

__all__ = [
    "ListenError",
    "address",
    "build_config",
    "is_loopback_host",
    "listen",
    "make_server",
    "serve",
]

_log = logging.getLogger("zerotrust.server")
_BACKLOG = 2048  # uvicorn's default


class ListenError(ZeroTrustError, OSError):
    """The server cannot listen on the address it was given; raised by :func:`listen`.

    The message names the address and the reason, in one line:
    ``cannot listen on 127.0.0.1:8080: address already in use``.
    """


def is_loopback_host(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def build_config(
    config_file: str | Path | None,
    *,
    host: str,
    entities: str | None = None,
    insecure_local: bool = False,
) -> ServerConfig:
    """The config file refined by command-line flags; refuse a public insecure server."""
    entities_file = str(Path(entities)) if entities is not None else None
    if config_file is not None:
        config = load_config(
            config_file, entities_file=entities_file, insecure_local=insecure_local or None
        )
    else:
        config = ServerConfig(entities_file=entities_file, insecure_local=insecure_local)
    if config.insecure_local and not is_loopback_host(host):
        raise ServerConfigError(
            [f"--insecure-local serves loopback only; refusing to bind {host!r}"]
        )
    return config


def listen(host: str, port: int) -> list[socket.socket]:
    """Listening TCP sockets for every address ``host`` resolves to (as asyncio binds).

    ``host`` is a name or an IP address (IPv6 with or without brackets; ``""`` for
    every interface); ``port`` is 0..65535, 0 for a free port the system chooses.
    Raises :class:`ListenError` naming the
    address and the reason; no socket is left open then.
    """
    name = _unbracket(host)
    where = address(host, port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ListenError(f"cannot listen on {where}: the port must be 0..65535")
    try:
        found = socket.getaddrinfo(
            name or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (OSError, ValueError) as exc:  # ValueError: NUL, UnicodeError: a bad IDNA name
        raise ListenError(f"cannot listen on {where}: {_reason(exc)}") from exc
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, sockaddr in dict.fromkeys(found):
            # proto is IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say so.
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)
            sock.listen(_BACKLOG)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ListenError(f"cannot listen on {where}: {_reason(exc)}") from exc
    return sockets


def address(host: str, port: int) -> str:
    """``host:port`` as written in a URL (``[::1]:8080``)."""
    name = _unbracket(host)
    return f"[{name}]:{port}" if ":" in name else f"{name}:{port}"


def _unbracket(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _reason(exc: BaseException) -> str:
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return text[:1].lower() + text[1:]


class _DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on every connection.

    Waiting for a request (from the connection's opening, or from the first byte
    after the previous response) may take ``timeout``; a request inside the app may
    take ``2 * timeout`` (the app answers by ``timeout``; the rest lets a slow reader
    take its answer). Past either, the connection is closed. Only the asyncio
    ``Protocol`` methods and uvicorn's ``app`` attribute are used.
    """

    timeout: float = 5.0  # set per server by make_server

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        # Requests in the app: a pipelined one may start before the previous one returns.
        self._in_app = 0
        inner = self.app

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            self._in_app += 1
            self._arm(2 * self.timeout)
            try:
                await inner(scope, receive, send)
            finally:
                self._in_app -= 1
                if not self._in_app:
                    self._disarm()

        self.app = app

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm(self.timeout)

    def data_received(self, data: bytes) -> None:
        if self._timer is None and not self._in_app:
            self._arm(self.timeout)
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            what = "answered" if self._in_app else "a whole request received"
            _log.info("closed the connection of %s: not %s within the timeout", client, what)
            self.transport.close()


def make_server(
    app: ASGIApp,
    config: ServerConfig,
    *,
    log_config: dict[str, Any] | None = None,
    **uvicorn_options: Any,
) -> uvicorn.Server:
    """A uvicorn server for ``app`` with the limits of ``config`` (not yet running).

    ``log_config`` is a :func:`logging.config.dictConfig` mapping (see
    :func:`logging_config`), or None to leave logging as it is. ``uvicorn_options``
    go to ``uvicorn.Config`` (``ssl_certfile``, ``ssl_keyfile``, ...), except the
    ones the server's safety depends on.
    """
    fixed = {"app", "http", "proxy_headers", "ws", "lifespan", "log_config"}
    clash = fixed & set(uvicorn_options)
    if clash:
        raise ServerConfigError([f"make_server sets {name} itself" for name in sorted(clash)])

    class Protocol(_DeadlineProtocol):
        timeout = config.request_timeout

    options: dict[str, Any] = {
        "server_header": False,
        "log_level": "info",
        "timeout_graceful_shutdown": 10,
        **uvicorn_options,
    }
    uvicorn_config = uvicorn.Config(
        app,
        http=Protocol,
        ws="none",  # the API has no WebSocket route; an upgrade is a plain request
        lifespan="off",  # nothing to start or stop
        proxy_headers=False,  # X-Forwarded-For must not turn a remote caller into loopback
        log_config=log_config,
        **options,
    )
    return uvicorn.Server(uvicorn_config)


def logging_config() -> dict[str, Any]:
    """uvicorn's logging, with the ``zerotrust`` loggers on its handler at INFO."""
    config: dict[str, Any] = {**LOGGING_CONFIG, "loggers": dict(LOGGING_CONFIG["loggers"])}
    config["loggers"]["zerotrust"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def serve(app: ASGIApp, config: ServerConfig, sockets: list[socket.socket]) -> None:
    """Serve ``app`` (from :func:`create_app`) on ``sockets`` (from :func:`listen`)
    until interrupted (blocks)."""
    make_server(app, config, log_config=logging_config()).run(sockets=sockets)
