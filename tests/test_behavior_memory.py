"""MemoryBehaviorStore: window counts against a brute-force recount, bounds, threads."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import untrackable_values

from zerotrust import (
    AccessRequest,
    BehaviorConfig,
    Decision,
    Effect,
    MemoryBehaviorStore,
    PolicyDecisionPoint,
    Risk,
)
from zerotrust.behavior._windows import bucket
from zerotrust.behavior.features import FEATURES, OPTIONAL_FEATURES, counted_records
from zerotrust.errors import BehaviorStoreError, RequestError, ZeroTrustError
from zerotrust.request import Action, Resource, Subject

START = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC)


@attrs.frozen
class Ev:
    """One request in a generated stream and the effect its decision got."""

    t: float
    subject: str
    records: int
    resource: str
    device: str | None
    ip: str | None
    country: str | None
    effect: Effect

    def request(self) -> AccessRequest:
        context: dict[str, Any] = {"records": self.records}
        if self.ip is not None:
            context["ip"] = self.ip
        if self.country is not None:
            context["country"] = self.country
        return AccessRequest.from_mapping(
            {
                "subject": {"id": self.subject},
                "action": {"name": "read"},
                "resource": {"type": "customer_record", "id": self.resource},
                "device": {"id": self.device} if self.device is not None else {},
                "context": context,
            }
        )

    def decision(self) -> Decision:
        when = datetime.datetime.fromtimestamp(self.t, datetime.UTC)
        return Decision(self.effect, (), Risk(), None, (), (), (), "test", "id", when)


def oracle(history: Sequence[Ev], current: Ev, config: BehaviorConfig) -> dict[str, Any]:
    """The features by definition, recounted from every earlier event of the subject."""
    mine = [e for e in history if e.subject == current.subject]
    ttl = config.effective_ttl
    fresh: list[Ev] = []
    for e in mine:  # an idle gap longer than the TTL forgets the subject
        if fresh and fresh[-1].t < e.t - ttl:
            fresh = []
        fresh.append(e)
    if fresh and fresh[-1].t < current.t - ttl:
        fresh = []
    mine = fresh
    n = config.buckets

    def inside(e: Ev, window: int) -> bool:
        g = config.granularity(window)
        return bucket(e.t, g) > bucket(current.t, g) - n

    def kept(e: Ev) -> int:  # a refused request's records are taken back
        return e.records if e.effect is Effect.ALLOW else 0

    hour = [e for e in mine if inside(e, config.hour_window)]
    day = [e for e in mine if inside(e, config.day_window)]
    now_hour = bucket(current.t, 3600)
    seen_from = now_hour - config.seen_hours

    def new(field: str) -> bool:
        value = getattr(current, field)
        if value is None:
            return False
        earlier = {
            getattr(e, field)
            for e in mine
            if getattr(e, field) is not None and bucket(e.t, 3600) > seen_from
        }
        return bool(earlier) and value not in earlier

    base_from = now_hour - config.baseline_hours - 1
    past = [e for e in mine if base_from < bucket(e.t, 3600) < now_hour]
    active = {bucket(e.t, 3600) for e in past}
    return {
        "requests_1m": 1 + sum(1 for e in mine if inside(e, config.minute_window)),
        "requests_1h": 1 + len(hour),
        "requests_24h": 1 + len(day),
        "records_1h": current.records + sum(kept(e) for e in hour),
        "records_24h": current.records + sum(kept(e) for e in day),
        "distinct_resources_1h": len({e.resource for e in hour} | {current.resource}),
        "denied_1h": sum(1 for e in hour if e.effect is Effect.DENY),
        "step_ups_1h": sum(1 for e in hour if e.effect is Effect.STEP_UP),
        "new_device": new("device"),
        "new_ip": new("ip"),
        "new_country": new("country"),
        "baseline_records_per_hour": (sum(kept(e) for e in past) / len(active) if active else 0.0),
        "available": True,
    }


# Gaps chosen around every bucket and window edge, plus a few longer jumps.
GAPS = st.sampled_from(
    [
        *(0.0, 0.4, 1.0, 7.0, 59.0, 60.0, 61.0, 600.0, 1439.0, 1441.0, 3599.0, 3600.0),
        *(7200.0, 43_200.0, 86_399.0, 86_401.0, 5 * 86_400.0),
    ]
)


@st.composite
def streams(
    draw: st.DrawFn, size: int = 60, long_gaps: bool = True, idle: bool = False
) -> list[Ev]:
    gaps = GAPS if long_gaps else GAPS.filter(lambda g: g < 86_000)
    if idle:  # now and then longer than the shortest TTL (the longest window, 30 days)
        gaps = st.one_of(gaps, st.sampled_from([30 * 86_400.0, 30 * 86_400.0 + 1, 31 * 86_400.0]))
    t = START.timestamp() + draw(st.floats(0, 3600))
    events: list[Ev] = []
    for _ in range(draw(st.integers(1, size))):
        t += draw(gaps)
        events.append(
            Ev(
                t=t,
                subject=draw(st.sampled_from(["u-a", "u-b"])),
                records=draw(st.sampled_from([0, 1, 3, 25, 400])),
                resource=draw(st.sampled_from(["c-1", "c-2", "c-3", "c-4", "c-5"])),
                device=draw(st.sampled_from([None, "d-1", "d-2", "d-3"])),
                ip=draw(st.sampled_from([None, "10.0.0.1", "10.0.0.2"])),
                country=draw(st.sampled_from([None, "DE", "FR"])),
                effect=draw(
                    st.sampled_from([Effect.ALLOW, Effect.ALLOW, Effect.DENY, Effect.STEP_UP])
                ),
            )
        )
    return events


def replay(store: Any, events: Sequence[Ev], config: BehaviorConfig) -> None:
    """Feed events through ``store`` and compare every answer with the oracle."""
    for i, event in enumerate(events):
        when = datetime.datetime.fromtimestamp(event.t, datetime.UTC)
        got = dict(store.features(event.request(), when))
        want = oracle(events[:i], event, config)
        # the long features have their own reference (tests/test_behavior_long.py)
        assert tuple(got) == tuple(k for k in FEATURES if k not in OPTIONAL_FEATURES)
        assert {k: got[k] for k in want} == pytest.approx(want), f"event {i}: {event}"
        store.record(event.request(), event.decision())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_window_counts_equal_a_brute_force_recount(events: list[Ev]) -> None:
    config = BehaviorConfig()
    replay(MemoryBehaviorStore(config), events, config)


@settings(max_examples=60, deadline=None)
@given(streams(size=40, idle=True))
def test_recount_with_short_windows_and_ttl(events: list[Ev]) -> None:
    config = BehaviorConfig(
        minute_window=120,
        hour_window=1800,
        day_window=7200,
        buckets=120,
        seen_lookback=86_400,
        baseline_lookback=86_400,
        peer_days=7,
        ttl=30 * 86_400,  # the shortest: the 30-day windows
    )
    replay(MemoryBehaviorStore(config), events, config)


def _request(subject: str = "u-1", **context: Any) -> AccessRequest:
    return AccessRequest.from_mapping(
        {
            "subject": {"id": subject},
            "action": {"name": "read"},
            "resource": {"type": "customer_record", "id": context.pop("resource", "c-1")},
            "device": {"id": context.pop("device", "d-1")},
            "context": context,
        }
    )


def test_every_feature_is_returned() -> None:
    features = MemoryBehaviorStore().features(_request(), START)
    # the peer features are left out: the subject is in no group with statistics
    assert tuple(features) == tuple(k for k in FEATURES if k not in OPTIONAL_FEATURES)
    assert features["requests_1m"] == 1 and features["records_1h"] == 1
    assert features["available"] is True


def test_a_subject_without_history_sees_nothing_new() -> None:
    store = MemoryBehaviorStore()
    first = store.features(_request(ip="10.0.0.1", country="DE"), START)
    assert (first["new_device"], first["new_ip"], first["new_country"]) == (False, False, False)
    later = START + datetime.timedelta(minutes=5)
    second = store.features(_request(device="d-2", ip="10.0.0.1", country="BR"), later)
    assert (second["new_device"], second["new_ip"], second["new_country"]) == (True, False, True)
    third = store.features(_request(device="d-2", country="BR"), later)
    assert (third["new_device"], third["new_ip"], third["new_country"]) == (False, False, False)


def test_device_forgotten_after_the_lookback_is_new_again() -> None:
    store = MemoryBehaviorStore()
    store.features(_request(device="d-1"), START)
    store.features(_request(device="d-2"), START + datetime.timedelta(days=20))
    late = store.features(_request(device="d-1"), START + datetime.timedelta(days=31))
    assert late["new_device"] is True


@pytest.mark.parametrize(
    ("value", "counted"),
    [(None, 1), (0, 0), (7, 7), (7.0, 7), (True, 1), (-3, 1), ("12", 1), (2.5, 1), (10**12, 10**9)],
)
def test_records_from_context(value: Any, counted: int) -> None:
    context = {} if value is None else {"records": value}
    assert counted_records(context) == counted


def test_baseline_is_records_per_active_hour_excluding_the_current_one() -> None:
    store = MemoryBehaviorStore()
    for hour, records in ((0, 10), (1, 30), (5, 20)):
        store.features(_request(records=records), START + datetime.timedelta(hours=hour))
    now = START + datetime.timedelta(hours=6)
    assert store.features(_request(records=500), now)["baseline_records_per_hour"] == 20.0
    # the current hour never counts, however much it holds
    assert store.features(_request(records=5), now)["baseline_records_per_hour"] == 20.0


def test_refused_requests_give_back_their_records_and_count_as_refusals() -> None:
    store = MemoryBehaviorStore()
    req = _request(records=100)
    for effect in (Effect.DENY, Effect.STEP_UP, Effect.ALLOW):
        features = store.features(req, START)
        store.record(req, Decision(effect, (), Risk(), None, (), (), (), "r", "i", START))
    features = store.features(_request(records=0), START)
    assert features["records_1h"] == 100
    assert (features["denied_1h"], features["step_ups_1h"]) == (1, 1)


def test_record_access_corrects_the_count() -> None:
    store = MemoryBehaviorStore()
    store.features(_request(records=10), START)
    store.record_access(_request(), START, 90)
    assert store.features(_request(records=0), START)["records_1h"] == 100


def test_subjects_are_bounded_least_recently_used_first() -> None:
    store = MemoryBehaviorStore(BehaviorConfig(max_subjects=100))
    for i in range(250):
        store.features(_request(f"u-{i}"), START)
    assert len(store) == 100
    assert store.features(_request("u-249"), START)["requests_1m"] == 2
    assert store.features(_request("u-0"), START)["requests_1m"] == 1  # evicted, starts over


def test_idle_subjects_expire_after_the_ttl() -> None:
    config = BehaviorConfig(seen_lookback=3600, baseline_lookback=3600, ttl=30 * 86_400)
    store = MemoryBehaviorStore(config)
    store.features(_request("u-old"), START)
    later = START + datetime.timedelta(days=31)
    for i in range(3):
        store.features(_request(f"u-{i}"), later)
    assert len(store) == 3


def test_per_subject_state_is_bounded_whatever_the_rate() -> None:
    config = BehaviorConfig(max_resources=200, max_seen=8)
    store = MemoryBehaviorStore(config)
    t = START
    for i in range(20_000):
        t += datetime.timedelta(seconds=0.37)
        req = _request(records=3, resource=f"c-{i}", device=f"d-{i % 50}", ip=f"10.0.{i % 300}.1")
        features = store.features(req, t)
    assert features["distinct_resources_1h"] == 200  # saturates at the cap
    state = next(iter(store._subjects.values()))
    assert len(state.minute.data) <= 2 * 60 and len(state.hour.data) <= 5 * 60
    assert len(state.day.data) <= 3 * 60 and len(state.res) <= 200
    assert len(state.seen.keys) <= 3 * 8


def test_config_refuses_windows_coarser_than_one_sixtieth() -> None:
    with pytest.raises(ZeroTrustError, match="buckets"):
        BehaviorConfig(buckets=30)
    with pytest.raises(ZeroTrustError, match="divide"):
        BehaviorConfig(hour_window=3601)
    with pytest.raises(ZeroTrustError, match="ttl"):
        BehaviorConfig(ttl=60)
    with pytest.raises(ZeroTrustError, match="ttl"):  # the 30-day windows
        BehaviorConfig(ttl=30 * 86_400 - 1)
    with pytest.raises(ValueError, match="sometimes"):
        BehaviorConfig(on_store_error="sometimes")


def test_four_threads_times_ten_thousand_give_exact_counts() -> None:
    store = MemoryBehaviorStore()
    subjects = ("u-1", "u-2")
    requests = {s: _request(s, records=2) for s in subjects}
    deny = Decision(Effect.DENY, (), Risk(), None, (), (), (), "r", "i", START)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10_000):
                req = requests[subjects[(i + n) % 2]]
                store.features(req, START)
                if i % 10 == 0:
                    store.record(req, deny)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for subject in subjects:
        features: Mapping[str, Any] = store.features(_request(subject, records=0), START)
        assert features["requests_1m"] == 20_001
        assert features["requests_24h"] == 20_001
        assert features["denied_1h"] == 2_000
        assert features["records_1h"] == 2 * (20_000 - 2_000)


def test_counts_stay_exact_when_buckets_widen_past_every_array_type() -> None:
    store = MemoryBehaviorStore()
    big = 1_000_000_000  # MAX_RECORDS: widens the buckets from 'b' up to 'q'
    for i in range(5):
        store.features(_request(records=big), START + datetime.timedelta(seconds=i))
    store.record_access(_request(), START, -(3 * big))  # negative corrections fit too
    features = store.features(_request(records=0), START + datetime.timedelta(seconds=5))
    assert features["records_1h"] == features["records_24h"] == 2 * big
    assert features["requests_1m"] == 6


def test_bucket_ids_are_rebased_and_late_or_far_future_buckets_stay_exact() -> None:
    from array import array

    from zerotrust.behavior._windows import State, Window

    class S(State):
        __slots__ = ("w",)

    w = Window("w", 0, 1, 60)
    s = S(array("q", w.initial()))
    s.w = array("b")
    for at in range(0, 10_000, 7):  # offsets leave 'b' again and again: rebased
        w.advance(s, at)
        assert w.add(s, at, (at,))
        assert w.add(s, at - 50, (1,))  # a late, earlier bucket inside the window
        assert s.meta[2] == sum(s.w[i] for i in range(1, len(s.w), 2))
        assert w.value(s, at, 0) == at
    assert w.add(s, 10**12, (5,))  # far in the future: ids widen
    assert w.value(s, 10**12, 0) == 5 and s.meta[2] == sum(s.w[1::2])
    w.add(s, 10**12, (2**63 - 1,))  # past 64 bits: columns become lists
    assert w.value(s, 10**12, 0) == 2**63 + 4
    assert s.meta[2] == sum(s.w[1::2]) and isinstance(s.meta, list)


def _raw(subject: str, device: Any) -> AccessRequest:
    """A request built without validation, as a caller of the store may hand it."""
    return AccessRequest(
        Subject(subject), Action("read"), Resource("customer_record", "c-1"), {"id": device}, {}
    )


def test_an_untrackable_value_fails_its_request_alone_and_writes_nothing() -> None:
    store = MemoryBehaviorStore()
    store.features(_raw("mallory", "d-1"), START)
    with pytest.raises(BehaviorStoreError, match=r"device\.id"):
        store.features(_raw("mallory", {"d-1", "d-2"}), START)
    again = store.features(_raw("mallory", "d-1"), START)
    assert again["requests_1h"] == 2  # the refused request counted nowhere
    assert store.features(_raw("u-1", "d-9"), START)["requests_1h"] == 1
    pdp = PolicyDecisionPoint.from_texts(
        {
            "p.yaml": "policy: p\ntarget: {resources: [customer_record]}\nrules:\n"
            "  - {id: allow, effect: allow}\n"
        },
        clock=lambda: START,
        behavior=store,
    )
    # Through the PDP the request layer refuses such a value before the store sees it.
    with pytest.raises(RequestError, match=r"device\.id"):
        pdp.evaluate(_raw("mallory", [1, {1: "a", "b": 2}]))
    assert pdp.evaluate(_raw("u-1", "d-9")).effect is Effect.ALLOW


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 3), st.one_of(st.none(), untrackable_values())), max_size=40
    )
)
def test_untrackable_requests_never_change_anyones_features(steps: list[tuple[int, Any]]) -> None:
    """Interleave good requests of four subjects with requests whose device id cannot
    be tracked: every good request sees exactly what a store that never saw a bad one
    sees, and every bad one fails with BehaviorStoreError."""
    store, clean = MemoryBehaviorStore(), MemoryBehaviorStore()
    for i, (subject, bad) in enumerate(steps):
        now = START + datetime.timedelta(seconds=7 * i)
        if bad is not None:
            with pytest.raises(BehaviorStoreError):
                store.features(_raw(f"s{subject}", bad), now)
        else:
            good = _raw(f"s{subject}", f"d{i % 3}")
            assert store.features(good, now) == clean.features(good, now)
