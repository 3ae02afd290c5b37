"""``zerotrust demo --scenario low-and-slow``: the patient insider, replayed.

Ten support agents look up about forty customers a day each (one record per request,
office hours, their own managed laptop and IP, weekdays) for ten weeks. From week 3
one of them adds lookups of customers she has no case for: 50 a day more, then 100,
200, ... up to 600. Her own baseline rises with her; what gives her away is her peer
group (``department``). Every request goes through a real
:class:`PolicyDecisionPoint` with the shipped policies and a behaviour store (the
memory store unless one is given) on a simulated clock. A step-up is passed (she has
her own second factor): the session then has MFA for the rest of the day. This module
only computes; ``zerotrust.cli`` prints the :class:`SlowReport`.
"""

from __future__ import annotations

import datetime
import random
import statistics
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from zerotrust.behavior import BehaviorSource
from zerotrust.behavior.memory import MemoryBehaviorStore
from zerotrust.decision import Decision, Effect
from zerotrust.demo import agent_request
from zerotrust.engine import PolicyDecisionPoint

__all__ = [
    "AGENTS",
    "INSIDER",
    "Day",
    "Decide",
    "SlowReport",
    "Verdict",
    "Week",
    "extra_per_day",
    "local_decider",
    "plan_day",
    "run_low_and_slow",
    "verdict",
    "weekly",
]

START = datetime.date(2026, 1, 5)  # a Monday
WEEKS = 10
AGENTS = tuple(
    f"u-{name}"
    for name in ("anna", "ben", "chloe", "dev", "eve", "finn", "gita", "hugo", "ines", "jon")
)
INSIDER = "u-eve"
#: Extra lookups a day the insider adds, by week (from week 3).
EXTRA_BY_WEEK = (0, 0, 50, 100, 200, 300, 400, 500, 600, 600)
CUSTOMERS = 20_000  # customers with cases; her extra lookups go to others
OFFICE_UTC = (7, 16)  # 08:00-17:00 in Berlin in winter


def extra_per_day(week: int) -> int:
    """Extra lookups a day the insider plans in ``week`` (0-based)."""
    return EXTRA_BY_WEEK[min(week, len(EXTRA_BY_WEEK) - 1)]


@attrs.frozen
class Lookup:
    """One planned request."""

    at: datetime.datetime
    agent: str
    customer: str
    extra: bool  # one of the insider's lookups without a case


@attrs.frozen
class Day:
    """One working day as the PDP saw it."""

    date: datetime.date
    insider_records: int  # served to her (casework and extra)
    insider_extra: int  # of which without a case
    insider_refused: int
    insider_step_ups: int
    peers_median: float | None  # records per day of her group, as her last request saw it
    peers_p95: float | None
    colleagues_median: float  # records served per colleague that day
    colleagues_max: int
    colleague_step_ups: int
    colleague_denies: int


@attrs.frozen
class SlowReport:
    """The whole replay, day by day, and where she was flagged and stopped."""

    policies: str
    days: tuple[Day, ...]
    decisions: int
    extra_planned: int
    extra_served: int
    flagged_at: datetime.datetime | None  # her first step-up or peer signal
    flagged_after: int | None  # extra records she had by then
    flagged_by: tuple[str, ...]
    denied_at: datetime.datetime | None
    denied_after: int | None
    denied_by: tuple[str, ...]
    colleague_step_ups: int
    colleague_denies: int
    rules: tuple[tuple[str, int], ...]  # rules that refused her, times


def plan_day(
    rng: random.Random, date: datetime.date, week: int, accomplices: tuple[str, ...] = ()
) -> list[Lookup]:
    """Every agent's lookups of one weekday, in time order: casework, then the extra
    lookups of the insider and of each accomplice."""
    plan: list[Lookup] = []
    first, last = OFFICE_UTC
    span = (last - first) * 3600
    morning = datetime.datetime.combine(date, datetime.time(first), tzinfo=datetime.UTC)
    for agent in AGENTS:
        for _ in range(rng.randint(32, 48)):
            at = morning + datetime.timedelta(seconds=rng.randrange(span))
            plan.append(Lookup(at, agent, f"c-{rng.randrange(CUSTOMERS)}", extra=False))
    for reader in (INSIDER, *accomplices):
        for _ in range(extra_per_day(week)):
            at = morning + datetime.timedelta(seconds=rng.randrange(span))
            customer = f"c-{CUSTOMERS + rng.randrange(200_000)}"
            plan.append(Lookup(at, reader, customer, extra=True))
    plan.sort(key=lambda lookup: (lookup.at, lookup.agent))
    return plan


