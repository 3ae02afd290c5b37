"""docs/report.md runs as written: its shell blocks in a fresh directory (``zerotrust``
being this checkout's ``python -m zerotrust``), the output it shows, its Python block."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "report.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(language: str) -> list[str]:
    return [m.group(2) for m in FENCE.finditer(PAGE.read_text()) if m.group(1) == language]


def bash(script: str, where: Path) -> subprocess.CompletedProcess[str]:
    prelude = f'zerotrust() {{ "{sys.executable}" -m zerotrust "$@"; }}\n'
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", prelude + script],
        check=False,
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_page_commands_and_python_run_as_shown(site: Path) -> None:
    first, *_ = blocks("sh")
    done = bash(first, site)
    assert done.returncode == 0, done.stderr
    (shown,) = [text for text in blocks("text") if text.startswith("report.html:")]
    assert done.stdout == shown
    assert (site / "report.html").stat().st_size > 10_000
    (code,) = blocks("python")
    namespace: dict[str, object] = {"__name__": "report_page"}
    exec(compile(code, str(PAGE), "exec"), namespace)
    assert namespace["report"].ranked[0].subject.id == "u-eve"  # type: ignore[attr-defined]
    assert "<title>Support</title>" in (site / "report.html").read_text("utf-8")


def test_the_page_browser_command_runs(site: Path) -> None:
    if shutil.which("chromium") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed: .ci/run installs it")
        pytest.skip("chromium is not installed")
    first, browser = blocks("sh")
    assert "chromium" in browser
    assert bash(first, site).returncode == 0
    done = bash(browser, site)
    assert done.returncode == 0, done.stderr
    assert (site / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
