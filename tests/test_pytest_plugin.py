"""The pytest plugin, run through pytester: policy suites as pytest items.

The inner runs pass ``-p no:zerotrust -p zerotrust.pytest_plugin``: the plugin module by
name, and its entry point (``zerotrust``) blocked, so they work whether or not the
installed package already registers the entry point (pytest refuses a module registered
twice under two names).
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import ROOT
from hypothesis import given
from hypothesis import strategies as st

from zerotrust.pytest_plugin import unique_names
from zerotrust.testing import run_tests

PLUGIN = ("-p", "no:zerotrust", "-p", "zerotrust.pytest_plugin", "-p", "no:cacheprovider")

POLICY = """\
policy: records
target:
  resources: [record]
  actions: [read]
rules:
  - id: owner-reads
    effect: allow
    when: resource.properties.owner == subject.id
"""

SUITE = """\
suite: records
defaults:
  request:
    subject: {type: user, id: alice}
    action: {name: read}
    resource: {type: record, id: r1, properties: {owner: alice}}
cases:
  - name: owner reads
    expect: {effect: allow, rules: [records/owner-reads]}
  - name: stranger is refused
    request: {subject: {id: bob}}
    expect: {effect: deny}
"""

# The property is misspelled: the rule errors, and the case expects allow.
FAILING = """\
cases:
  - name: typo in the property
    request:
      subject: {type: user, id: alice}
      action: {name: read}
      resource: {type: record, id: r2, properties: {ownr: alice}}
    expect: {effect: allow}
