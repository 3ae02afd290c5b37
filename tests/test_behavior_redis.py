"""RedisBehaviorStore against a real redis-server: counts, faults, processes, round trips."""

from __future__ import annotations

import asyncio
import datetime
import multiprocessing
import socket
import threading
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from redis_server import RedisServer
from test_behavior_memory import Ev, oracle, streams

from zerotrust import (
    AccessRequest,
    BehaviorConfig,
    Effect,
    PolicyDecisionPoint,
    RedisBehaviorStore,
    StoreErrorMode,
)
from zerotrust.behavior.breaker import BreakerState
from zerotrust.engine import STORE_UNAVAILABLE

NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)
POLICY = """
policy: p
target: {resources: [customer_record], actions: [read]}
rules:
  - id: deny-bulk
    effect: deny
    when: "has(behavior.records_1h) && behavior.records_1h > 100"
  - id: allow
    effect: allow
"""


def _request(subject: str = "u-1", records: int = 1) -> dict[str, Any]:
    return {
        "subject": {"id": subject},
        "action": {"name": "read"},
        "resource": {"type": "customer_record", "id": "c-1"},
        "context": {"records": records},
    }


def _flush(server: RedisServer) -> None:
    import redis

    redis.Redis.from_url(server.url).flushall()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(events=streams(size=30, long_gaps=False))
def test_window_counts_equal_a_brute_force_recount(
    redis_server: RedisServer, events: list[Ev]
) -> None:
    """The short windows; the long ones and the peers: test_behavior_redis_peers."""
    _flush(redis_server)
    config = BehaviorConfig()
    store = RedisBehaviorStore.from_url(redis_server.url, config)
    for i, event in enumerate(events):
        when = datetime.datetime.fromtimestamp(event.t, datetime.UTC)
        got = dict(store.features(event.request(), when))
        want = oracle(events[:i], event, config)
        assert {k: got[k] for k in want} == pytest.approx(want), f"event {i}: {event}"
        store.record(event.request(), event.decision())
    assert store.stats().failures == 0
    store.close()


def test_one_round_trip_per_decision(redis_server: RedisServer) -> None:
    import redis

    store = RedisBehaviorStore.from_url(redis_server.url)
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, clock=lambda: NOW, behavior=store)
    pdp.evaluate(_request())  # loads the script
    admin = redis.Redis.from_url(redis_server.url)
    admin.config_resetstat()
    before = store.stats().round_trips
    for i in range(200):
        pdp.evaluate(_request(f"u-{i % 7}", records=60))  # every 7th... refusals too
    stats = store.stats()
    assert stats.round_trips - before == 200
    calls = admin.info("commandstats")
    # one EVALSHA per decision, plus one per refused decision of another subject
    # (pipelined with the next decision, so no extra round trip)
    assert calls["cmdstat_evalsha"]["calls"] <= 400
    assert "cmdstat_script|load" not in calls and "cmdstat_script" not in calls


def test_two_processes_share_counts_exactly(redis_server: RedisServer) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.starmap(_worker, [(redis_server.url, 300), (redis_server.url, 300)])
    assert sorted(results) == [True, True]
    store = RedisBehaviorStore.from_url(redis_server.url)
    features = store.features(AccessRequest.from_mapping(_request(records=0)), NOW)
    assert features["requests_1h"] == 601
    assert features["records_1h"] == 600 - 60  # refused requests gave theirs back
    assert features["denied_1h"] == 2 * 30


def _worker(url: str, n: int) -> bool:
    """Runs in another process: n decisions, every tenth denied by its own policy."""
    store = RedisBehaviorStore.from_url(url)
    deny_every_tenth = POLICY.replace(
        "behavior.records_1h > 100", "has(context.deny) && context.deny == true"
    )
    pdp = PolicyDecisionPoint.from_texts(
        {"p.yaml": deny_every_tenth}, clock=lambda: NOW, behavior=store
    )
    for i in range(n):
        request = _request()
        request["context"]["deny"] = i % 10 == 0
        decision = pdp.evaluate(request)
        assert decision.effect is (Effect.DENY if i % 10 == 0 else Effect.ALLOW)
    store.close()  # sends the last deferred outcome
    return store.stats().failures == 0


