"""Peer groups: which groups a subject is in, and a group's statistics without it.

Store-independent (both stores must give the same ``peers`` bit for bit): group key
texts from a subject's properties, the type-7 percentile, and a snapshot of a group's
member table that answers for any subject with that subject left out. Written for the
Redis store while the memory store's shared module was not there yet; the two are
meant to become one.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

__all__ = [
    "MAX_GROUPS",
    "Figures",
    "PeerStats",
    "PeerTable",
    "group_texts",
    "peer_features",
    "percentile",
]

#: A subject is in at most this many groups (the first ones, in grouping then value order).
MAX_GROUPS = 16


class Figures(NamedTuple):
    """A member's figures as published: per active day over the ``peer_days`` days
    before ``day`` (the member's UTC day when it published)."""

    records_per_day: float
    distinct_per_day: float
    day: int


class PeerStats(NamedTuple):
    """A group's statistics for one subject (the subject itself left out)."""

    members: int
    records_median: float
    records_p95: float
    distinct_median: float
    distinct_p95: float


def _escaped(text: str) -> str:
    return text.replace("%", "%25").replace("=", "%3D").replace("&", "%26")


def _values(value: Any) -> list[str]:
    """A property's values: a str is one, a list gives its distinct strs (first
    occurrence order, other items ignored), anything else none."""
    if type(value) is str:
        return [value]
    if isinstance(value, list):
        return list(dict.fromkeys(v for v in value if type(v) is str))
    return []


def group_texts(properties: Mapping[str, Any], groupings: Iterable[Sequence[str]]) -> list[str]:
    """The subject's groups as key texts (``department=support&roles=agent``): per
    grouping the cartesian product of its names' values, in grouping then value
    order, distinct, at most :data:`MAX_GROUPS`. Names and values are percent-escaped
    (``%``, ``=``, ``&``), so a text names exactly one group."""
    out: dict[str, None] = {}
    for names in groupings:
        values = [_values(properties.get(name)) for name in names]
        if not all(values):
            continue
        for combination in itertools.product(*values):
            text = "&".join(
                f"{_escaped(name)}={_escaped(value)}"
                for name, value in zip(names, combination, strict=True)
            )
            out[text] = None
            if len(out) == MAX_GROUPS:
                return list(out)
    return list(out)


def percentile(values: Sequence[float], q: float, skip: int = -1) -> float:
    """Hyndman-Fan type 7 (numpy's "linear") of sorted ``values`` without the one at
    index ``skip`` (none when negative): h = (n - 1) q, x[floor h] + (h - floor h) *
    (x[floor h + 1] - x[floor h]). Computed exactly so, so every store agrees."""
    n = len(values) - (1 if skip >= 0 else 0)

    def at(i: int) -> float:
        return values[i + 1] if 0 <= skip <= i else values[i]

    h = (n - 1) * q
    low = math.floor(h)
    if low >= n - 1:
        return at(n - 1)
    x = at(low)
    return x + (h - low) * (at(low + 1) - x)


class PeerTable:
    """A snapshot of one group's member table, sorted once so each subject's
    statistics (itself left out) cost a few bisections."""

    __slots__ = ("_distinct", "_members", "_records")

    def __init__(self, members: Mapping[Any, Figures]) -> None:
        self._members = dict(members)
        self._records = sorted(f.records_per_day for f in self._members.values())
        self._distinct = sorted(f.distinct_per_day for f in self._members.values())

    @classmethod
    def fresh(cls, members: Mapping[Any, Figures], current_day: int, days: int) -> PeerTable:
        """The table of ``members`` without those that published before
        ``current_day - days`` (their figures cover no day still in the window)."""
        return cls({who: f for who, f in members.items() if f.day >= current_day - days})

    def with_member(self, who: Any, figures: Figures | None) -> PeerTable:
        """This table with ``who``'s entry set to ``figures`` (removed for None)."""
        members = dict(self._members)
        if figures is None:
            members.pop(who, None)
        else:
            members[who] = figures
        return PeerTable(members)

    def __len__(self) -> int:
        return len(self._members)

    def stats(self, subject: Hashable, min_peers: int) -> PeerStats | None:
        """The group's statistics for ``subject`` (left out), or None below ``min_peers``."""
        own = self._members.get(subject)
        n = len(self._records) - (0 if own is None else 1)
        if n < min_peers:
            return None
        skip_r = skip_d = -1
        if own is not None:
            skip_r = bisect_left(self._records, own.records_per_day)
            skip_d = bisect_left(self._distinct, own.distinct_per_day)
        return PeerStats(
            n,
            percentile(self._records, 0.5, skip_r),
            percentile(self._records, 0.95, skip_r),
            percentile(self._distinct, 0.5, skip_d),
            percentile(self._distinct, 0.95, skip_d),
        )


def peer_features(
    features: dict[str, Any], candidates: Iterable[tuple[str, PeerStats | None]]
) -> None:
    """Add ``peers`` and the two ratios to ``features`` from the group with the largest
    records median (the first on ties); nothing when no group has statistics."""
    best: tuple[str, PeerStats] | None = None
    for text, stats in candidates:
        if stats is not None and (best is None or stats.records_median > best[1].records_median):
            best = (text, stats)
    if best is None:
        return
    text, s = best
    features["peers"] = {
        "group": text,
        "members": s.members,
        "records_per_day": {"median": s.records_median, "p95": s.records_p95},
        "distinct_per_day": {"median": s.distinct_median, "p95": s.distinct_p95},
    }
    if s.records_median != 0:
        features["records_24h_vs_peers"] = features["records_24h"] / s.records_median
    if s.distinct_median != 0:
        features["distinct_resources_24h_vs_peers"] = (
            features["distinct_resources_24h"] / s.distinct_median
        )
