"""RedisBehaviorStore's long windows and peer groups against a real redis-server.

A brute-force model of the contract (docs/behavior.md, "Features") recounts every new
feature from the whole history at each step; the store must agree exactly, floats
too. Then: two processes sharing one Redis see each other's members after a refresh,
a decision stays one round trip, and group keys of another type fail nobody.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import math
import multiprocessing
from collections.abc import Sequence
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from redis_server import RedisServer, admin_client
from strategies import BEHAVIOR_CONFIGS, Step, steps

from zerotrust import (
    AccessRequest,
    BehaviorConfig,
    Decision,
    Effect,
    PolicyDecisionPoint,
    RedisBehaviorStore,
    Risk,
)
from zerotrust.behavior._windows import bucket
from zerotrust.behavior.features import FEATURES, OPTIONAL_FEATURES
from zerotrust.behavior.peers import MAX_GROUPS

START = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC)
NEW = FEATURES[FEATURES.index("records_7d") : FEATURES.index("available")]
SLOW = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _when(t: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(t, datetime.UTC)


# -- a generated stream and the model ----------------------------------------------------


@attrs.define
class _Entry:
    day: int
    hour: int
    records: int
    request: bool
    resource: str


def _type7(values: Sequence[float], q: float) -> float:
    x = sorted(values)
    h = (len(x) - 1) * q
    f = int(h)
    if f == len(x) - 1:
        return x[f]
    return x[f] + (h - f) * (x[f + 1] - x[f])


def _texts(step: Step, groupings: Sequence[Sequence[str]]) -> list[str]:
    """The contract's group key texts, written out again for the model."""
    props: dict[str, list[str]] = {"roles": list(dict.fromkeys(step.roles))}
    if step.department is not None:
        props["department"] = [step.department]

    def esc(s: str) -> str:
        return s.replace("%", "%25").replace("=", "%3D").replace("&", "%26")

    out = []
    for names in groupings:
        for combo in itertools.product(*(props.get(n, []) for n in names)):
            out.append("&".join(f"{esc(n)}={esc(v)}" for n, v in zip(names, combo, strict=True)))
    return out[:MAX_GROUPS]


class Model:
    """The contract by brute force: every figure recounted from the whole history."""

    def __init__(self, config: BehaviorConfig) -> None:
        self.c = config
        self.entries: dict[str, list[_Entry]] = {}
        self.last_day: dict[str, int] = {}
        self.tables: dict[str, dict[str, tuple[float, float, int]]] = {}
        self.snapshots: dict[str, tuple[float, dict[str, tuple[float, float, int]]]] = {}
        self.refreshes = 0

    def correct(self, subject: str, at: float, records: int) -> None:
        entry = _Entry(bucket(at, 86_400), bucket(at, 3600), records, False, "")
        self.entries.setdefault(subject, []).append(entry)

    def features(self, step: Step) -> dict[str, Any]:
        c, s = self.c, step.subject
        day, hour = bucket(step.t, 86_400), bucket(step.t, 3600)
        mine = self.entries.setdefault(s, [])
        mine.append(_Entry(day, hour, step.records, True, step.resource))
        last: dict[str, int] = {}
        for e in mine:
            if e.request:
                last[e.resource] = max(last.get(e.resource, e.hour), e.hour)
        request_days = {e.day for e in mine if e.request}
        active = [d for d in range(day - c.peer_days, day) if d in request_days]
        records = sum(e.records for e in mine if day - c.peer_days <= e.day < day)
        distinct = sum(len({e.resource for e in mine if e.request and e.day == d}) for d in active)
        rpd = records / len(active) if active else 0.0
        dpd = distinct / len(active) if active else 0.0
        out: dict[str, Any] = {
            "records_7d": sum(e.records for e in mine if day - 7 < e.day <= day),
            "records_30d": sum(e.records for e in mine if day - 30 < e.day <= day),
            "distinct_resources_24h": sum(1 for h in last.values() if h > hour - 24),
            "distinct_resources_7d": sum(1 for h in last.values() if h > hour - 168),
            "distinct_resources_30d": sum(1 for h in last.values() if h > hour - 720),
            "active_days_30d": sum(1 for d in request_days if day - 30 < d <= day),
            "baseline_records_per_day": rpd,
            "baseline_distinct_per_day": dpd,
        }
        groups = _texts(step, c.peer_groups)
        if s not in self.last_day or self.last_day[s] < day:  # first of its day: publish
            self.last_day[s] = day
            for g in groups:
                table = self.tables.setdefault(g, {})
                if active:  # published as whole numbers, halves up, never below 0
                    table[s] = (
                        float(max(0, math.floor(rpd + 0.5))),
                        float(max(0, math.floor(dpd + 0.5))),
                        day,
                    )
                else:
                    table.pop(s, None)
        best: tuple[str, list[tuple[float, float, int]]] | None = None
        for g in groups:
            snap = self.snapshots.get(g)
            if snap is None or step.t >= snap[0] + c.peer_refresh:
                fresh = {
                    m: f for m, f in self.tables.get(g, {}).items() if f[2] >= day - c.peer_days
                }
                snap = self.snapshots[g] = (step.t, fresh)
                self.refreshes += 1
            others = [f for m, f in snap[1].items() if m != s]
            if len(others) < c.min_peers:
                continue
            if best is None or _type7([f[0] for f in others], 0.5) > _type7(
                [f[0] for f in best[1]], 0.5
            ):
                best = (g, others)
        if best is not None:
            r = [f[0] for f in best[1]]
            d = [f[1] for f in best[1]]
            out["peers"] = {
                "group": best[0],
                "members": len(best[1]),
                "records_per_day": {"median": _type7(r, 0.5), "p95": _type7(r, 0.95)},
                "distinct_per_day": {"median": _type7(d, 0.5), "p95": _type7(d, 0.95)},
            }
            if _type7(r, 0.5):
                out["records_24h_vs_peers"] = None  # records_24h comes from the store
            if _type7(d, 0.5):
                out["distinct_resources_24h_vs_peers"] = out["distinct_resources_24h"] / _type7(
                    d, 0.5
                )
        return out

    def decided(self, step: Step) -> None:
        if step.effect is not Effect.ALLOW:  # a refusal's records are taken back
            self.correct(step.subject, step.t, -step.records)