"""


def project(pytester: pytest.Pytester, ini: str = "zerotrust_policies = policies") -> Path:
    """A project with one policy, its suite and an ordinary Python test."""
    pytester.makeini(f"[pytest]\ntestpaths = tests\n{ini}\n")
    policies = pytester.mkdir("policies")
    (policies / "records.yaml").write_text(POLICY)
    (policies / "records_test.yaml").write_text(SUITE)
    tests = pytester.mkdir("tests")
    (tests / "test_app.py").write_text("def test_app():\n    pass\n")
    return policies


def collected(pytester: pytest.Pytester, *args: str) -> list[str]:
    result = pytester.runpytest(*PLUGIN, "--collect-only", "-q", *args)
    return [line for line in result.outlines if "::" in line]


def test_each_case_is_an_item_named_after_its_file_and_case(pytester: pytest.Pytester) -> None:
    policies = project(pytester)
    (policies / ".drafts").mkdir()
    (policies / ".drafts" / "draft_test.yaml").write_text("not: [a suite")  # skipped
    assert collected(pytester) == [
        "tests/test_app.py::test_app",
        "policies/records_test.yaml::owner reads",
        "policies/records_test.yaml::stranger is refused",
    ]
    pytester.runpytest(*PLUGIN).assert_outcomes(passed=3)


def test_the_shipped_suites_pass_case_for_case(pytester: pytest.Pytester) -> None:
    shutil.copytree(ROOT / "policies", pytester.path / "policies")
    pytester.makeini("[pytest]\nzerotrust_policies = policies\n")
    expected = run_tests(ROOT / "policies").results
    assert len(collected(pytester)) == len(expected)
    pytester.runpytest(*PLUGIN).assert_outcomes(passed=len(expected))


def test_a_failing_case_shows_what_zerotrust_test_prints(pytester: pytest.Pytester) -> None:
    policies = project(pytester)
    (policies / "typo_test.yaml").write_text(FAILING)
    result = pytester.runpytest(*PLUGIN)
    result.assert_outcomes(passed=3, failed=1)
    (failed,) = [r for r in run_tests(policies).results if not r.passed]
    explanation = failed.explanation()
    assert any(line.startswith("error in ") for line in explanation)  # the why, not only what
    block = "\n".join(
        [
            "policies/typo_test.yaml:2 typo_test :: typo in the property",
            *(f"    {line}" for line in explanation),
        ]
    )
    assert block in result.stdout.str()
    result.stdout.fnmatch_lines(["FAILED policies/typo_test.yaml::typo in the property*"])
    assert "trace: " not in result.stdout.str()
    verbose = pytester.runpytest(*PLUGIN, "-v", "policies/typo_test.yaml").stdout.str()
    trace = "\n".join(f"    trace: {line}" for line in failed.trace())
    assert failed.trace()
    assert f"{block}\n{trace}" in verbose


def test_k_selects_cases_by_name_and_by_suite(pytester: pytest.Pytester) -> None:
    project(pytester)
    result = pytester.runpytest(*PLUGIN, "-k", "stranger", "-v")
    result.assert_outcomes(passed=1, deselected=2)
    result.stdout.fnmatch_lines(["*records_test.yaml::stranger is refused PASSED*"])
    pytester.runpytest(*PLUGIN, "-k", "records and not app").assert_outcomes(passed=2, deselected=1)


def test_a_case_runs_by_its_node_id(pytester: pytest.Pytester) -> None:
    project(pytester)
    result = pytester.runpytest(*PLUGIN, "policies/records_test.yaml::owner reads")
    result.assert_outcomes(passed=1)


def test_junitxml_has_a_testcase_per_case_with_the_explanation(
    pytester: pytest.Pytester,
) -> None:
    policies = project(pytester)
    (policies / "typo_test.yaml").write_text(FAILING)
    pytester.runpytest(*PLUGIN, "--junitxml=out.xml")
    cases = ET.parse(pytester.path / "out.xml").getroot().iter("testcase")
    by_name = {case.get("name"): case for case in cases}
    assert set(by_name) == {
        "test_app",
        "owner reads",
        "stranger is refused",
        "typo in the property",
    }
    typo = by_name["typo in the property"]
    assert typo.get("classname") == "policies.typo_test.yaml"
    failure = typo.find("failure")
    assert failure is not None
    assert failure.text is not None
    assert "effect: expected 'allow', got 'deny'" in failure.text
    assert by_name["owner reads"].find("failure") is None


def test_a_malformed_suite_is_one_collection_error_with_positions(
    pytester: pytest.Pytester,
) -> None:
    policies = project(pytester)
    (policies / "broken_test.yaml").write_text(
        "cases:\n  - name: x\n    expect: {effect: alow}\n  - name: y\n    exepct: {}\n"
    )
    result = pytester.runpytest(*PLUGIN, "--continue-on-collection-errors")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*ERROR collecting policies/broken_test.yaml*"])
    where = re.compile(r"^  policies/broken_test\.yaml:[1-9]\d*:[1-9]\d*: (.*)$", re.M)
    messages = where.findall(result.stdout.str())
    assert len(messages) >= 2
    assert any("'exepct'" in m for m in messages)
    assert "Traceback" not in result.stdout.str()


def test_broken_yaml_in_a_suite_is_a_collection_error(pytester: pytest.Pytester) -> None:
    policies = project(pytester)
    (policies / "broken_test.yaml").write_text("cases: [\n  - name: x\n")
    result = pytester.runpytest(*PLUGIN)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*broken_test.yaml:*:*"])
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_a_malformed_policy_set_is_one_error_however_many_suites(
    pytester: pytest.Pytester,
) -> None:
    policies = project(pytester)
    (policies / "second_test.yaml").write_text(SUITE)
    (policies / "bad.yaml").write_text("policy: bad\nrules:\n  - id: r\n    effect: alow\n")
    result = pytester.runpytest(*PLUGIN, "--continue-on-collection-errors")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*policies: 1 problem in policy set:", "*bad.yaml:4:*"])
    assert result.stdout.str().count("problem in policy set") == 1


def test_inert_when_not_configured(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # only the plugin under test
    project(pytester, ini="")
    pytester.makeconftest(
        """
        import sys

        def pytest_sessionfinish(session):
            names = ("zerotrust.testing", "zerotrust.pytest_plugin")
            print("LOADED", [m for m in names if m in sys.modules])
        """
    )
    result = pytester.runpytest_subprocess(*PLUGIN, "-s", "policies", "tests")
    result.assert_outcomes(passed=1)
    assert "LOADED ['zerotrust.pytest_plugin']" in result.stdout.str()


def _imported_by_the_plugin(first: str) -> list[str]:
    code = (
        f"import sys, {first}; before = set(sys.modules); "
        "import zerotrust.pytest_plugin; print(sorted(set(sys.modules) - before))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return list(ast.literal_eval(out.stdout))


def test_the_plugin_module_imports_nothing_a_pytest_run_lacks() -> None:
    assert _imported_by_the_plugin("pytest, zerotrust") == ["zerotrust.pytest_plugin"]


def test_loading_the_entry_point_imports_no_more_than_the_package_name() -> None:
    assert _imported_by_the_plugin("pytest") == ["zerotrust", "zerotrust.pytest_plugin"]


def test_options_are_namespaced(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*PLUGIN, "--help")
    result.stdout.fnmatch_lines(["zerotrust policy test suites:", "*--zerotrust-policies=DIR*"])
    result.stdout.fnmatch_lines(["*zerotrust_policies (args):*"])


def test_only_suites_under_the_configured_directory_are_collected(
    pytester: pytest.Pytester,
) -> None:
    policies = project(pytester)
    (policies / "nets.data.yaml").write_text("nets: []\n")
    data = pytester.mkdir("tests/data")
    (data / "fixture_test.yaml").write_text(SUITE)  # a suite's name, outside the directory
    (data / "settings.yaml").write_text("a: 1\n")
    assert collected(pytester, "tests", "policies") == [
        "tests/test_app.py::test_app",
        "policies/records_test.yaml::owner reads",
        "policies/records_test.yaml::stranger is refused",
    ]


def test_a_directory_reached_through_a_symlink_is_collected(pytester: pytest.Pytester) -> None:
    policies = project(pytester, ini="zerotrust_policies = linked")
    (pytester.path / "linked").symlink_to(policies, target_is_directory=True)
    assert collected(pytester, "linked") == [
        "linked/records_test.yaml::owner reads",
        "linked/records_test.yaml::stranger is refused",
    ]


def test_a_suite_reached_twice_is_collected_once(pytester: pytest.Pytester) -> None:
    project(pytester)
    pytester.makeini(
        "[pytest]\ntestpaths = tests policies\nzerotrust_policies = policies policies\n"
    )
    assert len(collected(pytester)) == 3
    assert len(collected(pytester, "policies", "policies/records_test.yaml")) == 2


def test_explicit_arguments_choose_and_subdirectory_runs_resolve_from_rootdir(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(pytester)
    assert collected(pytester, "tests") == ["tests/test_app.py::test_app"]
    monkeypatch.chdir(pytester.path / "tests")
    result = pytester.runpytest(*PLUGIN, "--collect-only", "-q", "..")
    assert "policies/records_test.yaml::owner reads" in result.stdout.str()


def test_the_command_line_option_overrides_the_ini(pytester: pytest.Pytester) -> None:
    policies = project(pytester, ini="zerotrust_policies = nowhere")
    shutil.copytree(policies, pytester.path / "other")
    result = pytester.runpytest(*PLUGIN, "--zerotrust-policies", "other", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["other/records_test.yaml::owner reads"])
    assert "policies/records_test.yaml" not in result.stdout.str()


def test_a_missing_directory_is_a_usage_error(pytester: pytest.Pytester) -> None:
    project(pytester, ini="zerotrust_policies = nowhere")
    result = pytester.runpytest(*PLUGIN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*zerotrust_policies: not a directory: *nowhere"])


def test_repeated_case_names_become_distinct_items(pytester: pytest.Pytester) -> None:
    policies = project(pytester)
    twice = SUITE + "  - name: owner reads\n    expect: {effect: allow}\n"
    (policies / "records_test.yaml").write_text(twice)
    assert collected(pytester, "policies")[-2:] == [
        "policies/records_test.yaml::stranger is refused",
        "policies/records_test.yaml::owner reads #2",
    ]


@given(st.lists(st.sampled_from(["a", "a #2", "b", "x::y", "", "a #3"]), max_size=8))
def test_item_names_are_unique_and_keep_unique_names(names: list[str]) -> None:
    out = unique_names(names)
    assert len(out) == len(names)
    assert len(set(out)) == len(out)
    assert all("::" not in name and name for name in out)
    for raw, name in zip(names, out, strict=True):
        assert name.startswith(raw.replace("::", ": :") or "case")
    if len(set(names)) == len(names) and all(n and "::" not in n for n in names):
        assert out == names


def test_pyproject_registers_the_plugin_entry_point() -> None:
    project_table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project_table["entry-points"]["pytest11"] == {"zerotrust": "zerotrust.pytest_plugin"}


def test_a_real_pytest_loads_the_entry_point(tmp_path: Path) -> None:
    """``python -m pytest`` in a subprocess, the plugin found only through an entry point
    declared as pyproject.toml declares it (a stand-in distribution on the path)."""
    entry = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    dist = tmp_path / "site" / "zerotrust_entry_probe-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: zerotrust-entry-probe\n")
    lines = [f"{name} = {value}" for name, value in entry["pytest11"].items()]
    (dist / "entry_points.txt").write_text("[pytest11]\n" + "\n".join(lines) + "\n")
    work = tmp_path / "project"
    shutil.copytree(ROOT / "policies", work / "policies")
    (work / "pytest.ini").write_text("[pytest]\nzerotrust_policies = policies\n")
    env = dict(os.environ)
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    env.pop("PYTEST_ADDOPTS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), str(ROOT)])
    count = len(run_tests(ROOT / "policies").results)
    for extra, autoload in (((), True), (("-p", "zerotrust"), False)):  # as the docs say
        if not autoload:
            env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra],
            check=False,
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"{count} passed" in out.stdout


def _docs_section() -> str:
    docs = (ROOT / "docs" / "policy-language.md").read_text()
    return docs.split("## Running policy tests in pytest", 1)[1].split("\n## ", 1)[0]


def test_the_documented_configuration_works(pytester: pytest.Pytester) -> None:
    toml = re.search(r"```toml\n(.*?)```", _docs_section(), re.S)
    assert toml is not None
    assert toml.group(1).startswith("[tool.pytest.ini_options]")
    (pytester.path / "pyproject.toml").write_text(toml.group(1))
    shutil.copytree(ROOT / "policies", pytester.path / "policies")
    pytester.mkdir("tests")
    (pytester.path / "tests" / "test_app.py").write_text("def test_app():\n    pass\n")
    count = len(run_tests(ROOT / "policies").results)
    pytester.runpytest(*PLUGIN).assert_outcomes(passed=count + 1)


def test_the_documented_failure_is_what_pytest_prints(pytester: pytest.Pytester) -> None:
    (block,) = [b for b in re.findall(r"```text\n(.*?)```", _docs_section(), re.S) if "$ " in b]
    command, _, shown = block.partition("\n")
    expected = shown.split(" ______\n", 1)[1]  # past the width-dependent header
    policies = pytester.path / "policies"
    shutil.copytree(ROOT / "policies", policies)
    # Without the attribute schema: with it, loading refuses the typo before any test runs.
    (policies / "attributes.schema.yaml").unlink()
    policy = policies / "customer-records.yaml"
    typo = "&& subject.properties.departmnt == resource.properties.owner_dept"
    text = policy.read_text()
    policy.write_text(text.replace(typo.replace("departmnt", "department"), typo, 1))
    assert policy.read_text() != text
    pytester.makeini("[pytest]\nzerotrust_policies = policies\n")
    args = shlex.split(command.removeprefix("$ pytest "))
    result = pytester.runpytest(*PLUGIN, *args)
    result.assert_outcomes(failed=1, deselected=len(run_tests(ROOT / "policies").results) - 1)
    assert expected in result.stdout.str()
