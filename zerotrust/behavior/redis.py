"""Recent behaviour in Redis, shared by every PDP replica (extra ``redis``).

A decision costs one round trip: :meth:`RedisBehaviorStore.features` runs one Lua
script that records the request and reads the subject's features atomically. The
decision's outcome (a denial or step-up, its records taken back) is not sent on its
own: it rides with the next call this store makes (folded into that script when it
is for the same subject, else in the same pipeline), so it costs no round trip.
Set ``BehaviorConfig(defer_outcomes=False)`` to send it at once instead (two round
trips per refused decision). ``redis`` is imported only when a store is built, so
``import zerotrust`` never needs it.

Peer groups live in one hash per group (its own Cluster slot). The subject's script
says when a request is the subject's first of its UTC day; the store then publishes
the subject's figures into its groups with one command per group, queued like an
outcome (so once per subject per day, riding with the next call). A group's table is
read (``HGETALL``) when a decision first needs it and again ``peer_refresh`` seconds
of decision time later, in the same pipeline as that decision's script.

On a Redis Cluster (``redis+cluster://``) every key of a subject, and each group,
is in one slot; a round trip is split per master (:mod:`._redis_cluster`), and a
failure of any part of it is a store failure of the whole.

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
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import attrs

from zerotrust.behavior._lua import GROUP_SCRIPT, KEYS, SCRIPT
from zerotrust.behavior._redis_cluster import ClusterWire
from zerotrust.behavior._redis_faults import Faults
from zerotrust.behavior._redis_keys import arg, group_key, resource_arg, shown, text_bytes
from zerotrust.behavior._redis_keys import tag as subject_tag
from zerotrust.behavior._redis_replies import features as features_of
from zerotrust.behavior._redis_replies import members as group_members
from zerotrust.behavior._redis_replies import published
from zerotrust.behavior._redis_wire import Wire
from zerotrust.behavior._windows import bucket
from zerotrust.behavior.breaker import BreakerState, CircuitBreaker, CircuitOpenError
from zerotrust.behavior.config import BehaviorConfig, ConfiguredStore
from zerotrust.behavior.features import UNAVAILABLE, Outcome, counted_records, outcome_of
from zerotrust.behavior.peers import (
    Figures,
    Snapshot,
    best_stats,
    figures_text,
    group_keys,
    peer_features,
)
from zerotrust.decision import Decision
from zerotrust.request import AccessRequest, validated_variables

__all__ = ["RedisBehaviorStore", "RedisStats"]

_log = logging.getLogger("zerotrust.behavior")
MAX_PENDING = 1_000  # deferred outcomes and group writes beyond this are sent at once
MAX_SNAPSHOTS = 4_096  # group snapshots a process keeps (least recently used dropped)
MAX_CLEANUP = 1_000  # stale group members one snapshot removes (the rest next time)
_Call = list[bytes | int]
#: Arguments per outcome in a script call.
_OUTCOME = 8


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
    peer_refreshes: int = 0  # group snapshots taken (one HGETALL each)
    group_errors: int = 0  # group keys that could not be read or written (wrong type)
    lost_publications: int = 0  # member figures not published: store down, group key bad


class _Write(NamedTuple):
    """Queued changes to one group's table: ``(op, field, value)`` triples flattened."""

    key: bytes
    args: _Call
    publications: int  # set or removed member figures among them (not clean-ups)


