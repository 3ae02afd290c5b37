"""``zerotrust.replay``: logs written by the real PDP through the real sinks, decided
again with the same and with changed policies.

The log is untrusted input: every line that is not replayed is counted with its line
number, and a redacted entry is skipped rather than decided on a placeholder.
"""

from __future__ import annotations

import datetime
import gzip
import io
import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from replay_helpers import (
    POLICIES,
    TRAFFIC,
    Clock,
    changed_policies,
    request,
    run_replay,
    write_log,
)

from zerotrust import JsonLinesLog, LoggingLog, PolicyDecisionPoint, StdoutLog
from zerotrust.audit.logfile import parse_entry
from zerotrust.behavior.config import BehaviorConfig
from zerotrust.behavior.memory import MemoryBehaviorStore
from zerotrust.cel import default_backend
from zerotrust.decision import Decision
from zerotrust.errors import PolicyError, ZeroTrustError
from zerotrust.policy.loader import load_path
from zerotrust.replay import MAX_RULES, OTHER_RULES, open_log, replay, to_text
from zerotrust.report.load import read_log
from zerotrust.request import AccessRequest


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "decisions.jsonl"
    write_log(path)
    return path


@pytest.fixture(scope="module")
def changed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return changed_policies(tmp_path_factory.mktemp("policies"))


# --- the same policies: nothing changes --------------------------------------------


def test_same_policies_change_nothing(log: Path) -> None:
    report = run_replay(POLICIES, log)
    assert (report.lines, report.replayed, report.changed, report.rules_only) == (11, 11, 0, 0)
    assert report.skipped == () and report.transitions == () and report.examples == ()


def test_the_log_covers_every_effect(log: Path) -> None:
    """The fixture is worth replaying: allows, denies and step-ups, and behaviour."""
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert {e["effect"] for e in entries} == {"allow", "deny", "step_up"}
    assert all(e["behavior"]["available"] is True for e in entries)
    assert any(e["behavior"]["requests_1h"] > 5 for e in entries)


# --- changed policies ----------------------------------------------------------------


def test_changed_policies_report_the_changes_and_their_rules(log: Path, changed: Path) -> None:
    report = run_replay(changed, log)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    # Which logged decisions the new rule turns from allow into step_up: internal
    # records (level 2) read without MFA, by someone the set let in.
    expected = [
        e["decision_id"]
        for e in entries
        if e["effect"] == "allow" and e["request"]["resource"]["properties"]["sensitivity"] == 2
    ]
    assert len(expected) >= 3
    assert report.changed == len(expected)
    (transition,) = report.transitions
    assert (transition.old, transition.new, transition.count) == ("allow", "step_up", len(expected))
    assert transition.newly_matching == (("customer-records/step-up-confidential", len(expected)),)
    assert [c.decision_id for c in report.examples] == expected
    first = report.examples[0]
    assert first.line == 1 and first.time == "2026-03-02T09:00:00+00:00"
    assert first.differs == ("effect", "step_up", "obligations")
    assert first.newly_matching == ("customer-records/step-up-confidential",)
    assert first.subject == "user u-anna" and first.resource == "customer_record c-21"


def test_examples_are_limited_but_counts_are_not(log: Path, changed: Path) -> None:
    report = run_replay(changed, log, examples=1)
    assert len(report.examples) == 1 and report.changed > 1
    assert run_replay(changed, log, examples=0).examples == ()


def test_an_outcome_changed_without_the_effect_is_a_change(tmp_path: Path, log: Path) -> None:
    """Obligations are what the enforcement point applies: an allow that loses its mask
    is a change, reported as allow -> allow."""
    target = tmp_path / "unmasked"
    shutil.copytree(POLICIES, target)
    path = target / "customer-records.yaml"
    text = path.read_text()
    start = text.index("  - id: allow-agent-own-department")
    end = text.index("  - id:", start + 10)
    rule = text[start:end]
    assert "obligations:" in rule
    path.write_text(text[:start] + rule[: rule.index("    obligations:")] + "\n" + text[end:])
    report = run_replay(target, log)
    assert report.changed >= 1
    assert {(t.old, t.new) for t in report.transitions} == {("allow", "allow")}
    assert all(c.differs == ("obligations",) for c in report.examples)
    assert "(obligations changed)" in to_text(report)


