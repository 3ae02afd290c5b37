"""``explain=True``: the values each condition read, and why no policy applied."""

from __future__ import annotations

import copy
import datetime
import io
import json
import pickle
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import json_values, requests

from zerotrust import (
    AccessRequest,
    Decision,
    JsonLinesLog,
    PolicyDecisionPoint,
    TraceEntry,
    ValueRead,
)
from zerotrust._explain import MAX_DEPTH, MAX_ITEMS, MAX_TEXT, bounded, no_policy
from zerotrust.cel import Backend, CompiledBackend, InterpreterBackend, values_read
from zerotrust.cli import main
from zerotrust.request import request_variables

NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)

POLICY = """
policy: records
target: {resources: [customer_record], actions: [read, update]}
signals:
  - name: heavy-reader
    score: 40
    when: "behavior.reads_1h > 400"
rules:
  - id: deny-other-department
    effect: deny
    when: "subject.properties.department != resource.properties.owner_dept"
  - id: deny-risky
    effect: deny
    when: "risk.score >= 80"
  - id: allow-typo
    effect: allow
    when: "subject.properties.wrd == 'x'"
  - id: allow-owner-head
    effect: allow
    when: "data.heads[resource.properties.owner_dept] == subject.id"
  - id: allow-any-group
    effect: allow
    when: "subject.properties.groups.exists(g, g == 'admins')"
"""
DATA = "heads: {sales: u-boss-7f3c, support: u-sue}\n"
TEXTS = {"records.yaml": POLICY, "org.data.yaml": DATA}
REQUEST: dict[str, Any] = {
    "subject": {"id": "u-eve", "properties": {"department": "support", "groups": ["staff"]}},
    "action": {"name": "read"},
    "resource": {"type": "customer_record", "id": "c-1", "properties": {"owner_dept": "sales"}},
}


class Features:
    """A behaviour source with fixed features."""

    def __init__(self, features: Mapping[str, Any]) -> None:
        self._features = features

    def features(self, request: AccessRequest, now: datetime.datetime) -> Mapping[str, Any]:
        return self._features

    def record(self, request: AccessRequest, decision: Decision) -> None:
        return None


BACKENDS = pytest.mark.parametrize("backend", [CompiledBackend, InterpreterBackend])


def _pdp(backend: type[Backend] = CompiledBackend, **kwargs: Any) -> PolicyDecisionPoint:
    kwargs.setdefault("behavior", Features({"reads_1h": 410}))
    return PolicyDecisionPoint.from_texts(TEXTS, clock=lambda: NOW, backend=backend(), **kwargs)


def _entry(decision: Decision, rule: str) -> TraceEntry:
    (entry,) = [t for t in decision.explain if t.rule == rule]
    return entry


# --- the values a condition read -------------------------------------------------------


@BACKENDS
def test_each_entry_lists_the_paths_its_condition_read_with_their_values(
    backend: type[Backend],
) -> None:
    decision = _pdp(backend).evaluate(REQUEST, explain=True)
    entry = _entry(decision, "records/deny-other-department")
    assert entry.outcome == "matched"
    assert [str(r) for r in entry.reads] == [
        'subject.properties.department = "support"',
        'resource.properties.owner_dept = "sales"',
    ]
    signal = _entry(decision, "records/heavy-reader")
    assert (signal.outcome, signal.reads) == ("matched", (ValueRead("behavior.reads_1h", 410),))
    assert _entry(decision, "records/deny-risky").reads == (ValueRead("risk.score", 40),)


@BACKENDS
def test_a_misspelt_property_is_reported_missing_beside_its_error(backend: type[Backend]) -> None:
    entry = _entry(_pdp(backend).evaluate(REQUEST, explain=True), "records/allow-typo")
    assert entry.outcome == "error"
    assert entry.message is not None and "wrd" in entry.message
    assert entry.reads == (ValueRead("subject.properties.wrd", missing=True),)
    assert entry.to_dict()["reads"] == [{"path": "subject.properties.wrd", "missing": True}]


@BACKENDS
def test_a_data_lookup_shows_its_key_and_the_value_found(backend: type[Backend]) -> None:
    entry = _entry(_pdp(backend).evaluate(REQUEST, explain=True), "records/allow-owner-head")
    assert [r.to_dict() for r in entry.reads] == [
        {"path": "resource.properties.owner_dept", "value": "sales"},
        {"path": 'data.heads["sales"]', "value": "u-boss-7f3c"},
        {"path": "subject.id", "value": "u-eve"},
    ]


