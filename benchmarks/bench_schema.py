"""What checking requests against attribute schemas costs, in one run.

    python benchmarks/bench_schema.py [--rounds 7] [--number 2000]

The 20-rule set and request of ``bench_engine.py``, with a schema describing every
attribute of that request (subject, resource, action, device, context; strings, ints,
bools, lists, an enum and an IP address; no additional properties), decided by PDPs
that differ only in ``schema_validation``: ``off``, ``report`` and ``enforce``, in turn
within every round so all see the same machine load. The figure is the median over
rounds of the per-call mean of ``--number`` calls (``timeit``); the ratios are to
``off``. The target is ``enforce`` at most 1.2x ``off``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import NOW, REQUEST, policy_yaml

from zerotrust import NullLog, PolicyDecisionPoint

SCHEMA = """\
subjects:
  user:
    properties:
      email: {type: string}
      roles: {type: array, items: {type: string}}
      department: {type: string, enum: [support, sales, engineering]}
      amr: {type: array, items: {type: string}}
      clearance: {type: integer}
    required: [email, roles, department, amr, clearance]
    additionalProperties: false
resources:
  customer_record:
    properties:
      owner_dept: {type: string}
      sensitivity: {type: integer}
      tags: {type: array, items: {type: string}}
    required: [owner_dept, sensitivity, tags]
    additionalProperties: false
action:
  additionalProperties: false
device:
  properties:
    id: {type: string}
    managed: {type: boolean}
    compliant: {type: boolean}
    os: {type: string}
    os_version: {type: integer}
  required: [managed, compliant, os, os_version]
  additionalProperties: false
context:
  properties:
    ip: {type: string, format: ip}
    country: {type: string}
    records: {type: integer}
  required: [ip, country, records]
  additionalProperties: false
"""

MODES = ("off", "report", "enforce")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()
    texts = {"bench.yaml": policy_yaml(), "bench.schema.yaml": SCHEMA}
    pdps = {
        mode: PolicyDecisionPoint.from_texts(
            texts,
            decision_log=NullLog(),
            behavior=None,
            clock=lambda: NOW,
            schema_validation=mode,
        )
        for mode in MODES
    }
    first = {mode: pdp.evaluate(REQUEST) for mode, pdp in pdps.items()}
    assert all(d.errors == () for d in first.values()), "the request must conform"
    assert len({(d.effect, d.reasons) for d in first.values()}) == 1
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode, pdp in pdps.items():
            timer = timeit.Timer(lambda p=pdp: p.evaluate(REQUEST))
            times[mode].append(timer.timeit(args.number) / args.number)
    off = statistics.median(times["off"])
    print(f"{'schema_validation':<18} {'evaluate()':>11} {'/ off':>7}")
    for mode in MODES:
        median = statistics.median(times[mode])
        print(f"{mode:<18} {median * 1e6:>9.1f}µs {median / off:>6.2f}x")


if __name__ == "__main__":
    main()
