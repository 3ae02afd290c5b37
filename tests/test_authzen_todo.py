"""The AuthZEN Todo interop suite (Authorization API 1.0) against examples/authzen-todo.

Every case of ``decisions-authorization-api-1_0-02.json`` (40 single evaluations, 3 batch
evaluations) must match: AuthZEN ``"decision": true`` is an ``allow``, ``false`` anything else.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from zerotrust import PolicyDecisionPoint

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "examples" / "authzen-todo"
CASES_FILE = (
    ROOT.parent
    / "shared"
    / "conformance"
    / "authzen"
    / "interop"
    / "authzen-todo-backend"
    / "test"
    / "decisions-authorization-api-1_0-02.json"
)
NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)

# The parts of an AuthZEN request the library takes. AuthZEN 1.0 requests carry exactly
# these four (plus, in a batch, ``evaluations`` and ``options``), and zerotrust's request
# accepts all four as they are, so nothing is dropped from an evaluation request.
REQUEST_KEYS = ("subject", "action", "resource", "context")

USERS = {
    "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs": "rick",
    "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs": "morty",
    "CiRmZDI2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs": "summer",
    "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs": "beth",
    "CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs": "jerry",
}


def _load() -> dict[str, Any] | None:
    if not CASES_FILE.is_file():
        return None
    data: dict[str, Any] = json.loads(CASES_FILE.read_text(encoding="utf-8"))
    return data


SUITE = _load()
needs_suite = pytest.mark.skipif(
    SUITE is None,
    reason=f"AuthZEN interop cases not found at {CASES_FILE} (the shared conformance "
    "directory sits beside the repository)",
)


def _label(request: dict[str, Any]) -> str:
    subject = USERS.get(request.get("subject", {}).get("id", ""), "unknown")
    action = request.get("action", {}).get("name", "?")
    resource = request.get("resource", {})
    owner = resource.get("properties", {}).get("ownerID") or resource.get("id", "?")
    return f"{subject}-{action}-{owner}"


def _single_cases() -> list[Any]:
    if SUITE is None:
        return [pytest.param(None, None, id="missing")]
    return [
        pytest.param(case["request"], case["expected"], id=f"{i:02d}-{_label(case['request'])}")
        for i, case in enumerate(SUITE["evaluation"], 1)
    ]


def _batch_cases() -> list[Any]:
    if SUITE is None:
        return [pytest.param(None, None, id="missing")]
    return [
        pytest.param(case["request"], case["expected"], id=f"batch{i}-{_label(case['request'])}")
        for i, case in enumerate(SUITE["evaluations"], 1)
    ]


def _items(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """AuthZEN batch semantics: each item's keys replace the top-level defaults."""
    defaults = {k: batch[k] for k in REQUEST_KEYS if k in batch}
    items = batch.get("evaluations") or [{}]
    return [{**defaults, **{k: item[k] for k in REQUEST_KEYS if k in item}} for item in items]


@pytest.fixture(scope="module")
def pdp() -> PolicyDecisionPoint:
    return PolicyDecisionPoint.from_path(POLICIES, clock=lambda: NOW)


@needs_suite
def test_suite_has_the_expected_size() -> None:
    assert SUITE is not None
    assert len(SUITE["evaluation"]) == 40
    assert len(SUITE["evaluations"]) == 3


@needs_suite
@pytest.mark.parametrize(("request_body", "expected"), _single_cases())
def test_evaluation(pdp: PolicyDecisionPoint, request_body: dict[str, Any], expected: bool) -> None:
    decision = pdp.evaluate({k: request_body[k] for k in REQUEST_KEYS if k in request_body})
    assert decision.allowed is expected, decision.to_dict()
    assert decision.errors == ()


@needs_suite
@pytest.mark.parametrize(("batch", "expected"), _batch_cases())
def test_evaluations_batch(
    pdp: PolicyDecisionPoint, batch: dict[str, Any], expected: list[dict[str, bool]]
) -> None:
    decisions = pdp.evaluate_many(_items(batch))
    assert [{"decision": d.allowed} for d in decisions] == expected


def test_batch_items_override_defaults_per_key() -> None:
    batch = {
        "subject": {"type": "user", "id": "a"},
        "action": {"name": "can_update_todo"},
        "resource": {"type": "todo", "id": "t-0"},
        "evaluations": [{"resource": {"type": "todo", "id": "t-1"}}, {"action": {"name": "x"}}],
    }
    first, second = _items(batch)
    assert first["subject"] == {"type": "user", "id": "a"}
    assert first["resource"] == {"type": "todo", "id": "t-1"}
    assert second["action"] == {"name": "x"}
    assert second["resource"] == {"type": "todo", "id": "t-0"}


def test_unknown_subject_gets_nothing(pdp: PolicyDecisionPoint) -> None:
    decision = pdp.evaluate(
        {
            "subject": {"type": "user", "id": "not-in-the-directory"},
            "action": {"name": "can_read_todos"},
            "resource": {"type": "todo", "id": "todo-1"},
        }
    )
    assert not decision.allowed
    assert [r.rule for r in decision.reasons] == ["default-deny"]
