"""RedisBehaviorStore against a real redis-server: one fault never becomes everyone's outage.

A store failure (no answer, a server refusing every script) opens the breaker; a
subject whose keys hold what the script cannot use fails alone; nothing a request
carries can hold the breaker.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_server import RedisServer, running_redis
from strategies import REDIS_KEY_PARTS, corrupted_subjects, untrackable_values

from zerotrust import (
    AccessRequest,
    BehaviorConfig,
    Effect,
    PolicyDecisionPoint,
    RedisBehaviorStore,
    StoreErrorMode,
)
from zerotrust.behavior._redis_faults import Faults
from zerotrust.behavior.breaker import BreakerState
from zerotrust.engine import STORE_UNAVAILABLE
from zerotrust.errors import BehaviorStoreError
from zerotrust.request import Action, Resource, Subject

NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)
POLICY = """
policy: p
target: {resources: [customer_record], actions: [read]}
rules:
  - id: deny-flagged
    effect: deny
    when: "has(context.deny) && context.deny == true"
  - id: allow
    effect: allow
"""


def _request(subject: str, **context: Any) -> dict[str, Any]:
    return {
        "subject": {"id": subject},
        "action": {"name": "read"},
        "resource": {"type": "customer_record", "id": "c-1"},
        "context": context,
    }


def _raw(subject: str, device: Any = None) -> AccessRequest:
    """A request built without validation, as a caller of the store may hand it."""
    return AccessRequest(
        Subject(subject),
        Action("read"),
        Resource("customer_record", "c-1"),
        {"id": device} if device is not None else {},
        {},
    )


def _admin(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url)


def _key(subject: str, part: str) -> str:
    return f"zt:{{user:{subject}}}:{part}"


def _corrupt(admin: redis.Redis, key: str, kind: str) -> None:
    """Give ``key`` a value of Redis type ``kind``, as another program might."""
    admin.delete(key)
    if kind == "string":
        admin.set(key, b"\xff\xfe not ours")
    elif kind == "list":
        admin.rpush(key, "x")
    elif kind == "set":
        admin.sadd(key, "x")
    elif kind == "hash":
        admin.hset(key, "x", "1")
    elif kind == "zset":
        admin.zadd(key, {"x": 1})
    else:
        admin.xadd(key, {"x": "1"})


def _store(server: RedisServer, **config: Any) -> RedisBehaviorStore:
    return RedisBehaviorStore.from_url(server.url, BehaviorConfig(**config))


def _wait_for_breaker_reset(store: RedisBehaviorStore) -> None:
    time.sleep(store.config.breaker_reset + 0.05)


# -- the breaker is never held by a request ----------------------------------------------


def test_short_outage_then_a_surrogate_subject_does_not_lock_the_breaker(
    redis_server: RedisServer,
) -> None:
    # The reported fault: after a short outage the trial request carried a lone
    # surrogate, raised UnicodeEncodeError, and the breaker refused every call after.
    store = _store(redis_server, breaker_failures=1, breaker_reset=0.2)
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, clock=lambda: NOW, behavior=store)
    assert pdp.evaluate(_request("u-1")).effect is Effect.ALLOW
    redis_server.stop()
    assert pdp.evaluate(_request("u-1")).effect is Effect.DENY
    assert store.stats().breaker is BreakerState.OPEN
    redis_server.start()
    _wait_for_breaker_reset(store)

    trial = store.features(_raw("\ud800"), NOW)  # the trial: any str is a valid key
    assert trial["available"] is True
    assert store.stats().breaker is BreakerState.CLOSED
    decisions = [pdp.evaluate(_request(f"u-{i}")) for i in range(5)]
    assert all(d.effect is Effect.ALLOW for d in decisions)
    again = store.features(_raw("\ud800"), NOW)
    assert again["requests_1h"] == 2  # tracked as its own subject, not as an error
    assert store.stats().failures == 1


def test_surrogates_in_tracked_values_are_tracked_injectively(redis_server: RedisServer) -> None:
    store = _store(redis_server)
    pair = "\ud83d\ude00"  # two surrogates, not the one emoji they would pair into
    first = store.features(_raw("u-1", device=pair), NOW)
    assert first["available"] is True and first["new_device"] is False
    emoji = store.features(_raw("u-1", device="\U0001f600"), NOW)
    assert emoji["new_device"] is True  # a different device, not a collision
    assert store.stats().failures == 0


def test_a_cancelled_async_trial_does_not_lock_the_breaker() -> None:
    """A task cancelled during the trial call (a client gone, a deadline) releases it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # accepts connections, never replies: every call times out
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept)
    thread.start()
    config = BehaviorConfig(breaker_failures=1, breaker_reset=0.1, timeout=0.2)
    url = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    store = RedisBehaviorStore.from_url(url, config)
    request = _raw("u-1")

    async def run() -> None:
        assert await store.features_async(request, NOW) == {"available": False}
        assert store.stats().breaker is BreakerState.OPEN
        await asyncio.sleep(0.15)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(store.features_async(request, NOW), 0.02)
        rejected, failures = store.stats().rejected, store.stats().failures
        # Not refused as "trial running": this call is the next trial.
        assert await store.features_async(request, NOW) == {"available": False}
        assert store.stats().rejected == rejected
        assert store.stats().failures == failures + 1

    try:
        asyncio.run(run())
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


