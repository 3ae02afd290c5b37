"""Plans as SQLAlchemy filters, on a real SQLite and a real PostgreSQL: the rows a filter
selects are exactly the rows ``evaluate`` allows (and ``plan.matches`` says), NULL
columns, case, LIKE's wildcards, the empty string and non-ASCII order included."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from plan_strategies import COLUMNS, plan_request, policy_sets, row_request, rows, subjects
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.pool import StaticPool

from zerotrust.decision import Effect
from zerotrust.engine import PolicyDecisionPoint
from zerotrust.plan import NotExpressibleError, UnmappedAttributeError
from zerotrust.plan import residual as r
from zerotrust.plan.sqlalchemy import to_filter, where

NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)
# "other" and "a": attributes the policies test for and no row has (always NULL).
_TYPES = {"int": sa.Integer, "string": sa.Text, "bool": sa.Boolean, "double": sa.Double}
_METADATA = sa.MetaData()
_TABLE = sa.Table(
    "customer",
    _METADATA,
    sa.Column("id", sa.Text, primary_key=True),
    *(sa.Column(name, _TYPES[kind]) for name, kind in COLUMNS.items()),
    sa.Column("other", sa.Text),
    sa.Column("a", sa.Text),
)
_MAPPING = {
    "resource.id": _TABLE.c.id,
    **{f"resource.properties.{c.name}": c for c in _TABLE.columns if c.name != "id"},
}


class _Base(DeclarativeBase):
    pass


class User(_Base):
    __tablename__ = "app_user"
    id: Mapped[int] = mapped_column(primary_key=True)
    department: Mapped[str | None]
    customers: Mapped[list[Customer]] = relationship(viewonly=True)


class Customer(_Base):
    __tablename__ = "app_customer"
    id: Mapped[str] = mapped_column(primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("app_user.id"))
    owner: Mapped[User | None] = relationship()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        made = sa.create_engine("sqlite://", poolclass=StaticPool)
    else:
        made = sa.create_engine(request.getfixturevalue("postgres_url"))
    _METADATA.create_all(made)
    _Base.metadata.create_all(made)
    yield made
    _Base.metadata.drop_all(made)
    _METADATA.drop_all(made)
    made.dispose()


def _pdp(texts: dict[str, str]) -> PolicyDecisionPoint:
    return PolicyDecisionPoint.from_texts(texts, clock=lambda: NOW, behavior=None)


def _store(connection: sa.Connection, table: list[dict[str, Any]]) -> None:
    connection.execute(_TABLE.delete())
    if table:
        records = [
            {"id": row["id"], **dict.fromkeys(COLUMNS), **row["properties"]} for row in table
        ]
        connection.execute(_TABLE.insert(), records)


def _selected(connection: sa.Connection, condition: Any) -> set[str]:
    query = sa.select(_TABLE.c.id).where(to_filter(condition, _MAPPING))
    return set(connection.execute(query).scalars())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_sets(), subjects(), rows())
def test_filter_selects_exactly_the_allowed_rows(engine, texts, subject, table) -> None:
    pdp = _pdp(texts)
    plan = pdp.plan(plan_request(subject))
    event(plan.kind.value if plan.not_expressible is None else "not expressible")
    if plan.not_expressible is not None:
        with pytest.raises(NotExpressibleError):
            to_filter(plan, _MAPPING)
        return
    decisions = {row["id"]: pdp.evaluate(row_request(subject, row)) for row in table}
    with engine.begin() as connection:
        _store(connection, table)
        allowed = {i for i, d in decisions.items() if d.allowed}
        assert _selected(connection, plan) == allowed, plan.to_dict()["condition"]
        assert allowed == {row["id"] for row in table if plan.matches(row)}
        opened = {
            i
            for i, d in decisions.items()
            if d.effect is Effect.STEP_UP and any(x.effect is Effect.ALLOW for x in d.reasons)
        }
        if plan.step_up is None:
            assert not opened
        elif _filterable(plan.step_up.condition):
            assert _selected(connection, plan.step_up.condition) == opened
        for branch in plan.obligations:
            if _filterable(branch.condition):
                holding = {row["id"] for row in table if r.holds(branch.condition, row) is True}
                assert _selected(connection, branch.condition) == holding


def _filterable(condition: r.Node) -> bool:
    """Whether a condition is a filter: a step-up's or an obligation branch's may not be
    beside a plan that is (an opaque allow next to one that always holds); such a one is
    refused, as the plan's own would be."""
    if r.expressible(condition) is None:
        return True
    with pytest.raises(NotExpressibleError):
        to_filter(condition, _MAPPING)
    return False


# --- exact regressions -------------------------------------------------------------------

NAME = r.Field(("properties", "name"))
LEVEL = r.Field(("properties", "level"))
DEPARTMENT = r.Field(("properties", "department"))