def test_a_macro_variable_is_not_an_attribute_but_its_list_is() -> None:
    entry = _entry(_pdp().evaluate(REQUEST, explain=True), "records/allow-any-group")
    assert entry.reads == (ValueRead("subject.properties.groups", ["staff"]),)


def test_behaviour_left_out_reads_as_missing() -> None:
    entry = _entry(_pdp(behavior=None).evaluate(REQUEST, explain=True), "records/heavy-reader")
    assert entry.reads == (ValueRead("behavior.reads_1h", missing=True),)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('subject.properties["department"] == "x"', [("subject.properties.department", "d")]),
        ('subject.properties["a-b"] == 1', [('subject.properties["a-b"]', None)]),
        ("subject.properties.list[1] == 2", [("subject.properties.list[1]", 20)]),
        (
            "subject.properties.list[5] == 2",
            [("subject.properties.list", [10, 20]), ("subject.properties.list[5]", None)],
        ),
        # A field of a value that has none: not a misspelt key, so the value is shown.
        ("subject.id.z == 1", [("subject.id", "u-1"), ("subject.id.z", None)]),
        ("has(subject.properties.x.y)", [("subject.properties.x.y", None)]),
        ("subject.id.startsWith('u')", [("subject.id", "u-1")]),
        ("size(.subject.properties.list) > 1", [("subject.properties.list", [10, 20])]),
        ("now.getHours() > 3", [("now", NOW)]),
        ("data.m[subject.id + 'x'] == 1", [("data.m", {"u-1x": 1}), ("subject.id", "u-1")]),
        ("data.m[subject.missing] == 1", [("subject.missing", None)]),
        (
            "subject.properties.list.all(subject, subject > 1)",
            [("subject.properties.list", [10, 20])],
        ),
        ("subject.properties.list.map(x, x.y).size() > 0", [("subject.properties.list", [10, 20])]),
        ("[1, 2].exists(x, x == 1)", []),
        ("subject.id.size() > 1 && subject.id.size() < 9", [("subject.id", "u-1")]),
    ],
)
def test_values_read_by_shape_of_expression(source: str, expected: list[tuple[str, Any]]) -> None:
    variables = {
        "subject": {"id": "u-1", "properties": {"department": "d", "list": [10, 20]}},
        "data": {"m": {"u-1x": 1}},
        "now": NOW,
    }
    got = [(r.path, r.value if r.found else None) for r in values_read(source, variables)]
    assert got == expected
    # Unparsable text reads nothing (it never compiled, so it never ran).
    assert values_read(source + " &&", variables) == ()


def test_long_values_are_cut_before_anyone_sees_them() -> None:
    assert bounded("x" * (MAX_TEXT + 50)) == "x" * MAX_TEXT + f"... ({MAX_TEXT + 50} characters)"
    assert bounded(list(range(MAX_ITEMS + 5))) == [*range(MAX_ITEMS), "... 5 more items"]
    many = {f"k{i}": i for i in range(MAX_ITEMS + 1)}
    assert bounded(many) == {**{f"k{i}": i for i in range(MAX_ITEMS)}, "...": "1 more keys"}
    deep: Any = 1
    for _ in range(MAX_DEPTH + 2):
        deep = [deep]
    expected: Any = "[...] (a list of 1)"
    for _ in range(MAX_DEPTH):
        expected = [expected]
    assert bounded(deep) == expected
    assert bounded(NOW) == "2026-03-02T10:00:00+00:00"
    assert bounded(float("nan")) == "nan"
    small = {"a": [1, 2.5, None, True, "s"], "b": {"c": "d"}}
    assert bounded(small) == small


def test_the_decision_json_has_the_reads_and_no_policy_only_with_explain() -> None:
    pdp = _pdp()
    with_explain = pdp.evaluate(REQUEST, explain=True).to_dict()
    assert with_explain["no_policy"] is None
    assert all("reads" in e for e in with_explain["explain"])
    json.dumps(with_explain)  # JSON data all through
    without = pdp.evaluate(REQUEST).to_dict()
    assert "explain" not in without and "no_policy" not in without


def test_the_decision_log_never_gets_the_values(tmp_path: Path) -> None:
    log = JsonLinesLog(tmp_path / "decisions.jsonl")
    try:
        decision = _pdp(decision_log=log).evaluate(REQUEST, explain=True)
    finally:
        log.close()
    assert any(r.value == "u-boss-7f3c" for t in decision.explain for r in t.reads)
    line = (tmp_path / "decisions.jsonl").read_text()
    assert json.loads(line)["decision_id"] == decision.decision_id
    assert "u-boss-7f3c" not in line and '"reads"' not in line and '"explain"' not in line


