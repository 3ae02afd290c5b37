from __future__ import annotations

import collections
import json
import logging
import os
import resource
import stat
import subprocess
import sys
import tempfile
import threading
import types
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import (
    QUOTING_CONDITIONS,
    PlainMapping,
    RaisingMapping,
    extra_shapes,
    json_containers_with_paths,
    lead_ins,
    redaction_secrets,
)

import zerotrust
from zerotrust import (
    AccessRequest,
    DecisionLogError,
    Effect,
    JsonLinesLog,
    LoggingLog,
    NullLog,
    PolicyDecisionPoint,
    PolicyError,
    RequestError,
    ZeroTrustError,
    audit_record,
)
from zerotrust._describe import escape, hider, quote
from zerotrust.audit.sinks import encode_line

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


# --- every decision is one complete line, or counted as lost -----------------------------

DENY_ALL = "policy: p\nrules: [{id: d, effect: deny}]\n"


def _entries(path: Path) -> list[dict[str, Any]]:
    """Every line of the file, each of which must be a whole JSON object."""
    text = path.read_bytes().decode("utf-8")  # strict: the file is valid UTF-8
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def _pdp(log: Any, policy: str = POLICY) -> PolicyDecisionPoint:
    return PolicyDecisionPoint.from_texts({"p.yaml": policy}, decision_log=log, behavior=None)


def test_lone_surrogate_in_extra_does_not_lose_the_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path) as log:
        pdp = _pdp(log)
        d = pdp.evaluate(REQUEST, extra={"http": {"path": "/customers/c-1\ud800"}})
        assert pdp.decision_log_failures == 0
    (only,) = _entries(path)
    assert only["decision_id"] == d.decision_id
    assert only["extra"]["http"]["path"] == "/customers/c-1\ud800"  # escaped, not lost


def test_lone_surrogate_in_the_request_is_refused_before_any_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path) as log:
        pdp = _pdp(log)
        for _ in range(3):
            with pytest.raises(RequestError):
                pdp.evaluate({**REQUEST, "subject": {"id": "u-\ud800"}})
        assert pdp.decision_log_failures == 0
    assert path.read_bytes() == b""


def test_line_separators_in_request_values_do_not_split_the_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path) as log:
        _pdp(log).evaluate({**REQUEST, "context": {"note": "a\u2028b\u2029c\x85d\re\nf"}})
    (only,) = _entries(path)  # str.splitlines() splits at all six
    assert only["request"]["context"]["note"] == "a\u2028b\u2029c\x85d\re\nf"


@pytest.mark.parametrize(
    "extra",
    [{"score": float("nan")}, {"score": float("inf")}, {"obj": object()}],
    ids=["nan", "infinity", "object"],
)
def test_extra_that_is_not_strict_json_is_counted_and_writes_nothing(
    tmp_path: Path, extra: dict[str, Any]
) -> None:
    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path) as log:
        pdp = _pdp(log, DENY_ALL)
        assert not pdp.evaluate(REQUEST, extra=extra).allowed
        assert pdp.decision_log_failures == 1
        pdp.evaluate(REQUEST)
    assert len(_entries(path)) == 1


# A real short write: RLIMIT_FSIZE in a child process (Python ignores SIGXFSZ, so the
# kernel writes what fits below the limit and reports a short count, or EFBIG).
_SIZE_LIMIT_SCRIPT = """
import json, os, resource, sys
from zerotrust import JsonLinesLog, PolicyDecisionPoint
path, headroom = sys.argv[1], int(sys.argv[2])
log = JsonLinesLog(path)
pdp = PolicyDecisionPoint.from_texts(
    {"p.yaml": "policy: p\\nrules: [{id: d, effect: deny}]\\n"}, decision_log=log, behavior=None
)
req = {"subject": {"id": "u-1"}, "action": {"name": "read"}, "resource": {"type": "doc"}}
ids = [pdp.evaluate(req).decision_id]
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path) + headroom, hard))
failed = pdp.evaluate(req)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
ids.append(pdp.evaluate(req).decision_id)
log.close()
print(json.dumps({"ok": ids, "failed": failed.decision_id, "allowed": failed.allowed,
                  "failures": pdp.decision_log_failures}))
"""


@pytest.mark.parametrize("headroom", [0, 1, 100], ids=["efbig", "one-byte", "mid-line"])
def test_write_cut_short_by_a_size_limit_leaves_no_torn_fragment(
    tmp_path: Path, headroom: int
) -> None:
    path = tmp_path / "d.jsonl"
    run = subprocess.run(
        [sys.executable, "-c", _SIZE_LIMIT_SCRIPT, str(path), str(headroom)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(zerotrust.__file__).parents[1])},
    )
    assert run.returncode == 0, run.stderr  # close() did not raise either
    out = json.loads(run.stdout)
    entries = _entries(path)  # every line whole: no fragment written later
    assert [e["decision_id"] for e in entries] == out["ok"]
    assert out["failed"] not in path.read_text("utf-8")  # never both counted and written
    assert out["failures"] == 1
    assert out["allowed"] is False  # the decision stands
    assert "DecisionLogError" in run.stderr


def test_fragment_that_could_not_be_removed_stays_a_line_of_its_own(tmp_path: Path) -> None:
    # When a short write cannot be cut back (another program appended meanwhile), the
    # next line starts on a fresh line: one bad line, and the next one whole.
    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path) as log:
        pdp = _pdp(log)
        with path.open("ab") as other:
            other.write(b'{"decision_id":"torn')
        log._torn = True
        d = pdp.evaluate(REQUEST)
        e = pdp.evaluate(REQUEST)
    lines = path.read_text("utf-8").splitlines()
    assert lines[0] == '{"decision_id":"torn'
    assert [json.loads(line)["decision_id"] for line in lines[1:]] == [d.decision_id, e.decision_id]


