"""Outside review of query plans (issue 17): reproductions of what disagrees with
``evaluate`` or breaks a documented promise. Every test here asserts the promised
behaviour, so each FAILS on the reviewed code until its finding is fixed.

Findings (see the review report for severity and suggested fixes):

- R1 the decision log's ``redact`` does not hide subject values inside a plan's entry
- R2 ``schema_validation="enforce"``: plan() answers a request evaluate() refuses
- R3 SQLite: a column's own collation (NOCASE, RTRIM) decides ``==``/``<``/``in``
- R4 SQLite: int column vs double value compares exactly, evaluate() through double
- R5 server plan search: a property name with a dot maps the *nested* path
- R6 PostgreSQL: a NaN in a double column passes ``>``/``>=`` (PG orders NaN highest)
- R3b Django on PostgreSQL: a nondeterministic (case-insensitive) column collation
- R7 uint beyond int64 / CLI --sql with an infinite double: untyped error / bad SQL
- R8 SQLite: text kept in an INTEGER column compares as SQLite does, not as CEL
- R9 ``x in <known map>`` becomes ``x in <its keys>``: CEL's key-type errors are lost
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from zerotrust import PolicyDecisionPoint, RequestError
from zerotrust.plan import NotExpressibleError

sa = pytest.importorskip("sqlalchemy")

from zerotrust.plan.sqlalchemy import to_filter  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _policy(rules: str, resource: str = "doc", actions: str = "[read]") -> str:
    return f"policy: p\ntarget: {{resources: [{resource}], actions: {actions}}}\nrules:\n{rules}"


ALLOW_ALL_BUT = "  - {{id: all, effect: allow}}\n  - {{id: d, effect: deny, when: '{0}'}}\n"
ALLOW_WHEN = "  - {{id: a, effect: allow, when: '{0}'}}\n"


def _request(subject_props: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "subject": {"type": "user", "id": "u", "properties": subject_props or {}},
        "action": {"name": "read"},
        "resource": {"type": "doc"},
    }


def _evaluated(
    pdp: PolicyDecisionPoint, req: dict[str, Any], rows: list[tuple[str, dict]]
) -> list[str]:
    allowed = []
    for rid, props in rows:
        resource = {"type": req["resource"]["type"], "id": rid, "properties": props}
        if pdp.evaluate({**req, "resource": resource}).allowed:
            allowed.append(rid)
    return sorted(allowed)


def _filtered(
    url: str, plan: Any, rows: list[tuple[str, dict]], columns: dict[str, Any]
) -> list[str]:
    """The ids the plan's SQLAlchemy filter selects from a real table of ``rows``."""
    engine = sa.create_engine(url)
    metadata = sa.MetaData()
    table = sa.Table(
        "review_rows",
        metadata,
        sa.Column("id", sa.String, primary_key=True),
        *[sa.Column(name, type_) for name, type_ in columns.items()],
    )
    metadata.drop_all(engine)
    metadata.create_all(engine)
    try:
        with engine.begin() as c:
            for rid, props in rows:
                c.execute(table.insert().values(id=rid, **{k: props.get(k) for k in columns}))
        mapping = {"resource.id": table.c.id}
        mapping.update({f"resource.properties.{k}": table.c[k] for k in columns})
        with engine.connect() as c:
            return sorted(c.scalars(sa.select(table.c.id).where(to_filter(plan, mapping))))
    finally:
        metadata.drop_all(engine)
        engine.dispose()


# --- R1: redaction ------------------------------------------------------------------


def test_r1_redact_hides_subject_values_in_the_plan_entry(tmp_path: Path) -> None:
    """A plan's condition holds the subject's values (``owner == "<email>"``); a log
    told to redact ``subject.properties.email`` must not write them in ``plan``."""
    from zerotrust.audit.sinks import JsonLinesLog

    path = tmp_path / "log.jsonl"
    log = JsonLinesLog(
        str(path), redact=["subject.properties.email", "subject.properties.clearance"]
    )
    pdp = PolicyDecisionPoint.from_texts(
        {
            "p.yaml": _policy(
                ALLOW_WHEN.format(
                    "resource.properties.owner == subject.properties.email"
                    " && resource.properties.level <= subject.properties.clearance"
                )
            )
        },
        decision_log=log,
    )
    pdp.plan(_request({"email": "alice.secret@corp.example", "clearance": 7}))
    log.close()
    line = path.read_text()
    entry = json.loads(line)
    assert entry["kind"] == "plan"
    assert entry["request"]["subject"]["properties"]["email"] == "[REDACTED]"  # holds
    # fails: plan.condition / plan.ast / obligations / step_up carry the value
    assert "alice.secret" not in line, entry["plan"]["condition"]


