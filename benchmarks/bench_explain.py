"""What ``explain=True`` costs, and that ``explain=False`` pays nothing for it, in one run.

    python benchmarks/bench_explain.py [--rounds 7] [--number 2000]

One request against the 20-rule set of ``bench_engine.py`` and one against the shipped
policies (``policies/``), each decided with ``explain=False`` and ``explain=True`` in turn
within every round, so both see the same machine load. The figure is the median over
rounds of the per-call mean of ``--number`` calls (``timeit``); the ratio is explain on
to explain off. ``explain=False`` runs the same code as before explain listed values
(one ``if`` in the combining loop): its cost is the decision's, in bench_decision.py.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import NOW, REQUEST, policy_yaml

from zerotrust import NullLog, PolicyDecisionPoint

SHIPPED_REQUEST: dict[str, Any] = {
    "subject": {
        "id": "u-eve",
        "properties": {"department": "support", "roles": ["agent"], "amr": ["pwd"]},
    },
    "action": {"name": "read"},
    "resource": {
        "type": "customer_record",
        "id": "c-77",
        "properties": {"owner_dept": "support", "sensitivity": 2},
    },
    "device": {"id": "d-9", "managed": True, "compliant": True},
    "context": {"ip": "10.1.2.3", "country": "DE"},
}


def _pdps() -> dict[str, tuple[PolicyDecisionPoint, dict[str, Any]]]:
    root = Path(__file__).resolve().parent.parent
    clock = lambda: NOW  # noqa: E731
    rules = PolicyDecisionPoint.from_texts(
        {"bench.yaml": policy_yaml()}, decision_log=NullLog(), clock=clock
    )
    shipped = PolicyDecisionPoint.from_path(root / "policies", decision_log=NullLog(), clock=clock)
    return {"20 rules": (rules, REQUEST), "shipped policies": (shipped, SHIPPED_REQUEST)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()
    times: dict[tuple[str, bool], list[float]] = {}
    pdps = _pdps()
    for name, (pdp, request) in pdps.items():
        off, on = pdp.evaluate(request), pdp.evaluate(request, explain=True)
        assert off.effect is on.effect and off.reasons == on.reasons, name
    for _ in range(args.rounds):
        for name, (pdp, request) in pdps.items():
            for explain in (False, True):
                timer = timeit.Timer(lambda p=pdp, r=request, e=explain: p.evaluate(r, explain=e))
                times.setdefault((name, explain), []).append(
                    timer.timeit(args.number) / args.number
                )
    print(f"{'policy set':<18} {'explain off':>12} {'explain on':>12} {'on / off':>9}")
    for name in pdps:
        off = statistics.median(times[(name, False)]) * 1e6
        on = statistics.median(times[(name, True)]) * 1e6
        print(f"{name:<18} {off:>10.1f}µs {on:>10.1f}µs {on / off:>8.2f}x")


if __name__ == "__main__":
    main()
