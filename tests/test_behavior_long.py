"""The long-window and peer features against a naive reference model.

The model keeps every event and recomputes each feature from the full list at every
request: days and hours by definition, the peer tables by replaying the publication
and snapshot rules with plain dicts and sorted lists. Random streams over weeks, with
several subjects, groups, resources, refusals and corrections (also for past days),
are compared feature by feature, floats exactly.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zerotrust import AccessRequest, BehaviorConfig, Decision, Effect, MemoryBehaviorStore, Risk
from zerotrust.behavior._windows import bucket
from zerotrust.behavior.features import FEATURES

START = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC).timestamp()
LONG = (
    "records_7d",
    "records_30d",
    "distinct_resources_24h",
    "distinct_resources_7d",
    "distinct_resources_30d",
    "active_days_30d",
    "baseline_records_per_day",
    "baseline_distinct_per_day",
)


@attrs.frozen
class Req:
    """A request and the effect its decision got."""

    t: float
    subject: str
    records: int
    resource: str
    department: Any  # a str, a list, something else, or None (absent)
    effect: Effect

    def request(self) -> AccessRequest:
        properties = {} if self.department is None else {"department": self.department}
        return AccessRequest.from_mapping(
            {
                "subject": {"id": self.subject, "properties": properties},
                "action": {"name": "read"},
                "resource": {"type": "customer_record", "id": self.resource},
                "context": {"records": self.records},
            }
        )


@attrs.frozen
class Fix:
    """``record_access``: ``records`` added for the subject at ``at`` (maybe earlier)."""

    t: float
    at: float
    subject: str
    records: int


Event = Req | Fix


def _day(t: float) -> int:
    return bucket(t, 86_400)


def _hour(t: float) -> int:
    return bucket(t, 3600)


def _groups(department: Any) -> list[str]:
    """The contract's group keys for the one grouping ``department``, written out."""
    if type(department) is str:
        values = [department]
    elif type(department) is list:
        values = list(dict.fromkeys(v for v in department if type(v) is str))
    else:
        values = []
    return [
        "department=" + v.replace("%", "%25").replace("=", "%3D").replace("&", "%26")
        for v in values
    ]