# --- R2: enforce-mode schemas ---------------------------------------------------------


def test_r2_plan_refuses_a_subject_evaluate_refuses_under_enforce() -> None:
    pdp = PolicyDecisionPoint.from_texts(
        {
            "p.yaml": _policy(
                ALLOW_WHEN.format("resource.properties.level <= subject.properties.clearance")
            ),
            "s.schema.yaml": (
                "subjects:\n  user:\n    properties:\n      clearance: {type: integer}\n"
                "    required: [clearance]\n    additionalProperties: false\n"
            ),
        },
        schema_validation="enforce",
    )
    req = _request({"clearance": 9.5, "injected": "x"})
    with pytest.raises(RequestError):
        pdp.evaluate({**req, "resource": {"type": "doc", "id": "1", "properties": {"level": 3}}})
    # fails: the plan is made (and allows level 3) for the request evaluate refuses
    with pytest.raises(RequestError):
        pdp.plan(req)


# --- R3: SQLite column collations -----------------------------------------------------

ROWS_CASE = [
    ("a", {"r": "EU"}),
    ("b", {"r": "eu"}),
    ("c", {"r": "Eu"}),
    ("d", {"r": "eu "}),
    ("e", {"r": "EU "}),
]


@pytest.mark.parametrize(
    "rules",
    [
        ALLOW_WHEN.format('resource.properties.r == "EU"'),
        ALLOW_WHEN.format('resource.properties.r in ["EU"]'),
        ALLOW_WHEN.format('resource.properties.r < "F"'),
    ],
    ids=["eq", "in", "lt"],
)
@pytest.mark.parametrize("collation", ["NOCASE", "RTRIM"])
def test_r3_sqlite_column_collation_does_not_decide(rules: str, collation: str) -> None:
    if collation == "RTRIM" and "<" in rules:
        pytest.skip("RTRIM changes equality only")
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": _policy(rules)})
    req = _request()
    plan = pdp.plan(req)
    column = {"r": sa.String(collation=collation)}
    # fails: NOCASE lets "eu"/"Eu" through, RTRIM lets "EU " through (more rows than allowed)
    assert _filtered("sqlite://", plan, ROWS_CASE, column) == _evaluated(pdp, req, ROWS_CASE)


def test_r3_server_search_on_a_nocase_table(tmp_path: Path) -> None:
    """The same through ``zerotrust serve``'s plan search (the table is reflected, so
    the column's collation is the database's own)."""
    rows = [("1", "eu"), ("2", "EU"), ("3", "Eu")]
    found = _search(
        tmp_path,
        "CREATE TABLE records (id TEXT PRIMARY KEY, region TEXT COLLATE NOCASE)",
        rows,
        {"region": "region"},
        ALLOW_WHEN.format('resource.properties.region == "EU"'),
    )
    assert found == ["2"]  # fails: ["1", "2", "3"]


# --- R4: int vs double beyond 2**53 ---------------------------------------------------

BIG = 2**53


@pytest.mark.parametrize(
    ("rules", "rows"),
    [
        # allow: evaluate compares through double (2**53+1 -> 2**53), SQLite exactly
        (
            ALLOW_WHEN.format(f"resource.properties.i > {BIG}.0"),
            [("a", {"i": BIG + 1}), ("b", {"i": 1})],
        ),
        (
            ALLOW_WHEN.format("resource.properties.i < 9223372036854775807.0"),
            [("a", {"i": 2**63 - 1}), ("b", {"i": 1})],
        ),
        # deny that evaluate fires and the filter does not: the row is let through
        (
            ALLOW_ALL_BUT.format(f"resource.properties.i == {BIG}.0"),
            [("a", {"i": BIG + 1}), ("b", {"i": 1})],
        ),
    ],
    ids=["gt-allow", "lt-int64max", "eq-deny"],
)
def test_r4_sqlite_int_column_against_a_double(rules: str, rows: list[tuple[str, dict]]) -> None:
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": _policy(rules)})
    req = _request()
    plan = pdp.plan(req)
    assert [rid for rid, p in rows if plan.matches({"id": rid, "properties": p})] == _evaluated(
        pdp, req, rows
    )  # holds: the plan itself agrees with evaluate
    # fails: SQLite returns "a", which evaluate denies
    assert _filtered("sqlite://", plan, rows, {"i": sa.BigInteger()}) == _evaluated(pdp, req, rows)


