"""What ``zerotrust serve`` does, minus printing: build the config, bind, run uvicorn.

The sockets are bound here, before uvicorn starts, so that every reason the server
cannot listen (a bad host or port, a port in use, an address not on this machine) is
one :class:`ListenError` the CLI prints as one line, instead of uvicorn's log lines,
tracebacks and its own exit status. The bounds on each connection (time, number, file
descriptors) are in :mod:`zerotrust.server.connections`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import LOGGING_CONFIG

from zerotrust.errors import ZeroTrustError
from zerotrust.server.config import ServerConfig, ServerConfigError
from zerotrust.server.connections import (
    MIN_OPEN_FILES,
    Deadline,
    capacity,
    deadline_protocol,
    raise_open_file_limit,
)
from zerotrust.server.registry import GRACE_SECONDS, Connections
from zerotrust.server.settings import resolve
from zerotrust.server.throttle import Throttled, ThrottleWarnings, accept_errors

__all__ = [
    "Bound",
    "ListenError",
    "address",
    "build_config",
    "is_loopback_host",
    "listen",
    "listen_each",
    "logging_config",
    "make_server",
    "reuse_port_set",
]

#: Connections the kernel queues until they are accepted. asyncio takes its ``backlog``
#: both as this and as how many it accepts in one turn of the loop; the second must stay
#: small (see :func:`capacity`), so the listening sockets get this one back once served.
_BACKLOG = 1024
#: Linux balances connections across sockets bound with SO_REUSEPORT; other systems
#: either lack it or give every connection to one of them (the last bound).
_REUSE_PORT = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


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
    config_file: str | Path | None = None,
    *,
    host: str | None = None,
    entities: str | None = None,
    insecure_local: bool = False,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> ServerConfig:
    """The configuration of ``zerotrust serve`` (see
    :func:`~zerotrust.server.settings.resolve`: file, ``environ``, ``flags``; ``host``,
    ``entities`` and ``insecure_local`` win over them all); refuse a public insecure
    server."""
    config = resolve(
        config_file,
        environ=environ,
        flags=flags,
        host=host,
        entities_file=str(Path(entities)) if entities is not None else None,
        insecure_local=insecure_local or None,
    )
    if config.insecure_local and not is_loopback_host(config.host):
        raise ServerConfigError(
            [f"--insecure-local serves loopback only; refusing to bind {config.host!r}"]
        )
    return config


def listen(host: str, port: int) -> list[socket.socket]:
    """Listening TCP sockets for every address ``host`` resolves to (as asyncio binds).

    ``host`` is a name or an IP address (IPv6 with or without brackets; ``""`` for
    every interface); ``port`` is 0..65535, 0 for a free port the system chooses.
    Raises :class:`ListenError` naming the
    address and the reason; no socket is left open then.
    """
    if ("[" in host or "]" in host) and not _bracketed_ipv6(host):
        raise ListenError(
            f"cannot listen on {host!r}: brackets go around an IPv6 address only, "
            "as in [::1], or leave them out"
        )
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


def listen_each(host: str, port: int, workers: int) -> list[list[socket.socket]]:
    """:func:`listen`, for ``workers`` processes serving one port: a set of sockets for
    each. On Linux each set is its own, bound with ``SO_REUSEPORT``, and the kernel
    spreads new connections across them; elsewhere every process shares one set.

    The address is first bound without ``SO_REUSEPORT``, so a port another program
    holds is refused as by :func:`listen` (it might otherwise share it with us).
    """
    first = listen(host, port)
    if workers == 1 or not _REUSE_PORT:
        return [first] * workers
    bound = [(sock.family, sock.proto, sock.getsockname()) for sock in first]
    for sock in first:
        sock.close()
    sets: list[list[socket.socket]] = []
    try:
        for _ in range(workers):
            sets.append(reuse_port_set(bound))
    except OSError as exc:
        for sock in (s for each in sets for s in each):
            sock.close()
        raise ListenError(f"cannot listen on {address(host, port)}: {_reason(exc)}") from exc
    return sets


#: Where a set of listening sockets is bound: (family, protocol, socket address) each.
Bound = Sequence[tuple[int, int, Any]]


def reuse_port_set(bound: Bound) -> list[socket.socket]:
    """Listening sockets on the addresses in ``bound``, with ``SO_REUSEPORT`` (Linux):
    one more set beside those already serving the port. Raises ``OSError``, leaving
    nothing open."""
    made: list[socket.socket] = []
    try:
        for family, proto, sockaddr in bound:
            sock = socket.socket(family, socket.SOCK_STREAM, proto)
            made.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)
            sock.listen(_BACKLOG)
    except OSError:
        for sock in made:
            sock.close()
        raise
    return made


def address(host: str, port: int) -> str:
    """``host:port`` as written in a URL (``[::1]:8080``)."""
    name = _unbracket(host)
    return f"[{name}]:{port}" if ":" in name else f"{name}:{port}"


def _unbracket(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _bracketed_ipv6(host: str) -> bool:
    """Whether ``host`` is ``[`` an IPv6 address ``]`` (RFC 3986 section 3.2.2)."""
    if not (host.startswith("[") and host.endswith("]")):
        return False
    try:
        ipaddress.IPv6Address(host[1:-1])
    except ValueError:
        return False
    return True


def _reason(exc: BaseException) -> str:
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return text[:1].lower() + text[1:]


def make_server(
    app: ASGIApp,
    config: ServerConfig,
    *,
    log_config: dict[str, Any] | None = None,
    on_serving: Callable[[], None] | None = None,
    **uvicorn_options: Any,
) -> uvicorn.Server:
    """A uvicorn server for ``app`` with the limits of ``config`` (not yet running).

    ``log_config`` is a :func:`logging.config.dictConfig` mapping (see
    :func:`logging_config`), or None to leave logging as it is. ``uvicorn_options``
    go to ``uvicorn.Config`` (``ssl_certfile``, ``ssl_keyfile``, ...), except the
    ones the server's safety depends on. ``on_serving`` is called once the server
    listens, before it answers anything.

    Raises the process's soft open-file limit to its hard limit, and bounds the open
    connections below it (``config.max_connections`` at most), and those of one client
    address to ``config.max_connections_per_address`` when set. Raises
    :class:`ListenError` if the limit leaves too little room to serve.

    With TLS (``ssl_certfile``, ``ssl_context_factory``), the server listens for plain
    TCP and each connection begins TLS once counted, with ``config.request_timeout``
    for its handshake (see :class:`~zerotrust.server.connections.Deadline`); the
    certificate is read here, and one it cannot use is a :class:`ServerConfigError`.
    """
    fixed = {"app", "http", "proxy_headers", "ws", "lifespan", "log_config", "backlog"}
    clash = fixed & set(uvicorn_options)
    if clash:
        raise ServerConfigError([f"make_server sets {name} itself" for name in sorted(clash)])
    open_files = raise_open_file_limit()
    room = capacity(open_files, config.max_connections)
    if room is None:
        raise ListenError(
            f"the open-file limit ({open_files}) leaves no room for connections: "
            f"raise it (ulimit -n) to at least {MIN_OPEN_FILES}"
        )
    limit, backlog = room

    # A class per server: uvicorn builds the protocol itself, from the class alone.
    protocol: type[Deadline] = type(
        "Protocol",
        (deadline_protocol(),),
        {
            "timeout": config.request_timeout,
            "registry": Connections(
                limit,
                config.max_connections_per_address,
                grace=min(GRACE_SECONDS, config.request_timeout),
            ),
            "slow": Throttled(logging.INFO),
            "handshakes": Throttled(logging.INFO),
        },
    )

    options: dict[str, Any] = {
        "server_header": False,
        "log_level": "info",
        "timeout_graceful_shutdown": 10,
        **uvicorn_options,
    }
    uvicorn_config = uvicorn.Config(
        app,
        http=protocol,
        ws="none",  # the API has no WebSocket route; an upgrade is a plain request
        lifespan="off",  # nothing to start or stop
        proxy_headers=False,  # X-Forwarded-For must not turn a remote caller into loopback
        log_config=log_config,
        backlog=backlog,  # also how many connections asyncio accepts in one go
        **options,
    )
    try:
        uvicorn_config.load()  # now, to take the TLS context it builds
    except OSError as exc:  # ssl.SSLError too: a certificate or key uvicorn cannot use
        files = ", ".join(
            f"{name}={uvicorn_options[name]}"
            for name in ("ssl_certfile", "ssl_keyfile")
            if uvicorn_options.get(name)
        )
        raise ServerConfigError([f"cannot set up TLS ({files}): {_reason(exc)}"]) from exc
    # TLS begins in the protocol, once a connection is counted (Deadline).
    protocol.tls, uvicorn_config.ssl = uvicorn_config.ssl, None
    if protocol.tls is not None and "loop" not in uvicorn_options:
        # The handshake deadline and the count of unsent bytes rely on asyncio's own TLS
        # transport (loop.start_tls); uvloop's differs. Plain HTTP takes uvloop when
        # installed (uvicorn's "auto").
        uvicorn_config.loop = "asyncio"
    if limit < config.max_connections:  # logged now: uvicorn.Config set up logging
        logging.getLogger("zerotrust.server").warning(
            "the open-file limit (%s) allows %d open connections, fewer than "
            "max_connections (%d): raise the hard limit (ulimit -Hn, LimitNOFILE=)",
            open_files,
            limit,
            config.max_connections,
        )
    return _Server(uvicorn_config, protocol.tls, on_serving)


class _Server(uvicorn.Server):
    """uvicorn's server, with asyncio's accept failures reported as one throttled line,
    and the kernel's queue of connections longer than what asyncio accepts at once."""

    def __init__(
        self,
        config: uvicorn.Config,
        tls: ssl.SSLContext | None,
        on_serving: Callable[[], None] | None,
    ) -> None:
        super().__init__(config)
        self._tls = tls
        self._on_serving = on_serving

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        report = Throttled(logging.WARNING)
        asyncio.get_running_loop().set_exception_handler(accept_errors(report))
        await super().startup(sockets)
        for sock in sockets or ():
            sock.listen(_BACKLOG)
        if self.started and self._on_serving is not None:
            self._on_serving()

    def _log_started_message(self, listeners: Sequence[socket.SocketType]) -> None:
        # uvicorn names the scheme after config.ssl, which make_server gave the protocol.
        self.config.ssl = self._tls
        try:
            super()._log_started_message(listeners)
        finally:
            self.config.ssl = None