# --- the property: what is reported is what the request holds --------------------------

_KEYS = ("department", "owner_dept", "level", "tags")
_SHORT = st.text(alphabet="abcsx-", max_size=4)
_PROPERTY_TEXTS = {
    "props.yaml": """
policy: props
target: {resources: [doc]}
signals:
  - name: tagged
    score: 30
    when: "size(context.tags) > 1"
rules:
  - id: same-department
    effect: allow
    when: "subject.properties.department == resource.properties.owner_dept"
  - id: high-level
    effect: step_up
    when: "has(resource.properties.level) && resource.properties.level >= 3"
  - id: head
    effect: allow
    when: "data.heads[resource.properties.owner_dept] == subject.id"
  - id: risky
    effect: deny
    when: "risk.score > 20 || subject.properties['tags'] == context.tags"
  - id: listed
    effect: deny
    when: "subject.properties.level in data.blocked || device.managed == false"
""",
    "org.data.yaml": "heads: {a: u, s: x, '': s}\nblocked: [1, 3, 'c']\n",
}


@st.composite
def _property_requests(draw: st.DrawFn) -> dict[str, Any]:
    request = draw(requests())
    request["resource"]["type"] = "doc"
    request["action"] = {"name": "read"}
    for part in ("subject", "resource"):
        if draw(st.booleans()):
            props = request[part].get("properties") or {}
            for key in draw(st.lists(st.sampled_from(_KEYS), max_size=3)):
                props[key] = draw(_SHORT | st.integers(0, 5) | json_values(4))
            request[part]["properties"] = props
    if draw(st.booleans()):
        request["context"] = {"tags": draw(st.lists(_SHORT, max_size=3) | json_values(3))}
    return request


_MISSING = object()
_JSON = json.JSONDecoder()


def _lookup(path: str, scope: Mapping[str, Any]) -> Any:
    """The value at a reported path, read independently of the code under test."""
    root = re.match(r"[_a-zA-Z]+", path)
    assert root is not None
    value: Any = scope.get(root.group(), _MISSING)
    at = root.end()
    while at < len(path):
        name = re.compile(r"\.([_a-zA-Z][_a-zA-Z0-9]*)").match(path, at)
        if name is not None:
            key, at = name.group(1), name.end()
        else:
            assert path[at] == "[", path[at:]
            key, at = _JSON.raw_decode(path, at + 1)
            assert path[at] == "]", path[at:]
            at += 1
        try:
            in_map = isinstance(value, Mapping) and key in value
        except TypeError:  # an unhashable key is in no map
            in_map = False
        if not in_map and not (isinstance(value, list) and type(key) is int and key < len(value)):
            return _MISSING
        value = value[key]
    return value


def _outcome(d: Decision) -> tuple[Any, ...]:
    return (d.effect, d.reasons, d.risk, d.step_up, d.obligations, d.report_only, d.errors)


@pytest.fixture(scope="module", params=[CompiledBackend, InterpreterBackend])
def property_pdp(request: pytest.FixtureRequest) -> PolicyDecisionPoint:
    return PolicyDecisionPoint.from_texts(
        _PROPERTY_TEXTS, clock=lambda: NOW, backend=request.param(), behavior=None
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=_property_requests())
def test_every_reported_read_is_what_the_request_holds(
    property_pdp: PolicyDecisionPoint, request: dict[str, Any]
) -> None:
    explained = property_pdp.evaluate(request, explain=True)
    assert _outcome(explained) == _outcome(property_pdp.evaluate(request))
    scope: dict[str, Any] = {
        **request_variables(AccessRequest.from_mapping(request)),
        "data": property_pdp.policies.data,
        "risk": {"score": explained.risk.score, "signals": list(explained.risk.signals)},
    }
    paths = []
    for entry in explained.explain:
        for read in entry.reads:
            value = _lookup(read.path, scope)
            if read.missing:
                assert value is _MISSING, read
            else:
                assert value is not _MISSING and read.value == bounded(value), read
            paths.append(read.path)
    # Every condition reads something, and the subject's department is always looked at.
    assert "subject.properties.department" in paths


# --- no policy applied ------------------------------------------------------------------


