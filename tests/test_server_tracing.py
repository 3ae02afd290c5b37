"""OpenTelemetry: one span per decision, a child of the caller's traceparent, with the
decision's id, effect, policy revision and matched rules; recorded by the real SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient
from test_server_app import AUTH, POLICIES, SECRET, req

from zerotrust import PolicyDecisionPoint
from zerotrust.server import ServerConfig, create_app
from zerotrust.server.tracing import SPAN_NAME, Tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@pytest.fixture
def spans() -> Iterator[tuple[TestClient, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    pdp = PolicyDecisionPoint.from_texts(POLICIES)
    app = create_app(pdp, config=ServerConfig(bearer_secrets=(SECRET,)), tracing=Tracing(provider))
    with TestClient(app) as client:
        yield client, exporter
    provider.shutdown()


def test_a_decision_is_a_span_in_the_callers_trace(
    spans: tuple[TestClient, InMemorySpanExporter],
) -> None:
    client, exporter = spans
    r = client.post(
        "/access/v1/evaluation", json=req(), headers={**AUTH, "traceparent": TRACEPARENT}
    )
    context = r.json()["context"]
    span, request = exporter.get_finished_spans()
    assert span.name == SPAN_NAME and request.name == "zerotrust.evaluation"
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert request.parent is not None and f"{request.parent.span_id:016x}" == PARENT_ID
    assert span.parent is not None and span.parent.span_id == request.context.span_id
    attributes = dict(span.attributes or {})
    assert attributes["zerotrust.decision_id"] == context["decision_id"]
    assert attributes["zerotrust.effect"] == context["effect"]
    assert attributes["zerotrust.policy_revision"] == context["policy_revision"]
    assert list(attributes["zerotrust.matched_rules"]) == [
        reason["rule"] for reason in context["reasons"]
    ]
    assert attributes["zerotrust.endpoint"] == "evaluation"
    assert attributes["zerotrust.request_id"] == r.headers["x-request-id"]


def test_each_item_of_a_batch_is_its_own_span(
    spans: tuple[TestClient, InMemorySpanExporter],
) -> None:
    client, exporter = spans
    body = {"evaluations": [req(), req(subject={"type": "user", "id": "u-9"}), req()]}
    r = client.post("/access/v1/evaluations", json=body, headers=AUTH)
    answers = r.json()["evaluations"]
    *found, request = exporter.get_finished_spans()
    assert request.name == "zerotrust.evaluations" and request.parent is None
    assert [dict(s.attributes or {})["zerotrust.item"] for s in found] == [0, 1, 2]
    assert [dict(s.attributes or {})["zerotrust.decision_id"] for s in found] == [
        a["context"]["decision_id"] for a in answers
    ]
    # one request: one trace, each decision a child of the request's span
    assert {s.context.trace_id for s in found} == {request.context.trace_id}
    assert {s.parent.span_id for s in found if s.parent} == {request.context.span_id}


def test_without_a_traceparent_a_decision_starts_its_own_trace(
    spans: tuple[TestClient, InMemorySpanExporter],
) -> None:
    client, exporter = spans
    client.post("/access/v1/evaluation", json=req(), headers=AUTH)
    client.post("/access/v1/evaluation", json=req(), headers={**AUTH, "traceparent": "junk"})
    _, first, _, second = exporter.get_finished_spans()
    assert first.parent is None and second.parent is None  # the request spans
    assert first.context.trace_id != second.context.trace_id


def test_no_tracing_no_spans() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(
        PolicyDecisionPoint.from_texts(POLICIES), config=ServerConfig(bearer_secrets=(SECRET,))
    )
    with TestClient(app) as client:
        client.post("/access/v1/evaluation", json=req(), headers=AUTH)
    assert exporter.get_finished_spans() == ()


def test_a_span_already_current_is_the_parent_not_the_header() -> None:
    """Under an ASGI instrumentation, the request's span is its server span's child."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("instrumentation")
    inner = create_app(
        PolicyDecisionPoint.from_texts(POLICIES),
        config=ServerConfig(bearer_secrets=(SECRET,)),
        tracing=Tracing(provider),
    )

    async def instrumented(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        with tracer.start_as_current_span("POST /access/v1/evaluation"):
            await inner(scope, receive, send)

    with TestClient(instrumented) as client:
        client.post(
            "/access/v1/evaluation", json=req(), headers={**AUTH, "traceparent": TRACEPARENT}
        )
    by_name = {s.name: s for s in exporter.get_finished_spans()}
    decision, request = by_name[SPAN_NAME], by_name["zerotrust.evaluation"]
    outer = by_name["POST /access/v1/evaluation"]
    assert request.parent is not None and request.parent.span_id == outer.context.span_id
    assert decision.parent is not None and decision.parent.span_id == request.context.span_id
    provider.shutdown()


def test_the_docs_snippet_runs_and_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    page = (root / "docs" / "server.md").read_text()
    section = page.split("### Traces", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```python\n(.*?)```", section, re.S)
    monkeypatch.chdir(root)
    namespace: dict[str, Any] = {}
    exec(compile(block, "server.md ### Traces", "exec"), namespace)
    body = {
        "subject": {"type": "user", "id": "rick@the-citadel.com"},
        "action": {"name": "can_read_todos"},
        "resource": {"type": "todo", "id": "t-1"},
    }
    with TestClient(namespace["app"], client=("127.0.0.1", 5000)) as client:
        assert client.post("/access/v1/evaluation", json=body).status_code == 200
    namespace["provider"].shutdown()
