"""demo and report: the insider scenario and the analyst's report of a log."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from zerotrust.audit import JsonLinesLog
from zerotrust.cli._common import EXIT_INVALID, EXIT_OK, EXIT_USAGE, os_error, printable
from zerotrust.errors import ZeroTrustError

__all__ = ["demo", "report"]


def demo(
    policies: str | None, scenario: str, log_path: str | None, out: TextIO, err: TextIO
) -> int:
    from zerotrust.demo import default_policies, run_demo
    from zerotrust.demo_slow import run_low_and_slow

    log: JsonLinesLog | None = None
    if log_path is not None:
        # A new file only: appended to an older log, a second replay would double its days.
        if Path(log_path).exists() and Path(log_path).stat().st_size:
            print(
                f"zerotrust demo: {printable(log_path)} exists and is not empty; "
                "the demo writes a new log (remove the file first)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        try:
            log = JsonLinesLog(log_path)
        except ZeroTrustError as exc:
            print(f"zerotrust demo: {' '.join(str(exc).split())}", file=sys.stderr)
            return EXIT_USAGE

    shown = [-1]

    def progress(done: int, total: int) -> None:
        percent = done * 100 // max(total, 1)
        if percent != shown[0]:
            shown[0] = percent
            bar = "#" * (percent * 30 // 100)
            print(f"\rreplaying [{bar:<30}] {percent:3d}%", end="", file=err, flush=True)

    # A progress bar is for a person watching: redirected, it is only noise.
    shown_progress = progress if err.isatty() else None
    try:
        if scenario == "low-and-slow":
            path = policies if policies is not None else default_policies()
            slow = run_low_and_slow(path, progress=shown_progress, decision_log=log)
        else:
            report = run_demo(policies, progress=shown_progress, decision_log=log)
    finally:
        if log is not None:
            log.close()
    if shown_progress is not None:
        print(file=err)
    if scenario == "low-and-slow":
        _render_slow(slow, out)
        decisions = slow.decisions
    else:
        _render_demo(report, out)
        decisions = report.decisions
    if log is not None:
        print(f"\nDecision log: {log_path} ({decisions} decisions)", file=out)
    return EXIT_OK


def report(args: argparse.Namespace, out: TextIO) -> int:
    """Every way the report can fail is one line: exit 2 for a file that cannot be read
    or written or a missing extra, exit 1 for a log without one decision record."""
    from zerotrust.report import ReportOptions, write_report

    options = ReportOptions(top=args.top, min_score=args.min_score)
    try:
        report = write_report(args.log, args.out, options, title=args.title)
    except ImportError as exc:
        print(f"zerotrust report: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"zerotrust report: {os_error(exc)}", file=sys.stderr)
        return EXIT_USAGE
    figures = report.figures
    skipped = ", ".join(f"{count} {reason}" for reason, count, _ in figures.skipped)
    summary = (
        f"{figures.decisions} decisions of {len(figures.subjects)} subjects, "
        f"{report.flagged} shown in detail; {figures.skipped_lines} of {figures.lines} "
        f"lines skipped" + (f" ({skipped})" if skipped else "")
    )
    if not figures.decisions:
        print(
            f"zerotrust report: no decision records in {printable(args.log)}: {summary}",
            file=sys.stderr,
        )
        return EXIT_INVALID
    print(f"{printable(args.out)}: {summary}", file=out)
    return EXIT_OK


def _render_slow(report: Any, out: TextIO) -> None:
    from zerotrust.demo_slow import INSIDER, weekly

    print(f"Low-and-slow insider scenario, policies from {report.policies}", file=out)
    print(
        f"Ten support agents, ten weeks of weekday casework; from week 3 {INSIDER} adds "
        f"lookups without a case ({report.extra_planned} planned; "
        f"{report.decisions} decisions in all).\n",
        file=out,
    )
    rows = weekly(report)
    top = max(max(r.insider, r.p95 or 0.0) for r in rows) or 1.0
    width = 40
    print(f"records a day: {INSIDER} #, group median |, group p95 :", file=out)
    for row in rows:
        line = ["#" if i < round(row.insider / top * width) else " " for i in range(width + 1)]
        for mark, value in ((":", row.p95), ("|", row.median)):
            if value is not None:
                line[min(width, round(value / top * width))] = mark
        median = "-" if row.median is None else f"{row.median:.0f}"
        print(
            f"  week {row.week:2d} {''.join(line)} {row.insider:6.1f} (median {median}; "
            f"refused {row.refused}, step-ups {row.step_ups})",
            file=out,
        )
    print(file=out)
    if report.flagged_at is not None:
        print(
            f"Flagged {report.flagged_at:%a %d %b %H:%M} UTC by {', '.join(report.flagged_by)}, "
            f"after {report.flagged_after} extra records.",
            file=out,
        )
    else:
        print("Never flagged.", file=out)
    if report.denied_at is not None:
        print(
            f"First refused {report.denied_at:%a %d %b %H:%M} UTC by "
            f"{', '.join(report.denied_by)}, after {report.denied_after} extra records.",
            file=out,
        )
    else:
        print("Never refused.", file=out)
    print(
        f"She got {report.extra_served} of her {report.extra_planned} extra lookups in all "
        f"(refusals: {', '.join(f'{rule} x{n}' for rule, n in report.rules) or 'none'}).",
        file=out,
    )
    print(
        f"Her colleagues: {report.colleague_denies} refused, "
        f"{report.colleague_step_ups} asked to step up.",
        file=out,
    )


def _render_demo(report: Any, out: TextIO) -> None:
    print(f"Insider scenario, policies from {report.policies}", file=out)
    for phase in report.phases:
        when = f"{phase.start:%a %d %b %H:%M:%S} - {phase.end:%a %d %b %H:%M:%S} UTC"
        print(f"\n== {phase.title}\n   {when}", file=out)
        print(
            f"   requests {phase.requests}: {phase.allows} allowed, {phase.step_ups} step-up, "
            f"{phase.denies} denied; records served {phase.records_served}",
            file=out,
        )
        low, high = phase.risk
        print(f"   risk {low}" + (f"..{high}" if high != low else ""), file=out)
        if phase.signals:
            signals = ", ".join(f"{name} x{n}" for name, n in phase.signals)
            print(f"   signals: {signals}", file=out)
        if phase.figures:
            moved = ", ".join(
                f"{name} {first}" + (f" -> {last}" if last != first else "")
                for name, first, last in phase.figures
            )
            print(f"   behaviour: {moved}", file=out)
        for rule, n in phase.rules:
            print(f"   rule {rule} x{n}", file=out)
    print(file=out)
    if report.stopped_at is not None:
        print(
            f"Stopped at {report.stopped_at:%a %d %b %H:%M:%S} UTC by "
            f"{', '.join(report.stopped_by)} after {report.attack_records} records "
            f"({report.attack_requests} requests tried, {report.decisions} decisions in all).",
            file=out,
        )
    else:
        print(
            f"Not stopped: the insider got {report.attack_records} records in "
            f"{report.attack_requests} requests.",
            file=out,
        )