def test_closed_log_counts_every_later_decision(tmp_path: Path) -> None:
    log = JsonLinesLog(tmp_path / "d.jsonl")
    pdp = _pdp(log, DENY_ALL)
    log.close()
    log.close()  # twice is harmless
    for _ in range(2):
        assert not pdp.evaluate(REQUEST).allowed
    assert pdp.decision_log_failures == 2


def test_log_rotated_by_rename_gets_the_next_line_in_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path) as log:
        pdp = _pdp(log)
        first = pdp.evaluate(REQUEST)
        path.rename(tmp_path / "d.jsonl.1")  # what logrotate does
        second = pdp.evaluate(REQUEST)
        assert pdp.decision_log_failures == 0
    assert [e["decision_id"] for e in _entries(tmp_path / "d.jsonl.1")] == [first.decision_id]
    assert [e["decision_id"] for e in _entries(path)] == [second.decision_id]


def test_log_file_removed_is_created_again(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path) as log:
        pdp = _pdp(log)
        pdp.evaluate(REQUEST)
        path.unlink()
        d = pdp.evaluate(REQUEST)
        assert pdp.decision_log_failures == 0
    assert [e["decision_id"] for e in _entries(path)] == [d.decision_id]


def test_log_that_cannot_be_reopened_after_rotation_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path) as log:
        pdp = _pdp(log, DENY_ALL)
        path.rename(tmp_path / "d.jsonl.1")
        path.mkdir()  # the path now names something that cannot be appended to
        assert not pdp.evaluate(REQUEST).allowed
        assert pdp.decision_log_failures == 1
        path.rmdir()
        d = pdp.evaluate(REQUEST)  # tried again on the next line
        assert pdp.decision_log_failures == 1
    assert [e["decision_id"] for e in _entries(path)] == [d.decision_id]
    assert _entries(tmp_path / "d.jsonl.1") == []


def test_reopen_moves_to_the_file_now_at_path(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path) as log:
        pdp = _pdp(log)
        pdp.evaluate(REQUEST)
        log.reopen()  # nothing rotated: same file, nothing lost or repeated
        pdp.evaluate(REQUEST)
    assert len(_entries(path)) == 2


def test_log_keeps_its_file_when_the_process_changes_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    with JsonLinesLog("d.jsonl") as log:
        pdp = _pdp(log)
        pdp.evaluate(REQUEST)
        monkeypatch.chdir(tmp_path / "elsewhere")
        pdp.evaluate(REQUEST)
    assert len(_entries(tmp_path / "d.jsonl")) == 2
    assert not (tmp_path / "elsewhere" / "d.jsonl").exists()


_APPENDER_SCRIPT = """
import sys
from zerotrust import JsonLinesLog, PolicyDecisionPoint
with JsonLinesLog(sys.argv[1]) as log:
    pdp = PolicyDecisionPoint.from_texts(
        {"p.yaml": "policy: p\\nrules: [{id: a, effect: allow}]\\n"}, decision_log=log,
        behavior=None,
    )
    req = {"subject": {"id": "u-" + "x" * 3000}, "action": {"name": "read"},
           "resource": {"type": "doc"}}
    for _ in range(200):
        pdp.evaluate(req)
"""


def test_processes_appending_to_one_log_never_mix_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    env = {**os.environ, "PYTHONPATH": str(Path(zerotrust.__file__).parents[1])}
    children = [
        subprocess.Popen([sys.executable, "-c", _APPENDER_SCRIPT, str(path)], env=env)
        for _ in range(3)
    ]
    assert [child.wait(timeout=120) for child in children] == [0, 0, 0]
    entries = _entries(path)
    assert len(entries) == 600
    assert len({e["decision_id"] for e in entries}) == 600


