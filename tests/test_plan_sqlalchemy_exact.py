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
