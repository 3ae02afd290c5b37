"""The documented benchmark commands run: each engine's answers cross-checked first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_decision_benchmark_cross_checks_every_engine_and_prints_the_targets() -> None:
    run = subprocess.run(
        [sys.executable, "benchmarks/bench_decision.py", "--quick", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 0, run.stderr
    assert "every engine agrees" in run.stdout
    for configuration in (
        "evaluate(), no behaviour, null log",
        "evaluate(), memory store, JsonLinesLog",
        "memory store's own work",
    ):
        assert configuration in run.stdout.split("targets")[1]


def test_explain_benchmark_checks_both_modes_agree_and_prints_the_ratio() -> None:
    run = subprocess.run(
        [sys.executable, "benchmarks/bench_explain.py", "--rounds", "1", "--number", "20"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == [
        "policy",
        "set",
        "explain",
        "off",
        "explain",
        "on",
        "on",
        "/",
        "off",
    ]
    assert [line.split()[0] for line in lines[1:]] == ["20", "shipped"]


def test_plan_benchmark_checks_the_filter_against_deciding_every_row() -> None:
    run = subprocess.run(
        [sys.executable, "benchmarks/bench_plan.py", "--rounds", "1", "--number", "5"]
        + ["--rows", "2000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 0, run.stderr  # (the script asserts both ways agree)
    assert "shipped policies" in run.stdout and "count of all allowed" in run.stdout