def test_new_log_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    JsonLinesLog(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_log_that_cannot_be_opened_raises_decision_log_error(tmp_path: Path) -> None:
    with pytest.raises(DecisionLogError, match="cannot open decision log") as info:
        JsonLinesLog(tmp_path / "missing-dir" / "d.jsonl")
    assert isinstance(info.value, OSError)
    assert isinstance(info.value.__cause__, FileNotFoundError)


# --- redaction reaches extra -----------------------------------------------------------


def test_redacted_resource_id_does_not_leak_through_the_logged_http_path(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    extra = {"http": {"method": "GET", "path": "/customers/c-1001", "route": "/customers/{id}"}}
    request = {**REQUEST, "resource": {"type": "customer_record", "id": "c-1001"}}
    with JsonLinesLog(path, redact=["resource.id"]) as log:
        _pdp(log).evaluate(request, extra=extra)
    (only,) = _entries(path)
    assert only["resource"]["id"] == "[REDACTED]"
    assert only["extra"]["http"] == {
        "method": "GET",
        "path": "/customers/[REDACTED]",
        "route": "/customers/{id}",
    }
    assert "c-1001" not in path.read_text("utf-8")
    assert extra["http"]["path"] == "/customers/c-1001"  # the caller's extra is untouched


def test_redacted_value_does_not_leak_through_an_error_message(tmp_path: Path) -> None:
    policy = """
policy: p
rules:
  - {id: from-office, effect: deny, when: 'ip_in_cidr(context.ip, "10.0.0.0/8")'}
  - {id: watch, effect: deny, mode: report-only, when: 'int(context.ip) > 0'}
"""
    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path, redact=["context.ip"]) as log:
        d = _pdp(log, policy).evaluate({**REQUEST, "context": {"ip": "not-an-ip\n'x'"}})
    assert any("not-an-ip" in e.message for e in d.errors)  # the decision keeps it
    (only,) = _entries(path)
    assert "[REDACTED]" in only["errors"][0]["message"]
    assert only["report_only"][0]["error"] is not None
    assert "not-an-ip" not in path.read_text("utf-8")


def test_redact_paths_may_name_extra_keys(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    extra = {"http": {"method": "GET", "path": "/customers/c-1", "route": "/customers/{id}"}}
    with JsonLinesLog(path, redact=["extra.http.path"]) as log:
        _pdp(log).evaluate(REQUEST, extra=extra)
    (only,) = _entries(path)
    assert only["extra"]["http"]["path"] == "[REDACTED]"
    assert only["extra"]["http"]["route"] == "/customers/{id}"


@pytest.mark.parametrize("redact", ["subject.*", "*.id", "subject"])
def test_wildcard_redaction_also_hides_the_entry_summary(tmp_path: Path, redact: str) -> None:
    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path, redact=[redact]) as log:
        _pdp(log).evaluate(REQUEST, extra={"user": "u-1 asked"})
    (only,) = _entries(path)
    assert only["subject"]["id"] == "[REDACTED]"
    assert only["extra"]["user"] == "[REDACTED] asked"
    assert '"u-1' not in path.read_text("utf-8")


@pytest.mark.parametrize(
    "redact",
    [
        "context.ip",
        ["subjects.properties.email"],
        ["email"],
        [""],
        ["context..ip"],
        [7],
        ["context[user.email]"],
        ['context["user.email"'],
        ['context.["user.email"]'],
        ['context["a"]b'],
        ['context."a"'],
        ["context.ip."],
        ['["context"].ip'],
        ["behaviour.peers"],
    ],
    ids=[
        "one-string",
        "typo",
        "no-part",
        "empty",
        "empty-segment",
        "not-a-string",
        "bracket-unquoted",
        "bracket-unclosed",
        "dot-before-bracket",
        "text-after-bracket",
        "quotes-without-brackets",
        "trailing-dot",
        "bracketed-head",
        "british-head",
    ],
)
def test_redact_path_that_would_hide_nothing_is_refused(tmp_path: Path, redact: Any) -> None:
    with pytest.raises(ZeroTrustError, match="redact"):
        JsonLinesLog(tmp_path / "d.jsonl", redact=redact)
    with pytest.raises(ZeroTrustError, match="redact"):
        LoggingLog(redact=redact)


def test_audit_record_shares_nothing_with_the_request() -> None:
    req = AccessRequest.from_mapping(REQUEST)
    d = _pdp(NullLog()).evaluate(req)
    record = audit_record(d, req, redact=["context.ip"])
    record["request"]["subject"]["properties"]["roles"].append("admin")
    record["request"]["device"]["id"] = "d-2"
    assert req.subject.properties["roles"] == ["agent"]
    assert req.device == {"id": "d-1"}
    assert req.context == {"ip": "10.0.0.1"}  # redaction copied, never changed the request


def test_logging_log_writes_ascii_and_counts_what_is_not_json(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pdp = _pdp(LoggingLog())
    with caplog.at_level(logging.INFO, logger="zerotrust.decisions"):
        pdp.evaluate(REQUEST, extra={"path": "/x\ud800\u2028"})
        pdp.evaluate(REQUEST, extra={"score": float("nan")})
    messages = [r.getMessage() for r in caplog.records if r.name == "zerotrust.decisions"]
    assert len(messages) == 1
    assert messages[0].isascii()
    assert json.loads(messages[0])["extra"]["path"] == "/x\ud800\u2028"
    assert pdp.decision_log_failures == 1


# --- property: whatever happens, the file is whole lines and every emit is accounted ----

_OPS = st.lists(
    st.sampled_from(
        ["ok", "surrogate", "not-json", "short", "efbig", "rotate", "remove", "reopen"]
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS, headroom=st.integers(1, 400))
def test_decision_log_is_whole_lines_and_every_emit_is_accounted(
    ops: list[str], headroom: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.jsonl"
        decide = _pdp(NullLog())
        req = AccessRequest.from_mapping(REQUEST)
        log = JsonLinesLog(path)
        written: list[str] = []
        failed: list[str] = []
        removed: set[str] = set()
        emits = 0
        for n, op in enumerate(ops):
            if op == "rotate":
                if path.exists():
                    path.rename(Path(tmp) / f"d.jsonl.{n}")
                continue
            if op == "remove":
                if path.exists():
                    removed.update(e["decision_id"] for e in _entries(path))
                    path.unlink()
                continue
            if op == "reopen":
                log.reopen()
                continue
            d = decide.evaluate(req)
            extra: dict[str, Any] = {"n": n}
            if op == "surrogate":
                extra["path"] = "/c\udc00"
            elif op == "not-json":
                extra["x"] = float("nan")
            emits += 1
            soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
            try:
                if op in ("short", "efbig"):
                    size = path.stat().st_size if path.exists() else 0
                    limit = size if op == "efbig" else size + headroom
                    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
                log.emit(d, req, extra)
            except Exception:  # what the PDP counts in decision_log_failures
                failed.append(d.decision_id)
            else:
                written.append(d.decision_id)
            finally:
                resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        log.close()
        found = [e["decision_id"] for f in sorted(Path(tmp).iterdir()) for e in _entries(f)]
        assert len(found) == len(set(found))  # no line twice
        assert set(found) | removed == set(written)  # every written line is whole, somewhere
        assert not set(found) & set(failed)  # never both counted and written
        assert len(written) + len(failed) == emits


# --- redaction hides a value in every form a message can quote it ------------------------

QUOTING = """
policy: p
target: {resources: [doc], actions: [read]}
rules:
  - {id: conv, effect: deny, when: "int(context.secret) > 0"}
  - {id: ip, effect: deny, when: "ip_in_cidr(context.secret, '10.0.0.0/8')"}
  - {id: re, effect: deny, when: "subject.id.matches(context.secret)"}
  - {id: tz, effect: deny, when: "now.getHours(context.secret) > 0"}
  - {id: ts, effect: deny, when: "timestamp(context.secret) > now"}
  - {id: du, effect: deny, when: "duration(context.secret) > duration('1s')"}
  - {id: key, effect: deny, when: "context.m[context.secret] == 1"}
  - {id: pin, effect: deny, when: "context.m[context.pin] == 1"}
  - {id: a, effect: allow, when: "true"}
"""

SECRET_REQUEST: dict[str, Any] = {
    "subject": {"id": "u"},
    "action": {"name": "read"},
    "resource": {"type": "doc"},
    "context": {"m": {}, "pin": 123456789},
}


def _quoting_log(tmp_path: Path, secret: str, redact: list[str]) -> tuple[str, Any]:
    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path, redact=redact) as log:
        request = {**SECRET_REQUEST, "context": {**SECRET_REQUEST["context"], "secret": secret}}
        decision = _pdp(log, QUOTING).evaluate(request, extra={"note": f"saw {secret}"})
    return path.read_text("utf-8"), decision


def test_long_redacted_value_does_not_leak_through_a_cut_short_error_message(
    tmp_path: Path,
) -> None:
    secret = "S3CRET-" + "x" * 80
    text, decision = _quoting_log(tmp_path, secret, ["context.secret", "context.pin"])
    assert any("S3CRET" in e.message for e in decision.errors)  # the messages quote it...
    assert "S3CRET" not in text and "xxxxxxxx" not in text  # ...the log never does
    (only,) = [json.loads(line) for line in text.splitlines()]
    assert {e["rule"] for e in only["errors"]} >= {"p/conv", "p/ip", "p/tz", "p/ts", "p/du"}
    assert all("[REDACTED]" in e["message"] for e in only["errors"] if e["rule"] != "p/re")
    assert only["extra"]["note"] == "saw [REDACTED]"


def test_redacted_number_does_not_leak_through_a_no_such_key_message(tmp_path: Path) -> None:
    text, decision = _quoting_log(tmp_path, "short", ["context.pin"])
    assert any("123456789" in e.message for e in decision.errors)
    assert "123456789" not in text


def test_redacted_regex_does_not_leak_through_a_bytes_repr_of_the_re2_error(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    text, decision = _quoting_log(tmp_path, "s3cr\u00e9t(", ["context.secret"])
    (regex,) = [e.message for e in decision.errors if e.rule == "p/re"]
    assert regex == "invalid regular expression 's3cr\u00e9t(': missing )"  # text, no b'...'
    assert "s3cr" not in text and "\\\\x" not in text and "b'" not in text
    assert capfd.readouterr().err == ""  # RE2 wrote nothing to stderr either


@pytest.mark.parametrize("secret", ['it\'s "q" \\\\ (', "tab\there(", "new\nline(", "nul\x00("])
def test_redacted_value_with_characters_quoting_escapes_does_not_leak(
    tmp_path: Path, secret: str
) -> None:
    text, _ = _quoting_log(tmp_path, secret, ["context.secret"])
    entry = json.loads(text)
    for error in entry["errors"]:
        assert secret not in error["message"]
        assert escape(secret) not in error["message"]
        assert repr(secret)[1:-1] not in error["message"]
    assert secret.split("(", maxsplit=1)[0] not in text


def test_bad_regular_expression_in_a_policy_is_text_and_silent(
    capfd: pytest.CaptureFixture[str],
) -> None:
    policy = (
        "policy: p\nrules:\n  - {id: r, effect: deny, when: \"subject.id.matches('(?=a)a')\"}\n"
    )
    with pytest.raises(PolicyError) as info:
        _pdp(NullLog(), policy)
    message = str(info.value)
    assert "invalid regular expression '(?=a)a': invalid perl operator" in message
    assert "b'" not in message
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(
    "shape",
    [
        dict,
        collections.OrderedDict,
        lambda d: collections.defaultdict(str, d),
        types.MappingProxyType,
        PlainMapping,
    ],
    ids=["dict", "OrderedDict", "defaultdict", "MappingProxyType", "user-Mapping"],
)
def test_redaction_reaches_extra_inside_any_mapping(tmp_path: Path, shape: Any) -> None:
    path = tmp_path / "d.jsonl"
    request = {**REQUEST, "resource": {"type": "customer_record", "id": "c-1001"}}
    extra = shape(
        {
            "http": shape({"path": "/customers/c-1001", "route": "/customers/{id}"}),
            "session": "s3cret",
            "hops": (shape({"path": "/customers/c-1001"}),),
        }
    )
    with JsonLinesLog(path, redact=["extra.http.path", "extra.session", "resource.id"]) as log:
        pdp = _pdp(log)
        pdp.evaluate(request, extra=extra)
        assert pdp.decision_log_failures == 0
    (only,) = _entries(path)
    assert only["extra"] == {
        "http": {"path": "[REDACTED]", "route": "/customers/{id}"},
        "session": "[REDACTED]",
        "hops": [{"path": "[REDACTED]"}],  # the hidden path, wherever it appears
    }
    assert "c-1001" not in path.read_text("utf-8") and "s3cret" not in path.read_text("utf-8")


def test_key_holding_dots_is_redacted_by_its_dotted_path_and_by_brackets(tmp_path: Path) -> None:
    context = {"user.email": "ada@example.com", "user": {"email": "bob@example.com"}}
    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path, redact=["context.user.email"]) as log:
        _pdp(log).evaluate({**REQUEST, "context": context})
    assert _entries(path)[0]["request"]["context"] == {
        "user.email": "[REDACTED]",
        "user": {"email": "[REDACTED]"},
    }
    exact = tmp_path / "e.jsonl"
    with JsonLinesLog(exact, redact=['context["user.email"]', 'context["a\\"]b"]']) as log:
        _pdp(log).evaluate({**REQUEST, "context": {**context, 'a"]b': "x"}})
    assert _entries(exact)[0]["request"]["context"] == {
        "user.email": "[REDACTED]",
        "user": {"email": "bob@example.com"},  # brackets name one key exactly
        'a"]b': "[REDACTED]",
    }


def test_redact_path_looks_through_arrays(tmp_path: Path) -> None:
    cards = [{"number": "4111111111111111", "brand": "visa"}, {"number": "5500005555555559"}]
    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path, redact=["context.cards.number", "extra.hops.*.ip"]) as log:
        _pdp(log).evaluate(
            {**REQUEST, "context": {"cards": cards}},
            extra={"hops": [{"ip": "10.0.0.1", "port": 1}], "note": "card 4111111111111111"},
        )
    (only,) = _entries(path)
    assert only["request"]["context"]["cards"] == [
        {"number": "[REDACTED]", "brand": "visa"},
        {"number": "[REDACTED]"},
    ]
    assert only["extra"] == {"hops": [{"ip": "[REDACTED]", "port": 1}], "note": "card [REDACTED]"}


@pytest.mark.parametrize(
    "extra",
    [
        {1: "a", "1": "b"},
        {True: "c", "true": "d"},
        {"http": {None: "e"}},
        {"hops": [{2.5: "x"}]},
        {"http": collections.OrderedDict([(("a", "b"), 1)])},
    ],
    ids=["int-key", "bool-key", "null-key", "float-key-in-array", "tuple-key"],
)
def test_extra_with_keys_that_are_not_strings_is_counted_never_coerced(
    tmp_path: Path, extra: dict[Any, Any]
) -> None:
    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path) as log:
        pdp = _pdp(log)
        assert pdp.evaluate(REQUEST, extra=extra).allowed  # the decision stands...
        assert pdp.decision_log_failures == 1  # ...its line failed, and was counted
        with pytest.raises(RequestError, match="keys must be strings"):
            audit_record(pdp.evaluate(REQUEST), AccessRequest.from_mapping(REQUEST), extra=extra)
    assert len(_entries(path)) == 1  # only the second decision's line


# --- properties: the quoting function and the scrubber agree, for every value --------------


@settings(max_examples=300, deadline=None)
@given(head=lead_ins() | st.text(max_size=70), secret=redaction_secrets(), tail=st.text())
def test_escape_keeps_pieces_and_hider_hides_every_quoted_form(
    head: str, secret: str, tail: str
) -> None:
    head = head.replace("Q", "")  # the secret's start is recognisable
    text = head + secret + tail
    assert escape(text) == escape(head) + escape(secret) + escape(tail)
    assert escape(text).isprintable()
    hide = hider([secret], "[REDACTED]")
    for shown in (quote(text), repr(text), text, f"x {quote(secret)} y"):
        _assert_hidden(hide(shown), secret)
    for safe in ("/", "", "@:"):  # in a URL, however much of it a client encoded
        url = urllib.parse.quote(text, safe=safe)
        for shown in (url, url.lower(), urllib.parse.quote_plus(text, safe=safe)):
            assert "Q9Z" not in urllib.parse.unquote_plus(hide(shown)), shown


def _assert_hidden(text: str, secret: str) -> None:
    """No piece of ``secret`` that starts where it starts is left in ``text``: not
    three characters of it anywhere, nor one or two at the end of a cut-short quote."""
    for piece in (secret[:3], escape(secret[:3]), repr(secret[:3])[1:-1]):
        assert piece not in text, text
    for size in (1, 2):
        assert escape(secret[:size]) + "'... (" not in text, text


@settings(max_examples=150, deadline=None)
@given(
    secret=redaction_secrets(),
    head=lead_ins(),
    condition=st.sampled_from(QUOTING_CONDITIONS),
)
def test_a_redacted_value_never_reaches_the_log_in_any_form(
    secret: str, head: str, condition: str
) -> None:
    when = condition.replace("X", "(context.head + context.secret)")
    policy = f"policy: p\nrules:\n  - id: r\n    effect: deny\n    when: {json.dumps(when)}\n"
    request = {
        **REQUEST,
        "context": {"head": head, "secret": secret, "m": {}},
    }
    pdp = _pdp(NullLog(), policy)
    decision = pdp.evaluate(request)
    record = audit_record(
        decision,
        AccessRequest.from_mapping(request),
        redact=["context.secret"],
        extra={"seen": [head + secret], "quoted": quote(head + secret)},
    )
    assert len(record["errors"]) == len(decision.errors)
    for text in _strings_in([record["errors"], record["report_only"], record["extra"]]):
        _assert_hidden(text, secret)


def _strings_in(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for item in node.values() for s in _strings_in(item)]
    if isinstance(node, list):
        return [s for item in node for s in _strings_in(item)]
    return []


def _redact_path(keys: list[Any], dotted: bool) -> str:
    """The redact path naming ``keys`` (array indexes are looked through)."""
    out = "extra"
    for key in keys:
        if isinstance(key, int):
            continue
        simple = key and not set(key) & set('[]"') and "" not in key.split(".") and key != "*"
        out += f".{key}" if dotted and simple else f"[{json.dumps(key)}]"
    return out


@settings(max_examples=200, deadline=None)
@given(
    where=json_containers_with_paths(),
    secret=redaction_secrets(),
    key=st.text(max_size=6),
    dotted=st.booleans(),
    data=st.data(),
)
def test_redaction_reaches_any_json_shaped_extra(
    where: tuple[str, dict[str, Any], tuple[Any, ...]],
    secret: str,
    key: str,
    dotted: bool,
    data: st.DataObject,
) -> None:
    _, value, path = where
    node: Any = value
    for step in path:
        node = node[step]
    if isinstance(node, list):
        node.append({key: secret})
        keys = [*path, len(node) - 1, key]
    else:
        node[key] = secret
        keys = [*path, key]
    extra = data.draw(extra_shapes(value))
    req = AccessRequest.from_mapping(REQUEST)
    record = audit_record(
        _pdp(NullLog()).evaluate(req), req, redact=[_redact_path(keys, dotted)], extra=extra
    )
    shown = record["extra"]
    for step in keys[:-1]:
        shown = shown[step]
    assert shown[keys[-1]] == "[REDACTED]"
    for text in _strings_in(record["extra"]):
        _assert_hidden(text, secret)
    assert json.loads(encode_line(record)) == record  # exact JSON, written as it is


def test_hidden_number_does_not_rename_the_rules_in_the_entry(tmp_path: Path) -> None:
    policy = "policy: p\nrules:\n  - {id: rule-1, effect: deny, when: 'context.m[context.n] > 0'}\n"
    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path, redact=["context.n"]) as log:
        _pdp(log, policy).evaluate({**REQUEST, "context": {"n": 1, "m": {}}})
    (error,) = _entries(path)[0]["errors"]
    assert error == {"rule": "p/rule-1", "kind": "rule", "message": "no such key: [REDACTED]"}


