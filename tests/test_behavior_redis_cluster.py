"""RedisBehaviorStore on a real Redis Cluster (three masters on 127.0.0.1).

The same request sequence gives the same features and the same stored records as on
a single redis-server; every key of a subject is in its subject's slot and every
group in its own; a decision costs its script calls and nothing more; two stores (two
replicas) see one history; the insider of ``zerotrust demo`` sent alternately to two
PDPs is stopped where one process stops her; a slot moved under a store (``ASK``,
``TRYAGAIN``, ``MOVED``) loses and doubles nothing; a part of a round trip that times
out is a failure and is never sent again; a node killed mid-run makes decisions
follow ``on_store_error`` (never an allow by error) and the store recovers when the
node returns; a failover to a replica keeps the history.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import re
import signal
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from redis_server import RedisCluster, RedisServer, running_cluster, shared_cluster
from strategies import BEHAVIOR_CONFIGS, Step, steps
from test_behavior_differential import _same

from zerotrust import (
    AccessRequest,
    BehaviorConfig,
    BehaviorStoreError,
    Effect,
    PolicyDecisionPoint,
    RedisBehaviorStore,
    StoreErrorMode,
)
from zerotrust import demo as zdemo
from zerotrust.behavior.breaker import BreakerState
from zerotrust.engine import STORE_UNAVAILABLE

NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)
# Tests of what the store counts wait for a loaded machine (the default 50 ms
# would turn a slow first connection into an unavailable answer); the tests of
# faults set their own timeouts.
ROOMY = BehaviorConfig(timeout=2.0, connect_timeout=2.0)
PEERS = attrs.evolve(ROOMY, peer_groups=("department",), min_peers=2)
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


@pytest.fixture(scope="session")
def redis_cluster(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> RedisCluster:
    """The session's cluster (see ``redis_server.shared_cluster``)."""
    return shared_cluster(pytestconfig, tmp_path_factory)


@pytest.fixture
def cluster(redis_cluster: RedisCluster) -> RedisCluster:
    redis_cluster.wait_ok()
    redis_cluster.flushall()
    return redis_cluster


def _mapping(subject: str, records: int = 1) -> dict[str, Any]:
    return {
        "subject": {"id": subject},
        "action": {"name": "read"},
        "resource": {"type": "customer_record", "id": "c-1"},
        "context": {"records": records},
    }


def _request(
    subject: str, records: int = 1, resource: str = "c-1", department: str | None = None
) -> AccessRequest:
    properties = {} if department is None else {"department": department}
    return AccessRequest.from_mapping(
        {
            "subject": {"id": subject, "properties": properties},
            "action": {"name": "read"},
            "resource": {"type": "customer_record", "id": resource},
            "context": {"records": records},
        }
    )


def _keyslot(cluster: RedisCluster, key: bytes) -> int:
    with cluster.admin(cluster.nodes[0]) as client:
        return int(client.execute_command("CLUSTER", "KEYSLOT", key))


def _all_keys(cluster: RedisCluster) -> dict[bytes, RedisServer]:
    """Every key on every node (SCAN), with the node holding it."""
    found: dict[bytes, RedisServer] = {}
    for node in cluster.nodes:
        with cluster.admin(node) as client:
            for key in client.scan_iter(count=1000):
                assert key not in found
                found[key] = node
    return found


def _contents(client: Any, key: bytes) -> Any:
    """What a key holds, whatever its type (TTLs aside)."""
    kind = client.type(key)
    if kind == b"hash":
        return kind, client.hgetall(key)
    if kind == b"zset":
        return kind, client.zrange(key, 0, -1, withscores=True)
    if kind == b"set":
        return kind, sorted(client.smembers(key))
    if kind == b"list":
        return kind, client.lrange(key, 0, -1)
    return kind, client.get(key)


# -- building a store --------------------------------------------------------------


