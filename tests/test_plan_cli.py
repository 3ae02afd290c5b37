"""``zerotrust plan`` through ``zerotrust.cli.main`` (and once as ``python -m zerotrust``):
the plan as text and JSON, the SQL of a mapping file, and every refusal with its exit
code."""

from __future__ import annotations

import datetime
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from zerotrust import PolicyDecisionPoint
from zerotrust.cli import main

ROOT = Path(__file__).resolve().parents[1]
POLICY = """
policy: customers
target: {resources: [customer], actions: [read]}
rules:
  - id: own-region
    effect: allow
    when: resource.properties.region == subject.properties.region
    obligations: [{type: mask, fields: [ssn]}]
  - id: deny-flagged
    effect: deny
    when: has(resource.properties.flagged) && resource.properties.flagged
  - id: gold-needs-mfa
    effect: step_up
    when: resource.properties.tier == "gold" && subject.properties.acr != "mfa"
    step_up: {acr_values: [mfa]}
  - id: weekend-off
    effect: deny
    when: now.getDayOfWeek() == 0
"""
REQUEST = {
    "subject": {"type": "user", "id": "a", "properties": {"region": "eu", "acr": "pwd"}},
    "action": {"name": "read"},
    "resource": {"type": "customer"},
}
MONDAY = "2026-03-02T10:00:00+00:00"
SUNDAY = "2026-03-01T10:00:00+00:00"
MAPPING = """
table: customers
columns:
  resource.id: id
  resource.properties.region: region
  resource.properties.flagged: flagged
  resource.properties.tier: tier
types:
  flagged: boolean
"""


