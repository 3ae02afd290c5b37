"""Plan search on tables whose SQL meaning differs from CEL's: a column's collation
(string ids page in code point order), property names with a dot, SQLite's text kept
in an INTEGER column. Each answer is the row-by-row search's (``evaluate``'s)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("sqlalchemy")
from starlette.testclient import TestClient
from test_server_plan_search import AUTH, SECRET, search

from zerotrust import PolicyDecisionPoint
from zerotrust.plan.residual import Field
from zerotrust.server import ServerConfig, create_app


def _pdp(condition: str) -> PolicyDecisionPoint:
    """Allow a record where ``condition`` holds."""
    return PolicyDecisionPoint.from_texts(
        {
            "p.yaml": "policy: p\ntarget: {resources: [record], actions: [read]}\n"
            f"rules:\n  - {{id: a, effect: allow, when: '{condition}'}}\n"
        }
    )


def _search_table(
    tmp_path: Path,
    create: str,
    rows: list[tuple[Any, ...]],
    properties: dict[str, str],
    condition: str,
    limit: int = 1000,
) -> list[str]:
    """Every id (in page order, page by page) a search for the rows ``condition`` allows
    finds in the table ``records`` that ``create`` makes."""
    db = tmp_path / "records.db"
    db.unlink(missing_ok=True)
    with sqlite3.connect(db) as c:
        c.execute(create)
        c.executemany(f"INSERT INTO records VALUES ({', '.join('?' * len(rows[0]))})", rows)
    c.close()
    pdp = _pdp(condition)
    section = {"url": f"sqlite:///{db}", "resources": {"record": {"table": "records"}}}
    section["resources"]["record"]["properties"] = properties
    config = ServerConfig(bearer_secrets=(SECRET,), search_database=section)
    body: dict[str, Any] = {
        "subject": {"type": "user", "id": "u"},
        "action": {"name": "read"},
        "resource": {"type": "record"},
        "page": {"limit": limit},
    }
    seen: list[str] = []
    with TestClient(create_app(pdp, config=config), headers=AUTH) as client:
        while True:
            found = search(client, body)
            seen += [r["id"] for r in found["results"]]
            if not found["page"]["next_token"]:
                return seen
            body["page"] = {"limit": limit, "token": found["page"]["next_token"]}


def test_a_nocase_table_is_searched_case_sensitively_in_code_point_order(tmp_path: Path) -> None:
    """Neither the column's collation decides ``==`` nor the id's the page order: under
    NOCASE "a" and "A" are one key, and a page after "A" would skip "a"."""
    found = _search_table(
        tmp_path,
        "CREATE TABLE records (id TEXT COLLATE NOCASE, region TEXT COLLATE NOCASE)",
        [("b", "EU"), ("A", "EU"), ("a", "EU"), ("B", "eu"), ("c", "Eu")],
        {"region": "region"},
        'resource.properties.region == "EU"',
        limit=1,
    )
    assert found == ["A", "a", "b"]


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    ids=st.lists(
        st.text(alphabet="aAbB ", min_size=1, max_size=3), min_size=1, max_size=8, unique=True
    ),
    collation=st.sampled_from(["NOCASE", "RTRIM", "BINARY"]),
    limit=st.integers(1, 3),
)
def test_pages_give_every_allowed_id_once_whatever_the_id_collation(
    tmp_path_factory: pytest.TempPathFactory, ids: list[str], collation: str, limit: int
) -> None:
    found = _search_table(
        tmp_path_factory.mktemp("ids"),
        f"CREATE TABLE records (id TEXT COLLATE {collation}, region TEXT COLLATE {collation})",
        [(i, i.strip().upper() or "x") for i in ids],
        {"region": "region"},
        'resource.properties.region >= "A" && resource.id != "B"',
        limit=limit,
    )
    allowed = [i for i in ids if (i.strip().upper() or "x") >= "A" and i != "B"]
    assert found == sorted(allowed)


def test_a_property_with_a_dot_is_the_flat_property_not_the_nested_path(tmp_path: Path) -> None:
    """``properties: {"a.b": col}`` gives rows the property ``"a.b"`` (as the row-by-row
    search reads them), never the map ``a``'s key ``b``."""
    table = "CREATE TABLE records (id TEXT PRIMARY KEY, ab TEXT)"
    rows = [("1", "x"), ("2", "y")]
    assert (
        _search_table(tmp_path, table, rows, {"a.b": "ab"}, 'resource.properties.a.b == "x"') == []
    )
    flat = 'resource.properties["a.b"] == "x"'
    assert _search_table(tmp_path, table, rows, {"a.b": "ab"}, flat) == ["1"]