def weekdays() -> Iterator[tuple[int, datetime.date]]:
    """(week, date) of every weekday of the run."""
    for day in range(WEEKS * 7):
        date = START + datetime.timedelta(days=day)
        if date.weekday() < 5:
            yield day // 7, date


def request_for(agent: str, customer: str, amr: tuple[str, ...]) -> dict[str, Any]:
    """The request an agent's client sends for one customer record (one record)."""
    n = AGENTS.index(agent)
    device = {"id": f"d-{agent[2:]}", "managed": True, "compliant": True}
    return agent_request(agent, customer, 1, device=device, ip=f"10.1.{n}.{10 + n}", amr=amr)


@attrs.frozen
class Verdict:
    """What the replay needs of one decision (plain data: it may come from another
    process)."""

    effect: str  # allow, deny or step_up
    rules: tuple[str, ...]  # the enforced rules with that effect
    signals: tuple[str, ...]
    peers: Mapping[str, Any] | None  # the ``peers`` feature the decision saw


#: Decides one request at a time: (request, now) -> Verdict.
Decide = Callable[[Mapping[str, Any], datetime.datetime], Verdict]


def local_decider(
    policies: str | Path, behavior: BehaviorSource | None = None, decision_log: Any = None
) -> Decide:
    """A PDP in this process with ``behavior`` (a fresh memory store by default)."""
    now = [datetime.datetime.combine(START, datetime.time(), tzinfo=datetime.UTC)]
    pdp = PolicyDecisionPoint.from_path(
        policies,
        clock=lambda: now[0],
        behavior=behavior if behavior is not None else MemoryBehaviorStore(),
        decision_log=decision_log,
    )

    def decide(request: Mapping[str, Any], at: datetime.datetime) -> Verdict:
        now[0] = at
        decision = pdp.evaluate(request)
        return verdict(decision, decision.behavior or {})

    return decide


def verdict(decision: Decision, features: Mapping[str, Any]) -> Verdict:
    """The :class:`Verdict` of ``decision`` made with ``features``."""
    peers = features.get("peers")
    return Verdict(
        effect=decision.effect.value,
        rules=tuple(r.rule for r in decision.reasons if r.effect is decision.effect),
        signals=tuple(decision.risk.signals),
        peers=dict(peers) if isinstance(peers, Mapping) else None,
    )


def _flagging(verdict: Verdict) -> tuple[str, ...]:
    """What in a decision flags the subject: a step-up, or a peer signal."""
    if verdict.effect == Effect.STEP_UP.value:
        return verdict.rules
    return tuple(s for s in verdict.signals if "peer" in s)


