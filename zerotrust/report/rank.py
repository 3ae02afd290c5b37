"""Ranking subjects by how far their behaviour stands out, with the reasons shown.

The score is a sum of points an analyst can check by hand, each from one figure:

* volume: the highest day's records against the subject's peer group's median
  (the logged ``records_24h_vs_peers``, or that day's records over the logged
  ``peers.records_per_day.median``); on a day without peer figures, against the median
  of all subjects' typical day (each subject's median day). 2x gives 0 points, each doubling
  beyond 20 more, at most 40;
* distinct resources: the same for distinct resources a day, 10 per doubling past 2x,
  at most 20;
* denials beyond the median subject's count 5 each (at most 25), step-ups beyond the
  median subject's 2 each (at most 10): in a large log everyone is refused now and then;
* first requests from a new device 5 each (at most 10) and from a new country 5 each
  (at most 10).

A subject is shown in detail when its score reaches ``min_score``, the highest
``top`` of them.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence

import attrs

from zerotrust.behavior.features import MAX_RECORDS
from zerotrust.report.load import DayFigures, LogFigures, SubjectFigures
from zerotrust.report.options import ReportOptions

__all__ = ["HOT", "Population", "Ranked", "quantile", "rank"]

#: A day at least this many times the comparison median is marked (and its decisions kept).
HOT = 2.0


@attrs.frozen
class Population:
    """All subjects' typical day: (median, p95) of each subject's median day, or None
    when no subject has a day with records (resp. resources); and the median subject's
    denials and step-ups."""

    records: tuple[float, float] | None
    distinct: tuple[float, float] | None
    subjects: int
    denies: float = 0.0
    step_ups: float = 0.0


@attrs.frozen
class Ranked:
    """A subject's place: score, the points that make it, what it was compared with."""

    subject: SubjectFigures
    score: float
    basis: str  # "peers" (logged peer-group figures) or "all subjects"
    volume: float | None  # highest day's records / the comparison median
    distinct: float | None  # the same for distinct resources
    parts: tuple[tuple[str, float], ...]  # (what, points), the points > 0 only
    hot_days: frozenset[datetime.date]  # days at HOT x the median or more
    flagged: bool

    @property
    def key(self) -> tuple[str, str]:
        return self.subject.type, self.subject.id


def quantile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (Hyndman-Fan type 7, numpy's default),
    as the behaviour stores compute the peer figures. ``values`` must not be empty."""
    ordered = sorted(values)
    h = (len(ordered) - 1) * q
    low = math.floor(h)
    if low >= len(ordered) - 1:
        return float(ordered[-1])
    return float(ordered[low] + (h - low) * (ordered[low + 1] - ordered[low]))


def population(figures: LogFigures) -> Population:
    records: list[float] = []
    distinct: list[float] = []
    denies: list[float] = []
    step_ups: list[float] = []
    for subject in figures.subjects:
        if subject.days:
            records.append(quantile([d.records for d in subject.days], 0.5))
            distinct.append(quantile([d.distinct for d in subject.days], 0.5))
            denies.append(subject.total("denies"))
            step_ups.append(subject.total("step_ups"))
    return Population(
        records=_pair(records),
        distinct=_pair(distinct),
        subjects=len(figures.subjects),
        denies=quantile(denies, 0.5) if denies else 0.0,
        step_ups=quantile(step_ups, 0.5) if step_ups else 0.0,
    )


def _pair(values: list[float]) -> tuple[float, float] | None:
    if not values or max(values) <= 0:
        return None
    return quantile(values, 0.5), quantile(values, 0.95)


def rank(
    figures: LogFigures, options: ReportOptions | None = None
) -> tuple[Population, tuple[Ranked, ...]]:
    """Every subject, highest score first (then more denials, then by id)."""
    options = options or ReportOptions()
    everyone = population(figures)
    scored = [_score(subject, everyone) for subject in figures.subjects]
    scored.sort(key=lambda r: (-r.score, -r.subject.total("denies"), r.subject.type, r.subject.id))
    flagged = 0
    out = []
    for ranked in scored:
        if flagged < options.top and ranked.score >= options.min_score:
            out.append(attrs.evolve(ranked, flagged=True))
            flagged += 1
        else:
            out.append(ranked)
    return everyone, tuple(out)


def _score(subject: SubjectFigures, everyone: Population) -> Ranked:
    peers = any(d.peers_records is not None or d.records_vs_peers is not None for d in subject.days)
    hot: set[datetime.date] = set()
    days, fixed_records, fixed_distinct = subject.days, everyone.records, everyone.distinct
    if peers:  # a day without peer figures falls back to all subjects
        volume = _ratio(days, "records", "peers_records", "records_vs_peers", fixed_records, hot)
        distinct = _ratio(
            days, "distinct", "peers_distinct", "distinct_vs_peers", fixed_distinct, hot
        )
    else:
        volume = _ratio(days, "records", None, None, fixed_records, hot)
        distinct = _ratio(days, "distinct", None, None, fixed_distinct, hot)
    parts = [
        ("volume", _doublings(volume, 20.0, 40.0)),
        ("distinct resources", _doublings(distinct, 10.0, 20.0)),
        ("denials", _beyond(subject.total("denies"), everyone.denies, 5.0, 25.0)),
        ("step-ups", _beyond(subject.total("step_ups"), everyone.step_ups, 2.0, 10.0)),
        ("new devices", min(10.0, 5.0 * subject.total("new_devices"))),
        ("new countries", min(10.0, 5.0 * subject.total("new_countries"))),
    ]
    kept = tuple((what, round(points, 1)) for what, points in parts if points > 0)
    return Ranked(
        subject=subject,
        score=round(sum(points for _, points in kept), 1),
        basis="peers" if peers else "all subjects",
        volume=volume,
        distinct=distinct,
        parts=kept,
        hot_days=frozenset(hot),
        flagged=False,
    )


def _ratio(
    days: tuple[DayFigures, ...],
    count: str,
    logged_pair: str | None,
    logged_ratio: str | None,
    fixed: tuple[float, float] | None,
    hot: set[datetime.date],
) -> float | None:
    """The highest day's ``count`` over the comparison median: the day's logged peer
    figures (and the ratio the PDP logged), else ``fixed`` (all subjects). Days at
    :data:`HOT` times the median or more are added to ``hot`` (not merely above the
    p95: the p95 of members' *average* days is a busy day for anyone)."""
    best: float | None = None
    for day in days:
        pair = (getattr(day, logged_pair) if logged_pair else None) or fixed
        ratios = []
        value: int = getattr(day, count)
        if pair is not None and pair[0] > 0:
            # A median near 0 (or forged) must not make an infinite ratio.
            ratios.append(min(value / pair[0], float(MAX_RECORDS)))
        if logged_ratio is not None and getattr(day, logged_ratio) is not None:
            ratios.append(getattr(day, logged_ratio))
        if ratios:
            top = max(ratios)
            best = top if best is None else max(best, top)
            if top >= HOT:
                hot.add(day.day)
    return best


def _doublings(ratio: float | None, per: float, most: float) -> float:
    """``per`` points for each doubling past 2x, at most ``most``."""
    if ratio is None or ratio <= 2.0:
        return 0.0
    return min(most, per * (math.log2(ratio) - 1.0))


def _beyond(count: int, median: float, per: float, most: float) -> float:
    """``per`` points for each one beyond the median subject's ``median``, at most ``most``."""
    return min(most, per * max(0.0, count - median))
