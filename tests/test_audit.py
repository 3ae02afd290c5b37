from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from zerotrust import JsonLinesLog, LoggingLog, NullLog, PolicyDecisionPoint, audit_record

POLICY = """
policy: p
rules:
  - {id: allow-all, effect: allow, obligations: [{type: mask, fields: [ssn]}]}
  - {id: watch, effect: deny, mode: report-only, when: "context.ip == '10.0.0.1'"}
"""

REQUEST: dict[str, Any] = {
    "subject": {"id": "u-1", "properties": {"email": "eve@example.com", "roles": ["agent"]}},
    "action": {"name": "read"},
    "resource": {"type": "customer_record", "id": "c-1", "properties": {"ssn": "123"}},
    "device": {"id": "d-1"},
    "context": {"ip": "10.0.0.1"},
}


def test_json_lines_log_writes_one_flushed_line_per_decision(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    log = JsonLinesLog(path)
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, decision_log=log)
    first = pdp.evaluate(REQUEST)
    # Written and flushed before evaluate returned: readable without closing.
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["decision_id"] == first.decision_id
    assert entry["effect"] == "allow"
    assert entry["subject"] == {"type": "user", "id": "u-1"}
    assert entry["action"] == "read"
    assert entry["resource"] == {"type": "customer_record", "id": "c-1"}
    assert entry["matched_rules"] == ["p/allow-all"]
    assert entry["risk"] == {"score": 0, "signals": []}
    assert entry["errors"] == []
    assert entry["policy_revision"] == pdp.revision
    assert entry["report_only"][0]["matched"] is True
    assert entry["time"] == first.evaluated_at.isoformat()
    # No request field dropped silently.
    assert entry["request"]["subject"]["properties"]["email"] == "eve@example.com"
    assert entry["request"]["device"] == {"id": "d-1"}
    pdp.evaluate(REQUEST)
    log.close()
    assert len(path.read_text().splitlines()) == 2


def test_redaction_of_named_paths(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    with JsonLinesLog(
        path,
        redact=["subject.properties.email", "resource.properties.*", "context.ip", "subject.id"],
    ) as log:
        PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, decision_log=log).evaluate(REQUEST)
    entry = json.loads(path.read_text())
    req = entry["request"]
    assert req["subject"]["properties"] == {"email": "[REDACTED]", "roles": ["agent"]}
    assert req["resource"]["properties"] == {"ssn": "[REDACTED]"}
    assert req["context"]["ip"] == "[REDACTED]"
    assert req["subject"]["id"] == "[REDACTED]"
    assert entry["subject"]["id"] == "[REDACTED]"
    assert "eve@example.com" not in path.read_text()


def test_concurrent_lines_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    log = JsonLinesLog(path)
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, decision_log=log)

    def worker() -> None:
        for _ in range(25):
            pdp.evaluate(REQUEST)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 100
    assert len({json.loads(line)["decision_id"] for line in lines}) == 100


def test_logging_log(caplog: pytest.LogCaptureFixture) -> None:
    pdp = PolicyDecisionPoint.from_texts(
        {"p.yaml": POLICY}, decision_log=LoggingLog(redact=["context.ip"])
    )
    with caplog.at_level(logging.INFO, logger="zerotrust.decisions"):
        d = pdp.evaluate(REQUEST)
    record = json.loads(caplog.records[0].getMessage())
    assert record["decision_id"] == d.decision_id
    assert record["request"]["context"]["ip"] == "[REDACTED]"


def test_null_log_and_extra() -> None:
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, decision_log=NullLog())
    d = pdp.evaluate(REQUEST, extra={"http": {"method": "GET", "route": "/customers/{id}"}})
    assert d.allowed
    from zerotrust import AccessRequest

    record = audit_record(d, AccessRequest.from_mapping(REQUEST), extra={"route": "/x"})
    assert record["extra"] == {"route": "/x"}


def test_unwritable_log_fails_loud_not_open(tmp_path: Path) -> None:
    log = JsonLinesLog(tmp_path / "d.jsonl")
    log.close()  # every write now raises
    pdp = PolicyDecisionPoint.from_texts(
        {"p.yaml": "policy: p\nrules: [{id: d, effect: deny}]\n"}, decision_log=log
    )
    assert not pdp.evaluate(REQUEST).allowed
    assert pdp.decision_log_failures == 1
