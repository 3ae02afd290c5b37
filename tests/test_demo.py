"""``zerotrust demo``: the insider is stopped, quickly, and the timeline says how."""

from __future__ import annotations

import io
import sys
import time

import pytest

from zerotrust.cli import main
from zerotrust.decision import Effect
from zerotrust.demo import run_demo


def test_the_insider_is_stopped_and_the_timeline_says_where() -> None:
    calls: list[tuple[int, int]] = []
    started = time.monotonic()
    report = run_demo(progress=lambda done, total: calls.append((done, total)))
    assert time.monotonic() - started < 15
    assert calls[-1][0] == calls[-1][1]
    normal = [p for p in report.phases if p.title.startswith("Week")]
    assert len(normal) == 2 and all(p.denies == 0 and p.allows == p.requests for p in normal)
    assert report.stopped_at is not None and report.stopped_by
    assert report.stopped_at.hour < 5  # at night
    assert 0 < report.attack_records <= 1000
    last = report.phases[-1]
    assert last.denies == last.requests > 0
    assert any(name == "records_1h" for name, _, _ in report.phases[-2].figures)
    night = [p for p in report.phases if p.title.startswith("Night")]
    assert sum(p.step_ups for p in night) >= 1
    assert {"off-hours", "new-device"} <= {s for p in night for s, _ in p.signals}
    assert Effect.DENY.value in last.title or "refused" in last.title


def test_cli_demo_prints_the_timeline_without_progress_when_redirected(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo"]) == 0
    out, err = capsys.readouterr()
    assert "Week 1: normal work" in out and "Stopped at" in out
    assert "by bulk-access/" in out  # a behaviour rule stopped it
    assert err == ""  # no carriage-return progress lines in a redirected log


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_demo_shows_a_progress_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert main(["demo"]) == 0
    assert "100%" in err.getvalue() and "\r" in err.getvalue()
