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

__all__ = [
    "as_read",
    "bpchar_read",
    "code_points",
    "enum_read",
    "float4_read",
    "infinity",
    "is_nan",
    "no_nul",
    "nul_text",
    "on_sqlite",
    "position",
    "sqlite_check",
    "stored_as",
    "zero_or_one",
]


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


class sqlite_check(FunctionElement[bool]):
    """A check SQLite needs of a column's value (the subclasses); true elsewhere."""

    type = sa.Boolean()
    inherit_cache = True
    template = "1"


class no_nul(sqlite_check):
    """Whether a text holds no NUL: SQLite's length() and substr() stop at the first
    one, CEL counts every code point (PostgreSQL text cannot hold NUL)."""

    inherit_cache = True
    template = "instr({0}, char(0)) = 0"


class zero_or_one(sqlite_check):
    """Whether SQLite's BOOLEAN holds 0 or 1: SQLAlchemy reads any other value (2,
    'true', 0.5) as ``bool(value)``, which the filter's ``= 1`` does not match."""

    inherit_cache = True
    template = "(typeof({0}) = 'integer' AND {0} IN (0, 1))"


@compiles(sqlite_check)
def _sqlite_check_default(element: sqlite_check, compiler: SQLCompiler, **kw: Any) -> str:
    return "true"


@compiles(sqlite_check, "sqlite")
def _sqlite_check_sqlite(element: sqlite_check, compiler: SQLCompiler, **kw: Any) -> str:
    return element.template.format(compiler.process(element.clauses, **kw))


class as_read(FunctionElement[Any]):
    """A PostgreSQL column as the driver reads it, where its SQL value differs (the
    subclasses); SQLite stores each as the value read."""

    type: Any = sa.String()
    inherit_cache = True
    template = "{}"


class float4_read(as_read):
    """A REAL read from its text, as psycopg reads it (0.7, not the widened 0.6999...)."""

    type = sa.Double()
    inherit_cache = True
    template = "CAST(CAST({} AS text) AS float8)"


class bpchar_read(as_read):
    """A CHAR(n) with its padding (``=``, length() and a cast to text drop it)."""

    inherit_cache = True
    template = "concat({})"


class enum_read(as_read):
    """A native ENUM as its label (it takes no collation and no substr())."""

    inherit_cache = True
    template = "CAST({} AS text)"


@compiles(as_read)
def _as_read_default(element: as_read, compiler: SQLCompiler, **kw: Any) -> str:
    _supported(compiler)
    if isinstance(element, float4_read) and compiler.dialect.driver == "asyncpg":
        # (asyncpg reads a REAL in binary, not from its text)
        raise NotExpressibleError("a REAL column is compared exactly with psycopg only")
    return element.template.format(compiler.process(element.clauses, **kw))


@compiles(as_read, "sqlite")
def _as_read_sqlite(element: as_read, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


class nul_text(FunctionElement[str]):
    """A string value holding a NUL: SQLite compares it whole, PostgreSQL text cannot
    hold it (the driver refuses the parameter), so the filter is refused there."""

    type = sa.String()
    inherit_cache = True


@compiles(nul_text)
def _nul_text_default(element: nul_text, compiler: SQLCompiler, **kw: Any) -> str:
    raise NotExpressibleError(f"{compiler.dialect.name} text cannot hold a NUL character")


@compiles(nul_text, "sqlite")
def _nul_text_sqlite(element: nul_text, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


def _supported(compiler: SQLCompiler) -> None:
    # Other databases order and match strings by their own collations; refuse rather
    # than return rows CEL would not.
    if compiler.dialect.name not in ("postgresql", "default"):
        raise NotExpressibleError(
            f"plan filters compare exactly on postgresql and sqlite only, "
            f"not on {compiler.dialect.name}"
        )
