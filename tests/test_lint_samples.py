"""``zerotrust lint`` on hundreds of rules: sample requests settle most questions before
the solver is asked (removing queries, never findings), ``--max-seconds`` bounds the run,
and the report's two details from the tricky-policy review (examples carry no computed
``risk``; report-only rules are never "always matching")."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

pytest.importorskip("z3")

from test_lint import EXPECTED, FINDINGS, _seen
from test_lint_properties import _EFFECTS, _RELATED, _compiles, _policy
from test_lint_soundness import CONDITIONS

from zerotrust import PolicyDecisionPoint
from zerotrust.cli import main
from zerotrust.cli._lint import render_json, render_text
from zerotrust.lint import Finding, LintOptions, LintReport, lint_path
from zerotrust.lint._analyse import lint_specs
from zerotrust.lint._load import policy_specs
from zerotrust.policy.located import load_documents
from zerotrust.policy.validate import validate_policy

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_lint import policy_yaml

#: Rules of the benchmark's shape with five planted problems among them.
PLANTED = (
    "  - id: a5-again\n    effect: allow\n"
    "    when: \"subject.properties.dept.startsWith('d0') && resource.properties.kind == 'k5'"
    ' && subject.properties.level >= 5"\n'
    "  - id: allow-low\n    effect: allow\n"
    "    when: \"subject.properties.level < 2 && resource.properties.kind == 'k0'\"\n"
    "  - id: deny-never\n    effect: deny\n"
    '    when: "subject.properties.level < 0 && subject.properties.level > 0"\n'
    "  - id: allow-no-level\n    effect: allow\n"
    "    when: \"!has(subject.properties.level) && resource.properties.kind == 'k3'\"\n"
    "  - id: allow-dead\n    effect: allow\n"
    "    when: \"resource.properties.kind == 'k1' && resource.properties.kind == 'k2'\"\n"
)
PLANTED_FOUND = {
    ("duplicate-condition", "p/a5-again", ("p/a5",)),
    ("shadowed-allow", "p/allow-low", ("p/d2",)),
    ("shadowed-allow", "p/allow-no-level", ("p/d0",)),  # d0 errors, so matches
    ("never-true", "p/deny-never", ()),
    ("dead-rule", "p/allow-dead", ()),
}


def _planted(tmp_path: Path, rules: int) -> Path:
    path = tmp_path / f"planted{rules}.yaml"
    path.write_text(policy_yaml(rules) + PLANTED, encoding="utf-8")
    return path


def _claims(findings: tuple[Finding, ...]) -> set[tuple[str, str, tuple[str, ...]]]:
    return {(f.kind, f.ref, f.related) for f in findings}


def test_lint_perf_180_rules_of_the_repro_shape_take_seconds_not_minutes(tmp_path: Path) -> None:
    """150 allows and 30 denies on the same three attributes took 110 s (a solver query
    per pair of rules); the sample requests leave a few dozen questions."""
    path = tmp_path / "p.yaml"
    path.write_text(policy_yaml(180), encoding="utf-8")
    start = time.perf_counter()
    report = lint_path(path)
    elapsed = time.perf_counter() - start
    assert report == LintReport((), 0)
    assert elapsed < 30, elapsed


def test_lint_perf_findings_among_many_rules_are_all_still_found(tmp_path: Path) -> None:
    report = lint_path(_planted(tmp_path, 120))
    assert _claims(report.findings) == PLANTED_FOUND
    assert report.undecided == 0


def test_lint_perf_samples_give_the_findings_asking_every_question_gives(tmp_path: Path) -> None:
    specs = policy_specs(_planted(tmp_path, 30))
    with_samples, without = lint_specs(specs), lint_specs(specs, samples=False)
    assert with_samples.findings == without.findings
    assert _claims(with_samples.findings) == PLANTED_FOUND
    corpus = policy_specs(FINDINGS)
    assert lint_specs(corpus).findings == lint_specs(corpus, samples=False).findings


# Policies where rules often say the same thing, shadow each other or differ only at an
# edge: a condition with its literal moved by one, and the pairs of test_lint_properties.
_NUDGED = st.tuples(_EFFECTS, st.integers(-2, 2), st.sampled_from(["<", "<=", ">", ">=", "=="]))
_RULES = st.tuples(
    st.lists(st.tuples(_EFFECTS, CONDITIONS), max_size=4),
    st.lists(_RELATED, max_size=2),
    st.lists(_NUDGED, max_size=4),
).map(
    lambda t: (
        t[0]
        + [rule for pair in t[1] for rule in pair]
        + [(e, f"device.a {op} {n} || device.b == 'x'") for e, n, op in t[2]]
    )
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(_RULES.filter(bool), st.lists(CONDITIONS, max_size=2))
def test_lint_perf_samples_remove_questions_never_findings(
    rules: list[tuple[str, str]], signals: list[str]
) -> None:
    assume(all(_compiles(source) for _, source in rules) and all(map(_compiles, signals)))
    (document,) = load_documents(_policy(rules, signals))
    validated = validate_policy(document, "p.yaml")
    assume(validated.spec is not None)
    assert validated.spec is not None
    specs = [validated.spec]
    assert lint_specs(specs).findings == lint_specs(specs, samples=False).findings


def test_lint_perf_max_seconds_leaves_questions_undecided_never_false(tmp_path: Path) -> None:
    """Past the budget no question is asked: each is counted undecided, none a finding;
    a budget that runs out midway gives some of the findings and nothing else."""
    path = _planted(tmp_path, 120)
    spent = lint_path(path, LintOptions(max_seconds=1e-9))
    assert (spent.findings, spent.out_of_time) == ((), True)
    assert spent.undecided > 0
    everything = _claims(lint_path(path).findings)
    for budget in (0.05, 0.2, 0.5):
        report = lint_path(path, LintOptions(max_seconds=budget))
        assert _claims(report.findings) <= everything
        if not report.out_of_time:  # (the machine was quick enough)
            assert _claims(report.findings) == everything
    roomy = lint_path(FINDINGS, LintOptions(max_seconds=600))
    assert (_seen(list(roomy.findings)), roomy.undecided, roomy.out_of_time) == (EXPECTED, 0, False)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zerotrust", "lint", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )


def test_lint_perf_cli_max_seconds_reports_what_was_left_undecided() -> None:
    done = _cli("tests/lint_corpus/findings", "--max-seconds", "0.000001")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "no findings"
    assert lines[1].endswith(" not decided within --max-seconds: no finding came of them")
    document = json.loads(
        _cli("tests/lint_corpus/findings", "--max-seconds", "1e-6", "--format", "json").stdout
    )
    assert (document["count"], document["out_of_time"]) == (0, True)
    assert document["undecided"] > 0
    done = _cli("tests/lint_corpus/findings", "--max-seconds", "600")
    assert done.returncode == 1
    assert "not decided" not in done.stdout


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon", "86401"])
def test_lint_perf_cli_max_seconds_must_be_a_positive_number(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["lint", "tests/lint_corpus/clean", "--max-seconds", value])
    assert exited.value.code == 2
    assert "--max-seconds" in capsys.readouterr().err
    done = _cli("tests/lint_corpus/clean", "--max-seconds", value)
    assert (done.returncode, done.stdout) == (2, "")


def test_lint_perf_benchmark_prints_times_and_ratios_in_one_run() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_lint.py", "--sizes", "12", "24"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["rules", "seconds", "ms/rule", "ratio"]
    assert [row.split()[0] for row in rows] == ["12", "24"]
    assert rows[0].split()[-1] == "1.00x"


# -- the tricky policy of the review ---------------------------------------------------------

TRICKY = """\
policy: t
target: {resources: [doc], actions: [read]}
rules:
  - id: deny-missing
    effect: deny
    when: "!device.managed"
  - id: allow-managed-false
    effect: allow
    when: "has(device.managed) && device.managed == false"
  - id: allow-num
    effect: allow
    when: "subject.properties.level >= 3"
  - id: deny-b
    effect: deny
    mode: report-only
    when: "true"
  - id: deny-c
    effect: deny
    mode: report-only
    when: "subject.properties.level > 3 && subject.properties.level < 3"
  - id: step-up-any-risk
    effect: step_up
    when: "risk.score >= 0"
    step_up: {acr_values: ["urn:example:loa:2"]}
  - id: deny-risky
    effect: deny
    when: "risk.score > 70"
