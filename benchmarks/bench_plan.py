"""What a query plan costs, and what it saves a search, in one run.

    python benchmarks/bench_plan.py [--rounds 7] [--number 500] [--rows 100000]

Plan time: ``pdp.plan()`` for the shipped policies (the customer-records suite's default
request: a support agent reading customer records) and for the 20-rule set of
``bench_engine.py`` (its request without the resource's id and properties), each next to
``evaluate()`` of the same request with a resource, on one PDP (memory behaviour store,
no decision log) so both pay the same per-request costs. The figure is the median over
rounds of the per-call mean of ``--number`` calls; the target is under 1 ms per plan.

Search: a page of 50 records a support agent may read, from a table of ``--rows``
customer records in SQLite (a file in a temporary directory; 1 in 4 records of the
agent's department, half of them too sensitive), found two ways: the plan as a SQL
filter (``zerotrust.plan.sqlalchemy``, ``ORDER BY id LIMIT 50``), and reading rows in id
order deciding each (``evaluate``) until 50 are allowed; then the count of every allowed
record, by ``COUNT(*)`` with the filter and by deciding every row. Both ways give the same
answers (checked); the ratio is per-row over plan.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import NOW, REQUEST, policy_yaml

from zerotrust import NullLog, PolicyDecisionPoint

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)
SHIPPED_REQUEST: dict[str, Any] = {
    "subject": {
        "type": "user",
        "id": "u-anna",
        "properties": {"department": "support", "roles": ["agent"], "amr": ["pwd"]},
    },
    "action": {"name": "read"},
    "resource": {"type": "customer_record"},
    "device": {"id": "d-17", "managed": True, "compliant": True, "os": "macOS 15.1"},
    "context": {"ip": "10.1.2.3", "country": "DE"},
}
PAGE = 50


def _median_us(fn: Callable[[], object], number: int, rounds: int) -> float:
    fn()
    times = timeit.Timer(fn).repeat(repeat=rounds, number=number)
    return statistics.median(times) / number * 1e6


def _with_resource(request: dict[str, Any], resource: dict[str, Any]) -> dict[str, Any]:
    return {**request, "resource": {**request["resource"], **resource}}


def _resource(record: Any) -> dict[str, Any]:
    """A row as the resource the policies see (a NULL column: a missing property)."""
    properties = {k: v for k, v in record._mapping.items() if k != "id" and v is not None}
    return {"id": record.id, "properties": properties}


def plan_times(rounds: int, number: int) -> None:
    shipped = PolicyDecisionPoint.from_path(
        ROOT / "policies", clock=lambda: SHIPPED_NOW, decision_log=NullLog()
    )
    twenty = PolicyDecisionPoint.from_texts(
        {"bench.yaml": policy_yaml()}, clock=lambda: NOW, decision_log=NullLog()
    )
    twenty_plan = {**REQUEST, "resource": {"type": REQUEST["resource"]["type"]}}
    row = {"id": "c-1", "properties": {"owner_dept": "support", "sensitivity": 2}}
    cases = [
        ("shipped policies", shipped, SHIPPED_REQUEST, _with_resource(SHIPPED_REQUEST, row)),
        ("20-rule set", twenty, twenty_plan, REQUEST),
    ]
    print(f"{'policies':<18} {'plan (us)':>10} {'evaluate (us)':>14} {'ratio':>6}  plan kind")
    for name, pdp, plan_request, decision_request in cases:
        plan = pdp.plan(plan_request)
        p = _median_us(lambda: pdp.plan(plan_request), number, rounds)  # noqa: B023
        d = _median_us(lambda: pdp.evaluate(decision_request), number, rounds)  # noqa: B023
        shown = plan.kind.value + ("" if plan.not_expressible is None else ", not a filter")
        print(f"{name:<18} {p:>10.1f} {d:>14.1f} {p / d:>6.2f}  {shown}")


def search(rows: int) -> None:
    import sqlalchemy as sa

    from zerotrust.plan.sqlalchemy import to_filter

    pdp = PolicyDecisionPoint.from_path(
        ROOT / "policies", clock=lambda: SHIPPED_NOW, decision_log=NullLog(), behavior=None
    )
    meta = sa.MetaData()
    table = sa.Table(
        "customers",
        meta,
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("owner_dept", sa.String),
        sa.Column("sensitivity", sa.Integer),
        sa.Column("vip", sa.Boolean),
    )
    depts = ["support", "billing", "sales", "legal"]
    with tempfile.TemporaryDirectory() as tmp:
        engine = sa.create_engine(f"sqlite:///{tmp}/customers.db")
        meta.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                table.insert(),
                [
                    {
                        "id": f"c-{i:07d}",
                        "owner_dept": depts[i % 4],
                        "sensitivity": (i // 4) % 4 + 1,
                        "vip": i % 10 == 0,
                    }
                    for i in range(rows)
                ],
            )
        columns = {
            "resource.id": table.c.id,
            "resource.properties.owner_dept": table.c.owner_dept,
            "resource.properties.sensitivity": table.c.sensitivity,
            "resource.properties.vip": table.c.vip,
        }

        def by_plan() -> list[str]:
            plan = pdp.plan(SHIPPED_REQUEST)
            query = sa.select(table.c.id).where(to_filter(plan, columns)).order_by(table.c.id)
            with engine.connect() as conn:
                return list(conn.scalars(query.limit(PAGE)))

        def by_row() -> list[str]:
            found: list[str] = []
            query = sa.select(table).order_by(table.c.id)
            with engine.connect() as conn:
                for record in conn.execute(query):
                    if pdp.evaluate(_with_resource(SHIPPED_REQUEST, _resource(record))).allowed:
                        found.append(record.id)
                        if len(found) == PAGE:
                            break
            return found

        def count_by_plan() -> int:
            plan = pdp.plan(SHIPPED_REQUEST)
            query = sa.select(sa.func.count()).where(to_filter(plan, columns))
            with engine.connect() as conn:
                return int(conn.scalar(query) or 0)

        def count_by_row() -> int:
            with engine.connect() as conn:
                return sum(
                    pdp.evaluate(_with_resource(SHIPPED_REQUEST, _resource(record))).allowed
                    for record in conn.execute(sa.select(table))
                )

        assert by_plan() == by_row(), "the plan and per-row decisions disagree"
        assert count_by_plan() == count_by_row(), "the plan and per-row decisions disagree"
        print(f"\nsearch over {rows:,} rows (SQLite)     plan as a filter   row by row   ratio")
        for name, plan_fn, row_fn, number in (
            (f"first page of {PAGE}", by_plan, by_row, 5),
            ("count of all allowed", count_by_plan, count_by_row, 1),
        ):
            plan_ms = _median_us(plan_fn, number, 3) / 1000
            row_ms = _median_us(row_fn, 1, 3) / 1000
            print(f"  {name:<28} {plan_ms:10.2f} ms {row_ms:10.2f} ms {row_ms / plan_ms:7.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=500)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    plan_times(args.rounds, args.number)
    search(args.rows)


if __name__ == "__main__":
    main()
