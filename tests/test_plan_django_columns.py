"""zerotrust.plan.django where the database alone would decide otherwise than CEL: text
under a collation that ignores case or trailing blanks, integers beyond a double's
precision beside a double, a float column's NaN (PostgreSQL) and a value of another
type than its column's (SQLite keeps 'abc' in an integer column). The rows a filter
selects are the rows ``evaluate`` allows on the values Django reads back. The same runs
on PostgreSQL through tests/plan_django_postgres.py."""

from __future__ import annotations

import json
import math
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from zerotrust.engine import PolicyDecisionPoint
from zerotrust.plan import NotExpressibleError
from zerotrust.plan import residual as r

pytest.importorskip("django")

from web_helpers import django_setup

django_setup()  # the model below needs Django configured when this module is collected

from django.db import connection, transaction  # noqa: E402
from django_site.customers.models import Department, Label  # noqa: E402

from zerotrust.plan.django import to_q  # noqa: E402

TEXT = ("plain", "nocase", "rtrim")
COLUMNS = (*TEXT, "count", "ratio", "flag")
FIELDS = {"resource.id": "pk", **{f"resource.properties.{name}": name for name in COLUMNS}}
BIG = 2**53
TEXTS = ["eu", "EU", "Eu", "eu ", "EU ", "e", "E", "", " ", "é", "É", "e-u", "eu-"]
INTS = [0, 1, -1, BIG - 1, BIG, BIG + 1, BIG + 2, -BIG - 1, 2**62 + 1, 2**63 - 1, -(2**63)]
DOUBLES = [0.0, 0.5, -1.5, float(BIG), float(BIG + 2), 2.0**63, -(2.0**63), 1e300, math.inf]
#: Values of another type than the column's: SQLite keeps them (text in an integer
#: column, a fraction in an integer column), PostgreSQL refuses them.
STRANGERS = ["abc", "1x", "", 2.5]
HEAD = "policy: p\ntarget: {resources: [label], actions: [read]}\nrules:\n"
REQUEST = {
    "subject": {"type": "user", "id": "u"},
    "action": {"name": "read"},
    "resource": {"type": "label"},
}