def test_a_cluster_url_builds_a_cluster_client(cluster: RedisCluster) -> None:
    import redis.cluster

    port = cluster.nodes[1].port
    for url, flag in (
        (cluster.url, False),
        (f"redis://127.0.0.1:{port}", True),
        (f"redis://127.0.0.1:{port}/0", True),
    ):
        store = RedisBehaviorStore.from_url(url, cluster=flag)
        assert isinstance(store._client, redis.cluster.RedisCluster)
        assert store.features(_request("u-1"), NOW)["available"] is True
        store.close()
    with pytest.raises(ValueError, match="cluster"):
        RedisBehaviorStore.from_url("unix:///tmp/redis.sock", cluster=True)


def test_a_cluster_that_cannot_be_reached_is_refused_when_the_store_is_built() -> None:
    with pytest.raises(BehaviorStoreError, match=r"redis://127\.0\.0\.1:1\b"):
        RedisBehaviorStore.from_url(
            "redis+cluster://user:secret@127.0.0.1:1", BehaviorConfig(connect_timeout=0.2)
        )
    try:
        RedisBehaviorStore.from_url("redis+cluster://user:secret@127.0.0.1:1")
    except BehaviorStoreError as exc:
        assert "secret" not in str(exc)


def test_the_docs_cluster_snippet_runs(
    cluster: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/behavior.md "Redis Cluster": its snippet, pointed at the test cluster."""
    root = Path(__file__).resolve().parents[1]
    page = (root / "docs" / "behavior.md").read_text(encoding="utf-8")
    section = page.split("## Redis Cluster", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert snippet.count("127.0.0.1:7000") == 2
    monkeypatch.chdir(root)
    names: dict[str, Any] = {}
    exec(snippet.replace("127.0.0.1:7000", f"127.0.0.1:{cluster.nodes[0].port}"), names)
    decision = names["pdp"].evaluate(
        zdemo.agent_request(
            "u-anna", "c-1", 3, device={"id": "d-anna"}, ip="10.1.0.10", amr=("pwd",)
        )
    )
    assert decision.behavior is not None and decision.behavior["available"] is True
    assert names["store"].stats().round_trips >= 1
    names["store"].close()
    names["same"].close()


# -- the same as one node ------------------------------------------------------------


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(stream=steps(days=28), config=BEHAVIOR_CONFIGS)
def test_the_cluster_gives_the_features_and_records_of_one_node(
    cluster: RedisCluster, redis_server: RedisServer, stream: list[Step], config: BehaviorConfig
) -> None:
    """The differential test of memory and Redis, here between one redis-server and
    the cluster: equal features after every request, equal keys and contents after
    the stream."""
    import redis

    single = redis.Redis.from_url(redis_server.url)
    single.flushall()
    cluster.flushall()
    one = RedisBehaviorStore.from_url(redis_server.url, config)
    many = RedisBehaviorStore.from_url(cluster.url, config)
    for i, step in enumerate(stream):
        request = step.request()
        if step.correction:
            one.record_access(request, step.at, step.delta)
            many.record_access(request, step.at, step.delta)
            continue
        when = datetime.datetime.fromtimestamp(step.t, datetime.UTC)
        want = dict(one.features(request, when))
        got = dict(many.features(request, when))
        assert _same(want, got), f"step {i}: {step}\none node: {want}\ncluster:  {got}"
        one.record(request, step.decision())
        many.record(request, step.decision())
    one.flush()
    many.flush()
    assert one.peer_refreshes == many.peer_refreshes
    stats = many.stats()
    assert (stats.failures, stats.subject_errors, stats.group_errors, stats.lost_outcomes) == (
        0,
        0,
        0,
        0,
    )
    keys = _all_keys(cluster)
    assert set(keys) == set(single.scan_iter(count=1000))
    for key, node in keys.items():
        with cluster.admin(node) as client:
            assert _contents(client, key) == _contents(single, key), key
    one.close()
    many.close()


# -- slots ----------------------------------------------------------------------------


def test_every_key_of_a_subject_is_in_its_slot_and_every_group_in_its_own(
    cluster: RedisCluster,
) -> None:
    store = RedisBehaviorStore.from_url(cluster.url, PEERS)
    subjects = [f"u-{n}" for n in range(24)]
    departments = ("support", "sales", "ops")
    at = NOW
    for day in range(2):
        for n, subject in enumerate(subjects):
            request = _request(subject, 5, f"c-{n}", departments[n % 3])
            store.features(request, at + datetime.timedelta(days=day, minutes=n))
            store.record_access(request, at + datetime.timedelta(days=day, minutes=n), 1)
    store.flush()
    keys = _all_keys(cluster)
    subject_key = re.compile(rb"^zt:\{([^}]*)\}:[A-Za-z]+$")
    group_key = re.compile(rb"^zt:g:\{([^}]*)\}$")
    by_subject: dict[bytes, set[int]] = {}
    groups: dict[bytes, int] = {}
    for key in keys:
        slot = _keyslot(cluster, key)
        if found := subject_key.match(key):
            tag = found.group(1)
            assert slot == _keyslot(cluster, tag)
            by_subject.setdefault(tag, set()).add(slot)
        else:
            found = group_key.match(key)
            assert found is not None, key
            groups[found.group(1)] = slot
            assert slot == _keyslot(cluster, found.group(1))
    assert set(by_subject) == {f"user:{s}".encode() for s in subjects}
    assert all(len(slots) == 1 for slots in by_subject.values())
    assert set(groups) == {f"department={d}".encode() for d in departments} or len(groups) == 3
    # the subjects are spread over every node, so the batches above crossed nodes
    assert len({keys[key] for key in keys if subject_key.match(key)}) == 3
    assert store.stats().failures == 0
    store.close()


def test_an_outcome_of_a_subject_on_another_node_rides_with_the_next_call(
    cluster: RedisCluster,
) -> None:
    """A deferred denial of one subject goes in the pipeline of another subject's
    call on another node: the batch spans nodes, each part is written once."""
    store = RedisBehaviorStore.from_url(cluster.url, ROOMY)
    keys = {s: _keyslot(cluster, f"user:{s}".encode()) for s in (f"u-{n}" for n in range(40))}
    owner = _slot_owners(cluster)
    first = "u-0"
    other = next(s for s, slot in keys.items() if owner[slot] != owner[keys[first]])
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, behavior=store, clock=lambda: NOW)
    assert pdp.evaluate(_mapping(first, 150)).effect is Effect.DENY
    assert store.stats().pending_outcomes == 1
    trips = store.stats().round_trips
    store.features(_request(other), NOW)  # carries the denial of `first`
    assert store.stats().round_trips == trips + 1
    assert store.stats().pending_outcomes == 0
    features = store.features(_request(first, 0), NOW)
    assert features["denied_1h"] == 1
    assert features["requests_1h"] == 2
    assert store.stats().lost_outcomes == 0
    store.close()


def _calls(cluster: RedisCluster) -> dict[str, int]:
    """Commands run so far, summed over the nodes (INFO commandstats)."""
    calls: dict[str, int] = {}
    for node in cluster.nodes:
        with cluster.admin(node) as client:
            for name, stat in client.info("commandstats").items():
                calls[name] = calls.get(name, 0) + int(stat["calls"])
    return calls


def test_a_decision_costs_its_script_calls_and_nothing_more(cluster: RedisCluster) -> None:
    """Sync and async, every script call is one EVALSHA on its node: no extra
    ``COMMAND GETKEYS`` (redis-py's sync cluster pipeline asks for the keys of every
    script call unless the store names the node)."""
    store = RedisBehaviorStore.from_url(cluster.url, PEERS)
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, behavior=store, clock=lambda: NOW)
    for n in range(10):  # scripts loaded, groups read, connections made
        pdp.evaluate(_mapping(f"u-{n}", 150))
    before, trips = _calls(cluster), store.stats().round_trips
    for n in range(60):
        pdp.evaluate(_mapping(f"u-{n % 10}", 150 if n % 3 == 0 else 1))

    async def more() -> None:
        for n in range(60):
            await pdp.evaluate_async(_mapping(f"u-{n % 10}", 150 if n % 3 == 0 else 1))
        await store.aclose()

    asyncio.run(more())
    after = _calls(cluster)
    made = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert "cmdstat_command|getkeys" not in made
    assert store.stats().round_trips - trips == 120
    # 120 requests, and a call for each of the 40 denials (another subject's: they
    # ride in the next round trip) and for the last one flushed by aclose
    assert made["cmdstat_evalsha"] == 120 + 40 + 1
    assert store.stats().failures == 0
    store.close()


def _slot_owners(cluster: RedisCluster) -> dict[int, int]:
    """Slot -> port of the master serving it."""
    owners: dict[int, int] = {}
    with cluster.admin(cluster.nodes[0]) as client:
        for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
            for slot in range(int(start), int(end) + 1):
                owners[slot] = int(master[1])
    return owners


# -- replicas -----------------------------------------------------------------------


def test_two_stores_on_the_cluster_see_one_history(cluster: RedisCluster) -> None:
    a = RedisBehaviorStore.from_url(cluster.url, PEERS)
    b = RedisBehaviorStore.from_url(cluster.url, PEERS)
    stores = (a, b)
    for n in range(30):
        for subject in ("u-1", "u-2", "u-3"):
            request = _request(subject, 2, f"c-{n % 7}", "support")
            features = stores[n % 2].features(request, NOW + datetime.timedelta(seconds=n))
            assert features["requests_1h"] == n + 1
            assert features["records_1h"] == 2 * (n + 1)
            assert features["distinct_resources_1h"] == min(n + 1, 7)

    async def more() -> Mapping[str, Any]:
        features = await b.features_async(_request("u-1", 2, "c-1", "support"), NOW)
        await b.aclose()
        return features

    assert asyncio.run(more())["requests_1h"] == 31  # the async client too
    assert a.features(_request("u-1"), NOW)["requests_1h"] == 32
    a.close()
    b.close()


def _demo_decisions(pdps: list[PolicyDecisionPoint], now: list[datetime.datetime]) -> Any:
    """The scenario of ``zerotrust demo`` (its normal weeks, then the insider until
    she is refused ``GIVE_UP_AFTER`` times), request ``i`` sent to ``pdps[i % n]``:
    the request at which she is first stopped (of those that stayed refused), the
    records she got, and the rules that stopped her."""
    import random

    rng = random.Random(7)
    n = 0
    for at, request in zdemo._normal_work(rng):
        now[0] = at
        pdps[n % len(pdps)].evaluate(request)
        n += 1
    device = {"id": "d-eve-private", "managed": True, "compliant": True}
    amr: tuple[str, ...] = ("pwd",)
    served = refusals = 0
    stopped: tuple[int, tuple[str, ...]] | None = None
    at = zdemo.ATTACK_AT
    for page in range(zdemo.ATTACK_MAX):
        request = zdemo.agent_request(
            zdemo.INSIDER,
            f"c-{20_000 + page}",
            zdemo.ATTACK_PAGE,
            device=device,
            ip="192.0.2.77",
            amr=amr,
        )
        now[0] = at
        decision = pdps[n % len(pdps)].evaluate(request)
        n += 1
        if decision.effect is Effect.ALLOW:
            served += zdemo.ATTACK_PAGE
            refusals, stopped = 0, None
        elif decision.effect is Effect.STEP_UP:
            amr = ("pwd", "mfa")
        else:
            if refusals == 0:
                rules = tuple(r.rule for r in decision.reasons if r.effect is Effect.DENY)
                stopped = (page, rules)
            refusals += 1
            if refusals >= zdemo.GIVE_UP_AFTER:
                break
        at += zdemo.ATTACK_EVERY
    return stopped, served


def test_the_demo_insider_sent_to_two_pdps_on_the_cluster_is_stopped_as_on_one(
    cluster: RedisCluster,
) -> None:
    report = zdemo.run_demo()
    assert report.stopped_at is not None
    page = (report.stopped_at - zdemo.ATTACK_AT) // zdemo.ATTACK_EVERY
    now = [zdemo.START]
    from zerotrust import MemoryBehaviorStore

    alone = PolicyDecisionPoint.from_path(
        zdemo.default_policies(), clock=lambda: now[0], behavior=MemoryBehaviorStore()
    )
    assert _demo_decisions([alone], now) == ((page, report.stopped_by), report.attack_records)
    stores = [RedisBehaviorStore.from_url(cluster.url, ROOMY) for _ in range(2)]
    pdps = [
        PolicyDecisionPoint.from_path(zdemo.default_policies(), clock=lambda: now[0], behavior=s)
        for s in stores
    ]
    assert _demo_decisions(pdps, now) == ((page, report.stopped_by), report.attack_records)
    for store in stores:
        assert store.stats().failures == 0
        store.close()


# -- redirections and faults ----------------------------------------------------------


def wait_until(condition: Any, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _rejected(cluster: RedisCluster) -> int:
    """EVALSHA calls the nodes refused (a redirection or TRYAGAIN), summed."""
    total = 0
    for node in cluster.nodes:
        with cluster.admin(node) as client:
            stat = client.info("commandstats").get("cmdstat_evalsha", {})
            total += int(stat.get("rejected_calls", 0))
    return total


def _node_ids(cluster: RedisCluster) -> dict[int, bytes]:
    ids: dict[int, bytes] = {}
    for node in cluster.nodes:
        with cluster.admin(node) as client:
            ids[node.port] = client.execute_command("CLUSTER", "MYID")
    return ids


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_slot_moved_under_the_store_is_followed_ask_then_moved(
    cluster: RedisCluster, mode: str
) -> None:
    """The subject's slot is migrated to another master while a store (with the old
    slot table) keeps deciding. Mid-migration the old node answers ``ASK``: a subject
    whose keys have all moved is served by the new node; one whose keys are not all
    there is refused with ``TRYAGAIN`` (a script's keys must be together), which is a
    store failure. After the move the old node answers ``MOVED`` and the store learns
    the new table. Each refused command is sent once more at most: no request is
    lost or counted twice. Through ``features`` and ``features_async``."""
    from redis.crc import key_slot

    store = RedisBehaviorStore.from_url(cluster.url, ROOMY)
    loop = asyncio.new_event_loop()

    def features(request: AccessRequest) -> Mapping[str, Any]:
        if mode == "sync":
            return store.features(request, NOW)
        return loop.run_until_complete(store.features_async(request, NOW))

    subject = "u-moving"
    slot = key_slot(f"user:{subject}".encode())
    late = next(
        s for s in (f"u-{n}" for n in range(100_000)) if key_slot(f"user:{s}".encode()) == slot
    )

    def full(who: str) -> AccessRequest:  # touches all ten keys of the subject
        mapping = _mapping(who)
        mapping["device"] = {"id": "d-1"}
        mapping["context"].update(ip="10.0.0.1", country="DE")
        return AccessRequest.from_mapping(mapping)

    for n in range(3):
        assert features(full(subject))["requests_1h"] == n + 1
    owner = _slot_owners(cluster)[slot]
    source = next(node for node in cluster.nodes if node.port == owner)
    target = next(node for node in cluster.nodes if node.port != owner)
    ids = _node_ids(cluster)
    with cluster.admin(source) as src, cluster.admin(target) as dst:
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source.port])
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target.port])
        keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
        assert len(keys) == 10
        src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
    try:  # mid-migration
        assert features(full(subject))["requests_1h"] == 4  # ASK: served there
        assert store.stats().failures == 0
        before = _rejected(cluster)
        assert features(full(late)) == {"available": False}  # TRYAGAIN
        # ASK, TRYAGAIN, then at most one more try of each: not redis-py's 16 tries
        assert _rejected(cluster) - before <= 4
        assert store.stats().failures == 1
    finally:  # the migration ends (the session's cluster is whole again)
        for node in cluster.nodes:
            with cluster.admin(node) as client:
                client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target.port])
    # the move is done: MOVED, first inside a pipeline (another subject's correction
    # rides along), then for a lone call
    store.record_access(_request("u-other"), NOW, 3)
    assert features(full(subject))["requests_1h"] == 5
    assert features(full(subject))["requests_1h"] == 6
    assert features(full(late))["requests_1h"] == 1  # the refused one was not kept
    assert features(_request("u-other"))["records_1h"] == 3 + 1
    stats = store.stats()
    assert (stats.failures, stats.subject_errors, stats.lost_outcomes) == (1, 0, 0)
    assert _slot_owners(cluster)[slot] == target.port
    loop.run_until_complete(store.aclose())
    loop.close()
    store.close()


def test_a_batch_whose_part_on_one_node_times_out_is_a_failure_and_is_not_sent_again(
    cluster: RedisCluster,
) -> None:
    """A deferred denial of subject A (on node X) rides with subject B's request (on
    node Y); X is paused, so its part times out after it was sent. The round trip is
    a store failure (B's decision follows ``on_store_error``, A's outcome is counted
    lost, never done) and nothing is sent again: when X resumes it runs the queued
    script once, so A's denial is counted once, not twice."""
    config = BehaviorConfig(timeout=0.3)
    store = RedisBehaviorStore.from_url(cluster.url, config)
    owners = _slot_owners(cluster)
    port = {
        s: owners[_keyslot(cluster, f"user:{s}".encode())] for s in (f"u-{n}" for n in range(40))
    }
    a = "u-0"
    b = next(s for s in port if port[s] != port[a])
    x = next(node for node in cluster.nodes if node.port == port[a])
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, behavior=store, clock=lambda: NOW)
    assert pdp.evaluate(_mapping(b)).effect is Effect.ALLOW  # connections to both nodes
    assert pdp.evaluate(_mapping(a, 150)).effect is Effect.DENY  # its outcome deferred
    assert x.process is not None
    os.kill(x.process.pid, signal.SIGSTOP)
    try:
        decision = pdp.evaluate(_mapping(b))
    finally:
        os.kill(x.process.pid, signal.SIGCONT)
    assert decision.effect is Effect.DENY
    assert any(r.rule == STORE_UNAVAILABLE for r in decision.reasons)
    stats = store.stats()
    assert (stats.failures, stats.lost_outcomes, stats.pending_outcomes) == (1, 1, 0)
    cluster.wait_ok()
    features = store.features(_request(a, 0), NOW)
    assert features["denied_1h"] == 1  # written once (by the resumed node), not resent
    assert features["requests_1h"] == 2
    assert store.features(_request(b, 0), NOW)["requests_1h"] == 3  # B's refused one too
    store.close()


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    """A cluster of the test's own: it kills one of its nodes."""
    yield from running_cluster(tmp_path)


