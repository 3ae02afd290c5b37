"""Plans as SQLAlchemy 2.0 filters: the WHERE clause of exactly the rows a plan allows.

Each residual node is translated into two predicates, *true on this row* and *false on
this row* (a row where the node errors, say a missing property, is in neither), and each
is two-valued in SQL: every column read is guarded with ``IS NOT NULL``, so SQL's
three-valued logic never meets a NULL and a NULL column means what a missing property
means to CEL (an erroring deny excludes the row, an erroring allow does not include it).
Strings compare by code point and case-sensitively, as in CEL: ``COLLATE "C"`` on
PostgreSQL, ``COLLATE BINARY`` on SQLite (whatever collation the column declares); the
string methods never use ``LIKE``. An int meets a double as a double (CEL converts it),
a PostgreSQL NaN is unequal to everything and unordered (PostgreSQL sorts it highest),
and on SQLite a value stored with another storage class than the column's type (text
in an INTEGER column) is what CEL makes of a value of another type, or an error.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias, TypeVar

import attrs
import sqlalchemy as sa
from sqlalchemy.orm import QueryableAttribute, RelationshipProperty
from sqlalchemy.sql.elements import ColumnElement, False_

from zerotrust.cel._runtime_values import CelUint
from zerotrust.plan import _sqlalchemy_sql as _sql
from zerotrust.plan import residual as r
from zerotrust.plan._plan import NotExpressibleError, Plan, PlanKind, filter_condition

__all__ = ["ColumnTarget", "by_code_point", "to_filter", "where"]

#: What an attribute path maps to: a column (``Column``, a mapped attribute such as
#: ``Customer.region``, any typed ``ColumnElement``), or a tuple of many-to-one
#: relationship attributes ending with the related class's column
#: (``(Customer.owner, User.department)``).
ColumnTarget: TypeAlias = Any

_S = TypeVar("_S", bound="sa.Select[Any]")
_Pair = tuple[ColumnElement[bool], ColumnElement[bool]]
_NUMBERS = ("int", "double")
_ORDERING = ("<", "<=", ">", ">=")
_OPS: Mapping[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_LITERAL_TYPES: Mapping[str, type[sa.types.TypeEngine[Any]]] = {
    "int": sa.BigInteger,
    "double": sa.Double,
    "string": sa.String,
    "bool": sa.Boolean,
}


def to_filter(plan: Plan | r.Node, columns: Mapping[str, ColumnTarget]) -> ColumnElement[bool]:
    """The condition a row must meet for ``plan`` to allow it (a plan's condition, or any
    residual node such as ``plan.step_up.condition``), over the mapped ``columns``.

    Raises :class:`~zerotrust.plan.UnmappedAttributeError` for an attribute path the
    mapping lacks and :class:`~zerotrust.plan.NotExpressibleError` for what SQL cannot
    hold exactly (an opaque part, a column of another type than int, double, string or
    bool): a filter that dropped a condition would allow too much.
    """
    if isinstance(plan, Plan) and plan.kind is not PlanKind.CONDITIONAL:
        return sa.true() if plan.kind is PlanKind.ALWAYS_ALLOWED else sa.false()
    node = filter_condition(plan, columns)
    return _Translator(columns).pair(node)[0]


def where(statement: _S, plan: Plan | r.Node, columns: Mapping[str, ColumnTarget]) -> _S:
    """``statement`` (a ``select()``) with the plan's filter added to its WHERE clause."""
    return statement.where(to_filter(plan, columns))


def by_code_point(expr: ColumnElement[str]) -> ColumnElement[str]:
    """A string expression that compares and sorts by code point on PostgreSQL and SQLite
    whatever its column's collation (say, to page through string ids in CEL's order)."""
    return _sql.code_points(expr)


# --- the translation ---------------------------------------------------------------------


@attrs.frozen(eq=False)
class _Column:
    expr: ColumnElement[Any]
    path: str
    relationships: tuple[Any, ...]


