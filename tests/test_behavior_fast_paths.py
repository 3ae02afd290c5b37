"""The memory store's fast paths for the newest bucket (in-place adds, ``Hours.count``,
``Recent.see``, ``Seen.check``'s early answer, today's row of ``Days``) against the
general paths they stand for: the same features and the same stored numbers for any
stream, including late (out-of-order) requests, corrections, totals that widen the
arrays past 8, 16, 32 and 64 bits, many subjects and eviction."""

from __future__ import annotations

import datetime
from array import array
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zerotrust import AccessRequest, BehaviorConfig, MemoryBehaviorStore
from zerotrust.behavior import _long, _windows
from zerotrust.behavior._windows import Hours, Recent, Seen, State

START = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC).timestamp()


def _seen_check_walk(self: Seen, state: State, kind: int, key: int, hour: int) -> bool:
    """``Seen.check`` without its early answer: the full walk only."""
    kept: array[int] = getattr(state, self.name)
    cutoff = hour - self.span
    end = 0
    while end < len(kept) and kept[end + 1] <= cutoff:
        end += 3
    if end:
        del kept[:end]
    keys = kept[::3]
    if key in keys:
        i = 3 * keys.index(key)
        if kept[i + 1] >= hour:
            return False
        del kept[i : i + 3]
        new = False
    else:
        kinds = kept[2::3]
        new = kind in kinds
        if kinds.count(kind) >= self.cap:
            i = 3 * kinds.index(kind)
            del kept[i : i + 3]
    i = len(kept)
    while i and kept[i - 2] > hour:
        i -= 3
    kept[i:i] = array("q", (key, hour, kind))
    return new


def _hours_count_general(self: Hours, state: State, at: int, records: int) -> float:
    baseline = self.baseline(state, at)
    self.add(state, at, (records, 1))
    return baseline


def _recent_see_general(self: Recent, state: State, key: int, at: int) -> int:
    self.expire(state, at)
    self.touch(state, key, at)
    return self.count(state)


def _general_paths(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(_windows, "add_in_place", lambda *_: False)
    mp.setattr(_long, "add_in_place", lambda *_: False)
    mp.setattr(Hours, "count", _hours_count_general)
    mp.setattr(Recent, "see", _recent_see_general)
    mp.setattr(Seen, "check", _seen_check_walk)


# Steps: (seconds forward, possibly negative: a late request), subject, records,
# resource, device, and an optional correction added to the subject's counts.
GAPS = st.sampled_from(
    [0.0, 0.5, 1.0, 59.0, 61.0, 3599.0, 3601.0, 86_401.0, -1.0, -3700.0, -90_000.0]
)
HUGE = st.sampled_from([0, 1, 127, 128, 40_000, 2**31, 2**40, 2**62, 2**63, 2**66])
STEP = st.tuples(
    GAPS,
    st.integers(0, 5),
    st.sampled_from([0, 1, 200, 70_000, 10**9]),
    st.integers(0, 6),
    st.sampled_from([None, "d-1", "d-2", "d-3"]),
    st.one_of(st.none(), HUGE, HUGE.map(lambda n: -n)),
    st.sampled_from([None, "sales", "eng"]),
)


def _run(steps: list[tuple[Any, ...]], config: BehaviorConfig) -> list[Any]:
    store = MemoryBehaviorStore(config)
    out: list[Any] = []
    t = START
    for gap, who, records, res, device, correction, dept in steps:
        t += gap
        when = datetime.datetime.fromtimestamp(t, datetime.UTC)
        request = AccessRequest.from_mapping(
            {
                "subject": {"id": f"u-{who}", "properties": {"department": dept}},
                "action": {"name": "read"},
                "resource": {"type": "doc", "id": f"r-{res}"},
                "device": {} if device is None else {"id": device},
                "context": {"records": records, "ip": f"10.0.0.{res % 3}"},
            }
        )
        out.append(dict(store.features(request, when)))
        if correction:
            store.record_access(request, when, correction)
    for key, s in store._subjects.items():  # the stored numbers, whatever their arrays
        out.append((key, list(s.meta)))
        for name in ("m", "h", "d", "hh", "dd", "s", "lk", "lh", "lx", "ln"):
            out.append((key, name, list(getattr(s, name))))
        out.append((key, "r", sorted(s.res)))
    return out


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, min_size=1, max_size=60), st.sampled_from([2, 4, 100]))
def test_fast_paths_answer_as_the_general_paths(steps: list[tuple[Any, ...]], most: int) -> None:
    config = BehaviorConfig(max_subjects=most, max_seen=2, peer_groups=("department",))
    fast = _run(steps, config)
    with pytest.MonkeyPatch.context() as mp:
        _general_paths(mp)
        general = _run(steps, config)
    assert fast == general
