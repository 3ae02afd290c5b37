"""Peer groups: what both behaviour stores share to compare a subject with its peers.

Pure functions and small value classes, no store state: the group keys a subject's
properties give, the member figures a subject publishes once a day, a group's
*snapshot* (the member table as read at one time) and the statistics of a snapshot
without the asking subject's own entry. Both stores call these, so the same tables
give the same ``peers`` features bit for bit.
"""

from __future__ import annotations

import hashlib
import math
import re
from bisect import bisect_left
from collections.abc import Hashable, Iterable, Mapping, Sequence
from itertools import product
from typing import Any

import attrs

from zerotrust.behavior.features import MAX_RECORDS

__all__ = [
    "MAX_GROUPS",
    "MAX_VALUE_CHARS",
    "QUANTILES",
    "Figures",
    "GroupStats",
    "Snapshot",
    "best_stats",
    "figures_text",
    "group_keys",
    "member_figures",
    "parse_figures",
    "peer_features",
    "percentile",
]

#: A subject is a member of at most this many groups (the first ones are kept).
MAX_GROUPS = 16
#: Longest property value kept as text in a group's key (longer ones are hashed).
MAX_VALUE_CHARS = 128
#: The two statistics of each figure: the median and the 95th percentile.
QUANTILES = (0.5, 0.95)

#: A member's figures: records per active day, distinct resources per active day, and
#: the UTC day (bucket number) they were computed for.
Figures = tuple[float, float, int]


def _escaped(text: str) -> str:
    """``%``, ``=`` and ``&`` percent-escaped, so a key text names one group."""
    return text.replace("%", "%25").replace("=", "%3D").replace("&", "%26")


def _value_text(value: str) -> str:
    """A property value in a key text: escaped, or when that is longer than
    :data:`MAX_VALUE_CHARS`, ``%sha256:`` and its digest (a literal ``%`` is always
    escaped, so no value's text starts so). Keeps every key short whatever a subject's
    properties hold."""
    text = _escaped(value)
    if len(text) <= MAX_VALUE_CHARS:
        return text
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"%sha256:{digest}"


def _values(value: Any) -> list[str]:
    """A property's values for grouping: a str is one; a list gives its distinct
    strs in order (other items ignored); anything else none."""
    if type(value) is str:
        return [value]
    if isinstance(value, list):
        return list(dict.fromkeys(item for item in value if type(item) is str))
    return []


def group_keys(
    properties: Mapping[str, Any], groupings: Sequence[Sequence[str]]
) -> tuple[str, ...]:
    """The key texts of the groups ``properties`` put a subject in, in grouping order
    then value order, distinct, at most :data:`MAX_GROUPS`.

    A grouping of several names gives the cartesian product of their values
    (``department=support&roles=agent``); a name without a value gives no group for
    that grouping."""
    if not properties:
        return ()
    keys: dict[str, None] = {}
    for names in groupings:
        parts: list[list[str]] = []
        for name in names:
            values = _values(properties.get(name))
            if not values:
                break
            prefix = _escaped(name) + "="
            parts.append([prefix + _value_text(v) for v in values])
        else:
            for combination in product(*parts):
                keys["&".join(combination)] = None
                if len(keys) == MAX_GROUPS:
                    return tuple(keys)
    return tuple(keys)


def _whole(value: float) -> float:
    """``value`` to the nearest whole number (halves up), from 0 to MAX_RECORDS."""
    return float(min(MAX_RECORDS, max(0, math.floor(value + 0.5))))


def member_figures(records: int, distinct: int, active_days: int) -> tuple[float, float] | None:
    """A member's ``(records per active day, distinct resources per active day)`` over
    its trailing days, each to the nearest whole number, or None without an active day
    (it is then no member).

    Whole numbers, because the group's statistics are read by others: the median of
    an odd number of members is one member's figure, and an exact average over at most
    ``peer_days`` days gives away that member's total to within a multiple."""
    if active_days <= 0:
        return None
    return _whole(records / active_days), _whole(distinct / active_days)


#: What :func:`figures_text` writes: two whole numbers as Python floats, and a day.
_FIGURES_TEXT = re.compile(r"(0|[1-9][0-9]*)\.0 (0|[1-9][0-9]*)\.0 (-?[0-9]+)", re.ASCII)


def figures_text(records_per_day: float, distinct_per_day: float, day: int) -> str:
    """Figures as stored in a shared table: exact decimal texts (``repr``) and the day."""
    return f"{records_per_day!r} {distinct_per_day!r} {day}"