#: ``log_level`` values, as the ``logging`` module names them.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: ``log_format`` values: uvicorn's text lines, or one JSON object a line.
LOG_FORMATS = ("text", "json")
#: The fields of a JSON log line (python-json-logger names them as ``logging`` does),
#: beside any ``extra`` a record carries.
_JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"


def logging_config(level: str = "INFO", log_format: str = "text") -> dict[str, Any]:
    """uvicorn's logging, with the ``zerotrust`` loggers on its handler at ``level``
    (uvicorn's own at INFO, or ``level`` if higher), each kind of uvicorn or asyncio
    warning at most once per 10 s (see :class:`ThrottleWarnings`); ``log_format="json"``
    writes each line as one JSON object (python-json-logger) with ``asctime``,
    ``levelname``, ``name``, ``process`` and ``message``. Raises
    :class:`ServerConfigError` for a level or format not in :data:`LOG_LEVELS` /
    :data:`LOG_FORMATS`."""
    if level not in LOG_LEVELS:
        raise ServerConfigError(
            [f"log_level must be one of {', '.join(LOG_LEVELS)}, not {level!r}"]
        )
    if log_format not in LOG_FORMATS:
        raise ServerConfigError(
            [f"log_format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}"]
        )
    config: dict[str, Any] = {**LOGGING_CONFIG, "loggers": dict(LOGGING_CONFIG["loggers"])}
    if log_format == "json":
        from pythonjsonlogger.core import RESERVED_ATTRS  # the server extra's

        json_formatter = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": _JSON_FIELDS,
            "json_ensure_ascii": True,
            # uvicorn's copy of the message with terminal colours: noise in JSON.
            "reserved_attrs": [*RESERVED_ATTRS, "color_message"],
        }
        config["formatters"] = {"default": json_formatter, "access": json_formatter}
    uvicorn_level = max(level, "INFO", key=LOG_LEVELS.index)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        config["loggers"][name] = {**config["loggers"][name], "level": uvicorn_level}
    config["filters"] = {"throttle": {"()": ThrottleWarnings}}
    config["loggers"]["uvicorn.error"] = {
        **config["loggers"]["uvicorn.error"],
        "filters": ["throttle"],
    }
    config["loggers"]["zerotrust"] = {"handlers": ["default"], "level": level, "propagate": False}
    # asyncio warns once per connection for some client behaviour (writes after a TLS
    # peer closed: "SSL connection is closed"); a flood of such clients is one line.
    config["loggers"]["asyncio"] = {
        "handlers": ["default"],
        "level": "WARNING",
        "propagate": False,
        "filters": ["throttle"],
    }
    return config
