"""The server's OpenAPI document: valid, true to the AuthZEN schemas, true to the server.

The interop cases and the spec's own JSON Schemas are read from ../shared/conformance;
schemathesis then calls the running server (uvicorn on 127.0.0.1) with requests made
from the document and checks every answer against it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis.generation import GenerationMode
from starlette.testclient import TestClient
from test_server_http import INTEROP, SECRET, LiveServer, load

from zerotrust import PolicyDecisionPoint
from zerotrust.server import ServerConfig, create_app
from zerotrust.server.openapi import OPENAPI_PATH, openapi_document

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT.parent / "shared" / "conformance" / "authzen" / "api" / "schemas"
if not SCHEMAS.is_dir() or not INTEROP.is_dir():
    pytest.skip(f"AuthZEN conformance data not found at {SCHEMAS}", allow_module_level=True)

SPEC_REQUEST = load(SCHEMAS / "evaluation-request.schema.json")
SPEC_RESPONSE = load(SCHEMAS / "evaluation-response.schema.json")
DOCUMENT = openapi_document(authenticated=True, verifies_identity=False)
TODO = load(INTEROP / "authzen-todo-backend" / "test" / "decisions-authorization-api-1_0-02.json")
GATEWAY = load(INTEROP / "authzen-api-gateways" / "test-harness" / "test" / "decisions.json")
SEARCHES = [
    (kind, case["request"])
    for kind in ("subject", "resource", "action")
    for case in load(INTEROP / "authzen-search-demo" / "test" / kind / "results.json")["evaluation"]
]
EVALUATIONS = [c["request"] for c in TODO["evaluation"] + GATEWAY["evaluation"]]


def component(name: str, document: dict[str, Any] = DOCUMENT) -> jsonschema.Validator:
    """A validator for one of the document's schemas, its references resolved in place."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("authenticated", [True, False])
@pytest.mark.parametrize("identity", [True, False])
def test_the_document_is_valid_openapi_3_1(authenticated: bool, identity: bool) -> None:
    document = openapi_document(authenticated=authenticated, verifies_identity=identity)
    validate(document)  # raises OpenAPIValidationError
    assert ("security" in document) is authenticated
    assert ("/access/v1/search/subject" in document["paths"]) is not identity


def test_the_spec_schemas_are_themselves_valid() -> None:
    jsonschema.Draft202012Validator.check_schema(SPEC_REQUEST)
    jsonschema.Draft202012Validator.check_schema(SPEC_RESPONSE)


@pytest.mark.parametrize("request_body", EVALUATIONS)
def test_every_interop_evaluation_fits_both_request_schemas(request_body: Any) -> None:
    jsonschema.validate(request_body, SPEC_REQUEST)
    component("EvaluationRequest").validate(request_body)


@pytest.mark.parametrize("case", TODO["evaluations"])
def test_every_interop_batch_fits_the_batch_schema(case: Any) -> None:
    component("EvaluationsRequest").validate(case["request"])


@pytest.mark.parametrize(("kind", "request_body"), SEARCHES)
def test_every_interop_search_fits_its_schema(kind: str, request_body: Any) -> None:
    component(f"{kind.capitalize()}SearchRequest").validate(request_body)


TEXT = st.text(max_size=8)
NAME = st.text(min_size=1, max_size=8)
PROPERTIES = st.dictionaries(TEXT, st.one_of(st.none(), st.booleans(), st.integers(), TEXT))
ANY_VALUE = st.one_of(st.none(), st.booleans(), st.integers(), TEXT, PROPERTIES, st.lists(TEXT))
ENTITY = st.fixed_dictionaries({"type": NAME, "id": NAME}, optional={"properties": PROPERTIES})
VALID_REQUESTS = st.fixed_dictionaries(
    {
        "subject": ENTITY,
        "resource": ENTITY,
        "action": st.fixed_dictionaries({"name": NAME}, optional={"properties": PROPERTIES}),
    },
    optional={"context": st.fixed_dictionaries({}, optional={"device": PROPERTIES, "ip": TEXT})},
)


