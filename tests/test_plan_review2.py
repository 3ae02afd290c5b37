"""Second review of query plans: rows a filter allows that ``evaluate`` denies.

Each test is a reproduction; it fails while the finding stands."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from test_plan_sqlalchemy_exact import _evaluated, _pdp, _selected, _table


@pytest.fixture
def sqlite() -> Iterator[sa.Engine]:
    made = sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool)
    yield made
    made.dispose()


# --- HIGH: SQLite's length()/substr() stop at the first NUL; CEL counts every code point


NUL_ROWS: dict[str, dict[str, Any]] = {"nul": {"name": "x\x00yyyyy"}, "short": {"name": "xy"}}


@pytest.mark.parametrize(
    ("condition", "deny"),
    [
        ("size(resource.properties.name) < 3", False),  # allow short names only
        ('resource.properties.name.endsWith("yy")', True),  # deny names ending "yy"
        ("size(resource.properties.name) > 3", True),  # deny long names
    ],
)
def test_sqlalchemy_sqlite_nul_in_text_escapes_size_and_endswith(
    sqlite: sa.Engine, condition: str, deny: bool
) -> None:
    table = _table(sqlite, NUL_ROWS, name=sa.String(50))
    pdp = _pdp(condition, deny)
    assert "nul" not in _evaluated(pdp, NUL_ROWS)
    assert _selected(sqlite, table, pdp) == _evaluated(pdp, NUL_ROWS)


# --- MEDIUM: a SQLAlchemy Boolean column on SQLite holding 2 (no CHECK by default in 2.0):
# SQLAlchemy reads it as True, the filter compares it with 1 and finds it unequal


@pytest.mark.parametrize(
    ("condition", "deny"),
    [
        ("resource.properties.flag == true", True),  # deny flagged rows
        ("resource.properties.flag in [true]", True),
        ("resource.properties.flag != true", False),  # allow unflagged rows
    ],
)
def test_sqlalchemy_sqlite_boolean_column_holding_2(
    sqlite: sa.Engine, condition: str, deny: bool
) -> None:
    rows = {"two": {"flag": True}}  # what SQLAlchemy reads back from the stored 2
    table = _table(sqlite, rows, flag=sa.Boolean())
    with sqlite.begin() as c:
        c.execute(sa.text("UPDATE exact_rows SET flag = 2"))
        assert c.execute(sa.select(table.c.flag)).scalar_one() is True
    pdp = _pdp(condition, deny)
    assert _evaluated(pdp, rows) == set()
    assert _selected(sqlite, table, pdp) == _evaluated(pdp, rows)


# --- HIGH: the same NUL through zerotrust.plan.django on SQLite (Length, Substr)


@pytest.mark.parametrize(
    "when",
    [
        "size(resource.properties.plain) < 3",
        '!resource.properties.plain.endsWith("yy")',
    ],
)
def test_django_sqlite_nul_in_text_escapes_size_and_endswith(when: str) -> None:
    pytest.importorskip("django")
    from test_plan_django_columns import allowed, store  # (configures Django)

    from django.db import connection, transaction

    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL text holds no NUL")
    with transaction.atomic():
        resources = store([{"plain": "x\x00yyyyy"}, {"plain": "xy"}])
        assert resources[0]["properties"]["plain"] == "x\x00yyyyy"
        allowed(when, resources)  # asserts the filter's rows == evaluate's
        transaction.set_rollback(True)


# --- PostgreSQL: column types SQLAlchemy maps to double and string but whose SQL
# meaning is not the value SQLAlchemy reads back


@pytest.fixture
def postgres(postgres_url: str) -> Iterator[sa.Engine]:
    made = sa.create_engine(postgres_url, poolclass=sa.pool.StaticPool)
    yield made
    made.dispose()


def _read_back(engine: sa.Engine, table: sa.Table, name: str) -> dict[str, dict[str, Any]]:
    """The rows as the application reads them (what it would give ``evaluate``)."""
    with engine.connect() as c:
        return {rid: {name: v} for rid, v in c.execute(sa.select(table.c.id, table.c[name]))}


# HIGH: a REAL (float4) column: the driver reads 0.7, the filter compares the float4
# widened to float8 (0.699999988...) with the double 0.7


@pytest.mark.parametrize(
    ("condition", "deny"),
    [
        ("resource.properties.level >= 0.7", True),  # deny the high levels
        ("resource.properties.level == 0.1", True),
        ("resource.properties.level < 0.7", False),  # allow the low levels
    ],
)
def test_sqlalchemy_postgres_real_float4_column(
    postgres: sa.Engine, condition: str, deny: bool
) -> None:
    rows = {"a": {"level": 0.7}, "b": {"level": 0.1}, "c": {"level": 0.25}}
    table = _table(postgres, rows, level=sa.REAL())
    read = _read_back(postgres, table, "level")
    assert read == rows  # psycopg reads float4 0.7 as 0.7
    pdp = _pdp(condition, deny)
    assert _selected(postgres, table, pdp) == _evaluated(pdp, read)


# HIGH: a CHAR(n) (bpchar) column: the driver reads the blank-padded text, while
# PostgreSQL's length(), = and substr() on bpchar ignore the trailing blanks


@pytest.mark.parametrize(
    ("condition", "deny"),
    [
        ('resource.properties.name == "ab"', False),  # allow exactly "ab"
        ('resource.properties.name.endsWith(" ")', True),
        ("size(resource.properties.name) > 2", True),
    ],
)
def test_sqlalchemy_postgres_char_column_padding(
    postgres: sa.Engine, condition: str, deny: bool
) -> None:
    rows = {"a": {"name": "ab"}}
    table = _table(postgres, rows, name=sa.CHAR(5))
    read = _read_back(postgres, table, "name")
    assert read == {"a": {"name": "ab   "}}
    pdp = _pdp(condition, deny)
    assert _selected(postgres, table, pdp) == _evaluated(pdp, read)


# --- the server's plan-backed search inherits the SQLite findings (row-by-row search
# reads the same rows through SQLAlchemy and decides otherwise)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("size(resource.properties.name) < 3", ["2"]),  # "x\0yyyyy" has 7 code points
        ("resource.properties.flag != true", ["1"]),  # 2 in a BOOLEAN is read as True
    ],
)
def test_server_search_sqlite_nul_and_boolean_2(
    tmp_path: Any, condition: str, expected: list[str]
) -> None:
    from test_server_plan_search_exact import _search_table

    table = "CREATE TABLE records (id TEXT PRIMARY KEY, name TEXT, flag BOOLEAN)"
    rows = [("1", "x\x00yyyyy", 0), ("2", "xy", 2)]
    props = {"name": "name", "flag": "flag"}
    assert _search_table(tmp_path, table, rows, props, condition) == expected


# --- MEDIUM: risk folding orders risk.signals as "known first, then the row's", while
# evaluate lists them in policy order: a rule reading risk.signals by position (or
# comparing the list) decides otherwise


def test_plan_risk_signals_order_differs_from_evaluate() -> None:
    from zerotrust import PolicyDecisionPoint

    text = """
