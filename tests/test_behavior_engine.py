"""The PDP with a behaviour store: defaults, on_store_error, record_access."""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from zerotrust import (
    AccessRequest,
    BehaviorConfig,
    Decision,
    Effect,
    MemoryBehaviorStore,
    PolicyDecisionPoint,
    RequestError,
    StoreErrorMode,
)
from zerotrust.engine import STORE_UNAVAILABLE

NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)
POLICY = """
policy: p
target: {resources: [customer_record], actions: [read]}
rules:
  - id: deny-bulk
    effect: deny
    when: "has(behavior.records_1h) && behavior.records_1h > 100"
  - id: mask
    effect: allow
    obligations: [{type: mask, fields: [ssn]}]
"""


def _request(records: int = 1, subject: str = "u-1") -> dict[str, Any]:
    return {
        "subject": {"id": subject},
        "action": {"name": "read"},
        "resource": {"type": "customer_record", "id": "c-1"},
        "context": {"records": records},
    }


class Down:
    """A store that cannot be reached."""

    def __init__(self, mode: StoreErrorMode) -> None:
        self.on_store_error = mode
        self.recorded = 0

    def features(self, request: AccessRequest, now: datetime.datetime) -> Mapping[str, Any]:
        return {"available": False}

    def record(self, request: AccessRequest, decision: Decision) -> None:
        self.recorded += 1


def test_from_texts_keeps_history_in_a_memory_store_by_default() -> None:
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, clock=lambda: NOW)
    effects = [pdp.evaluate(_request(40)).effect for _ in range(4)]
    assert effects == [Effect.ALLOW, Effect.ALLOW, Effect.DENY, Effect.DENY]
    assert pdp.evaluate(_request(40, subject="u-2")).effect is Effect.ALLOW


def test_behavior_none_keeps_no_history() -> None:
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, clock=lambda: NOW, behavior=None)
    assert {pdp.evaluate(_request(60)).effect for _ in range(4)} == {Effect.ALLOW}


@pytest.mark.parametrize(
    ("mode", "effect"),
    [
        (StoreErrorMode.DENY, Effect.DENY),
        (StoreErrorMode.STEP_UP, Effect.STEP_UP),
        (StoreErrorMode.EVALUATE, Effect.ALLOW),
    ],
)
def test_on_store_error(mode: StoreErrorMode, effect: Effect) -> None:
    store = Down(mode)
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, clock=lambda: NOW, behavior=store)
    decision = pdp.evaluate(_request())
    assert decision.effect is effect
    if mode is not StoreErrorMode.EVALUATE:
        assert decision.reasons[0].rule == STORE_UNAVAILABLE
        assert decision.obligations == ()  # the allow's mask belonged to the allow
    assert store.recorded == 0  # a decision made without behaviour is not recorded


def test_memory_store_default_mode_is_deny() -> None:
    assert MemoryBehaviorStore().on_store_error is StoreErrorMode.DENY
    assert BehaviorConfig(on_store_error="step_up").on_store_error is StoreErrorMode.STEP_UP


def test_record_access_by_decision_id_replaces_the_count() -> None:
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, clock=lambda: NOW)
    first = pdp.evaluate(_request(10))
    pdp.record_access(first.decision_id, records=95)  # the query returned more rows
    assert pdp.evaluate(_request(1)).effect is Effect.ALLOW  # 96
    assert pdp.evaluate(_request(5)).effect is Effect.DENY  # 101
    pdp.record_access(first, records=0)  # and back down again
    assert pdp.evaluate(_request(5)).effect is Effect.ALLOW


def test_record_access_by_request_adds_records() -> None:
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, clock=lambda: NOW)
    pdp.record_access(_request(), records=100)
    assert pdp.evaluate(_request(1)).effect is Effect.DENY


def test_record_access_refuses_what_it_cannot_use() -> None:
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, clock=lambda: NOW)
    with pytest.raises(RequestError, match="decision"):
        pdp.record_access("no-such-decision", records=1)
    with pytest.raises(RequestError, match="records"):
        pdp.record_access(_request(), records=-1)


def test_evaluate_async_with_the_memory_store() -> None:
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, clock=lambda: NOW)

    async def run() -> list[Effect]:
        return [(await pdp.evaluate_async(_request(60))).effect for _ in range(2)]

    assert asyncio.run(run()) == [Effect.ALLOW, Effect.DENY]


def test_pdp_level_threads_give_exact_counts() -> None:
    import threading

    store = MemoryBehaviorStore()
    allow_all = "policy: p\nrules:\n  - {id: a, effect: allow}\n"
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": allow_all}, clock=lambda: NOW, behavior=store)
    request = AccessRequest.from_mapping(_request(3))

    def work() -> None:
        for _ in range(10_000):
            pdp.evaluate(request)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    features = store.features(AccessRequest.from_mapping(_request(0)), NOW)
    assert (features["requests_1h"], features["records_1h"]) == (40_001, 120_000)


def test_record_access_with_a_huge_count_keeps_features_and_the_log_line_64_bit(
    tmp_path: Path,
) -> None:
    """A reported count past 64 bits (or past a float's range) is counted as
    MAX_RECORDS, as context.records is: the memory store's map, which the decision log
    writes unchecked, stays 64-bit integers, and the subject's features stay available."""
    from zerotrust import JsonLinesLog
    from zerotrust._plain import INT64_MAX
    from zerotrust.behavior.features import MAX_RECORDS

    path = tmp_path / "decisions.jsonl"
    request = {
        "subject": {"id": "u-1"},
        "action": {"name": "read"},
        "resource": {"type": "customer_record", "id": "c-1"},
    }
    with JsonLinesLog(path) as log:
        pdp = PolicyDecisionPoint.from_texts(
            {"p.yaml": "policy: p\nrules:\n  - {id: a, effect: allow}\n"}, decision_log=log
        )
        pdp.evaluate(request)
        pdp.record_access(AccessRequest.from_mapping(request), records=2**70)
        pdp.record_access(AccessRequest.from_mapping(request), records=10**400)
        decision = pdp.evaluate(request)
    assert decision.behavior is not None and decision.behavior["available"] is True
    assert decision.behavior["records_1h"] == 1 + 2 * MAX_RECORDS + 1
    for line in path.read_text().splitlines():
        logged = json.loads(line)["behavior"]
        assert all(abs(v) <= INT64_MAX for v in logged.values() if type(v) is int)
    assert pdp.decision_log_failures == 0 and pdp.behavior_failures == 0
