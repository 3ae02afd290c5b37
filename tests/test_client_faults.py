"""The client against PDPs that fail: refused connections, silence, drops, 5xx, and
answers that are not AuthZEN. Each is a typed error and never an allow; only the
failures before any answer are retried, and the retries are bounded and counted."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from client_stubs import (
    JSON,
    Answer,
    AsyncCountingTransport,
    CountingTransport,
    always,
    closed_port,
    listener,
    stub_pdp,
)

from zerotrust import AccessRequest, Effect
from zerotrust.client import (
    AsyncAuthZENClient,
    AuthZENClient,
    ClientConfigError,
    PDPError,
    PDPRequestError,
    PDPResponseError,
    PDPUnavailableError,
    Timeout,
)
from zerotrust.errors import RequestError, ZeroTrustError

REQUEST = AccessRequest.from_mapping(
    {"subject": {"id": "ann"}, "action": {"name": "read"}, "resource": {"type": "doc", "id": "1"}}
)
FAST = {"backoff": 0.001, "max_backoff": 0.002}


def sync_evaluate(url: str, **options: Any) -> Any:
    with AuthZENClient(url, **{**FAST, **options}) as c:
        return c.evaluate(REQUEST)


def async_evaluate(url: str, **options: Any) -> Any:
    async def run() -> Any:
        async with AsyncAuthZENClient(url, **{**FAST, **options}) as c:
            return await c.evaluate_async(REQUEST)

    return asyncio.run(run())


BOTH = pytest.mark.parametrize("evaluate", [sync_evaluate, async_evaluate], ids=["sync", "async"])


# --- (a) refused: retried, bounded ------------------------------------------------------


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_a_refused_connection_is_retried_a_bounded_number_of_times(retries: int) -> None:
    transport = CountingTransport()
    started = time.monotonic()
    with pytest.raises(PDPUnavailableError) as raised:
        sync_evaluate(closed_port(), retries=retries, transport=transport)
    assert transport.attempts == retries + 1
    assert raised.value.status is None and "could not be reached" in str(raised.value)
    assert isinstance(raised.value, ConnectionError) and isinstance(raised.value, ZeroTrustError)
    assert time.monotonic() - started < 2


def test_async_refused_connection_is_retried_a_bounded_number_of_times() -> None:
    transport = AsyncCountingTransport()
    with pytest.raises(PDPUnavailableError):
        async_evaluate(closed_port(), retries=2, transport=transport)
    assert transport.attempts == 3


def test_backoff_is_bounded() -> None:
    """Ten retries with a 50 ms cap take about half a second, not 2**10 backoffs."""
    started = time.monotonic()
    with pytest.raises(PDPUnavailableError):
        sync_evaluate(closed_port(), retries=10, backoff=0.01, max_backoff=0.05)
    assert 0.1 < time.monotonic() - started < 2


@BOTH
@pytest.mark.parametrize("mode", ["close", "reset"])
def test_a_connection_dropped_before_any_answer_is_retried(
    evaluate: Callable[..., Any], mode: str
) -> None:
    with listener(mode) as stub, pytest.raises(PDPUnavailableError):
        evaluate(stub.url, retries=2, discover=False)
    assert stub.accepted == 3


# --- (b) silence: a timeout, never retried ----------------------------------------------


@BOTH
def test_a_pdp_that_never_answers_times_out_once(evaluate: Callable[..., Any]) -> None:
    with listener("hold") as stub:
        started = time.monotonic()
        with pytest.raises(PDPUnavailableError) as raised:
            evaluate(stub.url, retries=3, timeout=Timeout(connect=1, read=0.3), discover=False)
        elapsed = time.monotonic() - started
    assert "timed out" in str(raised.value)
    assert stub.accepted == 1  # the PDP may be deciding: the question is not asked twice
    assert 0.25 < elapsed < 2


# --- (c) statuses: answers, never retried ---------------------------------------------


@BOTH
@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_a_5xx_is_unavailable_and_not_retried(evaluate: Callable[..., Any], status: int) -> None:
    with stub_pdp(always(status, b"overloaded", {"content-type": "text/plain"})) as stub:
        with pytest.raises(PDPUnavailableError) as raised:
            evaluate(stub.url, retries=3)
        posts = [r for r in stub.requests if r[0] == "POST"]
    assert raised.value.status == status and "overloaded" in str(raised.value)
    assert len(posts) == 1


@BOTH
@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
def test_a_4xx_is_a_refusal_and_not_retried(evaluate: Callable[..., Any], status: int) -> None:
    with stub_pdp(always(status, b"no", {"content-type": "text/plain"})) as stub:
        with pytest.raises(PDPRequestError) as raised:
            evaluate(stub.url, retries=3)
        assert len([r for r in stub.requests if r[0] == "POST"]) == 1
    assert raised.value.status == status


@BOTH
def test_a_redirect_is_not_followed(evaluate: Callable[..., Any]) -> None:
    answer = always(
        307, b"", {"location": "http://127.0.0.1:9/steal", "content-type": JSON["content-type"]}
    )
    with stub_pdp(answer) as stub, pytest.raises(PDPResponseError, match="redirects"):
        evaluate(stub.url)
    assert len(stub.requests) == 2  # the metadata, then the one evaluation


# --- (d) malformed answers -------------------------------------------------------------

MALFORMED: list[tuple[bytes, str]] = [
    (b"", "not valid JSON"),
    (b"not json", "not valid JSON"),
    (b'{"decision": true', "not valid JSON"),
    (b"[true]", "must be a JSON object"),
    (b'"true"', "must be a JSON object"),
    (b"{}", "decision: must be a boolean"),
    (b'{"decision": "true"}', "decision: must be a boolean"),
    (b'{"decision": 1}', "decision: must be a boolean"),
    (b'{"decision": null}', "decision: must be a boolean"),
    (b'{"decision": NaN}', "not valid JSON"),
    (b'{"decision": false, "decision": true}', "duplicate key"),
    (b'{"decision": true, "context": []}', "context: must be an object"),
    (b'{"decision": true, "context": "ok"}', "context: must be an object"),
    (b'{"decision": true, "context": {"effect": "deny"}}', "contradicts"),
    (b'{"decision": true, "context": {"effect": "step_up"}}', "contradicts"),
    (b'{"decision": false, "context": {"effect": "allow"}}', "contradicts"),
    (b'{"decision": true, "context": {"effect": "permit"}}', "effect: must be"),
    (b'{"decision": true, "context": {"effect": "allow", "reasons": {}}}', "reasons: must be"),
    (b'{"decision": true, "context": {"effect": "allow", "obligations": [{}]}}', "type"),
    (b'{"decision": true, "context": {"effect": "allow", "risk": {"score": "high"}}}', "score"),
    (b'{"decision": true, "context": {"effect": "allow", "decision_id": 7}}', "decision_id"),
    (b'{"decision": false, "context": {"effect": "step_up", "acr_values": 2}}', "acr_values"),
    (b'{"decision": false, "context": {"effect": "step_up", "max_age": -1}}', "max_age"),
    (b'{"decision": false, "context": {"effect": "step_up", "max_age": 1.5}}', "max_age"),
    (b'\xff{"decision": true}', "not UTF-8"),
]


@BOTH
@pytest.mark.parametrize(("body", "message"), MALFORMED)
def test_a_malformed_answer_is_a_response_error(
    evaluate: Callable[..., Any], body: bytes, message: str
) -> None:
    with stub_pdp(always(200, body)) as stub, pytest.raises(PDPResponseError, match=message):
        evaluate(stub.url, retries=3)
    assert len([r for r in stub.requests if r[0] == "POST"]) == 1


@BOTH
@pytest.mark.parametrize("media", ["text/html", "text/plain", "application/jsonx", ""])
def test_an_answer_that_is_not_json_typed_is_refused(
    evaluate: Callable[..., Any], media: str
) -> None:
    headers = {"content-type": media} if media else {}
    answer = always(200, b'{"decision": true}', headers)
    with stub_pdp(answer) as stub, pytest.raises(PDPResponseError, match="not application/json"):
        evaluate(stub.url)


@BOTH
def test_an_oversized_answer_is_refused(evaluate: Callable[..., Any]) -> None:
    body = json.dumps({"decision": True, "context": {"pad": "x" * 5000}}).encode()
    with stub_pdp(always(200, body)) as stub, pytest.raises(PDPResponseError, match="larger"):
        evaluate(stub.url, max_response_bytes=4096)


@BOTH
def test_an_oversized_chunked_answer_is_refused(evaluate: Callable[..., Any]) -> None:
    chunk = b"x" * 3000
    payload = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
    headers = {**JSON, "transfer-encoding": "chunked"}

    def respond(method: str, path: str, _: bytes) -> Answer:
        if path.startswith("/.well-known/"):
            return 404, {}, b""
        return 200, headers, payload

    with stub_pdp(respond) as stub, pytest.raises(PDPResponseError, match="larger"):
        evaluate(stub.url, max_response_bytes=4096)


# --- any other AuthZEN PDP: the bare boolean ---------------------------------------------


@BOTH
@pytest.mark.parametrize(
    ("body", "effect"),
    [
        (b'{"decision": true}', Effect.ALLOW),
        (b'{"decision": false}', Effect.DENY),
        (b'{"decision": true, "context": {"reason_admin": {"en": "ok"}}}', Effect.ALLOW),
        (b'{"decision": false, "context": {"error": {"code": "expired"}}}', Effect.DENY),
        (b'{"decision": false, "context": null, "extra": [1]}', Effect.DENY),
    ],
)
def test_a_plain_authzen_answer_is_allow_or_deny(
    evaluate: Callable[..., Any], body: bytes, effect: Effect
) -> None:
    with stub_pdp(always(200, body)) as stub:
        decision = evaluate(stub.url)
    assert decision.effect is effect and decision.reasons == () and decision.obligations == ()


def test_what_the_client_sends(tmp_path: Any) -> None:
    """The body is the AuthZEN request as the server reads it (device in context.device),
    with the bearer token, a JSON media type and an X-Request-ID, to the default path."""
    request = AccessRequest.from_mapping(
        {
            "subject": {"id": "ann", "properties": {"roles": ["agent"]}},
            "action": {"name": "read"},
            "resource": {"type": "doc"},
            "device": {"managed": True},
            "context": {"ip": "10.0.0.1"},
        }
    )
    with stub_pdp(always(200, b'{"decision": false}')) as stub:
        with AuthZENClient(
            stub.url, token="pep-secret-0123456789", headers={"x-tenant": "t1"}
        ) as c:
            c.evaluate(request)
        (_, path, body) = stub.requests[1]
        headers = stub.headers[1]
    assert stub.requests[0][:2] == ("GET", "/.well-known/authzen-configuration")
    assert path == "/access/v1/evaluation"
    assert json.loads(body) == {
        "subject": {"type": "user", "id": "ann", "properties": {"roles": ["agent"]}},
        "action": {"name": "read", "properties": {}},
        "resource": {"type": "doc", "properties": {}},
        "context": {"ip": "10.0.0.1", "device": {"managed": True}},
    }
    assert headers["authorization"] == "Bearer pep-secret-0123456789"
    assert headers["content-type"] == "application/json" and headers["x-tenant"] == "t1"
    assert len(headers["x-request-id"]) == 36


def test_a_device_that_contradicts_context_device_is_refused_locally() -> None:
    request = AccessRequest.from_mapping(
        {
            "subject": {"id": "ann"},
            "action": {"name": "read"},
            "resource": {"type": "doc"},
            "device": {"managed": True},
            "context": {"device": {"managed": False}},
        }
    )
    with AuthZENClient(closed_port(), retries=0) as c, pytest.raises(RequestError):
        c.evaluate(request)


# --- batches and searches that do not add up -------------------------------------------

TWO = [REQUEST, REQUEST]


@pytest.mark.parametrize(
    ("semantic", "results"),
    [
        ("execute_all", [True]),
        ("execute_all", [True, True, True]),
        ("deny_on_first_deny", [True]),  # stopped without a deny
        ("deny_on_first_deny", [False, False]),  # went on after a deny
        ("permit_on_first_permit", [False]),
        ("permit_on_first_permit", [True, True]),
        ("execute_all", []),
    ],
)
def test_a_batch_answer_that_does_not_fit_the_request_is_refused(
    semantic: str, results: list[bool]
) -> None:
    body = json.dumps({"evaluations": [{"decision": r} for r in results]}).encode()
    with (
        stub_pdp(always(200, body)) as stub,
        AuthZENClient(stub.url) as c,
        pytest.raises(PDPResponseError),
    ):
        c.evaluations(TWO, semantic=semantic)


def test_a_batch_answer_without_evaluations_is_refused() -> None:
    with (
        stub_pdp(always(200, b'{"decision": true}')) as stub,
        AuthZENClient(stub.url) as c,
        pytest.raises(PDPResponseError, match="evaluations"),
    ):
        c.evaluations(TWO)


def test_a_batch_sends_defaults_and_the_semantic() -> None:
    with stub_pdp(always(200, b'{"evaluations": [{"decision": false}]}')) as stub:
        with AuthZENClient(stub.url) as c:
            (only,) = c.evaluations(
                [
                    {"resource": {"type": "doc", "id": "1"}},
                    {"resource": {"type": "doc", "id": "2"}},
                ],
                subject={"type": "user", "id": "ann"},
                action={"name": "read"},
                semantic="deny_on_first_deny",
            )
        sent = json.loads(stub.requests[1][2])
    assert only.effect is Effect.DENY
    assert sent["subject"] == {"type": "user", "id": "ann"}
    assert sent["options"] == {"evaluations_semantic": "deny_on_first_deny"}
    assert len(sent["evaluations"]) == 2


SEARCH = {
    "subject": {"type": "user", "id": "ann"},
    "action": {"name": "read"},
    "resource": {"type": "doc"},
}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"results": {}},
        {"results": [{"type": "doc"}]},
        {"results": [{"type": "user", "id": "x"}]},
        {"results": [], "page": {"next_token": 3}},
        {"results": [], "page": {}},
        {"results": [], "page": {"next_token": "", "count": -1}},
    ],
)
def test_a_malformed_search_answer_is_refused(body: dict[str, Any]) -> None:
    with (
        stub_pdp(always(200, json.dumps(body).encode())) as stub,
        AuthZENClient(stub.url) as c,
        pytest.raises(PDPResponseError),
    ):
        c.search_page("resource", SEARCH)


def test_a_search_whose_token_repeats_stops_with_an_error() -> None:
    body = {"results": [{"type": "doc", "id": "1"}], "page": {"next_token": "again"}}
    with stub_pdp(always(200, json.dumps(body).encode())) as stub, AuthZENClient(stub.url) as c:
        found = []
        with pytest.raises(PDPResponseError, match="repeats"):
            for result in c.search("resource", SEARCH):
                found.append(result)
    assert len(found) == 2  # the first page, and the second whose token was seen before


# --- metadata ---------------------------------------------------------------------------


def metadata_stub(document: Callable[[str], dict[str, Any]]) -> Callable[[str, str, bytes], Answer]:
    def respond(method: str, path: str, _: bytes) -> Answer:
        if path.startswith("/.well-known/authzen-configuration"):
            return 200, JSON, json.dumps(document(path)).encode()
        return 200, JSON, b'{"decision": true, "results": []}'

    return respond


def test_the_metadata_endpoints_are_used() -> None:
    def document(_: str) -> dict[str, Any]:
        return {
            "policy_decision_point": url,
            "access_evaluation_endpoint": url + "/tenant/eval",
            "search_resource_endpoint": "/tenant/resources",
        }

    with stub_pdp(metadata_stub(document)) as stub:
        url = stub.url
        with AuthZENClient(stub.url) as c:
            assert c.evaluate(REQUEST).allowed
            c.search_page("resource", SEARCH)
            with pytest.raises(PDPRequestError, match="no search_subject endpoint"):
                c.search_page("subject", SEARCH)
            with pytest.raises(PDPRequestError, match="no access_evaluations endpoint"):
                c.evaluations([REQUEST])
    assert [r[:2] for r in stub.requests] == [
        ("GET", "/.well-known/authzen-configuration"),
        ("POST", "/tenant/eval"),
        ("POST", "/tenant/resources"),
    ]


def test_a_base_path_goes_after_the_well_known_string() -> None:
    with (
        stub_pdp(always(200, b'{"decision": true}')) as stub,
        AuthZENClient(stub.url + "/tenant1/") as c,
    ):
        c.evaluate(REQUEST)
    assert [r[1] for r in stub.requests] == [
        "/.well-known/authzen-configuration/tenant1",
        "/tenant1/access/v1/evaluation",
    ]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"policy_decision_point": "https://other.example"}, "is not the configured base_url"),
        ({"access_evaluation_endpoint": "/x"}, "policy_decision_point"),
        (
            {
                "policy_decision_point": "{url}",
                "access_evaluation_endpoint": "https://evil.example/e",
            },
            "not on the PDP's origin",
        ),
        ({"policy_decision_point": "{url}", "access_evaluation_endpoint": 7}, "must be a string"),
    ],
)
def test_metadata_that_cannot_be_trusted_is_refused(document: dict[str, Any], message: str) -> None:
    def fill(_: str) -> dict[str, Any]:
        return {
            k: v.replace("{url}", url) if isinstance(v, str) else v for k, v in document.items()
        }

    with stub_pdp(metadata_stub(fill)) as stub:
        url = stub.url
        with AuthZENClient(stub.url) as c, pytest.raises(PDPResponseError, match=message):
            c.evaluate(REQUEST)
    assert [r[0] for r in stub.requests] == ["GET"]  # nothing was evaluated


def test_an_unreachable_metadata_is_unavailable_and_asked_again() -> None:
    transport = CountingTransport()
    with AuthZENClient(closed_port(), retries=0, transport=transport) as c:
        for _ in range(2):
            with pytest.raises(PDPUnavailableError):
                c.evaluate(REQUEST)
    assert transport.attempts == 2


# --- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("ftp://pdp.example", {}),
        ("pdp.example", {}),
        ("http://pdp.example", {}),  # plain HTTP off loopback
        ("https://pdp.example?x=1", {}),
        ("https://user:pw@pdp.example", {}),
        ("https://pdp.example", {"token": "two words"}),
        ("https://pdp.example", {"token": "line\r\nbreak"}),
        ("https://pdp.example", {"timeout": 0}),
        ("https://pdp.example", {"timeout": float("inf")}),
        ("https://pdp.example", {"retries": -1}),
        ("https://pdp.example", {"retries": 11}),
        ("https://pdp.example", {"backoff": 0}),
        ("https://pdp.example", {"max_backoff": 61}),
        ("https://pdp.example", {"max_response_bytes": 10}),
        ("https://pdp.example", {"headers": {"Authorization": "Bearer x"}}),
    ],
)
def test_invalid_options_are_refused(url: str, options: dict[str, Any]) -> None:
    with pytest.raises(ClientConfigError):
        AuthZENClient(url, **options)
    with pytest.raises(ClientConfigError):
        AsyncAuthZENClient(url, **options)


def test_plain_http_to_a_remote_host_needs_saying_so() -> None:
    AuthZENClient("http://pdp.internal:8080", insecure_http=True).close()
    AuthZENClient("http://localhost:8080").close()
    AuthZENClient("http://[::1]:8080").close()
    with pytest.raises(ClientConfigError):
        Timeout(connect=-1)


def test_every_error_is_a_zerotrust_error_with_its_builtin() -> None:
    assert issubclass(PDPUnavailableError, PDPError) and issubclass(
        PDPUnavailableError, ConnectionError
    )
    assert issubclass(PDPResponseError, PDPError) and issubclass(PDPResponseError, ValueError)
    assert issubclass(PDPRequestError, PDPError) and issubclass(PDPRequestError, ValueError)
    assert issubclass(PDPError, ZeroTrustError) and issubclass(ClientConfigError, ValueError)