class _Batch(NamedTuple):
    """One round trip: group writes, group reads, then the script calls, one per
    subject (a request's last)."""

    calls: list[_Call]
    tags: list[bytes]
    outcomes: list[int]  # deferred outcomes carried by each call
    request: bool  # whether the last call reads a request's features
    writes: list[_Write]
    reads: list[bytes]  # group keys whose tables are read for a snapshot
    claimed: list[bytes]  # of those, the refreshes this batch holds the claim on
    groups: list[tuple[str, bytes]]  # the request's groups: key text, Redis key
    at: float  # the request's time (snapshots are taken at it)


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
        self._wire: Wire | ClusterWire = (
            ClusterWire(client, self._faults.response)
            if _is_cluster(client)
            else Wire(client, self._faults.response)
        )
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
            c.peer_days + 1,
            c.max_distinct,
        ]
        self._group_ttl = (c.peer_days + 1) * 86_400
        self._prefix = text_bytes(c.key_prefix)
        self._g = (c.granularity(c.minute_window), c.granularity(c.hour_window))
        self._g_day = c.granularity(c.day_window)
        self._lock = threading.Lock()
        self._pending: list[tuple[bytes, _Call]] = []
        self._pending_groups: list[tuple[bytes, bytes, bytes, bytes]] = []
        self._snapshots: OrderedDict[bytes, Snapshot] = OrderedDict()
        self._refreshing: set[bytes] = set()
        self._round_trips = self._failures = self._subject_errors = 0
        self._rejected = self._lost = 0
        self._peer_refreshes = self._group_errors = self._lost_publications = 0

    @classmethod
    def from_url(
        cls,
        url: str,
        config: BehaviorConfig | None = None,
        *,
        cluster: bool = False,
        **kwargs: Any,
    ) -> RedisBehaviorStore:
        """A store on ``redis://host:port/db`` (or ``rediss://``, ``unix://``), with the
        config's timeouts and no client-side retries (the breaker handles outages).

        ``redis+cluster://host:port`` (``rediss+cluster://`` for TLS), or
        ``cluster=True`` with a ``redis://`` / ``rediss://`` URL, is a Redis Cluster:
        the node named is where the slot table is first read, and the store talks
        to every master through redis-py's ``RedisCluster``. Extra keyword
        arguments go to ``from_url`` of the client class."""
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
        node_url, cluster = _cluster_url(url, cluster)
        if cluster:
            return cls._cluster(node_url, c, options)
        client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **options)

        def make_async() -> Any:
            from redis.asyncio.retry import Retry as AsyncRetry

            return redis.asyncio.Redis.from_url(url, retry=AsyncRetry(NoBackoff(), 0), **options)

        return cls(client, c, async_client=make_async)

    @classmethod
    def _cluster(
        cls, url: str, config: BehaviorConfig, options: dict[str, Any]
    ) -> RedisBehaviorStore:
        """A store on a Redis Cluster. The sync client reads the slot table here (so a
        cluster that cannot be reached fails now, as ``BehaviorStoreError``); the
        async one on its first call."""
        import redis.asyncio.cluster
        import redis.cluster
        from redis.asyncio.retry import Retry as AsyncRetry
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        from zerotrust.errors import BehaviorStoreError

        try:
            client = redis.cluster.RedisCluster.from_url(
                url, retry=Retry(NoBackoff(), 0), **options
            )
        except (
            redis.exceptions.RedisError,
            redis.exceptions.RedisClusterException,
            OSError,
        ) as exc:
            raise BehaviorStoreError(f"Redis Cluster at {_shown_url(url)}: {exc}") from exc

        # Redirections a command follows at most: MOVED, then ASK, then the reply
        # (redis-py's 16 would retry a TRYAGAIN for about 0.1 s: past the timeouts).
        client.RedisClusterRequestTTL = 3

        def make_async() -> Any:
            made = redis.asyncio.cluster.RedisCluster.from_url(
                url, retry=AsyncRetry(NoBackoff(), 0), **options
            )
            made.RedisClusterRequestTTL = 3
            return made

        return cls(client, config, async_client=make_async)

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
                self._peer_refreshes,
                self._group_errors,
                self._lost_publications,
            )

    @property
    def peer_refreshes(self) -> int:
        """Group snapshots this store has taken (one ``HGETALL`` each)."""
        with self._lock:
            return self._peer_refreshes

    # -- the protocol -------------------------------------------------------------

    def features(self, request: AccessRequest, now: datetime.datetime) -> Mapping[str, Any]:
        """Record the request and read its subject's features: one round trip."""
        batch = self._batch(request, now)
        features = self._mine(batch, self._run(batch))
        if self._must_flush():
            self.flush()  # publications, when outcomes are not deferred
        return features

    def record(self, request: AccessRequest, decision: Decision) -> None:
        """Queue the decision's outcome for the next call (or send it now)."""
        outcome = outcome_of(request, decision)
        if outcome is not None:
            self._queue(subject_tag(request), outcome, create=False)
            if self._must_flush():
                self.flush()

    def record_access(self, request: AccessRequest, at: datetime.datetime, records: int) -> None:
        self._queue(subject_tag(request), Outcome(at.timestamp(), records, 0, 0), create=True)
        if self._must_flush():
            self.flush()

    def flush(self) -> None:
        """Send queued outcomes and publications now (one round trip; nothing if none
        are queued)."""
        batch = self._batch(None, None)
        if batch.calls or batch.writes:
            self._run(batch)

    def ping(self) -> bool:
        """Whether Redis answers now (every master, on a cluster): for readiness probes.

        A failure is False, never raised; it does not count against the breaker."""
        try:
            return bool(self._client.ping())
        except Exception:  # any failure to answer is "not ready"
            return False

    def close(self) -> None:
        """Flush queued outcomes and close the connection pool."""
        self.flush()
        self._client.close()

    async def features_async(
        self, request: AccessRequest, now: datetime.datetime
    ) -> Mapping[str, Any]:
        batch = self._batch(request, now)
        features = self._mine(batch, await self._run_async(batch))
        if self._must_flush():
            await self.flush_async()
        return features

    async def record_async(self, request: AccessRequest, decision: Decision) -> None:
        outcome = outcome_of(request, decision)
        if outcome is not None:
            self._queue(subject_tag(request), outcome, create=False)
            if self._must_flush():
                await self.flush_async()

    async def flush_async(self) -> None:
        batch = self._batch(None, None)
        if batch.calls or batch.writes:
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
            bucket(t, 86_400),
            outcome.records,
            outcome.denied,
            outcome.step_ups,
            1 if create else 0,
        ]
        with self._lock:
            self._pending.append((tag, args))

    def _must_flush(self) -> bool:
        queued = len(self._pending) + len(self._pending_groups)
        return queued > 0 and (not self._config.defer_outcomes or queued > MAX_PENDING)

    def _keys(self, tag: bytes) -> list[bytes]:
        base = self._prefix + b":{" + tag + b"}:"
        parts = (b"m", b"h", b"d", b"H", b"r", b"sd", b"si", b"sc", b"D", b"R")
        return [base + part for part in parts]

    def _batch(self, request: AccessRequest | None, now: datetime.datetime | None) -> _Batch:
        """The queued group writes and outcomes (one call per subject), the group reads
        the request needs, and the request's call last.

        The request's arguments are built before the queue is taken, so a value that
        cannot be tracked (raising ``BehaviorStoreError``) loses nothing queued."""
        mine: bytes | None = None
        request_args: _Call = []
        groups: list[tuple[str, bytes]] = []
        t = 0.0
        if request is not None and now is not None:
            mine = subject_tag(request)
            t = now.timestamp()
            variables = validated_variables(request)  # its plain data, when validated
            if variables is None:
                context, device = request.context, request.device
                resource_type, resource_id = request.resource.type, request.resource.id
                properties = request.subject.properties
            else:
                context, device = variables["context"], variables["device"]
                resource_type = variables["resource"]["type"]
                resource_id = variables["resource"]["id"]
                properties = variables["subject"]["properties"]
            request_args = [
                b"r",
                bucket(t, self._g[0]),
                bucket(t, self._g[1]),
                bucket(t, self._g_day),
                bucket(t, 3600),
                bucket(t, 86_400),
                counted_records(context),
                resource_arg(resource_type, resource_id),
                arg(device.get("id"), "device.id"),
                arg(context.get("ip"), "context.ip"),
                arg(context.get("country"), "context.country"),
            ]
            texts = group_keys(properties, self._config.peer_groups)
            groups = [(text, group_key(self._prefix, text)) for text in texts]
            if not groups:
                with self._lock:
                    quiet = not self._pending and not self._pending_groups
                if quiet:  # the usual decision: nothing queued, no groups (a few µs less)
                    call = [*self._keys(mine), *self._header, 0, *request_args]
                    return _Batch([call], [mine], [0], True, [], [], [], groups, t)
        with self._lock:
            pending, self._pending = self._pending, []
            queued, self._pending_groups = self._pending_groups, []
            reads, claimed = self._due(groups, t)
        by_tag: dict[bytes, _Call] = {}
        for tag, args in pending:
            by_tag.setdefault(tag, []).extend(args)
        by_group: dict[bytes, tuple[_Call, list[int]]] = {}
        for key, op, field, value in queued:
            args, published = by_group.setdefault(key, ([self._group_ttl], [0]))
            args.extend((op, field, value))
            published[0] += op != b"c"
        writes = [_Write(key, args, n) for key, (args, [n]) in by_group.items()]
        batch = _Batch([], [], [], mine is not None, writes, reads, claimed, groups, t)
        for tag, flat in by_tag.items():
            if tag != mine:
                self._add(batch, tag, flat, [])
        if mine is not None:
            self._add(batch, mine, by_tag.get(mine, []), request_args)
        return batch

    def _add(self, batch: _Batch, tag: bytes, outcomes: _Call, request: _Call) -> None:
        n = len(outcomes) // _OUTCOME
        batch.calls.append([*self._keys(tag), *self._header, n, *outcomes, *request])
        batch.tags.append(tag)
        batch.outcomes.append(n)

    def _due(self, groups: list[tuple[str, bytes]], t: float) -> tuple[list[bytes], list[bytes]]:
        """Groups to read now (lock held): never read yet, or read ``peer_refresh``
        seconds before ``t``. A refresh is claimed, so concurrent decisions keep the
        old snapshot meanwhile instead of reading the same table again."""
        reads: list[bytes] = []
        claimed: list[bytes] = []
        refresh = self._config.peer_refresh
        for _, key in groups:
            if key in reads:
                continue
            snapshot = self._snapshots.get(key)
            if snapshot is None:
                reads.append(key)
            elif t >= snapshot.taken + refresh and key not in self._refreshing:
                self._refreshing.add(key)
                reads.append(key)
                claimed.append(key)
        return reads, claimed

    def _commands(self, batch: _Batch) -> list[tuple[str, list[Any]]]:
        """The round trip's commands: group writes, then group reads (so a snapshot
        sees what this process published before it), then the script calls.

        Group writes use EVAL: they are rare (once per subject and day), so the
        script text costs little and never meets NOSCRIPT."""
        return [
            *(("eval", [GROUP_SCRIPT, 1, w.key, *w.args]) for w in batch.writes),
            *(("hgetall", [key]) for key in batch.reads),
            *(("evalsha", [self._sha, KEYS, *call]) for call in batch.calls),
        ]

    # -- one round trip, through the breaker -------------------------------------------

    def _run(self, batch: _Batch) -> list[Any] | None:
        """The script calls' replies in call order (a subject error as its exception),
        or None when nothing could be sent."""
        commands = self._commands(batch)
        try:
            replies = self._breaker.call(lambda: self._send(commands))
        except Exception as exc:
            self._unsent(batch, exc)
            return None
        except BaseException:
            self._abandoned(batch)
            raise
        return self._sorted(batch, replies)

    async def _run_async(self, batch: _Batch) -> list[Any] | None:
        client = self._async_client()
        if client is None:
            return self._run(batch)
        commands = self._commands(batch)
        try:
            replies = await self._breaker.call_async(lambda: self._send_async(client, commands))
        except Exception as exc:
            self._unsent(batch, exc)
            return None
        except BaseException:  # a cancelled task: the claims must not stay held
            self._abandoned(batch)
            raise
        return self._sorted(batch, replies)

    def _send(self, commands: list[tuple[str, list[Any]]]) -> list[Any]:
        """Run the commands; after NOSCRIPT load the script and run those calls again.
        Raises a store failure; a subject error comes back as its reply."""
        replies = self._exchange(commands)
        missing = [i for i, r in enumerate(replies) if isinstance(r, self._faults.noscript)]
        if missing:
            self._trip()
            self._client.script_load(SCRIPT)
            again = self._exchange([commands[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        self._faults.raise_server_wide(replies)
        _raise_unreachable(replies, self._faults.response)
        return replies

    def _exchange(self, commands: list[tuple[str, list[Any]]]) -> list[Any]:
        self._trip()
        return self._wire.exchange(commands)

    async def _send_async(self, client: Any, commands: list[tuple[str, list[Any]]]) -> list[Any]:
        replies = await self._exchange_async(client, commands)
        missing = [i for i, r in enumerate(replies) if isinstance(r, self._faults.noscript)]
        if missing:
            self._trip()
            await client.script_load(SCRIPT)
            again = await self._exchange_async(client, [commands[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        self._faults.raise_server_wide(replies)
        _raise_unreachable(replies, self._faults.response)
        return replies

    async def _exchange_async(
        self, client: Any, commands: list[tuple[str, list[Any]]]
    ) -> list[Any]:
        self._trip()
        return await self._wire.exchange_async(client, commands, self._faults.response)

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
            self._lost_publications += sum(w.publications for w in batch.writes)
            self._rejected += 1 if refused and batch.request else 0
            self._failures += 1 if failed else 0
            self._refreshing.difference_update(batch.claimed)
        if not (refused or failed):
            raise exc

    def _abandoned(self, batch: _Batch) -> None:
        """A round trip given up (cancelled, interrupted; it may have run, so nothing
        is counted lost): its refresh claims are released, so a later decision reads
        those groups again instead of none ever refreshing them."""
        with self._lock:
            self._refreshing.difference_update(batch.claimed)

    def _sorted(self, batch: _Batch, replies: list[Any]) -> list[Any]:
        """Account for the group writes, take the snapshots read, and give back the
        script calls' replies."""
        w, r = len(batch.writes), len(batch.reads)
        calls = replies[w + r :]
        self._check_writes(batch, replies[:w])
        if r:  # only a request reads groups: its reply is the last
            self._take_snapshots(batch, replies[w : w + r], calls[-1])
        self._check_outcomes(batch, calls)
        return calls

    def _check_writes(self, batch: _Batch, replies: list[Any]) -> None:
        """Count and log group tables that refused a write (a key of another type)."""
        for write, reply in zip(batch.writes, replies, strict=True):
            if isinstance(reply, BaseException):
                with self._lock:
                    self._group_errors += 1
                    self._lost_publications += write.publications
                _log.warning("behaviour group %s: not written: %s", shown(write.key), reply)

    def _take_snapshots(self, batch: _Batch, replies: list[Any], mine: Any) -> None:
        """Keep each group table read as this process's snapshot, taken at the
        decision's time; queue the removal of members gone stale.

        When the request's reply ``mine`` publishes the subject's figures, its entry
        is read as written before the table (as in the memory store, which publishes
        before it reads); the subject's own statistics leave it out either way."""
        c = self._config
        today = bucket(batch.at, 86_400)
        texts = {key: text for text, key in batch.groups}
        tag = batch.tags[-1]
        publishes = features_of(mine) is not None and mine[22]
        own = published(mine, today) if publishes else None
        taken: list[tuple[bytes, Snapshot]] = []
        cleanups: list[tuple[bytes, bytes, bytes, bytes]] = []
        for key, reply in zip(batch.reads, replies, strict=True):
            members: dict[bytes, tuple[Figures, bytes]] = {}
            if isinstance(reply, BaseException):
                with self._lock:
                    self._group_errors += 1
                _log.warning(
                    "behaviour group %s: not read (no peer statistics): %s", shown(key), reply
                )
            else:
                members = group_members(reply, key)
            figures = {field: f for field, (f, _) in members.items()}
            if publishes:
                figures.pop(tag, None)
                if own is not None:
                    figures[tag] = own
            snapshot = Snapshot(
                texts[key], figures.items(), day=today, peer_days=c.peer_days, taken=batch.at
            )
            taken.append((key, snapshot))
            stale = [
                (key, b"c", field, raw)
                for field, (f, raw) in members.items()
                if f[2] < today - c.peer_days
            ]
            cleanups.extend(stale[:MAX_CLEANUP])
        with self._lock:
            self._refreshing.difference_update(batch.claimed)
            for key, snapshot in taken:
                self._peer_refreshes += 1
                old = self._snapshots.get(key)
                if old is None or old.taken <= snapshot.taken:
                    self._snapshots[key] = snapshot
                    self._snapshots.move_to_end(key)
            while len(self._snapshots) > MAX_SNAPSHOTS:
                self._snapshots.popitem(last=False)
            self._pending_groups.extend(cleanups)

    def _check_outcomes(self, batch: _Batch, replies: list[Any]) -> None:
        """Count and log the deferred outcomes a subject error dropped."""
        last = len(replies) - 1 if batch.request else len(replies)
        for i in range(last):
            if isinstance(replies[i], BaseException):
                with self._lock:
                    self._lost += batch.outcomes[i]
                _log.warning(
                    "behaviour of subject %s: outcomes dropped: %s",
                    shown(batch.tags[i]),
                    replies[i],
                )

    def _mine(self, batch: _Batch, replies: list[Any] | None) -> Mapping[str, Any]:
        """The request's features, or unavailable (a subject error counted and logged);
        on the subject's first request of a day, its figures queued for its groups."""
        if replies is None:
            return UNAVAILABLE
        reply = replies[-1]
        features = features_of(reply)
        if features is None:
            failed = isinstance(reply, BaseException)  # its folded-in outcomes went too
            with self._lock:
                self._subject_errors += 1
                self._lost += batch.outcomes[-1] if failed else 0
            _log.warning(
                "behaviour of subject %s unavailable (this subject only): %s",
                shown(batch.tags[-1]),
                reply if failed else "malformed reply",
            )
            return UNAVAILABLE
        if batch.groups:
            self._peers(batch, features)
            if reply[22]:
                self._publish(batch, published(reply, bucket(batch.at, 86_400)))
        features["available"] = True
        return features

    def _peers(self, batch: _Batch, features: dict[str, Any]) -> None:
        tag, min_peers = batch.tags[-1], self._config.min_peers
        with self._lock:
            snapshots = [self._snapshots.get(key) for _, key in batch.groups]
            for _, key in batch.groups:
                if key in self._snapshots:
                    self._snapshots.move_to_end(key)
        # outside the lock: a snapshot's memo only ever stores one answer per key
        stats = best_stats(None if s is None else s.stats(tag, min_peers) for s in snapshots)
        peer_features(features, stats, features["records_24h"], features["distinct_resources_24h"])

    def _publish(self, batch: _Batch, figures: Figures | None) -> None:
        """Queue the subject's figures for its groups (or its withdrawal, without an
        active day in the ``peer_days`` before today): they ride with the next call."""
        tag = batch.tags[-1]
        if figures is None:
            op, value = b"d", b""
        else:
            op, value = b"s", text_bytes(figures_text(*figures))
        keys = dict.fromkeys(key for _, key in batch.groups)
        with self._lock:
            self._pending_groups.extend((key, op, tag, value) for key in keys)


# -- Redis Cluster ----------------------------------------------------------------------

_CLUSTER_SCHEMES = {"redis+cluster://": "redis://", "rediss+cluster://": "rediss://"}


def _cluster_url(url: str, cluster: bool) -> tuple[str, bool]:
    """The URL redis-py reads, and whether it names a cluster."""
    for scheme, plain in _CLUSTER_SCHEMES.items():
        if url.startswith(scheme):
            return plain + url[len(scheme) :], True
    if cluster and not url.startswith(("redis://", "rediss://")):
        raise ValueError(  # as redis-py's from_url does for a scheme it does not know
            "a Redis Cluster URL is redis+cluster://, rediss+cluster://, "
            "or redis:// / rediss:// with cluster=True"
        )
    return url, cluster


def _shown_url(url: str) -> str:
    """The URL for a message, without a password (nor the query, which may hold one)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.partition('?')[0].rpartition('@')[2]}"


def _is_cluster(client: Any) -> bool:
    import redis.cluster

    return isinstance(client, redis.cluster.RedisCluster)


def _raise_unreachable(replies: list[Any], response: type[Exception]) -> None:
    """Raise the first part of a round trip that reached no server (a cluster node
    that failed after the pipeline was sent: only the cluster wire returns these).
    The whole round trip is then a store failure: its request is unavailable and
    its deferred outcomes are counted lost, even those another node wrote (never
    counted done when part of the batch failed)."""
    for reply in replies:
        if isinstance(reply, BaseException) and not isinstance(reply, response):
            raise reply
