"""Policy reloads while serving: on file changes (``--watch``) and on ``SIGHUP``.

Watching is watchfiles' (Rust ``notify`` underneath; polling where the OS offers no
events): a burst of writes (an editor's save, ``git checkout``, a ConfigMap swap)
comes as one change after ``debounce`` milliseconds of quiet. Each reload loads the
whole set again and swaps it in at once (:meth:`PolicyDecisionPoint.reload`): a
decision runs on one whole revision, the old or the new. A set that does not load
(a half-written file, a broken condition) leaves the last good one in force; the
failure is logged at ERROR with its diagnostics and counted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs

from zerotrust.engine import PolicyDecisionPoint
from zerotrust.errors import ZeroTrustError
from zerotrust.server.config import ServerConfigError

__all__ = ["DEFAULT_DEBOUNCE_MS", "ReloadResult", "Reloader"]

_log = logging.getLogger("zerotrust.server")

#: Quiet time after the last change before reloading, in milliseconds.
DEFAULT_DEBOUNCE_MS = 500


@attrs.frozen
class ReloadResult:
    """One reload: ``ok`` with the ``revision`` in force after it (the new one, or on
    failure the last good one), ``trigger`` (``watch``, ``signal``, ...), and the error
    message when it failed."""

    ok: bool
    revision: str
    trigger: str
    error: str | None = None


class Reloader:
    """Reloads ``pdp`` when asked (:meth:`reload`, e.g. on ``SIGHUP``) and, once
    :meth:`start`-ed, whenever a file under ``paths`` changes.

    ``on_result`` hears of every reload (the server counts them in its metrics).
    Reloads never run two at once; one asked for during another waits for it.
    """

    def __init__(
        self,
        pdp: PolicyDecisionPoint,
        paths: Iterable[str | Path],
        *,
        on_result: Callable[[ReloadResult], None] | None = None,
        debounce_ms: int = DEFAULT_DEBOUNCE_MS,
    ) -> None:
        if isinstance(debounce_ms, bool) or not isinstance(debounce_ms, int) or debounce_ms < 0:
            raise ServerConfigError(
                [f"debounce_ms must be a whole number of milliseconds >= 0, not {debounce_ms!r}"]
            )
        self._pdp = pdp
        self._paths = tuple(Path(p) for p in paths)
        self._on_result = on_result
        self._debounce = debounce_ms
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def reload(self, trigger: str) -> ReloadResult:
        """Load the policies again now; the last good set stays on any error."""
        with self._lock:
            try:
                revision = self._pdp.reload()
            except (ZeroTrustError, OSError) as exc:
                # PolicyError carries every diagnostic; OSError: a file gone mid-reload.
                result = ReloadResult(False, self._pdp.revision, trigger, str(exc))
                _log.error(
                    "policy reload (%s) failed; revision %s stays in force: %s",
                    trigger,
                    result.revision,
                    exc,
                )
            else:
                result = ReloadResult(True, revision, trigger)
                _log.info("policies reloaded (%s): revision %s", trigger, revision)
        if self._on_result is not None:
            self._on_result(result)
        return result

    def start(self) -> None:
        """Watch ``paths`` in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._watch, name="zerotrust-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _watch(self) -> None:
        import watchfiles  # the server extra's; imported where it is used

        # A watch follows the directory it began on: one deleted and made again (a
        # deployment's ``rm -rf`` and copy, a remount) would never be seen again. So the
        # paths are compared with what the watch began on about every second, and a
        # replaced one is reloaded and watched again.
        while not self._stop.is_set():
            began = self._identity()
            if None in began:  # gone for now: look again in a second
                self._stop.wait(1.0)
                if self._identity() != began:
                    self.reload("watch")
                continue
            try:
                for changes in watchfiles.watch(
                    *self._paths,
                    debounce=self._debounce,
                    stop_event=self._stop,
                    raise_interrupt=False,
                    rust_timeout=1000,
                    yield_on_timeout=True,
                ):
                    if changes:
                        names = sorted({Path(path).name for _, path in changes})
                        _log.info("policy files changed: %s", ", ".join(names[:5]))
                        self.reload("watch")
                    if self._identity() != began:
                        _log.info("policy path replaced: watching the new one")
                        if not changes:  # else just reloaded
                            self.reload("watch")
                        break
                else:
                    return  # stopped
            except (FileNotFoundError, RuntimeError) as exc:  # removed as the watch began
                _log.warning("cannot watch the policies (%s): trying again", exc)
                self._stop.wait(1.0)

    def _identity(self) -> tuple[tuple[int, int] | None, ...]:
        """Each path's device and inode (None: absent)."""
        found: list[tuple[int, int] | None] = []
        for path in self._paths:
            try:
                stat = path.stat()
            except OSError:
                found.append(None)
            else:
                found.append((stat.st_dev, stat.st_ino))
        return tuple(found)