@pytest.mark.parametrize(
    "logged",
    [
        "/users/ada%40example.com%20%C3%A9",
        "/users/ada@example.com%20%c3%a9",
        "/users/%61da@example.com+é",
    ],
)
def test_redacted_id_does_not_leak_percent_encoded_in_the_logged_path(
    tmp_path: Path, logged: str
) -> None:
    path = tmp_path / "d.jsonl"
    request = {**REQUEST, "resource": {"type": "customer_record", "id": "ada@example.com é"}}
    with JsonLinesLog(path, redact=["resource.id"]) as log:
        _pdp(log).evaluate(request, extra={"http": {"path": logged}})
    (only,) = _entries(path)
    assert only["extra"]["http"]["path"] == "/users/[REDACTED]"


def test_extra_mapping_that_raises_while_read_is_counted_and_named(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path) as log:
        pdp = _pdp(log)
        assert pdp.evaluate(REQUEST, extra=RaisingMapping("items")).allowed
        assert pdp.decision_log_failures == 1
    assert path.read_bytes() == b""
    with pytest.raises(RequestError) as info:
        audit_record(
            pdp.evaluate(REQUEST),
            AccessRequest.from_mapping(REQUEST),
            extra={"http": RaisingMapping("iter")},
        )
    assert info.value.field == "extra.http"


