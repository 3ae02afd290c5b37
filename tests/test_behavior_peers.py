"""Peer groups: group keys, the type-7 percentile, snapshot statistics without the
asking member, publication and snapshots in the memory store, hand-worked cases."""

from __future__ import annotations

import datetime
import math
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zerotrust import AccessRequest, BehaviorConfig, Decision, Effect, MemoryBehaviorStore, Risk
from zerotrust.behavior._windows import bucket
from zerotrust.behavior.features import FEATURES, OPTIONAL_FEATURES
from zerotrust.behavior.peers import (
    MAX_GROUPS,
    MAX_VALUE_CHARS,
    GroupStats,
    Snapshot,
    best_stats,
    figures_text,
    group_keys,
    member_figures,
    parse_figures,
    percentile,
)

START = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


def _request(subject: str, resource: str = "c-1", records: int = 1, **props: Any) -> AccessRequest:
    return AccessRequest.from_mapping(
        {
            "subject": {"id": subject, "properties": props},
            "action": {"name": "read"},
            "resource": {"type": "customer_record", "id": resource},
            "context": {"records": records},
        }
    )


# --- group keys -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("properties", "groupings", "keys"),
    [
        ({"department": "support"}, [("department",)], ("department=support",)),
        ({}, [("department",)], ()),
        ({"department": 7}, [("department",)], ()),
        ({"department": None}, [("department",)], ()),
        ({"department": {"a": "b"}}, [("department",)], ()),
        ({"department": ""}, [("department",)], ("department=",)),
        (
            {"department": ["b", 1, "a", "b", None]},
            [("department",)],
            ("department=b", "department=a"),
        ),
        ({"department": []}, [("department",)], ()),
        (
            {"department": "support", "roles": ["agent", "lead"]},
            [("department",), ("department", "roles")],
            (
                "department=support",
                "department=support&roles=agent",
                "department=support&roles=lead",
            ),
        ),
        ({"department": "support"}, [("department", "roles")], ()),  # roles absent: none
        ({"a=b": "c&d%", "x": "y"}, [("a=b", "x")], ("a%3Db=c%26d%25&x=y",)),
        ({"department": "s"}, [("department",), ("department",)], ("department=s",)),
        (
            {"department.name": "s", "department": {"name": "t"}},
            [("department.name",)],
            ("department.name=s",),
        ),
    ],
    ids=[
        "str",
        "absent",
        "int",
        "null",
        "object",
        "empty-string",
        "list-distinct-strs",
        "empty-list",
        "combined-product",
        "combined-missing",
        "escaped",
        "duplicate-grouping",
        "top-level-name",
    ],
)
def test_group_keys(
    properties: dict[str, Any], groupings: list[tuple[str, ...]], keys: tuple[str, ...]
) -> None:
    assert group_keys(properties, groupings) == keys


def test_group_keys_from_a_validated_request() -> None:
    request = _request("u-1", department=["a", "b"], roles="agent")
    groupings = BehaviorConfig(peer_groups=[["department", "roles"], "roles"]).peer_groups
    assert group_keys(request.subject.properties, groupings) == (
        "department=a&roles=agent",
        "department=b&roles=agent",
        "roles=agent",
    )


def test_a_subject_holds_at_most_sixteen_groups_the_first_ones() -> None:
    properties = {"a": [f"a{i}" for i in range(5)], "b": [f"b{i}" for i in range(5)], "c": "z"}
    keys = group_keys(properties, [("c",), ("a", "b")])
    assert len(keys) == MAX_GROUPS
    assert keys[0] == "c=z" and keys[1] == "a=a0&b=b0" and keys[-1] == "a=a2&b=b4"


_TEXT = st.text(alphabet="ab%=&", max_size=4)


def _unescape(text: str) -> str:
    return text.replace("%26", "&").replace("%3D", "=").replace("%25", "%")


@settings(max_examples=300, deadline=None)
@given(names=st.lists(_TEXT.filter(bool), min_size=1, max_size=3, unique=True), data=st.data())
def test_group_keys_are_injective(names: list[str], data: st.DataObject) -> None:
    """A key text reads back into exactly the names and values that made it."""
    values = {name: data.draw(_TEXT) for name in names}
    (key,) = group_keys(values, [tuple(names)])
    parts = [part.split("=") for part in key.split("&")]
    assert all(len(part) == 2 for part in parts)
    assert [(_unescape(n), _unescape(v)) for n, v in parts] == list(values.items())