@attrs.frozen(eq=False)
class _Term:
    """A comparison's operand: a column read (``expr``) or a known ``value``."""

    kind: str  # int, double, string, bool; for a value also null or other
    expr: ColumnElement[Any] | None = None
    value: Any = None
    guards: tuple[ColumnElement[bool], ...] = ()
    relationships: tuple[tuple[Any, ...], ...] = ()
    #: the same column where it holds text, a CEL string (SQLite keeps text in an
    #: INTEGER column): read as a string column on those rows
    text: _Term | None = None
    #: a reading SQLite alone can make (written as false elsewhere, where a string
    #: function of a number column is not even well typed)
    sqlite_only: bool = False

    def raw(self) -> ColumnElement[Any]:
        if self.expr is not None:
            return self.expr
        if self.kind == "int" and not -(2**63) <= self.value < 2**63:
            raise NotExpressibleError(f"{self.value} is beyond a 64-bit SQL integer")
        if self.kind == "double" and not math.isfinite(self.value):
            if math.isnan(self.value):
                raise NotExpressibleError("NaN cannot be a value in a database filter")
            return _sql.infinity() if self.value > 0 else _sql.infinity(sa.literal(1))
        if self.kind == "string" and "\0" in self.value:
            return _sql.nul_text(sa.literal(self.value, sa.String()))
        return sa.literal(self.value, _LITERAL_TYPES[self.kind])

    def sql(self) -> ColumnElement[Any]:
        """As an operand of a comparison (strings by code point)."""
        raw = self.raw()
        return _sql.code_points(raw) if self.kind == "string" and self.expr is not None else raw

    def double(self) -> ColumnElement[Any]:
        """As a double: CEL compares an int with a double as two doubles."""
        if self.kind != "int":
            return self.sql()
        if self.expr is None:
            return _Term("double", value=float(self.value)).raw()
        return sa.cast(self.expr, sa.Double())


_NEVER: _Pair = (sa.false(), sa.false())


class _Translator:
    def __init__(self, columns: Mapping[str, ColumnTarget]) -> None:
        self.columns = columns

    def pair(self, node: r.Node) -> _Pair:
        """(true on the row, false on the row), both two-valued."""
        if not _reads_row(node):
            known = r.holds(node, {"id": None, "properties": {}})
            return _const(known is True), _const(known is False)
        if isinstance(node, r.And | r.Or):
            (lt, lf), (rt, rf) = self.pair(node.left), self.pair(node.right)
            if isinstance(node, r.And):
                return sa.and_(lt, rt), sa.or_(lf, rf)
            return sa.or_(lt, rt), sa.and_(lf, rf)
        if isinstance(node, r.Not):
            true, false = self.pair(node.operand)
            return false, true
        if isinstance(node, r.Fires):
            false = self.pair(node.operand)[1]
            return sa.not_(false), false
        if isinstance(node, r.Has):
            column = self.column(node.name)
            present = _through(column.expr.is_not(None), [column.relationships])
            return present, sa.not_(present)
        if isinstance(node, r.Field):
            term = self.term(node)
            if term is None or term.kind != "bool" or term.expr is None:
                return _NEVER  # a non-boolean as a condition: an error
            return _both(term.expr, [term])
        if isinstance(node, r.Compare):
            return self.compare(node)
        if isinstance(node, r.In):
            return self.contained(node)
        if isinstance(node, r.Call):
            return self.string_call(node)
        raise NotExpressibleError(f"{r.to_cel(node)} cannot be a database filter")

    def column(self, path: str) -> _Column:
        target = self.columns[path]
        *relationships, column = target if isinstance(target, tuple) else (target,)
        for relationship in relationships:
            prop = getattr(relationship, "property", None)
            if not isinstance(relationship, QueryableAttribute) or not isinstance(
                prop, RelationshipProperty
            ):
                raise NotExpressibleError(
                    f"{path}: {relationship!r} is not a relationship attribute"
                )
            if prop.uselist:
                raise NotExpressibleError(
                    f"{path}: {relationship} is a to-many relationship (map a many-to-one)"
                )
        expr = column.__clause_element__() if hasattr(column, "__clause_element__") else column
        if not isinstance(expr, ColumnElement):
            raise NotExpressibleError(f"{path} is mapped to {column!r}, not a column")
        return _Column(expr, path, tuple(relationships))

    def term(self, node: r.Node) -> _Term | None:
        """The operand of a comparison, ``in`` or string method; None for an error."""
        if not _reads_row(node):
            try:
                value = r.evaluate(node, {"id": None, "properties": {}})
            except r.RowError:
                return None
            return _Term(_value_kind(value), value=value)
        if isinstance(node, r.Field):
            column = self.column(node.name)
            kind = _column_kind(column)
            present = column.expr.is_not(None)
            if node.path == ("id",) and kind != "string":
                return _id_as_text(column, kind)
            read = _as_read(column)
            if kind == "bool":  # SQLAlchemy reads bool(value): exact on 0 and 1 alone
                guards = (present, _sql.zero_or_one(column.expr))
                return _Term(kind, read, None, guards, (column.relationships,))
            text = None
            if kind != "string":
                stored = _sql.stored_as(column.expr, sa.literal_column("'text'"))
                text = _Term(
                    "string",
                    column.expr,
                    guards=(present, stored),
                    relationships=(column.relationships,),
                    sqlite_only=True,
                )
            own = _sql.stored_as(
                column.expr, *(sa.literal_column(f"'{c}'") for c in _STORAGE[kind])
            )
            return _Term(kind, read, None, (present, own), (column.relationships,), text)
        if isinstance(node, r.Call) and node.name == "size" and not node.args:
            target = self.term(node.target)
            if target is not None and target.kind != "string":
                target = target.text
            if target is None or target.expr is None:
                return None  # size of a number or bool: an error
            return attrs.evolve(_counted(target), kind="int", expr=sa.func.length(target.expr))
        raise NotExpressibleError(f"{r.to_cel(node)} cannot be compared in a database filter")

    def compare(self, node: r.Compare) -> _Pair:
        left, right = self.term(node.left), self.term(node.right)
        if left is None or right is None:
            return _NEVER
        return _each_view(lambda a, b: _compared(node.op, a, b), left, right)

    def contained(self, node: r.In) -> _Pair:
        if _reads_row(node.container):
            raise NotExpressibleError(
                f"{r.to_cel(node)}: only a known list can hold a row's value in a filter"
            )
        item = self.term(node.item)
        container = self.term(node.container)
        if item is None or container is None:
            return _NEVER
        if not isinstance(container.value, list | tuple):
            raise NotExpressibleError(f"{r.to_cel(node)}: `in` a filter can hold needs a list")
        items = [_Term(_value_kind(v), value=v) for v in container.value]
        return _each_view(lambda i: _member(i, items), item)

    def string_call(self, node: r.Call) -> _Pair:
        if node.name not in ("startsWith", "endsWith", "contains") or len(node.args) != 1:
            raise NotExpressibleError(f"{r.to_cel(node)} cannot be a database filter")
        text, part = self.term(node.target), self.term(node.args[0])
        if text is None or part is None:
            return _NEVER
        return _each_view(lambda t, p: _string_call(node.name, t, p), text, part)


