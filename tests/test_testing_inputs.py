"""Regressions from an outside review of suites and paths: a missing path named as such
(never its parent loaded instead), every problem of a suite at once (a bad value hides
nothing), case and suite names that are real text, and ``unset`` inside a removed parent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zerotrust import PolicyError
from zerotrust.cli import main
from zerotrust.policy.schemas import schema
from zerotrust.testing import check_suites, run_tests
from zerotrust.testing._suite import read_suite

ROOT = Path(__file__).resolve().parents[1]

POLICY = """\
policy: p
rules:
  - {id: allow, effect: allow, when: "subject.id != ''"}
"""

HEAD = """\
defaults:
  request:
    subject: {id: u-1, properties: {roles: [agent], dept: {name: a, code: {x: 1}}}}
    action: {name: read}
    resource: {type: t}
cases:
"""

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def write(folder: Path, suite: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "p.yaml").write_text(POLICY, encoding="utf-8")
    (folder / "p_test.yaml").write_text(suite, encoding="utf-8")
    return folder


def problems(folder: Path) -> list[str]:
    """The suite diagnostics of ``folder/p_test.yaml``, as ``line:col: message``."""
    _, found = read_suite(folder / "p_test.yaml", None)
    return [f"{d.line}:{d.column}: {d.message}" for d in found]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m zerotrust ARGS`` (standard input empty): the real entry point."""
    return subprocess.run(
        [sys.executable, "-m", "zerotrust", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=False,
    )


# --- a path that does not exist ----------------------------------------------------------


@pytest.fixture
def around(tmp_path: Path) -> Path:
    """A directory whose own set is broken: loading it instead of a missing path shows."""
    folder = write(tmp_path / "x", HEAD + "  - expect: {effect: allow}\n")
    (folder / "broken.yaml").write_text("policy: Broken\nrules: []\n", encoding="utf-8")
    return folder


# command, its arguments around the path, the exit code validate's convention gives it
COMMANDS = [
    ("test", [], 1),
    ("validate", [], 1),
    ("eval", [], 1),
    ("demo", [], 1),
    ("lint", [], 2),
    ("replay", ["--log", "-"], 2),
]
TYPOS = ["typo", "p.yamll", "p_tset.yaml", "typo_test.yaml", "no/such/dir"]


@pytest.mark.parametrize(("command", "extra", "code"), COMMANDS)
@pytest.mark.parametrize("typo", TYPOS)
def test_a_missing_path_is_named_not_its_directory_loaded(
    around: Path,
    command: str,
    extra: list[str],
    code: int,
    typo: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = around / typo
    assert main([command, str(missing), *extra]) == code
    out, err = capsys.readouterr()
    assert f"{missing}:0:0: no such file or directory" in err.splitlines()
    assert "broken.yaml" not in out + err
    assert "no test cases found" not in out


@pytest.mark.parametrize(("command", "extra", "code"), COMMANDS)
def test_a_missing_path_through_the_console_script(
    around: Path, command: str, extra: list[str], code: int
) -> None:
    missing = around / "customer-recrods.yaml"
    done = cli(command, str(missing), *extra)
    assert done.returncode == code, done.stderr
    assert f"{missing}:0:0: no such file or directory" in done.stderr.splitlines()
    assert "broken.yaml" not in done.stdout + done.stderr


def test_eval_of_a_missing_directory_reports_it_before_reading_the_request(
    tmp_path: Path,
) -> None:
    done = cli("eval", str(tmp_path / "missing-dir"))  # standard input empty: no request
    assert done.returncode == 1
    assert "no such file or directory" in done.stderr
    assert "invalid request" not in done.stderr


@SETTINGS
@given(name=st.from_regex(r"[a-z][a-z0-9._-]{0,12}(_test)?(\.ya?ml)?", fullmatch=True))
def test_the_library_refuses_any_missing_path_by_name(around: Path, name: str) -> None:
    missing = around / "missing" / name
    with pytest.raises(PolicyError) as info:
        run_tests(missing)
    [diagnostic] = info.value.diagnostics
    assert (diagnostic.file, diagnostic.message) == (str(missing), "no such file or directory")
    assert [d.message for d in check_suites(missing, None).problems] == [
        "no such file or directory"
    ]


def test_a_suite_file_that_exists_still_runs_alone(around: Path) -> None:
    (around / "broken.yaml").unlink()
    report = run_tests(around / "p_test.yaml")
    assert report.summary() == "1 passed, 0 failed"


# --- a bad value hides no other problem ---------------------------------------------------

BAD_VALUES = {
    ".nan": "NaN and infinity are not allowed",
    "-.inf": "NaN and infinity are not allowed",
    '"a\\x01b"': "strings must be text: U+0001 is a control character",
    "99999999999999999999": "integer outside the 64-bit range",
    "!!binary aGk=": "binary values are not allowed",
    "on": "YAML",  # read differently by YAML 1.1 and 1.2: refused, with the reason
}
# Where a bad value may stand: each line replaces one of HEAD's or the case's.
PLACES = {
    "defaults": HEAD.replace("resource: {type: t}", "resource: {type: t, properties: {v: BAD}}"),
    "name": HEAD + "  - name: BAD\n    expect: {effect: allow}\n",
    "expect": HEAD + "  - expect: {effect: allow, risk: BAD}\n",
    "behavior": HEAD + "  - behavior: {n: BAD}\n    expect: {effect: allow}\n",
}
OTHERS = "  - name: other\n    expect: {effect: permit, rule: [x]}\n    reqest: {}\n"


@SETTINGS
@given(
    value=st.sampled_from(sorted(BAD_VALUES)),
    place=st.sampled_from(sorted(PLACES)),
    twice=st.booleans(),
)
def test_a_bad_value_does_not_hide_the_other_problems(
    tmp_path: Path, value: str, place: str, twice: bool
) -> None:
    suite = PLACES[place].replace("BAD", value)
    if twice:  # a second bad value: both reported
        suite += "  - name: again\n    behavior: {m: " + value + "}\n    expect: {effect: deny}\n"
    found = problems(write(tmp_path / "s", suite + OTHERS))
    bad = [p for p in found if BAD_VALUES[value] in p]
    assert len(bad) == 1 + twice, found
    others = [p for p in found if p not in bad]
    assert [p.split(": ", 1)[1] for p in others] == [
        "case 'other': expect.effect must be allow, deny or step_up, not 'permit': "
        "did you mean 'allow'?",
        "unknown key 'rule' in expect: did you mean 'rules'? (allowed: effect, rules, risk, "
        "signals, step_up, obligations, report_only)",
        "unknown key 'reqest' in test case: did you mean 'request'? (allowed: name, "
        "description, now, request, behavior, unset, expect)",
    ], found


def test_validate_reports_a_nan_and_every_other_problem_at_once(tmp_path: Path) -> None:
    suite = HEAD.replace("resource: {type: t}", "resource: {type: t, properties: {v: .nan}}")
    folder = write(tmp_path, suite.replace("subject:", "subjet: {id: u}\n    subject:") + OTHERS)
    done = cli("validate", str(folder))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[-1] == "5 problems found", lines
    assert any("NaN and infinity are not allowed" in line for line in lines)
    assert any("did you mean 'subject'?" in line for line in lines)


def test_a_bad_key_still_stops_the_file_where_it_is(tmp_path: Path) -> None:
    # A key read as null would be a different mistake: the structure must be sound.
    found = problems(write(tmp_path, HEAD + '  - "a\\x01": 1\n    expect: {effect: allow}\n'))
    assert found == ["7:5: strings must be text: U+0001 is a control character"]


# --- suite and case names -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ('""', "''"),
        ('"   "', "'   '"),
        ("5", "5"),
        ("[1, {a: b}]", "a list"),
        ("{a: b}", "a mapping"),
        ("true", "True"),
        ("null", "null"),
    ],
)
def test_an_empty_or_non_string_case_name_is_an_error_at_the_value(
    tmp_path: Path, written: str, shown: str
) -> None:
    suite = f"suite: {written}\n" + HEAD + f"  - name: {written}\n    expect: {{effect: allow}}\n"
    found = problems(write(tmp_path, suite))
    assert found == [
        f"1:8: suite must be a non-empty string, not {shown}",
        f"8:11: case 1: name must be a non-empty string, not {shown}",
    ]


