"""``zerotrust serve`` from its options: one process, or ``--workers N`` on one port.

Each worker is a process of its own (spawned, so nothing of the parent's state is
shared) that loads the policies and builds the app and server itself, and serves the
sockets the parent bound. On Linux each worker has its own socket of the same port
(``SO_REUSEPORT``, bound in :func:`~zerotrust.server.runner.listen_each`), so the
kernel spreads new connections across the workers; elsewhere they share one.

uvicorn's own supervisor (``workers=``) pickles a :class:`uvicorn.Config` and runs a
plain ``uvicorn.Server`` in each worker; this server is an app object with a
connection registry per process and TLS begun in the protocol, so :func:`supervise`
does the same few things itself: start the workers, start another when one dies
(a worker that dies at start-up before any serves stops them all: it would die again;
one killed while starting beside others that serve is started again), and stop
them all on SIGINT or SIGTERM. A worker whose parent is gone (even killed) stops too:
it waits on a pipe only the parent holds open.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import uvicorn
from prometheus_client.multiprocess import mark_process_dead

from zerotrust.audit import JsonLinesLog, LoggingLog, StdoutLog
from zerotrust.behavior.memory import MemoryBehaviorStore
from zerotrust.behavior.redis import RedisBehaviorStore
from zerotrust.engine import PolicyDecisionPoint
from zerotrust.server.app import create_app
from zerotrust.server.config import ServerConfig, ServerConfigError
from zerotrust.server.identity import build_identity
from zerotrust.server.metrics import MULTIPROCESS_ENV
from zerotrust.server.reload import Reloader
from zerotrust.server.runner import (
    Bound,
    build_config,
    logging_config,
    make_server,
    reuse_port_set,
)
from zerotrust.server.tracing import Tracing

__all__ = ["Built", "ServeOptions", "build", "configure", "run", "share_paging_secret", "supervise"]

_log = logging.getLogger("zerotrust.server")
#: How long a stopping worker gets (uvicorn's graceful shutdown is 10 s) before SIGKILL.
_STOP_SECONDS = 15.0
#: Exit status of a worker that could not start serving.
_STARTUP_FAILURE = 3


@attrs.frozen
class ServeOptions:
    """What ``zerotrust serve`` was asked for; picklable, so a worker builds from it.

    ``policies``, ``host``, ``entities`` and ``insecure_local`` win over the rest (as
    the keyword arguments of :func:`~zerotrust.server.runner.build_config`);
    ``flags`` are the other command-line values by key path (``identity.issuer``);
    ``environ`` the ``ZEROTRUST_...`` variables the parent saw (None: this process's),
    so every worker reads the same; ``paging_secret`` the key the supervisor made for
    its workers when the configuration has none (handed over in memory, never a file).
    """

    policies: str | None = None
    host: str | None = None
    config_file: str | None = None
    entities: str | None = None
    insecure_local: bool = False
    flags: tuple[tuple[str, Any], ...] = ()
    environ: tuple[tuple[str, str], ...] | None = attrs.field(default=None, repr=False)
    paging_secret: str | None = attrs.field(default=None, repr=False)


@attrs.frozen
class Built:
    """A server ready to run, its PDP, the decision log to close after, and what
    reloads its policies (on ``SIGHUP``, and on file changes with ``watch``)."""

    server: uvicorn.Server
    pdp: PolicyDecisionPoint
    log: JsonLinesLog | LoggingLog | StdoutLog | None
    reloader: Reloader | None = None
    watch: bool = False


def configure(options: ServeOptions) -> ServerConfig:
    """The configuration ``options`` give: file, environment, flags (every problem)."""
    flags = dict(options.flags)
    if options.policies is not None:
        flags["policies"] = options.policies
    return build_config(
        options.config_file,
        host=options.host,
        entities=options.entities,
        insecure_local=options.insecure_local,
        environ=dict(options.environ) if options.environ is not None else None,
        flags=flags,
    )


def share_paging_secret(options: ServeOptions, config: ServerConfig) -> ServeOptions:
    """``options`` with a paging secret for every worker, made here when ``config`` has
    none (:func:`build` warns that pages will not cross replicas)."""
    if config.paging_secret is not None or options.paging_secret is not None:
        return options
    return attrs.evolve(options, paging_secret=secrets.token_urlsafe(32))


def build(
    options: ServeOptions,
    on_serving: Callable[[], None] | None = None,
    *,
    config: ServerConfig | None = None,
) -> Built:
    """Config, identity, behaviour store, decision log, PDP, app and server: everything
    but the sockets; ``on_serving`` goes to :func:`~zerotrust.server.runner.make_server`;
    ``config``: the one :func:`configure` gave for ``options``, if already read. Without
    a configured paging secret, the one in ``options`` (made by the supervisor) is used,
    else one is made here and a warning logged once the server serves.

    Raises what each step raises (:class:`~zerotrust.errors.PolicyError`,
    :class:`~zerotrust.server.ServerConfigError`, ``DecisionLogError``, ...); the
    decision log is closed again if a later step fails.
    """
    config = configure(options) if config is None else config
    policies = config.policies
    if policies is None:
        raise ServerConfigError(
            ["policies: is required: --policies, ZEROTRUST_POLICIES or policies in the file"]
        )
    if config.paging_secret is None:
        if options.paging_secret is None:
            on_serving = _warning_first(on_serving)
        secret = options.paging_secret or secrets.token_urlsafe(32)
        config = config.model_copy(update={"paging_secret": secret})
    identity = build_identity(config.identity) if config.identity is not None else None
    tracing = _tracing(config)
    log = decision_log(config)
    try:
        behavior = config.behavior.behavior_config()
        url = config.behavior.redis_url
        store: Any = (
            MemoryBehaviorStore(config=behavior)
            if url is None
            else RedisBehaviorStore.from_url(url, config=behavior)
        )
        pdp = PolicyDecisionPoint.from_path(
            policies,
            decision_log=log,
            identity=identity,
            behavior=store,
            schema_validation=config.schema_validation,
        )
        # Decisions on the event loop only when nothing in them waits on the network
        # (nor a decision log that forces each line to disk).
        inline = identity is None and url is None and not config.decision_log_fsync
        app = create_app(
            pdp,
            config=config,
            decide_inline=inline,
            tracing=tracing,
            ready_needs_store=config.ready_needs_store,
        )
        server = make_server(
            app,
            config,
            log_config=logging_config(config.log_level, config.log_format),
            on_serving=on_serving,
        )
        reloader = Reloader(
            pdp,
            [policies],
            on_result=lambda result: app.state.metrics.reload(result.ok),
            debounce_ms=config.watch_debounce_ms,
        )
    except BaseException:
        if log is not None:
            log.close()
        raise
    return Built(server, pdp, log, reloader, config.watch)


def decision_log(config: ServerConfig) -> JsonLinesLog | LoggingLog | StdoutLog | None:
    """The decision log ``config`` names: a JSON-lines file, standard output (JSON lines,
    one ``write`` each), the ``zerotrust.decisions`` logger, or none."""
    redact, sink = config.decision_log_redact, config.decision_log_sink
    if sink == "logging":
        return LoggingLog(redact=redact)
    if sink == "stdout":
        return StdoutLog(redact=redact)
    if config.decision_log is None:
        return None
    return JsonLinesLog(config.decision_log, redact=redact, fsync=config.decision_log_fsync)


def _tracing(config: ServerConfig) -> Tracing | None:
    if not config.tracing:
        return None
    try:
        return Tracing()
    except ImportError as exc:
        raise ServerConfigError(
            [f"tracing: needs the otel extra ({exc}): pip install 'zerotrust[otel]'"]
        ) from None


def _paging_warning(whose: str) -> None:
    _log.warning(
        "no paging_secret configured: generated one for %s; a search page token from "
        "another replica will be refused (set paging_secret to share one)",
        whose,
    )


def _warning_first(on_serving: Callable[[], None] | None) -> Callable[[], None]:
    """``on_serving``, after the paging warning: logged once serving (logging is set up
    then, and a server that never starts has nothing to warn about)."""

    def serving() -> None:
        _paging_warning("this process")
        if on_serving is not None:
            on_serving()

    return serving


def run(built: Built, sockets: list[socket.socket]) -> None:
    """Serve until stopped; reload the policies on ``SIGHUP`` (and on file changes with
    ``watch``). What is loaded by now (policies, code) lives as long as the process:
    frozen out of the garbage collector's sight, a full collection no longer walks it
    (tens of milliseconds, during which no request is answered)."""
    reloader = built.reloader
    previous = None
    if reloader is not None:
        # Off the signal handler: a reload reads files and compiles, and must not run
        # inside whatever the main thread was doing.
        previous = signal.signal(
            signal.SIGHUP,
            lambda *_: threading.Thread(
                target=reloader.reload, args=("signal",), name="zerotrust-reload", daemon=True
            ).start(),
        )
        if built.watch:
            reloader.start()
    gc.collect()
    gc.freeze()
    try:
        built.server.run(sockets=sockets)
    finally:
        if reloader is not None:
            reloader.stop()
            signal.signal(signal.SIGHUP, previous if previous is not None else signal.SIG_DFL)


def supervise(options: ServeOptions, socket_sets: list[list[socket.socket]]) -> int:
    """Run one worker per socket set until SIGINT or SIGTERM; 0, or 1 if a worker
    could not start serving at start-up.

    A worker that exits later is replaced. A replacement that cannot start (the policy
    files were edited into an invalid state meanwhile, say) leaves the others serving
    the set they loaded: it is logged and tried again after 1, 2, 4 ... up to
    :data:`RETRY_MAX_SECONDS` seconds.

    The workers keep their metrics in a directory of their own that this sets up (as
    ``PROMETHEUS_MULTIPROC_DIR``, which spawned workers inherit) and removes at the end,
    so ``/metrics`` from any worker adds up all of them."""
    metrics_dir = tempfile.mkdtemp(prefix="zerotrust-metrics-")
    before = os.environ.get(MULTIPROCESS_ENV)
    os.environ[MULTIPROCESS_ENV] = metrics_dir
    try:
        return _supervise(options, socket_sets, metrics_dir)
    finally:
        if before is None:
            os.environ.pop(MULTIPROCESS_ENV, None)
        else:
            os.environ[MULTIPROCESS_ENV] = before
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _supervise(
    options: ServeOptions, socket_sets: list[list[socket.socket]], metrics_dir: str
) -> int:
    if options.paging_secret is not None:  # made by share_paging_secret
        _paging_warning("this server's workers")
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    workers: list[_Worker | None] = [_Worker(options, sockets) for sockets in socket_sets]

    def reload_all(*_: Any) -> None:
        """SIGHUP to the supervisor: every worker reloads its policies. One still
        starting gets it once it serves: before it handles SIGHUP, the signal's default
        action would end it."""
        for worker in workers:
            if worker is not None:
                worker.reload_pending = True
                worker.forward_reload()

    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, reload_all)
    retry: dict[int, tuple[float, float]] = {}  # index -> (when to start again, delay)
    closed: dict[int, Bound] = {}  # index -> where its sockets were, to listen again
    socket_sets = list(socket_sets)
    status = 0
    try:
        while not stop.is_set():
            waits: list[Any] = [w.process.sentinel for w in workers if w is not None]
            waits += [w.pipe for w in workers if w is not None and not w.ready]
            multiprocessing.connection.wait(waits, timeout=0.5)
            for index, worker in enumerate(workers):
                if worker is None:  # waiting to be started again
                    when, delay = retry[index]
                    if time.monotonic() < when or stop.is_set():
                        continue
                    if index in closed:  # listen again beside the others
                        try:
                            socket_sets[index] = reuse_port_set(closed[index])
                        except OSError as exc:
                            delay = min(RETRY_MAX_SECONDS, 2 * delay)
                            _log.error("cannot listen again (%s): trying in %g s", exc, delay)
                            retry[index] = (time.monotonic() + delay, delay)
                            continue
                        del closed[index]
                    workers[index] = _Worker(options, socket_sets[index], replacing=delay)
                    continue
                worker.poll()
                worker.forward_reload()
                if worker.process.is_alive() or stop.is_set():
                    continue
                code = worker.process.exitcode
                worker.close()
                # Its live gauges go with it (the helper carries no annotations).
                mark_process_dead(worker.pid, metrics_dir)  # type: ignore[no-untyped-call]
                if worker.ready:
                    _log.warning("worker [%s] exited (%s): starting another", worker.pid, code)
                    workers[index] = _Worker(options, worker.sockets, replacing=0.0)
                elif worker.replacing is None and not any(
                    w is not None and w.ready for w in workers
                ):  # at start-up, and nothing serves yet
                    _log.error("worker [%s] could not start (exit %s): stopping", worker.pid, code)
                    stop.set()
                    status = 1
                    break
                else:
                    # 1, 2, 4 ... (a worker killed while starting, the others serving: 1)
                    delay = min(RETRY_MAX_SECONDS, 2 * (worker.replacing or 0.0) or 1.0)
                    _log.error(
                        "worker [%s] could not start (exit %s): the others serve on; "
                        "trying again in %g s",
                        worker.pid,
                        code,
                        delay,
                    )
                    workers[index] = None
                    retry[index] = (time.monotonic() + delay, delay)
                    own = socket_sets[index]
                    if len(socket_sets) > 1 and all(
                        other is not own for i, other in enumerate(socket_sets) if i != index
                    ):
                        # Its own SO_REUSEPORT sockets: closed meanwhile, so the kernel
                        # sends new connections to the workers that serve (not to a
                        # backlog nobody accepts from).
                        closed[index] = [(s.family, s.proto, s.getsockname()) for s in own]
                        for sock in own:
                            sock.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_all([w for w in workers if w is not None])
    return status


#: The longest wait between two tries to start a replacement worker.
RETRY_MAX_SECONDS = 30.0


class _Worker:
    """One worker process, with the pipe it reports on and watches its parent by."""

    def __init__(
        self,
        options: ServeOptions,
        sockets: list[socket.socket],
        *,
        replacing: float | None = None,
    ) -> None:
        self.sockets = sockets
        # None at start-up; for a replacement, the wait before this try (0.0: the first)
        self.replacing = replacing
        self.pipe, child = multiprocessing.get_context("spawn").Pipe()
        self.process = multiprocessing.get_context("spawn").Process(
            target=_worker, args=(options, sockets, child), daemon=False
        )
        self.process.start()
        child.close()  # the worker holds the only other end now
        self.pid = self.process.pid
        self.ready = False
        self.reload_pending = False
        _log.info("started worker [%s]", self.pid)

    def forward_reload(self) -> None:
        """Send the reload asked for, once this worker serves (and handles SIGHUP)."""
        if self.reload_pending and self.ready and self.pid is not None:
            self.reload_pending = False
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGHUP)

    def poll(self) -> None:
        """Read the worker's report that it serves, if it has sent it."""
        with contextlib.suppress(EOFError, OSError):  # it exited
            while not self.ready and self.pipe.poll():
                self.ready = self.pipe.recv() == "serving"

    def close(self) -> None:
        self.pipe.close()
        self.process.join(0)


def _stop_all(workers: list[_Worker]) -> None:
    for worker in workers:
        if worker.process.is_alive():
            worker.process.terminate()  # SIGTERM: uvicorn's graceful shutdown
    deadline = time.monotonic() + _STOP_SECONDS
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            _log.warning("worker [%s] did not stop in time: killed", worker.pid)
            worker.process.kill()
            worker.process.join()
        worker.pipe.close()


def _worker(
    options: ServeOptions,
    sockets: list[socket.socket],
    pipe: multiprocessing.connection.Connection,
) -> None:
    """A worker process: build, report once serving, stop when the parent is gone."""
    # A SIGHUP (a reload) while starting must not end the worker: run() handles it.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        built = build(options, on_serving=lambda: pipe.send("serving"))
    except Exception:
        logging.getLogger("zerotrust.server").exception("worker could not start")
        raise SystemExit(_STARTUP_FAILURE) from None
    server = built.server

    def watch_parent() -> None:
        with contextlib.suppress(EOFError, OSError):
            pipe.recv()  # the parent sends nothing: this returns when it is gone
        server.should_exit = True

    threading.Thread(target=watch_parent, name="zerotrust-parent", daemon=True).start()
    try:
        run(built, sockets)
    finally:
        if built.log is not None:
            built.log.close()