def _type7(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    n = len(xs)
    h = (n - 1) * q
    f = math.floor(h)
    return xs[n - 1] if f == n - 1 else xs[f] + (h - f) * (xs[f + 1] - xs[f])


class Model:
    """Every event kept; every feature recomputed from all of them."""

    def __init__(self, config: BehaviorConfig) -> None:
        self.config = config
        self.events: list[Event] = []
        self.born: dict[str, int] = {}  # where a subject's remembered events start
        self.last: dict[str, float] = {}  # its newest request (or the fix that made it)
        self.tables: dict[str, dict[str, tuple[float, float, int]]] = {}
        self.snapshots: dict[str, tuple[float, dict[str, tuple[float, float, int]]]] = {}
        self.refreshes = 0

    def _mine(self, subject: str) -> list[Event]:
        return [e for e in self.events[self.born.get(subject, 0) :] if e.subject == subject]

    def _start(self, subject: str, t: float) -> None:
        """A subject seen for the first time, or idle longer than the TTL: forgotten."""
        if subject not in self.last or self.last[subject] < t - self.config.effective_ttl:
            self.born[subject] = len(self.events)
            self.last[subject] = t
            for table in self.tables.values():
                table.pop(subject, None)

    def _records_by_day(self, mine: list[Event]) -> dict[int, int]:
        out: dict[int, int] = {}
        for e in mine:
            if isinstance(e, Req):
                out[_day(e.t)] = out.get(_day(e.t), 0) + e.records
                if e.effect is not Effect.ALLOW and e is not mine[-1]:
                    out[_day(e.t)] -= e.records  # taken back when recorded
            else:
                out[_day(e.at)] = out.get(_day(e.at), 0) + e.records
        return out

    def features(self, req: Req) -> dict[str, Any]:
        self._start(req.subject, req.t)
        self.last[req.subject] = max(self.last[req.subject], req.t)
        earlier = [e for e in self._mine(req.subject) if isinstance(e, Req)]
        first_today = all(_day(e.t) < _day(req.t) for e in earlier)
        self.events.append(req)
        mine = self._mine(req.subject)
        today, hour = _day(req.t), _hour(req.t)
        records = self._records_by_day(mine)
        requests = [e for e in mine if isinstance(e, Req)]
        last_seen: dict[str, int] = {}
        for e in requests:
            last_seen[e.resource] = _hour(e.t)
        past = range(today - self.config.peer_days, today)
        active = len({_day(e.t) for e in requests} & set(past))
        r_past = sum(records.get(d, 0) for d in past)
        d_past = sum(len({e.resource for e in requests if _day(e.t) == d}) for d in past)
        out: dict[str, Any] = {
            "records_7d": sum(v for d, v in records.items() if d > today - 7),
            "records_30d": sum(v for d, v in records.items() if d > today - 30),
            "distinct_resources_24h": sum(1 for h in last_seen.values() if h > hour - 24),
            "distinct_resources_7d": sum(1 for h in last_seen.values() if h > hour - 168),
            "distinct_resources_30d": sum(1 for h in last_seen.values() if h > hour - 720),
            "active_days_30d": len({_day(e.t) for e in requests if _day(e.t) > today - 30}),
            "baseline_records_per_day": r_past / active if active else 0.0,
            "baseline_distinct_per_day": d_past / active if active else 0.0,
        }
        groups = _groups(req.department)
        if first_today:
            for g in groups:
                if active:
                    self.tables.setdefault(g, {})[req.subject] = (
                        _whole(r_past / active),
                        _whole(d_past / active),
                        today,
                    )
                else:
                    self.tables.get(g, {}).pop(req.subject, None)
        best: dict[str, Any] | None = None
        for g in groups:
            taken = self.snapshots.get(g)
            if taken is None or req.t >= taken[0] + self.config.peer_refresh:
                table = self.tables.setdefault(g, {})
                for member in [m for m, f in table.items() if f[2] < today - self.config.peer_days]:
                    del table[member]
                taken = (req.t, dict(table))
                self.snapshots[g] = taken
                self.refreshes += 1
            others = [f for m, f in taken[1].items() if m != req.subject]
            if len(others) < self.config.min_peers:
                continue
            rpd, dpd = [f[0] for f in others], [f[1] for f in others]
            stats = {
                "group": g,
                "members": len(others),
                "records_per_day": {"median": _type7(rpd, 0.5), "p95": _type7(rpd, 0.95)},
                "distinct_per_day": {"median": _type7(dpd, 0.5), "p95": _type7(dpd, 0.95)},
            }
            if (
                best is None
                or stats["records_per_day"]["median"] > best["records_per_day"]["median"]
            ):
                best = stats
        if best is not None:
            out["peers"] = best
        return out

    def fix(self, fix: Fix) -> None:
        if fix.subject not in self.last:  # only a fix for an unknown subject makes one
            self._start(fix.subject, fix.at)
        self.events.append(fix)

    def fixable(self, subject: str, t: float) -> bool:
        """Whether a fix for ``subject`` at ``t`` is one the model follows exactly: for
        a subject never seen, or one that made a request within 20 days (the store may
        drop a subject idle past the TTL early, before its next request)."""
        return subject not in self.last or self.last[subject] >= t - 20 * 86_400


# Mostly one department, so groups fill up; now and then lists, others and junk.
DEPARTMENTS = st.sampled_from(
    ["a", "a", "a", "a", "b", ["a", "b"], ["b", 3, "b"], None, 7, "a&b=%"]
)
# Mostly within a day, often across midnight, now and then idle for days or weeks.
GAPS = st.sampled_from(
    [
        *(0.0, 1.0, 600.0, 3599.0, 3600.0, 3601.0, 7200.0, 14_400.0),
        *(0.0, 1.0, 600.0, 3600.0, 7200.0, 14_400.0, 43_200.0),
        *(86_399.0, 86_400.0, 86_401.0, 43_200.0, 64_800.0),
        *(3 * 86_400.0, 6 * 86_400.0, 8 * 86_400.0 + 7.0, 25 * 86_400.0 + 1.0),
    ]
)


@st.composite
def streams(draw: st.DrawFn, size: int = 80) -> list[Event]:
    t = START + draw(st.floats(0, 86_400))
    subjects = [f"u-{i}" for i in range(draw(st.integers(1, 5)))]
    departments = {s: draw(DEPARTMENTS) for s in subjects}
    events: list[Event] = []
    for _ in range(draw(st.integers(1, size))):
        t += draw(GAPS)
        subject = draw(st.sampled_from(subjects))
        if draw(st.integers(0, 9)) == 0:  # a subject moves now and then
            departments[subject] = draw(DEPARTMENTS)
        if draw(st.integers(0, 7)) == 0:
            back = draw(st.sampled_from([0.0, 3600.0, 86_400.0, 8 * 86_400.0, 29 * 86_400.0]))
            events.append(Fix(t, t - back, subject, draw(st.sampled_from([-400, -3, 5, 25]))))
            continue
        events.append(
            Req(
                t=t,
                subject=subject,
                records=draw(st.sampled_from([0, 1, 3, 25, 400])),
                resource=draw(st.sampled_from([f"c-{i}" for i in range(8)])),
                department=departments[subject],
                effect=draw(
                    st.sampled_from([Effect.ALLOW, Effect.ALLOW, Effect.DENY, Effect.STEP_UP])
                ),
            )
        )
    return events


@st.composite
def workdays(draw: st.DrawFn) -> list[Event]:
    """Office work: several subjects, most of them in one department, a few requests
    each on most days, so groups have members with history."""
    subjects = [f"u-{i}" for i in range(draw(st.integers(3, 7)))]
    departments = {s: draw(DEPARTMENTS) for s in subjects}
    timed: list[tuple[float, int, Event]] = []
    day0 = START - START % 86_400 + draw(st.sampled_from([0, 3 * 86_400]))
    for day in range(draw(st.integers(2, 12))):
        if draw(st.integers(0, 6)) == 0:
            continue  # a day off for everyone
        for subject in subjects:
            if draw(st.integers(0, 12)) == 0:
                departments[subject] = draw(DEPARTMENTS)
            for _ in range(draw(st.sampled_from([0, 1, 1, 2, 3]))):
                t = (
                    day0
                    + day * 86_400
                    + draw(st.sampled_from([0.0, 1.0, 3600.0, 36_000.0, 86_399.0]))
                )
                effect = draw(st.sampled_from([Effect.ALLOW, Effect.ALLOW, Effect.DENY]))
                records = draw(st.sampled_from([0, 1, 3, 25]))
                resource = draw(st.sampled_from([f"c-{i}" for i in range(5)]))
                event = Req(t, subject, records, resource, departments[subject], effect)
                timed.append((t, len(timed), event))
            if draw(st.integers(0, 9)) == 0:
                t = day0 + day * 86_400 + 43_200.0
                back = draw(st.sampled_from([0.0, 86_400.0, 3 * 86_400.0]))
                timed.append(
                    (t, len(timed), Fix(t, t - back, subject, draw(st.sampled_from([-3, 9]))))
                )
    return [event for _, _, event in sorted(timed, key=lambda x: (x[0], x[1]))]


CONFIGS = st.builds(
    BehaviorConfig,
    min_peers=st.sampled_from([2, 2, 3]),
    peer_days=st.sampled_from([1, 3, 7, 7, 28, 40]),
    peer_refresh=st.sampled_from([1.0, 1.0, 3600.0, 2 * 86_400.0]),
)


def replay(events: Sequence[Event], config: BehaviorConfig) -> None:
    store, model = MemoryBehaviorStore(config), Model(config)
    for i, event in enumerate(events):
        if isinstance(event, Fix):
            if not model.fixable(event.subject, event.t):
                continue
            request = Req(event.t, event.subject, 0, "c-0", None, Effect.ALLOW).request()
            store.record_access(
                request, datetime.datetime.fromtimestamp(event.at, datetime.UTC), event.records
            )
            model.fix(event)
            continue
        when = datetime.datetime.fromtimestamp(event.t, datetime.UTC)
        got = dict(store.features(event.request(), when))
        want = model.features(event)
        assert {k: got[k] for k in LONG} == {k: want[k] for k in LONG}, f"event {i}: {event}"
        assert got.get("peers") == want.get("peers"), f"event {i}: {event}"
        peers = want.get("peers")
        if peers is None:
            assert (
                "records_24h_vs_peers" not in got and "distinct_resources_24h_vs_peers" not in got
            )
        else:
            median = peers["records_per_day"]["median"]
            assert got.get("records_24h_vs_peers") == (
                got["records_24h"] / median if median else None
            )
            median = peers["distinct_per_day"]["median"]
            assert got.get("distinct_resources_24h_vs_peers") == (
                got["distinct_resources_24h"] / median if median else None
            )
        assert list(got) == [k for k in FEATURES if k in got]  # the documented order
        when_decided = datetime.datetime.fromtimestamp(event.t, datetime.UTC)
        decision = Decision(event.effect, (), Risk(), None, (), (), (), "test", "id", when_decided)
        store.record(event.request(), decision)
    assert store.peer_refreshes == model.refreshes


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams(), config=CONFIGS)
def test_long_and_peer_features_equal_the_reference_model(
    events: list[Event], config: BehaviorConfig
) -> None:
    replay(events, config)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams(size=200), config=CONFIGS)
