"""Recent behaviour in Redis, shared by every PDP replica (extra ``redis``).

A decision costs one round trip: :meth:`RedisBehaviorStore.features` runs one Lua
script that records the request and reads the subject's features atomically. The
decision's outcome (a denial or step-up, its records taken back) is not sent on its
own: it rides with the next call this store makes (folded into that script when it
is for the same subject, else in the same pipeline), so it costs no round trip.
Set ``BehaviorConfig(defer_outcomes=False)`` to send it at once instead (two round
trips per refused decision). ``redis`` is imported only when a store is built, so
``import zerotrust`` never needs it.

Faults never raise and never wait longer than the timeouts: the features come back
``{"available": False}`` and the PDP applies ``on_store_error``. A circuit breaker
then answers at once until the server is back.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from zerotrust.behavior._lua import SCRIPT
from zerotrust.behavior._windows import bucket
from zerotrust.behavior.breaker import BreakerState, CircuitBreaker
from zerotrust.behavior.config import BehaviorConfig, ConfiguredStore
from zerotrust.behavior.features import UNAVAILABLE, Outcome, counted_records, outcome_of
from zerotrust.decision import Decision
from zerotrust.request import AccessRequest

__all__ = ["RedisBehaviorStore", "RedisStats"]

_log = logging.getLogger("zerotrust.behavior")
MAX_PENDING = 1_000  # deferred outcomes beyond this are sent at once
_Args = list[str | int]


@attrs.frozen
class RedisStats:
    """Counters since the store was made: what it cost and what went wrong."""

    round_trips: int
    failures: int
    rejected: int  # calls answered "unavailable" by the open circuit breaker
    lost_outcomes: int  # deferred outcomes dropped because the store was down
    pending_outcomes: int
    breaker: BreakerState


def _tag(request: AccessRequest) -> str:
    """The subject's hash tag: braces escaped so Cluster hashes exactly this."""
    raw = f"{request.subject.type}:{request.subject.id}"
    return raw.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value or '""'
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"))


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
        import redis

        self._config = c = config or BehaviorConfig()
        self._client = client
        self._async_factory = async_client
        self._async: tuple[asyncio.AbstractEventLoop, Any] | None = None
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._noscript: type[BaseException] = redis.exceptions.NoScriptError
        self._breaker = (
            CircuitBreaker(c.breaker_failures, c.breaker_reset, monotonic)
            if monotonic is not None
            else CircuitBreaker(c.breaker_failures, c.breaker_reset)
        )
        self._sha = _sha1(SCRIPT)
        self._header: _Args = [
            c.effective_ttl,
            c.buckets,
            c.baseline_hours + 1,
            c.seen_hours,
            c.max_resources,
            c.max_seen,
        ]
        self._g = (c.granularity(c.minute_window), c.granularity(c.hour_window))
        self._g_day = c.granularity(c.day_window)
        self._lock = threading.Lock()
        self._pending: list[tuple[str, _Args]] = []
        self._round_trips = self._failures = self._rejected = self._lost = 0

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
                self._rejected,
                self._lost,
                len(self._pending),
                self._breaker.state,
            )

    # -- the protocol -------------------------------------------------------------

    def features(self, request: AccessRequest, now: datetime.datetime) -> Mapping[str, Any]:
        """Record the request and read its subject's features: one round trip."""
        calls = self._calls(request, now)
        if calls is None:
            return UNAVAILABLE
        result = self._run(calls)
        return UNAVAILABLE if result is None else _features(result)

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
        calls = self._calls(None, None)
        if calls:
            self._run(calls)

    def close(self) -> None:
        """Flush queued outcomes and close the connection pool."""
        self.flush()
        self._client.close()

    async def features_async(
        self, request: AccessRequest, now: datetime.datetime
    ) -> Mapping[str, Any]:
        calls = self._calls(request, now)
        if calls is None:
            return UNAVAILABLE
        result = await self._run_async(calls)
        return UNAVAILABLE if result is None else _features(result)

    async def record_async(self, request: AccessRequest, decision: Decision) -> None:
        outcome = outcome_of(request, decision)
        if outcome is not None:
            self._queue(_tag(request), outcome, create=False)
            if self._must_flush():
                await self.flush_async()

    async def flush_async(self) -> None:
        calls = self._calls(None, None)
        if calls:
            await self._run_async(calls)

    async def aclose(self) -> None:
        """Flush and close the async client of the running loop (if one was made)."""
        await self.flush_async()
        if self._async is not None and self._async[0] is asyncio.get_running_loop():
            await self._async[1].aclose()
            self._async = None

    # -- internals ----------------------------------------------------------------

    def _queue(self, tag: str, outcome: Outcome, *, create: bool) -> None:
        t = outcome.at
        args: _Args = [
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

    def _keys(self, tag: str) -> list[str]:
        base = f"{self._config.key_prefix}:{{{tag}}}:"
        return [base + part for part in ("m", "h", "d", "H", "r", "sd", "si", "sc")]

    def _calls(
        self, request: AccessRequest | None, now: datetime.datetime | None
    ) -> list[list[str | int]] | None:
        """The script calls for this round trip (the request's last), or None when the
        breaker says not to try (queued outcomes are then dropped and counted)."""
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending and request is None:
            return []
        if not self._breaker.allow():
            with self._lock:
                self._rejected += 1 if request is not None else 0
                self._lost += len(pending)
            return None
        by_tag: dict[str, list[str | int]] = {}
        for tag, args in pending:
            by_tag.setdefault(tag, []).extend(args)
        calls: list[list[str | int]] = []
        mine = _tag(request) if request is not None else None
        for tag, flat in by_tag.items():
            if tag != mine:
                calls.append([*self._keys(tag), *self._header, len(flat) // 7, *flat])
        if request is not None and now is not None and mine is not None:
            t = now.timestamp()
            flat = by_tag.get(mine, [])
            context = request.context
            calls.append(
                [
                    *self._keys(mine),
                    *self._header,
                    len(flat) // 7,
                    *flat,
                    "r",
                    bucket(t, self._g[0]),
                    bucket(t, self._g[1]),
                    bucket(t, self._g_day),
                    bucket(t, 3600),
                    counted_records(context),
                    _text([request.resource.type, request.resource.id]),
                    _text(request.device.get("id")),
                    _text(context.get("ip")),
                    _text(context.get("country")),
                ]
            )
        return calls

    def _run(self, calls: list[list[str | int]]) -> list[Any] | None:
        for attempt in (0, 1):
            try:
                with self._lock:
                    self._round_trips += 1
                if len(calls) == 1:
                    result: Any = self._client.evalsha(self._sha, 8, *calls[0])
                else:
                    pipe = self._client.pipeline(transaction=False)
                    for call in calls:
                        pipe.evalsha(self._sha, 8, *call)
                    result = pipe.execute()[-1]
            except self._noscript:
                if attempt == 0 and self._load():
                    continue
                self._failed(None)
                return None
            except self._errors as exc:
                self._failed(exc)
                return None
            self._succeeded()
            return list(result)
        return None  # pragma: no cover

    def _load(self) -> bool:
        try:
            with self._lock:
                self._round_trips += 1
            self._client.script_load(SCRIPT)
        except self._errors as exc:
            self._failed(exc)
            return False
        return True

    async def _run_async(self, calls: list[list[str | int]]) -> list[Any] | None:
        client = self._async_client()
        if client is None:
            return self._run(calls)
        for attempt in (0, 1):
            try:
                with self._lock:
                    self._round_trips += 1
                if len(calls) == 1:
                    result: Any = await client.evalsha(self._sha, 8, *calls[0])
                else:
                    pipe = client.pipeline(transaction=False)
                    for call in calls:
                        pipe.evalsha(self._sha, 8, *call)
                    result = (await pipe.execute())[-1]
            except self._noscript:
                if attempt == 0:
                    try:
                        await client.script_load(SCRIPT)
                        continue
                    except self._errors as exc:
                        self._failed(exc)
                        return None
                self._failed(None)
                return None
            except self._errors as exc:
                self._failed(exc)
                return None
            self._succeeded()
            return list(result)
        return None  # pragma: no cover

    def _async_client(self) -> Any:
        if self._async_factory is None:
            return None
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            # redis.asyncio connections belong to one loop: one client per loop
            self._async = (loop, self._async_factory())
        return self._async[1]

    def _failed(self, exc: BaseException | None) -> None:
        with self._lock:
            self._failures += 1
        changed = self._breaker.failure()
        if changed is BreakerState.OPEN:
            _log.warning(
                "behaviour store unreachable, circuit open for %.1f s: %s",
                self._config.breaker_reset,
                f"{type(exc).__name__}: {exc}" if exc is not None else "script missing",
            )

    def _succeeded(self) -> None:
        if self._breaker.success() is BreakerState.CLOSED:
            _log.warning("behaviour store reachable again, circuit closed")


def _features(r: list[Any]) -> dict[str, Any]:
    hours = int(r[12])
    return {
        "requests_1m": int(r[0]),
        "requests_1h": int(r[1]),
        "requests_24h": int(r[2]),
        "records_1h": int(r[3]),
        "records_24h": int(r[4]),
        "distinct_resources_1h": int(r[5]),
        "denied_1h": int(r[6]),
        "step_ups_1h": int(r[7]),
        "new_device": bool(r[8]),
        "new_ip": bool(r[9]),
        "new_country": bool(r[10]),
        "baseline_records_per_hour": int(r[11]) / hours if hours > 0 else 0.0,
        "available": True,
    }


def _sha1(text: str) -> str:
    import hashlib

    return hashlib.sha1(text.encode("utf-8")).hexdigest()