def _check(got: dict[str, Any], want: dict[str, Any], where: str) -> None:
    for name in NEW:
        if name == "records_24h_vs_peers" and name in want:
            want[name] = got["records_24h"] / want["peers"]["records_per_day"]["median"]
        if name in OPTIONAL_FEATURES and name not in want:
            assert name not in got, f"{where}: {name} should be absent: {got.get(name)}"
            continue
        assert name in got, f"{where}: {name} missing"
        assert type(got[name]) is type(want[name]), f"{where}: {name}"
        assert got[name] == want[name], f"{where}: {name}: {got[name]!r} != {want[name]!r}"


def replay(store: RedisBehaviorStore, model: Model, stream: Sequence[Step]) -> None:
    for i, step in enumerate(stream):
        if step.correction:
            store.record_access(step.request(), step.at, step.delta)
            model.correct(step.subject, step.at.timestamp(), step.delta)
            continue
        got = dict(store.features(step.request(), _when(step.t)))
        assert got["available"] is True
        _check(got, model.features(step), f"step {i}: {step}")
        store.record(step.request(), step.decision())
        model.decided(step)
    assert store.peer_refreshes == model.refreshes


@SLOW
@given(stream=steps(), config=BEHAVIOR_CONFIGS)
def test_long_windows_and_peers_equal_a_brute_force_model(
    redis_server: RedisServer, stream: list[Step], config: BehaviorConfig
) -> None:
    admin_client(redis_server).flushall()
    store = RedisBehaviorStore.from_url(redis_server.url, config)
    replay(store, Model(config), stream)
    stats = store.stats()
    assert (stats.failures, stats.subject_errors, stats.group_errors) == (0, 0, 0)
    store.close()


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(stream=steps(size=40), config=BEHAVIOR_CONFIGS)
def test_the_async_path_gives_the_same_features(
    redis_server: RedisServer, stream: list[Step], config: BehaviorConfig
) -> None:
    """One stream through ``features`` and through ``features_async`` (separate
    prefixes, one Redis): the same maps at every step, peers included."""
    admin_client(redis_server).flushall()
    sync = RedisBehaviorStore.from_url(redis_server.url, config)
    other = attrs.evolve(config, key_prefix="za")
    async_store = RedisBehaviorStore.from_url(redis_server.url, other)

    async def run() -> list[dict[str, Any]]:
        out = []
        for step in stream:
            if step.correction:
                async_store.record_access(step.request(), step.at, step.delta)
                continue
            out.append(dict(await async_store.features_async(step.request(), _when(step.t))))
            await async_store.record_async(step.request(), step.decision())
        await async_store.aclose()
        return out

    got_async = asyncio.run(run())
    got_sync = []
    for step in stream:
        if step.correction:
            sync.record_access(step.request(), step.at, step.delta)
            continue
        got_sync.append(dict(sync.features(step.request(), _when(step.t))))
        sync.record(step.request(), step.decision())
    assert got_async == got_sync
    assert async_store.peer_refreshes == sync.peer_refreshes
    sync.close()