def test_a_misspelt_resource_type_says_no_policy_applied_and_suggests_the_type() -> None:
    request = {**REQUEST, "resource": {"type": "customer_recrod"}}
    decision = _pdp().evaluate(request, explain=True)
    assert decision.explain == ()
    assert decision.no_policy == (
        "no policy targets resource type 'customer_recrod' with action 'read'; "
        "known types: customer_record: did you mean 'customer_record'?"
    )
    assert decision.to_dict()["no_policy"] == decision.no_policy
    assert _pdp().evaluate(request).no_policy is None  # only asked for with explain


def test_a_misspelt_action_of_a_known_type_lists_its_actions() -> None:
    request = {**REQUEST, "action": {"name": "raed"}}
    assert _pdp().evaluate(request, explain=True).no_policy == (
        "no policy targets resource type 'customer_record' with action 'raed'; "
        "actions for this type: read, update: did you mean 'read'?"
    )


def test_no_policy_without_anything_close_and_for_other_target_shapes() -> None:
    pdp = _pdp()
    assert no_policy(pdp.policies, "customer_record", "read") is None
    assert no_policy(pdp.policies, "zzz", "qqq") == (
        "no policy targets resource type 'zzz' with action 'qqq'; known types: customer_record"
    )
    by_action = PolicyDecisionPoint.from_texts(
        {"p.yaml": "policy: p\ntarget: {actions: [export]}\nrules: [{id: r, effect: allow}]\n"}
    )
    assert no_policy(by_action.policies, "doc", "exprot") == (
        "no policy targets resource type 'doc' with action 'exprot'; "
        "known actions: export: did you mean 'export'?"
    )


# --- the CLI ----------------------------------------------------------------------------


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    for name, text in TEXTS.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def _run(args: list[str], request: Mapping[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zerotrust", "eval", *args, "--now", "2026-03-02T10:00:00Z"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=False,
    )


def test_eval_explain_prints_the_values_via_python_m(policies: Path) -> None:
    proc = _run([str(policies), "-", "--explain"], REQUEST)
    assert proc.returncode == 3, proc.stderr
    trace = {e["rule"]: e for e in json.loads(proc.stdout)["explain"]}
    assert trace["records/deny-other-department"]["reads"] == [
        {"path": "subject.properties.department", "value": "support"},
        {"path": "resource.properties.owner_dept", "value": "sales"},
    ]
    assert trace["records/allow-typo"]["reads"] == [
        {"path": "subject.properties.wrd", "missing": True}
    ]
    assert proc.stderr == ""


@pytest.mark.parametrize("explain", [[], ["--explain"]])
def test_eval_says_on_stderr_when_no_policy_applied_via_python_m(
    policies: Path, explain: list[str]
) -> None:
    request = {**REQUEST, "resource": {"type": "customer_recrod"}}
    proc = _run([str(policies), "-", *explain], request)
    assert proc.returncode == 3
    assert proc.stderr == (
        "zerotrust eval: no policy targets resource type 'customer_recrod' with action "
        "'read'; known types: customer_record: did you mean 'customer_record'?\n"
    )
    assert ("no_policy" in json.loads(proc.stdout)) == bool(explain)


def test_eval_in_process(
    policies: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "request.json"
    path.write_text(json.dumps({**REQUEST, "action": {"name": "raed"}}))
    assert main(["eval", str(policies), str(path), "--explain", "--compact"]) == 3
    out, err = capsys.readouterr()
    assert json.loads(out)["no_policy"].endswith("did you mean 'read'?")
    assert err.startswith("zerotrust eval: no policy targets resource type 'customer_record'")
    path.write_text(json.dumps(REQUEST))
    assert main(["eval", str(policies), str(path)]) == 3
    assert capsys.readouterr().err == ""


def test_value_read_text_form() -> None:
    assert str(ValueRead("behavior.reads_1h", 410)) == "behavior.reads_1h = 410"
    assert (
        str(ValueRead("subject.properties.wrd", missing=True)) == "subject.properties.wrd: missing"
    )
    assert io.StringIO(str(ValueRead("a", {"b": "ü"}))).read() == 'a = {"b": "ü"}'


def test_an_explained_decision_survives_pickling_and_copying() -> None:
    request = {**REQUEST, "resource": {"type": "customer_recrod"}}
    decision = _pdp().evaluate(request, explain=True)
    for copied in (pickle.loads(pickle.dumps(decision)), copy.deepcopy(decision)):
        assert copied == decision and copied.no_policy == decision.no_policy is not None
