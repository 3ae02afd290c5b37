"""The memory store and the Redis store give the same features for the same history.

One generated stream (several subjects in a few peer groups over up to four weeks,
random resources, refusals recorded with ``record``, corrections with
``record_access``) goes through a MemoryBehaviorStore and a RedisBehaviorStore on a
real redis-server; after every request the two feature maps must be equal: every
key, floats bit for bit, ``peers`` included. The stream stays below every cap
(resources, subjects) and inside the TTL (Redis keys expire in real time, the memory
store forgets by the requests' time), where the two stores are meant to differ.
"""

from __future__ import annotations

import datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from redis_server import RedisServer
from strategies import BEHAVIOR_CONFIGS, Step, steps

from zerotrust import BehaviorConfig, MemoryBehaviorStore, RedisBehaviorStore


def _same(memory: dict[str, Any], redis: dict[str, Any]) -> bool:
    """Equal maps with equal types at every level (``True`` is not ``1``, ``2.0`` not
    ``2``), floats compared exactly."""
    if memory.keys() != redis.keys():
        return False
    for key, value in memory.items():
        other = redis[key]
        if type(value) is not type(other):
            return False
        if isinstance(value, dict):
            if not _same(value, other):
                return False
        elif value != other:
            return False
    return True


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(stream=steps(days=28), config=BEHAVIOR_CONFIGS)
def test_both_stores_give_the_same_features_over_weeks(
    redis_server: RedisServer, stream: list[Step], config: BehaviorConfig
) -> None:
    import redis

    redis.Redis.from_url(redis_server.url).flushall()
    memory = MemoryBehaviorStore(config)
    shared = RedisBehaviorStore.from_url(redis_server.url, config)
    for i, step in enumerate(stream):
        request = step.request()
        if step.correction:
            memory.record_access(request, step.at, step.delta)
            shared.record_access(request, step.at, step.delta)
            continue
        when = datetime.datetime.fromtimestamp(step.t, datetime.UTC)
        want = dict(memory.features(request, when))
        got = dict(shared.features(request, when))
        assert _same(want, got), f"step {i}: {step}\nmemory: {want}\nredis:  {got}"
        memory.record(request, step.decision())
        shared.record(request, step.decision())
    assert memory.peer_refreshes == shared.peer_refreshes
    stats = shared.stats()
    assert (stats.failures, stats.subject_errors, stats.group_errors) == (0, 0, 0)
    shared.close()
