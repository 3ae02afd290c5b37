"""Test suites checked like policies: by ``validate``, each problem at its own key or
value, with the allowed words and a "did you mean", references checked against the set."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zerotrust import PolicyError
from zerotrust.cli import main
from zerotrust.testing import check_suites, run_tests
from zerotrust.testing._suite import read_suite

ROOT = Path(__file__).resolve().parents[1]

POLICY = """\
policy: p
signals:
  - {name: big, when: "has(behavior.n) && behavior.n > 100", score: 50}
  - {name: remote, when: "!has(context.ip)", score: 10}
rules:
  - {id: deny-bulk, effect: deny, when: "risk.score >= 50"}
  - {id: allow, effect: allow, when: "subject.id != ''"}
  - {id: watch, effect: deny, mode: report-only, when: "subject.id == 'u-2'"}
"""

HEAD = """\
defaults:
  request:
    subject: {id: u-1}
    action: {name: read}
    resource: {type: t, properties: {owner: a, level: 2}}
    context: {ip: 10.0.0.1}
cases:
"""


def write(folder: Path, suite: str, policy: str = POLICY) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "p.yaml").write_text(policy, encoding="utf-8")
    (folder / "p_test.yaml").write_text(suite, encoding="utf-8")
    return folder


def problems(folder: Path) -> list[str]:
    """The suite diagnostics, as ``line:col: message``."""
    with pytest.raises(PolicyError) as info:
        run_tests(folder)
    assert all(d.file.endswith("p_test.yaml") for d in info.value.diagnostics)
    return [f"{d.line}:{d.column}: {d.message}" for d in info.value.diagnostics]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m zerotrust ARGS``: the real entry point."""
    return subprocess.run(
        [sys.executable, "-m", "zerotrust", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=False,
    )


# --- each kind of problem, where it was written -------------------------------------------


def test_a_bad_effect_is_named_at_its_value_with_a_suggestion(tmp_path: Path) -> None:
    suite = HEAD + "  - name: a\n    expect: {effect: permit}\n  - expect: {effect: stepup}\n"
    assert problems(write(tmp_path, suite)) == [
        "9:22: case 'a': expect.effect must be allow, deny or step_up, not 'permit': "
        "did you mean 'allow'?",
        "10:22: case 'case 2': expect.effect must be allow, deny or step_up, not 'stepup': "
        "did you mean 'step_up'?",
    ]


def test_unknown_keys_list_the_allowed_ones_at_every_level(tmp_path: Path) -> None:
    suite = """\
suites: x
defaults:
  behaviour: {}
  request: {subject: {id: u-1}, action: {name: read}, resource: {type: t}}
cases:
  - nmae: a
    expect: {effect: allow, rule: [p/allow], step_up: {acr: []}}
"""
    assert problems(write(tmp_path, suite)) == [
        "1:1: unknown key 'suites' in test suite: did you mean 'suite'? "
        "(allowed: suite, defaults, cases)",
        "3:3: unknown key 'behaviour' in defaults: did you mean 'behavior'? "
        "(allowed: now, request, behavior)",
        "6:5: unknown key 'nmae' in test case: did you mean 'name'? "
        "(allowed: name, description, now, request, behavior, unset, expect)",
        "7:29: unknown key 'rule' in expect: did you mean 'rules'? "
        "(allowed: effect, rules, risk, signals, step_up, obligations, report_only)",
        "7:56: unknown key 'acr' in expect.step_up: did you mean 'acr_values'? "
        "(allowed: acr_values, max_age)",
    ]


def test_references_are_checked_against_the_loaded_set(tmp_path: Path) -> None:
    suite = HEAD + (
        "  - name: a\n"
        "    expect:\n"
        "      effect: allow\n"
        "      rules: [p/alow, default-deny, p/watch]\n"
        "      signals: [bigg, remote]\n"
        "      report_only: [p/allow, p/wach]\n"
    )
    assert problems(write(tmp_path, suite)) == [
        "11:15: case 'a': expect.rules: no enforced rule 'p/alow' in the policy set: "
        "did you mean 'p/allow'?",
        "11:37: case 'a': expect.rules: 'p/watch' is not an enforced rule: "
        "list it under expect.report_only",
        "12:17: case 'a': expect.signals: no signal 'bigg' in the policy set: did you mean 'big'?",
        "13:21: case 'a': expect.report_only: 'p/allow' is not a report-only rule: "
        "list it under expect.rules",
        "13:30: case 'a': expect.report_only: no report-only rule 'p/wach' in the policy set: "
        "did you mean 'p/watch'?",
    ]


def test_values_of_the_wrong_kind_are_reported_where_written(tmp_path: Path) -> None:
    suite = HEAD + (
        "  - name: a\n"
        "    now: 2026-01-01T00:00:00\n"
        "    behavior: [1]\n"
        "    expect: {effect: allow, risk: high, rules: p/allow, step_up: {max_age: -1}}\n"
        "  - name: b\n"
        "    expect: [allow]\n"
        "  - name: c\n"
    )
    found = problems(write(tmp_path, suite))
    assert found == [
        "9:10: now must be an ISO 8601 time with a timezone, like 2026-03-02T10:00:00Z, "
        "not '2026-01-01T00:00:00'",
        "10:15: behavior must be a mapping, not a list",
        "11:35: case 'a': expect.risk must be a number from 0 to 100 (the risk score), not 'high'",
        "11:48: case 'a': expect.rules must be a list, not a string",
        "11:76: case 'a': expect.step_up.max_age must be a number of seconds or null, not -1",
        "13:13: case 'b': expect must be a mapping with at least effect, not a list",
        "14:5: case 'c': expect is required (at least expect.effect)",
    ]


def test_a_wrong_request_key_or_value_is_reported_at_it(tmp_path: Path) -> None:
    suite = HEAD + (
        "  - name: a\n"
        "    request: {subject: {id: 7}}\n"
        "    expect: {effect: allow}\n"
        "  - name: b\n"
        "    request: {resource: {typ: t}}\n"
        "    expect: {effect: allow}\n"
    )
    assert problems(write(tmp_path, suite)) == [
        "9:29: case 'a': request.subject.id: must be a string, not a number",
        "12:26: case 'b': request.resource.typ: unknown key (allowed: id, properties, type): "
        "did you mean 'type'?",
    ]


def test_a_problem_in_defaults_is_reported_once_at_its_own_line(tmp_path: Path) -> None:
    suite = """\
defaults:
  now: "2026-01-01T00:00:00"
  request:
    subjet: {id: u-1}
    action: {name: read}
    resource: {type: t}
cases:
  - {name: a, expect: {effect: allow}}
  - {name: b, expect: {effect: deny}}
  - {name: c, expect: {effect: allow}}
"""
    assert problems(write(tmp_path, suite)) == [
        "2:8: defaults.now must be an ISO 8601 time with a timezone, like "
        "2026-03-02T10:00:00Z, not '2026-01-01T00:00:00'",
        "4:5: request.subjet: unknown top-level key "
        "(allowed: action, context, device, resource, subject): did you mean 'subject'?",
    ]


def test_no_request_anywhere_is_reported_at_the_case(tmp_path: Path) -> None:
    suite = "cases:\n  - name: a\n    expect: {effect: allow}\n"
    assert problems(write(tmp_path, suite)) == [
        "2:5: case 'a': no request: give one here or in defaults.request"
    ]


def test_a_missing_required_request_key_still_fails_its_case_when_run(tmp_path: Path) -> None:
    suite = HEAD + "  - name: a\n    request: {subject: {id: null}}\n    expect: {effect: allow}\n"
    [result] = run_tests(write(tmp_path, suite)).results
    assert result.failures == ("invalid request: subject.id: is required",)


# --- unset ------------------------------------------------------------------------------


def test_unset_removes_an_inherited_key(tmp_path: Path) -> None:
    suite = HEAD + (
        "  - name: from the office\n"
        "    expect: {effect: allow, signals: []}\n"
        "  - name: no address at all\n"
        "    unset: [request.context.ip]\n"
        "    expect: {effect: allow, signals: [remote], risk: 10}\n"
        "  - name: a null is a value, not a removal\n"
        "    request: {context: {ip: null}}\n"
        "    expect: {effect: allow, signals: []}\n"
    )
    report = run_tests(write(tmp_path, suite))
    assert [r.failures for r in report.results] == [(), (), ()]


def test_unset_then_set_replaces_a_mapping_instead_of_merging(tmp_path: Path) -> None:
    suite = HEAD + (
        "  - name: fresh properties\n"
        "    unset: [request.resource.properties]\n"
        "    request: {resource: {properties: {level: 3}}}\n"
        "    expect: {effect: allow}\n"
    )
    [case], found = read_suite(write(tmp_path, suite) / "p_test.yaml", None)
    assert not found
    assert case.request["resource"]["properties"] == {"level": 3}
    assert run_tests(tmp_path).ok


def test_unset_of_a_key_the_defaults_lack_is_reported_with_a_suggestion(tmp_path: Path) -> None:
    suite = HEAD + (
        "  - name: a\n"
        "    unset: [request.context.iip, requests.subject, 5]\n"
        "    expect: {effect: allow}\n"
    )
    assert problems(write(tmp_path, suite)) == [
        "9:13: case 'a': unset: request.context has no key 'iip' to remove: did you mean 'ip'?",
        "9:34: case 'a': unset: defaults has no key 'requests' to remove: did you mean 'request'?",
        "9:52: case 'a': unset holds paths like request.context.ip, not a number",
    ]


# --- validate ---------------------------------------------------------------------------


BROKEN = HEAD + "  - name: a\n    expect: {effect: permit}\n"


def test_validate_fails_on_a_broken_suite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write(tmp_path / "set", BROKEN)
    assert main(["validate", str(folder)]) == 1
    err = capsys.readouterr().err
    assert f"{folder / 'p_test.yaml'}:9:22: case 'a': expect.effect must be" in err
    assert err.endswith("1 problem found\n")


def test_validate_counts_the_suites_it_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write(tmp_path / "set", HEAD + "  - expect: {effect: allow}\n")
    assert main(["validate", str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ok: 1 policy, 3 rules in 1 file")
    assert lines[1] == "ok: 1 test suite, 1 case"


def test_validate_reports_policy_and_suite_problems_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write(tmp_path / "set", BROKEN, POLICY.replace("effect: allow", "effect: alow"))
    assert main(["validate", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "p.yaml:" in err and "p_test.yaml:9:22:" in err
    assert err.endswith("2 problems found\n")


def test_validate_of_one_file_checks_its_suite_against_the_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write(tmp_path / "set", HEAD + "  - expect: {effect: deny, rules: [q/all]}\n")
    (folder / "q.yaml").write_text("policy: q\nrules:\n  - {id: all, effect: allow}\n")
    assert main(["validate", str(folder / "p.yaml")]) == 0  # q/all is in the directory
    assert main(["validate", str(folder / "p_test.yaml")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "ok: 1 test suite, 1 case"
    (folder / "p_test.yaml").write_text(HEAD + "  - expect: {effect: deny, rules: [q/al]}\n")
    assert main(["validate", str(folder / "p_test.yaml")]) == 1
    assert "did you mean 'q/all'?" in capsys.readouterr().err


def test_suites_are_checked_for_shape_when_the_policies_do_not_load(tmp_path: Path) -> None:
    folder = write(tmp_path, BROKEN + "    bogus: 1\n", "policy: [\n")
    found = check_suites(folder, None).problems
    assert [(d.line, d.column) for d in found] == [(9, 22), (10, 5)]


def test_validate_through_the_console_script(tmp_path: Path) -> None:
    folder = write(tmp_path / "set", BROKEN)
    broken = cli("validate", str(folder))
    assert broken.returncode == 1
    assert "p_test.yaml:9:22: case 'a': expect.effect must be allow, deny or step_up, not " in (
        broken.stderr
    )
    (folder / "p_test.yaml").write_text(HEAD + "  - expect: {effect: allow}\n")
    fine = cli("validate", str(folder))
    assert fine.returncode == 0, fine.stderr
    assert fine.stdout.splitlines()[1] == "ok: 1 test suite, 1 case"


def test_the_shipped_and_example_suites_validate() -> None:
    for folder in (ROOT / "policies", ROOT / "examples" / "authzen-todo"):
        assert not check_suites(folder, None).problems
        assert main(["validate", str(folder)]) == 0


# --- the family: a misspelt key or effect anywhere is reported at it ------------------------

# Where keys are checked, with a key that may be written there.
_PLACES = {
    "suite": ("suite", "defaults", "cases"),
    "defaults": ("now", "request", "behavior"),
    "case": ("name", "description", "now", "request", "behavior", "unset", "expect"),
    "expect": ("effect", "rules", "risk", "signals", "step_up", "obligations", "report_only"),
    "step_up": ("acr_values", "max_age"),
}


def _suite() -> dict[str, object]:
    request = {"subject": {"id": "u-1"}, "action": {"name": "read"}, "resource": {"type": "t"}}
    return {
        "defaults": {"request": request},
        "cases": [{"name": "a", "expect": {"effect": "allow", "step_up": None}}],
    }


def _mapping(suite: dict[str, object], place: str) -> dict[str, object]:
    case = suite["cases"][0]  # type: ignore[index]
    if place == "step_up":
        case["expect"]["step_up"] = {}
        return case["expect"]["step_up"]  # type: ignore[no-any-return]
    return {"suite": suite, "defaults": suite["defaults"], "case": case}.get(  # type: ignore[return-value]
        place, case["expect"]
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(place=st.sampled_from(sorted(_PLACES)), data=st.data())
def test_a_misspelt_key_is_reported_at_its_position_with_a_suggestion(
    tmp_path: Path, place: str, data: st.DataObject
) -> None:
    key = data.draw(st.sampled_from(_PLACES[place]))
    at = data.draw(st.integers(0, len(key) - 1))
    typo = key[:at] + key[at] + key[at:]  # one letter doubled: the usual slip
    suite = _suite()
    _mapping(suite, place)[typo] = 1
    text = yaml.safe_dump(suite, sort_keys=False, width=1000)
    [line] = [n for n, t in enumerate(text.splitlines(), 1) if re.search(rf"\b{typo}:", t)]
    column = text.splitlines()[line - 1].index(typo) + 1
    found = problems(write(tmp_path / place / typo, text))
    assert len(found) == 1, found
    assert found[0].startswith(f"{line}:{column}: unknown key {typo!r} in ")
    assert f"did you mean {key!r}?" in found[0]
    assert f"(allowed: {', '.join(_PLACES[place])})" in found[0]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=st.from_regex(r"[a-z][a-z_]{0,9}", fullmatch=True).filter(
        lambda v: (
            v
            not in {
                "allow",
                "deny",
                "step_up",
                "null",
                "true",
                "false",
                "yes",
                "no",
                "on",
                "off",
                "y",
                "n",
            }
        )
    )
)
def test_a_bad_effect_is_reported_at_its_value_and_named(tmp_path: Path, value: str) -> None:
    suite = _suite()
    suite["cases"][0]["expect"]["effect"] = value  # type: ignore[index]
    text = yaml.safe_dump(suite, sort_keys=False, width=1000)
    [line] = [n for n, t in enumerate(text.splitlines(), 1) if "effect:" in t]
    column = text.splitlines()[line - 1].index("effect:") + len("effect: ") + 1
    found = problems(write(tmp_path / value, text))
    assert len(found) == 1, found
    assert found[0].startswith(
        f"{line}:{column}: case 'a': expect.effect must be allow, deny or step_up, not {value!r}"
    )


# --- the docs' examples are what the CLI prints -------------------------------------------

GUIDE = ROOT / "docs" / "getting-started.md"


def guide_set(folder: Path) -> Path:
    """The getting-started policy set (policy, data, suite), written under ``folder``."""
    blocks = re.findall(r"```yaml[^\n]*\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    policies = folder / "policies"
    policies.mkdir()
    for name, start in (
        ("customer-records.yaml", "policy: customer-records"),
        ("network.data.yaml", "office_networks:"),
        ("customer-records_test.yaml", "suite: customer-records"),
    ):
        (policies / name).write_text(next(b for b in blocks if b.startswith(start)))
    return policies


def transcript(command: str) -> list[list[str]]:
    """The lines each ```text block of the guide shows after ``$ command``."""
    text = GUIDE.read_text(encoding="utf-8")
    found = re.findall(rf"```text\n\$ {re.escape(command)}\n(.*?)```", text, re.S)
    return [block.splitlines() for block in found]


def test_the_guide_shows_what_validate_prints_for_a_suite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = guide_set(tmp_path) / "customer-records_test.yaml"
    monkeypatch.chdir(tmp_path)
    [broken, fine] = transcript("zerotrust validate policies")[-2:]
    assert main(["validate", "policies"]) == 0
    assert capsys.readouterr().out.splitlines() == fine
    text = suite.read_text()
    text = text.replace("      effect: step_up", "      effect: stepup")
    text = text.replace(
        "[customer-records/step-up-sensitive,", "[customer-records/step-up-sensitve,"
    )
    suite.write_text(text)
    assert main(["validate", "policies"]) == 1
    assert capsys.readouterr().err.splitlines() == broken


def test_the_guide_unset_example_passes(tmp_path: Path) -> None:
    suite = guide_set(tmp_path) / "customer-records_test.yaml"
    text = GUIDE.read_text(encoding="utf-8")
    example = re.search(r"```yaml\n(  - name: no address at all.*?)```", text, re.S)
    assert example is not None
    suite.write_text(suite.read_text() + example.group(1))
    report = run_tests(tmp_path / "policies", select="no address")
    assert [r.failures for r in report.results] == [()]


def test_test_reports_policy_and_suite_problems_together(tmp_path: Path) -> None:
    write(tmp_path, BROKEN, POLICY.replace("effect: allow", "effect: alow"))
    with pytest.raises(PolicyError) as info:
        run_tests(tmp_path)
    assert [(Path(d.file).name, d.line) for d in info.value.diagnostics] == [
        ("p.yaml", 7),
        ("p_test.yaml", 9),
    ]
