"""The command line: ``zerotrust validate | test | eval | demo | serve | report |
completion``; the only module that prints.

One path convention: a command's main input is its first positional argument
(``validate POLICIES``, ``test POLICIES``, ``eval POLICIES [REQUEST]``, ``demo [POLICIES]``,
``report LOG``); the flags that named it before (``--policies``, ``--log``) stay as
aliases, so scripts written for them keep working. ``serve`` is the exception: its
``--policies`` is a configuration key, as settable from a file or the environment.

Exit codes: 0 success (``eval``: allow), 1 invalid policies, failed tests or a log
without decision records, 2 usage error, invalid request, a server that cannot start or
a file that cannot be read or written, 3 ``eval`` denied, 4 ``eval`` step-up required.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from zerotrust import __version__
from zerotrust._plain import parse_json_object
from zerotrust.audit import JsonLinesLog
from zerotrust.decision import Effect
from zerotrust.engine import PolicyDecisionPoint
from zerotrust.errors import PolicyError, RequestError, ZeroTrustError

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


def _port(text: str) -> int:
    """A TCP port to listen on: 1..65535 (argparse turns the error into a usage error)."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 1..65535, not {text!r}")
    return int(text)


def _serve_flags(serve: argparse.ArgumentParser) -> None:
    """``serve``'s flags: one for every key of the configuration but the secrets (a
    command line is visible to every user of the machine), made from its schema."""
    try:
        from zerotrust.server.settings import FLAG_SECRETS, env_name, flag_name, keys
    except ImportError:  # `serve` says it needs the server extra
        serve.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        return
    serve.add_argument("--config", metavar="FILE", help="config file (YAML or JSON)")
    serve.add_argument(
        "--print-config",
        action="store_true",
        help="print the configuration in effect (secrets as ***) and exit",
    )
    serve.add_argument(
        "--config-schema", action="store_true", help="print the config file's JSON Schema"
    )
    groups: dict[str, Any] = {}
    for path, schema in keys():
        if path[0] in FLAG_SECRETS:
            continue
        where = str(path[0]) if len(path) > 1 else "server"
        group = groups.get(where) or groups.setdefault(
            where, serve.add_argument_group(f"{where} settings")
        )
        default = schema.get("default")
        text = str(schema.get("description", "")).replace("%", "%%")
        if default is not None and default != []:
            text += f" (default {json.dumps(default)})"
        text += f"; env {env_name(path)}"
        options: dict[str, Any] = {"dest": "key:" + ".".join(map(str, path)), "help": text}
        if schema.get("type") == "boolean":
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = {"port": _port, "workers": _workers}.get(str(path[-1]), str)
            options["metavar"] = _metavar(schema)
        group.add_argument(flag_name(path), **options)


def _metavar(schema: Any) -> str:
    kinds = {o.get("type") for o in schema.get("anyOf", [schema])} - {"null"}
    if "enum" in schema:
        return "{" + ",".join(schema["enum"]) + "}"
    if schema.get("format") == "path" or any(
        o.get("format") == "path" for o in schema.get("anyOf", [])
    ):
        return "PATH"
    if kinds == {"integer"}:
        return "N"
    if kinds == {"number"}:
        return "NUMBER"
    if "array" in kinds:
        return "LIST"
    return "TEXT"