# -- day by day, by hand ---------------------------------------------------------------------


def _req(subject: str, resource: str = "c-1", records: int = 1, **props: Any) -> AccessRequest:
    return AccessRequest.from_mapping(
        {
            "subject": {"id": subject, "properties": props or {"department": "support"}},
            "action": {"name": "read"},
            "resource": {"type": "customer_record", "id": resource},
            "context": {"records": records},
        }
    )


def test_corrections_update_the_daily_records_and_the_baselines(
    redis_server: RedisServer,
) -> None:
    store = RedisBehaviorStore.from_url(redis_server.url)
    day0 = START
    store.features(_req("u-1", records=10), day0)
    store.features(_req("u-1", "c-2", records=30), day0)
    store.record_access(_req("u-1"), day0, -15)  # a query returned fewer rows
    later = day0 + datetime.timedelta(days=1)
    f = store.features(_req("u-1", records=2), later)
    assert (f["records_7d"], f["records_30d"]) == (27, 27)
    assert f["baseline_records_per_day"] == 25.0  # (10 + 30 - 15) over 1 active day
    assert f["baseline_distinct_per_day"] == 2.0
    assert f["active_days_30d"] == 2
    # exactly a day later yesterday's hour is out of "this hour and the 23 before"
    assert (f["distinct_resources_24h"], f["distinct_resources_30d"]) == (1, 2)
    denied = Decision(Effect.DENY, (), Risk(), None, (), (), (), "t", "id", later)
    store.record(_req("u-1", records=2), denied)
    f = store.features(_req("u-1", records=0), later)
    assert f["records_7d"] == 25  # the refused 2 taken back
    week = later + datetime.timedelta(days=7)
    f = store.features(_req("u-1", records=1), week)
    assert (f["records_7d"], f["records_30d"], f["active_days_30d"]) == (1, 26, 3)
    assert f["distinct_resources_24h"] == 1 and f["distinct_resources_7d"] == 1
    assert f["distinct_resources_30d"] == 2


def test_distinct_counts_saturate_at_max_distinct(redis_server: RedisServer) -> None:
    store = RedisBehaviorStore.from_url(redis_server.url, BehaviorConfig(max_distinct=5))
    for i in range(12):
        f = store.features(_req("u-1", f"c-{i}"), START + datetime.timedelta(minutes=i))
    assert f["distinct_resources_24h"] == f["distinct_resources_30d"] == 5
    assert admin_client(redis_server).zcard("zt:{user:u-1}:R") == 5


# -- groups across processes ------------------------------------------------------------------

MEMBER_RECORDS = (4, 8, 12, 16, 20, 24)


