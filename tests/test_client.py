"""zerotrust.client against a real ``zerotrust serve`` app (uvicorn on 127.0.0.1): every
AuthZEN interop case through the client, sync and async, and a zerotrust decision that
comes back whole (effect, reasons, obligations, step-up, risk, ids)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_server_http import INTEROP, SECRET, LiveServer, load

from zerotrust import AccessRequest, Effect, PolicyDecisionPoint, StepUp
from zerotrust.client import (
    AsyncAuthZENClient,
    AuthZENClient,
    PDPMetadata,
    PDPRequestError,
    PDPUnavailableError,
)

ROOT = Path(__file__).resolve().parents[1]

if not INTEROP.is_dir():
    pytest.skip(f"AuthZEN interop data not found at {INTEROP}", allow_module_level=True)

TODO = load(INTEROP / "authzen-todo-backend" / "test" / "decisions-authorization-api-1_0-02.json")
GATEWAY = load(INTEROP / "authzen-api-gateways" / "test-harness" / "test" / "decisions.json")
SEARCH_DEMO = [
    (kind, case)
    for kind in ("subject", "resource", "action")
    for case in load(INTEROP / "authzen-search-demo" / "test" / kind / "results.json")["evaluation"]
]

DOCS_POLICY = """
policy: docs
target: {resources: [doc]}
rules:
  - id: read-masked
    effect: allow
    when: "action.name == 'read'"
    reason: readers see the document without the SSN
    obligations:
      - {type: mask, fields: [ssn]}
  - id: write-allowed
    effect: allow
    when: "action.name == 'write'"
  - id: write-needs-mfa
    effect: step_up
    when: "action.name == 'write' && !('mfa' in subject.properties.amr)"
    step_up: {acr_values: ["urn:example:loa:2"], max_age: 300}
  - id: view-from-managed-device
    effect: allow
    when: "action.name == 'view' && device.managed == true && context.ip == '10.0.0.1'"
