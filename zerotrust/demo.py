"""``zerotrust demo``: the insider scenario, replayed on the embedded behaviour store.

Two weeks of normal work by a few support agents (a handful of customer lookups a
day each, office hours, managed laptops), then one agent reading customer records
in bulk at night from a device she never used before. Every request goes through a
real :class:`PolicyDecisionPoint` with the shipped policies, a
:class:`MemoryBehaviorStore` and a simulated clock. This module only computes: it
returns a :class:`DemoReport` and ``zerotrust.cli`` prints it.
"""

from __future__ import annotations

import datetime
import random
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from zerotrust.audit.record import DecisionLog
from zerotrust.behavior.memory import MemoryBehaviorStore
from zerotrust.decision import Decision, Effect
from zerotrust.engine import PolicyDecisionPoint

__all__ = ["DemoReport", "Phase", "agent_request", "default_policies", "run_demo"]

START = datetime.datetime(2026, 2, 16, 7, 0, tzinfo=datetime.UTC)  # Monday 08:00 Berlin
AGENTS = ("u-anna", "u-ben", "u-chloe", "u-eve")
INSIDER = "u-eve"
LOOKUPS_PER_DAY = 5
ATTACK_AT = datetime.datetime(2026, 3, 3, 0, 30, tzinfo=datetime.UTC)  # Tue 01:30 Berlin
ATTACK_PAGE = 50  # records per request of the bulk reading
ATTACK_EVERY = datetime.timedelta(seconds=2)
ATTACK_MAX = 60  # requests the insider tries at most
GIVE_UP_AFTER = 5  # consecutive refusals
#: Behaviour features whose movement the report shows.
FIGURES = (
    "requests_1m",
    "requests_1h",
    "records_1h",
    "records_24h",
    "distinct_resources_1h",
    "denied_1h",
    "step_ups_1h",
    "baseline_records_per_hour",
    "new_device",
)


@attrs.frozen
class Phase:
    """A stretch of the timeline and what the PDP did in it."""

    title: str
    start: datetime.datetime
    end: datetime.datetime
    requests: int
    allows: int
    step_ups: int
    denies: int
    records_served: int
    risk: tuple[int, int]  # lowest and highest score
    signals: tuple[tuple[str, int], ...]  # signal name, times it fired
    rules: tuple[tuple[str, int], ...]  # enforced rule, times it matched
    figures: tuple[tuple[str, Any, Any], ...]  # feature, first value, last value (moved)


@attrs.frozen
class DemoReport:
    """The whole replay: phases in order and where the attack ended."""

    policies: str
    phases: tuple[Phase, ...]
    decisions: int
    attack_requests: int
    attack_records: int  # records the insider got before she was stopped
    stopped_at: datetime.datetime | None
    stopped_by: tuple[str, ...]  # rules of the first refusal that held


def default_policies() -> Path:
    """``./policies`` if there is one, else the shipped policies (in a wheel, inside the
    package; in a source checkout, beside it)."""
    here = Path("policies")
    if here.is_dir():
        return here
    package = Path(__file__).resolve().parent
    inside = package / "_policies"
    return inside if inside.is_dir() else package.parent / "policies"


def agent_request(
    subject: str,
    resource: str,
    records: int,
    *,
    device: Mapping[str, Any],
    ip: str,
    amr: tuple[str, ...],
) -> dict[str, Any]:
    """A support agent's request for one customer record of their department."""
    return {
        "subject": {
            "id": subject,
            "properties": {"department": "support", "roles": ["agent"], "amr": list(amr)},
        },
        "action": {"name": "read"},
        "resource": {
            "type": "customer_record",
            "id": resource,
            "properties": {"owner_dept": "support", "sensitivity": 2},
        },
        "device": dict(device),
        "context": {"ip": ip, "country": "DE", "records": records},
    }


def _normal_work(rng: random.Random) -> list[tuple[datetime.datetime, dict[str, Any]]]:
    """Ten working days of customer lookups by every agent, in time order."""
    plan: list[tuple[datetime.datetime, dict[str, Any]]] = []
    for day in range(14):
        morning = START + datetime.timedelta(days=day)
        if morning.weekday() >= 5:
            continue
        for n, agent in enumerate(AGENTS):
            device = {"id": f"d-{agent[2:]}", "managed": True, "compliant": True}
            hours = sorted(rng.sample(range(9), LOOKUPS_PER_DAY))
            for hour in hours:
                at = morning + datetime.timedelta(hours=hour, minutes=rng.randrange(60))
                records = rng.randint(5, 40)
                resource = f"c-{rng.randrange(10_000)}"
                ip = f"10.1.{n}.{10 + n}"
                plan.append(
                    (
                        at,
                        agent_request(agent, resource, records, device=device, ip=ip, amr=("pwd",)),
                    )
                )
    plan.sort(key=lambda item: item[0])
    return plan