def test_text_in_an_integer_column_is_a_string_as_row_by_row(tmp_path: Path) -> None:
    """SQLite keeps "abc" in an INTEGER column: a string to CEL (``"abc" > 3`` an error,
    ``"abc" == 3`` false, ``"abc" == "abc"`` true), not text sorted above every number."""
    table = "CREATE TABLE records (id TEXT PRIMARY KEY, level INTEGER)"
    rows = [("1", "abc"), ("2", 5), ("3", 1)]
    for condition, allowed in [
        ("resource.properties.level > 3", ["2"]),
        ("resource.properties.level != 3", ["1", "2", "3"]),
        ('resource.properties.level == "abc"', ["1"]),
        ('resource.properties.level.startsWith("a")', ["1"]),
    ]:
        assert _search_table(tmp_path, table, rows, {"level": "level"}, condition) == allowed


_NAMES = st.text(alphabet="ab.", min_size=1, max_size=4)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    names=st.lists(_NAMES, min_size=1, max_size=3, unique=True),
    data=st.data(),
    nested=st.booleans(),
    values=st.lists(st.sampled_from(["x", "y"]), min_size=3, max_size=3),
)
def test_property_names_with_dots_are_the_flat_properties(
    tmp_path_factory: pytest.TempPathFactory,
    names: list[str],
    data: st.DataObject,
    nested: bool,
    values: list[str],
) -> None:
    """A condition on ``resource.properties["a.b"]`` (or, written as a path, on the map
    ``a``'s key ``b``) selects what ``evaluate`` allows on rows whose properties are the
    section's names, as the row-by-row search reads them."""
    read = data.draw(st.sampled_from(names) | _NAMES)
    if nested and all(p.isidentifier() for p in read.split(".")):
        condition = f'resource.properties.{read} == "x"'
        path = ("properties", *read.split("."))
    else:
        path = ("properties", read)
        condition = f'{Field(path).name} == "x"'
    columns = [f"c{n}" for n in range(len(names))]
    found = _search_table(
        tmp_path_factory.mktemp("dots"),
        f"CREATE TABLE records (id TEXT PRIMARY KEY, {', '.join(c + ' TEXT' for c in columns)})",
        [(str(n), *[values[(n + k) % 3] for k in range(len(names))]) for n in range(3)],
        dict(zip(names, columns, strict=True)),
        condition,
    )
    pdp = _pdp(condition)
    allowed = []
    for n in range(3):
        props = {name: values[(n + k) % 3] for k, name in enumerate(names)}
        resource = {"type": "record", "id": str(n), "properties": props}
        request = {
            "subject": {"type": "user", "id": "u"},
            "action": {"name": "read"},
            "resource": resource,
        }
        if pdp.evaluate(request).allowed:
            allowed.append(str(n))
    assert found == allowed, (condition, names)


# --- a NUL in SQLite text, a BOOLEAN holding 2: the filter's row is an error


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("size(resource.properties.name) < 3", ["2"]),  # "x\0yyyyy" has 7 code points
        ("resource.properties.flag != true", ["1"]),  # 2 in a BOOLEAN is read as True
    ],
)
def test_a_nul_in_text_or_a_boolean_holding_2_escapes_no_condition(
    tmp_path: Path, condition: str, expected: list[str]
) -> None:
    table = "CREATE TABLE records (id TEXT PRIMARY KEY, name TEXT, flag BOOLEAN)"
    rows = [("1", "x\x00yyyyy", 0), ("2", "xy", 2)]
    props = {"name": "name", "flag": "flag"}
    assert _search_table(tmp_path, table, rows, props, condition) == expected


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    names=st.lists(st.text(alphabet="ab\x00", max_size=4), min_size=1, max_size=5),
    condition=st.sampled_from(
        [
            "size(resource.properties.name) < 3",
            'resource.properties.name.endsWith("b")',
            'resource.properties.name.startsWith("a")',
            'resource.properties.name.contains("b")',
            'resource.properties.name == "ab"',
        ]
    ),
    deny=st.booleans(),
)
def test_text_holding_nul_is_an_error_where_sqlite_counts_characters(
    tmp_path_factory: pytest.TempPathFactory, names: list[str], condition: str, deny: bool
) -> None:
    if deny:
        condition = f"!({condition})"
    found = _search_table(
        tmp_path_factory.mktemp("nul"),
        "CREATE TABLE records (id TEXT PRIMARY KEY, name TEXT)",
        [(str(n), name) for n, name in enumerate(names)],
        {"name": "name"},
        condition,
    )
    counted = "contains" not in condition and "==" not in condition
    rows = {str(n): {} if counted and "\x00" in v else {"name": v} for n, v in enumerate(names)}
    assert found == _allowed(condition, rows)