"""


@pytest.fixture(scope="module")
def servers() -> Iterator[Callable[[str], str]]:
    """The URL of a live server per example directory (or ``docs``), started on demand."""
    started: dict[str, LiveServer] = {}

    def url(example: str) -> str:
        if example not in started:
            started[example] = LiveServer(ROOT / "examples" / example)
            started[example].start()
        return started[example].url

    try:
        yield url
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("docs-policies")
    (root / "docs.yaml").write_text(DOCS_POLICY)
    server = LiveServer(root)
    server.start()
    try:
        yield server.url, root
    finally:
        server.stop()


@contextlib.contextmanager
def client(url: str, **options: Any) -> Iterator[AuthZENClient]:
    with AuthZENClient(url, token=SECRET, **options) as c:
        yield c


@pytest.fixture(scope="module")
def todo(servers: Callable[[str], str]) -> Iterator[AuthZENClient]:
    with client(servers("authzen-todo")) as c:
        yield c


def test_metadata_names_every_endpoint(todo: AuthZENClient) -> None:
    base = todo.base_url
    assert todo.metadata() == PDPMetadata(
        policy_decision_point=base,
        access_evaluation_endpoint=base + "/access/v1/evaluation",
        access_evaluations_endpoint=base + "/access/v1/evaluations",
        search_subject_endpoint=base + "/access/v1/search/subject",
        search_resource_endpoint=base + "/access/v1/search/resource",
        search_action_endpoint=base + "/access/v1/search/action",
    )


@pytest.mark.parametrize("case", TODO["evaluation"])
def test_todo_evaluation(todo: AuthZENClient, case: Any) -> None:
    decision = todo.evaluation(case["request"])
    assert decision.allowed is case["expected"]
    assert decision.effect is (Effect.ALLOW if case["expected"] else Effect.DENY)
    assert decision.decision_id and decision.policy_revision.startswith("sha256:")


@pytest.mark.parametrize("case", TODO["evaluations"])
def test_todo_evaluations(todo: AuthZENClient, case: Any) -> None:
    request = dict(case["request"])
    items = request.pop("evaluations")
    semantic = request.pop("options", {}).get("evaluations_semantic", "execute_all")
    decisions = todo.evaluations(items, **request, semantic=semantic)
    assert [{"decision": d.allowed} for d in decisions] == case["expected"]


@pytest.mark.parametrize("case", GATEWAY["evaluation"])
def test_gateway_evaluation(servers: Callable[[str], str], case: Any) -> None:
    with client(servers("authzen-gateway")) as c:
        assert c.evaluation(case["request"]).allowed is case["expected"]


@pytest.mark.parametrize(("kind", "case"), SEARCH_DEMO)
def test_search_demo_one_page(servers: Callable[[str], str], kind: str, case: Any) -> None:
    with client(servers("authzen-search")) as c:
        page = c.search_page(kind, case["request"])
    assert {"results": list(page.results)} == case["expected"]
    assert page.next_token == ""


@pytest.mark.parametrize(("kind", "case"), SEARCH_DEMO)
def test_search_demo_page_by_page(servers: Callable[[str], str], kind: str, case: Any) -> None:
    """With one result a page, the iterator walks every page and finds the same results."""
    with client(servers("authzen-search")) as c:
        assert list(c.search(kind, case["request"], limit=1)) == case["expected"]["results"]


def test_search_pages_carry_the_next_token(servers: Callable[[str], str]) -> None:
    request = {
        "subject": {"type": "user", "id": "alice"},
        "resource": {"type": "record", "id": "101"},
    }
    with client(servers("authzen-search")) as c:
        first = c.search_page("action", request, limit=2)
        assert (len(first.results), first.count) == (2, 2) and first.next_token
        second = c.search_page("action", request, limit=2, token=first.next_token)
    assert [r["name"] for r in first.results + second.results] == ["view", "edit", "delete"]
    assert second.next_token == ""


def test_async_client_runs_the_interop_cases(servers: Callable[[str], str]) -> None:
    async def run() -> None:
        async with AsyncAuthZENClient(servers("authzen-todo"), token=SECRET) as c:
            for case in TODO["evaluation"]:
                assert (await c.evaluation(case["request"])).allowed is case["expected"]
            for case in TODO["evaluations"]:
                request = dict(case["request"])
                items = request.pop("evaluations")
                decisions = await c.evaluations(items, **request)
                assert [{"decision": d.allowed} for d in decisions] == case["expected"]
        async with AsyncAuthZENClient(servers("authzen-search"), token=SECRET) as c:
            for kind, case in SEARCH_DEMO:
                found = [r async for r in c.search(kind, case["request"], limit=2)]
                assert found == case["expected"]["results"]
                page = await c.search_page(kind, case["request"])
                assert list(page.results) == case["expected"]["results"]

    asyncio.run(run())


def request(action: str, **over: Any) -> AccessRequest:
    data: dict[str, Any] = {
        "subject": {"type": "user", "id": "ann", "properties": {"amr": ["pwd"]}},
        "action": {"name": action},
        "resource": {"type": "doc", "id": "d-1", "properties": {"ssn": "123"}},
    }
    data.update(over)
    return AccessRequest.from_mapping(data)


@pytest.mark.parametrize(
    "req",
    [
        request("read"),
        request("write"),
        request("write", subject={"id": "ann", "properties": {"amr": ["pwd", "mfa"]}}),
        request("view", device={"managed": True}, context={"ip": "10.0.0.1"}),
        request("view", device={"managed": False}, context={"ip": "10.0.0.1"}),
        request("delete"),
    ],
    ids=["obligation", "step-up", "mfa", "device", "unmanaged", "deny"],
)
def test_a_remote_decision_is_the_local_one(
    docs_server: tuple[str, Path], req: AccessRequest
) -> None:
    """evaluate() sends the AccessRequest as the server reads it back (device included),
    and the Decision that comes back is the one a local PDP makes, field by field."""
    url, policies = docs_server
    local = PolicyDecisionPoint.from_path(policies).evaluate(req)
    with client(url) as c:
        remote = c.evaluate(req, extra={"not": "sent"})
        remote_async = asyncio.run(c.evaluate_async(req))
    for decision in (remote, remote_async):
        assert decision.effect is local.effect
        assert decision.reasons == local.reasons
        assert decision.obligations == tuple(type(o)(o.type, o.params) for o in local.obligations)
        assert decision.step_up == local.step_up
        assert decision.risk == local.risk
        assert decision.errors == local.errors
        assert decision.policy_revision == local.policy_revision
        assert decision.decision_id


def test_step_up_and_obligations_are_typed(docs_server: tuple[str, Path]) -> None:
    url, _ = docs_server
    with client(url) as c:
        step = c.evaluate(request("write"))
        read = c.evaluate(request("read"))
    assert step.effect is Effect.STEP_UP and not step.allowed
    assert step.step_up == StepUp(acr_values=("urn:example:loa:2",), max_age=300)
    assert read.allowed and [(o.type, dict(o.params)) for o in read.obligations] == [
        ("mask", {"fields": ["ssn"]})
    ]


def test_the_async_client_is_the_same_pdp(docs_server: tuple[str, Path]) -> None:
    url, _ = docs_server

    async def run() -> list[Effect]:
        async with AsyncAuthZENClient(url, token=SECRET) as c:
            single = [
                (await c.evaluate_async(request(a))).effect for a in ("read", "write", "delete")
            ]
            batch = await c.evaluations([request("read"), request("write"), request("delete")])
            assert [d.effect for d in batch] == single
            return single

    assert asyncio.run(run()) == [Effect.ALLOW, Effect.STEP_UP, Effect.DENY]


@pytest.mark.parametrize(
    ("semantic", "expected"),
    [
        ("execute_all", [Effect.ALLOW, Effect.DENY, Effect.ALLOW]),
        ("deny_on_first_deny", [Effect.ALLOW, Effect.DENY]),
        ("permit_on_first_permit", [Effect.ALLOW]),
    ],
)
def test_batch_semantics(
    docs_server: tuple[str, Path], semantic: str, expected: list[Effect]
) -> None:
    url, _ = docs_server
    items = [request("read"), request("delete"), request("read")]
    with client(url) as c:
        assert [d.effect for d in c.evaluations(items, semantic=semantic)] == expected


def test_an_empty_batch_asks_nothing(docs_server: tuple[str, Path]) -> None:
    with client(docs_server[0], retries=0) as c:
        assert c.evaluations([]) == []


def test_a_wrong_pep_token_is_a_refusal(docs_server: tuple[str, Path]) -> None:
    with (
        AuthZENClient(docs_server[0], token="wrong-secret-0123456789") as c,
        pytest.raises(PDPRequestError) as raised,
    ):
        c.evaluate(request("read"))
    assert raised.value.status == 401


def test_an_invalid_item_is_a_deny_and_a_bad_request_a_refusal(
    docs_server: tuple[str, Path],
) -> None:
    with client(docs_server[0]) as c:
        first, second = c.evaluations([{"action": {"name": "read"}}, request("read")])
        assert (first.effect, second.effect) == (Effect.DENY, Effect.ALLOW)
        with pytest.raises(PDPRequestError) as raised:
            c.evaluation({"subject": {"type": "user", "id": "ann"}})
    assert raised.value.status == 400


def test_without_discovery_the_default_paths_are_used(docs_server: tuple[str, Path]) -> None:
    with client(docs_server[0], discover=False) as c:
        assert c.evaluate(request("read")).allowed


@contextlib.contextmanager
def zerotrust_serve(tmp: Path, port: int) -> Iterator[str]:
    """The real ``zerotrust serve`` command, a PEP secret in its config, on ``port``."""
    config = tmp / "pdp.yaml"
    config.write_text(f'bearer_secrets: ["{SECRET}"]\n')
    command = [sys.executable, "-m", "zerotrust", "serve", "--policies"]
    command += [str(ROOT / "examples" / "authzen-todo"), "--config", str(config)]
    command += ["--port", str(port)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("zerotrust serve did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_against_the_zerotrust_serve_command(tmp_path: Path) -> None:
    """The command as operators run it: every Todo case through one client, which fails
    closed while the server is down and carries on once it is back."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with AuthZENClient(f"http://127.0.0.1:{port}", token=SECRET, retries=1, backoff=0.01) as c:
        with zerotrust_serve(tmp_path, port):
            for case in TODO["evaluation"]:
                assert c.evaluation(case["request"]).allowed is case["expected"]
        with pytest.raises(PDPUnavailableError):
            c.evaluation(TODO["evaluation"][0]["request"])
        with zerotrust_serve(tmp_path, port):
            for case in TODO["evaluations"]:
                request = dict(case["request"])
                items = request.pop("evaluations")
                decisions = c.evaluations(items, **request)
                assert [{"decision": d.allowed} for d in decisions] == case["expected"]