def run_demo(
    policies: str | Path | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    seed: int = 7,
    decision_log: DecisionLog | None = None,
) -> DemoReport:
    """Replay the scenario; ``progress(done, total)`` is called as decisions are made.
    ``decision_log`` receives every decision (``zerotrust demo --log`` passes a
    :class:`~zerotrust.audit.JsonLinesLog`, the input of ``zerotrust report``)."""
    path = Path(policies) if policies is not None else default_policies()
    now = [START]
    pdp = PolicyDecisionPoint.from_path(
        path, clock=lambda: now[0], behavior=MemoryBehaviorStore(), decision_log=decision_log
    )
    rng = random.Random(seed)
    normal = _normal_work(rng)
    total = len(normal) + ATTACK_MAX
    done = 0
    phases: list[Phase] = []

    week: list[tuple[Decision, Mapping[str, Any], Mapping[str, Any]]] = []
    week_start = normal[0][0]
    for at, request in normal:
        if at - week_start >= datetime.timedelta(days=7) and week:
            phases.append(_phase(f"Week {len(phases) + 1}: normal work", week))
            week, week_start = [], at
        now[0] = at
        decision = pdp.evaluate(request)
        week.append((decision, request, decision.behavior or {}))
        done += 1
        if progress is not None:
            progress(done, total)
    phases.append(_phase(f"Week {len(phases) + 1}: normal work", week))

    # The insider: a laptop of her own, over the VPN, paging through customer records.
    device = {"id": "d-eve-private", "managed": True, "compliant": True}
    amr: tuple[str, ...] = ("pwd",)
    attack: list[tuple[Decision, Mapping[str, Any], Mapping[str, Any]]] = []
    served = 0
    refusals = 0
    stopped_at: datetime.datetime | None = None
    stopped_by: tuple[str, ...] = ()
    at = ATTACK_AT
    for page in range(ATTACK_MAX):
        request = agent_request(
            INSIDER, f"c-{20_000 + page}", ATTACK_PAGE, device=device, ip="192.0.2.77", amr=amr
        )
        now[0] = at
        decision = pdp.evaluate(request)
        attack.append((decision, request, decision.behavior or {}))
        done += 1
        if progress is not None:
            progress(done, total)
        if decision.effect is Effect.ALLOW:
            served += ATTACK_PAGE
            refusals, stopped_at, stopped_by = 0, None, ()
        elif decision.effect is Effect.STEP_UP:
            amr = ("pwd", "mfa")  # she has her own second factor: the step-up is passed
        else:
            if refusals == 0:
                stopped_at = at
                stopped_by = tuple(r.rule for r in decision.reasons if r.effect is Effect.DENY)
            refusals += 1
            if refusals >= GIVE_UP_AFTER:
                break
        at += ATTACK_EVERY
    if progress is not None:
        progress(total, total)
    phases.extend(_attack_phases(attack))
    return DemoReport(
        policies=str(path),
        phases=tuple(phases),
        decisions=done,
        attack_requests=len(attack),
        attack_records=served,
        stopped_at=stopped_at,
        stopped_by=stopped_by,
    )


def _attack_phases(
    attack: list[tuple[Decision, Mapping[str, Any], Mapping[str, Any]]],
) -> list[Phase]:
    """Split the attack where the outcome changes (effect and enforced rules)."""
    phases: list[Phase] = []
    group: list[tuple[Decision, Mapping[str, Any], Mapping[str, Any]]] = []

    def key(decision: Decision) -> tuple[Effect, tuple[str, ...]]:
        return decision.effect, tuple(
            r.rule for r in decision.reasons if r.effect is decision.effect
        )

    for item in attack:
        if group and key(group[-1][0]) != key(item[0]):
            phases.append(_phase(_attack_title(group), group))
            group = []
        group.append(item)
    if group:
        phases.append(_phase(_attack_title(group), group))
    return phases


def _attack_title(group: list[tuple[Decision, Mapping[str, Any], Mapping[str, Any]]]) -> str:
    effect = group[0][0].effect
    verb = {Effect.ALLOW: "allowed", Effect.STEP_UP: "asked to step up", Effect.DENY: "refused"}
    return f"Night: {INSIDER} bulk reading from a new device, {verb[effect]}"


def _phase(title: str, items: list[tuple[Decision, Mapping[str, Any], Mapping[str, Any]]]) -> Phase:
    effects = Counter(d.effect for d, _, _ in items)
    signals: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    served = 0
    for decision, request, _ in items:
        signals.update(decision.risk.signals)
        rules.update(r.rule for r in decision.reasons if r.effect is decision.effect)
        if decision.effect is Effect.ALLOW:
            served += int(request["context"]["records"])
    scores = [d.risk.score for d, _, _ in items]
    first, last = items[0][2], items[-1][2]
    figures = tuple(
        (name, _round(first.get(name)), _round(last.get(name)))
        for name in FIGURES
        if len(items) == 1 or first.get(name) != last.get(name)
    )
    return Phase(
        title=title,
        start=items[0][0].evaluated_at,
        end=items[-1][0].evaluated_at,
        requests=len(items),
        allows=effects[Effect.ALLOW],
        step_ups=effects[Effect.STEP_UP],
        denies=effects[Effect.DENY],
        records_served=served,
        risk=(min(scores), max(scores)),
        signals=tuple(signals.most_common()),
        rules=tuple(rules.most_common()),
        figures=figures,
    )


def _round(value: Any) -> Any:
    return round(value, 1) if isinstance(value, float) else value