@pytest.mark.parametrize(
    "function", ["!ip_in_cidr(context.ip, '10.0.0.0/8')", "ip_is_private(context.ip)"]
)
def test_redacted_mapped_client_address_does_not_leak_as_the_address_it_maps(
    tmp_path: Path, function: str
) -> None:
    """Before: ``::ffff:203.0.113.77`` (what a dual-stack socket reports) was hidden, but
    the error went on "use the IPv4 address 203.0.113.77", a form no redaction knew."""
    path = tmp_path / "d.jsonl"
    policy = f'policy: p\nrules:\n  - {{id: d, effect: deny, when: "{function}"}}\n'
    with JsonLinesLog(path, redact=["context.ip"]) as log:
        pdp = PolicyDecisionPoint.from_texts({"p.yaml": policy}, decision_log=log, behavior=None)
        decision = pdp.evaluate({**SECRET_REQUEST, "context": {"ip": "::ffff:203.0.113.77"}})
    assert decision.effect is Effect.DENY and decision.errors  # the error fails closed
    text = path.read_text("utf-8")
    assert "203.0.113.77" not in text and "cb00:714d" not in text


_UNCONFIGURED_LOGGING = """
import logging, sys
from zerotrust import LoggingLog, PolicyDecisionPoint
policy = "policy: p\\nrules:\\n  - {id: a, effect: allow}\\n"
if sys.argv[1] == "configured":
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s %(message)s")
elif sys.argv[1] == "handler-above-info":  # enabled, but the only handler takes WARNING+
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s %(message)s")
    logging.getLogger().handlers[0].setLevel(logging.WARNING)
elif sys.argv[1] == "null-handler":
    logging.getLogger("zerotrust.decisions").addHandler(logging.NullHandler())
    logging.getLogger("zerotrust.decisions").setLevel(logging.INFO)
pdp = PolicyDecisionPoint.from_texts({"p.yaml": policy}, decision_log=LoggingLog(), behavior=None)
request = {"subject": {"id": "u"}, "action": {"name": "read"}, "resource": {"type": "doc"}}
for _ in range(3):
    pdp.evaluate(request)
print("failures", pdp.decision_log_failures)
"""


