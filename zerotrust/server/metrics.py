"""The server's Prometheus metrics, through ``prometheus_client``.

One :class:`Metrics` per app, each with its own registry (no process-global state), so
several apps in one process count apart. Under ``zerotrust serve --workers N`` the
supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` before it starts the workers; each worker's
values then live in that directory, and ``/metrics``, whichever worker answers, adds up
every worker's counters and histograms (prometheus_client's multiprocess mode).

Counts the PDP and its behaviour store keep themselves (decision-log failures, store
round trips, the circuit breaker) are read by :meth:`Metrics.sample` after a request,
at most once a second, and before each scrape, and added to counters as increments: so
they add up across workers like any other counter, and a worker's figures are those of
its last request.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from zerotrust.engine import PolicyDecisionPoint

__all__ = [
    "CONTENT_TYPE",
    "LATENCY_BUCKETS",
    "MULTIPROCESS_ENV",
    "Metrics",
    "Sample",
    "multiprocess_dir",
    "sample_of",
]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: The text exposition format the scrape gets (Prometheus 0.0.4).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: prometheus_client's switch for multiprocess mode, read when it is first imported.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
_EFFECTS = ("allow", "deny", "step_up")
_BREAKER_STATES = ("closed", "open", "half_open")
#: Seconds between samples of the PDP's own counts while requests come in.
_SAMPLE_EVERY = 1.0


def multiprocess_dir() -> str | None:
    """The directory the workers share their values in, when running under workers."""
    return os.environ.get(MULTIPROCESS_ENV) or None


@attrs.frozen
class Sample:
    """What the PDP and its behaviour store have counted so far (each since it began).

    ``store``: the Redis store's counters (``round_trips``, ``failures``, ``rejected``,
    ``lost_outcomes``) and ``breaker`` (closed, open or half_open); empty for a store
    that keeps none (the memory store).
    """

    log_failures: int
    behavior_failures: int | None
    revision: str
    store: dict[str, Any] = attrs.Factory(dict)


class _Increments:
    """Turns running totals into counter increments (totals only grow)."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def step(self, name: str, total: int) -> int:
        before = self._seen.get(name, 0)
        self._seen[name] = total
        return max(total - before, 0)


