"""``zerotrust plan``: which resources of a type a request may read, as a condition or
as the SQL that selects them.

The SQL is printed through :mod:`zerotrust.plan.sqlalchemy` (so it is the filter an
application would run) on a table made from a mapping file::

    table: customers
    columns:                       # attribute path -> column
      resource.id: id
      resource.properties.region: region
      resource.properties.level: level
    types:                         # column -> string (the default), integer, float, boolean
      level: integer
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import attrs

from zerotrust.cli._args import path_argument, policies_and_request
from zerotrust.cli._common import EXIT_OK, EXIT_USAGE, printable
from zerotrust.cli._policies import bad_request, request_pdp
from zerotrust.errors import RequestError

if TYPE_CHECKING:
    from zerotrust.plan import Plan

__all__ = ["COLUMN_TYPES", "SqlMapping", "add_arguments", "read_mapping", "run"]

#: The column types a mapping file names, as SQLAlchemy type names.
COLUMN_TYPES = {
    "string": "String",
    "text": "String",
    "integer": "Integer",
    "int": "Integer",
    "float": "Float",
    "double": "Float",
    "boolean": "Boolean",
    "bool": "Boolean",
}
_DIALECTS = ("postgresql", "sqlite")
_KEYS = frozenset({"table", "columns", "types"})


def add_arguments(sub: Any) -> None:
    """The ``plan`` subcommand: POLICIES [REQUEST] as ``eval``, with its --policies alias."""
    plan = sub.add_parser(
        "plan",
        help="print which resources of a type a request may read (a condition, or SQL)",
        usage="zerotrust plan [-h] POLICIES [REQUEST] [--format {text,json}] [--now NOW] "
        "[--sql MAPPING [--dialect {postgresql,sqlite}]]",
        description="Plan a request whose resource has a type only: the condition on "
        "resource.id and resource.properties.* under which it is allowed. Exit codes: "
        "0 printed, 1 invalid policies, 2 usage, bad request, unreadable file, or a plan "
        "--sql cannot write (not expressible, an unmapped attribute).",
    )
    policies_and_request(
        plan, "request JSON file (its resource has a type only), or - for stdin (default)"
    )
    plan.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: the condition, step-up and obligations (default); json: the whole plan",
    )
    plan.add_argument("--now", help="plan at this ISO 8601 time (with timezone)")
    plan.add_argument("--compact", action="store_true", help="one-line JSON")
    path_argument(
        plan.add_argument(
            "--sql",
            metavar="MAPPING",
            help="print the SELECT for the allowed rows instead; MAPPING (YAML or JSON) "
            "names the table, the column of each attribute path and the column types",
        )
    )
    plan.add_argument(
        "--dialect",
        choices=_DIALECTS,
        default="postgresql",
        help="SQL dialect (default postgresql)",
    )


@attrs.frozen
class SqlMapping:
    """A mapping file: the table, the column of each attribute path, the column types."""

    table: str
    columns: Mapping[str, str] = attrs.field(hash=False)
    types: Mapping[str, str] = attrs.field(hash=False)


def run(args: argparse.Namespace, out: TextIO) -> int:
    mapping = None
    if args.sql is not None:  # a bad mapping file is said before the plan is made
        read = read_mapping(Path(args.sql))
        if isinstance(read, list):
            for problem in read:
                print(f"zerotrust plan: {printable(problem)}", file=sys.stderr)
            return EXIT_USAGE
        mapping = read
    given = request_pdp(args)
    if isinstance(given, int):
        return given
    pdp, request = given
    try:
        plan = pdp.plan(request)
    except RequestError as exc:
        return bad_request(exc)
    if mapping is not None:
        return _print_sql(plan, mapping, args.dialect, out)
    if args.format == "json":
        print(json.dumps(plan.to_dict(), indent=None if args.compact else 2), file=out)
        return EXIT_OK
    for line in plan_lines(plan):
        print(printable(line), file=out)
    return EXIT_OK


def plan_lines(plan: Plan) -> list[str]:
    """The plan as text: its kind and condition, then what a step-up would open, the
    obligations per branch, and what a filter cannot hold."""
    data = plan.to_dict()
    lines = [
        f"plan: {plan.action} {plan.resource_type} ({plan.kind.value})",
        f"allowed when: {data['condition']}",
    ]
    if data["step_up"] is not None:
        required = {k: v for k, v in data["step_up"]["requirements"].items() if v is not None}
        lines.append(f"step-up opens: {data['step_up']['condition']}")
        lines.append(f"  requires: {json.dumps(required)}")
    for branch in data["obligations"]:
        lines.append(f"obligations when: {branch['condition']}")
        lines.extend(f"  - {json.dumps(o)}" for o in branch["obligations"])
    lines.extend(f"error: {e['rule']}: {e['message']}" for e in data["errors"])
    if plan.not_expressible is not None:
        lines.append(f"not expressible: {plan.not_expressible}")
    return lines


def read_mapping(file: Path) -> SqlMapping | list[str]:
    """The mapping file (JSON when it ends ``.json``, else YAML), or every problem."""
    from zerotrust.policy.json_data import load_json
    from zerotrust.policy.located import YamlProblem, load_documents

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8"
        return [f"cannot read mapping {file}: {reason}"]
    try:
        if file.suffix == ".json":
            raw = load_json(text)[0]
        else:
            documents = load_documents(text)
            raw = documents[0].plain() if len(documents) == 1 else None
    except YamlProblem as exc:
        return [f"{file}:{exc.line}:{exc.column}: {exc.message}"]
    if not isinstance(raw, Mapping):
        return [f"{file}: must hold one mapping with table, columns and types"]
    problems = [f"{file}: unknown key {k!r}" for k in sorted(set(map(str, raw)) - _KEYS)]
    table, columns, types = raw.get("table"), raw.get("columns"), raw.get("types") or {}
    if not isinstance(table, str) or not table:
        problems.append(f"{file}: table: must be the table's name")
    if not _text_mapping(columns) or not columns:
        problems.append(f"{file}: columns: must map attribute paths to column names")
        columns = {}
    problems += [
        f"{file}: columns: {path!r} is not resource.id or resource.properties.<name>"
        for path in columns
        if path != "resource.id" and not path.startswith("resource.properties.")
    ]
    if not _text_mapping(types):
        problems.append(f"{file}: types: must map column names to types")
        types = {}
    for column, kind in types.items():
        if column not in columns.values():
            problems.append(f"{file}: types: {column!r} is not a column in columns")
        if kind not in COLUMN_TYPES:
            problems.append(f"{file}: types: {column}: must be one of {', '.join(COLUMN_TYPES)}")
    if problems:
        return problems
    return SqlMapping(str(table), dict(columns), dict(types))


def _text_mapping(value: Any) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in value.items()
    )


def _print_sql(plan: Plan, mapping: SqlMapping, dialect: str, out: TextIO) -> int:
    try:
        import sqlalchemy as sa

        from zerotrust.plan import NotExpressibleError
        from zerotrust.plan.sqlalchemy import to_filter
    except ImportError:
        print(
            "zerotrust plan: --sql needs SQLAlchemy: pip install 'zerotrust[sql]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    names = list(dict.fromkeys(mapping.columns.values()))
    table = sa.Table(
        mapping.table,
        sa.MetaData(),
        *(
            sa.Column(name, getattr(sa, COLUMN_TYPES[mapping.types.get(name, "string")])())
            for name in names
        ),
    )
    columns = {path: table.c[name] for path, name in mapping.columns.items()}
    try:
        where = to_filter(plan, columns)
    except NotExpressibleError as exc:
        print(f"zerotrust plan: not expressible as SQL: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    statement = sa.select(*table.c).where(where)
    compiled = statement.compile(
        dialect=sa.make_url(f"{dialect}://").get_dialect()(),  # no driver is loaded
        compile_kwargs={"literal_binds": True},
    )
    print("\n".join(line.rstrip() for line in str(compiled).splitlines()) + ";", file=out)
    return EXIT_OK