@pytest.mark.parametrize(
    ("setup", "lines", "failures"),
    [("bare", 0, 3), ("configured", 3, 0), ("handler-above-info", 0, 3), ("null-handler", 0, 3)],
)
def test_logging_log_nobody_listens_to_counts_every_decision_as_lost(
    setup: str, lines: int, failures: int
) -> None:
    """Before: with Python's default logging (INFO not enabled), LoggingLog returned early:
    three decisions, no line anywhere, and ``decision_log_failures`` 0 (the shipped
    examples logged nothing)."""
    run = subprocess.run(
        [sys.executable, "-c", _UNCONFIGURED_LOGGING, setup],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(zerotrust.__file__).parents[1])},
    )
    assert run.stdout.count("zerotrust.decisions {") == lines
    assert f"failures {failures}" in run.stdout
    if failures:
        assert "would drop the entry" in run.stdout + run.stderr  # the ERROR line says why


# --- the behaviour features a decision was made with --------------------------------------

#: A feature map shaped like the stores' (issue 11 contract), peers included.
FEATURES: dict[str, Any] = {
    "requests_1h": 3,
    "records_24h": 90,
    "records_7d": 410,
    "distinct_resources_24h": 61,
    "new_device": True,
    "baseline_records_per_day": 38.5,
    "peers": {
        "group": "department=support",
        "members": 9,
        "records_per_day": {"median": 41.0, "p95": 52.3},
        "distinct_per_day": {"median": 39.5, "p95": 50.1},
    },
    "records_24h_vs_peers": 90 / 41.0,
    "available": True,
}