def run_low_and_slow(
    policies: str | Path,
    *,
    behavior: BehaviorSource | None = None,
    decide: Decide | None = None,
    progress: Callable[[int, int], None] | None = None,
    seed: int = 11,
    decision_log: Any = None,
    accomplices: tuple[str, ...] = (),
    cautious: bool = False,
) -> SlowReport:
    """Replay the ten weeks; ``progress(done_days, total_days)`` after each day.

    Decisions are made by ``decide`` if given (say, PDPs in other processes sharing a
    Redis store), else by a PDP here with ``behavior`` and ``decision_log``.
    ``accomplices`` (other agents) read as many extra records as the insider, to lift
    the group's figures with her; ``cautious`` readers stop their extra lookups for
    the day at their first refusal (so they are not refused more than once a day).
    The report's extra records are the insider's; accomplices are not colleagues."""
    if INSIDER in accomplices or not set(accomplices) <= set(AGENTS):
        raise ValueError(f"accomplices must be agents other than {INSIDER}: {accomplices}")
    if decide is None:
        decide = local_decider(policies, behavior, decision_log)
    rng = random.Random(seed)
    days: list[Day] = []
    plan = list(weekdays())
    decisions = extra_planned = extra_served = 0
    flagged: tuple[datetime.datetime, int, tuple[str, ...]] | None = None
    denied: tuple[datetime.datetime, int, tuple[str, ...]] | None = None
    rules: Counter[str] = Counter()
    total_step_ups = total_denies = 0
    for number, (week, date) in enumerate(plan):
        mfa: set[str] = set()
        served: Counter[str] = Counter()
        refused = step_ups = extra = 0
        c_step_ups = c_denies = 0
        peers: Mapping[str, Any] | None = None
        stopped: set[str] = set()
        for lookup in plan_day(rng, date, week, accomplices):
            if lookup.extra and lookup.agent in stopped:
                continue
            extra_planned += lookup.extra and lookup.agent == INSIDER
            for _ in range(2):  # a step-up is passed once, then the request is sent again
                amr = ("pwd", "mfa") if lookup.agent in mfa else ("pwd",)
                decision = decide(request_for(lookup.agent, lookup.customer, amr), lookup.at)
                decisions += 1
                if decision.effect != Effect.STEP_UP.value or lookup.agent in mfa:
                    break
                mfa.add(lookup.agent)
                if lookup.agent == INSIDER:
                    step_ups += 1
                elif lookup.agent not in accomplices:
                    c_step_ups += 1
            if lookup.agent == INSIDER:
                peers = decision.peers or peers
                marks = _flagging(decision)
                if marks and flagged is None:
                    flagged = (lookup.at, extra_served, marks)
            if lookup.extra and cautious and decision.effect == Effect.DENY.value:
                stopped.add(lookup.agent)
            if decision.effect == Effect.ALLOW.value:
                served[lookup.agent] += 1
                if lookup.extra and lookup.agent == INSIDER:
                    extra += 1
                    extra_served += 1
            elif lookup.agent in accomplices:
                pass
            elif lookup.agent == INSIDER:
                refused += decision.effect == Effect.DENY.value
                rules.update(decision.rules)
                if denied is None and decision.effect == Effect.DENY.value:
                    denied = (lookup.at, extra_served, decision.rules)
                    if flagged is None:
                        flagged = denied
            elif decision.effect == Effect.DENY.value:
                c_denies += 1
        colleagues = [served[a] for a in AGENTS if a != INSIDER and a not in accomplices]
        total_step_ups += c_step_ups
        total_denies += c_denies
        group = (peers or {}).get("records_per_day") or {}
        days.append(
            Day(
                date=date,
                insider_records=served[INSIDER],
                insider_extra=extra,
                insider_refused=refused,
                insider_step_ups=step_ups,
                peers_median=group.get("median"),
                peers_p95=group.get("p95"),
                colleagues_median=float(statistics.median(colleagues)),
                colleagues_max=max(colleagues),
                colleague_step_ups=c_step_ups,
                colleague_denies=c_denies,
            )
        )
        if progress is not None:
            progress(number + 1, len(plan))
    return SlowReport(
        policies=str(policies),
        days=tuple(days),
        decisions=decisions,
        extra_planned=extra_planned,
        extra_served=extra_served,
        flagged_at=None if flagged is None else flagged[0],
        flagged_after=None if flagged is None else flagged[1],
        flagged_by=() if flagged is None else flagged[2],
        denied_at=None if denied is None else denied[0],
        denied_after=None if denied is None else denied[1],
        denied_by=() if denied is None else denied[2],
        colleague_step_ups=total_step_ups,
        colleague_denies=total_denies,
        rules=tuple(rules.most_common()),
    )


@attrs.frozen
class Week:
    """One week of the replay, for the chart: the insider's records served a day and
    her group's figures as her requests saw them (None before the group had any)."""

    week: int
    insider: float
    median: float | None
    p95: float | None
    refused: int
    step_ups: int


def weekly(report: SlowReport) -> list[Week]:
    """The days of ``report`` by week (1-based), averaged."""
    weeks: dict[int, list[Day]] = {}
    for day in report.days:
        weeks.setdefault((day.date - START).days // 7 + 1, []).append(day)
    rows = []
    for number, days in sorted(weeks.items()):
        medians = [d.peers_median for d in days if d.peers_median is not None]
        p95s = [d.peers_p95 for d in days if d.peers_p95 is not None]
        rows.append(
            Week(
                week=number,
                insider=statistics.fmean(d.insider_records for d in days),
                median=statistics.fmean(medians) if medians else None,
                p95=statistics.fmean(p95s) if p95s else None,
                refused=sum(d.insider_refused for d in days),
                step_ups=sum(d.insider_step_ups for d in days),
            )
        )
    return rows