# -- one subject's bad keys are that subject's failure -------------------------------------


@pytest.mark.parametrize("part", REDIS_KEY_PARTS)
def test_wrong_type_keys_of_one_subject_do_not_open_the_breaker_for_others(
    redis_server: RedisServer, part: str
) -> None:
    admin = _admin(redis_server)
    _corrupt(admin, _key("mallory", part), "string")
    store = _store(redis_server, breaker_failures=2)
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, clock=lambda: NOW, behavior=store)
    for i in range(10):
        refused = pdp.evaluate(_request("mallory"))
        assert refused.effect is Effect.DENY  # on_store_error=deny, for mallory alone
        assert refused.reasons[0].rule == STORE_UNAVAILABLE
        assert pdp.evaluate(_request(f"u-{i}")).effect is Effect.ALLOW
    stats = store.stats()
    assert stats.breaker is BreakerState.CLOSED
    assert (stats.failures, stats.subject_errors, stats.rejected) == (0, 10, 0)
    # Checked before anything is written: mallory has no other key.
    assert admin.keys(_key("mallory", "*")) == [_key("mallory", part).encode()]


def test_non_numeric_fields_fail_that_subject_only(redis_server: RedisServer) -> None:
    admin = _admin(redis_server)
    store = _store(redis_server)
    store.features(_raw("mallory"), NOW)
    store.features(_raw("eve"), NOW)
    admin.hset(_key("mallory", "h"), "t1", b"\xff\xfe")  # a counter that is not a number
    admin.hset(_key("eve", "h"), "t3", "many")  # read, never incremented by a request
    assert store.features(_raw("mallory"), NOW) == {"available": False}
    assert store.features(_raw("eve"), NOW) == {"available": False}
    assert store.features(_raw("u-1"), NOW)["requests_1h"] == 1
    stats = store.stats()
    assert (stats.failures, stats.subject_errors, stats.breaker) == (0, 2, BreakerState.CLOSED)


def test_a_corrupted_subjects_outcome_does_not_fail_anothers_request(
    redis_server: RedisServer,
) -> None:
    admin = _admin(redis_server)
    store = _store(redis_server)
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, clock=lambda: NOW, behavior=store)
    assert pdp.evaluate(_request("mallory", deny=True)).effect is Effect.DENY  # outcome queued
    _corrupt(admin, _key("mallory", "h"), "list")
    # The queued outcome rides in the same pipeline as u-1's request and fails alone.
    assert pdp.evaluate(_request("u-1")).effect is Effect.ALLOW
    stats = store.stats()
    assert (stats.lost_outcomes, stats.failures, stats.breaker) == (1, 0, BreakerState.CLOSED)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    corrupted=corrupted_subjects(subjects=4),
    order=st.lists(st.integers(0, 3), min_size=1, max_size=30),
    denied=st.sets(st.integers(0, 29)),
)
def test_corrupted_subjects_never_cost_healthy_ones_their_features(
    redis_server: RedisServer,
    corrupted: dict[int, tuple[str, str]],
    order: list[int],
    denied: set[int],
) -> None:
    """Random interleavings of requests of four subjects, some with a key of a wrong
    type: healthy subjects always get exact features, corrupted ones are unavailable
    (on_store_error), and the breaker never opens."""
    admin = _admin(redis_server)
    admin.flushall()
    for subject, (part, kind) in corrupted.items():
        _corrupt(admin, _key(f"s{subject}", part), kind)
    store = _store(redis_server, breaker_failures=1)
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, clock=lambda: NOW, behavior=store)
    seen = dict.fromkeys(range(4), 0)
    for step, subject in enumerate(order):
        request = AccessRequest.from_mapping(_request(f"s{subject}", deny=step in denied))
        features = store.features(request, NOW)
        if subject in corrupted:
            assert features == {"available": False}
            assert pdp.evaluate(request).reasons[0].rule == STORE_UNAVAILABLE
        else:
            seen[subject] += 1
            assert features["requests_1h"] == seen[subject]
            assert pdp.evaluate(request).effect is (Effect.DENY if step in denied else Effect.ALLOW)
            seen[subject] += 1
    stats = store.stats()
    assert (stats.failures, stats.rejected, stats.breaker) == (0, 0, BreakerState.CLOSED)
    store.close()