def test_kill_and_restart_redis_mid_run(redis_server: RedisServer) -> None:
    config = BehaviorConfig(breaker_failures=2, breaker_reset=0.2)
    store = RedisBehaviorStore.from_url(redis_server.url, config)
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, clock=lambda: NOW, behavior=store)
    for _ in range(5):
        assert pdp.evaluate(_request()).effect is Effect.ALLOW

    redis_server.stop()
    started = time.monotonic()
    down = [pdp.evaluate(_request()) for _ in range(20)]
    assert time.monotonic() - started < 2.0  # timeouts and the breaker: never hangs
    assert {d.effect for d in down} == {Effect.DENY}
    assert all(d.reasons[0].rule == STORE_UNAVAILABLE for d in down)
    assert store.stats().breaker is BreakerState.OPEN
    assert store.stats().rejected > 0

    redis_server.start()  # empty: an in-memory server restarted forgets everything
    time.sleep(0.25)
    deadline = time.monotonic() + 5
    decision = pdp.evaluate(_request())
    while decision.effect is not Effect.ALLOW and time.monotonic() < deadline:
        time.sleep(0.05)
        decision = pdp.evaluate(_request())
    assert decision.effect is Effect.ALLOW
    after = [pdp.evaluate(_request()) for _ in range(3)]
    assert all(d.effect is Effect.ALLOW for d in after)
    features = store.features(AccessRequest.from_mapping(_request(records=0)), NOW)
    assert features["available"] is True
    assert features["requests_1h"] >= 5  # recording resumed without a restart


@pytest.mark.parametrize(
    ("mode", "effect"),
    [
        (StoreErrorMode.DENY, Effect.DENY),
        (StoreErrorMode.STEP_UP, Effect.STEP_UP),
        (StoreErrorMode.EVALUATE, Effect.ALLOW),
    ],
)
def test_on_store_error_with_nothing_listening(mode: StoreErrorMode, effect: Effect) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused
    config = BehaviorConfig(on_store_error=mode, store_error_acr_values=("mfa",))
    store = RedisBehaviorStore.from_url(f"redis://127.0.0.1:{port}/0", config)
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, clock=lambda: NOW, behavior=store)
    decision = pdp.evaluate(_request())
    assert decision.effect is effect
    if mode is StoreErrorMode.STEP_UP:
        assert decision.step_up is not None and decision.step_up.acr_values == ("mfa",)
    assert store.stats().failures >= 1


def test_a_server_that_never_answers_times_out_in_about_50_ms() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # accepts connections, never replies
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
    try:
        port = listener.getsockname()[1]
        store = RedisBehaviorStore.from_url(f"redis://127.0.0.1:{port}/0")
        request = AccessRequest.from_mapping(_request())
        started = time.monotonic()
        features = store.features(request, NOW)
        assert time.monotonic() - started < 0.5
        assert features == {"available": False}
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def test_async_variant_shares_the_counts(redis_server: RedisServer) -> None:
    store = RedisBehaviorStore.from_url(redis_server.url)
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, clock=lambda: NOW, behavior=store)

    async def run() -> list[Effect]:
        effects = [(await pdp.evaluate_async(_request(records=30))).effect for _ in range(5)]
        await store.aclose()
        return effects

    effects = asyncio.run(run())
    # 30, 60, 90 allowed; 120 denied (taken back), and again
    assert effects == [Effect.ALLOW] * 3 + [Effect.DENY] * 2
    features = store.features(AccessRequest.from_mapping(_request(records=0)), NOW)
    assert (features["requests_1h"], features["records_1h"], features["denied_1h"]) == (6, 90, 2)


def test_keys_carry_the_subject_hash_tag_and_expire(redis_server: RedisServer) -> None:
    import redis

    store = RedisBehaviorStore.from_url(redis_server.url)
    request = AccessRequest.from_mapping(
        {
            "subject": {"id": "we{ird}%id"},
            "action": {"name": "read"},
            "resource": {"type": "customer_record", "id": "c-1"},
            "device": {"id": "d-1"},
            "context": {"ip": "10.0.0.1", "country": "DE"},
        }
    )
    store.features(request, NOW)
    admin = redis.Redis.from_url(redis_server.url, decode_responses=True)
    keys = [str(k) for k in admin.keys("*")]
    assert keys and all(k.startswith("zt:{user:we%7Bird%7D%25id}:") for k in keys)
    assert all(0 < admin.ttl(k) <= 30 * 86_400 + 3600 for k in keys)
