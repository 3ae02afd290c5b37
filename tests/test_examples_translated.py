"""The translated policy sets under examples/from-*: each validates, and its suite passes.

They are our translations of public policy sets (Cedar's document cloud and TinyTodo,
OPA's pet store, Cerbos's photo album); their suites hold the originals' own cases and
the cases where the source language decides otherwise. A translation whose suite is
skipped, whose rules are left untested, or whose requests do not match its schemas
would pass `zerotrust test` while no longer showing what its README says.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from zerotrust.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("from-*"))
NAMES = [path.name for path in EXAMPLES]


def _suites(example: Path) -> list[dict[str, object]]:
    return [
        suite
        for path in sorted(example.glob("*_test.yaml"))
        for suite in yaml.safe_load_all(path.read_text(encoding="utf-8"))
    ]


def _case_count(example: Path) -> int:
    return sum(len(suite["cases"]) for suite in _suites(example))  # type: ignore[arg-type]


def test_the_four_translations_are_there() -> None:
    assert NAMES == [
        "from-cedar-document-cloud",
        "from-cedar-tinytodo",
        "from-cerbos-album",
        "from-opa-petstore",
    ]
    for example in EXAMPLES:
        assert (example / "README.md").is_file(), example
        assert list(example.glob("*.schema.yaml")), example


@pytest.mark.parametrize("example", EXAMPLES, ids=NAMES)
def test_validate_accepts_the_set_and_its_suites(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(example)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ok: "), out
    assert out[1].endswith(f", {_case_count(example)} cases"), out


@pytest.mark.parametrize("example", EXAMPLES, ids=NAMES)
def test_every_case_passes_and_every_rule_is_seen_both_ways(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test", str(example), "--coverage"]) == 0, capsys.readouterr().out
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{_case_count(example)} passed, 0 failed"
    assert re.fullmatch(r"coverage: (\d+) of \1 rules and signals covered \(100\.0%\)", lines[1])


@pytest.mark.parametrize("example", EXAMPLES, ids=NAMES)
def test_requests_match_the_schemas_but_where_a_case_takes_an_attribute_away(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt property in a suite, or in a schema, shows as a schema error here."""
    unset = {
        (suite["suite"], case["name"]): {
            path.removeprefix("request.") for path in case.get("unset", [])
        }
        for suite in _suites(example)
        for case in suite["cases"]  # type: ignore[attr-defined]
    }
    assert main(["test", str(example), "--format", "json"]) == 0
    cases = json.loads(capsys.readouterr().out)["cases"]
    missing_cases = 0
    for case in cases:
        errors = [e for e in case["got"]["errors"] if e["kind"] == "schema"]
        taken = unset[(case["suite"], case["name"])]
        for error in errors:
            assert error["message"] == "is required and missing", case["name"]
            assert error["rule"] in taken, case["name"]
        missing_cases += bool(taken)
    assert missing_cases, "each suite has a case with a missing attribute"


def _console(*args: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "zerotrust", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.splitlines()


def test_the_console_script_validates_and_runs_every_suite() -> None:
    for example in EXAMPLES:
        assert _console("validate", str(example))[0].startswith("ok: "), example
        assert _console("test", str(example)) == [f"{_case_count(example)} passed, 0 failed"]