# -- the server itself failing: that is what the breaker is for ---------------------------


def test_script_flush_reloads_the_script_and_applies_each_outcome_once(
    redis_server: RedisServer,
) -> None:
    admin = _admin(redis_server)
    store = _store(redis_server)
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, clock=lambda: NOW, behavior=store)
    pdp.evaluate(_request("a", deny=True))
    pdp.evaluate(_request("b", deny=True))  # a's outcome rides with b's request
    admin.script_flush()
    pdp.evaluate(_request("c"))  # b's outcome and c's request: NOSCRIPT, reload, again
    features = store.features(AccessRequest.from_mapping(_request("b")), NOW)
    assert (features["requests_1h"], features["denied_1h"]) == (2, 1)
    stats = store.stats()
    assert (stats.failures, stats.lost_outcomes, stats.subject_errors) == (0, 0, 0)


def test_out_of_memory_is_a_store_failure_that_opens_the_breaker(
    redis_server: RedisServer,
) -> None:
    admin = _admin(redis_server)
    store = _store(redis_server, breaker_failures=2, breaker_reset=0.2)
    admin.config_set("maxmemory", "1")  # every write refused: OOM
    try:
        for _ in range(3):
            assert store.features(_raw("u-1"), NOW) == {"available": False}
        stats = store.stats()
        assert (stats.failures, stats.rejected, stats.breaker) == (2, 1, BreakerState.OPEN)
    finally:
        admin.config_set("maxmemory", "0")
    _wait_for_breaker_reset(store)
    assert store.features(_raw("u-1"), NOW)["available"] is True
    assert store.stats().breaker is BreakerState.CLOSED


def test_a_read_only_replica_is_a_store_failure(redis_server: RedisServer, tmp_path: Path) -> None:
    replica_dir = tmp_path / "replica"
    replica_dir.mkdir()
    replica = running_redis(replica_dir, "--replicaof", "127.0.0.1", str(redis_server.port))
    server = next(replica)
    try:
        store = RedisBehaviorStore.from_url(server.url, BehaviorConfig(breaker_failures=2))
        for _ in range(3):
            assert store.features(_raw("u-1"), NOW) == {"available": False}
        stats = store.stats()
        assert (stats.failures, stats.subject_errors) == (2, 0)
        assert stats.breaker is BreakerState.OPEN
    finally:
        next(replica, None)


@pytest.mark.parametrize("mode", list(StoreErrorMode))
def test_a_subject_error_gets_on_store_error_like_an_outage(
    redis_server: RedisServer, mode: StoreErrorMode
) -> None:
    _corrupt(_admin(redis_server), _key("mallory", "r"), "set")
    store = _store(redis_server, on_store_error=mode, store_error_acr_values=("mfa",))
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, clock=lambda: NOW, behavior=store)
    expected = {
        StoreErrorMode.DENY: Effect.DENY,
        StoreErrorMode.STEP_UP: Effect.STEP_UP,
        StoreErrorMode.EVALUATE: Effect.ALLOW,
    }[mode]
    assert pdp.evaluate(_request("mallory")).effect is expected


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(bad=untrackable_values())
def test_an_untrackable_value_fails_its_request_alone_and_loses_nothing_queued(
    redis_server: RedisServer, bad: Any
) -> None:
    _admin(redis_server).flushall()
    store = _store(redis_server)
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, clock=lambda: NOW, behavior=store)
    assert pdp.evaluate(_request("u-1", deny=True)).effect is Effect.DENY  # outcome queued
    with pytest.raises(BehaviorStoreError, match=r"device\.id"):
        store.features(_raw("mallory", device=bad), NOW)
    assert store.stats().pending_outcomes == 1
    features = store.features(AccessRequest.from_mapping(_request("u-1")), NOW)
    assert (features["requests_1h"], features["denied_1h"]) == (2, 1)
    stats = store.stats()
    assert (stats.failures, stats.lost_outcomes, stats.breaker) == (0, 0, BreakerState.CLOSED)