"""


def _tricky(tmp_path: Path) -> LintReport:
    (tmp_path / "t.yaml").write_text(TRICKY, encoding="utf-8")
    return lint_path(tmp_path)


def test_lint_tricky_examples_hold_request_values_and_name_risk_apart(tmp_path: Path) -> None:
    """A request cannot carry ``risk`` (the engine computes it): the example holds only
    what a request holds, and the risk score it was checked with is shown beside it."""
    report = _tricky(tmp_path)
    shadowed = {f.ref: f for f in report.findings if f.kind == "shadowed-allow"}
    assert set(shadowed) == {"t/allow-managed-false", "t/allow-num"}
    managed, num = shadowed["t/allow-managed-false"], shadowed["t/allow-num"]
    assert managed.related == ("t/deny-missing",)
    assert (managed.example, managed.example_with) == ({"device": {"managed": False}}, None)
    assert num.related == ("t/step-up-any-risk",)
    assert num.example is not None and set(num.example) == {"subject"}
    assert num.example_with is not None and set(num.example_with) == {"risk"}
    score = num.example_with["risk"]["score"]
    assert isinstance(score, int) and 0 <= score <= 100
    text = render_text(report)
    assert f"    for example: {json.dumps(num.example)} with risk.score = {score}\n" in text
    document = json.loads(render_json(report))
    by_ref = {f["ref"]: f for f in document["findings"]}
    assert by_ref["t/allow-num"]["example_with"] == {"risk": {"score": score}}
    # the example is a request the engine takes, and decides as the finding says
    pdp = PolicyDecisionPoint.from_path(tmp_path, behavior=None)
    for finding in (managed, num):
        example: dict[str, Any] = finding.example or {}
        request = {
            "subject": {"id": "someone", **example.get("subject", {})},
            "action": {"name": "read"},
            "resource": {"type": "doc"},
            **({"device": example["device"]} if "device" in example else {}),
        }
        decision = pdp.evaluate(request, explain=True)
        assert decision.trace is not None
        matched = {e.rule for e in decision.trace if e.outcome == "matched"}
        assert {finding.ref, *finding.related} <= matched, (finding, decision)
        assert decision.effect.value != "allow"


def test_lint_tricky_report_only_rules_are_never_always_matching(tmp_path: Path) -> None:
    """A report-only rule never decides, so matching every request is no mistake there,
    ``when: "true"`` or not; one that can never match is still reported."""
    found = {(f.kind, f.ref) for f in _tricky(tmp_path).findings}
    assert ("always-matches", "t/deny-b") not in found
    assert ("never-true", "t/deny-c") in found
    assert ("always-matches", "t/step-up-any-risk") in found  # not report-only: reported
    (tmp_path / "t.yaml").write_text(TRICKY.replace("    mode: report-only\n", ""), "utf-8")
    found = {(f.kind, f.ref) for f in lint_path(tmp_path).findings}
    assert ("always-matches", "t/deny-b") in found


def test_lint_tricky_text_shows_computed_values_beside_the_example() -> None:
    finding = Finding(
        "shadowed-allow",
        "p.yaml",
        3,
        11,
        "p/a",
        "allow rule never decides a request",
        related=("p/d",),
        example={"subject": {"properties": {"level": 3}}},
        example_with={"risk": {"score": 0}, "behavior": {"count": 2}},
    )
    assert render_text(LintReport((finding,))).splitlines()[1] == (
        '    for example: {"subject": {"properties": {"level": 3}}}'
        " with risk.score = 0, behavior.count = 2"
    )