def _names(engine: sa.Engine, node: r.Node, names: list[str | None]) -> list[str | None]:
    """The names a filter selects from a table of one row per name, checked against the
    residual's own meaning."""
    table = [
        {"id": f"r{i}", "properties": {} if n is None else {"name": n}} for i, n in enumerate(names)
    ]
    with engine.begin() as connection:
        _store(connection, table)
        chosen = _selected(connection, node)
    assert chosen == {row["id"] for row in table if r.holds(node, row) is True}
    return [n for i, n in enumerate(names) if f"r{i}" in chosen]


def _call(name: str, arg: str) -> r.Node:
    return r.Call(name, NAME, (r.Value(arg),))


def test_strings_compare_case_sensitively(engine) -> None:
    names = ["a", "A", "abc", "Abc", None]
    assert _names(engine, r.Compare("==", NAME, r.Value("A")), names) == ["A"]
    assert _names(engine, _call("startsWith", "a"), names) == ["a", "abc"]
    assert _names(engine, _call("endsWith", "C"), names) == []
    assert _names(engine, _call("contains", "B"), names) == []
    assert _names(engine, r.In(NAME, r.Value(["a", "ABC"])), names) == ["a"]


def test_like_wildcards_are_plain_characters(engine) -> None:
    names = ["a%", "a%c", "abc", "a_c", "ab", "_", "x\\y", "\\", "%"]
    assert _names(engine, _call("startsWith", "a%"), names) == ["a%", "a%c"]
    assert _names(engine, _call("startsWith", "_"), names) == ["_"]
    assert _names(engine, _call("endsWith", "_c"), names) == ["a_c"]
    assert _names(engine, _call("contains", "\\"), names) == ["x\\y", "\\"]
    assert _names(engine, _call("contains", "%"), names) == ["a%", "a%c", "%"]
    assert _names(engine, _call("startsWith", "\\"), names) == ["\\"]


def test_the_empty_string(engine) -> None:
    names = ["", "a", None]
    for method in ("startsWith", "endsWith", "contains"):
        assert _names(engine, _call(method, ""), names) == ["", "a"]
    assert _names(engine, r.Compare("==", NAME, r.Value("")), names) == [""]
    assert _names(engine, r.Compare("<", NAME, r.Value("a")), names) == [""]
    assert _names(engine, r.Compare("==", r.Call("size", NAME), r.Value(0)), names) == [""]
    assert _names(engine, _call("endsWith", "a"), names) == ["a"]


def test_strings_order_by_code_point_not_by_the_database_collation(engine) -> None:
    names = ["a", "B", "Z", "é", "f", "zz", "éa"]
    assert _names(engine, r.Compare("<", NAME, r.Value("f")), names) == ["a", "B", "Z"]
    assert _names(engine, r.Compare(">", NAME, r.Value("Z")), names) == ["a", "é", "f", "zz", "éa"]
    assert _names(engine, r.Compare(">=", NAME, r.Value("é")), names) == ["é", "éa"]
    assert _names(engine, r.Compare("==", r.Call("size", NAME), r.Value(2)), names) == [
        "zz",
        "éa",
    ]
    with engine.connect() as connection:  # the database itself would order otherwise
        if engine.dialect.name == "postgresql":
            values = sa.values(sa.column("v", sa.Text), name="t").data([("a",), ("B",)])
            first = connection.execute(sa.select(values.c.v).order_by(values.c.v)).scalar()
            assert first == "a"


def _policy(allow: str = "true", deny: str | None = None) -> str:
    rules = [f"  - {{id: these, effect: allow, when: {json.dumps(allow)}}}"]
    if deny is not None:
        rules.append(f"  - {{id: not-these, effect: deny, when: {json.dumps(deny)}}}")
    head = "policy: p\ntarget: {resources: [customer], actions: [read]}\nrules:\n"
    return head + "\n".join(rules) + "\n"


_SUBJECT = {"type": "user", "id": "u1", "properties": {}}


def _allowed(engine: sa.Engine, policy: str, levels: list[Any]) -> list[Any]:
    """The levels a plan's filter selects (checked against ``evaluate``)."""
    pdp = _pdp({"p.yaml": policy})
    plan = pdp.plan(plan_request(_SUBJECT))
    table = [
        {"id": f"r{i}", "properties": {} if v is None else {"level": v}}
        for i, v in enumerate(levels)
    ]
    with engine.begin() as connection:
        _store(connection, table)
        chosen = _selected(connection, plan)
    expected = {row["id"] for row in table if pdp.evaluate(row_request(_SUBJECT, row)).allowed}
    assert chosen == expected
    return [v for i, v in enumerate(levels) if f"r{i}" in chosen]


def test_a_null_column_in_a_deny_excludes_the_row(engine) -> None:
    assert _allowed(engine, _policy(deny="resource.properties.level > 3"), [1, 5, None]) == [1]
    deny = "!(resource.properties.level <= 3)"
    assert _allowed(engine, _policy(deny=deny), [1, 5, None]) == [1]


def test_a_null_column_in_an_allow_does_not_include_the_row(engine) -> None:
    assert _allowed(engine, _policy("resource.properties.level <= 3"), [1, 5, None]) == [1]
    assert _allowed(engine, _policy("!(resource.properties.level > 3)"), [1, 5, None]) == [1]
    assert _allowed(engine, _policy("resource.properties.level > 3 || true"), [1, None]) == [
        1,
        None,
    ]