class Metrics:
    """Decisions by effect and their latency, credential refusals by code, HTTP requests
    by endpoint and status and their latency, decision-log failures, behaviour-store
    round trips, failures and breaker state, and the policy revision in force."""

    def __init__(self, sample: Callable[[], Sample] | None = None) -> None:
        self._sample = sample
        self._lock = threading.Lock()
        self._increments = _Increments()
        self._sampled_at = 0.0
        self._revision: str | None = None
        self._breaker: str | None = None
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self.registry = registry = CollectorRegistry()
        decisions = Counter(
            "zerotrust_decisions",
            "Decisions made, by effect (search candidates included).",
            ["effect"],
            registry=registry,
        )
        self._by_effect = {effect: decisions.labels(effect) for effect in _EFFECTS}
        self._decision_seconds = Histogram(
            "zerotrust_decision_duration_seconds",
            "Time the PDP took to decide, identity verification included.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._identity_failures = Counter(
            "zerotrust_identity_failures",
            "Requests refused before evaluation: credentials missing or not verified, by code.",
            ["code"],
            registry=registry,
        )
        self._requests = Counter(
            "zerotrust_http_requests",
            "HTTP requests, by endpoint and status.",
            ["endpoint", "status"],
            registry=registry,
        )
        self._request_seconds = Histogram(
            "zerotrust_http_request_duration_seconds",
            "Time from request received to response ready, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._log_failures = Counter(
            "zerotrust_decision_log_failures",
            "Decisions the decision log failed to record.",
            registry=registry,
        )
        self._behavior_failures = Counter(
            "zerotrust_behavior_store_errors",
            "Behaviour store failures (decisions then saw behavior.available false).",
            registry=registry,
        )
        self._store = {
            name: Counter(f"zerotrust_behavior_store_{name}", text, registry=registry)
            for name, text in (
                ("round_trips", "Round trips to the Redis behaviour store."),
                ("failures", "Redis behaviour-store failures the circuit breaker counted."),
                ("rejected", "Calls the open circuit breaker answered without Redis."),
                ("lost_outcomes", "Deferred outcomes dropped: store down or keys unusable."),
            )
        }
        self._reloads = Counter(
            "zerotrust_policy_reloads",
            "Policy reloads (watch or SIGHUP), by result (ok, failed).",
            ["result"],
            registry=registry,
        )
        self._breaker_state = Gauge(
            "zerotrust_behavior_breaker_state",
            "The Redis store's circuit breaker: 1 for the state it is in.",
            ["state"],
            registry=registry,
            multiprocess_mode="liveall",
        )
        self._policy = Gauge(
            "zerotrust_policy_info",
            "The policy revision in force (1), per process under workers.",
            ["revision"],
            registry=registry,
            multiprocess_mode="liveall",
        )
        if multiprocess_dir() is None:
            ProcessCollector(registry=registry)

    def decision(self, effect: str, seconds: float | None = None) -> None:
        counter = self._by_effect.get(effect)
        (counter if counter is not None else self._by_effect["deny"]).inc()
        if seconds is not None:
            self._decision_seconds.observe(seconds)

    def identity_failure(self, code: str) -> None:
        """A request refused because its credentials were missing or did not verify."""
        self._identity_failures.labels(code).inc()

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        # The labelled children, looked up once: ``labels()`` costs more than ``inc()``.
        # Endpoints are the server's own few names, statuses the few it answers with.
        key = (endpoint, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self._requests.labels(endpoint, str(status)),
                self._request_seconds.labels(endpoint),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if self._sample is not None and time.monotonic() - self._sampled_at >= _SAMPLE_EVERY:
            self.sample()

    def reload(self, ok: bool) -> None:
        """A policy reload, done (``ok``) or refused, the last good set kept."""
        self._reloads.labels("ok" if ok else "failed").inc()

    def sample(self) -> None:
        """Bring the counts the PDP keeps itself into the metrics."""
        if self._sample is None:
            return
        found = self._sample()
        with self._lock:
            self._sampled_at = time.monotonic()
            step = self._increments.step
            self._log_failures.inc(step("log", found.log_failures))
            if found.behavior_failures is not None:
                self._behavior_failures.inc(step("behavior", found.behavior_failures))
            for name, counter in self._store.items():
                total = found.store.get(name)
                if isinstance(total, int):
                    counter.inc(step(name, total))
            breaker = found.store.get("breaker")
            if isinstance(breaker, str) and breaker != self._breaker:
                for state in _BREAKER_STATES:
                    self._breaker_state.labels(state).set(1 if state == breaker else 0)
                self._breaker = breaker
            if found.revision != self._revision:
                if self._revision is not None:
                    # Under workers a series cannot be removed (prometheus_client's
                    # multiprocess files keep it): the revision left is set to 0.
                    if multiprocess_dir() is None:
                        self._policy.remove(self._revision)
                    else:
                        self._policy.labels(self._revision).set(0)
                self._policy.labels(found.revision).set(1)
                self._revision = found.revision

    def render(self) -> bytes:
        """The text exposition of every worker's values (or this process's alone), with
        ``zerotrust_process_info`` naming the process that answered."""
        self.sample()
        shared = multiprocess_dir()
        if shared is None:
            registry = self.registry
            return generate_latest(registry) + _process_info()
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=shared)  # type: ignore[no-untyped-call]
        return generate_latest(registry) + _process_info()


def _process_info() -> bytes:
    """One gauge, written here: it describes this scrape's answer, not any worker's values."""
    family = GaugeMetricFamily(
        "zerotrust_process_info", "The process that answered.", labels=["pid"]
    )
    family.add_metric([str(os.getpid())], 1)
    registry = CollectorRegistry()
    registry.register(_Fixed(family))
    return generate_latest(registry)


class _Fixed:
    def __init__(self, family: GaugeMetricFamily) -> None:
        self._family = family

    def collect(self) -> Any:
        yield self._family


def sample_of(pdp: PolicyDecisionPoint) -> Sample:
    """The counts the PDP and its store keep; read defensively: a PDP without the
    ``behavior_failures`` count (a test double) simply omits that metric."""
    behavior = getattr(pdp, "behavior_failures", None)
    stats = getattr(getattr(pdp, "behavior_store", None), "stats", None)
    store: dict[str, Any] = {}
    if callable(stats):
        found = stats()
        store = {
            "round_trips": found.round_trips,
            "failures": found.failures,
            "rejected": found.rejected,
            "lost_outcomes": found.lost_outcomes,
            "breaker": str(getattr(found.breaker, "value", found.breaker)),
        }
    return Sample(
        log_failures=pdp.decision_log_failures,
        behavior_failures=behavior if isinstance(behavior, int) else None,
        revision=pdp.revision,
        store=store,
    )