BULK = """
policy: p
rules:
  - {id: allow-all, effect: allow}
  - id: bulk
    effect: deny
    reason: far above the peer group
    when: "has(behavior.records_24h_vs_peers) && behavior.records_24h_vs_peers > 2.0"
"""


def _with_behavior(log: Any, source: Any, policy: str = BULK) -> PolicyDecisionPoint:
    return PolicyDecisionPoint.from_texts({"p.yaml": policy}, decision_log=log, behavior=source)


def test_entry_carries_the_whole_feature_map_the_decision_used(tmp_path: Path) -> None:
    from zerotrust.testing import StaticBehavior

    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path) as log:
        d = _with_behavior(log, StaticBehavior(FEATURES)).evaluate(REQUEST)
    assert d.effect is Effect.DENY  # decided on the peers ratio the entry shows
    (only,) = _entries(path)
    assert only["behavior"] == FEATURES
    assert only["reasons"][0] == {"rule": "p/bulk", "effect": "deny", "reason": d.reasons[0].reason}
    assert only["matched_rules"] == ["p/bulk", "p/allow-all"]


def test_entry_from_the_memory_store_holds_every_feature_it_returned(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path) as log:
        pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, decision_log=log)
        first, second = pdp.evaluate(REQUEST), pdp.evaluate(REQUEST)
    entries = _entries(path)
    assert [e["behavior"] for e in entries] == [dict(first.behavior), dict(second.behavior)]
    assert entries[0]["behavior"]["requests_1h"] == 1
    assert entries[1]["behavior"]["requests_1h"] == 2
    assert entries[1]["behavior"]["available"] is True


def test_entry_has_no_behavior_without_a_behaviour_source(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path) as log:
        d = _pdp(log).evaluate(REQUEST)
    assert d.behavior is None
    (only,) = _entries(path)
    assert "behavior" not in only


def test_entry_of_a_decision_made_without_the_store_says_so(tmp_path: Path) -> None:
    class Broken:
        def features(self, request: Any, now: Any) -> Any:
            raise OSError("store down")

        def record(self, request: Any, decision: Any) -> None:
            raise AssertionError("not recorded: its request was not counted")

    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path) as log:
        pdp = _with_behavior(log, Broken(), POLICY)
        pdp.evaluate(REQUEST)
    (only,) = _entries(path)
    assert only["behavior"] == {"available": False}
    assert pdp.behavior_failures == 1


def test_evaluate_async_logs_the_features_too(tmp_path: Path) -> None:
    import asyncio

    from zerotrust.testing import StaticBehavior

    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path) as log:
        pdp = _with_behavior(log, StaticBehavior(FEATURES))
        d = asyncio.run(pdp.evaluate_async(REQUEST))
    (only,) = _entries(path)
    assert only["behavior"] == FEATURES and only["effect"] == d.effect.value == "deny"


def test_decision_keeps_its_features_out_of_its_public_form() -> None:
    from zerotrust.testing import StaticBehavior

    d = _with_behavior(NullLog(), StaticBehavior(FEATURES)).evaluate(REQUEST)
    assert d.behavior == FEATURES
    assert "behavior" not in d.to_dict()  # the PEP gets the answer, not the peer figures
    assert hash(d) == hash(d)  # still hashable with a dict inside


@pytest.mark.parametrize(
    ("redact", "hidden"),
    [
        (["behavior.peers"], {"peers": "[REDACTED]"}),
        (["behavior.peers.group"], {"peers": {**FEATURES["peers"], "group": "[REDACTED]"}}),
        (["behavior.peers.*.p95"], None),
        (["behavior"], "[REDACTED]"),
        (["*.records_24h"], {"records_24h": "[REDACTED]"}),
    ],
)
def test_redact_paths_may_name_behavior_features(
    tmp_path: Path, redact: list[str], hidden: Any
) -> None:
    from zerotrust.testing import StaticBehavior

    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path, redact=redact) as log:
        _with_behavior(log, StaticBehavior(FEATURES)).evaluate(REQUEST)
    (only,) = _entries(path)
    if hidden is None:
        peers = only["behavior"]["peers"]
        assert peers["records_per_day"] == {"median": 41.0, "p95": "[REDACTED]"}
        assert peers["distinct_per_day"] == {"median": 39.5, "p95": "[REDACTED]"}
    elif hidden == "[REDACTED]":
        assert only["behavior"] == hidden
    else:
        assert only["behavior"] == {**FEATURES, **hidden}
    assert only["request"] == AccessRequest.from_mapping(REQUEST).to_dict()  # untouched


def test_redacted_subject_property_does_not_leak_through_the_peer_group_name(
    tmp_path: Path,
) -> None:
    from zerotrust.testing import StaticBehavior

    path = tmp_path / "d.jsonl"
    request = {**REQUEST, "subject": {"id": "u-1", "properties": {"department": "support"}}}
    with JsonLinesLog(path, redact=["subject.properties.department"]) as log:
        _with_behavior(log, StaticBehavior(FEATURES)).evaluate(request)
    (only,) = _entries(path)
    assert only["behavior"]["peers"]["group"] == "department=[REDACTED]"
    assert "support" not in path.read_text("utf-8")


