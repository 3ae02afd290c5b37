"""Property tests: the combining rules against an oracle, and robustness of the inputs.

Generated policies use constant conditions (``true``, ``false``, one that always
errors, or none), so a dozen lines of Python (``oracle``) say what the decision must
be. The CEL interpreter is slow, so sets stay small and example counts modest.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loader_child import LoaderChild
from strategies import (
    INT64,
    REQUEST,
    AliasSet,
    DeepYaml,
    DocumentFile,
    PolicyModel,
    RuleModel,
    TreeEntry,
    acr_values,
    alias_sets,
    deep_yaml_texts,
    dump_yaml,
    dump_yaml_all,
    files_with_empty_documents,
    hostile_json_texts,
    hostile_yaml_data_texts,
    json_ish,
    json_values,
    mutated_policy_documents,
    policy_ish_documents,
    policy_sets,
    policy_trees,
    requests,
    rules,
    to_texts,
    yaml_ish_text,
)

from zerotrust import (
    AccessRequest,
    Decision,
    Diagnostic,
    Effect,
    PolicyDecisionPoint,
    PolicyError,
    RequestError,
)
from zerotrust.cel import InterpreterBackend
from zerotrust.engine import DEFAULT_DENY
from zerotrust.policy.json_data import load_json
from zerotrust.policy.located import MAX_ALIAS_CHARS, MAX_ALIAS_VALUES, MAX_NODES, YamlProblem
from zerotrust.web.challenges import parse_challenges, step_up_challenge

NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)
ACCESS = {Effect.DENY: 0, Effect.STEP_UP: 1, Effect.ALLOW: 2}  # how much each lets through

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CHEAP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _clock() -> datetime.datetime:
    return NOW


def decide(policies: tuple[PolicyModel, ...], *, split: bool = False) -> Decision:
    pdp = PolicyDecisionPoint.from_texts(to_texts(policies, split=split), clock=_clock)
    return pdp.evaluate(REQUEST)


# --- the oracle -------------------------------------------------------------------------


@attrs.frozen
class Expected:
    effect: Effect
    reasons: tuple[str, ...]
    risk_score: int
    risk_signals: tuple[str, ...]
    step_up: tuple[tuple[str, ...], int | None] | None
    obligations: tuple[tuple[str, str], ...]
    report_only: tuple[tuple[str, bool], ...]
    errors: tuple[str, ...]


def _matches(rule: RuleModel) -> bool:
    if rule.condition == "error":
        return rule.effect != "allow"  # fail closed: an unknown never allows
    return rule.condition != "false"


def oracle(policies: tuple[PolicyModel, ...]) -> Expected:
    applicable = [p for p in policies if p.applies]
    errors: list[str] = []
    score, names = 0, []
    for p in applicable:
        for s in p.signals:
            if s.condition == "error":
                errors.append(f"{p.name}/{s.name}")
            if s.condition != "false":
                score += s.score
                names.append(s.name)
    matched: dict[str, list[tuple[str, RuleModel]]] = {"deny": [], "step_up": [], "allow": []}
    report_only = []
    for p in applicable:
        for r in p.rules:
            ref = f"{p.name}/{r.id}"
            if r.condition == "error":
                errors.append(ref)  # reported, report-only or not
            if r.report_only:
                report_only.append((ref, _matches(r)))
                continue
            if _matches(r):
                matched[r.effect].append((ref, r))
    effect = next((e for e in ("deny", "step_up", "allow") if matched[e]), "deny")
    reasons = tuple(ref for e in ("deny", "step_up", "allow") for ref, _ in matched[e])
    step_up = None
    if effect == "step_up":
        acr: list[str] = []
        ages = []
        for _, r in matched["step_up"]:
            for value in r.acr_values:
                if value not in acr:
                    acr.append(value)
            if r.max_age is not None:
                ages.append(r.max_age)
        step_up = (tuple(acr), min(ages) if ages else None)
    return Expected(
        effect=Effect(effect),
        reasons=reasons or ("default-deny",),
        risk_score=min(100, score),
        risk_signals=tuple(names),
        step_up=step_up,
        obligations=tuple((t, ref) for ref, r in matched[effect] for t in r.obligations),
        report_only=tuple(report_only),
        errors=tuple(errors),
    )


def observed(d: Decision) -> Expected:
    return Expected(
        effect=d.effect,
        reasons=tuple(r.rule for r in d.reasons),
        risk_score=d.risk.score,
        risk_signals=d.risk.signals,
        step_up=(d.step_up.acr_values, d.step_up.max_age) if d.step_up is not None else None,
        obligations=tuple((o.type, o.rule or "") for o in d.obligations),
        report_only=tuple((r.rule, r.matched) for r in d.report_only),
        errors=tuple(e.rule for e in d.errors),
    )


def _outcome(d: Decision) -> tuple[Any, ...]:
    """What a report-only rule must never change."""
    return (d.effect, d.reasons, d.risk, d.step_up, d.obligations)


# --- combining --------------------------------------------------------------------------


@PROPERTY
@given(policy_sets(report_only=None), st.booleans())
def test_decision_matches_the_oracle(policies: tuple[PolicyModel, ...], split: bool) -> None:
    assert observed(decide(policies, split=split)) == oracle(policies)


@PROPERTY
@given(policy_sets(allow_conditions=("false", "error"), report_only=None))
def test_default_deny_when_no_rule_allows(policies: tuple[PolicyModel, ...]) -> None:
    d = decide(policies)
    assert not d.allowed
    matched = [r for r in d.reasons if r.rule != DEFAULT_DENY]
    assert all(r.effect is not Effect.ALLOW for r in matched)
    if not matched:
        assert d.effect is Effect.DENY
        assert [(r.rule, r.effect) for r in d.reasons] == [(DEFAULT_DENY, Effect.DENY)]
        assert d.step_up is None and d.obligations == ()


@PROPERTY
@given(
    st.lists(st.sampled_from(["allow", "deny", "step_up"]), min_size=1, max_size=5),
    st.data(),
)
def test_deny_overrides_step_up_overrides_allow(effects: list[str], data: st.DataObject) -> None:
    """Every rule matches; the strongest effect wins, whatever the order and policies."""
    policies: list[PolicyModel] = []
    for i, effect in enumerate(effects):
        rule = RuleModel(
            id=f"r{i}", effect=effect, condition=data.draw(st.sampled_from(["true", "absent"]))
        )
        if policies and data.draw(st.booleans()):
            policies[-1] = attrs.evolve(policies[-1], rules=(*policies[-1].rules, rule))
        else:
            policies.append(PolicyModel(f"p{i}", None, (), (rule,)))
    strongest = next(e for e in ("deny", "step_up", "allow") if e in effects)
    d = decide(tuple(policies))
    assert d.effect is Effect(strongest)
    assert {r.effect for r in d.reasons} == {Effect(e) for e in effects}


def _insert(
    policies: tuple[PolicyModel, ...], rule: RuleModel, data: st.DataObject
) -> tuple[PolicyModel, ...]:
    """``policies`` with ``rule`` added to one of them (or to a new policy)."""
    index = data.draw(st.integers(min_value=0, max_value=len(policies)), label="policy")
    if index == len(policies):
        target = data.draw(st.sampled_from([None, ("doc",), ("*",), ("invoice",)]), label="target")
        return (*policies, PolicyModel(f"added-{len(policies)}", target, (), (rule,)))
    policy = policies[index]
    at = data.draw(st.integers(min_value=0, max_value=len(policy.rules)), label="position")
    new_rules = (*policy.rules[:at], rule, *policy.rules[at:])
    return (*policies[:index], attrs.evolve(policy, rules=new_rules), *policies[index + 1 :])


@PROPERTY
@given(policy_sets(report_only=None), st.data())
def test_adding_a_deny_rule_never_widens_access(
    policies: tuple[PolicyModel, ...], data: st.DataObject
) -> None:
    deny = data.draw(rules(rule_id="added-deny", effects=("deny",), report_only=None))
    before = decide(policies)
    after = decide(_insert(policies, deny, data))
    assert ACCESS[after.effect] <= ACCESS[before.effect]
    if not before.allowed:
        assert not after.allowed


@PROPERTY
@given(policy_sets(report_only=None), st.sampled_from(["deny", "step_up"]), st.data())
def test_an_erroring_deny_or_step_up_rule_never_allows(
    policies: tuple[PolicyModel, ...], effect: str, data: st.DataObject
) -> None:
    failing = RuleModel(id="failing", effect=effect, condition="error")
    extended = _insert(policies, failing, data)
    applies = any(p.applies and failing in p.rules for p in extended)
    d = decide(extended)
    if applies:
        assert not d.allowed
        assert ACCESS[d.effect] <= ACCESS[Effect(effect)]
        assert any(e.rule.endswith("/failing") for e in d.errors)
    else:
        assert not any(e.rule.endswith("/failing") for e in d.errors)


@PROPERTY
@given(
    policy_sets(report_only=False),
    st.lists(rules(report_only=True), min_size=1, max_size=3),
    st.data(),
)
def test_report_only_rules_never_change_the_outcome(
    policies: tuple[PolicyModel, ...], extra: list[RuleModel], data: st.DataObject
) -> None:
    extended = policies
    for i, rule in enumerate(extra):
        extended = _insert(extended, attrs.evolve(rule, id=f"watch-{i}"), data)
    before, after = decide(policies), decide(extended)
    assert _outcome(after) == _outcome(before)
    added = sum(1 for p in extended if p.applies for r in p.rules if r.report_only)
    assert len(after.report_only) == added


@PROPERTY
@given(policy_sets(report_only=None))
def test_evaluation_is_deterministic_for_a_fixed_clock(policies: tuple[PolicyModel, ...]) -> None:
    pdp = PolicyDecisionPoint.from_texts(to_texts(policies), clock=_clock)
    first, second = (pdp.evaluate(REQUEST, explain=True) for _ in range(2))
    assert _outcome(first) == _outcome(second)
    assert (first.report_only, first.errors, first.trace) == (
        second.report_only,
        second.errors,
        second.trace,
    )
    assert first.evaluated_at == second.evaluated_at == NOW
    assert first.policy_revision == second.policy_revision
    assert first.decision_id != second.decision_id
    one, two = first.to_dict(), second.to_dict()
    del one["decision_id"], two["decision_id"]
    assert one == two


@PROPERTY
@given(policy_sets(max_policies=3, max_rules=1, max_signals=4, report_only=None))
def test_risk_is_the_capped_sum_of_matched_signals(policies: tuple[PolicyModel, ...]) -> None:
    d = decide(policies)
    expected = oracle(policies)
    assert (d.risk.score, d.risk.signals) == (expected.risk_score, expected.risk_signals)
    assert 0 <= d.risk.score <= 100


# --- CEL diagnostics point into the file ------------------------------------------------

_PIECES = st.sampled_from(
    [
        "subject.id == resource.id",
        "context.records > 3",
        "device.managed",
        "!device.compliant",
        "size(subject.properties) >= 2",
        "resource.type in data.types",
        "(action.name == action.name)",
    ]
)


@st.composite
def _cel_error_documents(draw: st.DrawFn) -> str:
    """A policy whose one condition holds a stray ``@`` (the only one in the file), in
    any scalar style, with the condition on one line.

    Multi-line flow scalars, escapes, more-indented block lines and blank lines in
    folded blocks are left out: their positions are known to be wrong (see the
    xfail cases ``cel-syntax-error-*`` in ``policies/malformed/expected.yaml``).
    """
    style = draw(st.sampled_from(["plain", "single", "double", "literal", "folded", "flow"]))
    pieces = draw(st.lists(_PIECES, min_size=1, max_size=4))
    if style == "plain":  # a plain scalar cannot start with "@" or "!" (a tag)
        pieces.insert(0, "device.managed")
    first = 1 if style == "plain" else 0
    pieces.insert(draw(st.integers(min_value=first, max_value=len(pieces))), "@oops")
    expression = draw(st.sampled_from([" && ", " || ", "&&", " ||  "])).join(pieces)
    indent = " " * draw(st.integers(min_value=0, max_value=4))
    if style == "flow":
        quote = draw(st.sampled_from(["'", '"']))
        rule = f"{indent}- {{id: r, effect: deny, when: {quote}{expression}{quote}}}\n"
    else:
        if style in ("literal", "folded"):
            deeper = indent + " " * draw(st.integers(min_value=3, max_value=6))
            header = ("|" if style == "literal" else ">") + draw(st.sampled_from(["", "-", "+"]))
            blank = draw(st.sampled_from(["", "\n"])) if style == "literal" else ""
            when = f"{header}\n{blank}{deeper}{expression}\n"
        else:
            quote = {"plain": "", "single": "'", "double": '"'}[style]
            when = f"{quote}{expression}{quote}\n"
        rule = f"{indent}- id: r\n{indent}  effect: deny\n{indent}  when: {when}"
    return f"policy: p\nrules:\n{rule}"


@PROPERTY
@given(_cel_error_documents())
def test_cel_errors_point_at_the_offending_character_in_the_file(text: str) -> None:
    with pytest.raises(PolicyError) as info:
        PolicyDecisionPoint.from_texts({"p.yaml": text})
    (d,) = info.value.diagnostics
    (line,) = [n for n, content in enumerate(text.splitlines(), 1) if "@" in content]
    assert (d.line, d.column) == (line, text.splitlines()[line - 1].index("@") + 1), d
    assert (d.policy, d.rule) == ("p", "r")
    assert "syntax error" in d.message


# --- robustness -------------------------------------------------------------------------


@CHEAP
@given(yaml_ish_text())
def test_loader_raises_only_policy_error_on_arbitrary_yaml(text: str) -> None:
    _load_or_policy_error({"policy.yaml": text})


@PROPERTY
@given(st.lists(policy_ish_documents() | mutated_policy_documents(), min_size=1, max_size=3))
def test_loader_raises_only_policy_error_on_arbitrary_documents(documents: list[Any]) -> None:
    _load_or_policy_error({"policy.yaml": dump_yaml_all(documents)})


def _load_or_policy_error(texts: dict[str, str]) -> None:
    try:
        pdp = PolicyDecisionPoint.from_texts(texts, clock=_clock)
    except PolicyError as exc:
        _assert_clean(exc, texts)
        return
    assert isinstance(pdp.evaluate(REQUEST), Decision)  # a set that loads can decide


@CHEAP
@given(json_ish())
def test_from_mapping_raises_only_request_error(data: Any) -> None:
    try:
        AccessRequest.from_mapping(data)
    except RequestError as exc:
        assert isinstance(exc.field, str) and exc.reason


@CHEAP
@given(requests())
def test_from_mapping_accepts_every_valid_request(data: dict[str, Any]) -> None:
    req = AccessRequest.from_mapping(data)
    subject, resource = data["subject"], data["resource"]
    assert req.subject.id == subject["id"]
    assert req.subject.type == (subject.get("type") or "user")
    assert dict(req.subject.properties) == (subject.get("properties") or {})
    assert req.action.name == data["action"]["name"]
    assert req.resource.type == resource["type"]
    assert req.resource.id == resource.get("id")
    assert dict(req.device) == (data.get("device") or {})
    assert dict(req.context) == (data.get("context") or {})
    assert AccessRequest.from_mapping(req.to_dict()) == req


READS_EVERYTHING = """
policy: reads-everything
signals:
  - {name: odd-context, when: "context.size > 3", score: 40}