def _each_view(made: Callable[..., _Pair], *terms: _Term) -> _Pair:
    """``made`` over each reading of the terms' columns (as their own type, as text),
    united: the readings' rows never overlap."""
    views = [[attrs.evolve(t, text=None), *([t.text] if t.text else [])] for t in terms]
    pairs = []
    for combination in itertools.product(*views):
        true, false = made(*combination)
        if any(t.sqlite_only for t in combination):  # a column read as text
            true, false = _on_sqlite(true), _on_sqlite(false)
        pairs.append((true, false))
    return sa.or_(*(p[0] for p in pairs)), sa.or_(*(p[1] for p in pairs))


def _on_sqlite(predicate: ColumnElement[bool]) -> ColumnElement[bool]:
    # (a false one stays sa.false(), which or_ drops: shorter SQL)
    return predicate if isinstance(predicate, False_) else _sql.on_sqlite(predicate)


def _compared(op: str, left: _Term, right: _Term) -> _Pair:
    terms = [left, right]
    nan = any(t.kind == "double" and t.expr is None and math.isnan(t.value) for t in terms)
    if nan or not _compatible(left.kind, right.kind):
        if op in _ORDERING and not (nan and _compatible(left.kind, right.kind)):
            return _NEVER  # ordering across types: an error
        return _constant(op == "!=", terms)
    if {left.kind, right.kind} == {"int", "double"}:
        expr = _OPS[op](left.double(), right.double())
    else:
        expr = _OPS[op](left.sql(), right.sql())
    nans = [_sql.is_nan(t.expr) for t in terms if t.kind == "double" and t.expr is not None]
    if nans:  # CEL: NaN equals nothing and orders with nothing
        unordered = sa.or_(*nans)
        expr = sa.or_(unordered, expr) if op == "!=" else sa.and_(sa.not_(unordered), expr)
    return _both(expr, terms)


def _member(item: _Term, items: list[_Term]) -> _Pair:
    found = [
        t
        for t in items
        if _compatible(item.kind, t.kind) and not (t.kind == "double" and math.isnan(t.value))
    ]
    if not found:
        return _constant(False, [item])
    if item.kind == "double":  # (ints meet doubles as doubles, as CEL's `in` compares)
        return _both(item.sql().in_([t.double() for t in found]), [item])
    doubles = [t.sql() for t in found if t.kind == "double"]
    exact = [t.sql() for t in found if t.kind != "double"]
    parts = [item.sql().in_(exact)] if exact else []
    if doubles:
        parts.append(item.double().in_(doubles))
    return _both(sa.or_(*parts), [item])


def _string_call(name: str, text: _Term, part: _Term) -> _Pair:
    if text.kind != "string" or part.kind != "string":
        return _NEVER  # no such overload: an error
    t, p = text.raw(), part.raw()
    length = sa.func.length
    if name != "contains":  # (instr() reads past a NUL, length() and substr() do not)
        text, part = _counted(text), _counted(part)
        if part.expr is None and "\0" in part.value:
            return _constant(False, [text])  # a text without NUL: neither starts nor ends so
    if name == "startsWith":
        expr = _sql.code_points(sa.func.substr(t, 1, length(p))) == p
    elif name == "endsWith":
        # substr's start is >= 1 here: SQLite counts a start below 1 from the end
        tail = sa.func.substr(t, length(t) - length(p) + 1)
        expr = sa.and_(length(t) >= length(p), _sql.code_points(tail) == p)
    else:
        expr = _sql.position(t, p) > 0
    return _both(expr, [text, part])


