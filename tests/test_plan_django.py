"""zerotrust.plan.django through Django's ORM on a real SQLite table: the rows a plan's
``Q`` selects are exactly the rows ``evaluate`` allows (NULL being a missing property),
and what a filter cannot hold is a typed error."""

from __future__ import annotations

import datetime
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from plan_strategies import COLUMNS, plan_request, policy_sets, row_request, rows, subjects
from test_docs_snippets import Block, blocks

from zerotrust.decision import Effect
from zerotrust.engine import PolicyDecisionPoint
from zerotrust.plan import NotExpressibleError, PlanKind, UnmappedAttributeError
from zerotrust.plan import residual as r

pytest.importorskip("django")

from web_helpers import django_setup

django_setup()  # the models below need Django configured when this module is collected

from django.db import transaction  # noqa: E402
from django_site.customers.models import Account, Department  # noqa: E402

from zerotrust.plan.django import filter_queryset, to_q  # noqa: E402

NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)
FIELDS = {
    "resource.id": "pk",
    **{f"resource.properties.{name}": name for name in COLUMNS},
    "resource.properties.dept": "department__name",
    "resource.properties.opened": "opened",
    # the attributes the strategies only test for presence: no row has them
    "resource.properties.a": "opened",
    "resource.properties.other": "opened",
}
NAME = r.Field(("properties", "name"))
LEVEL = r.Field(("properties", "level"))
SCORE = r.Field(("properties", "score"))
DEPT = r.Field(("properties", "dept"))


