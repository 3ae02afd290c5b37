"""The open connections of one server: how many, whose, and which one makes room.

At the bound, the connection that has waited the longest on its client is closed
(never a busy one, never one younger than a grace period), so a client that sends its
request at once is still served however fast a flood connects.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Protocol

from zerotrust.server.throttle import Throttled

__all__ = ["GRACE_SECONDS", "Connections", "client_address"]

#: How long a new connection is never closed to make room, if it has sent no request
#: yet: long enough for a lost first packet to be sent again (TCP's retransmission
#: timeout is 200 ms to 1 s, RFC 6298) and a keep-alive pool to use its connection.
GRACE_SECONDS = 1.0


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