def test_long_streams_over_months(events: list[Event], config: BehaviorConfig) -> None:
    replay(events, config)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=workdays(), config=CONFIGS)
def test_peer_groups_over_workdays_equal_the_reference_model(
    events: list[Event], config: BehaviorConfig
) -> None:
    replay(events, config)


# --- hand-worked cases ----------------------------------------------------------------------


def _req(subject: str = "u-1", resource: str = "c-1", records: int = 1) -> AccessRequest:
    return Req(0.0, subject, records, resource, None, Effect.ALLOW).request()


def _at(days: float = 0, hours: float = 0) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(START + days * 86_400 + hours * 3600, datetime.UTC)


def test_records_over_days_with_corrections_for_past_days() -> None:
    store = MemoryBehaviorStore()
    store.features(_req(records=10), _at(0))
    store.features(_req(records=20), _at(1))
    store.record_access(_req(), _at(0), -4)  # day 0 read 6, not 10
    deny = Decision(Effect.DENY, (), Risk(), None, (), (), (), "r", "i", _at(1))
    store.record(_req(records=20), deny)  # day 1's 20 taken back
    features = store.features(_req(records=1), _at(2))
    assert (features["records_7d"], features["records_30d"]) == (7, 7)
    assert features["baseline_records_per_day"] == 3.0  # (6 + 0) / 2 active days
    assert features["active_days_30d"] == 3
    later = store.features(_req(records=0), _at(8))
    assert (later["records_7d"], later["records_30d"]) == (1, 7)  # days 0 and 1 left 7 days
    assert store.features(_req(records=0), _at(32))["records_30d"] == 0  # day 2 left too