policy: risky
target: {resources: [doc], actions: [read]}
signals:
  - {name: secret, score: 10, when: resource.properties.secret == true}
  - {name: offhours, score: 10}
rules:
  - {id: a, effect: allow}
  - {id: d, effect: deny, when: 'risk.signals[0] == "secret"'}
"""
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": text})
    request = {
        "subject": {"type": "user", "id": "u"},
        "action": {"name": "read"},
        "resource": {"type": "doc"},
    }
    row = {"id": "1", "properties": {"secret": True}}
    assert not pdp.evaluate({**request, "resource": {"type": "doc", **row}}).allowed
    assert pdp.plan(request).matches(row) is False


# --- HIGH: resource.id mapped to an integer primary key (Django's default AutoField
# "pk", an Integer id in SQLAlchemy). resource.id is a string in every request (evaluate
# refuses a number), so the app decides row 1 as id "1"; the filter compares the int
# column with the string "1": never equal, and a deny on ids never fires.


def test_django_integer_pk_as_resource_id_escapes_id_deny() -> None:
    pytest.importorskip("django")
    from test_plan_django_columns import REQUEST  # (configures Django)

    from django.db import transaction
    from django_site.customers.models import Department

    from zerotrust.engine import PolicyDecisionPoint
    from zerotrust.plan.django import to_q

    policy = (
        "policy: p\ntarget: {resources: [label], actions: [read]}\nrules:\n"
        "  - {id: all, effect: allow}\n"
        '  - {id: hold, effect: deny, when: \'resource.id in ["1", "9"]\'}\n'
    )
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": policy})
    with transaction.atomic():
        Department.objects.all().delete()
        Department.objects.create(pk=1, name="held")
        Department.objects.create(pk=2, name="free")
        allowed = {
            d.pk
            for d in Department.objects.all()
            if pdp.evaluate(
                {**REQUEST, "resource": {"type": "label", "id": str(d.pk), "properties": {}}}
            ).allowed
        }
        assert allowed == {2}
        q = to_q(pdp.plan(REQUEST), Department, {"resource.id": "pk"})
        assert set(Department.objects.filter(q).values_list("pk", flat=True)) == allowed
        transaction.set_rollback(True)


def test_sqlalchemy_integer_id_as_resource_id_escapes_id_deny(sqlite: sa.Engine) -> None:
    metadata = sa.MetaData()
    table = sa.Table("users", metadata, sa.Column("id", sa.Integer, primary_key=True))
    metadata.create_all(sqlite)
    with sqlite.begin() as c:
        c.execute(table.insert(), [{"id": 1}, {"id": 2}])
    pdp = _pdp('resource.id == "1"', deny=True)
    assert _evaluated(pdp, {"1": {}, "2": {}}) == {"2"}
    where = to_filter_(pdp, {"resource.id": table.c.id})
    with sqlite.connect() as c:
        assert {str(i) for i in c.scalars(sa.select(table.c.id).where(where))} == {"2"}


def to_filter_(pdp: Any, mapping: dict[str, Any]) -> Any:
    from test_plan_sqlalchemy_exact import _REQUEST

    from zerotrust.plan.sqlalchemy import to_filter

    return to_filter(pdp.plan(_REQUEST), mapping)


# --- LOW (crash, fails closed): a PostgreSQL native ENUM column is an sa.String to the
# adapter; the filter it builds collates it ("collations are not supported by type") or
# calls substr() on it: a DBAPIError at execution instead of NotExpressibleError at
# to_filter time (the server answers 503 instead of deciding rows one by one)


def test_sqlalchemy_postgres_enum_column_crashes_at_execution(postgres: sa.Engine) -> None:
    from zerotrust.plan import NotExpressibleError

    with postgres.begin() as c:
        c.execute(sa.text("DROP TABLE IF EXISTS exact_rows"))
        c.execute(sa.text("DROP TYPE IF EXISTS review2_tier"))
    rows = {"a": {"tier": "gold"}, "b": {"tier": "std"}}
    table = _table(postgres, rows, tier=sa.Enum("std", "gold", name="review2_tier"))
    pdp = _pdp('resource.properties.tier == "gold"', True)
    try:
        selected = _selected(postgres, table, pdp)
    except NotExpressibleError:
        return  # refused up front: acceptable
    assert selected == _evaluated(pdp, rows)
