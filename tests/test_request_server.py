"""The AuthZEN server refuses request values a condition must never see.

A lone surrogate is a legal JSON escape (``"\\ud800"``) but not valid Unicode: it
cannot be encoded as UTF-8, so it cannot be logged, stored or compared reliably.
Every endpoint answers it with 400 (or, inside a batch, a closed item with the
error) and the decision log gets no line for a request that was never decided.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from zerotrust import JsonLinesLog, PolicyDecisionPoint
from zerotrust.server import ServerConfig, create_app

ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cret-for-tests-0123456789"
AUTH = {"authorization": f"Bearer {SECRET}", "content-type": "application/json"}

POLICY = """
policy: docs
target: {resources: [document]}
rules:
  - {id: allow-alice, effect: allow, when: "subject.id == 'alice'"}
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    log_path = tmp_path / "decisions.jsonl"
    with JsonLinesLog(log_path) as log:
        pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, decision_log=log)
        app = create_app(pdp, config=ServerConfig(bearer_secrets=(SECRET,)))
        with TestClient(app, headers=AUTH) as client:
            yield client, log_path


def _post(client: TestClient, path: str, raw: str) -> Any:
    # ``raw`` is JSON text holding the six characters \ud800: sent as ASCII bytes.
    return client.post(path, content=raw.encode("ascii"))


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (
            '{"subject":{"type":"user","id":"\\ud800"},"action":{"name":"read"},'
            '"resource":{"type":"document","id":"1"}}',
            "subject.id",
        ),
        (
            '{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},'
            '"resource":{"type":"document","id":"1"},"context":{"ip\\udfff":"10.0.0.1"}}',
            "context",
        ),
        (
            '{"subject":{"type":"user","id":"alice","properties":{"role":"a\\udc00"}},'
            '"action":{"name":"read"},"resource":{"type":"document","id":"1"}}',
            "subject.properties.role",
        ),
    ],
)
def test_lone_surrogate_escape_in_an_evaluation_is_400_and_not_decided(
    served: tuple[TestClient, Path], raw: str, field: str
) -> None:
    client, log_path = served
    response = _post(client, "/access/v1/evaluation", raw)
    assert response.status_code == 400, response.text
    assert response.text.startswith(field)
    assert "lone surrogate" in response.text
    assert log_path.read_text("utf-8") == ""  # refused before any decision


def test_lone_surrogate_in_one_batch_item_closes_that_item_only(
    served: tuple[TestClient, Path],
) -> None:
    client, log_path = served
    raw = (
        '{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},'
        '"evaluations":[{"resource":{"type":"document","id":"1"}},'
        '{"resource":{"type":"document","id":"\\ud800"}},'
        '{"resource":{"type":"document","id":"3"}}]}'
    )
    response = _post(client, "/access/v1/evaluations", raw)
    assert response.status_code == 200, response.text
    items = response.json()["evaluations"]
    assert [item["decision"] for item in items] == [True, False, True]
    assert items[1]["context"]["error"]["status"] == 400
    assert "lone surrogate" in items[1]["context"]["error"]["message"]
    # Two decisions, two complete lines; nothing for the refused item.
    assert [line["resource"]["id"] for line in _lines(log_path)] == ["1", "3"]


def test_lone_surrogate_in_a_search_is_400() -> None:
    pdp = PolicyDecisionPoint.from_path(ROOT / "examples" / "authzen-search")
    app = create_app(pdp, config=ServerConfig(bearer_secrets=(SECRET,)))
    raw = (
        '{"subject":{"type":"user","id":"alice\\ud800"},"action":{"name":"view"},'
        '"resource":{"type":"record"}}'
    )
    with TestClient(app, headers=AUTH) as client:
        response = _post(client, "/access/v1/search/resource", raw)
    assert response.status_code == 400, response.text
    assert "lone surrogate" in response.text