def test_features_that_are_not_json_data_fail_the_line_and_are_counted(tmp_path: Path) -> None:
    from zerotrust.testing import StaticBehavior

    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path) as log:
        pdp = _with_behavior(log, StaticBehavior({"since": object(), "available": True}), POLICY)
        d = pdp.evaluate(REQUEST)
        assert d.allowed  # the decision stands; only its line is lost, and counted
        assert pdp.decision_log_failures == 1
        with pytest.raises(RequestError, match="behavior"):
            audit_record(d, AccessRequest.from_mapping(REQUEST))
    assert path.read_bytes() == b""


def test_audit_record_shares_nothing_with_the_decision_features() -> None:
    from zerotrust.testing import StaticBehavior

    features = json.loads(json.dumps(FEATURES))
    d = _with_behavior(NullLog(), StaticBehavior(features)).evaluate(REQUEST)
    record = audit_record(d, AccessRequest.from_mapping(REQUEST), redact=["behavior.new_device"])
    record["behavior"]["peers"]["members"] = 0
    record["behavior"]["records_24h"] = 0
    assert d.behavior is not None
    assert d.behavior["peers"]["members"] == 9 and d.behavior["records_24h"] == 90
    assert d.behavior["new_device"] is True


# -- the line encoder: orjson (the `fast` extra) and the json module agree -----------------

_LINE_TEXT = st.text(
    alphabet=st.sampled_from(
        ["a", "é", "\u2028", "\u2029", "\x85", '"', "\\", "\n", "😀", "\ud800"]
    )
)
_LINE_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _LINE_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_LINE_TEXT, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300)
@given(record=st.dictionaries(_LINE_TEXT, _LINE_VALUES, max_size=5))
def test_the_line_encoders_agree_on_every_json_value(record: dict[str, Any]) -> None:
    """Whichever encoder writes it, a line is one line of strict JSON that reads back as
    the record (a lone surrogate as its escape), with no raw line separator in it."""
    from zerotrust.audit import sinks

    lines = [encode_line(record)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sinks, "orjson", None)
        lines.append(encode_line(record))
    fast, stdlib = lines
    assert json.loads(fast) == json.loads(stdlib) == json.loads(json.dumps(record))
    for line in lines:
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert len(line.decode("utf-8").splitlines()) == 1


def test_the_json_module_writes_lines_without_orjson(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zerotrust.audit import sinks

    monkeypatch.setattr(sinks, "orjson", None)
    path = tmp_path / "d.jsonl"
    with JsonLinesLog(path) as log:
        _pdp(log).evaluate({**REQUEST, "context": {"note": "é\u2028"}})
        _pdp(log).evaluate(REQUEST, extra={"path": "/x\ud800"})
    first, second = _entries(path)
    assert first["request"]["context"]["note"] == "é\u2028"
    assert second["extra"]["path"] == "/x\ud800"


# A process killed the moment evaluate returns: its line was already the OS's.
_KILLED_SCRIPT = """
import os, signal, sys
from zerotrust import JsonLinesLog, PolicyDecisionPoint
log = JsonLinesLog(sys.argv[1])
pdp = PolicyDecisionPoint.from_texts(
    {"p.yaml": "policy: p\\nrules: [{id: d, effect: deny}]\\n"}, decision_log=log
)
req = {"subject": {"id": "u-1"}, "action": {"name": "read"}, "resource": {"type": "doc"}}
for i in range(int(sys.argv[2])):
    decision = pdp.evaluate(req)
print(decision.decision_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no close, no flush, no exit handlers
"""


@pytest.mark.parametrize("decisions", [1, 50])
def test_a_line_is_the_operating_systems_before_evaluate_returns(
    tmp_path: Path, decisions: int
) -> None:
    path = tmp_path / "d.jsonl"
    run = subprocess.run(
        [sys.executable, "-c", _KILLED_SCRIPT, str(path), str(decisions)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(zerotrust.__file__).parents[1])},
    )
    assert run.returncode == -9, run.stderr
    entries = _entries(path)
    assert len(entries) == decisions
    assert entries[-1]["decision_id"] == run.stdout.strip()


def test_fsync_forces_every_line_to_disk_before_evaluate_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zerotrust.audit import sinks

    path = tmp_path / "d.jsonl"
    forced: list[int] = []  # the file's size at each fsync: every line is in it by then
    monkeypatch.setattr(sinks.os, "fsync", lambda fd: forced.append(os.fstat(fd).st_size))
    with JsonLinesLog(path, fsync=True) as log:
        pdp = _pdp(log)
        sizes = []
        for _ in range(3):
            pdp.evaluate(REQUEST)
            sizes.append(path.stat().st_size)
    assert forced == sizes


def test_stdout_log_writes_whole_redacted_lines_to_its_descriptor() -> None:
    from zerotrust.audit import StdoutLog

    read, write = os.pipe()
    try:
        pdp = PolicyDecisionPoint.from_texts(
            {"p.yaml": POLICY}, decision_log=StdoutLog(redact=["context.ip"], fd=write)
        )
        first, second = pdp.evaluate(REQUEST), pdp.evaluate(REQUEST)
        lines = os.read(read, 1 << 16).decode().splitlines()
    finally:
        os.close(read)
        os.close(write)
    records = [json.loads(line) for line in lines]
    assert [r["decision_id"] for r in records] == [first.decision_id, second.decision_id]
    assert all(r["request"]["context"]["ip"] == "[REDACTED]" for r in records)


def test_stdout_log_that_cannot_write_is_counted_not_raised() -> None:
    from zerotrust.audit import StdoutLog

    read, write = os.pipe()
    os.close(read)  # the reader is gone: EPIPE
    try:
        pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, decision_log=StdoutLog(fd=write))
        assert pdp.evaluate(REQUEST).allowed
        assert pdp.decision_log_failures == 1
    finally:
        os.close(write)