def test_rules_that_change_without_the_outcome_are_counted_apart(tmp_path: Path, log: Path) -> None:
    target = tmp_path / "renamed"
    shutil.copytree(POLICIES, target)
    path = target / "customer-records.yaml"
    path.write_text(
        path.read_text().replace("id: allow-manager-own-department", "id: allow-manager")
    )
    report = run_replay(target, log)
    assert report.changed == 0 and report.rules_only == 1
    assert ": 0 would change; 1 decided alike by other rules\n" in to_text(report)


def test_behaviour_is_the_logged_one_not_recomputed(tmp_path: Path) -> None:
    """A rule on behaviour decides by the features in the entry: a log whose features
    are edited to a bulk read replays as a bulk read."""
    path = tmp_path / "decisions.jsonl"
    write_log(path, [request()])
    entry = json.loads(path.read_text())
    assert entry["effect"] == "allow"
    entry["behavior"]["records_1h"] = 10_000_000
    path.write_text(json.dumps(entry) + "\n")
    report = run_replay(POLICIES, path)
    assert report.changed == 1
    (change,) = report.examples
    assert (change.old_effect, change.new_effect) == ("allow", "deny")
    assert any(rule.startswith("bulk-access/") for rule in change.newly_matching)


def test_the_logged_time_is_the_time_decided_at(tmp_path: Path) -> None:
    """The same request at night carries the off-hours signal: moving an entry's time
    moves its decision."""
    path = tmp_path / "decisions.jsonl"
    write_log(path, [request(sensitivity=2, managed=False)])
    day = json.loads(path.read_text())
    night = dict(day, time="2026-03-02T23:30:00+00:00")
    path.write_text(json.dumps(day) + "\n" + json.dumps(night) + "\n")
    report = run_replay(POLICIES, path)
    assert report.replayed == 2
    assert [c.line for c in report.examples] == [2]


# --- the sinks -------------------------------------------------------------------------


def test_a_stdout_log_and_a_logging_log_replay_alike(tmp_path: Path, changed: Path) -> None:
    out = tmp_path / "stdout.jsonl"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    logger = logging.getLogger("zerotrust.test_replay")
    logger.propagate = False
    handler = logging.FileHandler(tmp_path / "logging.jsonl")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for sink in (StdoutLog(fd=fd), LoggingLog(logger)):
            pdp = PolicyDecisionPoint.from_path(POLICIES, clock=Clock(), decision_log=sink)
            for item in TRAFFIC:
                pdp.evaluate(item)
            assert pdp.decision_log_failures == 0
    finally:
        os.close(fd)
        logger.removeHandler(handler)
        handler.close()
    for path in (out, tmp_path / "logging.jsonl"):
        same = run_replay(POLICIES, path)
        assert (same.replayed, same.changed, same.skipped) == (len(TRAFFIC), 0, ())
        assert run_replay(changed, path).changed >= 3


def test_logging_log_through_a_prefixing_format_replays(tmp_path: Path) -> None:
    """An ordinary handler puts time, level and logger before each message: the entry is
    found after the prefix, by the report as by replay."""
    logger = logging.getLogger("zerotrust.test_replay_prefixed")
    logger.propagate = False
    handler = logging.FileHandler(tmp_path / "decisions.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(name)s]: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        pdp = PolicyDecisionPoint.from_path(
            POLICIES, clock=Clock(), decision_log=LoggingLog(logger)
        )
        for item in TRAFFIC:
            pdp.evaluate(item)
    finally:
        logger.removeHandler(handler)
        handler.close()
    path = tmp_path / "decisions.log"
    assert path.read_text(encoding="utf-8")[:4].isdigit()
    same = run_replay(POLICIES, path)
    assert (same.replayed, same.changed, same.skipped) == (len(TRAFFIC), 0, ())
    assert read_log(path).skipped_lines == 0


_PREFIX = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="{\n\r"), max_size=60
)


@given(_PREFIX, st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5)))
def test_any_prefix_without_a_brace_before_an_entry_is_skipped_over(
    prefix: str, entry: dict[str, Any]
) -> None:
    line = (prefix + json.dumps({"decision_id": "d", **entry})).encode("utf-8")
    assert parse_entry(line, json.loads) == {"decision_id": "d", **entry}