def _parser(full_serve: bool = False) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="zerotrust",
        description="Zero Trust policy decision point: validate, test and evaluate policies.",
        epilog="Exit codes: 0 ok/allow, 1 invalid policies, failed tests or no decision "
        "records, 2 usage, bad request or unreadable file, 3 deny, 4 step_up.",
    )
    parser.add_argument("--version", action="version", version=f"zerotrust {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="COMMAND"
    )

    validate = sub.add_parser("validate", help="check a policy file or directory")
    _path(validate.add_argument("path", metavar="POLICIES", help="policy file or directory"))

    test = sub.add_parser("test", help="run the *_test.yaml suites beside the policies")
    _path(
        test.add_argument(
            "path",
            metavar="POLICIES",
            help="policy directory, or one policy or suite file (its directory is loaded)",
        )
    )
    test.add_argument(
        "-v", "--verbose", action="store_true", help="list passing cases too, with the trace"
    )
    test.add_argument(
        "--format",
        choices=("text", "json", "junit"),
        default="text",
        help="text (default), one JSON object, or JUnit XML for CI",
    )
    test.add_argument(
        "--run", metavar="REGEX", type=_regex, help="only the cases whose name matches"
    )

    ev = sub.add_parser(
        "eval",
        help="decide one request and print the decision as JSON",
        usage="zerotrust eval [-h] POLICIES [REQUEST] [--explain] [--now NOW] [--compact]",
    )
    # Positional POLICIES [REQUEST]; with --policies (the older form) the one positional
    # is the request. Resolved in _resolve_paths, after parsing.
    _path(
        ev.add_argument("policies", nargs="?", metavar="POLICIES", help="policy file or directory")
    )
    _path(
        ev.add_argument(
            "request",
            nargs="?",
            metavar="REQUEST",
            help="request JSON file, or - for stdin (default)",
        )
    )
    _path(
        ev.add_argument(
            "--policies", dest="policies_flag", metavar="POLICIES", help="the same as POLICIES"
        )
    )
    ev.add_argument("--explain", action="store_true", help="add the trace of every rule")
    ev.add_argument("--now", help="evaluate at this ISO 8601 time (with timezone)")
    ev.add_argument("--compact", action="store_true", help="one-line JSON")

    demo = sub.add_parser(
        "demo",
        help="replay the insider scenario (bulk reading at night) and print the timeline",
        usage="zerotrust demo [-h] [POLICIES] [--scenario {bulk-night,low-and-slow}] [--log LOG]",
    )
    _path(
        demo.add_argument(
            "policies", nargs="?", metavar="POLICIES", help="policy directory (default: ./policies)"
        )
    )
    _path(
        demo.add_argument(
            "--policies", dest="policies_flag", metavar="POLICIES", help="the same as POLICIES"
        )
    )
    _path(
        demo.add_argument(
            "--log", help="also write every decision to this new file (JSON lines, for `report`)"
        )
    )
    demo.add_argument(
        "--scenario",
        choices=("bulk-night", "low-and-slow"),
        default="bulk-night",
        help="bulk-night: one night of bulk reading (default); "
        "low-and-slow: ten weeks of slowly growing reading, caught against the peer group",
    )

    serve = sub.add_parser(
        "serve",
        allow_abbrev=False,  # --bearer-secrets must not pass for --bearer-secrets-file
        help="serve the OpenID AuthZEN Authorization API over HTTP",
        description="Serve the AuthZEN API. Every setting comes from the config file, "
        "a ZEROTRUST_... environment variable or a flag; a flag wins over a variable, a "
        "variable over the file (see docs/server.md, Configure it).",
    )
    if full_serve:
        _serve_flags(serve)
    else:  # the flags need the server extra: read only when `serve` runs
        serve.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    report = sub.add_parser(
        "report",
        help="rank subjects in a decision log and write one self-contained HTML page",
        usage="zerotrust report [-h] LOG --out OUT [--top N] [--min-score S] [--title T]",
    )
    _path(
        report.add_argument(
            "log", nargs="?", metavar="LOG", help="decision log (JSON lines; .gz read too)"
        )
    )
    _path(report.add_argument("--log", dest="log_flag", metavar="LOG", help="the same as LOG"))
    _path(report.add_argument("--out", required=True, help="HTML file to write"))
    report.add_argument(
        "--top", type=_count, default=10, help="subjects shown in detail at most (default 10)"
    )
    report.add_argument(
        "--min-score",
        type=_score,
        default=20.0,
        help="lowest score shown in detail (default 20)",
    )
    report.add_argument("--title", help="the page's title")
    completion = sub.add_parser(
        "completion",
        help="print the shell completion script (needs shtab)",
        description="Print the completion script for the shell; for bash, add "
        "'eval \"$(zerotrust completion bash)\"' to ~/.bashrc.",
    )
    completion.add_argument("shell", choices=("bash", "zsh"), help="the shell")
    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of policy, data or test-suite files",
        description="Print a JSON Schema (draft 2020-12) for editors: policy (*.yaml), "
        "data (*.data.yaml, *.data.json) or test (*_test.yaml).",
    )
    schema.add_argument("kind", choices=("policy", "data", "test"), help="the kind of file")
    from zerotrust.lint.command import add_arguments as _lint_arguments

    lint = sub.add_parser(
        "lint",
        help="prove rules dead, shadowed or always matching (needs z3: the lint extra)",
        description="Static analysis with an SMT solver. Exit codes: 0 no findings, "
        "1 findings (0 with --exit-zero), 2 invalid policies, usage or no z3.",
    )
    _path(_lint_arguments(lint))
    for name, command in sub.choices.items():
        command.set_defaults(command_parser=command, command_name=name)
    return parser