# --- the percentile -----------------------------------------------------------------------


def _reference(xs: list[float], q: float) -> float:
    """Hyndman-Fan type 7 as the contract writes it, on a materialised sorted list."""
    xs = sorted(xs)
    n = len(xs)
    h = (n - 1) * q
    f = math.floor(h)
    if f == n - 1:
        return xs[n - 1]
    return xs[f] + (h - f) * (xs[f + 1] - xs[f])


FIGURES = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(xs=st.lists(FIGURES, min_size=1, max_size=40), q=st.sampled_from([0.0, 0.5, 0.95, 1.0]))
def test_percentile_is_the_contract_formula_and_close_to_the_exact_one(
    xs: list[float], q: float
) -> None:
    xs.sort()
    got = percentile(xs, q)
    assert got == _reference(xs, q)  # bit for bit
    hq = (len(xs) - 1) * Fraction(q)  # exact arithmetic: within float rounding
    lo = math.floor(hq)
    exact = Fraction(xs[lo]) + (hq - lo) * (
        Fraction(xs[min(lo + 1, len(xs) - 1)]) - Fraction(xs[lo])
    )
    assert abs(Fraction(got) - exact) <= Fraction(max(xs)) * Fraction(1, 2**48) + Fraction(1, 2**60)
    assert xs[0] <= got <= xs[-1]


@settings(max_examples=300, deadline=None)
@given(
    xs=st.lists(FIGURES, min_size=2, max_size=40), q=st.sampled_from([0.5, 0.95]), data=st.data()
)
def test_percentile_without_one_is_the_percentile_of_the_others(
    xs: list[float], q: float, data: st.DataObject
) -> None:
    xs.sort()
    k = data.draw(st.integers(0, len(xs) - 1))
    others = xs[:k] + xs[k + 1 :]
    assert percentile(xs, q, k) == _reference(others, q)


def test_percentile_hand_worked() -> None:
    assert percentile([10.0] * 8 + [40.0], 0.95) == 10.0 + (8 * 0.95 - 7) * 30.0  # ~28
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([1.0, 2.0, 3.0], 0.5) == 2.0
    assert percentile([5.0], 0.95) == 5.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


# --- snapshots ------------------------------------------------------------------------------


