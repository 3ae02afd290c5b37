"""Every AuthZEN interop case over real HTTP (uvicorn on 127.0.0.1, httpx).

The Todo suite against examples/authzen-todo, the API-gateway suite against
examples/authzen-gateway and the 198 search cases against examples/authzen-search.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from test_server_http import INTEROP, live_clients, load, ok

if not INTEROP.is_dir():
    pytest.skip(f"AuthZEN interop data not found at {INTEROP}", allow_module_level=True)


@pytest.fixture(scope="module")
def live() -> Iterator[Callable[[str], httpx.Client]]:
    with live_clients() as client:
        yield client


TODO = load(INTEROP / "authzen-todo-backend" / "test" / "decisions-authorization-api-1_0-02.json")
GATEWAY = load(INTEROP / "authzen-api-gateways" / "test-harness" / "test" / "decisions.json")
SEARCH_DEMO = [
    (kind, case)
    for kind in ("subject", "resource", "action")
    for case in load(INTEROP / "authzen-search-demo" / "test" / kind / "results.json")["evaluation"]
]


def test_interop_suites_have_the_expected_size() -> None:
    assert (len(TODO["evaluation"]), len(TODO["evaluations"])) == (40, 3)
    assert len(GATEWAY["evaluation"]) == 25
    assert len(SEARCH_DEMO) == 198


@pytest.mark.parametrize("case", TODO["evaluation"])
def test_todo_evaluation(live: Callable[[str], httpx.Client], case: Any) -> None:
    assert (
        ok(live("authzen-todo"), "/access/v1/evaluation", case["request"])["decision"]
        is case["expected"]
    )


@pytest.mark.parametrize("case", TODO["evaluations"])
def test_todo_evaluations(live: Callable[[str], httpx.Client], case: Any) -> None:
    result = ok(live("authzen-todo"), "/access/v1/evaluations", case["request"])
    assert [{"decision": e["decision"]} for e in result["evaluations"]] == case["expected"]


@pytest.mark.parametrize("case", GATEWAY["evaluation"])
def test_gateway_evaluation(live: Callable[[str], httpx.Client], case: Any) -> None:
    result = ok(live("authzen-gateway"), "/access/v1/evaluation", case["request"])
    assert result["decision"] is case["expected"]


@pytest.mark.parametrize(("kind", "case"), SEARCH_DEMO)
def test_search_demo(live: Callable[[str], httpx.Client], kind: str, case: Any) -> None:
    result = ok(live("authzen-search"), f"/access/v1/search/{kind}", case["request"])
    assert result == case["expected"]
