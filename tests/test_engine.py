from __future__ import annotations

import asyncio
import datetime
import logging
import threading
from collections.abc import Mapping
from typing import Any

import pytest

from zerotrust import (
    AccessRequest,
    Decision,
    Effect,
    PolicyDecisionPoint,
    PolicyError,
    RequestError,
    ZeroTrustError,
)

NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)

BASE = """
policy: base
target: {resources: [doc], actions: [read]}
signals:
  - {name: unmanaged, when: "!device.managed", score: 30}
  - {name: abroad, when: "context.country != 'DE'", score: 60}
rules:
  - id: deny-risky
    effect: deny
    when: "risk.score >= 80"
    reason: too risky
  - id: step-up-secret
    effect: step_up
    when: "resource.properties.level >= 3"
    step_up: {acr_values: [loa2], max_age: 600}
  - id: allow-owner
    effect: allow
    when: "resource.properties.owner == subject.id"
    obligations: [{type: mask, fields: [ssn]}]
  - id: watch-abroad
    effect: deny
    mode: report-only
    when: "context.country != 'DE'"
"""


def request(**over: Any) -> dict[str, Any]:
    req: dict[str, Any] = {
        "subject": {"id": "u-1"},
        "action": {"name": "read"},
        "resource": {"type": "doc", "id": "d-1", "properties": {"owner": "u-1", "level": 1}},
        "device": {"managed": True},
        "context": {"country": "DE"},
    }
    for key, value in over.items():
        req[key] = value
    return req


@pytest.fixture
def pdp() -> PolicyDecisionPoint:
    return PolicyDecisionPoint.from_texts({"base.yaml": BASE}, clock=lambda: NOW)


def test_allow_with_obligations(pdp: PolicyDecisionPoint) -> None:
    d = pdp.evaluate(request())
    assert d.effect is Effect.ALLOW and d.allowed
    assert [r.rule for r in d.reasons] == ["base/allow-owner"]
    assert [(o.type, o.params["fields"], o.rule) for o in d.obligations] == [
        ("mask", ["ssn"], "base/allow-owner")
    ]
    assert d.evaluated_at == NOW
    assert d.policy_revision == pdp.revision


def test_default_deny_when_nothing_allows(pdp: PolicyDecisionPoint) -> None:
    d = pdp.evaluate(
        request(resource={"type": "doc", "properties": {"owner": "someone", "level": 1}})
    )
    assert d.effect is Effect.DENY
    assert [r.rule for r in d.reasons] == ["default-deny"]
    assert d.obligations == ()


def test_unrelated_request_is_default_denied(pdp: PolicyDecisionPoint) -> None:
    d = pdp.evaluate(request(resource={"type": "other"}))
    assert d.effect is Effect.DENY
    assert d.risk.score == 0


def test_step_up_overrides_allow_and_drops_allow_obligations(pdp: PolicyDecisionPoint) -> None:
    d = pdp.evaluate(request(resource={"type": "doc", "properties": {"owner": "u-1", "level": 3}}))
    assert d.effect is Effect.STEP_UP
    assert d.step_up is not None
    assert d.step_up.acr_values == ("loa2",) and d.step_up.max_age == 600
    assert d.obligations == ()
    assert {r.rule for r in d.reasons} == {"base/step-up-secret", "base/allow-owner"}


def test_risk_sums_signals_and_deny_overrides(pdp: PolicyDecisionPoint) -> None:
    d = pdp.evaluate(request(device={"managed": False}, context={"country": "FR"}))
    assert d.risk.score == 90
    assert d.risk.signals == ("unmanaged", "abroad")
    assert d.effect is Effect.DENY
    assert d.reasons[0].rule == "base/deny-risky" and d.reasons[0].reason == "too risky"


def test_report_only_never_enforced(pdp: PolicyDecisionPoint) -> None:
    d = pdp.evaluate(request(context={"country": "FR"}))
    assert d.effect is Effect.ALLOW
    assert [(r.rule, r.matched) for r in d.report_only] == [("base/watch-abroad", True)]


def test_erroring_signal_counts_as_matched(pdp: PolicyDecisionPoint) -> None:
    d = pdp.evaluate(request(device={}))  # device.managed missing
    assert "unmanaged" in d.risk.signals
    assert [(e.rule, e.kind) for e in d.errors] == [("base/unmanaged", "signal")]


