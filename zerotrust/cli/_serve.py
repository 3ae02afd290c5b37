"""serve: the AuthZEN decision service (its modules load only for this command)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from zerotrust.cli._common import EXIT_OK, EXIT_USAGE
from zerotrust.errors import PolicyError, ZeroTrustError

__all__ = ["serve"]


def serve(args: argparse.Namespace) -> int:
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