def test_a_request_without_resource_id_is_named_by_its_type_alone(
    tmp_path: Path, changed: Path
) -> None:
    path = tmp_path / "decisions.jsonl"
    item = request()
    del item["resource"]["id"]
    write_log(path, [item])
    report = run_replay(changed, path)
    assert [c.resource for c in report.examples] == ["customer_record"]
    assert "None" not in to_text(report)


def test_redacted_entries_are_skipped_never_guessed(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    traffic = [request(), {**request(), "context": {"country": "DE"}}, request()]
    write_log(path, traffic, redact=["context.ip"])
    report = run_replay(POLICIES, path)
    assert report.replayed == 1
    assert report.skipped == (("redacted (cannot be decided faithfully)", 2, (1, 3)),)
    assert "2 redacted (cannot be decided faithfully) (lines 1, 3)" in to_text(report)


def test_redacted_behaviour_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    write_log(path, [request()], redact=["behavior.records_1h"])
    report = run_replay(POLICIES, path)
    assert report.replayed == 0 and report.skipped[0][:2] == (
        "redacted (cannot be decided faithfully)",
        1,
    )


# --- an unavailable behaviour store ----------------------------------------------------


class Unavailable:
    """A behaviour source that cannot answer, with the PDP's on_store_error."""

    def __init__(self, mode: str) -> None:
        self.config = BehaviorConfig(on_store_error=mode, store_error_acr_values=("urn:loa:2",))

    @property
    def on_store_error(self) -> Any:
        return self.config.on_store_error

    @property
    def store_error_step_up(self) -> Any:
        return self.config.store_error_step_up

    def features(self, req: AccessRequest, now: datetime.datetime) -> Mapping[str, Any]:
        raise ConnectionError("store down")

    def record(self, req: AccessRequest, decision: Decision) -> None:
        raise ConnectionError("store down")


@pytest.mark.parametrize("mode", ["deny", "step_up", "evaluate"])
def test_store_unavailable_decisions_replay_under_the_mode_they_show(
    tmp_path: Path, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "decisions.jsonl"
    with JsonLinesLog(path) as sink:
        pdp = PolicyDecisionPoint(
            load_path(POLICIES, default_backend()),
            clock=Clock(),
            decision_log=sink,
            behavior=Unavailable(mode),  # type: ignore[arg-type]
        )
        effects = [pdp.evaluate(item).effect.value for item in TRAFFIC]
    report = run_replay(POLICIES, path)
    assert report.changed == 0
    # Only a deny under `step_up` or `evaluate` hides the mode: skipped, never guessed.
    hidden = effects.count("deny") if mode != "deny" else 0
    assert report.replayed == len(TRAFFIC) - hidden
    assert report.skipped_lines == hidden
    if hidden:
        assert report.skipped[0][0] == "behaviour unavailable, on_store_error unknown"


# --- hostile and malformed lines -------------------------------------------------------


def test_every_line_not_replayed_is_counted_with_its_number(log: Path) -> None:
    good = log.read_bytes().splitlines()[0]
    entry = json.loads(good)
    lines = [
        good,  # 1
        b"",  # 2 blank
        b"not json",  # 3
        b'{"level": "info", "msg": "started"}',  # 4 another log's line
        b"[1, 2]",  # 5
        b"\xff\xfe",  # 6
        json.dumps({**entry, "time": "yesterday"}).encode(),  # 7
        json.dumps({**entry, "time": "2026-03-02T09:00:00"}).encode(),  # 8 naive
        json.dumps({**entry, "effect": "maybe"}).encode(),  # 9
        json.dumps({**entry, "request": {"subject": 1}}).encode(),  # 10
        json.dumps({**entry, "behavior": [1]}).encode(),  # 11
        good.replace(b'{"decision_id"', b'{"effect":"deny","decision_id"'),  # 12 duplicate
        b'{"decision_id": "x", "effect": "allow", "request": {}, "risk": NaN}',  # 13
        json.dumps({**entry, "matched_rules": "all"}).encode(),  # 14
        b"[" * 100_000,  # 15 nested too deeply
        json.dumps({**entry, "decision_id": 7}).encode(),  # 16
        good,  # 17, no newline at the end
    ]
    report = run_replay(POLICIES, io.BytesIO(b"\n".join(lines)))
    assert report.lines == 17 and report.replayed == 2
    skipped = {reason: (count, first) for reason, count, first in report.skipped}
    assert skipped == {
        "blank": (1, (2,)),
        "not JSON": (4, (3, 12, 13, 15)),
        "not a decision entry": (2, (4, 5)),
        "not UTF-8": (1, (6,)),
        "malformed entry: time": (2, (7, 8)),
        "malformed entry: effect": (1, (9,)),
        "malformed entry: request": (1, (10,)),
        "malformed entry: behavior": (1, (11,)),
        "malformed entry: matched_rules": (1, (14,)),
        "malformed entry: decision_id": (1, (16,)),
    }
    assert report.skipped_lines + report.replayed == report.lines


def test_a_line_too_long_is_skipped_and_read_past(log: Path) -> None:
    good = log.read_bytes().splitlines()[0]
    data = good + b"\n" + b"x" * 5000 + b"\n" + good + b"\n"
    backend = default_backend()
    report = replay(
        load_path(POLICIES, backend), io.BytesIO(data), backend=backend, max_line_bytes=len(good)
    )
    assert report.replayed == 2 and report.skipped == (("too long", 1, (2,)),)


def test_only_the_first_line_numbers_are_kept(log: Path) -> None:
    report = run_replay(POLICIES, io.BytesIO(b"x\n" * 20 + log.read_bytes()))
    assert report.skipped == (("not JSON", 20, (1, 2, 3, 4, 5)),)
    assert "20 not JSON (lines 1, 2, 3, 4, 5, ...)" in to_text(report)


def test_control_characters_from_the_log_are_shown_escaped(tmp_path: Path, changed: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    write_log(path, [request("u-\x1b[31mred")])
    text = to_text(run_replay(changed, path))
    assert "\x1b" not in text and "u-\\x1b[31mred" in text


# --- reading: gzip, stdin --------------------------------------------------------------


def test_gzip_is_read_whatever_the_name(tmp_path: Path, log: Path, changed: Path) -> None:
    packed = tmp_path / "decisions.log"
    packed.write_bytes(gzip.compress(log.read_bytes()))
    assert run_replay(changed, packed) == run_replay(changed, log)


def test_a_corrupt_gzip_is_an_os_error(tmp_path: Path, log: Path) -> None:
    packed = tmp_path / "decisions.jsonl.gz"
    packed.write_bytes(gzip.compress(log.read_bytes())[:-20])
    with pytest.raises(OSError, match="cut short or corrupt"):
        run_replay(POLICIES, packed)


def test_stdin_is_read_and_left_open(log: Path) -> None:
    stdin = io.BufferedReader(io.BytesIO(gzip.compress(log.read_bytes())))  # type: ignore[arg-type]
    with open_log("-", stdin) as stream:
        assert stream.readline().startswith(b'{"decision_id"')
    assert not stdin.closed


def test_memory_stays_flat_on_a_long_log(log: Path, changed: Path) -> None:
    """A thousand copies of the log are read line by line: the report holds the counts
    and the examples, not the lines."""
    import tracemalloc

    class Repeat(io.RawIOBase):
        def __init__(self, data: bytes, times: int) -> None:
            self.chunks: Iterator[bytes] = iter([data] * times)
            self.rest = b""

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            while not self.rest:
                self.rest = next(self.chunks, b"")
                if not self.rest:
                    return 0
            n = min(len(buffer), len(self.rest))
            buffer[:n], self.rest = self.rest[:n], self.rest[n:]
            return n

    data = log.read_bytes()
    backend = default_backend()
    policies = load_path(changed, backend)

    def peak(times: int) -> int:
        tracemalloc.start()
        try:
            stream = io.BufferedReader(Repeat(data, times))
            report = replay(policies, stream, backend=backend)
            used = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert report.replayed == times * len(TRAFFIC)
        return used

    small, large = peak(30), peak(300)
    assert large - small < len(data) * 270 // 10  # a tenth of what the lines take


# --- the property: the same policies never change a decision ---------------------------

# Values a line must carry back exactly: departments with characters the sink escapes
# (U+2028 and friends, quotes, non-ASCII), sensitivities as doubles (2.0 is not 2 to a
# log that loses the difference), IPv6 addresses.
_DEPARTMENTS = st.sampled_from(["support", "sales"]) | st.text(max_size=4)
_REQUESTS = st.builds(
    request,
    subject=st.sampled_from(["u-anna", "u-ben", "u-max", "u-zoe"]),
    roles=st.sampled_from([("agent",), ("manager",), ("agent", "manager"), ()]),
    department=_DEPARTMENTS,
    amr=st.sampled_from([(), ("pwd",), ("pwd", "mfa"), ("pwd", "mfa", "hwk")]),
    action=st.sampled_from(["read", "update", "export"]),
    owner=_DEPARTMENTS,
    sensitivity=st.integers(1, 4) | st.floats(0, 5),
    managed=st.booleans(),
    ip=st.sampled_from(["10.1.2.3", "203.0.113.9", "2001:db8:100::1"]),
    records=st.integers(0, 2000),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    traffic=st.lists(_REQUESTS, min_size=1, max_size=40),
    start=st.datetimes(
        min_value=datetime.datetime(2026, 1, 1), max_value=datetime.datetime(2026, 12, 31)
    ),
    step=st.floats(0.001, 7200),
)
def test_replaying_against_the_same_policies_changes_nothing(
    tmp_path: Path, traffic: list[dict[str, Any]], start: datetime.datetime, step: float
) -> None:
    path = tmp_path / f"log-{os.urandom(4).hex()}.jsonl"
    clock = Clock(start.replace(tzinfo=datetime.UTC), step)
    store = MemoryBehaviorStore(BehaviorConfig(min_peers=2))
    with JsonLinesLog(path) as sink:
        pdp = PolicyDecisionPoint.from_path(
            POLICIES, clock=clock, decision_log=sink, behavior=store
        )
        for item in traffic:
            pdp.evaluate(item)
    report = run_replay(POLICIES, path)
    assert (report.replayed, report.changed, report.rules_only) == (len(traffic), 0, 0)
    path.unlink()


def test_paths_are_taken_as_well_as_a_set_and_a_stream(log: Path, changed: Path) -> None:
    assert replay(str(changed), log) == run_replay(changed, log)
    with pytest.raises(ZeroTrustError, match="examples must be >= 0"):
        replay(POLICIES, log, examples=-1)
    with pytest.raises(PolicyError):
        replay(log, log)  # a log is not a policy file


def test_a_changed_step_up_requirement_is_a_change(tmp_path: Path, log: Path) -> None:
    target = tmp_path / "stricter"
    shutil.copytree(POLICIES, target)
    path = target / "customer-records.yaml"
    text = path.read_text()
    assert text.count("max_age: 3600") == 1
    path.write_text(text.replace("max_age: 3600", "max_age: 600"))
    report = run_replay(target, log)
    assert report.changed >= 1
    assert {(t.old, t.new) for t in report.transitions} == {("step_up", "step_up")}
    assert all(c.differs == ("step_up",) for c in report.examples)
    assert all(c.newly_matching == c.no_longer_matching == () for c in report.examples)


def test_rule_counts_are_bounded_whatever_the_log_names(log: Path) -> None:
    """A log naming a million rules cannot grow the report: past MAX_RULES per
    transition they are counted together."""
    entry = json.loads(log.read_bytes().splitlines()[0])
    assert entry["effect"] == "allow"
    lines = []
    for i in range(MAX_RULES + 50):
        forged = {**entry, "effect": "deny", "matched_rules": [f"forged/rule-{i}"]}
        lines.append(json.dumps(forged).encode())
    report = run_replay(POLICIES, io.BytesIO(b"\n".join(lines)))
    (transition,) = report.transitions
    assert (transition.old, transition.new, transition.count) == ("deny", "allow", MAX_RULES + 50)
    gone = dict(transition.no_longer_matching)
    assert len(gone) == MAX_RULES + 1 and gone[OTHER_RULES] == 50