def test_distinct_resources_over_hours_and_per_day() -> None:
    store = MemoryBehaviorStore()
    for i in range(5):
        store.features(_req(resource=f"c-{i}"), _at(0))
    store.features(_req(resource="c-0"), _at(0, 5))  # once per day it is requested
    features = store.features(_req(resource="c-9"), _at(1))
    assert features["distinct_resources_24h"] == 2  # c-0 (last at hour 5 of day 0), c-9
    assert features["distinct_resources_7d"] == features["distinct_resources_30d"] == 6
    assert features["baseline_distinct_per_day"] == 5.0
    features = store.features(_req(resource="c-0"), _at(8))
    assert (features["distinct_resources_7d"], features["distinct_resources_30d"]) == (1, 6)
    assert features["baseline_distinct_per_day"] == 3.0  # (5 + 1) / 2 active days


def test_distinct_counts_saturate_at_max_distinct_and_old_entries_go() -> None:
    store = MemoryBehaviorStore(BehaviorConfig(max_distinct=50))
    for i in range(80):
        features = store.features(_req(resource=f"c-{i}"), _at(0, i / 100))
    assert features["distinct_resources_24h"] == features["distinct_resources_30d"] == 50
    state = next(iter(store._subjects.values()))
    assert len(state.long.keys) == 50 and sum(state.ln) == 50
    # a resource now and then keeps the subject; once its first resources are 31
    # days old (30 days and a day of slack) they are dropped together
    for day in (10, 20, 30):
        features = store.features(_req(resource=f"c-day-{day}"), _at(day))
    assert len(state.long.keys) == 50 and features["distinct_resources_30d"] == 3
    features = store.features(_req(resource="c-day-31"), _at(31))
    assert features["distinct_resources_30d"] == len(state.long.keys) == 4
    assert features["distinct_resources_7d"] == 2 and features["distinct_resources_24h"] == 1


def test_peer_days_longer_than_thirty() -> None:
    store = MemoryBehaviorStore(BehaviorConfig(peer_days=40))
    store.features(_req(records=70), _at(0))
    features = store.features(_req(records=10), _at(35))
    assert features["records_30d"] == 10
    assert features["baseline_records_per_day"] == 70.0 and features["active_days_30d"] == 1
    assert store.features(_req(records=0), _at(41))["baseline_records_per_day"] == 10.0


def _whole(value: float) -> float:
    """A published figure: the nearest whole number, halves up, never below 0."""
    return float(max(0, math.floor(value + 0.5)))