def test_r4_django_int_field_against_a_double() -> None:
    pytest.importorskip("django")
    from web_helpers import django_setup

    django_setup()
    from django.db import transaction
    from django_site.customers.models import Account

    from zerotrust.plan.django import to_q

    pdp = PolicyDecisionPoint.from_texts(
        {"p.yaml": _policy(ALLOW_WHEN.format(f"resource.properties.level > {BIG}.0"), "account")}
    )
    req = {**_request(), "resource": {"type": "account"}}
    rows = [("a", {"level": BIG + 1}), ("b", {"level": 3})]
    truth = _evaluated(pdp, req, rows)
    plan = pdp.plan(req)
    fields = {"resource.id": "pk", "resource.properties.level": "level"}
    with transaction.atomic():
        for rid, props in rows:
            Account.objects.create(id=rid, **props)
        got = sorted(a.id for a in Account.objects.filter(to_q(plan, Account, fields)))
        transaction.set_rollback(True)
    assert got == truth  # fails: ["a"] vs []


# --- R5: server property names with a dot ---------------------------------------------


def test_r5_server_property_with_a_dot_is_not_the_nested_path(tmp_path: Path) -> None:
    """``properties: {"a.b": col}`` gives rows the property ``"a.b"`` (the row-by-row
    search reads it so), but the filter maps it to ``resource.properties.a.b``: a
    map ``a`` with a key ``b``, which no row has."""
    rules = ALLOW_WHEN.format('resource.properties.a.b == "x"')
    found = _search(
        tmp_path,
        "CREATE TABLE records (id TEXT PRIMARY KEY, ab TEXT)",
        [("1", "x"), ("2", "y")],
        {"a.b": "ab"},
        rules,
    )
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": _policy(rules, "record")})
    req = {**_request(), "resource": {"type": "record"}}
    assert _evaluated(pdp, req, [("1", {"a.b": "x"}), ("2", {"a.b": "y"})]) == []
    assert found == []  # fails: ["1"]


def _search(
    tmp_path: Path, create: str, rows: list[tuple[Any, ...]], properties: dict[str, str], rules: str
) -> list[str]:
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from zerotrust.server import ServerConfig, create_app

    db = tmp_path / "records.db"
    with sqlite3.connect(db) as c:
        c.execute(create)
        c.executemany(f"INSERT INTO records VALUES ({', '.join('?' * len(rows[0]))})", rows)
    c.close()
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": _policy(rules, "record")})
    config = ServerConfig(
        bearer_secrets=("pep-secret-0123456789",),
        search_database={
            "url": f"sqlite:///{db}",
            "resources": {"record": {"table": "records", "properties": properties}},
        },
    )
    with TestClient(
        create_app(pdp, config=config), headers={"authorization": "Bearer pep-secret-0123456789"}
    ) as client:
        body = {
            "subject": {"type": "user", "id": "u"},
            "action": {"name": "read"},
            "resource": {"type": "record"},
        }
        found = client.post("/access/v1/search/resource", json=body).json()
    return sorted(r["id"] for r in found["results"])


# --- R6: PostgreSQL NaN ---------------------------------------------------------------


def test_r6_postgres_nan_column(postgres_url: str) -> None:
    """CEL: NaN > 5.0 is false; PostgreSQL orders NaN above every number. A NaN row
    cannot be sent to evaluate (not JSON), but the plan's own Python reading says false,
    and a database double column can hold it."""
    pdp = PolicyDecisionPoint.from_texts(
        {"p.yaml": _policy(ALLOW_WHEN.format("resource.properties.x > 5.0"))}
    )
    plan = pdp.plan(_request())
    rows = [("nan", {"x": float("nan")}), ("six", {"x": 6.0})]
    assert not plan.matches({"id": "nan", "properties": {"x": float("nan")}})
    assert _filtered(postgres_url, plan, rows, {"x": sa.Double()}) == ["six"]  # fails


# --- R7: typed errors -----------------------------------------------------------------


