"""Query plans as Django filters: ``Account.objects.filter(to_q(plan, Account, fields))``.

Every residual node is translated into two predicates, the rows where it is *true* and
the rows where it is *false* (an error is in neither), each guarded by ``IS NOT NULL`` so
SQL's unknown never stands in for CEL's error; a row is selected when the condition is
true. The predicates are Django expressions rather than field lookups: Django's
``~Q(...)`` adds NULL handling of its own, and its ``startswith``/``contains`` are LIKE,
which ignores ASCII case on SQLite and makes ``%`` and ``_`` wildcards. Strings order
by code point (SQLite's BINARY collation, ``COLLATE "C"`` on PostgreSQL).
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import F, Q, Value, lookups
from django.db.models.functions import Collate, Left, Length, StrIndex, Substr

from zerotrust.cel._runtime_values import CelUint
from zerotrust.plan import residual as r
from zerotrust.plan._plan import NotExpressibleError, Plan, filter_condition

__all__ = ["filter_queryset", "to_q"]

#: A predicate: a constant, or a two-valued Django condition.
_Pred = Any
_NUMBERS = frozenset({"int", "double"})
_LOOKUPS: Mapping[str, Callable[[Any, Any], Any]] = {
    "==": lookups.Exact,
    "<": lookups.LessThan,
    "<=": lookups.LessThanOrEqual,
    ">": lookups.GreaterThan,
    ">=": lookups.GreaterThanOrEqual,
}
_FLIPPED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_NO_ROW: Mapping[str, Any] = {"id": None, "properties": {}}


def to_q(plan_or_node: Plan | r.Node, model: type[models.Model], fields: Mapping[str, str]) -> Q:
    """The rows of ``model`` where the plan's condition (or a residual node, such as
    ``plan.step_up.condition``) is true, as a ``Q``.

    ``fields`` maps attribute paths (``"resource.id"``, ``"resource.properties.region"``)
    to field lookup paths on ``model`` (``"pk"``, ``"region"``, ``"owner__department"``
    across a foreign key); a NULL field, or no related row, is a missing property.
    Raises :class:`~zerotrust.plan.UnmappedAttributeError` for a path ``fields`` does not
    name and :class:`~zerotrust.plan.NotExpressibleError` for what a filter cannot hold.
    """
    node = filter_condition(plan_or_node, fields)
    made = _Translator(model, fields).both(node)[0]
    if made is True:
        return Q(pk__isnull=False)
    if made is False:
        return Q(pk__isnull=True)
    return made


def filter_queryset(queryset: Any, plan: Plan | r.Node, fields: Mapping[str, str]) -> Any:
    """``queryset`` narrowed to the rows the plan allows (see :func:`to_q`)."""
    return queryset.filter(to_q(plan, queryset.model, fields))


# --- predicates, with constants folded --------------------------------------------------


def _and(*preds: _Pred) -> _Pred:
    return _fold(preds, False, operator.and_)


def _or(*preds: _Pred) -> _Pred:
    return _fold(preds, True, operator.or_)


def _fold(preds: tuple[_Pred, ...], absorbing: bool, join: Callable[[Any, Any], Any]) -> _Pred:
    """``preds`` joined: ``absorbing`` (false for AND, true for OR) decides alone, the
    other constant is dropped."""
    if any(p is absorbing for p in preds):
        return absorbing
    rest = [p for p in preds if not isinstance(p, bool)]
    return functools.reduce(join, rest) if rest else not absorbing


def _not(pred: _Pred) -> _Pred:
    """Only ever of a two-valued predicate, so SQL's NOT is CEL's."""
    if isinstance(pred, bool):
        return not pred
    return ~pred


def _guarded(present: _Pred, condition: Any) -> tuple[_Pred, _Pred]:
    """T and F of a condition that is two-valued wherever ``present`` holds."""
    return _and(present, Q(condition)), _and(present, ~Q(condition))


class _CodePoint(Collate):  # type: ignore[misc]
    """Text ordered by code point, as CEL orders strings: ``COLLATE "C"`` on PostgreSQL
    (whose columns order by their locale), nothing on SQLite (BINARY already is)."""

    def __init__(self, expression: Any) -> None:
        super().__init__(expression, "C")

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return compiler.compile(self.source_expressions[0])


# --- columns ----------------------------------------------------------------------------


@attrs.frozen
class _Column:
    """A mapped attribute: its expression, CEL kind (None: not comparable) and where
    it is present."""

    path: str
    expression: Any
    kind: str | None
    label: str

    @property
    def present(self) -> Q:
        return Q(lookups.IsNull(self.expression, False))

    def need_kind(self) -> str:
        if self.kind is None:
            raise NotExpressibleError(
                f"{self.path} is mapped to {self.label}: a filter compares integer, "
                "float, text and boolean fields only"
            )
        return self.kind


def _field_kind(field: Any) -> str | None:
    if isinstance(field, models.ForeignObject) and field.concrete:
        return _field_kind(field.target_field)
    if isinstance(field, models.BooleanField):
        return "bool"
    if isinstance(field, models.IntegerField | models.AutoField):
        return "int"
    if isinstance(field, models.FloatField):
        return "double"
    if isinstance(field, models.CharField | models.TextField):
        return "string"
    return None


def _resolve(model: type[models.Model], path: str, lookup: str) -> _Column:
    """The field a lookup path names, crossing single-valued relations only (a
    many-valued one would make a property a set of values)."""
    current: Any = model
    parts = lookup.split("__")
    field: Any = None
    for i, part in enumerate(parts):
        try:
            field = current._meta.pk if part == "pk" else current._meta.get_field(part)
        except FieldDoesNotExist as exc:
            raise NotExpressibleError(
                f"{path} is mapped to {lookup!r}, but {current.__name__} has no field {part!r}"
            ) from exc
        single = field.is_relation and (field.many_to_one or field.one_to_one)
        if field.is_relation and not single:
            raise NotExpressibleError(
                f"{path} is mapped to {lookup!r}, which crosses the many-valued "
                f"relation {current.__name__}.{part}"
            )
        if i < len(parts) - 1:
            if not single or field.related_model is None:
                raise NotExpressibleError(
                    f"{path} is mapped to {lookup!r}, but {current.__name__}.{part} "
                    "is not a relation"
                )
            current = field.related_model
    if not getattr(field, "concrete", False):
        raise NotExpressibleError(f"{path} is mapped to {lookup!r}, which is not a column")
    label = f"{current.__name__}.{field.name} ({type(field).__name__})"
    return _Column(path, F(lookup), _field_kind(field), label)


# --- the translation --------------------------------------------------------------------


@attrs.frozen
class _Operand:
    """One side of a comparison: an expression of a CEL kind, present where ``present``
    holds (``kind`` None: the side errors on every row, e.g. ``size`` of a number)."""

    expression: Any
    kind: str | None
    present: _Pred


def _value_kind(value: Any) -> str | None:
    kind = type(value)
    if kind is bool:
        return "bool"
    if kind is int or kind is CelUint:
        return "int"
    if kind is float:
        return "double"
    if kind is str:
        return "string"
    return None  # null, lists, maps, timestamps: equal to no column value


def _compatible(column: str, value: str | None) -> bool:
    return column == value or (column in _NUMBERS and value in _NUMBERS)


def _literal(value: Any) -> Value:
    return Value(int(value) if type(value) is CelUint else value)


@attrs.frozen
class _Translator:
    model: type[models.Model]
    fields: Mapping[str, str]

    def column(self, node: r.Field | r.Has) -> _Column:
        return _resolve(self.model, node.name, self.fields[node.name])

    def both(self, node: r.Node) -> tuple[_Pred, _Pred]:
        """T(node) and F(node)."""
        if not r.fields(node):  # reads no row: known now
            held = r.holds(node, _NO_ROW)
            return held is True, held is False
        if isinstance(node, r.And | r.Or):
            tl, fl = self.both(node.left)
            tr, fr = self.both(node.right)
            if isinstance(node, r.And):
                return _and(tl, tr), _or(fl, fr)
            return _or(tl, tr), _and(fl, fr)
        if isinstance(node, r.Not):
            true, false = self.both(node.operand)
            return false, true
        if isinstance(node, r.Fires):
            false = self.both(node.operand)[1]
            return _not(false), false
        if isinstance(node, r.Has):
            column = self.column(node)
            return column.present, Q(lookups.IsNull(column.expression, True))
        if isinstance(node, r.Field):
            column = self.column(node)
            if column.need_kind() != "bool":
                return False, False  # not a boolean: an error on every row
            return _guarded(column.present, lookups.Exact(column.expression, Value(True)))
        if isinstance(node, r.Compare):
            return self.compare(node)
        if isinstance(node, r.In):
            return self.member(node)
        if isinstance(node, r.Call) and node.name != "size":
            return self.string_call(node)
        if isinstance(node, r.Call):
            self.operand(node)
            return False, False  # a number used as a condition: an error
        raise NotExpressibleError(f"{r.to_cel(node)} cannot be a filter")

    def operand(self, node: r.Node) -> _Operand:
        if isinstance(node, r.Field):
            column = self.column(node)
            return _Operand(column.expression, column.need_kind(), column.present)
        if (
            isinstance(node, r.Call)
            and node.name == "size"
            and not node.args
            and isinstance(node.target, r.Field)
        ):
            column = self.column(node.target)
            if column.need_kind() != "string":
                return _Operand(None, None, False)
            return _Operand(Length(column.expression), "int", column.present)
        raise NotExpressibleError(f"{r.to_cel(node)} cannot be compared in a filter")

    def compare(self, node: r.Compare) -> tuple[_Pred, _Pred]:
        op, left, right = node.op, node.left, node.right
        if isinstance(left, r.Value):
            op, left, right = _FLIPPED[op], right, left
        side = self.operand(left)
        if isinstance(right, r.Value):
            other: Any = _literal(right.value)
            other_kind, present = _value_kind(right.value), side.present
            nan = type(right.value) is float and math.isnan(right.value)
        else:
            second = self.operand(right)
            if second.kind is None:
                return False, False
            other, other_kind, nan = second.expression, second.kind, False
            present = _and(side.present, second.present)
        if side.kind is None:
            return False, False
        if not _compatible(side.kind, other_kind):
            if op == "==":  # unequal kinds are unequal, not an error
                return False, present
            if op == "!=":
                return present, False
            return False, False  # ordering across kinds: an error
        if nan:  # NaN equals and orders nothing
            return (present, False) if op == "!=" else (False, present)
        if op == "!=":
            false, true = _guarded(present, lookups.Exact(side.expression, other))
            return true, false
        if op != "==" and side.kind == "string":
            return _guarded(present, _LOOKUPS[op](_CodePoint(side.expression), _CodePoint(other)))
        return _guarded(present, _LOOKUPS[op](side.expression, other))

    def member(self, node: r.In) -> tuple[_Pred, _Pred]:
        container = node.container
        if not isinstance(container, r.Value) or not isinstance(container.value, list | tuple):
            raise NotExpressibleError(f"{r.to_cel(node)}: a filter tests membership in lists")
        side = self.operand(node.item)
        if side.kind is None:
            return False, False
        items = [
            v
            for v in container.value
            if _compatible(side.kind, _value_kind(v)) and not (type(v) is float and math.isnan(v))
        ]
        if not items:
            return False, side.present
        condition = Q()
        for item in items:
            condition |= Q(lookups.Exact(side.expression, _literal(item)))
        return _and(side.present, condition), _and(side.present, ~condition)

    def string_call(self, node: r.Call) -> tuple[_Pred, _Pred]:
        """startsWith, endsWith and contains: exact and case-sensitive (never LIKE)."""
        if not isinstance(node.target, r.Field) or len(node.args) != 1:
            raise NotExpressibleError(f"{r.to_cel(node)} cannot be a filter")
        (arg,) = node.args
        if not isinstance(arg, r.Value):
            raise NotExpressibleError(f"{r.to_cel(node)}: a filter takes a known argument")
        column = self.column(node.target)
        if column.need_kind() != "string" or type(arg.value) is not str:
            return False, False  # no such overload: an error on every row
        text: str = arg.value
        if not text:
            return column.present, False
        col = column.expression
        if node.name == "startsWith":
            condition = lookups.Exact(Left(col, len(text)), Value(text))
        elif node.name == "endsWith":
            # A substring is never longer than the column, so a short column (where
            # the position is below 1) never equals the text.
            position = Length(col) - Value(len(text) - 1)
            condition = lookups.Exact(Substr(col, position), Value(text))
        else:
            condition = lookups.GreaterThan(StrIndex(col, Value(text)), 0)
        return _guarded(column.present, condition)