def test_a_node_killed_mid_run_fails_closed_and_the_store_recovers(
    own_cluster: RedisCluster,
) -> None:
    cluster = own_cluster
    config = BehaviorConfig(breaker_failures=2, breaker_reset=0.5, timeout=0.5, connect_timeout=0.5)
    store = RedisBehaviorStore.from_url(cluster.url, config)
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, behavior=store, clock=lambda: NOW)
    owners = _slot_owners(cluster)
    victim = cluster.nodes[1]
    subjects = [f"u-{n}" for n in range(30)]
    on_victim = next(
        s for s in subjects if owners[_keyslot(cluster, f"user:{s}".encode())] == victim.port
    )
    elsewhere = next(
        s for s in subjects if owners[_keyslot(cluster, f"user:{s}".encode())] != victim.port
    )
    for subject in (on_victim, elsewhere):
        assert pdp.evaluate(_mapping(subject)).effect is Effect.ALLOW
    stepping = PolicyDecisionPoint.from_texts(
        {"p.yaml": POLICY},
        behavior=RedisBehaviorStore.from_url(
            cluster.url, attrs.evolve(config, on_store_error=StoreErrorMode.STEP_UP)
        ),
        clock=lambda: NOW,
    )
    victim.stop()
    down = False  # the whole cluster refusing (CLUSTERDOWN) once the node is marked failed
    deadline = time.monotonic() + 5 * cluster.NODE_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        for subject in (on_victim, elsewhere):
            decision = pdp.evaluate(_mapping(subject))
            if decision.effect is Effect.ALLOW:  # only on its features, never by error
                assert subject == elsewhere
                assert decision.behavior is not None and decision.behavior["available"] is True
            else:  # fail closed, by on_store_error
                assert decision.effect is Effect.DENY
                assert any(r.rule == STORE_UNAVAILABLE for r in decision.reasons)
                down = down or subject == elsewhere
        time.sleep(0.05)
    assert down
    stats = store.stats()
    assert stats.failures >= 2
    assert stats.rejected > 0  # the breaker opened and answered at once
    # another mode is followed too
    assert stepping.evaluate(_mapping(elsewhere)).effect is Effect.STEP_UP
    victim.start()  # same port, same nodes.conf: it rejoins (empty: no persistence)
    cluster.wait_ok()
    deadline = time.monotonic() + 30
    recovered = False
    while time.monotonic() < deadline and not recovered:
        recovered = all(
            pdp.evaluate(_mapping(s)).effect is Effect.ALLOW for s in (on_victim, elsewhere)
        )
        time.sleep(0.1)
    assert recovered
    assert store.stats().breaker is BreakerState.CLOSED
    # the history on the nodes that stayed up is intact; the returned node lost its
    # keys (no persistence in this test) and starts over, its script reloaded
    assert store.features(_request(elsewhere), NOW)["requests_1h"] >= 2
    assert store.features(_request(on_victim), NOW)["available"] is True
    store.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_failover_to_a_replica_keeps_the_history(own_cluster: RedisCluster, mode: str) -> None:
    """A master with a replica is killed: decisions on its subject fail closed until
    the replica is promoted, then the store (which reads the slot table again after
    losing a node) is served by the new master, with the subject's history. Through
    ``evaluate`` and through ``evaluate_async`` (redis.asyncio's cluster client)."""
    cluster = own_cluster
    master = cluster.nodes[1]
    replica = cluster.add_replica(master)
    config = BehaviorConfig(breaker_failures=2, breaker_reset=0.3, timeout=0.5, connect_timeout=0.5)
    store = RedisBehaviorStore.from_url(cluster.url, config)
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, behavior=store, clock=lambda: NOW)
    loop = asyncio.new_event_loop()

    def decide(request: dict[str, Any]) -> Any:
        if mode == "sync":
            return pdp.evaluate(request)
        return loop.run_until_complete(pdp.evaluate_async(request))

    owners = _slot_owners(cluster)
    subject = next(
        s
        for s in (f"u-{n}" for n in range(100))
        if owners[_keyslot(cluster, f"user:{s}".encode())] == master.port
    )
    for _ in range(3):
        assert decide(_mapping(subject)).effect is Effect.ALLOW
    with cluster.admin(master) as client:
        assert client.execute_command("WAIT", 1, 5000) == 1  # the replica has it all
    master.stop()
    refused = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        decision = decide(_mapping(subject))
        if decision.effect is Effect.ALLOW:
            break
        assert decision.effect is Effect.DENY
        assert any(r.rule == STORE_UNAVAILABLE for r in decision.reasons)
        refused += 1
        time.sleep(0.05)
    else:
        pytest.fail("the store did not find the promoted replica")
    assert refused > 0
    slot = _keyslot(cluster, f"user:{subject}".encode())
    # (the node asked may hear of the promotion a moment after the store did)
    assert wait_until(lambda: _slot_owners(cluster)[slot] == replica.port)
    # the three requests before, the refused ones never recorded, the allowed one, this
    assert decide(_mapping(subject)).behavior["requests_1h"] == 5
    assert store.stats().breaker is BreakerState.CLOSED
    loop.run_until_complete(store.aclose())
    loop.close()
    store.close()
