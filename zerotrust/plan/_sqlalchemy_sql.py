"""SQL constructs the plan filters need, written per database: what a comparison means
in CEL (code point order, NaN, infinities, SQLite's storage classes) differs from what the
same SQL text means on PostgreSQL and on SQLite. Other databases are refused."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from zerotrust.plan._plan import NotExpressibleError

__all__ = ["code_points", "infinity", "is_nan", "on_sqlite", "position", "stored_as"]


class code_points(FunctionElement[str]):
    """A string expression that compares by code point (CEL's order)."""

    type = sa.String()
    inherit_cache = True


class position(FunctionElement[int]):
    """Where the second string starts in the first (1-based, 0 when absent), by code point."""

    type = sa.Integer()
    inherit_cache = True


@compiles(code_points)
def _code_points_default(element: code_points, compiler: SQLCompiler, **kw: Any) -> str:
    _supported(compiler)
    return f'({compiler.process(element.clauses, **kw)}) COLLATE "C"'


@compiles(code_points, "sqlite")
def _code_points_sqlite(element: code_points, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite compares with a column's own collation (NOCASE, RTRIM) unless told otherwise
    return f"({compiler.process(element.clauses, **kw)}) COLLATE BINARY"


class stored_as(FunctionElement[bool]):
    """Whether SQLite stores the value with one of the given storage classes (the
    further arguments, quoted literal columns); elsewhere a column holds its own type."""

    type = sa.Boolean()
    inherit_cache = True


@compiles(stored_as)
def _stored_as_default(element: stored_as, compiler: SQLCompiler, **kw: Any) -> str:
    return "true"


@compiles(stored_as, "sqlite")
def _stored_as_sqlite(element: stored_as, compiler: SQLCompiler, **kw: Any) -> str:
    value, *classes = (compiler.process(c, **kw) for c in element.clauses)
    return f"typeof({value}) IN ({', '.join(classes)})"


class on_sqlite(FunctionElement[bool]):
    """A predicate on SQLite (one reading a column's value as another type), false
    elsewhere, where it is not even written (it may not be well typed there)."""

    type = sa.Boolean()
    inherit_cache = True


@compiles(on_sqlite)
def _on_sqlite_default(element: on_sqlite, compiler: SQLCompiler, **kw: Any) -> str:
    return "false"


@compiles(on_sqlite, "sqlite")
def _on_sqlite_sqlite(element: on_sqlite, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)})"


class is_nan(FunctionElement[bool]):
    """Whether a double is NaN: PostgreSQL stores NaN (and holds NaN = NaN), SQLite never."""

    type = sa.Boolean()
    inherit_cache = True


@compiles(is_nan)
def _is_nan_default(element: is_nan, compiler: SQLCompiler, **kw: Any) -> str:
    _supported(compiler)
    return f"({compiler.process(element.clauses, **kw)}) = 'NaN'::float8"


@compiles(is_nan, "sqlite")
def _is_nan_sqlite(element: is_nan, compiler: SQLCompiler, **kw: Any) -> str:
    return "0"


class infinity(FunctionElement[float]):
    """+inf (no argument) or -inf (any argument) as SQL the database parses."""

    type = sa.Double()
    inherit_cache = True


@compiles(infinity)
def _infinity_default(element: infinity, compiler: SQLCompiler, **kw: Any) -> str:
    _supported(compiler)
    return f"'{'-' if element.clauses.clauses else ''}Infinity'::float8"


@compiles(infinity, "sqlite")
def _infinity_sqlite(element: infinity, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{'-' if element.clauses.clauses else ''}9e999"  # SQLite has no inf literal


@compiles(position)
def _position_default(element: position, compiler: SQLCompiler, **kw: Any) -> str:
    _supported(compiler)
    text, part = (compiler.process(c, **kw) for c in element.clauses)
    return f'strpos(({text}) COLLATE "C", {part})'


@compiles(position, "sqlite")
def _position_sqlite(element: position, compiler: SQLCompiler, **kw: Any) -> str:
    return f"instr({compiler.process(element.clauses, **kw)})"


def _supported(compiler: SQLCompiler) -> None:
    # Other databases order and match strings by their own collations; refuse rather
    # than return rows CEL would not.
    if compiler.dialect.name not in ("postgresql", "default"):
        raise NotExpressibleError(
            f"plan filters compare exactly on postgresql and sqlite only, "
            f"not on {compiler.dialect.name}"
        )