def test_an_empty_case_name_fails_zerotrust_test(tmp_path: Path) -> None:
    folder = write(tmp_path, HEAD + '  - name: ""\n    expect: {effect: allow}\n')
    done = cli("test", str(folder))
    assert done.returncode == 1
    assert ":7:11: case 1: name must be a non-empty string, not ''" in done.stderr
    assert "::" not in done.stdout


_VALIDATOR = jsonschema.Draft202012Validator(schema("test"))


@settings(max_examples=150, deadline=None)
# Text YAML can hold in a double-quoted scalar on one line (line separators fold).
@given(name=st.text(st.characters(blacklist_categories=("Cc", "Cs", "Cn", "Zl", "Zp")), max_size=6))
def test_reader_and_schema_agree_on_which_names_are_text(name: str) -> None:
    from zerotrust.policy.located import load_documents
    from zerotrust.testing._suite import _Reader

    quoted = json.dumps(name, ensure_ascii=False)
    text = f"cases:\n  - name: {quoted}\n    request: {{}}\n    expect: {{effect: allow}}\n"
    reader = _Reader("t_test.yaml", None)
    [doc] = load_documents(text)
    reader.suite(doc)
    refused = [d.message for d in reader.problems if "name must be" in d.message]
    suite: Any = {"cases": [{"name": name, "request": {}, "expect": {"effect": "allow"}}]}
    assert bool(refused) == (not name.strip())
    assert _VALIDATOR.is_valid(suite) == bool(name.strip())