rules:
  - id: deny-weird
    effect: deny
    when: "subject.properties.level > 3 || resource.properties.tags.exists(t, t == 'x')"
  - id: step-up-device
    effect: step_up
    when: "device.managed == false && action.properties.bulk == true"
  - id: allow-owner
    effect: allow
    when: "resource.id == subject.id && subject.type == 'user'"
"""


@functools.cache
def _reads_everything() -> PolicyDecisionPoint:
    return PolicyDecisionPoint.from_texts({"p.yaml": READS_EVERYTHING}, clock=_clock)


@CHEAP
@given(requests())
def test_evaluate_decides_every_valid_request(data: dict[str, Any]) -> None:
    """Odd but valid requests make conditions error, never ``evaluate`` raise."""
    d = _reads_everything().evaluate(data)
    assert d.effect in set(Effect)


# Not a hypothesis test: a failing hypothesis test makes its pytest plugin import libcst,
# whose DeprecationWarning (filterwarnings=error) turns the expected failure into an
# INTERNALERROR.
@pytest.mark.parametrize("big", [INT64[1] + 1, INT64[0] - 1, 10**30])
def test_interpreter_decides_requests_with_integers_beyond_64_bits(big: int) -> None:
    pdp = PolicyDecisionPoint.from_texts(
        {"p.yaml": READS_EVERYTHING}, clock=_clock, backend=InterpreterBackend()
    )
    request = {**REQUEST, "context": {"records": big}}
    with pytest.raises(RequestError, match="64-bit"):
        pdp.evaluate(request)


# --- policy loading: data files, acr values, directory trees -------------------------------


def _assert_clean(exc: PolicyError, texts: dict[str, str]) -> None:
    """Diagnostics speak about the policy: positioned inside a file that has content,
    never showing our objects, tracebacks or generated code."""
    assert exc.diagnostics
    for d in exc.diagnostics:
        assert d.message and d.line >= 0 and d.column >= 0
        for leak in ("<zerotrust.", "object at 0x", "Traceback", "<cel>", "LNode"):
            assert leak not in d.message, d
        if texts.get(d.file, "").strip() and "larger than" not in d.message:
            assert d.line >= 1 and d.column >= 1, d


@pytest.fixture(scope="module")
def child() -> Iterator[LoaderChild]:
    loader = LoaderChild()
    yield loader
    loader.close()


def _assert_clean_refusal(result: dict[str, Any], texts: dict[str, str]) -> None:
    """``result`` (from the child) is a PolicyError whose diagnostics are clean."""
    assert result["outcome"] == "refused", result
    diagnostics = [Diagnostic(*d) for d in result["diagnostics"]]
    _assert_clean(PolicyError(diagnostics), texts)


@CHEAP
@given(hostile_json_texts() | hostile_yaml_data_texts(), st.booleans())
def test_loader_raises_only_policy_error_on_hostile_data(
    child: LoaderChild, text: str, as_json: bool
) -> None:
    """Deep (to 30,000 levels, in a child process with a small stack), huge,
    infinite, duplicated, surrogate-laden, alias-expanded, empty or broken data, in JSON
    or YAML: a PolicyError with real positions, or data a condition can read."""
    name = "d.data.json" if as_json else "d.data.yaml"
    texts = {"p.yaml": READS_EVERYTHING, name: text}
    result = child.load(texts, request=REQUEST)
    if result["outcome"] != "loaded":
        _assert_clean_refusal(result, texts)
        return
    assert result["effect"] in {"allow", "deny", "step_up"}
    assert result["encodable"]  # plain, finite, encodable
    assert text.strip() not in ("", "~", "---") and not text.startswith("#"), result


MINIMAL_POLICY = "policy: minimal\nrules: [{id: r, effect: allow}]\n"
_NUMBERED_POLICY = "policy: p{n}\nrules: [{id: r, effect: allow}]\n"


@PROPERTY
@given(deep_yaml_texts())
def test_no_nesting_crashes_the_loader(child: LoaderChild, deep: DeepYaml) -> None:
    """Flow and block collections, explicit keys, anchors and tags nested up to
    100,000 levels, loaded in a child process on a 512 KiB thread stack: refused with
    "nested deeper than 64 levels" at a position exactly when the innermost value is
    deeper than 64, in linear time; the process never dies."""
    name = "d.data.yaml" if deep.is_data else "p.yaml"
    texts = {"q.yaml": MINIMAL_POLICY, name: deep.text}
    result = child.load(texts)
    assert result["outcome"] in {"loaded", "refused"}, result
    assert result["seconds"] < 2
    if deep.depth <= 64:
        assert not any("nested deeper" in d[3] for d in result.get("diagnostics", ()))
        return
    _assert_clean_refusal(result, texts)
    ((file, line, column, message),) = result["diagnostics"]
    assert (file, line, message) == (name, 1, "nested deeper than 64 levels")
    assert 1 <= column <= len(deep.text)


@PROPERTY
@given(alias_sets())
def test_aliases_expand_only_within_the_limits_in_linear_memory(
    child: LoaderChild, aliases: AliasSet
) -> None:
    """Anchors and aliases spread over several files: the set loads exactly when what
    the aliases repeat stays within the limits (values, characters, per load) and no
    file expands beyond the value limit; either way in bounded time and memory."""
    texts = {"p.yaml": MINIMAL_POLICY, **aliases.texts}
    result = child.load(texts, measure=True)
    within = (
        aliases.values <= MAX_ALIAS_VALUES
        and aliases.chars <= MAX_ALIAS_CHARS
        and aliases.largest <= MAX_NODES
    )
    assert result["outcome"] == ("loaded" if within else "refused"), (aliases, result)
    written = sum(len(t) for t in aliases.texts.values())
    # What may be held: the texts, the expanded set's revision (its JSON) and its copies.
    assert result["peak_bytes"] < 8 * written + 6 * MAX_ALIAS_CHARS + 64 * 2**20, result
    assert result["seconds"] < 10
    if not within:
        _assert_clean_refusal(result, texts)
        messages = {d[3] for d in result["diagnostics"]}
        assert all("alias bomb?" in m for m in messages), messages


@PROPERTY
@given(files_with_empty_documents(_NUMBERED_POLICY), st.booleans())
def test_a_policy_file_loads_only_if_every_document_is_a_policy(
    file: DocumentFile, on_disk: bool
) -> None:
    """An empty file, a comment-only file, an empty document (nothing, ``~``, ``null``)
    before, between or after policies: refused, naming the file. A file being written
    in place is empty for a moment; loading it without its policies could drop a deny."""
    texts = {"a.yaml": MINIMAL_POLICY, "b.yaml": file.text}
    try:
        if on_disk:
            with tempfile.TemporaryDirectory() as base:
                for name, text in texts.items():
                    Path(base, name).write_text(text, encoding="utf-8")
                pdp = PolicyDecisionPoint.from_path(base, behavior=None)
                texts = {str(Path(base, n)): t for n, t in texts.items()}
        else:
            pdp = PolicyDecisionPoint.from_texts(texts, behavior=None)
    except PolicyError as exc:
        assert file.empty or not file.documents, exc
        assert {Path(d.file).name for d in exc.diagnostics} == {"b.yaml"}, exc
        assert all("empty" in d.message or "no policy" in d.message for d in exc.diagnostics)
        return
    assert file.documents and not file.empty
    assert len(pdp.policies.policies) == 1 + file.documents


@PROPERTY
@given(files_with_empty_documents('{"k{n}": 1}\n'))
def test_a_data_file_loads_only_if_it_holds_one_mapping(file: DocumentFile) -> None:
    """An empty data file is refused like an empty policy file: with its data gone, a
    condition reading it cannot mean what the author wrote."""
    texts = {"a.yaml": MINIMAL_POLICY, "d.data.yaml": file.text}
    try:
        pdp = PolicyDecisionPoint.from_texts(texts, behavior=None)
    except PolicyError as exc:
        assert file.documents != 1 or file.empty, exc
        assert {d.file for d in exc.diagnostics} == {"d.data.yaml"}, exc
        return
    assert file.documents == 1 and not file.empty
    assert list(pdp.policies.data) == ["k0"]


def _within_limits(value: Any, depth: int = 0) -> bool:
    """The oracle: what the loader accepts of a value json.loads read."""
    if depth > 64:
        return False
    if isinstance(value, dict):
        return all(
            _within_limits(k, depth + 1) and _within_limits(v, depth + 1) for k, v in value.items()
        )
    if isinstance(value, list):
        return all(_within_limits(v, depth + 1) for v in value)
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return INT64[0] <= value <= INT64[1]
    if isinstance(value, float):
        return math.isfinite(value)
    return not re.search(
        "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]", value
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({k for k, _ in pairs}) != len(pairs):
        raise ValueError("duplicate key")
    return dict(pairs)


@CHEAP
@given(hostile_json_texts() | json_values().map(json.dumps))
def test_json_data_reads_as_the_standard_library_does_within_the_limits(text: str) -> None:
    """Our JSON reader (which reports positions and never recurses) agrees with
    ``json.loads`` on every text: the same value, or refused where ``json.loads``
    refuses or the value breaks a limit."""
    try:
        expected = json.loads(text, object_pairs_hook=_no_duplicates)
        valid = _within_limits(expected) and text.count("[") < 1000
    except (ValueError, RecursionError):
        valid = False
    try:
        value, _ = load_json(text)
    except YamlProblem as exc:
        assert not valid, (exc.message, exc.line, exc.column)
        assert exc.line >= 1 and exc.column >= 1
        return
    assert valid and value == expected


@CHEAP
@given(
    st.lists(acr_values, min_size=1, max_size=4), st.sampled_from([None, 0, 300, 2**31 - 1, 2**31])
)
def test_acr_values_load_only_when_the_challenge_carries_them_exactly(
    values: list[str], max_age: int | None
) -> None:
    """Whatever loads reaches the RFC 9470 challenge and AuthZEN's space-separated
    ``acr_values`` unchanged; the rest is refused at load, at the value."""
    step_up: dict[str, Any] = {"acr_values": values}
    if max_age is not None:
        step_up["max_age"] = max_age
    document = {"policy": "q", "rules": [{"id": "r", "effect": "step_up", "step_up": step_up}]}
    text = dump_yaml(document)
    try:
        pdp = PolicyDecisionPoint.from_texts({"q.yaml": text}, clock=_clock)
    except PolicyError as exc:
        _assert_clean(exc, {"q.yaml": text})
        tokens = all(re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]{1,255}", v) for v in values)
        assert not tokens or (max_age is not None and max_age > 2**31 - 1)
        return
    decision = pdp.evaluate(REQUEST)
    assert decision.step_up is not None
    wanted = tuple(dict.fromkeys(values))
    assert decision.step_up.acr_values == wanted
    (challenge,) = parse_challenges(step_up_challenge(decision.step_up))
    assert challenge.params["acr_values"].split(" ") == list(wanted)
    assert challenge.params.get("max_age") == (None if max_age is None else str(max_age))


def _make_tree(root: Path, entries: list[TreeEntry]) -> None:
    root.mkdir(parents=True)
    for number, entry in enumerate(entries):
        path = root / entry.path
        path.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == "dir":
            path.mkdir(exist_ok=True)
        elif entry.kind == "link":
            path.symlink_to(entry.target)
        elif entry.kind == "policy":
            path.write_text(f"policy: p{number}\nrules: [{{id: r, effect: allow}}]\n")
        else:
            path.write_text("not: [a policy\n")


def _expected_tree(root: Path) -> tuple[list[str], set[str]]:
    """The policies a loader that skips nothing silently loads (names, in load order)
    and the entries it must name as problems, by an independent walk over paths
    (``os.path.realpath``, no descriptors): the reference for the snapshot reader."""
    loaded: list[tuple[tuple[str, ...], str, str]] = []
    bad: set[str] = set()
    walked: set[str] = set()

    def descend(
        real: str, parts: tuple[str, ...], above: frozenset[str], shown: tuple[str, ...]
    ) -> None:
        if real in above or real in walked:
            bad.add(str(root.joinpath(*shown)))
            return
        walked.add(real)
        walk(real, parts, above | {real})

    def walk(real: str, parts: tuple[str, ...], above: frozenset[str]) -> None:
        names = sorted(os.listdir(real))
        data = os.path.join(real, "..data")
        if "..data" in names and os.path.islink(data):
            if os.path.isdir(data):
                descend(os.path.realpath(data), parts, above, (*parts, "..data"))
            else:
                bad.add(str(root.joinpath(*parts, "..data")))
            return
        for name in names:
            path = os.path.join(real, name)
            shown = (*parts, name)
            if name.startswith("."):
                continue
            if os.path.islink(path) and not os.path.exists(path):
                bad.add(str(root.joinpath(*shown)))
            elif os.path.isdir(path):
                descend(os.path.realpath(path), shown, above, shown)
            elif name.endswith(".yaml"):
                loaded.append((shown, str(root.joinpath(*shown)), os.path.realpath(path)))

    real_root = os.path.realpath(root)
    walked.add(real_root)
    walk(real_root, (), frozenset({real_root}))
    loaded.sort()
    first: set[str] = set()
    for _, shown, real in loaded:
        if real in first:
            bad.add(shown)  # the same policy twice: a duplicate policy name
        first.add(real)
    names = [Path(real).read_text().split()[1] for _, _, real in loaded]
    return names, bad


@PROPERTY
@given(policy_trees())
def test_policy_trees_load_every_visible_file_or_name_the_bad_entry(
    entries: list[TreeEntry],
) -> None:
    """Links to files and directories, links into hidden directories, Kubernetes'
    ``..data``, loops, broken links, the same directory twice: every visible policy is
    loaded once, or the load fails naming each entry it could not take."""
    with tempfile.TemporaryDirectory() as base:
        root = Path(base, "x", "y", "root")  # `../..` stays inside `base`
        _make_tree(root, entries)
        loaded, bad = _expected_tree(root)
        try:
            pdp = PolicyDecisionPoint.from_path(root, behavior=None)
        except PolicyError as exc:
            named = {d.file for d in exc.diagnostics}
            if bad:
                assert named == bad, exc
            else:
                assert not loaded and named == {str(root)}, exc
            return
        assert not bad and [p.name for p in pdp.policies.policies] == loaded
