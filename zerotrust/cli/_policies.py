"""validate, test, eval, replay and completion: the policy author's commands."""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from pathlib import Path
from typing import Any, TextIO

from zerotrust._explain import no_policy_for
from zerotrust._plain import parse_json_object
from zerotrust.cli._args import actions, build_parser
from zerotrust.cli._common import (
    EXIT_DENY,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_STEP_UP,
    EXIT_USAGE,
    os_error,
    print_diagnostics,
    printable,
)
from zerotrust.decision import Effect
from zerotrust.engine import PolicyDecisionPoint
from zerotrust.errors import Diagnostic, PolicyError, RequestError

_EFFECT_EXIT = {Effect.ALLOW: EXIT_OK, Effect.DENY: EXIT_DENY, Effect.STEP_UP: EXIT_STEP_UP}

__all__ = [
    "bad_request",
    "completion",
    "evaluate",
    "plural",
    "replay_command",
    "request_pdp",
    "run_tests_command",
    "validate",
]


def validate(path: str, out: TextIO) -> int:
    from zerotrust.policy.loader import is_test_file
    from zerotrust.testing import check_suites

    if not Path(path).exists():  # said once, whether it named policies or a suite
        raise PolicyError(list(check_suites(path, None).problems))
    problems: list[Diagnostic] = []
    policies = None
    if not is_test_file(path):  # a suite file is checked against its directory's set
        try:
            policies = PolicyDecisionPoint.from_path(path, behavior=None).policies
        except PolicyError as exc:
            problems.extend(exc.diagnostics)
    suites = check_suites(path, policies)
    problems.extend(suites.problems)
    if problems:
        raise PolicyError(sorted(problems, key=lambda d: (d.file, d.line, d.column)))
    if policies is not None:
        for warning in policies.warnings:
            print(_warning(warning), file=out)
        print(
            f"ok: {plural(len(policies.policies), 'policy', 'policies')}, "
            f"{plural(policies.rule_count, 'rule')} in {plural(len(policies.sources), 'file')} "
            f"(revision {policies.revision})",
            file=out,
        )
    if suites.suites or policies is None:
        print(
            f"ok: {plural(suites.suites, 'test suite')}, {plural(suites.cases, 'case')}",
            file=out,
        )
    return EXIT_OK


def _warning(found: Diagnostic) -> str:
    """``file:line:col: warning: [policy/rule] message``: said, not failing."""
    owner = found.policy if found.rule is None else f"{found.policy}/{found.rule}"
    subject = "" if found.policy is None else f" [{owner}]"
    return f"{found.file}:{found.line}:{found.column}: warning:{subject} {found.message}"


def plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def run_tests_command(
    path: str,
    verbose: bool,
    fmt: str,
    select: re.Pattern[str] | None,
    coverage: bool,
    out: TextIO,
) -> int:
    from zerotrust.testing import coverage_of, run_tests, to_json, to_junit

    if coverage and fmt == "junit":
        print(
            "zerotrust test: --coverage has no JUnit form; use --format text or json",
            file=sys.stderr,
        )
        return EXIT_USAGE
    report = run_tests(path, select=select)
    code = EXIT_OK if report.ok and report.results else EXIT_INVALID
    covered = coverage_of(report) if coverage else None
    if fmt == "json":
        print(to_json(report, covered), file=out)
        return code
    if fmt == "junit":
        out.write(to_junit(report))
        return code
    for result in report.results:
        if result.passed and not verbose:
            continue
        status = "PASS" if result.passed else "FAIL"
        title = f"{status} {result.file}:{result.line} {result.suite} :: {result.name}"
        print(printable(title), file=out)  # names and values may hold controls
        for line in result.explanation() if not result.passed else ():
            print(printable(f"    {line}"), file=out)
        if verbose:
            for line in result.trace():
                print(printable(f"    trace: {line}"), file=out)
    if not report.results:
        print("no test cases found (*_test.yaml)", file=out)
    print(report.summary(), file=out)
    for line in covered.lines() if covered is not None else ():
        print(printable(line), file=out)
    return code