def test_type_mismatched_comparisons(engine) -> None:
    # equality across types is false on every present row, ordering is an error
    assert _allowed(engine, _policy('resource.properties.level != "x"'), [1, None]) == [1]
    assert _allowed(engine, _policy('resource.properties.level == "x"'), [1, None]) == []
    assert _allowed(engine, _policy('resource.properties.level < "x"'), [1, None]) == []
    assert _allowed(engine, _policy(deny='resource.properties.level < "x"'), [1, None]) == []
    assert _allowed(engine, _policy("resource.properties.level < 2.5"), [1, 2, 3, None]) == [1, 2]
    allow = "resource.properties.level in [1, 2.0, true]"
    assert _allowed(engine, _policy(allow), [1, 2, 3]) == [1, 2]


def test_a_constant_plan_is_a_constant_filter(engine) -> None:
    assert _allowed(engine, _policy("true"), [1, None]) == [1, None]
    assert _allowed(engine, _policy("false"), [1, None]) == []


def test_an_unmapped_path_is_a_typed_error() -> None:
    plan = _pdp({"p.yaml": _policy('resource.properties.region == "eu"')}).plan(
        plan_request(_SUBJECT)
    )
    with pytest.raises(UnmappedAttributeError) as caught:
        to_filter(plan, _MAPPING)
    assert caught.value.path == "resource.properties.region"
    assert "resource.properties.level" in caught.value.mapped
    assert "resource.properties.region is not mapped" in str(caught.value)
    assert isinstance(caught.value, NotExpressibleError)


def test_an_opaque_plan_is_a_typed_error() -> None:
    policy = _policy("resource.properties.level + 1 > 2")
    plan = _pdp({"p.yaml": policy}).plan(plan_request(_SUBJECT))
    with pytest.raises(NotExpressibleError, match=r"level \+ 1"):
        to_filter(plan, _MAPPING)


def test_an_unsupported_column_type_is_a_typed_error() -> None:
    mapping = {"resource.properties.level": sa.column("level", sa.Date)}
    with pytest.raises(NotExpressibleError, match=r"resource\.properties\.level is a DATE"):
        to_filter(r.Compare("<", LEVEL, r.Value(1)), mapping)
    # presence needs no type
    assert str(to_filter(r.Has(("properties", "level")), mapping)) == "level IS NOT NULL"


def test_other_databases_are_refused_rather_than_guessed() -> None:
    condition = to_filter(r.Compare("<", NAME, r.Value("b")), _MAPPING)
    with pytest.raises(NotExpressibleError, match="not on mysql"):
        condition.compile(dialect=mysql.dialect())


def test_a_relationship_mapping(engine) -> None:
    department = {"resource.properties.department": (Customer.owner, User.department)}
    policy = _policy(deny='resource.properties.department == "hr"')
    plan = _pdp({"p.yaml": policy}).plan(plan_request(_SUBJECT))
    with engine.begin() as connection:
        connection.execute(sa.delete(Customer))
        connection.execute(sa.delete(User))
        connection.execute(
            sa.insert(User), [{"id": 1, "department": "sales"}, {"id": 2, "department": "hr"}]
        )
        connection.execute(sa.insert(User), [{"id": 3, "department": None}])
        owners = {"sales": 1, "hr": 2, "none": 3, "nobody": None}
        connection.execute(
            sa.insert(Customer), [{"id": k, "owner_id": v} for k, v in owners.items()]
        )
        # a deny that errors (no department, no owner) excludes the row
        query = where(sa.select(Customer.id), plan, department)
        assert set(connection.execute(query).scalars()) == {"sales"}
        has = to_filter(r.Has(("properties", "department")), department)
        assert set(connection.execute(sa.select(Customer.id).where(has)).scalars()) == {
            "sales",
            "hr",
        }
        absent = to_filter(r.Not(r.Has(("properties", "department"))), department)
        chosen = connection.execute(sa.select(Customer.id).where(absent)).scalars()
        assert set(chosen) == {"none", "nobody"}
        # a column of the row against one of the related row (owner "sales" owns "sales")
        both = {"resource.id": Customer.id, **department}
        same = to_filter(r.Compare("==", r.Field(("id",)), DEPARTMENT), both)
        chosen = connection.execute(sa.select(Customer.id).where(same)).scalars()
        assert set(chosen) == {"sales", "hr"}
        connection.execute(sa.delete(Customer))
        connection.execute(sa.delete(User))


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ((User.customers, Customer.id), "to-many relationship"),
        ((User.department, User.id), "is not a relationship attribute"),
        ("department", "not a column"),
    ],
)
def test_a_mapping_that_is_not_a_column_is_a_typed_error(target: Any, message: str) -> None:
    with pytest.raises(NotExpressibleError, match=message):
        to_filter(r.Compare("==", NAME, r.Value("x")), {"resource.properties.name": target})