def test_a_server_busy_with_a_long_script_is_a_store_failure(redis_server: RedisServer) -> None:
    """BUSY has no redis-py class: it is known by the code that starts the reply."""
    admin = _admin(redis_server)
    admin.config_set("busy-reply-threshold", "10")
    store = _store(redis_server, breaker_failures=1, timeout=1.0)
    store.features(_raw("u-1"), NOW)  # connected, script loaded
    looping = threading.Thread(
        target=lambda: _swallow(lambda: admin.eval("while true do end", 0)), daemon=True
    )
    looping.start()
    try:
        deadline = time.monotonic() + 5
        features = store.features(_raw("u-1"), NOW)
        while store.stats().failures == 0 and time.monotonic() < deadline:
            features = store.features(_raw("u-1"), NOW)
        assert features == {"available": False}
        stats = store.stats()
        assert (stats.failures, stats.subject_errors, stats.breaker) == (1, 0, BreakerState.OPEN)
    finally:
        killer = _admin(redis_server)
        while looping.is_alive():
            _swallow(killer.script_kill)
            looping.join(0.1)
        for client in (killer, admin, store):
            client.close()


def _swallow(fn: Any) -> None:
    with contextlib.suppress(redis.RedisError):
        fn()


def test_a_corrupted_subjects_own_folded_outcome_is_counted_lost(
    redis_server: RedisServer,
) -> None:
    store = _store(redis_server)
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, clock=lambda: NOW, behavior=store)
    assert pdp.evaluate(_request("mallory", deny=True)).effect is Effect.DENY  # outcome queued
    _corrupt(_admin(redis_server), _key("mallory", "d"), "string")
    assert store.features(_raw("mallory"), NOW) == {"available": False}
    stats = store.stats()
    assert (stats.subject_errors, stats.lost_outcomes, stats.pending_outcomes) == (1, 1, 0)


_E = redis.exceptions


@pytest.mark.parametrize(
    ("error", "server_fault"),
    [
        (_E.ConnectionError("refused"), True),
        (_E.TimeoutError("read"), True),
        (_E.BusyLoadingError("loading the dataset"), True),
        (_E.AuthenticationError("invalid password"), True),
        (_E.ReadOnlyError("You can't write against a read only replica."), True),
        (_E.OutOfMemoryError("command not allowed"), True),
        (_E.ClusterDownError("The cluster is down"), True),
        (_E.MasterDownError("link with MASTER is down"), True),
        (_E.TryAgainError("multiple keys during resharding"), True),
        (_E.NoPermissionError("no permissions to run 'evalsha'"), True),
        (_E.SlotNotCoveredError("slot not covered"), True),
        (_E.ResponseError("BUSY Redis is busy running a script."), True),
        (_E.ResponseError("MISCONF Redis is configured to save RDB snapshots"), True),
        (_E.ResponseError("NOREPLICAS Not enough good replicas to write."), True),
        (OSError("network unreachable"), True),
        (_E.ResponseError("WRONGTYPE behaviour key 2 holds a string, not a hash"), False),
        (_E.ResponseError("WRONGTYPE Operation against a key holding the wrong kind"), False),
        (_E.ResponseError("hash value is not an integer script: 1f0e, on @user_script:40."), False),
        (_E.ResponseError("user_script:9: attempt to compare nil with number"), False),
        (_E.DataError("Invalid input of type: 'dict'"), False),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), False),
        (ValueError("a bug"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_only_faults_of_the_server_count_for_the_breaker(
    error: BaseException, server_fault: bool
) -> None:
    assert Faults().is_failure(error) is server_fault
