"""The command line: ``zerotrust validate | test | eval | plan | lint | replay | demo |
serve | report | schema | completion``; the only package that prints.

One path convention: a command's main input is its first positional argument
(``validate POLICIES``, ``test POLICIES``, ``eval POLICIES [REQUEST]``, ``plan POLICIES
[REQUEST]``, ``demo [POLICIES]``, ``report LOG``); the flags that named it before
(``--policies``, ``--log``) stay as aliases, so scripts written for them keep working.
``serve`` is the exception: its ``--policies`` is a configuration key, as settable from
a file or the environment.

Exit codes: 0 success (``eval``: allow), 1 invalid policies, failed tests or a log
without decision records, 2 usage error, invalid request, a server that cannot start,
a file that cannot be read or written, or a plan that ``plan --sql`` cannot write as
SQL, 3 ``eval`` denied, 4 ``eval`` step-up required.
``replay`` and ``lint`` differ: 0 no change (no finding), 1 decisions would change
(findings), 2 bad input (invalid policies included, so that 1 always means changes or
findings).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from zerotrust.cli._args import build_parser, resolve_paths
from zerotrust.cli._common import (
    EXIT_DENY,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_STEP_UP,
    EXIT_USAGE,
    print_diagnostics,
)
from zerotrust.errors import PolicyError

__all__ = ["EXIT_DENY", "EXIT_INVALID", "EXIT_OK", "EXIT_STEP_UP", "EXIT_USAGE", "main"]


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
        build_parser().print_help(sys.stderr)
        return EXIT_USAGE
    args = build_parser(full_serve=argv[:1] == ["serve"]).parse_args(argv)
    resolve_paths(args)
    try:
        if args.command == "completion":
            from zerotrust.cli._policies import completion

            return completion(args.shell, sys.stdout)
        if args.command == "schema":
            from zerotrust.policy.schemas import schema_text

            sys.stdout.write(schema_text(args.kind))
            return EXIT_OK
        if args.command == "validate":
            from zerotrust.cli._policies import validate

            return validate(args.path, sys.stdout)
        if args.command == "test":
            from zerotrust.cli._policies import run_tests_command

            return run_tests_command(
                args.path, args.verbose, args.format, args.run, args.coverage, sys.stdout
            )
        if args.command == "demo":
            from zerotrust.cli._demo import demo

            return demo(args.policies, args.scenario, args.log, sys.stdout, sys.stderr)
        if args.command == "report":
            from zerotrust.cli._demo import report

            return report(args, sys.stdout)
        if args.command == "serve":
            from zerotrust.cli._serve import serve

            return serve(args)
        if args.command == "lint":
            from zerotrust.cli._lint import run as lint

            return lint(args, sys.stdout, sys.stderr)
        if args.command == "plan":
            from zerotrust.cli._plan import run as plan

            return plan(args, sys.stdout)
        if args.command == "replay":
            from zerotrust.cli._policies import replay_command

            return replay_command(args, sys.stdout)
        from zerotrust.cli._policies import evaluate

        return evaluate(args, sys.stdout)
    except PolicyError as exc:
        print_diagnostics(exc, sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into e.g. `head`: stop quietly, as Unix tools do.
        sys.stderr.close()
        return EXIT_OK