# --- unset inside a path already unset ----------------------------------------------------

CHAIN = ["request", "subject", "properties", "dept", "code", "x"]


@SETTINGS
@given(outer=st.integers(1, len(CHAIN) - 1), inner=st.integers(1, len(CHAIN)))
def test_unset_inside_an_earlier_entry_names_that_entry(
    tmp_path: Path, outer: int, inner: int
) -> None:
    parent, child = ".".join(CHAIN[:outer]), ".".join(CHAIN[: max(outer, inner)])
    suite = HEAD + f"  - unset: [{parent}, {child}]\n    expect: {{effect: allow}}\n"
    found = problems(write(tmp_path / "s", suite))
    messages = [p.split(": ", 1)[1] for p in found if "unset" in p]
    if child == parent:
        assert messages == [f"case 'case 1': unset: {child} is listed twice"]
    else:
        assert messages == [
            f"case 'case 1': unset: {child} is inside {parent}, which this case already unsets"
        ]


def test_unset_of_a_child_then_its_parent_is_accepted(tmp_path: Path) -> None:
    suite = HEAD + (
        "  - unset: [request.subject.properties.roles, request.subject.properties]\n"
        "    expect: {effect: allow}\n"
    )
    assert run_tests(write(tmp_path, suite)).summary() == "1 passed, 0 failed"


def test_the_review_unset_example_reads_plainly(tmp_path: Path) -> None:
    suite = HEAD + (
        "  - name: dup\n"
        "    unset: [request.subject.properties, request.subject.properties.roles]\n"
        "    expect: {effect: deny}\n"
    )
    assert problems(write(tmp_path, suite)) == [
        "8:41: case 'dup': unset: request.subject.properties.roles is inside "
        "request.subject.properties, which this case already unsets"
    ]


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("request.subject.id.x", "request.subject.id is a string, not a mapping"),
        ("request.subject.properties.roles.0", "request.subject.properties.roles is a list"),
    ],
)
def test_unset_into_a_value_that_is_not_a_mapping_says_what_it_is(
    tmp_path: Path, path: str, why: str
) -> None:
    suite = HEAD + f"  - unset: [{path}]\n    expect: {{effect: allow}}\n"
    [found] = problems(write(tmp_path, suite))
    assert why in found, found