def _path(action: argparse.Action) -> None:
    """Mark an argument as a path, for the completion script (files and directories)."""
    setattr(action, "zerotrust_path", True)  # noqa: B010  (argparse.Action has no slot)


def _resolve_paths(args: argparse.Namespace) -> None:
    """Merge each positional path with the flag kept as its alias; given twice with two
    different values is a usage error naming both (exit 2)."""
    parser: argparse.ArgumentParser = args.command_parser
    if args.command == "eval":
        flag = args.policies_flag
        # `eval --policies DIR REQUEST`: the one positional is the request (unless it is
        # the same directory again).
        one = flag is not None and args.request is None and args.policies is not None
        if one and not _same_path(args.policies, flag):
            args.policies, args.request = flag, args.policies
        _merge(parser, args, "policies", "POLICIES", "--policies", required=True)
        if args.request is None:
            args.request = "-"
    elif args.command == "demo":
        _merge(parser, args, "policies", "POLICIES", "--policies", required=False)
    elif args.command == "report":
        _merge(parser, args, "log", "LOG", "--log", required=True)


def _merge(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    dest: str,
    positional: str,
    flag: str,
    *,
    required: bool,
) -> None:
    given, aliased = getattr(args, dest), getattr(args, dest + "_flag")
    if given is not None and aliased is not None and not _same_path(given, aliased):
        parser.error(
            f"{positional} given twice, as {positional} {given!r} and {flag} {aliased!r}: give one"
        )
    value = given if given is not None else aliased
    if value is None and required:
        parser.error(f"the following arguments are required: {positional} (or {flag})")
    setattr(args, dest, value)


def _same_path(first: str, second: str) -> bool:
    return first == second or Path(first).resolve() == Path(second).resolve()


def _workers(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"must be a whole number 1..64, not {text!r}")
    return int(text)


def _count(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"must be a whole number 0..1000, not {text!r}")
    return int(text)