ERRORS = """
policy: errors
rules:
  - {id: allow-broken, effect: allow, when: "context.missing == 1"}
  - {id: allow-ok, effect: allow, when: "true"}
"""


def test_erroring_allow_does_not_match() -> None:
    pdp = PolicyDecisionPoint.from_texts({"e.yaml": ERRORS})
    d = pdp.evaluate(request())
    assert d.effect is Effect.ALLOW
    assert [r.rule for r in d.reasons] == ["errors/allow-ok"]
    assert [e.rule for e in d.errors] == ["errors/allow-broken"]


@pytest.mark.parametrize("effect", ["deny", "step_up"])
def test_erroring_deny_or_step_up_matches(effect: str) -> None:
    text = ERRORS + f'  - {{id: broken, effect: {effect}, when: "context.missing > 2"}}\n'
    d = PolicyDecisionPoint.from_texts({"e.yaml": text}).evaluate(request())
    assert d.effect.value == effect
    assert "errors/broken" in [e.rule for e in d.errors]


def test_non_boolean_result_is_an_error_and_fails_closed() -> None:
    text = """
policy: p
rules:
  - {id: a, effect: allow, when: "true"}
  - {id: d, effect: deny, when: "context.country"}
"""
    d = PolicyDecisionPoint.from_texts({"p.yaml": text}).evaluate(request())
    assert d.effect is Effect.DENY
    assert "not a boolean" in d.errors[0].message


def test_step_up_requirements_merge_across_policies() -> None:
    texts = {
        "a.yaml": """
policy: a
rules:
  - {id: s, effect: step_up, step_up: {acr_values: [x, y], max_age: 900}}
""",
        "b.yaml": """
policy: b
rules:
  - {id: s, effect: step_up, step_up: {acr_values: [y, z], max_age: 300}}
  - {id: t, effect: step_up}
""",
    }
    d = PolicyDecisionPoint.from_texts(texts).evaluate(request())
    assert d.step_up is not None
    assert d.step_up.acr_values == ("x", "y", "z")
    assert d.step_up.max_age == 300


def test_explain_traces_every_applicable_rule(pdp: PolicyDecisionPoint) -> None:
    d = pdp.evaluate(request(device={}), explain=True)
    outcomes = {(t.rule, t.kind): t.outcome for t in d.explain}
    assert outcomes == {
        ("base/unmanaged", "signal"): "error",
        ("base/abroad", "signal"): "not_matched",
        ("base/deny-risky", "rule"): "not_matched",
        ("base/step-up-secret", "rule"): "not_matched",
        ("base/allow-owner", "rule"): "matched",
        ("base/watch-abroad", "report-only"): "not_matched",
    }
    assert "explain" in d.to_dict()
    assert pdp.evaluate(request()).explain == ()


def test_data_files_are_visible_to_conditions() -> None:
    texts = {
        "p.yaml": """
policy: p
rules:
  - {id: a, effect: allow, when: "subject.id in data.admins"}
""",
        "people.data.yaml": "admins: [u-1, u-2]\n",
    }
    pdp = PolicyDecisionPoint.from_texts(texts)
    assert pdp.evaluate(request()).allowed
    assert not pdp.evaluate(request(subject={"id": "u-9"})).allowed


def test_now_comes_from_the_clock() -> None:
    text = """
policy: p
rules:
  - {id: office, effect: allow, when: "now.getHours() >= 8 && now.getHours() < 18"}
"""
    at = {"t": NOW}
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": text}, clock=lambda: at["t"])
    assert pdp.evaluate(request()).allowed
    at["t"] = NOW.replace(hour=23)
    assert not pdp.evaluate(request()).allowed


def test_naive_clock_is_refused() -> None:
    pdp = PolicyDecisionPoint.from_texts({"b.yaml": BASE}, clock=lambda: NOW.replace(tzinfo=None))
    with pytest.raises(ZeroTrustError, match="timezone-aware"):
        pdp.evaluate(request())


def test_to_dict_is_json_stable(pdp: PolicyDecisionPoint) -> None:
    import json

    d = pdp.evaluate(request())
    data = d.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert list(data) == [
        "decision_id",
        "effect",
        "allowed",
        "reasons",
        "risk",
        "step_up",
        "obligations",
        "report_only",
        "errors",
        "policy_revision",
        "evaluated_at",
    ]


def test_decision_ids_are_unique(pdp: PolicyDecisionPoint) -> None:
    ids = {pdp.evaluate(request()).decision_id for _ in range(50)}
    assert len(ids) == 50