@pytest.fixture
def table() -> Iterator[None]:
    """A test's rows live in a transaction that is rolled back after it."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def _pdp(texts: dict[str, str]) -> PolicyDecisionPoint:
    return PolicyDecisionPoint.from_texts(texts, clock=lambda: NOW, behavior=None)


def _store(resources: list[dict[str, Any]]) -> None:
    """The resources as rows, NULL for a missing property; ``dept`` a related row (a
    department named None when the property is None, no department when it is missing)."""
    Account.objects.all().delete()
    made = []
    for row in resources:
        properties = row.get("stored", row["properties"])
        department = None
        if "dept" in properties:
            department = Department.objects.create(name=properties["dept"])
        columns = {name: properties.get(name) for name in COLUMNS}
        made.append(Account(id=row["id"], department=department, **columns))
    Account.objects.bulk_create(made)


def _selected(condition: Any) -> set[str]:
    return set(
        Account.objects.filter(to_q(condition, Account, FIELDS)).values_list("pk", flat=True)
    )


def _row(rid: str, **properties: Any) -> dict[str, Any]:
    """A resource as the table holds it: a property given as None is NULL (for ``dept``,
    a department without a name), which is a missing property."""
    present = {name: value for name, value in properties.items() if value is not None}
    return {"id": rid, "properties": present, "stored": properties}


# --- the differential property ----------------------------------------------------------


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_sets(), subjects(), rows())
def test_the_filter_selects_exactly_the_rows_evaluate_allows(texts, subject, resources) -> None:
    pdp = _pdp(texts)
    plan = pdp.plan(plan_request(subject))
    note(plan.to_dict()["condition"])
    if not _filterable(plan.condition):
        return
    decisions = {row["id"]: pdp.evaluate(row_request(subject, row)) for row in resources}
    allowed = {rid for rid, decision in decisions.items() if decision.allowed}
    opened = {
        rid
        for rid, decision in decisions.items()
        if decision.effect is Effect.STEP_UP
        and any(reason.effect is Effect.ALLOW for reason in decision.reasons)
    }
    with transaction.atomic():
        _store(resources)
        assert {row["id"] for row in resources if plan.matches(row)} == allowed
        assert _selected(plan) == allowed
        if plan.step_up is None:
            assert not opened
        elif _filterable(plan.step_up.condition):
            assert _selected(plan.step_up.condition) == opened
        for branch in plan.obligations:
            if _filterable(branch.condition):
                held = {row["id"] for row in resources if r.holds(branch.condition, row) is True}
                assert _selected(branch.condition) == held
        transaction.set_rollback(True)


def _filterable(condition: r.Node) -> bool:
    """Whether a condition is a filter; one that is not (a step-up's or an obligation
    branch's can be, beside a plan that is) is refused, as the plan's own would be."""
    if r.expressible(condition) is None:
        return True
    with pytest.raises(NotExpressibleError):
        to_q(condition, Account, FIELDS)
    return False


_FIELDS = st.sampled_from([r.Field(("properties", name)) for name in COLUMNS] + [r.Field(("id",))])
_TEXTS = st.sampled_from(["", "a", "A", "b", "ab", "Ab", "a%", "%", "_", "\\", "é", "r1"])
_VALUES = st.one_of(
    _TEXTS,
    st.sampled_from([None, True, False]),
    st.integers(-3, 3),
    st.sampled_from([-1.5, 0.0, 0.5, 2.0, math.nan, math.inf]),
).map(r.Value)
_OPS = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
_SIZE = _FIELDS.map(lambda f: r.Call("size", f))
_CALLS = st.builds(
    r.Call,
    st.sampled_from(["startsWith", "endsWith", "contains"]),
    st.one_of(st.just(NAME), _FIELDS),
    st.one_of(_TEXTS.map(r.Value), _VALUES).map(lambda v: (v,)),
)
_ATOMS = st.one_of(
    _CALLS,
    _CALLS,  # (twice: case and wildcards hide in few rows)
    st.builds(r.Compare, _OPS, st.one_of(_FIELDS, _SIZE), _VALUES),
    st.builds(r.Compare, _OPS, _VALUES, _FIELDS),
    st.builds(r.Compare, _OPS, _FIELDS, _FIELDS),
    st.builds(r.In, _FIELDS, st.lists(_VALUES.map(lambda v: v.value), max_size=3).map(r.Value)),
    _FIELDS.map(lambda f: r.Has(f.path)),
    _FIELDS,
    _SIZE,
    st.sampled_from([r.Value(True), r.Value(False), r.Value(1), r.Error("boom")]),
)
_NODES = st.recursive(
    _ATOMS,
    lambda inner: st.one_of(
        st.builds(r.And, inner, inner),
        st.builds(r.Or, inner, inner),
        st.builds(r.Not, inner),
        st.builds(r.Fires, inner),
    ),
    max_leaves=5,
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_NODES, rows())
def test_a_node_is_true_and_false_on_the_rows_python_says(node, resources) -> None:
    """Residuals of every shape, beyond what the planner makes from random policies."""
    with transaction.atomic():
        _store(resources)
        for condition in (node, r.Not(node)):
            expected = {row["id"] for row in resources if r.holds(condition, row) is True}
            assert _selected(condition) == expected, r.to_cel(condition)
        transaction.set_rollback(True)


# --- regressions, each node's rows against its meaning in Python ------------------------

ROWS = [
    _row("abc", name="abc", level=1, score=0.5, active=True, dept="sales"),
    _row("Abc", name="Abc", level=2, score=2.0, active=False, dept="Sales"),
    _row("ABC", name="ABC", level=3),
    _row("pct", name="a%", level=-1, dept=None),
    _row("pctx", name="a%x", score=-2.5),
    _row("und", name="a_c", active=True),
    _row("bsl", name="\\", level=0),
    _row("empty", name="", level=5, dept="sales"),
    _row("accent", name="éa", score=3.25),
    _row("null"),
]


def _exact(node: r.Node) -> None:
    """The rows where the node is true, and false (through ``!``), are Python's."""
    _store(ROWS)
    for condition, wanted in ((node, True), (r.Not(node), True), (r.Fires(node), True)):
        expected = {row["id"] for row in ROWS if r.holds(condition, row) is wanted}
        assert _selected(condition) == expected, (r.to_cel(condition), expected)


def _call(name: str, text: Any) -> r.Node:
    return r.Call(name, NAME, (r.Value(text),))


REGRESSIONS = [
    # case: SQLite's LIKE would take "abc" for "Abc" and "ABC"
    r.Compare("==", NAME, r.Value("abc")),
    _call("startsWith", "ab"),
    _call("startsWith", "Ab"),
    _call("endsWith", "bc"),
    _call("endsWith", "BC"),
    _call("contains", "b"),
    _call("contains", "B"),
    # LIKE's wildcards and escape are plain text here
    _call("startsWith", "a%"),
    _call("endsWith", "%"),
    _call("contains", "_"),
    _call("contains", "\\"),
    _call("endsWith", "a%x"),
    _call("endsWith", "xa%x"),
    # the empty string: true on every present text, never on NULL
    _call("startsWith", ""),
    _call("endsWith", ""),
    _call("contains", ""),
    r.Compare("==", NAME, r.Value("")),
    r.Compare("<", NAME, r.Value("b")),
    r.Compare(">", r.Value("a"), NAME),
    r.Compare("<=", NAME, r.Value("é")),
    r.Compare("==", r.Call("size", NAME), r.Value(2)),
    r.Compare(">", r.Call("size", NAME), r.Value(1.5)),
    r.In(NAME, r.Value(["abc", "", 1, None, "a%"])),
    r.In(NAME, r.Value([1, 2])),
    r.In(LEVEL, r.Value([1, 2.0, 2.5, "1", True])),
    # type mismatches: unequal on every present row, an error when ordered
    r.Compare("==", LEVEL, r.Value("1")),
    r.Compare("!=", LEVEL, r.Value("1")),
    r.Compare("<", LEVEL, r.Value("1")),
    r.Compare("==", LEVEL, r.Value(None)),
    r.Compare("!=", NAME, r.Value(None)),
    r.Compare("==", r.Field(("properties", "active")), r.Value(1)),
    r.Compare("<", r.Field(("properties", "active")), r.Value(True)),
    _call("startsWith", 1),
    r.Call("contains", LEVEL, (r.Value("1"),)),
    r.Compare("<", r.Call("size", LEVEL), r.Value(3)),
    r.Field(("properties", "level")),
    r.Call("size", NAME),
    # numbers compare by value across int and double, NaN with nothing
    r.Compare("<", LEVEL, r.Value(1.5)),
    r.Compare(">=", SCORE, r.Value(2)),
    r.Compare("<", LEVEL, SCORE),
    r.Compare("!=", LEVEL, SCORE),
    r.Compare("==", NAME, SCORE),
    r.Compare("!=", SCORE, r.Value(math.nan)),
    r.Compare("<", SCORE, r.Value(math.nan)),
    r.Field(("properties", "active")),
    r.Has(("properties", "score")),
    r.And(r.Compare(">", LEVEL, r.Value(0)), r.Error("boom")),
    r.Or(r.Compare(">", LEVEL, r.Value(0)), r.Error("boom")),
    r.Or(r.Has(("properties", "level")), r.Compare(">", SCORE, r.Value(0))),
    # the related row: no department, or a department without a name, is missing
    r.Compare("==", DEPT, r.Value("sales")),
    r.Compare("!=", DEPT, r.Value("sales")),
    r.Has(("properties", "dept")),
    r.Or(r.Not(r.Has(("properties", "dept"))), r.Compare("==", DEPT, r.Value("sales"))),
    r.Compare("==", r.Field(("id",)), r.Value("abc")),
]


@pytest.mark.parametrize("node", REGRESSIONS, ids=r.to_cel)
def test_a_node_selects_the_rows_it_holds_on(node: r.Node, table: None) -> None:
    _exact(node)


def test_null_in_a_deny_excludes_the_row_and_in_an_allow_does_not_include_it(
    table: None,
) -> None:
    deny = "  - {id: d, effect: deny, when: 'resource.properties.level > 3'}\n"
    allow = "  - {id: a, effect: allow, when: '!(resource.properties.score > 1.0)'}\n"
    head = "policy: p\ntarget: {resources: [customer], actions: [read]}\nrules:\n"
    always = "  - {id: all, effect: allow}\n"
    subject = {"type": "user", "id": "u1", "properties": {}}
    resources = [
        {"id": "low", "properties": {"level": 1, "score": 0.5}},
        {"id": "high", "properties": {"level": 4, "score": 2.0}},
        {"id": "nolevel", "properties": {"score": 0.5}},
        {"id": "noscore", "properties": {"level": 1}},
    ]
    _store(resources)
    for body, expected in ((always + deny, {"low", "noscore"}), (allow, {"low", "nolevel"})):
        pdp = _pdp({"p.yaml": head + body})
        plan = pdp.plan(plan_request(subject))
        allowed = {x["id"] for x in resources if pdp.evaluate(row_request(subject, x)).allowed}
        assert allowed == expected
        assert _selected(plan) == expected


def test_constant_plans_select_everything_or_nothing(table: None) -> None:
    _store(ROWS)
    head = "policy: p\ntarget: {resources: [customer], actions: [read]}\nrules:\n"
    subject = {"type": "user", "id": "u1", "properties": {}}
    everyone = _pdp({"p.yaml": head + "  - {id: a, effect: allow}\n"}).plan(plan_request(subject))
    nobody = _pdp({"p.yaml": head + "  - {id: a, effect: allow, when: 'false'}\n"}).plan(
        plan_request(subject)
    )
    assert everyone.kind is PlanKind.ALWAYS_ALLOWED
    assert nobody.kind is PlanKind.ALWAYS_DENIED
    assert _selected(everyone) == {row["id"] for row in ROWS}
    assert _selected(nobody) == set()
    assert _selected(r.Not(r.Value(True))) == set()
    assert set(Account.objects.exclude(to_q(nobody, Account, FIELDS))) == set(Account.objects.all())


def test_filter_queryset_narrows_the_queryset_it_is_given(table: None) -> None:
    _store(ROWS)
    queryset = Account.objects.filter(level__lte=1)
    narrowed = filter_queryset(queryset, _call("startsWith", "a"), FIELDS)
    assert list(narrowed.values_list("pk", flat=True)) == ["abc", "pct"]


def test_the_same_on_postgresql() -> None:
    """The regressions and both properties again through Django on PostgreSQL, whose
    default collation (ICU ``en`` here) does not order by code point; in a child process,
    as Django's database is fixed per process."""
    postgres_server = pytest.importorskip("postgres_server")  # (the SQLAlchemy tests' server)
    here = Path(__file__).resolve().parent
    for server in postgres_server.running_postgres():
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here.parent), str(here)])}
        done = subprocess.run(
            [sys.executable, str(here / "plan_django_postgres.py"), str(server.port)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            cwd=here,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr


# --- what a filter cannot hold ------------------------------------------------------------


def test_an_unmapped_attribute_is_an_error_naming_it_and_the_mapped_ones() -> None:
    node = r.And(r.Compare("==", NAME, r.Value("a")), r.Has(("properties", "region")))
    with pytest.raises(UnmappedAttributeError) as raised:
        to_q(node, Account, {"resource.properties.name": "name"})
    assert raised.value.path == "resource.properties.region"
    assert raised.value.mapped == ("resource.properties.name",)
    assert "resource.properties.region" in str(raised.value)
    assert "resource.properties.name" in str(raised.value)


def test_an_opaque_plan_is_not_expressible() -> None:
    head = "policy: p\ntarget: {resources: [customer], actions: [read]}\nrules:\n"
    rule = "  - {id: a, effect: allow, when: 'resource.properties.level + 1 > 2'}\n"
    plan = _pdp({"p.yaml": head + rule}).plan(plan_request({"type": "user", "id": "u"}))
    assert plan.not_expressible is not None
    with pytest.raises(NotExpressibleError, match="level \\+ 1"):
        to_q(plan, Account, FIELDS)


@pytest.mark.parametrize(
    ("model", "node", "fields", "message"),
    [
        (
            Account,
            r.Compare("<", r.Field(("properties", "opened")), r.Value(1)),
            FIELDS,
            "DateField",
        ),
        (
            Account,
            r.Compare("==", NAME, r.Value("a")),
            {"resource.properties.name": "nom"},
            "no field 'nom'",
        ),
        (
            Account,
            r.Compare("==", NAME, r.Value("a")),
            {"resource.properties.name": "name__lower"},
            "not a relation",
        ),
        (
            Department,
            r.Compare("==", LEVEL, r.Value(1)),
            {"resource.properties.level": "account__level"},
            "many-valued",
        ),
        (Account, r.In(NAME, r.Value({1: "a"})), FIELDS, "lists"),
        (Account, r.In(r.Value("a"), NAME), FIELDS, "lists"),
        (Account, r.Call("startsWith", NAME, (DEPT,)), FIELDS, "known argument"),
        (
            Account,
            r.Compare("==", r.Compare("<", LEVEL, r.Value(1)), r.Value(True)),
            FIELDS,
            "compared",
        ),
        (Account, "resource.properties.level > 1", FIELDS, "not a plan or a residual node"),
    ],
)
def test_what_a_filter_cannot_hold_is_not_expressible(model, node, fields, message) -> None:
    with pytest.raises(NotExpressibleError, match=message):
        to_q(node, model, fields)


def test_presence_of_a_field_of_any_type_is_expressible(table: None) -> None:
    _store(ROWS)
    assert _selected(r.Has(("properties", "opened"))) == set()


# --- the documentation ----------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs"
MODEL_BLOCK = "# customers/models.py\n"


def _django_section() -> list[Block]:
    """The python blocks of the query plans page's Django section."""
    page = DOCS / "query-plans.md"
    lines = page.read_text(encoding="utf-8").splitlines()
    start = lines.index("## Django") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return [b for b in blocks(page) if b.language == "python" and start < b.line <= end]


def test_the_django_section_of_the_docs_runs_as_written(table: None) -> None:
    """In the test site, whose models are the page's (checked verbatim)."""
    from django_site.customers import models

    Account.objects.all().delete()
    namespace: dict[str, object] = {"__name__": "docs_plan_django"}
    section = _django_section()
    assert section[0].body.startswith(MODEL_BLOCK)
    assert section[0].body.removeprefix(MODEL_BLOCK) in Path(models.__file__).read_text()
    namespace.update(Account=Account, Department=Department, models=models.models)
    for block in section[1:]:
        exec(compile(block.body, block.where, "exec"), namespace)
    assert len(section) >= 3
