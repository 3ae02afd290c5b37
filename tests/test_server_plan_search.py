"""Plan-backed resource search through the app's TestClient: the AuthZEN search interop
cases with the records in a real SQLite database, keyset paging through a larger table,
and the fallbacks to deciding rows one by one."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("sqlalchemy")
from starlette.testclient import TestClient
from test_server_http import INTEROP, load

from zerotrust import PolicyDecisionPoint
from zerotrust.server import ServerConfig, ServerConfigError, create_app
from zerotrust.server.entities import entities_from_mapping
from zerotrust.server.settings import config_from_mapping, effective

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "authzen-search"
SECRET = "s3cret-for-tests-0123456789"
AUTH = {"authorization": f"Bearer {SECRET}"}
RECORDS: dict[str, dict[str, str]] = yaml.safe_load(
    (EXAMPLE / "records.data.yaml").read_text(encoding="utf-8")
)["entities"]["resources"]["record"]
CASES = (
    load(INTEROP / "authzen-search-demo" / "test" / "resource" / "results.json")["evaluation"]
    if INTEROP.is_dir()
    else []
)
# The example's rules, reading the record's owner and department from the resource's
# properties (the database's columns) rather than from the data by id: a plan can then
# be a filter. The subject's role and department still come from the data.
_USER = "data.entities.subjects.user[subject.id]"
BY_PROPERTIES = f"""
policy: records-view
target: {{resources: [record], actions: [view]}}
rules:
  - id: allow-owner
    effect: allow
    when: resource.properties.owner == subject.id
  - id: allow-same-department
    effect: allow
    when: >-
      subject.id in data.entities.subjects.user
      && resource.properties.department == {_USER}.department
  - id: allow-manager
    effect: allow
    when: subject.id in data.entities.subjects.user && {_USER}.role == 'manager'
---
policy: records-edit
target: {{resources: [record], actions: [edit]}}
rules:
  - id: allow-owner
    effect: allow
    when: resource.properties.owner == subject.id
  - id: allow-manager-same-department
    effect: allow
    when: >-
      subject.id in data.entities.subjects.user && {_USER}.role == 'manager'
      && resource.properties.department == {_USER}.department
---
policy: records-delete
target: {{resources: [record], actions: [delete]}}
rules:
  - id: allow-owner
    effect: allow
    when: resource.properties.owner == subject.id
"""


class Sink:
    """Every logged record: one for a plan, one per decided row."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    def emit(self, decision: Any, request: Any, extra: Mapping[str, Any]) -> None:
        self.records.append(decision)


def make_database(path: Path, rows: Mapping[str, Mapping[str, Any]]) -> str:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE records (id TEXT PRIMARY KEY, title TEXT, dept TEXT, owner TEXT)")
        db.executemany(
            "INSERT INTO records VALUES (?, ?, ?, ?)",
            [(i, r.get("title"), r.get("department"), r.get("owner")) for i, r in rows.items()],
        )
    db.close()
    return f"sqlite:///{path}"


def database_section(url: str, **extra: Any) -> dict[str, Any]:
    properties = {"title": "title", "department": "dept", "owner": "owner"}
    return {
        "url": url,
        "resources": {"record": {"table": "records", "id": "id", "properties": properties}},
        **extra,
    }


def client_for(
    policies: Path, database: dict[str, Any] | None, sink: Sink | None = None, **settings: Any
) -> TestClient:
    pdp = PolicyDecisionPoint.from_path(policies, decision_log=sink)
    raw: dict[str, Any] = {"bearer_secrets": [SECRET], **settings}
    if database is not None:
        raw["search_database"] = database
    return TestClient(create_app(pdp, config=config_from_mapping(raw)), headers=AUTH)


@pytest.fixture(scope="module")
def records_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_database(tmp_path_factory.mktemp("db") / "records.db", RECORDS)