def parse_figures(text: str | bytes) -> Figures | None:
    """:func:`figures_text` read back, or None for anything else (ignored)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            return None
    match = _FIGURES_TEXT.fullmatch(text)
    if match is None:
        return None  # not as a store writes it (whole numbers, plain digits)
    rpd, dpd, day = float(match[1]), float(match[2]), int(match[3])
    if not (rpd <= MAX_RECORDS and dpd <= MAX_RECORDS):
        return None
    return rpd, dpd, day


def percentile(xs: Sequence[float], q: float, without: int = -1) -> float:
    """The ``q`` quantile (0 <= q <= 1) of the sorted ``xs`` by linear interpolation
    between closest ranks (Hyndman-Fan type 7, numpy's default "linear"), in Python
    floats exactly as the formula reads: ``h = (n-1)q``, ``x[⌊h⌋] + (h - ⌊h⌋)(x[⌊h⌋+1]
    - x[⌊h⌋])``, ``x[n-1]`` when ``h = n-1``.

    ``without``: the index of one element to leave out (the asking member), so the
    quantile of the others is read without building another list."""
    n = len(xs) - (1 if without >= 0 else 0)
    if n <= 0:
        raise ValueError("percentile of no values")
    h = (n - 1) * q
    f = math.floor(h)
    skip = without if without >= 0 else n

    def x(i: int) -> float:
        return xs[i] if i < skip else xs[i + 1]

    lo = x(f)
    if f >= n - 1:
        return lo
    return lo + (h - f) * (x(f + 1) - lo)


@attrs.frozen
class GroupStats:
    """A group's statistics as one member sees them (its own figures left out)."""

    group: str
    members: int
    records_median: float
    records_p95: float
    distinct_median: float
    distinct_p95: float

    def feature(self) -> dict[str, Any]:
        """The ``peers`` feature: plain JSON data, a fresh dict each time."""
        return {
            "group": self.group,
            "members": self.members,
            "records_per_day": {"median": self.records_median, "p95": self.records_p95},
            "distinct_per_day": {"median": self.distinct_median, "p95": self.distinct_p95},
        }


_NOBODY = object()  # the memo key of a subject that is not in the snapshot


def _side(skip: int, floor: int) -> int:
    """Where a left-out index lies against the ranks ``floor``, ``floor + 1`` a
    quantile reads: all that decides the quantile of the others."""
    return 0 if skip <= floor else 1 if skip == floor + 1 else 2


class Snapshot:
    """One group's member table as read at time ``taken``, stale entries left out.

    ``entries`` maps a member (any hashable id) to its figures; an entry whose day is
    before ``day - peer_days`` is stale (its member stopped publishing) and is not
    kept, nor one dated after tomorrow (no store writes it: it would never go stale).
    :meth:`stats` leaves the asking member out in O(log n)."""

    __slots__ = ("_distinct", "_floors", "_members", "_memo", "_records", "group", "taken")

    def __init__(
        self,
        group: str,
        entries: Iterable[tuple[Hashable, Figures]],
        *,
        day: int,
        peer_days: int,
        taken: float,
    ) -> None:
        oldest = day - peer_days
        self.group = group
        self.taken = taken
        self._members: dict[Hashable, tuple[float, float]] = {
            member: (f[0], f[1]) for member, f in entries if oldest <= f[2] <= day + 1
        }
        self._records = sorted(f[0] for f in self._members.values())
        self._distinct = sorted(f[1] for f in self._members.values())
        self._memo: dict[object, GroupStats | None] = {}
        # the ranks each quantile reads among the others of a member (n - 1 of them)
        others = max(len(self._records) - 1, 1)
        self._floors = tuple(math.floor((others - 1) * q) for q in QUANTILES)

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, member: Hashable) -> bool:
        return member in self._members

    def stats(self, member: Hashable, min_peers: int) -> GroupStats | None:
        """The statistics of every member but ``member``; None below ``min_peers``.

        Leaving out the element at sorted index ``k`` changes a quantile only through
        where ``k`` lies against the two ranks it reads (before, between, after), so
        at most 3**4 answers exist per snapshot: they are remembered by those cases."""
        records, distinct = self._records, self._distinct
        own = self._members.get(member)
        if own is None:
            key: object = (min_peers, _NOBODY)
            n = len(records)
            skip_r = skip_d = -1
        else:
            n = len(records) - 1
            skip_r = bisect_left(records, own[0])
            skip_d = bisect_left(distinct, own[1])
            f50, f95 = self._floors
            key = (
                min_peers,
                _side(skip_r, f50),
                _side(skip_r, f95),
                _side(skip_d, f50),
                _side(skip_d, f95),
            )
        try:
            return self._memo[key]
        except KeyError:
            pass
        result = None
        if n >= min_peers:
            result = GroupStats(
                self.group,
                n,
                percentile(records, QUANTILES[0], skip_r),
                percentile(records, QUANTILES[1], skip_r),
                percentile(distinct, QUANTILES[0], skip_d),
                percentile(distinct, QUANTILES[1], skip_d),
            )
        self._memo[key] = result
        return result


def best_stats(candidates: Iterable[GroupStats | None]) -> GroupStats | None:
    """The group a subject is compared with: the largest records median (where the
    subject stands out least); ties go to the first in group order."""
    best: GroupStats | None = None
    for stats in candidates:
        if stats is not None and (best is None or stats.records_median > best.records_median):
            best = stats
    return best


def peer_features(
    features: dict[str, Any], stats: GroupStats | None, records_24h: int, distinct_24h: int
) -> None:
    """Add ``peers`` and the two ratios to ``features`` (nothing when ``stats`` is None;
    a ratio is left out when its median is 0)."""
    if stats is None:
        return
    features["peers"] = stats.feature()
    if stats.records_median != 0:
        features["records_24h_vs_peers"] = records_24h / stats.records_median
    if stats.distinct_median != 0:
        features["distinct_resources_24h_vs_peers"] = distinct_24h / stats.distinct_median
