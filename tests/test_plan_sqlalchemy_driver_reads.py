"""Columns whose SQL value is not the value the application reads: SQLite text holding
a NUL (length() and substr() stop there), a SQLite BOOLEAN holding 2 or text (read as
``bool(value)``), PostgreSQL REAL, CHAR(n) and ENUM columns, ``resource.id`` on an
integer column. The filter reads each as the driver does, or makes the row an error
(never one row too many); each family is tested on a real database against ``evaluate``."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from test_plan_sqlalchemy_exact import (
    _OPS,
    _REQUEST,
    _SETTINGS,
    _assert_exact,
    _cel,
    _evaluated,
    _pdp,
    _rows,
    _selected,
    _table,
    engine,
    sqlite,
)

from zerotrust import PolicyDecisionPoint
from zerotrust.plan import NotExpressibleError
from zerotrust.plan.sqlalchemy import to_filter

__all__ = ["engine", "sqlite"]  # (the fixtures)


# --- a NUL in SQLite text: length() and substr() stop there, CEL counts every code point

_NUL_ROWS: dict[str, dict[str, Any]] = {"nul": {"name": "x\x00yyyyy"}, "short": {"name": "xy"}}


@pytest.mark.parametrize(
    ("condition", "deny"),
    [
        ("size(resource.properties.name) < 3", False),
        ('resource.properties.name.endsWith("yy")', True),
        ("size(resource.properties.name) > 3", True),
    ],
)
def test_a_nul_in_sqlite_text_cannot_escape_size_or_ends_with(
    sqlite: sa.Engine, condition: str, deny: bool
) -> None:
    table = _table(sqlite, _NUL_ROWS, name=sa.String(50))
    pdp = _pdp(condition, deny)
    assert "nul" not in _evaluated(pdp, _NUL_ROWS)
    assert _selected(sqlite, table, pdp) == _evaluated(pdp, _NUL_ROWS)


_COUNTED = ("size", "startsWith", "endsWith")


@_SETTINGS
@given(
    values=st.lists(st.none() | st.text(alphabet="ab\x00", max_size=4), min_size=1, max_size=6),
    method=st.sampled_from([*_COUNTED, "contains", "==", "<", "in"]),
    value=st.text(alphabet="ab\x00", max_size=3),
    deny=st.booleans(),
)
def test_text_holding_nul_is_an_error_where_sqlite_counts_characters(
    sqlite: sa.Engine, values: list[Any], method: str, value: str, deny: bool
) -> None:
    """Where SQLite counts characters (size, startsWith, endsWith) a row whose text holds
    a NUL is an error, as if the property were missing; elsewhere it is exact."""
    rows = _rows(("s",), [(v,) for v in values])
    table = _table(sqlite, rows, s=sa.String())
    s = "resource.properties.s"
    literal = '"' + value.replace("\x00", "\\x00") + '"'
    condition = {
        "size": f"size({s}) < {len(value)}",
        "==": f"{s} == {literal}",
        "<": f"{s} < {literal}",
        "in": f"{s} in [{literal}]",
    }.get(method, f"{s}.{method}({literal})")
    pdp = _pdp(condition, deny)
    model = rows
    if method in _COUNTED:
        model = {k: {n: v for n, v in p.items() if "\x00" not in v} for k, p in rows.items()}
    assert _selected(sqlite, table, pdp) == _evaluated(pdp, model), condition


def test_a_literal_holding_nul_does_not_start_a_sqlite_text(sqlite: sa.Engine) -> None:
    rows = {"a": {"s": "a"}, "b": {"s": "ab"}}
    table = _table(sqlite, rows, s=sa.String())
    for method in ("startsWith", "endsWith"):
        for deny in (False, True):
            _assert_exact(sqlite, table, rows, f'resource.properties.s.{method}("a\\x00")', deny)


# --- a SQLite BOOLEAN holding 2 or text: SQLAlchemy reads bool(value), the filter errs


@pytest.mark.parametrize(
    ("condition", "deny"),
    [
        ("resource.properties.flag == true", True),
        ("resource.properties.flag in [true]", True),
        ("resource.properties.flag != true", False),
        ("resource.properties.flag", True),
        ("!resource.properties.flag", False),
    ],
)
@pytest.mark.parametrize("stored", [2, -1, "'true'", "''", 0.5])
def test_a_sqlite_boolean_holding_other_than_0_or_1_is_an_error(
    sqlite: sa.Engine, condition: str, deny: bool, stored: Any
) -> None:
    rows = {"odd": {"flag": True}}
    table = _table(sqlite, rows, flag=sa.Boolean())
    with sqlite.begin() as c:
        c.exec_driver_sql(f"UPDATE exact_rows SET flag = {stored}")
    pdp = _pdp(condition, deny)
    assert _selected(sqlite, table, pdp) == set()


# --- PostgreSQL columns whose SQL value is not the value the driver reads


def _read_back(engine: sa.Engine, table: sa.Table, name: str) -> dict[str, dict[str, Any]]:
    """The rows as the application reads them (what it would give ``evaluate``)."""
    with engine.connect() as c:
        found = c.execute(sa.select(table.c.id, table.c[name]))
        return {rid: {} if v is None else {name: v} for rid, v in found}


@pytest.mark.parametrize(
    ("condition", "deny"),
    [
        ("resource.properties.level >= 0.7", True),
        ("resource.properties.level == 0.1", True),
        ("resource.properties.level < 0.7", False),
    ],
)
def test_a_real_float4_column_compares_the_value_the_driver_reads(
    engine: sa.Engine, condition: str, deny: bool
) -> None:
    rows = {"a": {"level": 0.7}, "b": {"level": 0.1}, "c": {"level": 0.25}}
    table = _table(engine, rows, level=sa.REAL())
    read = _read_back(engine, table, "level")
    assert read == rows  # psycopg reads the float4 0.7 as 0.7
    pdp = _pdp(condition, deny)
    assert _selected(engine, table, pdp) == _evaluated(pdp, read)


_FLOAT4 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@_SETTINGS
@given(
    values=st.lists(st.none() | _FLOAT4, min_size=1, max_size=6),
    precision=st.sampled_from([None, 1, 24]),
    op=st.sampled_from([*_OPS, "in"]),
    value=st.sampled_from([0.1, 0.7, 1.0, 1e-7, 3.4e38]) | _FLOAT4,
    pick=st.integers(0, 5),
    deny=st.booleans(),
)
def test_float4_columns_compare_as_read(
    engine: sa.Engine,
    values: list[Any],
    precision: int | None,
    op: str,
    value: float,
    pick: int,
    deny: bool,
) -> None:
    """A REAL (or FLOAT(p), p <= 24) against a double: the value the driver reads."""
    rows = _rows(("x",), [(v,) for v in values])
    type_ = sa.REAL() if precision is None else sa.Float(precision=precision)
    table = _table(engine, rows, x=type_)
    read = _read_back(engine, table, "x")
    known = [p["x"] for p in read.values() if p]
    if known and pick % 2:  # a value some row holds, as read
        value = known[pick % len(known)]
    x = "resource.properties.x"
    condition = f"{x} in {_cel([value, 2.5])}" if op == "in" else f"{x} {op} {_cel(value)}"
    pdp = _pdp(condition, deny)
    assert _selected(engine, table, pdp) == _evaluated(pdp, read), condition


@pytest.mark.parametrize(
    ("condition", "deny"),
    [
        ('resource.properties.name == "ab"', False),
        ('resource.properties.name.endsWith(" ")', True),
        ("size(resource.properties.name) > 2", True),
    ],
)
def test_a_char_column_keeps_the_padding_the_driver_reads(
    engine: sa.Engine, condition: str, deny: bool
) -> None:
    rows = {"a": {"name": "ab"}}
    table = _table(engine, rows, name=sa.CHAR(5))
    read = _read_back(engine, table, "name")
    pdp = _pdp(condition, deny)
    assert _selected(engine, table, pdp) == _evaluated(pdp, read)


_PADDED = st.text(alphabet="aB ", max_size=4)


@_SETTINGS
@given(
    values=st.lists(st.none() | _PADDED, min_size=1, max_size=6),
    op=st.sampled_from([*_OPS, "in", "size", "startsWith", "endsWith", "contains"]),
    value=_PADDED,
    deny=st.booleans(),
)
def test_char_columns_compare_as_read(
    engine: sa.Engine, values: list[Any], op: str, value: str, deny: bool
) -> None:
    rows = _rows(("c",), [(v,) for v in values])
    table = _table(engine, rows, c=sa.CHAR(4))
    read = _read_back(engine, table, "c")
    c = "resource.properties.c"
    condition = {
        "in": f"{c} in {_cel([value, 'a   '])}",
        "size": f"size({c}) < {len(value) + 2}",
    }.get(op, f"{c} {op} {_cel(value)}" if op in _OPS else f"{c}.{op}({_cel(value)})")
    pdp = _pdp(condition, deny)
    assert _selected(engine, table, pdp) == _evaluated(pdp, read), condition


def test_a_native_enum_column_is_compared_as_its_label(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url, poolclass=sa.pool.StaticPool)
    try:
        with engine.begin() as c:
            c.execute(sa.text("DROP TABLE IF EXISTS exact_rows"))
            c.execute(sa.text("DROP TYPE IF EXISTS exact_tier"))
        rows = {"a": {"tier": "gold"}, "b": {"tier": "std"}, "c": {}}
        table = _table(engine, rows, tier=sa.Enum("std", "gold", name="exact_tier"))
        for condition in (
            'resource.properties.tier == "gold"',
            'resource.properties.tier < "h"',
            'resource.properties.tier.endsWith("d")',
            "size(resource.properties.tier) > 3",
        ):
            for deny in (False, True):
                _assert_exact(engine, table, rows, condition, deny)
    finally:
        engine.dispose()


def test_an_enum_of_a_python_class_is_a_typed_error() -> None:
    import enum

    class Tier(enum.Enum):
        STD = "std"

    table = sa.table("t", sa.column("id", sa.String), sa.column("tier", sa.Enum(Tier)))
    plan = _pdp('resource.properties.tier == "std"', deny=False).plan(_REQUEST)
    with pytest.raises(NotExpressibleError, match="Enum of Tier"):
        to_filter(plan, {"resource.id": table.c.id, "resource.properties.tier": table.c.tier})


# --- resource.id mapped to an integer column: a request's id is a string


def _ids(engine: sa.Engine, ids: list[int]) -> sa.Table:
    metadata = sa.MetaData()
    table = sa.Table("exact_ids", metadata, sa.Column("id", sa.BigInteger, primary_key=True))
    with engine.begin() as c:
        c.execute(sa.text("DROP TABLE IF EXISTS exact_ids"))
        metadata.create_all(c)
        if ids:
            c.execute(table.insert(), [{"id": i} for i in ids])
    return table


def _id_rows(engine: sa.Engine, table: sa.Table, pdp: PolicyDecisionPoint) -> set[str]:
    where = to_filter(pdp.plan(_REQUEST), {"resource.id": table.c.id})
    with engine.connect() as c:
        return {str(i) for i in c.scalars(sa.select(table.c.id).where(where))}


def test_an_integer_id_column_cannot_escape_a_deny_on_ids(engine: sa.Engine) -> None:
    table = _ids(engine, [1, 2])
    for condition in ('resource.id == "1"', 'resource.id in ["1", "9"]'):
        pdp = _pdp(condition, deny=True)
        assert _evaluated(pdp, {"1": {}, "2": {}}) == {"2"}
        assert _id_rows(engine, table, pdp) == {"2"}


@_SETTINGS
@given(
    ids=st.sets(st.integers(-(2**63), 2**63 - 1) | st.integers(-20, 20), max_size=6),
    op=st.sampled_from([*_OPS, "in", "startsWith", "size"]),
    value=st.integers(-20, 20),
    deny=st.booleans(),
)
def test_integer_id_columns_compare_as_their_text(
    engine: sa.Engine, ids: set[int], op: str, value: int, deny: bool
) -> None:
    table = _ids(engine, sorted(ids))
    text = _cel(str(value))
    condition = {
        "in": f"resource.id in [{text}, {_cel(str(value + 1))}]",
        "startsWith": f"resource.id.startsWith({text})",
        "size": f"size(resource.id) > {abs(value) % 4}",
    }.get(op, f"resource.id {op} {text}")
    pdp = _pdp(condition, deny)
    assert _id_rows(engine, table, pdp) == _evaluated(pdp, {str(i): {} for i in ids}), condition


@pytest.mark.parametrize("type_", [sa.Double(), sa.Boolean()])
def test_an_id_column_of_another_type_is_a_typed_error(type_: Any) -> None:
    table = sa.table("t", sa.column("id", type_))
    plan = _pdp('resource.id == "1"', deny=False).plan(_REQUEST)
    with pytest.raises(NotExpressibleError, match="string or an integer"):
        to_filter(plan, {"resource.id": table.c.id})


@pytest.mark.parametrize(("driver", "refused"), [("psycopg", False), ("asyncpg", True)])
def test_a_real_column_is_read_from_its_text_or_refused(driver: str, refused: bool) -> None:
    """psycopg reads a REAL from its text; asyncpg in binary, which the filter refuses."""
    from sqlalchemy.dialects import postgresql

    table = sa.table("t", sa.column("id", sa.String), sa.column("x", sa.REAL))
    plan = _pdp("resource.properties.x < 0.7", deny=False).plan(_REQUEST)
    where = to_filter(plan, {"resource.id": table.c.id, "resource.properties.x": table.c.x})
    dialect = getattr(postgresql, driver).dialect()
    if refused:
        with pytest.raises(NotExpressibleError, match="psycopg"):
            where.compile(dialect=dialect)
    else:
        assert "CAST(CAST(t.x AS text) AS float8)" in str(where.compile(dialect=dialect))


@pytest.mark.parametrize(
    "condition",
    [
        'resource.properties.s == "a\\x00"',
        'resource.properties.s in ["b", "a\\x00"]',
        'resource.properties.s.contains("\\x00")',
    ],
)
def test_a_literal_holding_nul_is_exact_on_sqlite_and_refused_on_postgresql(
    engine: sa.Engine, condition: str
) -> None:
    """PostgreSQL text cannot hold a NUL (the driver refuses such a parameter)."""
    rows = {"a": {"s": "a"}, "b": {"s": "b"}}
    table = _table(engine, rows, s=sa.String())
    for deny in (False, True):
        if engine.dialect.name == "sqlite":
            _assert_exact(engine, table, rows, condition, deny)
        else:
            with pytest.raises(NotExpressibleError, match="NUL"):
                _selected(engine, table, _pdp(condition, deny))