@pytest.fixture(scope="module")
def by_properties(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("policies")
    (folder / "records.yaml").write_text(BY_PROPERTIES, encoding="utf-8")
    shutil.copy(EXAMPLE / "records.data.yaml", folder / "records.data.yaml")
    return folder


@pytest.fixture(scope="module")
def planned(by_properties: Path, records_url: str) -> Iterator[tuple[TestClient, Sink]]:
    sink = Sink()
    with client_for(by_properties, database_section(records_url), sink) as client:
        yield client, sink


def search(client: TestClient, body: Mapping[str, Any], status: int = 200) -> Any:
    response = client.post("/access/v1/search/resource", json=body)
    assert response.status_code == status, response.text
    return response.json() if status == 200 else response.text


@pytest.mark.skipif(not CASES, reason=f"AuthZEN interop data not found at {INTEROP}")
def test_interop_cases_by_plan_equal_row_by_row_and_expected(
    planned: tuple[TestClient, Sink], by_properties: Path, records_url: str
) -> None:
    client, sink = planned
    assert len(CASES) == 18
    with (
        client_for(by_properties, None) as per_row,
        client_for(EXAMPLE, database_section(records_url)) as by_id,
    ):
        for case in CASES:
            before = len(sink.records)
            by_plan = search(client, case["request"])
            assert len(sink.records) == before + 1  # one plan, no row decided
            assert getattr(sink.records[-1], "_plan", None) is not None
            assert by_plan == search(per_row, case["request"]) == case["expected"]
            # The example's rules read the data by id: a filter on resource.id.
            assert search(by_id, case["request"]) == case["expected"]


def test_paging_through_thousands_of_rows_gives_every_allowed_row_once(
    tmp_path: Path, by_properties: Path
) -> None:
    owners = ("alice", "bob", "carol", "dan", "erin", "felix", None)
    departments = ("Legal", "Sales", "Finance", None)
    rows = {
        f"r{n:05d}": {"owner": owners[n % 7], "department": departments[n % 4]} for n in range(3000)
    }
    rows = {k: {p: v for p, v in r.items() if v is not None} for k, r in rows.items()}
    url = make_database(tmp_path / "many.db", rows)
    allowed = sorted(
        i for i, r in rows.items() if r.get("owner") == "bob" or r.get("department") == "Legal"
    )
    body: dict[str, Any] = {
        "subject": {"type": "user", "id": "bob"},
        "action": {"name": "view"},
        "resource": {"type": "record"},
        "page": {"limit": 97},
    }
    seen: list[str] = []
    with client_for(by_properties, database_section(url)) as client:
        while True:
            found = search(client, body)
            assert found["page"]["count"] == len(found["results"]) <= 97
            seen += [r["id"] for r in found["results"]]
            if not found["page"]["next_token"]:
                break
            body["page"] = {"limit": 97, "token": found["page"]["next_token"]}
        assert seen == allowed
        first = search(client, dict(body, page={"limit": 5}))["page"]["next_token"]
        body["page"] = {"limit": 5, "token": first}
        assert [r["id"] for r in search(client, body)["results"]] == allowed[5:10]
        body["subject"] = {"type": "user", "id": "carol"}  # another query: refused
        search(client, body, status=400)
        body["page"] = {"limit": 5, "token": "InIwMDAwMCI." + first.partition(".")[2]}
        search(client, dict(body, subject={"type": "user", "id": "bob"}), status=400)


def test_a_plan_that_is_no_filter_decides_the_rows_one_by_one(
    tmp_path: Path, records_url: str
) -> None:
    (tmp_path / "p.yaml").write_text(
        BY_PROPERTIES.replace(
            "when: resource.properties.owner == subject.id",
            'when: resource.properties.owner + "" == subject.id',  # concatenation: opaque
        ),
        encoding="utf-8",
    )
    shutil.copy(EXAMPLE / "records.data.yaml", tmp_path / "records.data.yaml")
    body = {
        "subject": {"type": "user", "id": "erin"},
        "action": {"name": "delete"},
        "resource": {"type": "record"},
        "page": {"limit": 2},
    }
    sink = Sink()
    with client_for(tmp_path, database_section(records_url), sink) as client:
        first = search(client, body)
        assert first["results"] == [{"type": "record", "id": i} for i in ("105", "111")]
        assert len(sink.records) == 1 + 17  # the plan, rows 101..117 (117: a next page)
        body["page"] = {"limit": 2, "token": first["page"]["next_token"]}
        assert search(client, body) == {
            "page": {"next_token": "", "count": 1},
            "results": [{"type": "record", "id": "117"}],
        }


def test_a_query_with_properties_decides_the_rows_one_by_one(
    planned: tuple[TestClient, Sink],
) -> None:
    client, sink = planned
    before = len(sink.records)
    body = {
        "subject": {"type": "user", "id": "erin"},
        "action": {"name": "delete"},
        "resource": {"type": "record", "properties": {"owner": "erin"}},
    }
    found = search(client, body)
    # The PEP's owner overlays every row's: erin may delete all twenty.
    assert [r["id"] for r in found["results"]] == sorted(RECORDS)
    assert len(sink.records) == before + len(RECORDS)
    assert all(getattr(r, "_plan", None) is None for r in sink.records[before:])


def test_an_unmapped_type_searches_the_entities_as_before(
    planned: tuple[TestClient, Sink],
) -> None:
    client, _ = planned
    body = {
        "subject": {"type": "user", "id": "erin"},
        "action": {"name": "view"},
        "resource": {"type": "spaceship"},
    }
    assert search(client, body) == {"results": []}


def test_a_property_the_section_does_not_map_falls_back(
    by_properties: Path, records_url: str
) -> None:
    section = database_section(records_url)
    del section["resources"]["record"]["properties"]["owner"]  # the rules read it
    sink = Sink()
    body = {
        "subject": {"type": "user", "id": "erin"},
        "action": {"name": "delete"},
        "resource": {"type": "record"},
    }
    with client_for(by_properties, section, sink) as client:
        # Without the owner column no row has an owner: erin deletes nothing, decided
        # row by row (the plan, then twenty rows), never a filter missing its owner test.
        assert search(client, body) == {"results": []}
    assert len(sink.records) == 1 + len(RECORDS)


def test_a_configuration_naming_a_missing_table_or_column_is_refused(records_url: str) -> None:
    section = database_section(records_url)
    section["resources"]["record"]["properties"]["rank"] = "rank"
    section["resources"]["other"] = {"table": "nothing"}
    with pytest.raises(ServerConfigError) as caught:
        create_app(
            PolicyDecisionPoint.from_path(EXAMPLE),
            config=config_from_mapping({"bearer_secrets": [SECRET], "search_database": section}),
        )
    assert caught.value.problems == (
        "search_database.resources.record.properties.rank: no column 'rank' in records",
        "search_database.resources.other.table: no table 'nothing'",
    )


def test_the_database_url_is_never_shown() -> None:
    url = "postgresql://zt:hunter2-secret@db.example/zt"
    config = config_from_mapping(
        {"bearer_secrets": [SECRET], "search_database": database_section(url)}
    )
    assert "hunter2" not in repr(config)
    assert effective(config)["search_database"]["url"] == "postgresql://zt:***@db.example/zt"
    with pytest.raises(ServerConfigError) as caught:
        ServerConfig(bearer_secrets=(SECRET,), search_database={"url": 5, "resources": {}})
    assert caught.value.problems == (
        "search_database.url: must be a non-empty string",
        "search_database.resources: must map at least one resource type to its table",
    )


def test_refusals_are_as_for_a_search_row_by_row(tmp_path: Path) -> None:
    """A refused caller gets no results and the refusal's code, plan or no plan; a
    verified one gets the rows its token's subject may read."""
    jwt = pytest.importorskip("jwt_helpers")
    if not jwt.KEYS.is_dir():
        pytest.skip(f"shared conformance keys not found at {jwt.KEYS}")
    from zerotrust.server import IdentityConfig
    from zerotrust.server.identity import build_identity

    user = "someone@example.net"
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps({"keys": [jwt.rsa_public_jwk()]}), encoding="utf-8")
    identity = IdentityConfig(
        issuer=jwt.ISSUER, audiences=["zerotrust"], jwks_file=str(keys), algorithms=["RS256"]
    )
    (tmp_path / "p.yaml").write_text(
        "policy: records\ntarget: {resources: [record]}\nrules:\n"
        "  - {id: own, effect: allow, when: resource.properties.owner == subject.id}\n",
        encoding="utf-8",
    )
    rows = {"1": {"owner": user}, "2": {"owner": "x"}, "3": {"owner": user}}
    url = make_database(tmp_path / "r.db", rows)
    entities = {"resources": {"record": rows}}
    good = jwt.rs256(jwt.claims(aud="zerotrust"))
    expired = jwt.rs256(jwt.claims(aud="zerotrust", exp=jwt.T - 3600))
    bodies = {
        "good": ({"properties": {"token": good}}, [{"type": "record", "id": i} for i in "13"]),
        "expired": ({"properties": {"token": expired}}, {"error": {"code": "expired"}}),
        "missing": ({"type": "user", "id": user}, {"error": {"code": "missing_token"}}),
    }
    answers: dict[str, list[Any]] = {name: [] for name in bodies}
    for section in (database_section(url), None):
        sink = Sink()
        pdp = PolicyDecisionPoint.from_path(
            tmp_path, clock=lambda: jwt.NOW, decision_log=sink, identity=build_identity(identity)
        )
        config = ServerConfig(bearer_secrets=(SECRET,), identity=identity, search_database=section)
        app = create_app(pdp, config=config, entities=entities_from_mapping(entities))
        with TestClient(app, headers=AUTH) as client:
            for name, (subject, _) in bodies.items():
                body = {
                    "subject": subject,
                    "action": {"name": "read"},
                    "resource": {"type": "record"},
                }
                answers[name].append(search(client, body))
        assert len(sink.records) == (1 if section else 3)  # one plan, or three rows
    for name, (_, expected) in bodies.items():
        if name == "good":
            assert answers[name] == [{"results": expected}] * 2
        else:
            assert answers[name] == [{"context": expected, "results": []}] * 2


def test_a_failing_database_is_a_503_never_an_empty_page(
    by_properties: Path, tmp_path: Path
) -> None:
    """The table is dropped after start-up: the search answers 503 (retry), not "no
    results", which a PEP would show as "you may read nothing" (or cache)."""
    url = make_database(tmp_path / "records.db", RECORDS)
    with client_for(by_properties, database_section(url)) as client:
        body = {
            "subject": {"type": "user", "id": "alice"},
            "action": {"name": "view"},
            "resource": {"type": "record"},
        }
        assert search(client, body)["results"]
        with sqlite3.connect(tmp_path / "records.db") as db:
            db.execute("DROP TABLE records")
        db.close()
        text = search(client, body, status=503)
        assert "search database is unavailable" in text
        fallback = {**body, "resource": {"type": "record", "properties": {"owner": "x"}}}
        search(client, fallback, status=503)  # deciding rows one by one reads the table too
