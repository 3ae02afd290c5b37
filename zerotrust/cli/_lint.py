"""``zerotrust lint``: run the analyses on a path and print the findings as text or JSON.

Exit codes: 0 no finding, 1 findings (0 with ``--exit-zero``), 2 invalid policies, an
unreadable path, or no z3.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any, TextIO

import attrs

from zerotrust._describe import printable
from zerotrust.errors import PolicyError
from zerotrust.lint import LintOptions, LintReport, SolverUnavailableError, lint_path

__all__ = ["add_arguments", "render_json", "render_text", "run"]

EXIT_OK, EXIT_FINDINGS, EXIT_BAD_INPUT = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> argparse.Action:
    """The lint command's arguments; returns the path argument (to mark it a path)."""
    path = parser.add_argument("path", metavar="POLICIES", help="policy file or directory")
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default text)"
    )
    parser.add_argument(
        "--exit-zero", action="store_true", help="exit 0 even when there are findings"
    )
    parser.add_argument(
        "--timeout-ms",
        type=_timeout,
        default=LintOptions().timeout_ms,
        metavar="MS",
        help="longest the solver may spend on one question (then no finding); default 5000",
    )
    parser.add_argument(
        "--max-seconds",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="longest the analyses may run in all; questions left then are reported"
        " undecided, never as findings (default: no limit)",
    )
    return path


def _timeout(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 600_000:
        raise argparse.ArgumentTypeError(f"must be a whole number 1..600000, not {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= 86_400):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, not {text!r}")
    return value


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Lint ``args.path``; print findings to ``out``, problems to ``err``."""
    try:
        report = lint_path(
            args.path, LintOptions(timeout_ms=args.timeout_ms, max_seconds=args.max_seconds)
        )
    except SolverUnavailableError as exc:
        print(f"zerotrust lint: {exc}", file=err)
        return EXIT_BAD_INPUT
    except PolicyError as exc:
        for diagnostic in exc.diagnostics:  # file names may hold control characters
            print(printable(str(diagnostic)), file=err)
        print("zerotrust lint: the policies do not load; fix them first", file=err)
        return EXIT_BAD_INPUT
    if args.format == "json":
        out.write(render_json(report))
    else:
        out.write("".join(printable(line) + "\n" for line in render_text(report).splitlines()))
    if report.findings and not args.exit_zero:
        return EXIT_FINDINGS
    return EXIT_OK


def render_text(report: LintReport) -> str:
    """One block per finding: ``file:line:col: kind: ref: message``, then its details."""
    lines: list[str] = []
    findings = report.findings
    for f in findings:
        lines.append(f"{f.file}:{f.line}:{f.column}: {f.kind}: {f.ref}: {f.message}")
        if f.example is not None:
            given = _dotted(f.example_with or {})
            with_ = " with " + ", ".join(given) if given else ""
            lines.append(f"    for example: {json.dumps(f.example, sort_keys=False)}{with_}")
    count = len(findings)
    lines.append(f"{count} finding{'s' if count != 1 else ''}" if count else "no findings")
    if report.undecided:
        within = "--max-seconds" if report.out_of_time else "--timeout-ms"
        lines.append(
            f"{report.undecided} question{'s' if report.undecided != 1 else ''} not decided"
            f" within {within}: no finding came of them"
        )
    return "\n".join(lines) + "\n"


def _dotted(values: dict[str, Any], prefix: str = "") -> list[str]:
    """``{"risk": {"score": 0}}`` as ``["risk.score = 0"]``."""
    out: list[str] = []
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out.extend(_dotted(value, f"{prefix}{key}."))
        else:
            out.append(f"{prefix}{key} = {json.dumps(value)}")
    return out


def render_json(report: LintReport) -> str:
    """``{"findings": [...], "count": N, "undecided": N, "out_of_time": bool}``; each
    finding's fields by name."""
    items: list[dict[str, Any]] = []
    for f in report.findings:
        item = attrs.asdict(f)
        item["related"] = list(f.related)
        items.append(item)
    document = {
        "findings": items,
        "count": len(items),
        "undecided": report.undecided,
        "out_of_time": report.out_of_time,
    }
    return json.dumps(document, indent=2) + "\n"