#: SQLite's storage class of a column's own CEL kind (a column also read as a string
#: where it holds text); any other (a real in an INTEGER column, a blob) is an error to
#: the filter: a row too few where it would be exact, never one too many.
_STORAGE: Mapping[str, tuple[str, ...]] = {
    "int": ("integer",),
    "double": ("real",),
    "bool": ("integer",),
    "string": ("text",),
}


def _counted(term: _Term) -> _Term:
    """A string term whose characters SQL counts as CEL does: an error where SQLite's
    text holds a NUL (its length() and substr() stop there)."""
    if term.expr is None:
        return term
    return attrs.evolve(term, guards=(*term.guards, _sql.no_nul(term.expr)))


def _id_as_text(column: _Column, kind: str) -> _Term:
    """``resource.id`` mapped to an integer column: a request's id is a string (the
    application passes ``str(pk)``), so the column is compared as its text."""
    if kind != "int":
        raise NotExpressibleError(
            f"{column.path} is a {column.expr.type} column: an id column is a string or an integer"
        )
    stored = _sql.stored_as(
        column.expr, *(sa.literal_column(f"'{c}'") for c in ("integer", "text"))
    )
    return _Term(
        "string",
        sa.cast(column.expr, sa.String()),
        guards=(column.expr.is_not(None), stored),
        relationships=(column.relationships,),
    )


def _as_read(column: _Column) -> ColumnElement[Any]:
    """The column as the driver reads it, where PostgreSQL's SQL value differs."""
    type_ = _own_type(column.expr.type)
    if isinstance(type_, sa.Enum):
        if type_.enum_class is not None:
            raise NotExpressibleError(
                f"{column.path} is an Enum of {type_.enum_class.__name__}: map its text"
            )
        return _sql.enum_read(column.expr)
    if isinstance(type_, sa.CHAR | sa.NCHAR):
        return _sql.bpchar_read(column.expr)
    if isinstance(type_, sa.REAL) or (
        isinstance(type_, sa.Float)
        and not isinstance(type_, sa.Double)
        and type_.precision is not None
        and type_.precision <= 24
    ):
        return _sql.float4_read(column.expr)
    return column.expr


def _own_type(type_: Any) -> Any:
    return type_.impl_instance if isinstance(type_, sa.TypeDecorator) else type_


def _const(value: bool) -> ColumnElement[bool]:
    return sa.true() if value else sa.false()


def _reads_row(node: r.Node) -> bool:
    return any(isinstance(n, r.Field | r.Has) for n in r.walk(node))


def _both(expr: ColumnElement[bool], terms: list[_Term]) -> _Pair:
    """True and false sets of a two-valued ``expr`` over present (non-NULL) columns."""
    guards = [g for t in terms for g in t.guards]
    relationships = [rel for t in terms for rel in t.relationships]
    true = _through(sa.and_(*guards, expr), relationships)
    false = _through(sa.and_(*guards, sa.not_(expr)), relationships)
    return true, false


def _constant(value: bool, terms: list[_Term]) -> _Pair:
    """``value`` on every row where the terms' columns are present, an error elsewhere."""
    return _both(_const(value), terms)


def _through(
    predicate: ColumnElement[bool], relationships: list[tuple[Any, ...]]
) -> ColumnElement[bool]:
    """``predicate`` on the related rows: EXISTS through each many-to-one relationship
    (false where it is NULL: a missing property)."""
    seen: list[tuple[Any, ...]] = []
    for chain in relationships:
        if chain and not any(_same(chain, s) for s in seen):
            seen.append(chain)
            for relationship in reversed(chain):
                predicate = relationship.has(predicate)
    return predicate


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def _column_kind(column: _Column) -> str:
    type_ = _own_type(column.expr.type)
    for base, kind in (
        (sa.Boolean, "bool"),
        (sa.Integer, "int"),
        (sa.Float, "double"),
        (sa.String, "string"),
    ):
        if isinstance(type_, base):
            return kind
    raise NotExpressibleError(
        f"{column.path} is a {type_} column: a filter compares int, double, string and bool columns"
    )


def _value_kind(value: Any) -> str:
    if value is None:
        return "null"
    if type(value) is bool:
        return "bool"
    if type(value) is int or type(value) is CelUint:
        return "int"
    if type(value) is float:
        return "double"
    if type(value) is str:
        return "string"
    return "other"


def _compatible(a: str, b: str) -> bool:
    if a in _NUMBERS and b in _NUMBERS:
        return True
    return a == b and a in ("string", "bool")