def test_r7_uint_beyond_int64_is_a_typed_error() -> None:
    pdp = PolicyDecisionPoint.from_texts(
        {"p.yaml": _policy(ALLOW_WHEN.format("resource.properties.i < 18446744073709551615u"))}
    )
    req = _request()
    plan = pdp.plan(req)
    rows = [("a", {"i": 5})]
    assert _evaluated(pdp, req, rows) == ["a"]
    # fails: OverflowError (SQLite) / psycopg DataError (PostgreSQL) when the query runs
    try:
        got = _filtered("sqlite://", plan, rows, {"i": sa.BigInteger()})
    except NotExpressibleError:
        return
    assert got == ["a"]


def test_r7_cli_sql_with_an_infinite_double_is_valid_sql(tmp_path: Path) -> None:
    (tmp_path / "pol").mkdir()
    (tmp_path / "pol" / "p.yaml").write_text(
        _policy(ALLOW_WHEN.format('resource.properties.score < double("inf")'))
    )
    (tmp_path / "req.json").write_text(json.dumps(_request()))
    (tmp_path / "map.yaml").write_text(
        "table: docs\ncolumns:\n  resource.id: id\n  resource.properties.score: score\n"
        "types:\n  score: float\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "zerotrust",
            "plan",
            str(tmp_path / "pol"),
            str(tmp_path / "req.json"),
            "--sql",
            str(tmp_path / "map.yaml"),
            "--dialect",
            "sqlite",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE docs (id TEXT, score REAL)")
    db.execute("INSERT INTO docs VALUES ('a', 1.0)")
    # fails: "docs.score < inf" -> sqlite3.OperationalError: no such column: inf
    assert [r[0] for r in db.execute(out.stdout.strip().rstrip(";"))] == ["a"]


# --- R3b: Django on PostgreSQL, a nondeterministic collation --------------------------


def test_r3b_django_postgres_nondeterministic_collation(postgres_url: str) -> None:
    """The SQLAlchemy adapter writes ``COLLATE "C"`` on ``==``, ``in`` and the string
    methods and holds; the Django adapter only on ordering, so a column with a
    case-insensitive ICU collation matches ``== "ada"`` for "Ada" and "ADA" (run in a
    child: Django's database is fixed once per process)."""
    pytest.importorskip("django")
    port = postgres_url.rsplit(":", 1)[1].split("/", maxsplit=1)[0]
    here = Path(__file__).resolve().parent
    done = subprocess.run(
        [sys.executable, str(here / "plan_review_django_pg.py"), port],
        capture_output=True,
        text=True,
        cwd=here,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr  # fails: MISMATCH lines


# --- R8: SQLite's dynamic typing ------------------------------------------------------


def test_r8_sqlite_text_in_an_integer_column(tmp_path: Path) -> None:
    """SQLite keeps 'abc' in an INTEGER column; the row-by-row search reads it as the
    string it is (evaluate: ``"abc" > 3`` is an error, not allowed), the filter compares
    it as SQLite does (text sorts above every number: allowed)."""
    found = _search(
        tmp_path,
        "CREATE TABLE records (id TEXT PRIMARY KEY, level INTEGER)",
        [("1", "abc"), ("2", 5), ("3", 1)],
        {"level": "level"},
        ALLOW_WHEN.format("resource.properties.level > 3"),
    )
    assert found == ["2"]  # fails: ["1", "2"]


# --- R9: `in` a map rewritten as `in` its keys ----------------------------------------


@pytest.mark.parametrize("value", [None, [], ["a"], {}, {"a": 1}], ids=repr)
def test_r9_in_a_known_map_keeps_the_maps_errors(value: Any) -> None:
    """``x in m`` with ``m`` a known map becomes ``x in ["a"]`` (its keys). CEL errors
    for a key of an unsupported type (null, list, map: "unsupported map key type"), so
    a deny fires in evaluate; ``x in ["a"]`` is plainly false, so ``plan.matches`` (and
    ``obligations_for``, ``step_up_matches``) allow the row. SQL columns never hold such
    values, so the filters are not affected."""
    pdp = PolicyDecisionPoint.from_texts(
        {"p.yaml": _policy(ALLOW_ALL_BUT.format("resource.properties.x in subject.properties.m"))}
    )
    req = _request({"m": {"a": 1}})
    row = {"id": "1", "properties": {"x": value}}
    assert pdp.evaluate({**req, "resource": {"type": "doc", **row}}).allowed is False
    assert pdp.plan(req).matches(row) is False  # fails: True