def _members_elsewhere(url: str, at: float) -> tuple[int, int]:
    """Runs in another process: six support members with two days of history each,
    then their first request of the day ``at`` publishes their figures."""
    store = RedisBehaviorStore.from_url(url, BehaviorConfig(peer_days=7))
    now = _when(at)
    for n, records in enumerate(MEMBER_RECORDS):
        for back in (2, 1):
            for k in range(2):
                store.features(
                    _req(f"m-{n}", f"c-{k}", records // 2), now - datetime.timedelta(days=back)
                )
        store.features(_req(f"m-{n}", records=0), now)
    store.close()  # sends the queued publications
    stats = store.stats()
    return stats.round_trips, stats.lost_publications


def test_members_published_by_another_process_appear_after_a_refresh(
    redis_server: RedisServer,
) -> None:
    config = BehaviorConfig(peer_days=7, peer_refresh=60.0)
    store = RedisBehaviorStore.from_url(redis_server.url, config)
    t = START + datetime.timedelta(days=3)
    assert "peers" not in store.features(_req("me"), t)  # snapshot taken: nobody yet
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        trips, lost = pool.apply(_members_elsewhere, (redis_server.url, t.timestamp()))
    assert lost == 0 and trips == 6 * 5 + 1  # one per request, one for close()
    soon = store.features(_req("me"), t + datetime.timedelta(seconds=59))
    assert "peers" not in soon  # within peer_refresh: the snapshot is kept
    f = store.features(_req("me", records=14), t + datetime.timedelta(seconds=60))
    assert f["peers"] == {
        "group": "department=support",
        "members": 6,
        "records_per_day": {"median": 14.0, "p95": 23.0},
        "distinct_per_day": {"median": 2.0, "p95": 2.0},
    }
    assert f["records_24h_vs_peers"] == 16 / 14.0  # 1 + 1 + 14 today
    assert f["distinct_resources_24h_vs_peers"] == 0.5
    assert store.peer_refreshes == 2


def test_a_subject_is_left_out_of_its_own_statistics(redis_server: RedisServer) -> None:
    config = BehaviorConfig(min_peers=2, peer_refresh=1.0)
    store = RedisBehaviorStore.from_url(redis_server.url, config)
    for subject, records in (("a", 1), ("b", 2), ("c", 100)):
        store.features(_req(subject, records=records), START)
    t = START + datetime.timedelta(days=1)
    for subject in ("a", "b", "c"):  # first of the day: figures published
        store.features(_req(subject, records=0), t)
    later = t + datetime.timedelta(seconds=2)
    f = {s: store.features(_req(s, records=0), later)["peers"] for s in ("a", "b", "c")}
    assert f["c"]["records_per_day"]["median"] == 1.5 and f["c"]["members"] == 2
    assert f["a"]["records_per_day"]["median"] == 51.0
    assert f["b"]["records_per_day"] == {"median": 50.5, "p95": 1.0 + (0.95 - 0) * (100.0 - 1.0)}


def test_a_cancelled_refresh_does_not_stop_later_ones(redis_server: RedisServer) -> None:
    """A decision cancelled while its refresh was in flight (a client gone, a
    deadline) gives the claim back: a later decision refreshes that group."""
    admin = admin_client(redis_server)
    store = RedisBehaviorStore.from_url(redis_server.url, BehaviorConfig(timeout=2.0))
    second = datetime.timedelta(seconds=1)

    async def run() -> None:
        await store.features_async(_req("a"), START)  # the first snapshot
        admin.client_pause(300)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(store.features_async(_req("a"), START + 61 * second), 0.05)
        await asyncio.sleep(0.4)
        taken = store.peer_refreshes
        assert (await store.features_async(_req("a"), START + 62 * second))["available"]
        assert store.peer_refreshes == taken + 1
        await store.aclose()

    asyncio.run(run())


# -- round trips -----------------------------------------------------------------------------


def _counting_client(url: str) -> Any:
    """A redis-py client that counts the commands it sends by name (pipelined or not):
    the server's ``INFO commandstats`` also counts what the script runs inside."""
    import collections

    import redis

    class Counting(redis.Redis):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.sent: collections.Counter[str] = collections.Counter()

        def execute_command(self, *args: Any, **options: Any) -> Any:
            self.sent[str(args[0]).upper()] += 1
            return super().execute_command(*args, **options)

        def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
            pipe = super().pipeline(transaction, shard_hint)
            queue = pipe.pipeline_execute_command

            def counted(*args: Any, **options: Any) -> Any:
                self.sent[str(args[0]).upper()] += 1
                return queue(*args, **options)

            pipe.pipeline_execute_command = counted  # type: ignore[method-assign]
            return pipe

    return Counting.from_url(url)


def test_a_decision_stays_one_round_trip(redis_server: RedisServer) -> None:
    """20 subjects in 4 departments over 5 UTC days, refusals included: one round trip
    per decision; one group write per subject and day; one HGETALL per group and
    refresh."""
    admin = admin_client(redis_server)
    client = _counting_client(redis_server.url)
    store = RedisBehaviorStore(client, BehaviorConfig(peer_refresh=3600.0))
    policy = (
        "policy: p\nrules:\n  - {id: deny, effect: deny, when: 'context.records > 50'}\n"
        "  - {id: ok, effect: allow}\n"
    )
    midnight = START.replace(hour=0)
    clock = [midnight]
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": policy}, clock=lambda: clock[0], behavior=store)
    warm_up = {
        "subject": {"id": "w"},
        "action": {"name": "read"},
        "resource": {"type": "r"},
        "context": {"records": 1},
    }
    assert pdp.evaluate(warm_up).effect is Effect.ALLOW  # loads the script
    admin.config_resetstat()
    client.sent.clear()
    before = store.stats()
    decisions = 0
    for day in range(5):
        for minute in range(0, 24 * 60, 20):  # a decision per subject every 20 minutes
            clock[0] = midnight + datetime.timedelta(days=day, minutes=minute)
            for n in range(20):
                request = {
                    "subject": {"id": f"u-{n}", "properties": {"department": f"d-{n % 4}"}},
                    "action": {"name": "read"},
                    "resource": {"type": "customer_record", "id": f"c-{minute % 7}"},
                    "context": {"records": 60 if (n + minute) % 11 == 0 else 3},
                }
                pdp.evaluate(request)
                decisions += 1
    after = store.stats()
    server = admin.info("commandstats")
    assert after.round_trips - before.round_trips == decisions == 7200
    assert client.sent["EVAL"] == server["cmdstat_eval"]["calls"] <= 20 * 5  # a subject a day
    refreshes = after.peer_refreshes - before.peer_refreshes
    assert client.sent["HGETALL"] == refreshes <= 4 * 5 * 24  # a group an hour
    # one script call per decision, one more per refusal of another subject
    refused = sum(1 for m in range(0, 1440, 20) for n in range(20) if (n + m) % 11 == 0) * 5
    assert client.sent["EVALSHA"] == server["cmdstat_evalsha"]["calls"] == decisions + refused
    assert "cmdstat_script|load" not in server and "cmdstat_script" not in server


def test_without_deferral_a_publication_costs_one_more_round_trip_a_day(
    redis_server: RedisServer,
) -> None:
    store = RedisBehaviorStore.from_url(redis_server.url, BehaviorConfig(defer_outcomes=False))
    store.features(_req("u-1"), START)
    assert store.stats().round_trips == 2 + 1 + 1  # NOSCRIPT, SCRIPT LOAD; the publication
    for minute in range(1, 10):
        store.features(_req("u-1"), START + datetime.timedelta(minutes=minute))
    assert store.stats().round_trips == 4 + 9
    assert admin_client(redis_server).hgetall("zt:g:{department=support}") == {}  # no history: none
    store.features(_req("u-1"), START + datetime.timedelta(days=1))
    assert store.stats().round_trips == 13 + 2
    stored = admin_client(redis_server).hgetall("zt:g:{department=support}")
    assert stored == {
        b"user:u-1": f"{10.0!r} {1.0!r} {bucket(START.timestamp(), 86_400) + 1}".encode()
    }


# -- group keys that are not ours ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["string", "list", "set", "zset"])
def test_a_group_key_of_another_type_fails_no_subject(redis_server: RedisServer, kind: str) -> None:
    admin = admin_client(redis_server)
    key = "zt:g:{department=support}"
    {
        "string": lambda: admin.set(key, "x"),
        "list": lambda: admin.rpush(key, "x"),
        "set": lambda: admin.sadd(key, "x"),
        "zset": lambda: admin.zadd(key, {"x": 1}),
    }[kind]()
    admin.expire(key, 5000)
    config = BehaviorConfig(peer_groups=("department", "team"), min_peers=2)
    store = RedisBehaviorStore.from_url(redis_server.url, config)
    for s in ("a", "b", "c"):
        store.features(_req(s, department="support", team="t"), START)
    later = START + datetime.timedelta(days=1)
    for s in ("a", "b", "c"):
        f = store.features(_req(s, department="support", team="t"), later)
        assert f["available"] is True
    store.flush()
    f = store.features(
        _req("a", department="support", team="t"), later + datetime.timedelta(hours=1)
    )
    assert f["peers"]["group"] == "team=t"  # the other group still works
    stats = store.stats()
    assert stats.subject_errors == stats.failures == 0
    assert (stats.group_errors, stats.lost_publications) == (6 + 3, 6)  # writes + reads
    assert admin.type(key).decode() == kind and 4000 < admin.ttl(key) <= 5000  # untouched


def test_malformed_members_are_ignored_and_stale_ones_removed(redis_server: RedisServer) -> None:
    admin = admin_client(redis_server)
    key = "zt:g:{department=support}"
    today = bucket(START.timestamp(), 86_400)
    admin.hset(
        key,
        mapping={
            "user:x": "not figures",
            "user:y": "nan 1.0 " + str(today),
            "user:old": f"5.0 5.0 {today - 29}",  # before today - peer_days (28)
            "user:gone": f"5.0 5.0 {today - 40}",
            "user:p": f"1.0 1.0 {today - 1}",
            "user:q": f"3.0 2.0 {today - 28}",
        },
    )
    config = BehaviorConfig(min_peers=2, peer_refresh=10.0)
    store = RedisBehaviorStore.from_url(redis_server.url, config)
    f = store.features(_req("me"), START)
    assert f["peers"]["members"] == 2
    assert f["peers"]["records_per_day"]["median"] == 2.0
    admin.hset(key, "user:old", f"7.0 7.0 {today}")  # published again meanwhile: kept
    store.flush()  # the reader's clean-up rides with the next call
    left = {k.decode() for k in admin.hkeys(key)}
    assert left == {"user:x", "user:y", "user:old", "user:p", "user:q"}
    assert store.stats().group_errors == 0