ENTRIES = st.dictionaries(
    st.sampled_from([f"u-{i}" for i in range(12)]),
    st.tuples(FIGURES, FIGURES, st.integers(90, 100)),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(
    entries=ENTRIES, min_peers=st.integers(2, 6), me=st.sampled_from([f"u-{i}" for i in range(13)])
)
def test_snapshot_statistics_leave_the_subject_out_and_need_min_peers(
    entries: dict[str, tuple[float, float, int]], min_peers: int, me: str
) -> None:
    snapshot = Snapshot("g", entries.items(), day=100, peer_days=5, taken=0.0)
    kept = {m: f for m, f in entries.items() if f[2] >= 95}  # stale entries dropped
    assert len(snapshot) == len(kept)
    others = [f for m, f in kept.items() if m != me]
    stats = snapshot.stats(me, min_peers)
    if len(others) < min_peers:
        assert stats is None
        return
    assert stats == GroupStats(
        "g",
        len(others),
        _reference([f[0] for f in others], 0.5),
        _reference([f[0] for f in others], 0.95),
        _reference([f[1] for f in others], 0.5),
        _reference([f[1] for f in others], 0.95),
    )
    assert snapshot.stats(me, min_peers) is stats  # remembered for the snapshot's life
    assert snapshot.stats(me, min_peers + 1) == (stats if len(others) > min_peers else None)
    # the subject's own figures never count: the group without it gives the same
    without = Snapshot(
        "g", [(m, f) for m, f in kept.items() if m != me], day=100, peer_days=5, taken=0.0
    )
    assert without.stats(me, min_peers) == stats


@settings(max_examples=200, deadline=None)
@given(entries=ENTRIES, min_peers=st.integers(2, 4))
def test_every_member_of_one_snapshot_gets_its_own_statistics(
    entries: dict[str, tuple[float, float, int]], min_peers: int
) -> None:
    """Answers are remembered per snapshot: asking for each member in turn (and for
    outsiders in between) gives each exactly the statistics of the others."""
    snapshot = Snapshot("g", entries.items(), day=100, peer_days=20, taken=0.0)
    for me in [*entries, "outsider", *reversed(entries)]:
        others = [f for m, f in entries.items() if m != me]
        stats = snapshot.stats(me, min_peers)
        if len(others) < min_peers:
            assert stats is None
            continue
        assert stats is not None and stats.members == len(others)
        assert (stats.records_median, stats.records_p95) == (
            _reference([f[0] for f in others], 0.5),
            _reference([f[0] for f in others], 0.95),
        )
        assert (stats.distinct_median, stats.distinct_p95) == (
            _reference([f[1] for f in others], 0.5),
            _reference([f[1] for f in others], 0.95),
        )


def test_best_group_is_the_largest_records_median_first_on_ties() -> None:
    a = GroupStats("a", 5, 10.0, 20.0, 1.0, 2.0)
    b = GroupStats("b", 5, 30.0, 40.0, 1.0, 2.0)
    c = GroupStats("c", 9, 30.0, 50.0, 3.0, 4.0)
    assert best_stats([a, None, b, c]) is b
    assert best_stats([None, None]) is None


def test_figures_text_round_trips_exactly() -> None:
    for rpd, dpd in ((33.0, 2.0), (0.0, 1e9), (41.0, 0.0)):
        assert parse_figures(figures_text(rpd, dpd, 20_512)) == (rpd, dpd, 20_512)
        assert parse_figures(figures_text(rpd, dpd, -3).encode()) == (rpd, dpd, -3)
    for bad in ("1.0 2.0", "x 1 2", "1 2 3.5", "nan 1 2", "1 inf 2", b"\xff 1 2", ""):
        assert parse_figures(bad) is None
    # figures no store writes: negative, beyond what requests can count
    for bad in ("-1.0 2.0 5", "1.0 1e300 5", "1.7e308 1 5", "40.5 1.0 5", "1_000.0 1.0 5"):
        assert parse_figures(bad) is None


def test_published_figures_are_whole_numbers_so_no_average_gives_a_total_away() -> None:
    """98 records over 3 days is 32.67 a day, from which 98 could be read back: the
    published figure is 33 (halves up, never below 0)."""
    assert member_figures(98, 10, 3) == (33.0, 3.0)
    assert member_figures(5, 1, 2) == (3.0, 1.0)  # 2.5 and 0.5 round up
    assert member_figures(-40, 0, 2) == (0.0, 0.0)  # corrections never go below 0
    assert member_figures(1, 1, 0) is None


def test_member_figures_need_an_active_day() -> None:
    assert member_figures(0, 0, 0) is None
    assert member_figures(30, 9, 3) == (10.0, 3.0)


# --- the memory store ---------------------------------------------------------------------


def _day_of(
    store: MemoryBehaviorStore,
    subject: str,
    when: datetime.datetime,
    n: int,
    records: int,
    **props: Any,
) -> dict[str, Any]:
    features: dict[str, Any] = {}
    for i in range(n):
        at = when + datetime.timedelta(seconds=i)
        features = dict(store.features(_request(subject, f"c-{subject}-{i}", records, **props), at))
    return features


def test_ten_agents_one_reads_four_times_as_much() -> None:
    """A week of history: nine agents read 10 customers a day, one reads 40. On day 8
    she stands out 4x against her peers' median; a normal agent 1x."""
    store = MemoryBehaviorStore()
    agents = [f"agent-{i}" for i in range(10)]
    for day in range(8):
        when = START + day * DAY
        if day == 7:
            when += datetime.timedelta(hours=1)  # 25 h after day 6: nothing of it in 24 h
        for agent in agents:
            n = 40 if agent == "agent-0" else 10
            features = _day_of(store, agent, when, n, 1, department="support")
            if day < 7:
                continue
            peers = features["peers"]
            assert peers["group"] == "department=support" and peers["members"] == 9
            if agent == "agent-0":
                assert features["records_24h"] == features["distinct_resources_24h"] == 40
                assert peers["records_per_day"] == {"median": 10.0, "p95": 10.0}
                assert peers["distinct_per_day"] == {"median": 10.0, "p95": 10.0}
                assert features["records_24h_vs_peers"] == 4.0
                assert features["distinct_resources_24h_vs_peers"] == 4.0
            else:
                assert features["baseline_records_per_day"] == 10.0
                assert peers["records_per_day"] == {
                    "median": 10.0,
                    "p95": percentile([10.0] * 8 + [40.0], 0.95),
                }
                assert features["records_24h_vs_peers"] == 1.0
            assert tuple(features) == FEATURES
            assert features["baseline_records_per_day"] == (40.0 if agent == "agent-0" else 10.0)
            assert features["active_days_30d"] == 8 and features["records_7d"] == 7 * n


def test_peer_features_are_absent_below_min_peers_and_without_groups() -> None:
    store = MemoryBehaviorStore(BehaviorConfig(min_peers=3))
    for day in range(3):
        for agent in ("a", "b", "c"):
            features = _day_of(store, agent, START + day * DAY, 2, 1, department="x")
    # each sees two others: below three
    assert not OPTIONAL_FEATURES & set(features)
    late = START + 3 * DAY
    for agent in ("a", "b", "c", "d"):
        features = _day_of(store, agent, late, 1, 1, department="x")
    assert features["peers"]["members"] == 3  # d has no history: a, b and c count
    assert "peers" not in store.features(_request("a"), late)  # no property, no group


def test_a_zero_median_leaves_its_ratio_out() -> None:
    store = MemoryBehaviorStore(BehaviorConfig(min_peers=2))
    for day in range(2):
        for agent in ("a", "b", "c"):
            _day_of(store, agent, START + day * DAY, 1, 0, department="x")  # 0 records
    features = dict(store.features(_request("c", records=5, department="x"), START + 2 * DAY))
    assert features["peers"]["records_per_day"]["median"] == 0.0
    assert "records_24h_vs_peers" not in features
    assert features["distinct_resources_24h_vs_peers"] == features["distinct_resources_24h"] / 1.0


def test_figures_are_published_once_a_day_and_snapshots_refresh_after_peer_refresh() -> None:
    store = MemoryBehaviorStore(BehaviorConfig(min_peers=2, peer_refresh=600.0))
    for agent in ("a", "b", "c"):
        _day_of(store, agent, START, 3, 5, department="x")
    assert store.peer_refreshes == 1  # taken at the first request, kept since
    assert store._tables == {}  # no history before today: nobody published
    day1 = START + DAY
    first = dict(store.features(_request("a", records=1, department="x"), day1))
    # 15 records and 3 resources on its one active day, published for day 1
    assert store._tables["department=x"] == {
        ("user", "a"): (15.0, 3.0, bucket(day1.timestamp(), 86_400))
    }
    assert "peers" not in first  # the snapshot of day 1 has a alone
    assert store.peer_refreshes == 2
    for agent in ("b", "c"):
        store.features(
            _request(agent, records=1, department="x"), day1 + datetime.timedelta(seconds=1)
        )
    # b's and c's figures are in the table, not yet in the snapshot (600 s)
    assert len(store._tables["department=x"]) == 3
    before = store.features(_request("a", department="x"), day1 + datetime.timedelta(seconds=599))
    assert "peers" not in before and store.peer_refreshes == 2
    after = store.features(_request("a", department="x"), day1 + datetime.timedelta(seconds=600))
    assert after["peers"]["members"] == 2 and store.peer_refreshes == 3
    # later requests of the day publish nothing: the table entry stays as it was
    store.record_access(_request("a"), day1 - datetime.timedelta(hours=1), 1_000)
    store.features(_request("a", department="x"), day1 + datetime.timedelta(hours=2))
    assert store._tables["department=x"][("user", "a")][:2] == (15.0, 3.0)


def test_a_member_without_history_in_the_past_days_leaves_its_groups() -> None:
    store = MemoryBehaviorStore(BehaviorConfig(peer_days=2))
    store.features(_request("a", department="x"), START)
    store.features(_request("a", department="x"), START + DAY)
    assert ("user", "a") in store._tables["department=x"]
    store.features(_request("a", department="x"), START + 4 * DAY)  # days 2 and 3 idle
    assert store._tables == {}


def test_stale_entries_are_dropped_by_a_snapshot() -> None:
    store = MemoryBehaviorStore(BehaviorConfig(peer_days=2, peer_refresh=1.0))
    for day in range(2):
        store.features(_request("a", department="x"), START + day * DAY)
    store.features(_request("b", department="x"), START + 3 * DAY)  # a published on day 1
    assert ("user", "a") in store._tables.get("department=x", {})
    store.features(_request("b", department="x"), START + 4 * DAY)  # day 1 < 4 - 2: stale
    assert ("user", "a") not in store._tables.get("department=x", {})


def test_a_subject_that_changes_groups_stays_in_the_old_one_until_stale() -> None:
    store = MemoryBehaviorStore(BehaviorConfig(peer_days=3))
    for day in range(2):
        store.features(_request("a", department="x"), START + day * DAY)
    store.features(_request("a", department="y"), START + 2 * DAY)
    assert set(store._tables) == {"department=x", "department=y"}
    store.features(_request("a", department="y"), START + 5 * DAY)  # the x entry is stale
    assert set(store._tables) == {"department=y"}


@pytest.mark.parametrize("how", ["lru", "ttl"])
def test_a_subject_that_goes_leaves_its_groups_tables(how: str) -> None:
    if how == "lru":
        config = BehaviorConfig(max_subjects=3, min_peers=2)
    else:
        config = BehaviorConfig(min_peers=2)
    store = MemoryBehaviorStore(config)
    for day in range(2):
        for agent in ("a", "b", "c"):
            store.features(_request(agent, department="x"), START + day * DAY)
    assert set(store._tables["department=x"]) == {("user", s) for s in "abc"}
    if how == "lru":
        store.features(_request("d", department="y"), START + DAY)  # evicts a
        assert set(store._tables["department=x"]) == {("user", "b"), ("user", "c")}
        assert len(store) == 3
    else:
        later = START + DAY + datetime.timedelta(seconds=config.effective_ttl + 1)
        store.features(_request("a", department="y"), later)  # a forgotten, then new
        store.features(_request("d", department="y"), later)  # the idle b and c go too
        assert "department=x" not in store._tables
        assert set(store._tables.get("department=y", {})) == set()


def test_snapshots_are_bounded_to_those_still_read() -> None:
    store = MemoryBehaviorStore(BehaviorConfig(peer_refresh=10.0))
    for i in range(50):
        store.features(
            _request(f"u-{i}", department=f"d{i}"), START + datetime.timedelta(seconds=i)
        )
    assert len(store._snapshots) <= 11
    assert store.peer_refreshes == 50


def test_outcomes_never_touch_peer_state() -> None:
    store = MemoryBehaviorStore()
    request = _request("a", department="x")
    store.features(request, START)
    deny = Decision(Effect.DENY, (), Risk(), None, (), (), (), "r", "i", START)
    store.record(request, deny)
    assert store.peer_refreshes == 1 and store._tables == {}


@given(
    st.text(min_size=0, max_size=2_000) | st.just("%" * 100_000),
    st.lists(st.text(max_size=400), max_size=20),
)
def test_group_keys_stay_short_whatever_a_subject_holds(department: str, roles: list[str]) -> None:
    """A huge or %-laden property value (attacker-sized) cannot make a huge group key:
    values longer than MAX_VALUE_CHARS once escaped are named by their digest, and two
    values never share a key."""
    groupings = (("department",), ("department", "roles"))
    keys = group_keys({"department": department, "roles": roles}, groupings)
    bound = len("department=&roles=") + 2 * MAX_VALUE_CHARS
    assert keys and all(len(key) <= bound for key in keys)
    other = group_keys({"department": department + "x", "roles": roles}, groupings)
    assert not set(keys) & set(other)


def test_a_long_value_is_named_by_its_digest_which_no_literal_value_can_spell() -> None:
    long = "a" * (MAX_VALUE_CHARS + 1)
    (key,) = group_keys({"department": long}, (("department",),))
    assert key.startswith("department=%sha256:") and len(key) == len("department=%sha256:") + 64
    (spelled,) = group_keys({"department": key.split("=", 1)[1]}, (("department",),))
    assert spelled != key  # the literal % is escaped


_GROUPING_NAMES = st.sampled_from(["department", "team", "roles"])
_GROUPING_VALUES = (
    st.none()
    | st.sampled_from(["a", "b", "a=b", "%", "x" * 200])
    | st.lists(st.sampled_from(["a", "b", 1]), max_size=3)
)


@settings(max_examples=200)
@given(
    groupings=st.lists(st.lists(_GROUPING_NAMES, min_size=1, max_size=2), min_size=1, max_size=3),
    people=st.lists(st.dictionaries(_GROUPING_NAMES, _GROUPING_VALUES), min_size=1, max_size=8),
)
def test_remembered_group_keys_are_the_computed_ones(
    groupings: list[list[str]], people: list[dict[str, Any]]
) -> None:
    """The memory store remembers a subject's group keys by its property values: every
    answer, first or remembered, is what group_keys computes."""
    store = MemoryBehaviorStore(BehaviorConfig(peer_groups=groupings))
    for properties in [*people, *people]:
        assert store._groups_of(properties) == group_keys(properties, groupings)
