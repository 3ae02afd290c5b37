"""Where a database's own meaning of a comparison differs from CEL's, the SQLAlchemy
filter keeps CEL's: a column's collation (SQLite NOCASE, RTRIM), an int meeting a double
(CEL compares two doubles, SQLite exactly), PostgreSQL's NaN (equal to itself, above
every number), SQLite's dynamic typing (text kept in an INTEGER column), integers beyond
64 bits and infinite doubles. Each family is tested on a real database against
``evaluate`` (or the plan's own reading, where ``evaluate`` cannot take the row)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zerotrust import PolicyDecisionPoint
from zerotrust.plan import NotExpressibleError
from zerotrust.plan.sqlalchemy import to_filter

_SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
_OPS = ("==", "!=", "<", "<=", ">", ">=")


def _pdp(condition: str, deny: bool) -> PolicyDecisionPoint:
    """Allow where ``condition`` holds, or (``deny``) allow all but where it fires."""
    if deny:
        rules = (
            f"  - {{id: all, effect: allow}}\n  - {{id: d, effect: deny, when: '{condition}'}}\n"
        )
    else:
        rules = f"  - {{id: a, effect: allow, when: '{condition}'}}\n"
    policy = f"policy: p\ntarget: {{resources: [doc], actions: [read]}}\nrules:\n{rules}"
    return PolicyDecisionPoint.from_texts({"p.yaml": policy})


_REQUEST = {
    "subject": {"type": "user", "id": "u"},
    "action": {"name": "read"},
    "resource": {"type": "doc"},
}


def _evaluated(pdp: PolicyDecisionPoint, rows: dict[str, dict[str, Any]]) -> set[str]:
    return {
        rid
        for rid, props in rows.items()
        if pdp.evaluate(
            {**_REQUEST, "resource": {"type": "doc", "id": rid, "properties": props}}
        ).allowed
    }


def _selected(engine: sa.Engine, table: sa.Table, pdp: PolicyDecisionPoint) -> set[str]:
    mapping = {"resource.id": table.c.id}
    mapping.update({f"resource.properties.{c.name}": c for c in table.c if c.name != "id"})
    where = to_filter(pdp.plan(_REQUEST), mapping)
    with engine.connect() as c:
        return set(c.scalars(sa.select(table.c.id).where(where)))


@pytest.fixture(scope="module")
def sqlite() -> Iterator[sa.Engine]:
    made = sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool)
    yield made
    made.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    url = "sqlite://" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    made = sa.create_engine(url, poolclass=sa.pool.StaticPool)
    yield made
    made.dispose()


def _table(engine: sa.Engine, rows: dict[str, dict[str, Any]], **columns: Any) -> sa.Table:
    """A fresh table ``exact_rows`` holding ``rows`` (NULL for a missing property)."""
    metadata = sa.MetaData()
    table = sa.Table(
        "exact_rows",
        metadata,
        sa.Column("id", sa.String(20), primary_key=True),
        *(sa.Column(name, type_) for name, type_ in columns.items()),
    )
    with engine.begin() as c:
        c.execute(sa.text("DROP TABLE IF EXISTS exact_rows"))
        metadata.create_all(c)
        for rid, props in rows.items():
            c.execute(table.insert().values(id=rid, **{k: props.get(k) for k in columns}))
    return table


def _rows(names: tuple[str, ...], values: Any) -> dict[str, dict[str, Any]]:
    """Rows ``"0"``, ``"1"``... of the named properties (None: missing)."""
    return {
        str(n): {k: v for k, v in zip(names, row, strict=True) if v is not None}
        for n, row in enumerate(values)
    }


def _assert_exact(
    engine: sa.Engine, table: sa.Table, rows: dict[str, Any], condition: str, deny: bool
) -> None:
    pdp = _pdp(condition, deny)
    assert _selected(engine, table, pdp) == _evaluated(pdp, rows), (condition, deny)


def _cel(value: Any) -> str:
    """A CEL literal (no single quote: the policies are single-quoted YAML)."""
    if isinstance(value, float):
        return f'double("{value}")' if not math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return '"' + value + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_cel(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


# --- a column's collation ------------------------------------------------------------

_CASES = {"a": {"r": "EU"}, "b": {"r": "eu"}, "c": {"r": "Eu"}, "d": {"r": "eu "}, "e": {}}


@pytest.mark.parametrize("collation", ["NOCASE", "RTRIM"])
@pytest.mark.parametrize(
    "condition",
    [
        'resource.properties.r == "EU"',
        'resource.properties.r != "EU"',
        'resource.properties.r in ["EU", "x"]',
        'resource.properties.r < "F"',
        'resource.properties.r >= "eu"',
        'resource.properties.r.startsWith("E")',
        'resource.properties.r.endsWith("u")',
        'resource.properties.r.contains("U")',
    ],
)
def test_a_nocase_column_collation_does_not_decide_equality(
    sqlite: sa.Engine, collation: str, condition: str
) -> None:
    table = _table(sqlite, _CASES, r=sa.String(collation=collation))
    for deny in (False, True):
        _assert_exact(sqlite, table, _CASES, condition, deny)


_TEXT = st.text(alphabet="aAbB ", max_size=3)


@_SETTINGS
@given(
    collations=st.tuples(*[st.sampled_from(["NOCASE", "RTRIM", "BINARY"])] * 2),
    values=st.lists(st.tuples(st.none() | _TEXT, st.none() | _TEXT), min_size=1, max_size=6),
    op=st.sampled_from([*_OPS, "in", "startsWith", "endsWith", "contains", "field"]),
    value=_TEXT,
    deny=st.booleans(),
)
def test_string_comparisons_ignore_any_column_collation(
    sqlite: sa.Engine,
    collations: tuple[str, str],
    values: list[Any],
    op: str,
    value: str,
    deny: bool,
) -> None:
    rows = _rows(("s", "t"), values)
    table = _table(
        sqlite, rows, s=sa.String(collation=collations[0]), t=sa.String(collation=collations[1])
    )
    s, t = "resource.properties.s", "resource.properties.t"
    if op in _OPS:
        condition = f"{s} {op} {_cel(value)}"
    elif op == "in":
        condition = f"{s} in {_cel([value, value.upper()])}"
    elif op == "field":
        condition = f"{s} == {t} || {t} < {s}"
    else:
        condition = f"{s}.{op}({_cel(value)})"
    _assert_exact(sqlite, table, rows, condition, deny)


# --- an int meets a double -------------------------------------------------------------

_NEAR = [1, 2**53, 2**53 + 1, 2**53 - 1, -(2**53) - 1, 2**63 - 1, 2**63 - 2, -(2**63)]


@pytest.mark.parametrize(
    ("condition", "rows"),
    [
        (f"resource.properties.i > {2**53}.0", {"a": {"i": 2**53 + 1}, "b": {"i": 1}}),
        ("resource.properties.i < 9223372036854775807.0", {"a": {"i": 2**63 - 1}, "b": {"i": 1}}),
        (f"resource.properties.i == {2**53}.0", {"a": {"i": 2**53 + 1}, "b": {"i": 1}}),
    ],
)
def test_an_int_column_against_a_double_compares_as_two_doubles(
    engine: sa.Engine, condition: str, rows: dict[str, dict[str, Any]]
) -> None:
    table = _table(engine, rows, i=sa.BigInteger())
    for deny in (False, True):
        _assert_exact(engine, table, rows, condition, deny)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    ints=st.lists(st.none() | st.sampled_from(_NEAR), min_size=1, max_size=5),
    doubles=st.lists(
        st.none() | st.sampled_from([float(n) for n in _NEAR]), min_size=1, max_size=5
    ),
    op=st.sampled_from([*_OPS, "in"]),
    value=st.sampled_from(_NEAR) | st.sampled_from([float(n) for n in _NEAR]),
    other=st.sampled_from(_NEAR) | st.sampled_from([float(n) for n in _NEAR]),
    column=st.sampled_from(["i", "d", "both"]),
    deny=st.booleans(),
)
def test_numbers_near_two_to_the_53_and_63_compare_as_cel_does(
    engine: sa.Engine,
    ints: list[Any],
    doubles: list[Any],
    op: str,
    value: Any,
    other: Any,
    column: str,
    deny: bool,
) -> None:
    rows = _rows(("i", "d"), zip(ints, doubles, strict=False))
    table = _table(engine, rows, i=sa.BigInteger(), d=sa.Double())
    if column == "both":
        condition = f"resource.properties.i {'==' if op == 'in' else op} resource.properties.d"
    elif op == "in":
        condition = f"resource.properties.{column} in {_cel([value, other])}"
    else:
        condition = f"resource.properties.{column} {op} {_cel(value)}"
    _assert_exact(engine, table, rows, condition, deny)


@pytest.mark.parametrize(
    "condition",
    [
        "size(resource.properties.i) > 1",
        'resource.properties.i.startsWith("1")',
        'resource.properties.i == "12"',
        "resource.properties.i == resource.properties.s",
    ],
)
def test_a_number_column_read_as_a_string_is_an_error_or_unequal(
    engine: sa.Engine, condition: str
) -> None:
    """CEL has no ``size`` or ``startsWith`` of an int, and an int never equals a string;
    the filter says so on PostgreSQL too, where the text reading SQLite needs is not
    even written."""
    rows = {"a": {"i": 12, "s": "12"}, "b": {"i": 1, "s": "x"}}
    table = _table(engine, rows, i=sa.BigInteger(), s=sa.String())
    for deny in (False, True):
        _assert_exact(engine, table, rows, condition, deny)


# --- NaN and infinities ---------------------------------------------------------------

_SPECIAL = [math.nan, math.inf, -math.inf, 0.0, 1.5, -1.5]


def test_a_nan_column_equals_nothing_and_orders_with_nothing(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    rows = {"nan": {"x": math.nan}, "six": {"x": 6.0}}
    table = _table(engine, rows, x=sa.Double())
    pdp = _pdp("resource.properties.x > 5.0", deny=False)
    try:
        assert _selected(engine, table, pdp) == {"six"}
    finally:
        engine.dispose()


@_SETTINGS
@given(
    values=st.lists(st.sampled_from(_SPECIAL), min_size=1, max_size=6),
    op=st.sampled_from([*_OPS, "in", "field"]),
    value=st.sampled_from(_SPECIAL[1:]),
    deny=st.booleans(),
)
def test_nan_and_infinite_doubles_compare_as_cel_does(
    engine: sa.Engine, values: list[float], op: str, value: float, deny: bool
) -> None:
    if engine.dialect.name == "sqlite":  # SQLite keeps a NaN as NULL
        values = [v for v in values if not math.isnan(v)] or [0.0]
    rows = {str(n): {"x": v, "y": values[-1 - n]} for n, v in enumerate(values)}
    table = _table(engine, rows, x=sa.Double(), y=sa.Double())
    x = "resource.properties.x"
    condition = {
        "in": f"{x} in {_cel([value, 1])}",
        "field": f"{x} == resource.properties.y || {x} > resource.properties.y",
    }.get(op, f"{x} {op} {_cel(value)}")
    pdp = _pdp(condition, deny)
    plan = pdp.plan(_REQUEST)  # a request is JSON, with no NaN or inf: the plan's reading
    clean = {k: p for k, p in rows.items() if all(map(math.isfinite, p.values()))}
    expected = {k for k, p in rows.items() if plan.matches({"id": k, "properties": p})}
    assert expected & set(clean) == _evaluated(pdp, clean)
    assert _selected(engine, table, pdp) == expected, condition


# --- values SQL cannot hold -----------------------------------------------------------


@pytest.mark.parametrize(
    "condition",
    [
        "resource.properties.i < 18446744073709551615u",
        "resource.properties.i in [1, 18446744073709551615u]",
    ],
)
def test_a_uint_beyond_int64_is_a_typed_error(condition: str) -> None:
    table = sa.table("t", sa.column("id", sa.String), sa.column("i", sa.BigInteger))
    plan = _pdp(condition, deny=False).plan(_REQUEST)
    with pytest.raises(NotExpressibleError, match="64-bit"):
        to_filter(plan, {"resource.id": table.c.id, "resource.properties.i": table.c.i})


def test_a_uint_beyond_int64_against_a_double_column_is_a_double(engine: sa.Engine) -> None:
    rows = {"a": {"x": 1.0}, "b": {"x": 2.0**64}}
    table = _table(engine, rows, x=sa.Double())
    pdp = _pdp("resource.properties.x < 18446744073709551615u", deny=False)
    assert _selected(engine, table, pdp) == _evaluated(pdp, rows) == {"a"}


# --- SQLite's dynamic typing -----------------------------------------------------------

_STORED = {
    "i": ("INTEGER", st.integers(-3, 3) | st.sampled_from(["abc", ""])),
    "d": ("REAL", st.sampled_from([0.5, -1.0, 3.0, "abc", ""])),
    "b": ("BOOLEAN", st.sampled_from([0, 1, 2, -1, "abc", "true", ""])),
    "s": ("TEXT", st.sampled_from(["abc", "", "3"])),
}
#: neither the column's own storage class nor text
_ODD = {"i": st.just(2.5), "s": st.just(b"abc")}
_CONDITIONS = st.sampled_from(
    [
        *(
            f"resource.properties.{c} {op} {v}"
            for c in "ids"
            for op in _OPS
            for v in ("3", "0.5", '"abc"')
        ),
        *(f"resource.properties.b {op} {v}" for op in ("==", "!=") for v in ("true", '"abc"')),
        "resource.properties.b",
        "!resource.properties.b",
        'resource.properties.i in [1, 2.5, "abc"]',
        "resource.properties.i in [1, 2.5]",
        "resource.properties.d in [3, 0.5]",
        'resource.properties.s.startsWith("a")',
        "size(resource.properties.s) > 1",
        "resource.properties.i == resource.properties.d",
        "has(resource.properties.i) && resource.properties.i < 2",
    ]
)


def _stored_rows(
    sqlite: sa.Engine, values: list[dict[str, Any]]
) -> tuple[sa.Table, dict[str, dict[str, Any]]]:
    """The rows as SQLite keeps them (by column affinity) and as a PEP reads them back."""
    with sqlite.begin() as c:
        c.exec_driver_sql("DROP TABLE IF EXISTS exact_rows")
        columns = ", ".join(f"{name} {decl}" for name, (decl, _) in _STORED.items())
        c.exec_driver_sql(f"CREATE TABLE exact_rows (id TEXT PRIMARY KEY, {columns})")
        for n, props in enumerate(values):
            c.exec_driver_sql(
                "INSERT INTO exact_rows VALUES (?, ?, ?, ?, ?)",
                (str(n), *(props.get(k) for k in _STORED)),
            )
        read = c.exec_driver_sql("SELECT * FROM exact_rows").all()
    rows = {}
    for rid, *stored in read:
        props = dict(zip(_STORED, stored, strict=True))
        # SQLAlchemy reads bool(value): the filter decides 0 and 1 alone, any other
        # value is an error to it (as a missing property is)
        b = props["b"]
        props["b"] = bool(b) if type(b) is int and b in (0, 1) else None
        rows[rid] = {k: v for k, v in props.items() if v is not None and not isinstance(v, bytes)}
    types = {"i": sa.BigInteger(), "d": sa.Double(), "b": sa.Boolean(), "s": sa.String()}
    table = sa.Table(
        "exact_rows",
        sa.MetaData(),
        sa.Column("id", sa.String, primary_key=True),
        *(sa.Column(k, t) for k, t in types.items()),
    )
    return table, rows


def test_sqlite_text_in_an_integer_column(sqlite: sa.Engine) -> None:
    """``"abc" > 3`` is an error and ``"abc" == 3`` false, as ``evaluate`` says; SQLite
    itself sorts text above every number."""
    table, rows = _stored_rows(sqlite, [{"i": "abc"}, {"i": 5}, {"i": 1}])
    for condition in ("resource.properties.i > 3", "resource.properties.i != 3"):
        for deny in (False, True):
            _assert_exact(sqlite, table, rows, condition, deny)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    odd=st.booleans(),
    values=st.data(),
    condition=_CONDITIONS,
    deny=st.booleans(),
)
def test_values_of_another_storage_class_are_what_cel_makes_of_them(
    sqlite: sa.Engine, odd: bool, values: st.DataObject, condition: str, deny: bool
) -> None:
    """Exact where a column keeps its own class or text; where neither (a real in an
    INTEGER column, a blob) the row is an error to the filter: never more rows."""
    optional = {k: s | _ODD[k] if odd and k in _ODD else s for k, (_, s) in _STORED.items()}
    table, rows = _stored_rows(
        sqlite,
        values.draw(st.lists(st.fixed_dictionaries({}, optional=optional), min_size=1, max_size=5)),
    )
    pdp = _pdp(condition, deny)
    selected, allowed = _selected(sqlite, table, pdp), _evaluated(pdp, rows)
    assert selected <= allowed, condition
    if not odd:
        assert selected == allowed, condition


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
