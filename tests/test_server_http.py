"""AuthZEN over real HTTP: uvicorn on 127.0.0.1, called with httpx.

The certification scenario (Basic, Batch, Search, Discovery, errors, X-Request-ID)
against examples/authzen-certification. The interop suites, which reuse the live
server helpers below, are in test_server_interop.py.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from zerotrust import PolicyDecisionPoint
from zerotrust.server import ServerConfig, create_app

ROOT = Path(__file__).resolve().parents[1]
INTEROP = ROOT.parent / "shared" / "conformance" / "authzen" / "interop"
SECRET = "http-test-secret-0123456789"


class LiveServer:
    """uvicorn in a thread on a socket bound to 127.0.0.1 by the test itself."""

    def __init__(self, policies: Path) -> None:
        pdp = PolicyDecisionPoint.from_path(policies)
        app = create_app(pdp, config=ServerConfig(bearer_secrets=(SECRET,)))
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
        # without it every response waits ~40 ms for a delayed ACK (Nagle).
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", http="h11", ws="none", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


@contextlib.contextmanager
def live_clients() -> Iterator[Callable[[str], httpx.Client]]:
    """A client per example directory, each talking to its own uvicorn; all stopped at exit."""
    servers: dict[str, LiveServer] = {}
    clients: dict[str, httpx.Client] = {}

    def client(example: str) -> httpx.Client:
        if example not in servers:
            servers[example] = LiveServer(ROOT / "examples" / example)
            servers[example].start()
            clients[example] = httpx.Client(
                base_url=servers[example].url,
                headers={"authorization": f"Bearer {SECRET}"},
                trust_env=False,  # never through a proxy: loopback only
                timeout=30,
            )
        return clients[example]

    try:
        yield client
    finally:
        for c in clients.values():
            c.close()
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="module")
def live() -> Iterator[Callable[[str], httpx.Client]]:
    with live_clients() as client:
        yield client


@pytest.fixture(scope="module")
def cert(live: Callable[[str], httpx.Client]) -> httpx.Client:
    return live("authzen-certification")


def load(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


ALICE = {"type": "user", "id": "alice"}
BOB = {"type": "user", "id": "bob"}
BOB_ADMIN = {"type": "user", "id": "bob", "properties": {"role": "admin"}}
RECORD_1 = {"type": "record", "id": "record-1"}
RECORD_2 = {"type": "record", "id": "record-2"}
ARCHIVED_2 = {"type": "record", "id": "record-2", "properties": {"status": "archived"}}
CONTEXT = {"time": "2025-06-27T18:03-07:00", "ip": "192.168.1.1"}


def ok(c: httpx.Client, path: str, body: Any) -> Any:
    r = c.post(path, json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return r.json()


def evaluation(subject: Any, action: Any, resource: Any, **extra: Any) -> dict[str, Any]:
    return {"subject": subject, "action": action, "resource": resource, **extra}


# --- Basic (C-2) ---------------------------------------------------------------------

BASIC = [
    ("2.2.1", evaluation(ALICE, {"name": "read"}, RECORD_1), True),
    ("2.2.2", evaluation(BOB, {"name": "write"}, RECORD_1), False),
    ("2.2.3", evaluation(ALICE, {"name": "read"}, RECORD_1, context=CONTEXT), True),
    ("2.2.4", evaluation(ALICE, {"name": "write"}, ARCHIVED_2), False),
    ("2.2.5", evaluation(BOB_ADMIN, {"name": "write"}, ARCHIVED_2), True),
    ("2.2.6", evaluation(ALICE, {"name": "delete", "properties": {"soft": True}}, RECORD_1), True),
    (
        "2.2.7",
        evaluation(ALICE, {"name": "delete", "properties": {"soft": False}}, RECORD_1),
        False,
    ),
    ("rule 2", evaluation(ALICE, {"name": "write"}, RECORD_1), True),
    ("rule 3", evaluation(BOB, {"name": "read"}, RECORD_1), True),
    (
        "2.2.8",
        evaluation(
            {**ALICE, "properties": {"department": "Sales", "role": "manager"}},
            {"name": "read", "properties": {"method": "GET"}},
            {**RECORD_1, "properties": {"status": "active", "owner": "bob"}},
        ),
        True,
    ),
    (
        "2.2.9",
        evaluation(ALICE, {"name": "read"}, RECORD_1, foo="bar", futureField={"nested": True}),
        True,
    ),
]


@pytest.mark.parametrize(("case", "body", "expected"), BASIC, ids=[b[0] for b in BASIC])
def test_basic_fixture_decisions(cert: httpx.Client, case: str, body: Any, expected: bool) -> None:
    result = ok(cert, "/access/v1/evaluation", body)
    assert result["decision"] is expected
    assert isinstance(result.get("context", {}), dict)


MISSING = [
    {"action": {"name": "read"}, "resource": RECORD_1},
    {"subject": ALICE, "resource": RECORD_1},
    {"subject": ALICE, "action": {"name": "read"}},
    evaluation({"id": "alice"}, {"name": "read"}, RECORD_1),
    evaluation({"type": "user"}, {"name": "read"}, RECORD_1),
    evaluation(ALICE, {}, RECORD_1),
    evaluation(ALICE, {"name": "read"}, {"id": "record-1"}),
    evaluation(ALICE, {"name": "read"}, {"type": "record"}),
    evaluation("alice", {"name": "read"}, RECORD_1),
    evaluation(ALICE, {"name": 123}, RECORD_1),
]


@pytest.mark.parametrize("body", MISSING)
def test_basic_missing_and_wrongly_typed_fields_are_400(cert: httpx.Client, body: Any) -> None:
    assert cert.post("/access/v1/evaluation", json=body).status_code == 400


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (json.dumps(BASIC[0][1]), "text/plain"),
        ('{"subject": {', "application/json"),
        ("", "application/json"),
    ],
    ids=["content-type", "malformed", "empty"],
)
def test_basic_transport_errors_are_400(
    cert: httpx.Client, content: str, content_type: str
) -> None:
    r = cert.post("/access/v1/evaluation", content=content, headers={"content-type": content_type})
    assert r.status_code == 400


def test_unauthenticated_pep_is_401(cert: httpx.Client) -> None:
    r = cert.post("/access/v1/evaluation", json=BASIC[0][1], headers={"authorization": "Bearer no"})
    assert r.status_code == 401
    assert "www-authenticate" in r.headers


def test_x_request_id_echo_and_idempotency(cert: httpx.Client) -> None:
    r = cert.post("/access/v1/evaluation", json=BASIC[0][1], headers={"x-request-id": "req-42"})
    assert r.headers["x-request-id"] == "req-42"
    assert cert.post("/access/v1/evaluation", json=BASIC[0][1]).status_code == 200
    decisions = {ok(cert, "/access/v1/evaluation", BASIC[1][1])["decision"] for _ in range(5)}
    assert decisions == {False}


# --- Batch (C-3) ---------------------------------------------------------------------

BATCH = [
    (
        "3.2.2",
        {
            "subject": BOB,
            "resource": RECORD_1,
            "evaluations": [{"action": {"name": "read"}}, {"action": {"name": "write"}}],
        },
        [True, False],
    ),
    (
        "3.2.3",
        {
            "subject": ALICE,
            "action": {"name": "write"},
            "evaluations": [
                {"resource": {**RECORD_1, "properties": {"status": "active"}}},
                {"resource": ARCHIVED_2},
            ],
        },
        [True, False],
    ),
    (
        "3.2.4",
        {
            "action": {"name": "write"},
            "resource": ARCHIVED_2,
            "evaluations": [{"subject": ALICE}, {"subject": BOB_ADMIN}],
        },
        [False, True],
    ),
    (
        "3.2.5",
        {
            "evaluations": [
                evaluation(ALICE, {"name": "read"}, RECORD_1),
                evaluation(BOB, {"name": "write"}, RECORD_1),
            ]
        },
        [True, False],
    ),
    (
        "3.2.7",
        {
            "subject": ALICE,
            "action": {"name": "write"},
            "resource": {**RECORD_1, "properties": {"status": "active"}},
            "evaluations": [{}, {"resource": ARCHIVED_2}],
        },
        [True, False],
    ),
    (
        "3.4.1",
        {
            "subject": ALICE,
            "action": {"name": "read"},
            "options": {"evaluations_semantic": "execute_all"},
            "evaluations": [{"resource": RECORD_1}, {}],
        },
        [True, False],
    ),
]


@pytest.mark.parametrize(("case", "body", "expected"), BATCH, ids=[b[0] for b in BATCH])
def test_batch_fixture_decisions(
    cert: httpx.Client, case: str, body: Any, expected: list[bool]
) -> None:
    result = ok(cert, "/access/v1/evaluations", body)
    assert [e["decision"] for e in result["evaluations"]] == expected
    assert all(isinstance(e.get("context", {}), dict) for e in result["evaluations"])


@pytest.mark.parametrize(
    "body",
    [
        {
            "subject": ALICE,
            "action": {"name": "read"},
            "evaluations": [{"resource": RECORD_1}, {"resource": RECORD_2}],
        },
        {
            "subject": ALICE,
            "action": {"name": "read"},
            "context": {"time": "2025-06-27T18:03-07:00"},
            "evaluations": [
                {"resource": RECORD_1},
                {
                    "resource": RECORD_2,
                    "context": {"time": "2025-06-27T19:00-07:00", "source": "batch-override"},
                },
            ],
        },
    ],
    ids=["3.2.1", "3.2.6"],
)
def test_batch_structure(cert: httpx.Client, body: Any) -> None:
    result = ok(cert, "/access/v1/evaluations", body)
    assert len(result["evaluations"]) == 2
    assert all(isinstance(e["decision"], bool) for e in result["evaluations"])


@pytest.mark.parametrize("evaluations", [None, []], ids=["3.4.2", "3.4.3"])
def test_batch_without_evaluations_is_a_single_evaluation(
    cert: httpx.Client, evaluations: Any
) -> None:
    body: dict[str, Any] = dict(BASIC[0][1])
    if evaluations is not None:
        body["evaluations"] = evaluations
    assert ok(cert, "/access/v1/evaluations", body)["decision"] is True


# --- Search (C-4) --------------------------------------------------------------------


def ids(result: Any) -> set[str]:
    return {r.get("id", r.get("name")) for r in result["results"]}


SEARCH = [
    (
        "4.2.1",
        "subject",
        {"subject": {"type": "user"}, "action": {"name": "read"}, "resource": RECORD_1},
        {"alice", "bob"},
    ),
    (
        "4.2.2",
        "subject",
        {
            "subject": {"type": "user"},
            "action": {"name": "read"},
            "resource": RECORD_1,
            "context": CONTEXT,
        },
        {"alice", "bob"},
    ),
    (
        "4.2.3",
        "subject",
        {"subject": ALICE, "action": {"name": "read"}, "resource": RECORD_1},
        {"alice", "bob"},
    ),
    (
        "4.2.4",
        "subject",
        {"subject": {"type": "user"}, "action": {"name": "write"}, "resource": ARCHIVED_2},
        {"bob"},
    ),
    (
        "4.3.1",
        "resource",
        {"subject": ALICE, "action": {"name": "read"}, "resource": {"type": "record"}},
        {"record-1"},
    ),
    (
        "4.3.2",
        "resource",
        {
            "subject": ALICE,
            "action": {"name": "read"},
            "resource": {"type": "record"},
            "context": CONTEXT,
        },
        {"record-1"},
    ),
    (
        "4.3.3",
        "resource",
        {"subject": ALICE, "action": {"name": "read"}, "resource": RECORD_1},
        {"record-1"},
    ),
    (
        "4.3.4",
        "resource",
        {"subject": BOB_ADMIN, "action": {"name": "write"}, "resource": {"type": "record"}},
        {"record-2"},
    ),
    ("4.4.1", "action", {"subject": ALICE, "resource": RECORD_1}, {"read", "write"}),
    (
        "4.4.2",
        "action",
        {"subject": ALICE, "resource": RECORD_1, "context": CONTEXT},
        {"read", "write"},
    ),
    ("4.4.3", "action", {"subject": BOB_ADMIN, "resource": ARCHIVED_2}, {"write"}),
]


@pytest.mark.parametrize(("case", "kind", "body", "expected"), SEARCH, ids=[s[0] for s in SEARCH])
def test_search_fixture(
    cert: httpx.Client, case: str, kind: str, body: Any, expected: set[str]
) -> None:
    result = ok(cert, f"/access/v1/search/{kind}", body)
    assert expected <= ids(result)
    for item in result["results"]:
        if kind == "action":
            assert isinstance(item["name"], str)
        else:
            assert item["type"] == body[kind]["type"]
            assert isinstance(item["id"], str)


def test_search_results_are_permitted_when_evaluated_again(cert: httpx.Client) -> None:
    for _case, kind, body, _expected in SEARCH:
        for item in ok(cert, f"/access/v1/search/{kind}", body)["results"]:
            request = {
                k: body[k] for k in ("subject", "action", "resource", "context") if k in body
            }
            request[kind] = item if kind == "action" else {**body[kind], **item}
            assert ok(cert, "/access/v1/evaluation", request)["decision"] is True


def test_search_pagination(cert: httpx.Client) -> None:
    body = {
        "subject": {"type": "user"},
        "action": {"name": "read"},
        "resource": RECORD_1,
        "page": {"limit": 1},
    }
    seen: list[str] = []
    while True:
        result = ok(cert, "/access/v1/search/subject", body)
        assert isinstance(result["page"], dict)
        assert isinstance(result["page"]["next_token"], str)
        seen += [r["id"] for r in result["results"]]
        if not result["page"]["next_token"]:
            break
        body = {**body, "page": {"limit": 1, "token": result["page"]["next_token"]}}
    assert seen == ["alice", "bob"]


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("action", {"subject": {"type": "user", "id": "nonexistent-user"}, "resource": RECORD_1}),
        (
            "subject",
            {"subject": {"type": "spaceship"}, "action": {"name": "read"}, "resource": RECORD_1},
        ),
        (
            "resource",
            {"subject": ALICE, "action": {"name": "read"}, "resource": {"type": "spaceship"}},
        ),
    ],
    ids=["4.6.1", "4.6.2", "4.6.2-resource"],
)
def test_search_empty_results(cert: httpx.Client, kind: str, body: Any) -> None:
    assert ok(cert, f"/access/v1/search/{kind}", body) == {"results": []}


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("subject", {"subject": {"type": "user"}, "resource": RECORD_1}),
        ("resource", {"action": {"name": "read"}, "resource": {"type": "record"}}),
        ("action", {"subject": ALICE}),
        (
            "subject",
            {
                "subject": {"type": "user"},
                "action": {"name": "read"},
                "resource": {"type": "record"},
            },
        ),
        (
            "resource",
            {
                "subject": {"type": "user"},
                "action": {"name": "read"},
                "resource": {"type": "record"},
            },
        ),
        ("action", {"subject": {"type": "user"}, "resource": RECORD_1}),
    ],
)
def test_search_missing_fields_are_400(cert: httpx.Client, kind: str, body: Any) -> None:
    assert cert.post(f"/access/v1/search/{kind}", json=body).status_code == 400


# --- Discovery (C-6) and operations -------------------------------------------------


def test_discovery_metadata(cert: httpx.Client) -> None:
    r = cert.get("/.well-known/authzen-configuration")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["policy_decision_point"] == str(cert.base_url).rstrip("/")
    assert body["access_evaluation_endpoint"].endswith("/access/v1/evaluation")
    base = body["policy_decision_point"]
    assert body["access_evaluations_endpoint"] == base + "/access/v1/evaluations"
    for kind in ("subject", "resource", "action"):
        assert body[f"search_{kind}_endpoint"] == f"{base}/access/v1/search/{kind}"
    path = body["access_evaluation_endpoint"].removeprefix(base)
    assert ok(cert, path, BASIC[0][1])["decision"] is True


def test_health_and_metrics(cert: httpx.Client) -> None:
    assert cert.get("/healthz").json() == {"status": "ok"}
    text = cert.get("/metrics").text
    assert "zerotrust_decisions_total" in text
    assert "zerotrust_http_request_duration_seconds_bucket" in text