def paths(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every member's path in a request, nested members too."""
    found: list[tuple[str, ...]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((*prefix, key))
            found.extend(paths(item, (*prefix, key)))
    return found


@st.composite
def near_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request with one or two members removed, replaced or added."""
    body = json.loads(json.dumps(draw(VALID_REQUESTS)))
    for _ in range(draw(st.integers(1, 2))):
        where = draw(st.sampled_from([*paths(body), ("other",), ("context",)]))
        parent = body
        for key in where[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        if draw(st.booleans()) and where[-1] in parent:
            del parent[where[-1]]
        else:
            parent[where[-1]] = draw(ANY_VALUE)
    return body


def without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    return value


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(body=near_requests())
def test_what_the_document_accepts_the_spec_accepts(body: dict[str, Any]) -> None:
    """The document refines the spec: never a request the spec's schema refuses, once
    a member sent as ``null`` is read as absent (as the server reads it)."""
    if component("EvaluationRequest").is_valid(body):
        jsonschema.validate(without_nulls(body), SPEC_REQUEST)


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    server = LiveServer(ROOT / "examples" / "authzen-certification")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=live.url, headers={"authorization": f"Bearer {SECRET}"}, trust_env=False
    ) as c:
        yield c


def test_the_server_publishes_the_document_without_credentials(live: LiveServer) -> None:
    r = httpx.get(live.url + OPENAPI_PATH, trust_env=False)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == DOCUMENT


def test_an_insecure_local_server_publishes_no_security_scheme() -> None:
    pdp = PolicyDecisionPoint.from_path(ROOT / "examples" / "authzen-certification")
    app = create_app(pdp, config=ServerConfig(insecure_local=True))
    document = TestClient(app, client=("127.0.0.1", 50000)).get(OPENAPI_PATH).json()
    assert "security" not in document and "securitySchemes" not in document["components"]


@pytest.mark.parametrize("request_body", EVALUATIONS[:20])
def test_every_answer_fits_both_response_schemas(client: httpx.Client, request_body: Any) -> None:
    for path in ("/access/v1/evaluation", "/access/v1/evaluations"):
        answer = client.post(path, json=request_body).json()
        jsonschema.validate(answer, SPEC_RESPONSE)
        component("EvaluationResponse").validate(answer)


def test_batch_answers_fit_the_schema_item_by_item(client: httpx.Client) -> None:
    for case in TODO["evaluations"]:
        answer = client.post("/access/v1/evaluations", json=case["request"]).json()
        component("EvaluationsResponse").validate(answer)
        for item in answer["evaluations"]:
            jsonschema.validate(item, SPEC_RESPONSE)


def test_search_answers_fit_the_schema(client: httpx.Client) -> None:
    for kind, body in SEARCHES[::10]:
        answer = client.post(f"/access/v1/search/{kind}", json=body).json()
        component("SearchResponse").validate(answer)


def test_refusals_are_documented_for_every_api_operation() -> None:
    for path, item in DOCUMENT["paths"].items():
        if path.startswith("/access/"):
            assert {"200", "400", "401", "413", "503"} <= set(item["post"]["responses"])


# --- schemathesis: requests made from the document, answers checked against it -------


@pytest.fixture(scope="module")
def api_schema(live: LiveServer) -> Any:
    schema = schemathesis.openapi.from_url(live.url + OPENAPI_PATH)

    @schema.hook
    def filter_body(context: Any, body: Any) -> bool:
        """Two refusals by design that JSON Schema cannot say, so the descriptions do:
        integers beyond 64 bits (CEL's int; JSON Schema counts 1e300 as an integer too)
        and page tokens the server did not issue for this query."""
        page = body.get("page") if isinstance(body, dict) else None
        token = page.get("token") if isinstance(page, dict) else None
        return not _huge_integer(body) and token in (None, "")

    @schema.auth()
    class PepSecret:
        """The PEP's bearer secret, as the document's security scheme says; schemathesis
        also sends each request without it and expects the 401 the document promises."""

        def get(self, case: Any, context: Any) -> str:
            return SECRET

        def set(self, case: Any, data: str, context: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    return schema


def _huge_integer(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_huge_integer(v) for v in value.values())
    if isinstance(value, list):
        return any(_huge_integer(v) for v in value)
    return type(value) is int and not -(2**63) <= value < 2**63


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_the_running_server_keeps_to_its_document(api_schema: Any, mode: GenerationMode) -> None:
    """No 5xx, and every status, media type and body as documented: valid requests made
    from the document, and (negative mode) requests that break it, which must be refused.

    Driven through hypothesis directly, not schemathesis's pytest plugin, which breaks
    with each pytest release that changes pytest's internals."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {o.label for o in operations} >= {"POST /access/v1/evaluation", "GET /readyz"}
    if mode is GenerationMode.NEGATIVE:  # only a request body can break the document
        operations = [o for o in operations if o.method.upper() == "POST"]
    for operation in operations:

        @settings(
            max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            case.call_and_validate()

        check()


def test_the_document_round_trips_as_json() -> None:
    assert json.loads(json.dumps(DOCUMENT)) == DOCUMENT
