"""OpenTelemetry tracing for the server: one span per decision, in the caller's trace.

Each API request is a ``zerotrust.<endpoint>`` server span: a child of the span already
current (an ASGI instrumentation's), else of the caller's ``traceparent`` /
``tracestate`` headers (W3C Trace Context, through OpenTelemetry's configured
propagator). Each decision in it, search candidates and batch items included, is one
``zerotrust.decision`` span below it, with the decision id, effect, policy revision and
matched rules as attributes. Spans go to the tracer provider given, else to
OpenTelemetry's global one (which ``opentelemetry-instrument`` or the application sets
up); only the API package is needed here (the ``otel`` extra).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from zerotrust import __version__
from zerotrust.decision import Decision

__all__ = ["SPAN_NAME", "Tracing"]

#: The name of the span each decision makes.
SPAN_NAME = "zerotrust.decision"


class Tracing:
    """Makes the spans; ``tracer_provider`` an OpenTelemetry ``TracerProvider``, or
    None for the global one. Raises ``ImportError`` without ``opentelemetry-api``."""

    def __init__(self, tracer_provider: Any | None = None) -> None:
        from opentelemetry import context, propagate, trace

        self._context = context
        self._propagate = propagate
        self._trace = trace
        self._tracer = trace.get_tracer("zerotrust", __version__, tracer_provider=tracer_provider)

    @contextlib.contextmanager
    def request(self, headers: Mapping[str, str], endpoint: str) -> Iterator[Any]:
        """The request's span; yields the context its decisions are made in."""
        current = self._context.get_current()
        active = self._trace.get_current_span(current).get_span_context().is_valid
        parent = current if active else self._propagate.extract(headers)
        with self._tracer.start_as_current_span(
            f"zerotrust.{endpoint}",
            context=parent,
            kind=self._trace.SpanKind.SERVER,
            end_on_exit=True,
        ):
            yield self._context.get_current()

    @contextlib.contextmanager
    def within(self, parent: Any) -> Iterator[None]:
        """Make ``parent`` current in this thread (decisions may run in a worker)."""
        token = self._context.attach(parent)
        try:
            yield
        finally:
            self._context.detach(token)

    @contextlib.contextmanager
    def decision(self, meta: Mapping[str, Any]) -> Iterator[Any]:
        """A span around one decision; :meth:`record` its outcome on it."""
        attributes = {
            f"zerotrust.{key}": value
            for key, value in meta.items()
            if key in ("endpoint", "request_id", "item") and isinstance(value, str | int)
        }
        with self._tracer.start_as_current_span(SPAN_NAME, attributes=attributes) as span:
            yield span

    def record(self, span: Any, decision: Decision | None, refusal: str | None = None) -> None:
        """The decision's id, effect, policy revision and matched rules; or the refusal
        code of a request whose credentials did not verify."""
        if decision is None:
            span.set_attribute("zerotrust.refusal", refusal or "refused")
            return
        span.set_attributes(
            {
                "zerotrust.decision_id": decision.decision_id,
                "zerotrust.effect": decision.effect.value,
                "zerotrust.policy_revision": decision.policy_revision,
                "zerotrust.matched_rules": [r.rule for r in decision.reasons if r.rule],
            }
        )
