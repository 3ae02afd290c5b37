"""The command line: ``zerotrust validate | test | eval``. The only module that prints.

Exit codes: 0 success (``eval``: allow), 1 invalid policies or failed tests,
2 usage error or invalid request, 3 ``eval`` denied, 4 ``eval`` step-up required.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from zerotrust.decision import Effect
from zerotrust.engine import PolicyDecisionPoint
from zerotrust.errors import PolicyError, RequestError

__all__ = ["main"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_DENY = 3
EXIT_STEP_UP = 4
_EFFECT_EXIT = {Effect.ALLOW: EXIT_OK, Effect.DENY: EXIT_DENY, Effect.STEP_UP: EXIT_STEP_UP}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse exits 2 by itself; keep its text
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="zerotrust",
        description="Zero Trust policy decision point: validate, test and evaluate policies.",
        epilog="Exit codes: 0 ok/allow, 1 invalid policies or failed tests, "
        "2 usage or bad request, 3 deny, 4 step_up.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    validate = sub.add_parser("validate", help="check a policy file or directory")
    validate.add_argument("path", help="policy file or directory")

    test = sub.add_parser("test", help="run the *_test.yaml suites beside the policies")
    test.add_argument("path", help="policy directory")
    test.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")

    ev = sub.add_parser("eval", help="decide one request and print the decision as JSON")
    ev.add_argument("--policies", required=True, help="policy file or directory")
    ev.add_argument("request", nargs="?", default="-", help="request JSON file, or - for stdin")
    ev.add_argument("--explain", action="store_true", help="add the trace of every rule")
    ev.add_argument("--now", help="evaluate at this ISO 8601 time (with timezone)")
    ev.add_argument("--compact", action="store_true", help="one-line JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            return _validate(args.path, sys.stdout)
        if args.command == "test":
            return _test(args.path, args.verbose, sys.stdout)
        return _eval(args, sys.stdout)
    except PolicyError as exc:
        _print_diagnostics(exc, sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into e.g. `head`: stop quietly, as Unix tools do.
        sys.stderr.close()
        return EXIT_OK


def _print_diagnostics(exc: PolicyError, out: TextIO) -> None:
    for diagnostic in exc.diagnostics:
        print(str(diagnostic), file=out)
    count = len(exc.diagnostics)
    print(f"{count} problem{'s' if count != 1 else ''} found", file=out)


def _validate(path: str, out: TextIO) -> int:
    pdp = PolicyDecisionPoint.from_path(path)
    policies = pdp.policies
    files = len(policies.sources)
    print(
        f"ok: {_plural(len(policies.policies), 'policy', 'policies')}, "
        f"{_plural(policies.rule_count, 'rule')} in {_plural(files, 'file')} "
        f"(revision {policies.revision})",
        file=out,
    )
    return EXIT_OK


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def _test(path: str, verbose: bool, out: TextIO) -> int:
    from zerotrust.testing import run_tests

    report = run_tests(path)
    for result in report.results:
        if result.passed and not verbose:
            continue
        status = "PASS" if result.passed else "FAIL"
        print(f"{status} {result.file}:{result.line} {result.suite} :: {result.name}", file=out)
        for failure in result.failures:
            print(f"    {failure}", file=out)
    if not report.results:
        print("no test cases found (*_test.yaml)", file=out)
    print(report.summary(), file=out)
    return EXIT_OK if report.ok and report.results else EXIT_INVALID


def _eval(args: argparse.Namespace, out: TextIO) -> int:
    clock = None
    if args.now is not None:
        try:
            now = datetime.datetime.fromisoformat(args.now)
        except ValueError:
            now = None
        if now is None or now.tzinfo is None:
            print(
                f"zerotrust: --now must be ISO 8601 with a timezone: {args.now!r}", file=sys.stderr
            )
            return EXIT_USAGE
        clock = lambda: now  # noqa: E731
    try:
        text = sys.stdin.read() if args.request == "-" else Path(args.request).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"zerotrust: cannot read request: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        request = json.loads(text)
    except json.JSONDecodeError as exc:
        print(f"zerotrust: request is not valid JSON: {exc}", file=sys.stderr)
        return EXIT_USAGE
    pdp = PolicyDecisionPoint.from_path(args.policies, clock=clock)
    try:
        decision = pdp.evaluate(request, explain=args.explain)
    except RequestError as exc:
        print(f"zerotrust: invalid request: {exc}", file=sys.stderr)
        return EXIT_USAGE
    indent = None if args.compact else 2
    print(json.dumps(decision.to_dict(), indent=indent), file=out)
    return _EFFECT_EXIT[decision.effect]
