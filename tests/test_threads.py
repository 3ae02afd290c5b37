"""Four threads deciding at once get exactly the answers one thread gets.

The shipped policy set (signals, risk, step-up, obligations, report-only rules, data)
is evaluated on a mix of requests chosen to allow, deny, step up and make rules error,
with behaviour features that vary per request. Each of four threads makes 20,000
decisions over the mix, starting at a different offset so that different requests
run side by side; every decision is compared, by request index, with a single-threaded
pass. What could break this: state shared between calls (a compiled condition, the
engine, the behaviour features map, memoised parsing), not a timing assertion.
"""

from __future__ import annotations

import datetime
import random
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zerotrust import Decision, NullLog, PolicyDecisionPoint
from zerotrust.request import AccessRequest

POLICIES = Path(__file__).resolve().parents[1] / "policies"
NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)
THREADS = 4
PER_THREAD = 20_000

#: Behaviour features by ``context.case``; one shared, never-copied map per case.
FEATURES: list[Mapping[str, Any]] = [
    {},
    {"records_1h": 12, "records_24h": 90, "baseline_records_per_hour": 10, "available": True},
    {"records_1h": 1500, "baseline_records_per_hour": 1000},
    {"requests_1m": 120, "new_device": True, "new_country": True},
    {"denied_1h": 25, "step_ups_1h": 4},
    {"records_1h": 650, "baseline_records_per_hour": 21.6},
    {"available": False},
    {"records_1h": "many"},  # a wrongly typed feature: comparisons error, fail closed
]


class CaseBehavior:
    """Features picked by the request, so neighbouring decisions see different behaviour."""

    def features(self, request: AccessRequest, now: datetime.datetime) -> Mapping[str, Any]:
        case = request.context.get("case", 0)
        return FEATURES[case % len(FEATURES)] if isinstance(case, int) else {}

    def record(self, request: AccessRequest, decision: Decision) -> None:
        return None


def _requests(count: int) -> list[dict[str, Any]]:
    rng = random.Random(20260302)
    out: list[dict[str, Any]] = []
    for i in range(count):
        sensitivity: Any = rng.choice([0, 1, 2, 3, 4, "high"])  # "high": rules error
        ip = rng.choice(["10.1.2.3", "203.0.113.9", "2001:db8:100::7", "not-an-ip"])
        out.append(
            {
                "subject": {
                    "type": "user",
                    "id": f"u-{rng.randrange(5)}",
                    "properties": {
                        "department": rng.choice(["support", "billing", "legal"]),
                        "roles": rng.sample(
                            ["agent", "manager", "auditor", "admin"], rng.randint(0, 2)
                        ),
                        "amr": rng.choice([["pwd"], ["pwd", "mfa"], ["pwd", "hwk"], []]),
                    },
                },
                "action": {"name": rng.choice(["read", "read", "export", "update", "delete"])},
                "resource": {
                    "type": "customer_record",
                    "id": f"c-{rng.randrange(1000)}",
                    "properties": {
                        "owner_dept": rng.choice(["support", "billing"]),
                        "sensitivity": sensitivity,
                    },
                },
                "device": {
                    "id": "d-1",
                    "managed": rng.random() < 0.8,
                    "compliant": rng.random() < 0.9,
                },
                "context": {"ip": ip, "country": rng.choice(["DE", "AT", "US", "KP"]), "case": i},
            }
        )
    return out


def _answer(decision: Decision) -> tuple[Any, ...]:
    d = decision.to_dict()
    return (d["effect"], d["reasons"], d["risk"], d["obligations"], d["step_up"], d["errors"])


def test_four_threads_agree_with_one_thread() -> None:
    pdp = PolicyDecisionPoint.from_path(
        POLICIES, clock=lambda: NOW, decision_log=NullLog(), behavior=CaseBehavior()
    )
    requests = _requests(97)  # prime, so each thread's offset lines up differently
    expected = [_answer(pdp.evaluate(r)) for r in requests]
    effects = {answer[0] for answer in expected}
    assert effects == {"allow", "deny", "step_up"}, effects
    assert any(answer[5] for answer in expected), "no request made a rule error"
    assert any(answer[3] for answer in expected), "no decision carried an obligation"
    assert any(answer[2]["score"] for answer in expected), "no request raised the risk"

    start = threading.Barrier(THREADS)
    mismatches: list[tuple[int, int]] = []
    crashed: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            start.wait()
            for n in range(PER_THREAD):
                index = (n * (thread + 1) + thread * 31) % len(requests)
                if _answer(pdp.evaluate(requests[index])) != expected[index]:
                    mismatches.append((thread, index))
        except BaseException as exc:  # reported below, in the test's thread
            crashed.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not crashed, crashed
    assert not mismatches, f"{len(mismatches)} decisions differed, first {mismatches[:5]}"
