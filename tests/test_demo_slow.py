"""``zerotrust demo --scenario low-and-slow``: the patient insider is caught against her
peer group, early, and her colleagues are left alone."""

from __future__ import annotations

import functools

import pytest

from zerotrust.cli import main
from zerotrust.demo import default_policies, run_demo
from zerotrust.demo_slow import INSIDER, SlowReport, run_low_and_slow


@functools.cache
def replay() -> SlowReport:
    return run_low_and_slow(default_policies())


def test_the_patient_insider_is_flagged_early_and_refused_before_1500_extra_records() -> None:
    report = replay()
    assert report.extra_planned > 10_000
    assert report.flagged_after is not None and report.flagged_after < 500
    assert report.denied_after is not None and report.denied_after < 1_500
    assert report.denied_by and all(rule.startswith("peer-volume/") for rule in report.denied_by)
    assert report.extra_served < report.extra_planned // 2


def test_her_colleagues_are_never_refused_and_rarely_asked_to_step_up() -> None:
    report = replay()
    assert report.colleague_denies == 0
    assert report.colleague_step_ups <= 5
    assert all(day.colleague_denies == 0 for day in report.days)


def test_the_group_figures_do_not_rise_with_her() -> None:
    """Her own baseline follows her; the group's median stays at the team's casework."""
    report = replay()
    late = [d for d in report.days[-10:] if d.peers_median is not None]
    assert late and all(30 <= d.peers_median <= 50 for d in late)


def test_the_loud_insider_is_still_stopped_within_600_records() -> None:
    report = run_demo()
    assert report.stopped_at is not None and report.attack_records <= 600


def test_cli_prints_the_weekly_chart_and_the_outcome(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--scenario", "low-and-slow"]) == 0
    out, err = capsys.readouterr()
    assert f"records a day: {INSIDER}" in out
    assert "week 10" in out and "First refused" in out and "Her colleagues: 0 refused" in out
    assert err == ""


@pytest.mark.parametrize("accomplices", [("u-ben",), ("u-ben", "u-dev")])
def test_accomplices_reading_as_much_cannot_lift_her_limits(accomplices: tuple[str, ...]) -> None:
    """Colleagues who read as much as she does raise the top of the group (its p95)
    day after day, never its median, which the limits follow: she is refused as early,
    and gets no more than a cautious insider alone (stopping at each day's first
    refusal), the most the limits let through."""
    alone = run_low_and_slow(default_policies(), cautious=True)
    report = run_low_and_slow(default_policies(), accomplices=accomplices, cautious=True)
    late = [d for d in report.days[-10:] if d.peers_p95 is not None and d.peers_median]
    assert late and max(d.peers_p95 or 0 for d in late) > 80  # the top of the group rose
    assert all(d.peers_median is not None and d.peers_median <= 45 for d in late)
    assert report.denied_after is not None and report.denied_after < 1_500
    assert report.extra_served <= alone.extra_served * 1.05
    assert report.colleague_denies == 0