def _at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "customers.yaml").write_text(POLICY, encoding="utf-8")
    (tmp_path / "request.json").write_text(json.dumps(REQUEST), encoding="utf-8")
    (tmp_path / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    return {
        "policies": tmp_path / "policies",
        "request": tmp_path / "request.json",
        "mapping": tmp_path / "mapping.yaml",
        "dir": tmp_path,
    }


def run(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *args: Any,
    stdin: str | None = None,
) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    code = main(["plan", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_plan_as_text(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(capsys, monkeypatch, files["policies"], files["request"], "--now", MONDAY)
    assert (code, err) == (0, "")
    allowed = (
        'resource.properties.region == "eu" && !(fires(has(resource.properties.flagged) && '
        'resource.properties.flagged) || fires(resource.properties.tier == "gold"))'
    )
    assert out.splitlines() == [
        "plan: read customer (conditional)",
        f"allowed when: {allowed}",
        'step-up opens: resource.properties.region == "eu" && !fires(has('
        "resource.properties.flagged) && resource.properties.flagged) && "
        'fires(resource.properties.tier == "gold")',
        '  requires: {"acr_values": ["mfa"]}',
        'obligations when: resource.properties.region == "eu"',
        '  - {"type": "mask", "fields": ["ssn"]}',
    ]


def test_the_plan_as_json_from_stdin_with_the_policies_flag(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ("--policies", files["policies"], "--format", "json", "--now", SUNDAY, "--compact")
    code, out, err = run(capsys, monkeypatch, *args, stdin=json.dumps(REQUEST))
    assert (code, err) == (0, "")
    assert out.count("\n") == 1
    plan = json.loads(out)
    assert (plan["kind"], plan["condition"], plan["step_up"]) == ("always_denied", "false", None)
    assert plan["evaluated_at"] == SUNDAY


def test_the_sql_of_a_mapping_for_both_dialects(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("sqlalchemy")
    common = (files["policies"], files["request"], "--now", MONDAY, "--sql", files["mapping"])
    code, sqlite_sql, err = run(capsys, monkeypatch, *common, "--dialect", "sqlite")
    assert (code, err) == (0, "")
    assert sqlite_sql.startswith("SELECT customers.id, customers.region, customers.flagged, ")
    assert "FROM customers\nWHERE " in sqlite_sql and "'eu'" in sqlite_sql
    code, postgres_sql, err = run(capsys, monkeypatch, *common)  # postgresql by default
    assert (code, err) == (0, "")
    assert "'eu'" in postgres_sql and postgres_sql.rstrip().endswith(";")
    # The SQLite statement runs, and selects exactly the rows the plan allows.
    rows = [
        ("1", "eu", None, "std"),
        ("2", "eu", 1, "std"),
        ("3", "eu", 0, "gold"),
        ("4", "us", None, "std"),
        ("5", None, None, "std"),
        ("6", "eu", 0, None),  # no tier: the step-up rule errors, which excludes the row
        ("7", "eu", 0, "std"),
    ]
    with sqlite3.connect(":memory:") as db:
        db.execute("CREATE TABLE customers (id TEXT, region TEXT, flagged BOOLEAN, tier TEXT)")
        db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", rows)
        found = [row[0] for row in db.execute(sqlite_sql.rstrip().rstrip(";"))]
    db.close()
    assert found == ["1", "7"]
    pdp = PolicyDecisionPoint.from_path(files["policies"], clock=lambda: _at(MONDAY))
    for id_, region, flagged, tier in rows:  # NULL: the property is missing
        flag = None if flagged is None else bool(flagged)
        values = {"region": region, "flagged": flag, "tier": tier}
        present = {k: v for k, v in values.items() if v is not None}
        resource = {"type": "customer", "id": id_, "properties": present}
        decision = pdp.evaluate(dict(REQUEST, resource=resource))
        assert decision.allowed is (id_ in found), id_


def test_not_expressible_is_said_in_text_and_refused_as_sql(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    opaque = POLICY.replace(
        "when: resource.properties.region == subject.properties.region",
        'when: resource.properties.region + "" == subject.properties.region',
    )
    (files["policies"] / "customers.yaml").write_text(opaque, encoding="utf-8")
    code, out, _ = run(capsys, monkeypatch, files["policies"], files["request"], "--now", MONDAY)
    assert code == 0
    assert out.splitlines()[-1] == (
        "not expressible: 'resource.properties.region + \"\"' is outside what a plan can express"
    )
    pytest.importorskip("sqlalchemy")
    code, out, err = run(
        capsys, monkeypatch, files["policies"], files["request"], "--sql", files["mapping"]
    )
    assert (code, out) == (2, "")
    assert err.startswith("zerotrust plan: not expressible as SQL: ")


def test_an_unmapped_attribute_is_refused_naming_it(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("sqlalchemy")
    mapping = files["dir"] / "partial.json"
    columns = {"resource.id": "id", "resource.properties.region": "region"}
    mapping.write_text(json.dumps({"table": "customers", "columns": columns}), encoding="utf-8")
    args = (files["policies"], files["request"], "--now", MONDAY, "--sql", mapping)
    code, out, err = run(capsys, monkeypatch, *args)
    assert (code, out) == (2, "")
    assert err.startswith("zerotrust plan: not expressible as SQL: ")
    assert "resource.properties.flagged" in err


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        ("[1, 2]", ["must hold one mapping with table, columns and types"]),
        (
            "table: t\ncolumns: {region: region}\ntypes: {region: varchar, other: int}\nx: 1",
            [
                "unknown key 'x'",
                "columns: 'region' is not resource.id or resource.properties.<name>",
                "types: region: must be one of string, text, integer, int, float, double, "
                "boolean, bool",
                "types: 'other' is not a column in columns",
            ],
        ),
        (
            "columns: []",
            [
                "table: must be the table's name",
                "columns: must map attribute paths to column names",
            ],
        ),
        ("table: [", None),
    ],
)
def test_a_bad_mapping_file_is_a_usage_error_before_planning(
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    problems: list[str] | None,
) -> None:
    files["mapping"].write_text(text, encoding="utf-8")
    args = ("/nonexistent/policies", files["request"], "--sql", files["mapping"])
    code, out, err = run(capsys, monkeypatch, *args)
    assert (code, out) == (2, "")
    if problems is None:  # a YAML error, with its position
        assert err.startswith(f"zerotrust plan: {files['mapping']}:2:1: invalid YAML")
    else:
        prefix = f"zerotrust plan: {files['mapping']}: "
        assert sorted(err.splitlines()) == sorted(prefix + p for p in problems)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--now", "2026-03-02T10:00:00"), "zerotrust: --now must be ISO 8601 with a timezone"),
        (("--sql", "/nonexistent.yaml"), "zerotrust plan: cannot read mapping /nonexistent.yaml"),
    ],
)
def test_bad_flags_are_usage_errors(
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    message: str,
) -> None:
    code, out, err = run(capsys, monkeypatch, files["policies"], files["request"], *args)
    assert (code, out) == (2, "")
    assert err.startswith(message)


def test_a_request_with_a_resource_id_or_bad_json_is_a_bad_request(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with_id = dict(REQUEST, resource={"type": "customer", "id": "7"})
    code, out, err = run(capsys, monkeypatch, files["policies"], "-", stdin=json.dumps(with_id))
    assert (code, out) == (2, "")
    assert err.startswith("zerotrust: invalid request: ")
    code, out, err = run(capsys, monkeypatch, files["policies"], "-", stdin="{")
    assert (code, out) == (2, "")
    assert err.startswith("zerotrust: invalid request: ")


def test_invalid_policies_exit_1(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (files["policies"] / "customers.yaml").write_text("policy: [", encoding="utf-8")
    code, out, err = run(capsys, monkeypatch, files["policies"], files["request"])
    assert (code, out) == (1, "")
    assert err.splitlines()[-1] == "1 problem found"


def test_python_m_zerotrust_plan(files: dict[str, Path]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "zerotrust", "plan", str(files["policies"]), "--now", MONDAY],
        input=json.dumps(REQUEST),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines()[0] == "plan: read customer (conditional)"


def _scores(tmp_path: Path, condition: str) -> tuple[Path, Path, Path]:
    (tmp_path / "pol").mkdir(exist_ok=True)
    (tmp_path / "pol" / "p.yaml").write_text(
        "policy: p\ntarget: {resources: [doc], actions: [read]}\n"
        f"rules:\n  - {{id: a, effect: allow, when: '{condition}'}}\n",
        encoding="utf-8",
    )
    request = {"subject": {"type": "user", "id": "u"}, "action": {"name": "read"}}
    (tmp_path / "req.json").write_text(json.dumps({**request, "resource": {"type": "doc"}}))
    (tmp_path / "map.yaml").write_text(
        "table: docs\ncolumns:\n  resource.id: id\n  resource.properties.score: score\n"
        "  resource.properties.n: n\ntypes:\n  score: float\n  n: integer\n",
        encoding="utf-8",
    )
    return tmp_path / "pol", tmp_path / "req.json", tmp_path / "map.yaml"


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_sql_of_an_infinite_double_is_valid_sql(
    dialect: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    sa = pytest.importorskip("sqlalchemy")
    condition = (
        'resource.properties.score < double("inf")'
        ' && resource.properties.score > double("-inf")'
        ' && resource.properties.score != double("inf")'
    )
    args = (*_scores(tmp_path, condition), "--dialect", dialect)
    code, sql, err = run(capsys, monkeypatch, *args[:2], "--sql", *args[2:])
    assert code == 0, err
    url = "sqlite://" if dialect == "sqlite" else request.getfixturevalue("postgres_url")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as db:
            db.exec_driver_sql("DROP TABLE IF EXISTS docs")
            db.exec_driver_sql("CREATE TABLE docs (id TEXT, score FLOAT, n BIGINT)")
            db.exec_driver_sql("INSERT INTO docs VALUES ('a', 1.0, 1), ('b', NULL, 1)")
            assert [r[0] for r in db.exec_driver_sql(sql.strip().rstrip(";"))] == ["a"]
            db.exec_driver_sql("DROP TABLE docs")
    finally:
        engine.dispose()


def test_the_sql_of_an_integer_beyond_64_bits_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("sqlalchemy")
    policies, request, mapping = _scores(tmp_path, "resource.properties.n < 18446744073709551615u")
    code, out, err = run(capsys, monkeypatch, policies, request, "--sql", mapping)
    assert (code, out) == (2, "")
    assert "not expressible as SQL" in err and "64-bit" in err