def _score(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1000:  # (NaN fails too)
        raise argparse.ArgumentTypeError(f"must be a number 0..1000, not {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["serve"]:
        # The metrics directory is this server's own (the supervisor makes one for its
        # workers): one inherited from the environment (a base image's, another
        # server's) would mix their counts into ours, keep a dead process's for ever,
        # or stop the start-up if it is gone. Dropped before prometheus_client is
        # imported (the server's flags import it): it picks its value class then.
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if not argv:  # a bare `zerotrust`: the help, with its list of commands, as usage
        _parser().print_help(sys.stderr)
        return EXIT_USAGE
    args = _parser(full_serve=argv[:1] == ["serve"]).parse_args(argv)
    _resolve_paths(args)
    try:
        if args.command == "completion":
            return _completion(args.shell, sys.stdout)
        if args.command == "schema":
            from zerotrust.policy.schemas import schema_text

            sys.stdout.write(schema_text(args.kind))
            return EXIT_OK
        if args.command == "validate":
            return _validate(args.path, sys.stdout)
        if args.command == "test":
            return _test(args.path, args.verbose, args.format, args.run, sys.stdout)
        if args.command == "demo":
            return _demo(args.policies, args.scenario, args.log, sys.stdout, sys.stderr)
        if args.command == "report":
            return _report(args, sys.stdout)
        if args.command == "serve":
            return _serve(args)
        if args.command == "lint":
            from zerotrust.lint.command import run as _lint

            return _lint(args, sys.stdout, sys.stderr)
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


def _completion(shell: str, out: TextIO) -> int:
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
    parser = _parser(full_serve=True)
    for action in _actions(parser):
        if getattr(action, "zerotrust_path", False):
            action.complete = shtab.FILE  # type: ignore[attr-defined]
    out.write(shtab.complete(parser, shell=shell))
    return EXIT_OK


def _actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """Every argument of the parser and its subcommands."""
    found = []
    for action in parser._actions:
        found.append(action)
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                found.extend(_actions(command))
    return found


def _print_diagnostics(exc: PolicyError, out: TextIO) -> None:
    for diagnostic in exc.diagnostics:
        print(str(diagnostic), file=out)
    count = len(exc.diagnostics)
    print(f"{count} problem{'s' if count != 1 else ''} found", file=out)


def _validate(path: str, out: TextIO) -> int:
    pdp = PolicyDecisionPoint.from_path(path, behavior=None)
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


def _regex(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"not a regular expression: {exc}") from None


def _test(path: str, verbose: bool, fmt: str, select: re.Pattern[str] | None, out: TextIO) -> int:
    from zerotrust.testing import run_tests, to_json, to_junit

    report = run_tests(path, select=select)
    code = EXIT_OK if report.ok and report.results else EXIT_INVALID
    if fmt == "json":
        print(to_json(report), file=out)
        return code
    if fmt == "junit":
        out.write(to_junit(report))
        return code
    for result in report.results:
        if result.passed and not verbose:
            continue
        status = "PASS" if result.passed else "FAIL"
        print(f"{status} {result.file}:{result.line} {result.suite} :: {result.name}", file=out)
        for line in result.explanation() if not result.passed else ():
            print(f"    {line}", file=out)
        if verbose:
            for line in result.trace():
                print(f"    trace: {line}", file=out)
    if not report.results:
        print("no test cases found (*_test.yaml)", file=out)
    print(report.summary(), file=out)
    return code


def _demo(
    policies: str | None, scenario: str, log_path: str | None, out: TextIO, err: TextIO
) -> int:
    from zerotrust.demo import default_policies, run_demo
    from zerotrust.demo_slow import run_low_and_slow

    log: JsonLinesLog | None = None
    if log_path is not None:
        # A new file only: appended to an older log, a second replay would double its days.
        if Path(log_path).exists() and Path(log_path).stat().st_size:
            print(
                f"zerotrust demo: {_printable(log_path)} exists and is not empty; "
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


def _report(args: argparse.Namespace, out: TextIO) -> int:
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
        print(f"zerotrust report: {_os_error(exc)}", file=sys.stderr)
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
            f"zerotrust report: no decision records in {_printable(args.log)}: {summary}",
            file=sys.stderr,
        )
        return EXIT_INVALID
    print(f"{_printable(args.out)}: {summary}", file=out)
    return EXIT_OK


def _os_error(exc: OSError) -> str:
    """An OSError on one line: its file and reason when it has them."""
    if exc.strerror and exc.filename is not None:
        return _printable(f"{exc.filename}: {exc.strerror}")
    return _printable(" ".join(str(exc).split()))


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


def _serve(args: argparse.Namespace) -> int:
    """Every way the server can fail to start is one line and exit 2, except invalid
    policies (exit 1 with their diagnostics, as ``validate``)."""
    try:  # imported here: `import zerotrust` must not need the server extra
        from zerotrust.server.config import ServerConfigError
        from zerotrust.server.runner import address, listen_each
        from zerotrust.server.settings import ENV_PREFIX, config_schema, printed
        from zerotrust.server.workers import (
            ServeOptions,
            build,
            configure,
            run,
            share_paging_secret,
            supervise,
        )
    except ImportError as exc:
        print(
            f"zerotrust serve: needs the server extra ({exc}): pip install 'zerotrust[server]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.config_schema:
        print(json.dumps(config_schema(), indent=2))
        return EXIT_OK
    flags = {
        name[4:]: value
        for name, value in vars(args).items()
        if name.startswith("key:") and value is not None
    }
    options = ServeOptions(
        config_file=args.config,
        flags=tuple(sorted(flags.items())),
        environ=tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(ENV_PREFIX))),
    )
    built = None
    status = EXIT_OK
    try:
        config = configure(options)
        if args.print_config:
            sys.stdout.write(printed(config))
            return EXIT_OK
        # A reload asked for while starting must not end the process (SIGHUP's default
        # action): run() and the supervisor handle it once serving; spawned workers
        # inherit the ignoring until they do.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        if config.workers > 1:  # one paging secret for every worker
            options = share_paging_secret(options, config)
        # Everything is checked here, before binding, with --workers too: each worker
        # then builds the same server for itself.
        built = build(options, config=config)
        socket_sets = listen_each(config.host, config.port, config.workers)
        workers = f", {config.workers} workers" if config.workers > 1 else ""
        print(
            f"zerotrust serve: listening on http://{address(config.host, config.port)}, "
            f"policy revision {built.pdp.revision}{workers}",
            file=sys.stderr,
        )
        if config.workers == 1:
            run(built, socket_sets[0])
        else:
            if built.log is not None:  # each worker opens its own
                built.log.close()
            status = EXIT_USAGE if supervise(options, socket_sets) else EXIT_OK
    except PolicyError:
        raise  # exit 1 with the diagnostics, as `validate`
    except ServerConfigError as exc:  # every problem, one line each
        for problem in exc.problems:
            print(f"zerotrust serve: {' '.join(problem.split())}", file=sys.stderr)
        return EXIT_USAGE
    except (ZeroTrustError, OSError) as exc:
        # ListenError, DecisionLogError, identity set-up: one line.
        print(f"zerotrust serve: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if built is not None and built.log is not None:
            try:
                built.log.close()
            except ZeroTrustError as exc:  # the last lines may be lost: say so, once
                print(f"zerotrust serve: {' '.join(str(exc).split())}", file=sys.stderr)
    return status


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
    if args.request == "-" and sys.stdin is not None and sys.stdin.isatty():
        # A person at a terminal, not a pipe: say why nothing happens.
        print(
            "zerotrust eval: reading the request from standard input (Ctrl-D to end)",
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
        request = parse_json_object(data)
    except RequestError as exc:
        return _bad_request(exc)
    # One request has no history: behaviour features stay empty (`has(behavior.x)` is false).
    pdp = PolicyDecisionPoint.from_path(args.policies, clock=clock, behavior=None)
    try:
        decision = pdp.evaluate(request, explain=args.explain)
    except RequestError as exc:
        return _bad_request(exc)
    indent = None if args.compact else 2
    print(json.dumps(decision.to_dict(), indent=indent), file=out)
    return _EFFECT_EXIT[decision.effect]


def _stdin_bytes() -> bytes:
    """Standard input as bytes: decoding is the request parser's (strict UTF-8), not
    the locale's (which may turn bad bytes into lone surrogates)."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is not None:
        return bytes(stream.read())
    return sys.stdin.read().encode("utf-8", "surrogateescape")  # a text-only stand-in


def _bad_request(exc: RequestError) -> int:
    """Any malformed request: one line naming the problem, exit 2 (never a traceback)."""
    print(f"zerotrust: invalid request: {_printable(str(exc))}", file=sys.stderr)
    return EXIT_USAGE


def _printable(text: str) -> str:
    """``text`` on one line: a control character, line break or lone surrogate (a key
    may hold any) is shown escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
