"""Load policy texts in a child process, so an input that crashes the interpreter (a
C library recursing until the stack runs out, memory running out) fails one test
instead of killing the test run.

The child loads each set in a thread with a small stack (512 KiB; macOS gives new
threads 512 KiB, musl 128 KiB), where a C recursion runs out first, and answers with
what happened: the policies loaded, or the diagnostics, or the exception that escaped.
The parent sees a crash as the child's exit status.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import zerotrust

__all__ = ["LoaderChild"]

STACK_BYTES = 512 * 1024


class LoaderChild:
    """A child process that loads ``{file name: text}`` sets, one per :meth:`load`."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None

    def _started(self) -> subprocess.Popen[str]:
        if self._process is None or self._process.poll() is not None:
            env = {**os.environ, "PYTHONPATH": str(Path(zerotrust.__file__).parents[1])}
            self._process = subprocess.Popen(
                [sys.executable, __file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=env,
            )
        return self._process

    def load(
        self,
        texts: dict[str, str],
        *,
        measure: bool = False,
        request: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """What loading ``texts`` did: ``{"outcome": "loaded" | "refused" | "escaped" |
        "crashed", ...}``; with ``measure``, also the peak of memory allocated while
        loading (``peak_bytes``); with ``request``, the ``effect`` a loaded set decides
        for it and whether its data can be written as UTF-8 JSON (``encodable``)."""
        process = self._started()
        assert process.stdin is not None and process.stdout is not None
        message = {"texts": texts, "measure": measure, "request": request}
        try:
            process.stdin.write(json.dumps(message) + "\n")
            process.stdin.flush()
            answer = process.stdout.readline()
        except BrokenPipeError:
            answer = ""
        if not answer:
            return {"outcome": "crashed", "status": process.wait()}
        result: dict[str, Any] = json.loads(answer)
        return result

    def close(self) -> None:
        if self._process is not None:
            if self._process.stdin is not None:
                self._process.stdin.close()
            self._process.wait()
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None


def _load(request: dict[str, Any]) -> dict[str, Any]:
    from zerotrust import PolicyDecisionPoint, PolicyError

    if request["measure"]:
        tracemalloc.start()
    started = time.perf_counter()
    result: dict[str, Any]
    try:
        pdp = PolicyDecisionPoint.from_texts(request["texts"], behavior=None)
        result = {
            "outcome": "loaded",
            "policies": [p.name for p in pdp.policies.policies],
            "data": sorted(pdp.policies.data),
            "revision": pdp.revision,
        }
        if request["request"] is not None:
            result["effect"] = pdp.evaluate(request["request"]).effect.value
            json.dumps(dict(pdp.policies.data)).encode("utf-8")
            result["encodable"] = True
    except PolicyError as exc:
        result = {
            "outcome": "refused",
            "diagnostics": [[d.file, d.line, d.column, d.message] for d in exc.diagnostics],
        }
    except BaseException as exc:  # the point is to report it
        result = {"outcome": "escaped", "error": f"{type(exc).__name__}: {exc}"[:500]}
    result["seconds"] = time.perf_counter() - started
    if request["measure"]:
        result["peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result


def _into(box: list[dict[str, Any]], request: dict[str, Any]) -> None:
    box.append(_load(request))


def _serve(requests: IO[str], answers: IO[str]) -> None:
    threading.stack_size(STACK_BYTES)
    for line in requests:
        box: list[dict[str, Any]] = []
        request = json.loads(line)
        worker = threading.Thread(target=_into, args=(box, request))
        worker.start()
        worker.join()
        answers.write(json.dumps(box[0]) + "\n")
        answers.flush()


if __name__ == "__main__":
    _serve(sys.stdin, sys.stdout)
