"""``zerotrust lint``: findings on a corpus with known problems, none on the shipped and
example policies, and the command through the real console script."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

pytest.importorskip("z3")

from zerotrust.cli import main
from zerotrust.errors import PolicyError
from zerotrust.lint import KINDS, Finding, LintOptions, LintReport, lint_path

CORPUS = ROOT / "tests" / "lint_corpus"
FINDINGS = CORPUS / "findings"

#: Every finding the corpus holds: (file, line, kind, ref, related).
EXPECTED = {
    ("always.yaml", 9, "always-matches", "always/deny-any-kind", ()),
    ("always.yaml", 18, "shadowed-allow", "always/allow-owner", ("always/deny-any-kind",)),
    ("always.yaml", 21, "duplicate-condition", "always/allow-owner-again", ("always/allow-owner",)),
    ("always.yaml", 21, "shadowed-allow", "always/allow-owner-again", ("always/deny-any-kind",)),
    ("dead.yaml", 9, "never-true", "dead/impossible-level", ()),
    ("dead.yaml", 13, "dead-signal", "dead/never", ()),
    ("dead.yaml", 21, "dead-rule", "dead/allow-impossible-range", ()),
    ("dead.yaml", 24, "never-true", "dead/deny-two-owners", ()),
    (
        "shadowed.yaml",
        13,
        "shadowed-allow",
        "shadowed/allow-contractor-drafts",
        ("shadowed/deny-contractors",),
    ),
    (
        "shadowed.yaml",
        20,
        "shadowed-allow",
        "shadowed/allow-huge-for-staff",
        ("shadowed/step-up-large",),
    ),
    (
        "together.yaml",
        20,
        "duplicate-condition",
        "together-narrow/large-again",
        ("together-narrow/large",),
    ),
    (
        "together.yaml",
        31,
        "shadowed-allow",
        "together-narrow/allow-finance",
        ("together-narrow/deny-large", "together-narrow/deny-small"),
    ),
    (
        "together.yaml",
        34,
        "shadowed-allow",
        "together-narrow/allow-unsigned-drafts",
        ("together-wide/deny-unsigned",),
    ),
}


def _policy_sets() -> list[Path]:
    """Every shipped and example policy directory (a set the engine loads)."""
    examples = sorted(
        {
            path.parent
            for path in (ROOT / "examples").rglob("*.y*ml")
            if re.search(r"^policy:", path.read_text(encoding="utf-8"), re.M)
        }
    )
    assert examples  # (the search still finds them)
    return [ROOT / "policies", *examples]


def _seen(findings: list[Finding]) -> set[tuple[str, int, str, str, tuple[str, ...]]]:
    return {(Path(f.file).name, f.line, f.kind, f.ref, f.related) for f in findings}


@pytest.fixture(scope="module")
def corpus_findings() -> list[Finding]:
    report = lint_path(FINDINGS)
    assert report.undecided == 0
    return list(report.findings)


def test_the_corpus_gives_exactly_its_known_findings(corpus_findings: list[Finding]) -> None:
    assert _seen(corpus_findings) == EXPECTED
    assert {f.kind for f in corpus_findings} == set(KINDS)


def test_findings_point_at_the_condition_in_the_file(corpus_findings: list[Finding]) -> None:
    for finding in corpus_findings:
        line = Path(finding.file).read_text(encoding="utf-8").splitlines()[finding.line - 1]
        assert line[finding.column - 1 :].startswith(("when:", '"', ">-", "'")), finding
        assert line.lstrip().startswith("when:"), finding


def test_shadowing_examples_are_requests_the_engine_decides_as_said(
    corpus_findings: list[Finding],
) -> None:
    """The example of a shadowed allow, run through the real engine: the allow and its
    shadowing rule both match, and the allow does not decide."""
    from zerotrust import PolicyDecisionPoint

    pdp = PolicyDecisionPoint.from_path(FINDINGS, behavior=None)
    examples = [f for f in corpus_findings if f.kind == "shadowed-allow" and f.example]
    assert len(examples) >= 3
    for finding in examples:
        example = finding.example
        assert example is not None
        policy = finding.ref.split("/")[0]
        resource, action = {
            "always": ("document", "delete"),
            "shadowed": ("document", "update"),
            "together-narrow": ("invoice", "approve"),
        }[policy]
        subject = example.get("subject", {})
        request = {
            "subject": {"id": subject.get("id", "someone"), **_without(subject, "id")},
            "action": {"name": action},
            "resource": {"type": resource, **example.get("resource", {})},
        }
        decision = pdp.evaluate(request, explain=True)
        assert decision.trace is not None
        matched = {e.rule for e in decision.trace if e.outcome == "matched"}
        assert {finding.ref, *finding.related} <= matched, (finding, decision)
        assert decision.effect.value != "allow"


def _without(mapping: dict[str, object], key: str) -> dict[str, object]:
    return {k: v for k, v in mapping.items() if k != key}


def test_near_misses_give_no_finding() -> None:
    assert lint_path(CORPUS / "clean") == LintReport((), 0)


@pytest.mark.parametrize("path", _policy_sets(), ids=lambda p: p.name)
def test_no_finding_on_shipped_and_example_policies(path: Path) -> None:
    report = lint_path(path)
    assert report.findings == ()
    if report.undecided:  # a question timed out on a loaded machine: ask with more time
        report = lint_path(path, LintOptions(timeout_ms=60_000))
    assert report == LintReport((), 0)


def test_a_single_file_is_linted_alone() -> None:
    findings = lint_path(FINDINGS / "shadowed.yaml").findings
    assert {f.ref for f in findings} == {
        "shadowed/allow-contractor-drafts",
        "shadowed/allow-huge-for-staff",
    }


def test_invalid_policies_raise_the_loaders_diagnostics(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("policy: bad\nrules: []\n", encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        lint_path(tmp_path)
    assert "bad.yaml" in str(caught.value)


def test_a_timeout_gives_fewer_findings_never_other_ones() -> None:
    """unknown is no proof: with a one-millisecond budget nothing false appears. (What a
    timeout may change: a dead rule told as never true when its errors were not settled,
    and a shadowed allow naming more rules than needed, each of them a true statement.)"""

    def claims(seen: set[tuple[str, int, str, str, tuple[str, ...]]]) -> set[tuple[str, ...]]:
        never = {"dead-rule": "never", "dead-signal": "never", "never-true": "never"}
        return {(file, str(line), never.get(kind, kind), ref) for file, line, kind, ref, _ in seen}

    for _ in range(3):
        report = lint_path(FINDINGS, LintOptions(timeout_ms=1))
        assert claims(_seen(list(report.findings))) <= claims(EXPECTED)


# -- the command ---------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zerotrust", "lint", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )


def test_cli_text_lists_findings_and_exits_1() -> None:
    done = _cli("tests/lint_corpus/findings/shadowed.yaml")
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(
        "tests/lint_corpus/findings/shadowed.yaml:13:11: shadowed-allow:"
        " shadowed/allow-contractor-drafts: allow rule never decides a request: whenever it"
        " matches, shadowed/deny-contractors matches too"
    )
    example = next(line for line in lines if line.startswith("    for example: "))
    assert json.loads(example.removeprefix("    for example: "))["subject"] == {
        "properties": {"kind": "contractor"}
    }
    assert lines[-1] == "2 findings"


def test_cli_json_and_exit_zero() -> None:
    done = _cli("tests/lint_corpus/findings", "--format", "json", "--exit-zero")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["count"] == len(EXPECTED) == len(report["findings"])
    assert report["undecided"] == 0
    seen = {
        (Path(f["file"]).name, f["line"], f["kind"], f["ref"], tuple(f["related"]))
        for f in report["findings"]
    }
    assert seen == EXPECTED
    assert set(report["findings"][0]) == {
        "kind",
        "file",
        "line",
        "column",
        "ref",
        "message",
        "related",
        "example",
        "example_with",
    }


def test_cli_no_findings_exits_0() -> None:
    done = _cli("tests/lint_corpus/clean")
    assert (done.returncode, done.stdout) == (0, "no findings\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tests/policies/malformed/acr-values-not-strings.yaml",), "acr_values"),
        (("no/such/directory",), "no/such/directory"),
        (("tests/lint_corpus/clean", "--format", "xml"), "invalid choice"),
        (("tests/lint_corpus/clean", "--timeout-ms", "0"), "1..600000"),
    ],
)
def test_cli_bad_input_exits_2(args: tuple[str, ...], message: str) -> None:
    done = _cli(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


def test_cli_without_z3_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['z3'] = None\n"
        "from zerotrust.cli import main\n"
        "sys.exit(main(['lint', 'tests/lint_corpus/clean']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "pip install 'zerotrust[lint]'" in done.stderr


def test_main_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(FINDINGS / "dead.yaml")
    assert main(["lint", path]) == 1
    out = capsys.readouterr().out
    assert "dead-rule: dead/allow-impossible-range" in out
    assert main(["lint", path, "--exit-zero", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 4
    assert main(["lint", str(CORPUS / "clean")]) == 0


def test_the_docs_example_is_what_the_linter_prints(tmp_path: Path) -> None:
    """docs/lint.md shows a policy and the report on it: the report is the real one (the
    example values under a shadowed allow are the solver's choice, so only checked)."""
    page = (ROOT / "docs" / "lint.md").read_text(encoding="utf-8")
    policy = page.split("```yaml\n", 1)[1].split("```", 1)[0]
    shown = page.split("```text\n$ zerotrust lint policies\n", 1)[1].split("```", 1)[0]
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "invoices.yaml").write_text(policy, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "zerotrust", "lint", "policies"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 1, done.stderr

    def lines(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("    for example: ")]

    assert lines(done.stdout) == lines(shown)
    example = next(line for line in done.stdout.splitlines() if "for example" in line)
    assert '"kind": "contractor"' in example


def test_undecided_questions_are_reported_not_hidden() -> None:
    from zerotrust.cli._lint import render_json, render_text

    finding = Finding("dead-rule", "p.yaml", 3, 11, "p/r", "allow rule can never match")
    report = LintReport((finding,), undecided=2)
    assert render_text(report).splitlines() == [
        "p.yaml:3:11: dead-rule: p/r: allow rule can never match",
        "1 finding",
        "2 questions not decided within --timeout-ms: no finding came of them",
    ]
    document = json.loads(render_json(report))
    assert (document["count"], document["undecided"]) == (1, 2)
    assert document["findings"][0]["example"] is None
    assert render_text(LintReport((), 0)) == "no findings\n"


def test_int_past_2_53_against_a_double_is_no_false_finding(tmp_path: Path) -> None:
    """The engine compares an int with a double as doubles: 2**53 + 1 == 2**53.0 holds and
    2**53 + 1 > 2**53.0 does not. Exact arithmetic would call these rules dead, shadowed,
    duplicate and always matching, all four false for n = m = k = 2**53 + 1."""
    (tmp_path / "big.yaml").write_text(
        "policy: big\n"
        "target: {resources: [doc], actions: [read]}\n"
        "rules:\n"
        "  - id: allow-exact\n    effect: allow\n"
        '    when: "subject.properties.n == 9007199254740992.0'
        ' && subject.properties.n > 9007199254740992"\n'
        "  - id: allow-above\n    effect: allow\n"
        '    when: "subject.properties.m > 9007199254740992"\n'
        "  - id: deny-above-double\n    effect: deny\n"
        '    when: "subject.properties.m > 9007199254740992.0"\n'
        "  - id: deny-either-side\n    effect: deny\n"
        '    when: "subject.properties.k <= 9007199254740992'
        ' || subject.properties.k > 9007199254740992.0"\n',
        encoding="utf-8",
    )
    assert lint_path(tmp_path).findings == ()


def test_targets_by_action_group_are_compared_as_their_actions(tmp_path: Path) -> None:
    """An allow whose target names a group and a deny listing the group's actions have
    the same target once the group is expanded, as the loaded set has it."""
    (tmp_path / "groups.yaml").write_text(
        "action_groups:\n  viewing: [read, list]\n", encoding="utf-8"
    )
    (tmp_path / "p.yaml").write_text(
        "policy: p\n"
        "target: {resources: [doc], actions: [viewing]}\n"
        "rules:\n"
        "  - id: allow-one\n    effect: allow\n    when: subject.properties.x == 1\n",
        encoding="utf-8",
    )
    (tmp_path / "q.yaml").write_text(
        "policy: q\n"
        "target: {resources: [doc], actions: [list, read]}\n"
        "rules:\n"
        "  - id: deny-positive\n    effect: deny\n    when: subject.properties.x > 0\n",
        encoding="utf-8",
    )
    findings = lint_path(tmp_path).findings
    assert [(f.kind, f.ref, f.related) for f in findings] == [
        ("shadowed-allow", "p/allow-one", ("q/deny-positive",))
    ]


def test_lint_prints_control_characters_of_file_names_escaped(tmp_path: Path) -> None:
    (tmp_path / "x\x1b]0;PWN\x07.yaml").write_text("policy: a\nrules: []\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "zerotrust", "lint", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "\x1b" not in done.stderr and "x\\x1b]0;PWN\\x07.yaml:2:8:" in done.stderr


def test_conditions_using_policy_variables_are_linted_as_inlined(tmp_path: Path) -> None:
    """A rule reading ``variables.x`` is analysed as the condition the engine compiles."""
    (tmp_path / "p.yaml").write_text(
        "policy: p\n"
        "target: {resources: [doc], actions: [read]}\n"
        "variables:\n"
        "  positive: subject.properties.x > 0\n"
        "  negative: subject.properties.x < 0\n"
        "rules:\n"
        "  - id: deny-positive\n    effect: deny\n    when: variables.positive\n"
        "  - id: allow-one\n    effect: allow\n    when: subject.properties.x == 1\n"
        "  - id: allow-never\n    effect: allow\n"
        "    when: variables.positive && variables.negative\n",
        encoding="utf-8",
    )
    found = {(f.kind, f.ref) for f in lint_path(tmp_path).findings}
    assert found == {("shadowed-allow", "p/allow-one"), ("dead-rule", "p/allow-never")}
