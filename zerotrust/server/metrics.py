"""Prometheus text exposition, written by hand: a few counters need no client library.

One :class:`Metrics` per app (no process-global registry), updated from the event
loop and from worker threads, hence the lock.
"""

from __future__ import annotations

import bisect
import threading

__all__ = ["LATENCY_BUCKETS", "Metrics"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_EFFECTS = ("allow", "deny", "step_up")


class Metrics:
    """Counts decisions by effect, credential refusals by code, requests by endpoint and
    status, and latency."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decisions = dict.fromkeys(_EFFECTS, 0)
        self._identity_failures: dict[str, int] = {}
        self._requests: dict[tuple[str, int], int] = {}
        self._latency: dict[str, list[int]] = {}
        self._latency_sum: dict[str, float] = {}
        self._latency_count: dict[str, int] = {}

    def decision(self, effect: str) -> None:
        with self._lock:
            self._decisions[effect] = self._decisions.get(effect, 0) + 1

    def identity_failure(self, code: str) -> None:
        """A request refused because its credentials were missing or did not verify."""
        with self._lock:
            self._identity_failures[code] = self._identity_failures.get(code, 0) + 1

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (endpoint, status)
            self._requests[key] = self._requests.get(key, 0) + 1
            buckets = self._latency.setdefault(endpoint, [0] * len(LATENCY_BUCKETS))
            index = bisect.bisect_left(LATENCY_BUCKETS, seconds)
            if index < len(buckets):
                buckets[index] += 1
            self._latency_sum[endpoint] = self._latency_sum.get(endpoint, 0.0) + seconds
            self._latency_count[endpoint] = self._latency_count.get(endpoint, 0) + 1

    def decisions(self, effect: str) -> int:
        with self._lock:
            return self._decisions.get(effect, 0)

    def render(
        self,
        *,
        log_failures: int,
        behavior_failures: int | None,
        revision: str,
        pid: int | None = None,
    ) -> str:
        """The text format (version 0.0.4); gauges owned by the PDP are passed in, and
        the process id: with ``--workers`` each process counts only what it served."""
        with self._lock:
            decisions = dict(self._decisions)
            refusals = dict(self._identity_failures)
            requests = dict(self._requests)
            latency = {k: list(v) for k, v in self._latency.items()}
            sums = dict(self._latency_sum)
            counts = dict(self._latency_count)
        lines: list[str] = []
        _family(lines, "zerotrust_decisions_total", "counter", "Decisions made, by effect.")
        for effect in sorted(decisions):
            lines.append(
                f'zerotrust_decisions_total{{effect="{_label(effect)}"}} {decisions[effect]}'
            )
        _family(
            lines,
            "zerotrust_identity_failures_total",
            "counter",
            "Requests refused before evaluation: credentials missing or not verified, by code.",
        )
        for code in sorted(refusals):
            lines.append(
                f'zerotrust_identity_failures_total{{code="{_label(code)}"}} {refusals[code]}'
            )
        _family(
            lines,
            "zerotrust_http_requests_total",
            "counter",
            "HTTP requests, by endpoint and status.",
        )
        for (endpoint, status), n in sorted(requests.items()):
            lines.append(
                f'zerotrust_http_requests_total{{endpoint="{_label(endpoint)}",'
                f'status="{status}"}} {n}'
            )
        _family(
            lines,
            "zerotrust_http_request_duration_seconds",
            "histogram",
            "Time from request received to response ready, by endpoint.",
        )
        for endpoint in sorted(latency):
            label = _label(endpoint)
            running = 0
            for bound, n in zip(LATENCY_BUCKETS, latency[endpoint], strict=True):
                running += n
                lines.append(
                    "zerotrust_http_request_duration_seconds_bucket"
                    f'{{endpoint="{label}",le="{bound}"}} {running}'
                )
            name = "zerotrust_http_request_duration_seconds"
            lines.append(f'{name}_bucket{{endpoint="{label}",le="+Inf"}} {counts[endpoint]}')
            lines.append(f'{name}_sum{{endpoint="{label}"}} {sums[endpoint]:.6f}')
            lines.append(f'{name}_count{{endpoint="{label}"}} {counts[endpoint]}')
        _family(
            lines,
            "zerotrust_decision_log_failures_total",
            "counter",
            "Decisions the decision log failed to record.",
        )
        lines.append(f"zerotrust_decision_log_failures_total {log_failures}")
        if behavior_failures is not None:
            _family(
                lines,
                "zerotrust_behavior_store_errors_total",
                "counter",
                "Behaviour store failures (decisions then saw behavior.available false).",
            )
            lines.append(f"zerotrust_behavior_store_errors_total {behavior_failures}")
        _family(lines, "zerotrust_policy_info", "gauge", "The policy revision in force.")
        lines.append(f'zerotrust_policy_info{{revision="{_label(revision)}"}} 1')
        if pid is not None:
            _family(lines, "zerotrust_process_info", "gauge", "The process that answered.")
            lines.append(f'zerotrust_process_info{{pid="{pid}"}} 1')
        return "\n".join(lines) + "\n"


def _family(lines: list[str], name: str, kind: str, help_text: str) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