def replay_command(args: argparse.Namespace, out: TextIO) -> int:
    """Exit 0 no change, 1 changes (0 with --exit-zero), 2 invalid policies, a log that
    cannot be read or one without a single replayable decision entry."""
    from zerotrust.cel import default_backend
    from zerotrust.policy.loader import load_path
    from zerotrust.replay import open_log, replay, to_json, to_text

    backend = default_backend()
    try:
        policies = load_path(args.policies, backend)
    except PolicyError as exc:
        print_diagnostics(exc, sys.stderr)
        return EXIT_USAGE
    stdin = getattr(sys.stdin, "buffer", None)
    try:
        with open_log(args.log, stdin) as log:
            report = replay(policies, log, examples=args.examples, backend=backend)
    except OSError as exc:
        where = "" if exc.filename is not None else f"{printable(args.log)}: "
        print(f"zerotrust replay: {where}{os_error(exc)}", file=sys.stderr)
        return EXIT_USAGE
    out.write(to_json(report) + "\n" if args.format == "json" else to_text(report))
    if not report.replayed:
        print(
            f"zerotrust replay: no replayable decision entry in {printable(args.log)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return EXIT_INVALID if report.changed and not args.exit_zero else EXIT_OK


def request_pdp(
    args: argparse.Namespace,
) -> tuple[PolicyDecisionPoint, dict[str, Any]] | int:
    """``eval`` and ``plan``'s inputs: the PDP (at ``--now``) and the request, or the
    exit code after saying on standard error what is wrong."""
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
    # The policies first: a mistyped directory is the answer, whatever the request holds.
    # One request has no history: behaviour features stay empty (`has(behavior.x)` is false).
    pdp = PolicyDecisionPoint.from_path(args.policies, clock=clock, behavior=None)
    if args.request == "-" and sys.stdin is not None and sys.stdin.isatty():
        # A person at a terminal, not a pipe: say why nothing happens.
        print(
            f"zerotrust {args.command}: reading the request from standard input (Ctrl-D to end)",
            file=sys.stderr,
            flush=True,
        )
    try:
        data = _stdin_bytes() if args.request == "-" else Path(args.request).read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        print(f"zerotrust: cannot read request {args.request}: {reason}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return pdp, parse_json_object(data)
    except RequestError as exc:
        return bad_request(exc)


def evaluate(args: argparse.Namespace, out: TextIO) -> int:
    given = request_pdp(args)
    if isinstance(given, int):
        return given
    pdp, request = given
    try:
        decision = pdp.evaluate(request, explain=args.explain)
    except RequestError as exc:
        return bad_request(exc)
    indent = None if args.compact else 2
    print(json.dumps(decision.to_dict(), indent=indent), file=out)
    # A default deny because nothing applied is most often a misspelt type or action.
    why = decision.no_policy if args.explain else no_policy_for(pdp.policies, request)
    if why is not None:
        print(f"zerotrust eval: {printable(why)}", file=sys.stderr)
    return _EFFECT_EXIT[decision.effect]


def _stdin_bytes() -> bytes:
    """Standard input as bytes: decoding is the request parser's (strict UTF-8), not
    the locale's (which may turn bad bytes into lone surrogates)."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is not None:
        return bytes(stream.read())
    return sys.stdin.read().encode("utf-8", "surrogateescape")  # a text-only stand-in


def bad_request(exc: RequestError) -> int:
    """Any malformed request: one line naming the problem, exit 2 (never a traceback)."""
    print(f"zerotrust: invalid request: {printable(str(exc))}", file=sys.stderr)
    return EXIT_USAGE


def completion(shell: str, out: TextIO) -> int:
    """The completion script, made by shtab from the parser (serve's flags included when
    the server extra is installed); shtab is optional, so without it one line and exit 2."""
    try:
        import shtab
    except ImportError:
        print(
            "zerotrust completion: needs shtab: pip install shtab "
            "(or pip install 'zerotrust[completion]')",
            file=sys.stderr,
        )
        return EXIT_USAGE
    parser = build_parser(full_serve=True)
    for action in actions(parser):
        if getattr(action, "zerotrust_path", False):
            action.complete = shtab.FILE  # type: ignore[attr-defined]
    out.write(shtab.complete(parser, shell=shell))
    return EXIT_OK
