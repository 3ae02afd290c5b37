"""Recent behaviour in Redis, shared by every PDP replica (extra ``redis``).

A decision costs one round trip: :meth:`RedisBehaviorStore.features` runs one Lua
script that records the request and reads the subject's features atomically. The
decision's outcome (a denial or step-up, its records taken back) is not sent on its
own: it rides with the next call this store makes (folded into that script when it
is for the same subject, else in the same pipeline), so it costs no round trip.
Set ``BehaviorConfig(defer_outcomes=False)`` to send it at once instead (two round
trips per refused decision). ``redis`` is imported only when a store is built, so
``import zerotrust`` never needs it.

Faults never wait longer than the timeouts and come back as ``{"available": False}``,
to which the PDP applies ``on_store_error``. Two kinds are kept apart:

* a *store failure* (no connection, a timeout, a server refusing every script: OOM,
  READONLY, LOADING, BUSY, MISCONF, CLUSTERDOWN, ...) feeds the circuit breaker,
  which then answers at once until the server is back;
* a *subject error* (the server answered, but this subject's keys hold something
  the script cannot use) is that subject's alone: its request is unavailable, every
  other subject goes on and the breaker is not touched.

Any other exception (a bug) is raised to the PDP, which also applies
``on_store_error``; it never holds the breaker.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import attrs

from zerotrust.behavior._lua import SCRIPT
from zerotrust.behavior._redis_faults import Faults
from zerotrust.behavior._windows import bucket
from zerotrust.behavior.breaker import BreakerState, CircuitBreaker, CircuitOpenError
from zerotrust.behavior.config import BehaviorConfig, ConfiguredStore
from zerotrust.behavior.features import (
    FEATURES,
    UNAVAILABLE,
    Outcome,
    counted_records,
    outcome_of,
    subject_of,
    tracked_text,
)
from zerotrust.decision import Decision
from zerotrust.request import AccessRequest

__all__ = ["RedisBehaviorStore", "RedisStats"]

_log = logging.getLogger("zerotrust.behavior")
MAX_PENDING = 1_000  # deferred outcomes beyond this are sent at once
_Call = list[bytes | int]
#: The script's reply: the features but ``available``, the baseline as sum and hours.
_REPLY = len(FEATURES)


@attrs.frozen
class RedisStats:
    """Counters since the store was made: what it cost and what went wrong."""

    round_trips: int
    failures: int  # store failures (what the breaker counts)
    subject_errors: int  # requests whose subject's keys the script could not use
    rejected: int  # calls answered "unavailable" by the open circuit breaker
    lost_outcomes: int  # deferred outcomes dropped: store down, or their subject's keys bad
    pending_outcomes: int
    breaker: BreakerState


class _Batch(NamedTuple):
    """The script calls of one round trip, one per subject (a request's last)."""

    calls: list[_Call]
    tags: list[bytes]
    outcomes: list[int]  # deferred outcomes carried by each call
    request: bool  # whether the last call reads a request's features


def _tag(request: AccessRequest) -> bytes:
    """The subject's hash tag ``<type>:<id>``, each part percent-escaped (``%``, ``:``,
    ``{``, ``}``): one ``:`` splits the parts, so two subjects never share a tag (the
    type ``user:alice`` with id ``x`` is not the type ``user`` with id ``alice:x``),
    and no brace lets Cluster hash anything else. Any str encodes (a lone surrogate
    too, injectively), so no subject can fail here."""
    kind, ident = subject_of(request)
    return _bytes(f"{_escaped(kind)}:{_escaped(ident)}")


def _escaped(text: str) -> str:
    return text.replace("%", "%25").replace(":", "%3A").replace("{", "%7B").replace("}", "%7D")


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _arg(value: Any, field: str) -> bytes:
    """A tracked value as a script argument: ``b""`` is "absent", and the empty string
    is ``b"\xff"``, which no str encodes to (so it is neither absent nor ``'""'``)."""
    text = tracked_text(value, field)
    if text is None:
        return b""
    return _bytes(text) or b"\xff"


def _shown(tag: bytes) -> str:
    """A subject's tag for a log line: printable and bounded."""
    return repr(tag[:80].decode("utf-8", "backslashreplace"))


class RedisBehaviorStore(ConfiguredStore):
    """Recent behaviour in Redis. Build one with :meth:`from_url`.

    Thread-safe (redis-py's pool); ``features_async`` / ``record_async`` use
    ``redis.asyncio`` so ``evaluate_async`` never blocks the event loop.
    """

    def __init__(
        self,
        client: Any,
        config: BehaviorConfig | None = None,
        *,
        async_client: Callable[[], Any] | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self._config = c = config or BehaviorConfig()
        self._client = client
        self._async_factory = async_client
        self._async: tuple[asyncio.AbstractEventLoop, Any] | None = None
        self._faults = Faults()
        options: dict[str, Any] = {"is_failure": self._faults.is_failure}
        if monotonic is not None:
            options["monotonic"] = monotonic
        self._breaker = CircuitBreaker(c.breaker_failures, c.breaker_reset, **options)
        self._sha = hashlib.sha1(SCRIPT.encode("utf-8")).hexdigest()
        self._header: _Call = [
            c.effective_ttl,
            c.buckets,
            c.baseline_hours + 1,
            c.seen_hours,
            c.max_resources,
            c.max_seen,
        ]
        self._prefix = _bytes(c.key_prefix)
        self._g = (c.granularity(c.minute_window), c.granularity(c.hour_window))
        self._g_day = c.granularity(c.day_window)
        self._lock = threading.Lock()
        self._pending: list[tuple[bytes, _Call]] = []
        self._round_trips = self._failures = self._subject_errors = 0
        self._rejected = self._lost = 0

    @classmethod
    def from_url(
        cls, url: str, config: BehaviorConfig | None = None, **kwargs: Any
    ) -> RedisBehaviorStore:
        """A store on ``redis://host:port/db`` (or ``rediss://``, ``unix://``), with the
        config's timeouts and no client-side retries (the breaker handles outages).
        Extra keyword arguments go to ``redis.Redis.from_url``."""
        import redis
        import redis.asyncio
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        c = config or BehaviorConfig()
        options: dict[str, Any] = {
            "socket_connect_timeout": c.connect_timeout,
            "socket_timeout": c.timeout,
            "health_check_interval": 0,
            **kwargs,
        }
        client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **options)

        def make_async() -> Any:
            from redis.asyncio.retry import Retry as AsyncRetry

            return redis.asyncio.Redis.from_url(url, retry=AsyncRetry(NoBackoff(), 0), **options)

        return cls(client, c, async_client=make_async)

    def stats(self) -> RedisStats:
        with self._lock:
            return RedisStats(
                self._round_trips,
                self._failures,
                self._subject_errors,
                self._rejected,
                self._lost,
                len(self._pending),
                self._breaker.state,
            )

    # -- the protocol -------------------------------------------------------------

    def features(self, request: AccessRequest, now: datetime.datetime) -> Mapping[str, Any]:
        """Record the request and read its subject's features: one round trip."""
        batch = self._batch(request, now)
        return self._mine(batch, self._run(batch))

    def record(self, request: AccessRequest, decision: Decision) -> None:
        """Queue the decision's outcome for the next call (or send it now)."""
        outcome = outcome_of(request, decision)
        if outcome is not None:
            self._queue(_tag(request), outcome, create=False)
            if self._must_flush():
                self.flush()

    def record_access(self, request: AccessRequest, at: datetime.datetime, records: int) -> None:
        self._queue(_tag(request), Outcome(at.timestamp(), records, 0, 0), create=True)
        if self._must_flush():
            self.flush()

    def flush(self) -> None:
        """Send queued outcomes now (one round trip; nothing if none are queued)."""
        batch = self._batch(None, None)
        if batch.calls:
            self._run(batch)

    def close(self) -> None:
        """Flush queued outcomes and close the connection pool."""
        self.flush()
        self._client.close()

    async def features_async(
        self, request: AccessRequest, now: datetime.datetime
    ) -> Mapping[str, Any]:
        batch = self._batch(request, now)
        return self._mine(batch, await self._run_async(batch))

    async def record_async(self, request: AccessRequest, decision: Decision) -> None:
        outcome = outcome_of(request, decision)
        if outcome is not None:
            self._queue(_tag(request), outcome, create=False)
            if self._must_flush():
                await self.flush_async()

    async def flush_async(self) -> None:
        batch = self._batch(None, None)
        if batch.calls:
            await self._run_async(batch)

    async def aclose(self) -> None:
        """Flush and close the async client of the running loop (if one was made)."""
        await self.flush_async()
        if self._async is not None and self._async[0] is asyncio.get_running_loop():
            await self._async[1].aclose()
            self._async = None

    # -- building a round trip ------------------------------------------------------

    def _queue(self, tag: bytes, outcome: Outcome, *, create: bool) -> None:
        t = outcome.at
        args: _Call = [
            bucket(t, self._g[1]),
            bucket(t, self._g_day),
            bucket(t, 3600),
            outcome.records,
            outcome.denied,
            outcome.step_ups,
            1 if create else 0,
        ]
        with self._lock:
            self._pending.append((tag, args))

    def _must_flush(self) -> bool:
        return not self._config.defer_outcomes or len(self._pending) > MAX_PENDING

    def _keys(self, tag: bytes) -> list[bytes]:
        base = self._prefix + b":{" + tag + b"}:"
        return [base + part for part in (b"m", b"h", b"d", b"H", b"r", b"sd", b"si", b"sc")]

    def _batch(self, request: AccessRequest | None, now: datetime.datetime | None) -> _Batch:
        """The queued outcomes, one call per subject, and the request's call last.

        The request's arguments are built before the queue is taken, so a value that
        cannot be tracked (raising ``BehaviorStoreError``) loses nothing queued."""
        mine: bytes | None = None
        request_args: _Call = []
        if request is not None and now is not None:
            mine = _tag(request)
            t = now.timestamp()
            context = request.context
            request_args = [
                b"r",
                bucket(t, self._g[0]),
                bucket(t, self._g[1]),
                bucket(t, self._g_day),
                bucket(t, 3600),
                counted_records(context),
                _arg([request.resource.type, request.resource.id], "resource"),
                _arg(request.device.get("id"), "device.id"),
                _arg(context.get("ip"), "context.ip"),
                _arg(context.get("country"), "context.country"),
            ]
        with self._lock:
            pending, self._pending = self._pending, []
        by_tag: dict[bytes, _Call] = {}
        for tag, args in pending:
            by_tag.setdefault(tag, []).extend(args)
        batch = _Batch([], [], [], mine is not None)
        for tag, flat in by_tag.items():
            if tag != mine:
                self._add(batch, tag, flat, [])
        if mine is not None:
            self._add(batch, mine, by_tag.get(mine, []), request_args)
        return batch

    def _add(self, batch: _Batch, tag: bytes, outcomes: _Call, request: _Call) -> None:
        n = len(outcomes) // 7
        batch.calls.append([*self._keys(tag), *self._header, n, *outcomes, *request])
        batch.tags.append(tag)
        batch.outcomes.append(n)

    # -- one round trip, through the breaker -------------------------------------------

    def _run(self, batch: _Batch) -> list[Any] | None:
        """The replies in call order (a subject error as its exception), or None when
        nothing could be sent."""
        try:
            replies = self._breaker.call(lambda: self._send(batch.calls))
        except Exception as exc:
            self._unsent(batch, exc)
            return None
        self._check_outcomes(batch, replies)
        return replies

    async def _run_async(self, batch: _Batch) -> list[Any] | None:
        client = self._async_client()
        if client is None:
            return self._run(batch)
        try:
            replies = await self._breaker.call_async(lambda: self._send_async(client, batch.calls))
        except Exception as exc:
            self._unsent(batch, exc)
            return None
        self._check_outcomes(batch, replies)
        return replies

    def _send(self, calls: list[_Call]) -> list[Any]:
        """Run the calls; after NOSCRIPT load the script and run those calls again.
        Raises a store failure; a subject error comes back as its reply."""
        replies = self._exchange(calls)
        missing = [i for i, r in enumerate(replies) if isinstance(r, self._faults.noscript)]
        if missing:
            self._trip()
            self._client.script_load(SCRIPT)
            again = self._exchange([calls[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        self._faults.raise_server_wide(replies)
        return replies

    def _exchange(self, calls: list[_Call]) -> list[Any]:
        self._trip()
        if len(calls) == 1:
            try:
                return [self._client.evalsha(self._sha, 8, *calls[0])]
            except self._faults.response as exc:
                return [exc]
        pipe = self._client.pipeline(transaction=False)
        for call in calls:
            pipe.evalsha(self._sha, 8, *call)
        return list(pipe.execute(raise_on_error=False))

    async def _send_async(self, client: Any, calls: list[_Call]) -> list[Any]:
        replies = await self._exchange_async(client, calls)
        missing = [i for i, r in enumerate(replies) if isinstance(r, self._faults.noscript)]
        if missing:
            self._trip()
            await client.script_load(SCRIPT)
            again = await self._exchange_async(client, [calls[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        self._faults.raise_server_wide(replies)
        return replies

    async def _exchange_async(self, client: Any, calls: list[_Call]) -> list[Any]:
        self._trip()
        if len(calls) == 1:
            try:
                return [await client.evalsha(self._sha, 8, *calls[0])]
            except self._faults.response as exc:
                return [exc]
        pipe = client.pipeline(transaction=False)
        for call in calls:
            pipe.evalsha(self._sha, 8, *call)
        return list(await pipe.execute(raise_on_error=False))

    def _async_client(self) -> Any:
        if self._async_factory is None:
            return None
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            # redis.asyncio connections belong to one loop: one client per loop
            self._async = (loop, self._async_factory())
        return self._async[1]

    # -- accounting -----------------------------------------------------------------

    def _trip(self) -> None:
        with self._lock:
            self._round_trips += 1

    def _unsent(self, batch: _Batch, exc: Exception) -> None:
        """Count a round trip that did not happen; re-raise what is no store fault."""
        refused = isinstance(exc, CircuitOpenError)
        failed = not refused and self._faults.is_failure(exc)
        with self._lock:
            self._lost += sum(batch.outcomes)
            self._rejected += 1 if refused and batch.request else 0
            self._failures += 1 if failed else 0
        if not (refused or failed):
            raise exc

    def _check_outcomes(self, batch: _Batch, replies: list[Any]) -> None:
        """Count and log the deferred outcomes a subject error dropped."""
        last = len(replies) - 1 if batch.request else len(replies)
        for i in range(last):
            if isinstance(replies[i], BaseException):
                with self._lock:
                    self._lost += batch.outcomes[i]
                _log.warning(
                    "behaviour of subject %s: outcomes dropped: %s",
                    _shown(batch.tags[i]),
                    replies[i],
                )

    def _mine(self, batch: _Batch, replies: list[Any] | None) -> Mapping[str, Any]:
        """The request's features, or unavailable (a subject error counted and logged)."""
        if replies is None:
            return UNAVAILABLE
        reply = replies[-1]
        features = _features(reply)
        if features is None:
            failed = isinstance(reply, BaseException)  # its folded-in outcomes went too
            with self._lock:
                self._subject_errors += 1
                self._lost += batch.outcomes[-1] if failed else 0
            _log.warning(
                "behaviour of subject %s unavailable (this subject only): %s",
                _shown(batch.tags[-1]),
                reply if failed else "malformed reply",
            )
            return UNAVAILABLE
        return features


def _features(r: Any) -> dict[str, Any] | None:
    """The script's reply as features, or None when it is not the 13 integers it
    should be (an error reply, or a subject's fields that someone else wrote)."""
    if type(r) is not list or len(r) != _REPLY or any(type(v) is not int for v in r):
        return None
    hours = r[12]
    return {
        "requests_1m": r[0],
        "requests_1h": r[1],
        "requests_24h": r[2],
        "records_1h": r[3],
        "records_24h": r[4],
        "distinct_resources_1h": r[5],
        "denied_1h": r[6],
        "step_ups_1h": r[7],
        "new_device": bool(r[8]),
        "new_ip": bool(r[9]),
        "new_country": bool(r[10]),
        "baseline_records_per_hour": r[11] / hours if hours > 0 else 0.0,
        "available": True,
    }