def _allowed(condition: str, rows: dict[str, dict[str, Any]]) -> list[str]:
    """The ids of ``rows`` (in order) ``evaluate`` allows under ``allow when condition``."""
    pdp = _pdp(condition)
    request = {"subject": {"type": "user", "id": "u"}, "action": {"name": "read"}}
    return [
        rid
        for rid, props in rows.items()
        if pdp.evaluate(
            {**request, "resource": {"type": "record", "id": rid, "properties": props}}
        ).allowed
    ]


# --- an INTEGER id column: a request's id is its text


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    ids=st.sets(st.integers(-20, 20), min_size=1, max_size=6),
    condition=st.sampled_from(
        [
            'resource.id == "1"',
            'resource.id != "1"',
            'resource.id in ["1", "-3", "12"]',
            'resource.id < "2"',
            'resource.id.startsWith("1")',
        ]
    ),
    limit=st.integers(1, 3),
)
def test_integer_ids_are_compared_as_their_text(
    tmp_path_factory: pytest.TempPathFactory, ids: set[int], condition: str, limit: int
) -> None:
    found = _search_table(
        tmp_path_factory.mktemp("ids"),
        "CREATE TABLE records (id INTEGER PRIMARY KEY)",
        [(i,) for i in sorted(ids)],
        {},
        condition,
        limit=limit,
    )
    assert found == _allowed(condition, {str(i): {} for i in sorted(ids)})


# --- a PostgreSQL native ENUM column: searched as its labels, never a 503


def test_a_native_enum_column_is_searched_as_its_labels(postgres_url: str) -> None:
    """Through the plan's filter, never a database error (a 503); a filter PostgreSQL
    cannot run falls back to deciding rows one by one."""
    import sqlalchemy as sa

    from zerotrust.server.plan_search import PlanSearch
    from zerotrust.server.search import PageTokens

    engine = sa.create_engine(postgres_url)
    statements = [
        "DROP TABLE IF EXISTS records",
        "DROP TYPE IF EXISTS records_tier",
        "CREATE TYPE records_tier AS ENUM ('std', 'gold')",
        "CREATE TABLE records (id TEXT PRIMARY KEY, tier records_tier)",
        "INSERT INTO records VALUES ('1', 'gold'), ('2', 'std'), ('3', NULL)",
    ]
    with engine.begin() as c:
        for statement in statements:
            c.execute(sa.text(statement))
    engine.dispose()
    section = {"url": postgres_url, "resources": {"record": {"table": "records"}}}
    section["resources"]["record"]["properties"] = {"tier": "tier"}
    config = ServerConfig(bearer_secrets=(SECRET,), search_database=section).search_database
    assert config is not None
    search = PlanSearch(config)
    try:
        for condition, allowed in [
            ('resource.properties.tier == "gold"', ("1",)),
            ('resource.properties.tier.endsWith("d")', ("1", "2")),
            ('resource.properties.tier < "h"', ("1",)),
            ('resource.properties.tier == "gold\\x00"', None),  # PostgreSQL text: no NUL
        ]:
            pdp = _pdp(condition)
            plan = pdp.plan(
                {
                    "subject": {"type": "user", "id": "u"},
                    "action": {"name": "read"},
                    "resource": {"type": "record"},
                }
            )
            page = search.page(plan, PageTokens(b"k" * 32), "f", None, 10)
            if allowed is None:  # not a filter on PostgreSQL: decided row by row
                assert page is None, condition
            else:
                assert page is not None and page.ids == allowed, condition
    finally:
        search.close()