def test_evaluate_many_validates_everything_first(pdp: PolicyDecisionPoint) -> None:
    class Counting:
        def __init__(self) -> None:
            self.count = 0

        def emit(
            self, decision: Decision, request: AccessRequest, extra: Mapping[str, Any]
        ) -> None:
            self.count += 1

    sink = Counting()
    counted = PolicyDecisionPoint(pdp.policies, decision_log=sink)
    with pytest.raises(RequestError):
        counted.evaluate_many([request(), {"subject": {}}])
    assert sink.count == 0
    assert [d.effect for d in counted.evaluate_many([request(), request(device={})])] == [
        Effect.ALLOW,
        Effect.ALLOW,
    ]
    assert sink.count == 2


def test_evaluate_async(pdp: PolicyDecisionPoint) -> None:
    d = asyncio.run(pdp.evaluate_async(request()))
    assert d.allowed


def test_failing_sink_never_changes_or_crashes_a_decision(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        def emit(
            self, decision: Decision, request: AccessRequest, extra: Mapping[str, Any]
        ) -> None:
            raise OSError("disk full")

    pdp = PolicyDecisionPoint.from_texts({"b.yaml": BASE}, decision_log=Broken())
    with caplog.at_level(logging.ERROR, logger="zerotrust"):
        d = pdp.evaluate(
            request(resource={"type": "doc", "properties": {"owner": "x", "level": 1}})
        )
    assert d.effect is Effect.DENY
    assert pdp.decision_log_failures == 1
    assert "disk full" in caplog.text


def test_failing_behavior_source_reports_unavailable() -> None:
    text = """
policy: p
rules:
  - {id: store-down, effect: step_up, when: "has(behavior.available) && !behavior.available"}
  - {id: a, effect: allow}
"""

    class Down:
        def features(self, request: AccessRequest, now: datetime.datetime) -> Mapping[str, Any]:
            raise ConnectionError("redis down")

        def record(self, request: AccessRequest, decision: Decision) -> None:
            raise ConnectionError("redis down")

    pdp = PolicyDecisionPoint.from_texts({"p.yaml": text}, behavior=Down())
    assert pdp.evaluate(request()).effect is Effect.STEP_UP


def test_reload_keeps_last_good_set(tmp_path: Any) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(BASE)
    pdp = PolicyDecisionPoint.from_path(tmp_path)
    before = pdp.revision
    policy.write_text(BASE.replace('"risk.score >= 80"', '"risk.score >= "'))
    with pytest.raises(PolicyError):
        pdp.reload()
    assert pdp.revision == before
    assert pdp.evaluate(request()).allowed
    policy.write_text(BASE.replace("allow-owner", "allow-mine"))
    assert pdp.reload() != before
    assert [r.rule for r in pdp.evaluate(request()).reasons] == ["base/allow-mine"]


def test_threads_evaluate_while_another_reloads(tmp_path: Any) -> None:
    (tmp_path / "p.yaml").write_text(BASE)
    pdp = PolicyDecisionPoint.from_path(tmp_path, clock=lambda: NOW)
    expected = pdp.evaluate(request()).effect
    failures: list[str] = []
    stop = threading.Event()

    def worker() -> None:
        for _ in range(40):
            d = pdp.evaluate(request())
            if d.effect is not expected:
                failures.append(d.effect.value)

    def reloader() -> None:
        while not stop.is_set():
            pdp.reload()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    r = threading.Thread(target=reloader)
    r.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    r.join()
    assert failures == []


def test_only_applicable_policies_are_evaluated() -> None:
    texts = {
        f"p{i}.yaml": f"""
policy: p{i}
target: {{resources: [type{i}], actions: [read]}}
rules:
  - {{id: r, effect: allow}}
"""
        for i in range(30)
    }
    texts["any.yaml"] = """
policy: any-read
target: {actions: [read]}
rules:
  - {id: deny-bad, effect: deny, when: "context.bad == true"}
"""
    pdp = PolicyDecisionPoint.from_texts(texts)
    d = pdp.evaluate(
        {
            "subject": {"id": "u"},
            "action": {"name": "read"},
            "resource": {"type": "type7"},
            "context": {"bad": False},
        },
        explain=True,
    )
    assert d.allowed
    assert {t.rule for t in d.explain} == {"p7/r", "any-read/deny-bad"}
