"""The argument parser of every command, and the checks of its values."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from zerotrust import __version__
from zerotrust.cli._common import EXIT_USAGE

__all__ = [
    "Parser",
    "actions",
    "add_replay_parser",
    "add_serve_flags",
    "build_parser",
    "count",
    "path_argument",
    "policies_and_request",
    "port",
    "regex",
    "resolve_paths",
    "score",
    "workers",
]


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse exits 2 by itself; keep its text
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def port(text: str) -> int:
    """A TCP port to listen on: 1..65535 (argparse turns the error into a usage error)."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 1..65535, not {text!r}")
    return int(text)


def add_serve_flags(serve: argparse.ArgumentParser) -> None:
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
            options["type"] = {"port": port, "workers": workers}.get(str(path[-1]), str)
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


def build_parser(full_serve: bool = False) -> argparse.ArgumentParser:
    parser = Parser(
        prog="zerotrust",
        description="Zero Trust policy decision point: validate, test, evaluate, lint and "
        "replay policies; serve them over HTTP.",
        epilog="Exit codes: 0 ok/allow, 1 invalid policies, failed tests or no decision "
        "records, 2 usage, bad request or unreadable file, 3 deny, 4 step_up "
        "(replay, lint: 0 no change or finding, 1 changes or findings, 2 bad input).",
    )
    parser.add_argument("--version", action="version", version=f"zerotrust {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=Parser, metavar="COMMAND"
    )

    validate = sub.add_parser(
        "validate", help="check a policy file or directory, and its *_test.yaml suites"
    )
    path_argument(
        validate.add_argument(
            "path", metavar="POLICIES", help="policy file or directory, or one suite file"
        )
    )

    test = sub.add_parser("test", help="run the *_test.yaml suites beside the policies")
    path_argument(
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
        "--run", metavar="REGEX", type=regex, help="only the cases whose name matches"
    )
    test.add_argument(
        "--coverage",
        action="store_true",
        help="also list, per policy file, the rules and signals no case saw both match "
        "and not match (text, or a 'coverage' key in JSON)",
    )

    ev = sub.add_parser(
        "eval",
        help="decide one request and print the decision as JSON",
        usage="zerotrust eval [-h] POLICIES [REQUEST] [--explain] [--now NOW] [--compact]",
    )
    policies_and_request(ev, "request JSON file, or - for stdin (default)")
    ev.add_argument(
        "--explain",
        action="store_true",
        help="add the trace: every rule and signal, with the values its condition read",
    )
    ev.add_argument("--now", help="evaluate at this ISO 8601 time (with timezone)")
    ev.add_argument("--compact", action="store_true", help="one-line JSON")

    from zerotrust.cli._plan import add_arguments as add_plan_arguments

    add_plan_arguments(sub)
    from zerotrust.cli._lint import add_arguments as add_lint_arguments

    lint = sub.add_parser(
        "lint",
        help="prove rules dead, shadowed or always matching (needs z3: the lint extra)",
        description="Static analysis with an SMT solver. Exit codes: 0 no findings, "
        "1 findings (0 with --exit-zero), 2 invalid policies, usage or no z3.",
    )
    path_argument(add_lint_arguments(lint))
    add_replay_parser(sub)
    demo = sub.add_parser(
        "demo",
        help="replay the insider scenario (bulk reading at night) and print the timeline",
        usage="zerotrust demo [-h] [POLICIES] [--scenario {bulk-night,low-and-slow}] [--log LOG]",
    )
    path_argument(
        demo.add_argument(
            "policies", nargs="?", metavar="POLICIES", help="policy directory (default: ./policies)"
        )
    )
    path_argument(
        demo.add_argument(
            "--policies", dest="policies_flag", metavar="POLICIES", help="the same as POLICIES"
        )
    )
    path_argument(
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
        add_serve_flags(serve)
    else:  # the flags need the server extra: read only when `serve` runs
        serve.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    report = sub.add_parser(
        "report",
        help="rank subjects in a decision log and write one self-contained HTML page",
        usage="zerotrust report [-h] LOG --out OUT [--top N] [--min-score S] [--title T]",
    )
    path_argument(
        report.add_argument(
            "log", nargs="?", metavar="LOG", help="decision log (JSON lines; .gz read too)"
        )
    )
    path_argument(
        report.add_argument("--log", dest="log_flag", metavar="LOG", help="the same as LOG")
    )
    path_argument(report.add_argument("--out", required=True, help="HTML file to write"))
    report.add_argument(
        "--top", type=count, default=10, help="subjects shown in detail at most (default 10)"
    )
    report.add_argument(
        "--min-score",
        type=score,
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
        help="print the JSON Schema of policy, data, test-suite or attribute-schema files",
        description="Print a JSON Schema (draft 2020-12) for editors: policy (*.yaml), "
        "data (*.data.yaml, *.data.json), test (*_test.yaml) or schema (*.schema.yaml).",
    )
    schema.add_argument(
        "kind", choices=("policy", "data", "test", "schema"), help="the kind of file"
    )
    for name, command in sub.choices.items():
        command.set_defaults(command_parser=command, command_name=name)
    return parser


def policies_and_request(command: argparse.ArgumentParser, request_help: str) -> None:
    """Positional POLICIES [REQUEST] (``eval``, ``plan``); with --policies (the older
    form) the one positional is the request. Resolved in resolve_paths, after parsing."""
    path_argument(
        command.add_argument(
            "policies", nargs="?", metavar="POLICIES", help="policy file or directory"
        )
    )
    path_argument(command.add_argument("request", nargs="?", metavar="REQUEST", help=request_help))
    path_argument(
        command.add_argument(
            "--policies", dest="policies_flag", metavar="POLICIES", help="the same as POLICIES"
        )
    )


def path_argument(action: argparse.Action) -> None:
    """Mark an argument as a path, for the completion script (files and directories)."""
    setattr(action, "zerotrust_path", True)  # noqa: B010  (argparse.Action has no slot)


def resolve_paths(args: argparse.Namespace) -> None:
    """Merge each positional path with the flag kept as its alias; given twice with two
    different values is a usage error naming both (exit 2)."""
    parser: argparse.ArgumentParser = args.command_parser
    if args.command in ("eval", "plan"):
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
    elif args.command == "replay":
        _merge(parser, args, "policies", "POLICIES", "--policies", required=True)


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


def workers(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"must be a whole number 1..64, not {text!r}")
    return int(text)


def count(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"must be a whole number 0..1000, not {text!r}")
    return int(text)


def score(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1000:  # (NaN fails too)
        raise argparse.ArgumentTypeError(f"must be a number 0..1000, not {text!r}")
    return value


def regex(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"not a regular expression: {exc}") from None


def add_replay_parser(sub: Any) -> None:
    replay = sub.add_parser(
        "replay",
        help="decide a decision log's requests again with other policies: what would change",
        usage="zerotrust replay [-h] POLICIES --log LOG [--examples N] "
        "[--format {text,json}] [--exit-zero]",
        description="Decide every request of a decision log again, at its logged time and "
        "with its logged behaviour features, and report the decisions that would change. "
        "Exit 0 no change, 1 changes, 2 bad input (policies, log, or nothing to replay).",
    )
    path_argument(
        replay.add_argument("policies", nargs="?", metavar="POLICIES", help="the new policies")
    )
    path_argument(
        replay.add_argument(
            "--policies", dest="policies_flag", metavar="POLICIES", help="the same as POLICIES"
        )
    )
    path_argument(
        replay.add_argument(
            "--log", required=True, help="decision log (JSON lines, gzip read too; - for stdin)"
        )
    )
    replay.add_argument(
        "--examples",
        type=count,
        default=10,
        metavar="N",
        help="changed decisions listed (default 10)",
    )
    replay.add_argument(
        "--format", choices=("text", "json"), default="text", help="text (default) or JSON"
    )
    replay.add_argument(
        "--exit-zero", action="store_true", help="exit 0 when decisions change (report only)"
    )


def actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """Every argument of the parser and its subcommands."""
    found = []
    for action in parser._actions:
        found.append(action)
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                found.extend(actions(command))
    return found