def store(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` inserted as they are (raw SQL, so SQLite keeps any value's type), and
    returned as resources of the values Django reads back, NULL a missing property."""
    Label.objects.all().delete()
    with connection.cursor() as cursor:
        for i, row in enumerate(rows):
            cursor.execute(
                "INSERT INTO customers_label (id, plain, nocase, rtrim, count, ratio, flag) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [f"r{i}", *(row.get(name) for name in COLUMNS)],
            )
    read = []
    for values in Label.objects.values():
        rid = values.pop("id")
        read.append({"id": rid, "properties": {k: v for k, v in values.items() if v is not None}})
    return read


def selected(condition: Any) -> set[str]:
    return set(Label.objects.filter(to_q(condition, Label, FIELDS)).values_list("pk", flat=True))


def allowed(when: str, resources: list[dict[str, Any]]) -> set[str]:
    """The rows a policy allowing ``when`` allows, and the plan's filter selects (a row
    holding NaN or infinity, which no request can carry, by the plan's own reading)."""
    pdp = PolicyDecisionPoint.from_texts(
        {"p.yaml": HEAD + f"  - {{id: a, effect: allow, when: {json.dumps(when)}}}\n"}
    )
    plan = pdp.plan(REQUEST)
    wanted = set()
    for row in resources:
        if any(isinstance(v, float) and not math.isfinite(v) for v in row["properties"].values()):
            hit = plan.matches(row)
        else:
            hit = pdp.evaluate({**REQUEST, "resource": {"type": "label", **row}}).allowed
            assert plan.matches(row) == hit
        if hit:
            wanted.add(row["id"])
    assert selected(plan) == wanted, when
    return wanted


def check(node: r.Node, resources: list[dict[str, Any]]) -> None:
    """The node's true rows, and its false rows (through ``!``), are CEL's."""
    for condition in (node, r.Not(node)):
        expected = {row["id"] for row in resources if r.holds(condition, row) is True}
        assert selected(condition) == expected, r.to_cel(condition)
    allowed(r.to_cel(node), resources)


# --- the families, generated ----------------------------------------------------------


def _field(name: str) -> r.Field:
    return r.Field(("properties", name))


def row_values(strangers: bool, nan: bool) -> st.SearchStrategy[dict[str, Any]]:
    """A row: text differing in case and blanks; integers and doubles about 2**53 and
    2**63; with ``strangers``, values of another type; with ``nan``, NaN doubles."""
    texts = st.sampled_from(TEXTS)
    ints = st.sampled_from(INTS)
    doubles = st.sampled_from(DOUBLES + [-math.inf] + ([math.nan] * nan))
    flags = st.booleans()
    if strangers:  # a boolean field reads "1" as true, the rest as false, "" as missing
        texts, ints = texts | st.sampled_from([5, 2.5]), ints | st.sampled_from(STRANGERS)
        doubles |= st.sampled_from(STRANGERS[:3])
        flags |= st.sampled_from([2, 1.0, 0.5, "yes", ""])
    return st.fixed_dictionaries(
        {
            **{name: st.none() | texts for name in TEXT},
            "count": st.none() | ints,
            "ratio": st.none() | doubles,
            "flag": st.none() | flags,
        }
    )


_ANY = st.sampled_from([*TEXTS, *INTS, *DOUBLES, None, True, False])
_OPS = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
_FIELDS = st.sampled_from(COLUMNS).map(_field)
_ATOMS = st.one_of(
    st.builds(r.Compare, _OPS, _FIELDS, _ANY.map(r.Value)),
    st.builds(r.Compare, _OPS, _ANY.map(r.Value), _FIELDS),
    st.builds(r.Compare, _OPS, _FIELDS, _FIELDS),
    st.builds(r.In, _FIELDS, st.lists(_ANY, max_size=3).map(r.Value)),
    st.builds(
        r.Call,
        st.sampled_from(["startsWith", "endsWith", "contains"]),
        _FIELDS,
        st.sampled_from(TEXTS).map(lambda text: (r.Value(text),)),
    ),
    st.builds(r.Compare, _OPS, _FIELDS.map(lambda f: r.Call("size", f)), _ANY.map(r.Value)),
    _FIELDS,  # a boolean only where the row holds one
)
NODES = st.recursive(
    _ATOMS,
    lambda inner: st.builds(r.And, inner, inner) | st.builds(r.Or, inner, inner),
    max_leaves=3,
)


def rows_of(strangers: bool, nan: bool) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(row_values(strangers, nan), min_size=1, max_size=6)


def property_check(node: r.Node, rows: list[dict[str, Any]]) -> None:
    with transaction.atomic():
        resources = store(rows)
        note(resources)
        check(node, resources)
        transaction.set_rollback(True)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(NODES, rows_of(strangers=connection.vendor == "sqlite", nan=connection.vendor != "sqlite"))
def test_collations_big_numbers_and_strange_values_decide_nothing(node, rows) -> None:
    property_check(node, rows)


# --- the reviewers' inputs -----------------------------------------------------------------

CASES = [
    # a column collation that ignores case (NOCASE) or trailing blanks (RTRIM)
    *(f'resource.properties.{c} == "EU"' for c in TEXT),
    *(f'resource.properties.{c} in ["EU"]' for c in TEXT),
    *(f'resource.properties.{c} < "F"' for c in TEXT),
    *(f'resource.properties.{c} != "eu"' for c in TEXT),
    *(f'resource.properties.{c}.startsWith("E")' for c in TEXT),
    *(f'resource.properties.{c}.endsWith("U")' for c in TEXT),
    *(f'resource.properties.{c}.contains("u ")' for c in TEXT),
    "resource.properties.nocase == resource.properties.plain",
    # an int beside a double is a double: 2**53 + 1 is 2**53
    f"resource.properties.count > {BIG}.0",
    f"resource.properties.count == {BIG}.0",
    "resource.properties.count < 9223372036854775807.0",
    "resource.properties.ratio == 9007199254740993",
    "resource.properties.count == resource.properties.ratio",
]
CASE_ROWS = [
    {"plain": "EU", "nocase": "EU", "rtrim": "EU", "count": BIG + 1, "ratio": float(BIG)},
    {"plain": "eu", "nocase": "eu", "rtrim": "eu", "count": 2**63 - 1, "ratio": 2.0**63},
    {"plain": "Eu", "nocase": "Eu", "rtrim": "EU ", "count": BIG, "ratio": 1.5},
    {"plain": "EU ", "nocase": "eu ", "rtrim": "eu ", "count": 3},
    {},
]


@pytest.mark.parametrize("when", CASES)
def test_what_the_column_would_decide_otherwise(when: str) -> None:
    with transaction.atomic():
        resources = store(CASE_ROWS)
        allowed(when, resources)
        transaction.set_rollback(True)


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's dynamic typing")
def test_text_in_an_integer_column_is_unequal_and_unordered() -> None:
    """'abc' in an integer column is read as the text it is: ``== 3`` false, ``!= 3``
    true, ``> 3`` an error (SQLite orders text above every number)."""
    with transaction.atomic():
        resources = store([{"count": "abc"}, {"count": 5}, {"count": 1}, {"ratio": "x"}])
        assert allowed("resource.properties.count > 3", resources) == {"r1"}
        assert allowed("!(resource.properties.count > 3)", resources) == {"r2"}
        assert allowed("resource.properties.count != 3", resources) == {"r0", "r1", "r2"}
        assert allowed('resource.properties.count == "abc"', resources) == {"r0"}
        assert allowed('resource.properties.count.startsWith("a")', resources) == {"r0"}
        assert allowed("resource.properties.ratio < 1.0", resources) == set()
        transaction.set_rollback(True)


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's dynamic typing")
def test_a_boolean_field_holding_other_numbers_or_text() -> None:
    """Django (Python's sqlite3) reads a boolean field as true where its text is '1'
    (1.0 is stored as 1), false elsewhere, and an empty one as None: missing."""
    with transaction.atomic():
        rows = [{"flag": 2}, {"flag": 1.0}, {"flag": "yes"}, {"flag": False}, {"flag": ""}]
        resources = store(rows)
        assert [row["properties"].get("flag") for row in resources] == [
            False, True, False, False, None
        ]  # fmt: skip
        assert allowed("resource.properties.flag", resources) == {"r1"}
        assert allowed("!resource.properties.flag", resources) == {"r0", "r2", "r3"}
        assert allowed("has(resource.properties.flag)", resources) == {"r0", "r1", "r2", "r3"}
        assert allowed("resource.properties.flag == 2", resources) == set()
        assert allowed("resource.properties.flag != true", resources) == {"r0", "r2", "r3"}
        transaction.set_rollback(True)


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite stores NaN as NULL")
def test_nan_equals_and_orders_nothing() -> None:
    """A float column's NaN: every comparison false, ``!=`` true (the database would
    have NaN equal to itself and above every number)."""
    with transaction.atomic():
        resources = store([{"ratio": math.nan, "count": 1}, {"ratio": 6.0, "count": 6}, {}])
        assert allowed("resource.properties.ratio > 5.0", resources) == {"r1"}
        assert allowed("!(resource.properties.ratio > 5.0)", resources) == {"r0"}
        assert allowed("resource.properties.ratio != 6.0", resources) == {"r0"}
        assert allowed("resource.properties.ratio == resource.properties.ratio", resources) == {
            "r1"
        }
        assert allowed("resource.properties.ratio in [6.0, 1]", resources) == {"r1"}
        assert allowed("resource.properties.ratio >= resource.properties.count", resources) == {
            "r1"
        }
        transaction.set_rollback(True)


# --- NUL in SQLite text: its length() and substr() of text stop at the first NUL --------

NUL_TEXTS = ["x\x00yyyyy", "\x00", "\x00é", "é\x00", "yy\x00yy", "xy", "yy", "", "é"]
NUL_ARGS = ["yy", "\x00", "\x00y", "y\x00", "x", "é", "x\x00y", ""]
NUL_ONLY = pytest.mark.skipif(connection.vendor != "sqlite", reason="PostgreSQL text holds no NUL")


@NUL_ONLY
@pytest.mark.parametrize(
    "when",
    [
        '!resource.properties.plain.endsWith("yy")',
        '!resource.properties.plain.startsWith("x\\u0000")',
        'resource.properties.plain.startsWith("xy")',
        'resource.properties.plain.contains("\\u0000y")',
        'resource.properties.plain.endsWith("y")',
        'resource.properties.plain == "x"',
        'resource.properties.plain > "x\\u0000"',
        'resource.properties.plain in ["x\\u0000yyyyy"]',
    ],
)
def test_a_nul_in_sqlite_text_cannot_shorten_a_text_test(when: str) -> None:
    """startsWith, endsWith, contains and comparisons see the whole text, NUL and all
    (and an empty text, whose blob SQLite's substr() makes NULL)."""
    with transaction.atomic():
        resources = store([{"plain": "x\x00yyyyy"}, {"plain": "xy"}, {"plain": "x"}, {"plain": ""}])
        assert resources[0]["properties"]["plain"] == "x\x00yyyyy"
        allowed(when, resources)
        transaction.set_rollback(True)


@NUL_ONLY
def test_a_nul_in_sqlite_text_makes_its_size_an_error() -> None:
    """No SQLite function counts the characters of text holding a NUL: ``size`` is an
    error on such a row, so an allow leaves it out and a deny removes it."""
    with transaction.atomic():
        resources = store([{"plain": "x\x00yyyyy"}, {"plain": "xy"}, {"plain": "xyzzy"}])
        assert allowed("size(resource.properties.plain) < 3", resources) == {"r1"}
        assert selected(r.Compare(">", r.Call("size", _field("plain")), r.Value(3))) == {"r2"}
        assert selected(r.Compare("<=", r.Call("size", _field("plain")), r.Value(3))) == {"r1"}
        transaction.set_rollback(True)


def _nul_sizes_failed(node: r.Node, row: dict[str, Any]) -> r.Node:
    """``node`` with the size of each text of ``row`` holding a NUL an error, as the
    filter reads it on SQLite."""
    if isinstance(node, r.Call) and node.name == "size" and isinstance(node.target, r.Field):
        text = row["properties"].get(node.target.path[-1])
        return r.Error("NUL") if isinstance(text, str) and "\x00" in text else node
    changes = {
        a.name: _nul_sizes_failed(getattr(node, a.name), row)
        for a in attrs.fields(type(node))
        if isinstance(getattr(node, a.name), r.Node)
    }
    return attrs.evolve(node, **changes) if changes else node


_NUL_FIELDS = st.sampled_from(["plain", "nocase"]).map(_field)
_NUL_ATOMS = st.one_of(
    st.builds(
        r.Call,
        st.sampled_from(["startsWith", "endsWith", "contains"]),
        _NUL_FIELDS,
        st.sampled_from(NUL_ARGS).map(lambda text: (r.Value(text),)),
    ),
    st.builds(r.Compare, _OPS, _NUL_FIELDS, st.sampled_from(NUL_TEXTS).map(r.Value)),
    st.builds(r.Compare, _OPS, _NUL_FIELDS, _NUL_FIELDS),
    st.builds(r.In, _NUL_FIELDS, st.lists(st.sampled_from(NUL_TEXTS), max_size=3).map(r.Value)),
    st.builds(
        r.Compare,
        _OPS,
        _NUL_FIELDS.map(lambda f: r.Call("size", f)),
        st.integers(0, 7).map(r.Value),
    ),
)
_NUL_NODES = st.recursive(
    _NUL_ATOMS,
    lambda inner: st.builds(r.And, inner, inner) | st.builds(r.Or, inner, inner) | inner.map(r.Not),
    max_leaves=3,
)
_NUL_ROWS = st.lists(
    st.fixed_dictionaries(
        {name: st.none() | st.sampled_from(NUL_TEXTS) for name in ("plain", "nocase")}
    ),
    min_size=1,
    max_size=6,
)


@NUL_ONLY
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_NUL_NODES, _NUL_ROWS)
def test_a_nul_in_sqlite_text_decides_nothing_but_its_size(node, rows) -> None:
    """Every text test and comparison is CEL's on text holding NULs; a size of such a
    text is an error, so the row is in neither the true nor the false rows of it."""
    with transaction.atomic():
        resources = store(rows)
        note(resources)
        for condition in (node, r.Not(node)):
            expected = {
                row["id"]
                for row in resources
                if r.holds(_nul_sizes_failed(condition, row), row) is True
            }
            assert selected(condition) == expected, r.to_cel(condition)
        transaction.set_rollback(True)


# --- an integer key as resource.id: a request's id is text, so row 1 is id "1" ----------

ID = r.Field(("id",))
ID_TEXTS = ["1", "2", "9", "10", "01", "1.0", "-1", " 1", "", "abc", str(2**63 - 1), "-9"]
_ID_ATOMS = st.one_of(
    st.builds(r.Compare, _OPS, st.just(ID), st.sampled_from([*ID_TEXTS, 1, 1.0]).map(r.Value)),
    st.builds(
        r.In, st.just(ID), st.lists(st.sampled_from([*ID_TEXTS, 1]), max_size=3).map(r.Value)
    ),
    st.builds(
        r.Call,
        st.sampled_from(["startsWith", "endsWith", "contains"]),
        st.just(ID),
        st.sampled_from(["1", "0", "-", "9", ""]).map(lambda text: (r.Value(text),)),
    ),
    st.builds(r.Compare, _OPS, st.just(r.Call("size", ID)), st.integers(0, 3).map(r.Value)),
)
ID_NODES = st.recursive(
    _ID_ATOMS,
    lambda inner: st.builds(r.And, inner, inner) | st.builds(r.Or, inner, inner),
    max_leaves=3,
)
KEYS = st.lists(
    st.sampled_from([1, 2, 9, 10, 11, 19, 100, -1, -9, 0, 2**63 - 1]) | st.integers(1, 10**6),
    min_size=1,
    max_size=6,
    unique=True,
)


def _departments(keys: list[int]) -> list[dict[str, Any]]:
    """Departments of these keys, as resources of the ids an app gives them."""
    Department.objects.all().delete()
    Department.objects.bulk_create(Department(pk=key, name=f"d{key}") for key in keys)
    return [{"id": str(key), "properties": {}} for key in keys]


def _by_key(condition: r.Node | Any) -> set[str]:
    q = to_q(condition, Department, {"resource.id": "pk"})
    return {str(key) for key in Department.objects.filter(q).values_list("pk", flat=True)}


def test_an_integer_key_is_the_resource_id_as_text_so_an_id_deny_holds() -> None:
    policy = (
        HEAD + "  - {id: all, effect: allow}\n"
        '  - {id: hold, effect: deny, when: \'resource.id in ["1", "9"]\'}\n'
    )
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": policy})
    with transaction.atomic():
        resources = _departments([1, 2, 10])
        allowed_ids = {
            row["id"]
            for row in resources
            if pdp.evaluate({**REQUEST, "resource": {"type": "label", **row}}).allowed
        }
        assert allowed_ids == {"2", "10"}
        assert _by_key(pdp.plan(REQUEST)) == allowed_ids
        assert _by_key(r.Compare("<", ID, r.Value("9"))) == {"1", "2", "10"}  # as text
        assert _by_key(r.Compare("==", ID, r.Value(1))) == set()  # an int is no id
        transaction.set_rollback(True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ID_NODES, KEYS)
def test_an_integer_key_decides_as_its_text(node, keys) -> None:
    """Membership, equality, text order, text tests and size of an integer key are those
    of the id the app gives the row, str(key); the same as an allowing policy's."""
    with transaction.atomic():
        resources = _departments(keys)
        for condition in (node, r.Not(node)):
            expected = {row["id"] for row in resources if r.holds(condition, row) is True}
            assert _by_key(condition) == expected, r.to_cel(condition)
        pdp = PolicyDecisionPoint.from_texts(
            {"p.yaml": HEAD + f"  - {{id: a, effect: allow, when: {json.dumps(r.to_cel(node))}}}\n"}
        )
        wanted = {
            row["id"]
            for row in resources
            if pdp.evaluate({**REQUEST, "resource": {"type": "label", **row}}).allowed
        }
        assert _by_key(pdp.plan(REQUEST)) == wanted
        transaction.set_rollback(True)


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's dynamic typing")
def test_an_integer_id_field_holding_a_fraction_is_an_error() -> None:
    """An integer field mapped as resource.id holding 2.5 has no one text (SQLite's and
    Python's differ for large values): an error, so an allow leaves the row out and a
    deny removes it; text it holds is read as that text."""
    with transaction.atomic():
        store([{"count": 7}, {"count": 2.5}, {"count": "abc"}, {}])
        fields = {"resource.id": "count"}

        def chosen(node: r.Node) -> set[str]:
            return set(Label.objects.filter(to_q(node, Label, fields)).values_list("pk", flat=True))

        assert chosen(r.Compare("!=", ID, r.Value("x"))) == {"r0", "r2"}
        assert chosen(r.Compare("==", ID, r.Value("x"))) == set()
        assert chosen(r.Not(r.Compare("==", ID, r.Value("x")))) == {"r0", "r2"}
        assert chosen(r.In(ID, r.Value(["7", "abc", "2.5"]))) == {"r0", "r2"}
        transaction.set_rollback(True)


@pytest.mark.parametrize("column", ["ratio", "flag"])
def test_a_float_or_boolean_field_is_no_resource_id(column: str) -> None:
    """1.0 is "1.0" in Python and "1" in PostgreSQL: no one text, so refused."""
    with pytest.raises(NotExpressibleError, match="resource id is text"):
        to_q(r.Compare("==", ID, r.Value("1")), Label, {"resource.id": column})


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's column types")
def test_float_and_char_fields_are_double_and_varchar_on_postgresql() -> None:
    """A FloatField is double precision (not real, whose values a double reads
    otherwise) and a CharField varchar (not char, which pads with blanks)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE (table_name, column_name) IN "
            "(('customers_label', 'ratio'), ('customers_department', 'name'))"
        )
        found = {(table, column): kind for table, column, kind in cursor.fetchall()}
    assert found == {
        ("customers_label", "ratio"): "double precision",
        ("customers_department", "name"): "character varying",
    }
