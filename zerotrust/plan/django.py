"""Query plans as Django filters: ``Account.objects.filter(to_q(plan, Account, fields))``.

Every residual node is translated into two predicates, the rows where it is *true* and
the rows where it is *false* (an error is in neither), each guarded by ``IS NOT NULL`` so
SQL's unknown never stands in for CEL's error; a row is selected when the condition is
true. The predicates are Django expressions rather than field lookups: Django's
``~Q(...)`` adds NULL handling of its own, and its ``startswith``/``contains`` are LIKE,
which ignores ASCII case on SQLite and makes ``%`` and ``_`` wildcards. Strings compare
by code point whatever the column's collation (``COLLATE BINARY`` on SQLite, ``"C"`` on
PostgreSQL); an int beside a double is made a double, as CEL does; SQLite's rows are
read by storage class (an integer field may hold text) and PostgreSQL's NaN apart.
SQLite's text functions stop at a NUL, so its prefixes and suffixes are compared as
bytes and the size of text holding one is an error. An integer key mapped to
``resource.id`` is compared as its decimal text, the id a request carries.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from django.core.exceptions import FieldDoesNotExist
from django.db import connections, models, router
from django.db.models import ExpressionWrapper, F, Func, Q, Value, lookups
from django.db.models.functions import Cast, Collate, Left, Length, StrIndex, Substr

from zerotrust.cel._runtime_values import CelUint
from zerotrust.plan import residual as r
from zerotrust.plan._plan import NotExpressibleError, Plan, filter_condition

__all__ = ["filter_queryset", "to_q"]

#: A predicate: a constant, or a two-valued Django condition.
_Pred = Any
_LOOKUPS: Mapping[str, Callable[[Any, Any], Any]] = {
    "==": lookups.Exact,
    "<": lookups.LessThan,
    "<=": lookups.LessThanOrEqual,
    ">": lookups.GreaterThan,
    ">=": lookups.GreaterThanOrEqual,
}
_FLIPPED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_NO_ROW: Mapping[str, Any] = {"id": None, "properties": {}}


def to_q(
    plan_or_node: Plan | r.Node,
    model: type[models.Model],
    fields: Mapping[str, str],
    *,
    using: str | None = None,
) -> Q:
    """The rows of ``model`` where the plan's condition (or a residual node, such as
    ``plan.step_up.condition``) is true, as a ``Q``.

    ``fields`` maps attribute paths (``"resource.id"``, ``"resource.properties.region"``)
    to field lookup paths on ``model`` (``"pk"``, ``"region"``, ``"owner__department"``
    across a foreign key); a NULL field, or no related row, is a missing property.
    ``using`` names the database the ``Q`` is for (default: where ``model`` is read
    from), as SQLite and PostgreSQL each need their own guards.
    Raises :class:`~zerotrust.plan.UnmappedAttributeError` for a path ``fields`` does not
    name and :class:`~zerotrust.plan.NotExpressibleError` for what a filter cannot hold.
    """
    node = filter_condition(plan_or_node, fields)
    vendor = connections[using or router.db_for_read(model)].vendor
    made = _Translator(model, fields, vendor).both(node)[0]
    if made is True:
        return Q(pk__isnull=False)
    if made is False:
        return Q(pk__isnull=True)
    return made


def filter_queryset(queryset: Any, plan: Plan | r.Node, fields: Mapping[str, str]) -> Any:
    """``queryset`` narrowed to the rows the plan allows (see :func:`to_q`)."""
    return queryset.filter(to_q(plan, queryset.model, fields, using=queryset.db))


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


class _TypeOf(Func):  # type: ignore[misc]
    """SQLite's storage class of a value: a column keeps what it is given ('abc' in an
    integer column), and Django reads it back as that."""

    function = "typeof"
    output_field = models.CharField()


# --- columns ----------------------------------------------------------------------------


@attrs.frozen
class _Column:
    """A mapped attribute: its expression, CEL kind (None: not comparable) and where
    it is present."""

    path: str
    expression: Any
    kind: str | None
    label: str
    #: The stored value ``expression`` is made of, when it is not that value itself.
    stored: Any = None

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
    kind = _field_kind(field)
    if path == "resource.id" and kind not in ("string", None):
        return _id_as_text(path, lookup, kind, label)
    return _Column(path, F(lookup), kind, label)


def _id_as_text(path: str, lookup: str, kind: str, label: str) -> _Column:
    """A request's ``resource.id`` is a string, so an app decides the row of integer
    key 1 as id "1": the key compared as its decimal text. A float or boolean key has
    no one text (1.0 is "1" on PostgreSQL), so it is refused."""
    if kind != "int":
        raise NotExpressibleError(
            f"{path} is mapped to {label}: a resource id is text, and only an integer "
            "or text field reads as one"
        )
    key = F(lookup)
    return _Column(path, Cast(key, models.TextField()), "string", label, key)


# --- the translation --------------------------------------------------------------------

#: SQLite's storage classes and the CEL kind Django reads each as.
_STORAGE = (("integer", "int"), ("real", "double"), ("text", "string"), ("blob", "bytes"))
_NUMBERS = frozenset({"int", "double", "nan"})


@attrs.frozen
class _Operand:
    """One side of a comparison on the rows where ``present`` holds: an expression of
    a CEL kind (``kind`` None: an error there, e.g. ``size`` of a number; "nan": a NaN,
    which equals and orders nothing)."""

    expression: Any
    kind: str | None
    present: _Pred


def _value_kind(value: Any) -> str:
    kind = type(value)
    if kind is bool:
        return "bool"
    if kind is int or kind is CelUint:
        return "int"
    if kind is float:
        return "nan" if math.isnan(value) else "double"
    if kind is str:
        return "string"
    if kind is bytes:
        return "bytes"
    return "other"  # null, lists, maps, timestamps: equal to no column value


def _compatible(left: str, right: str) -> bool:
    return left == right or (left in _NUMBERS and right in _NUMBERS)


def _literal(value: Any) -> _Operand:
    return _Operand(
        Value(int(value) if type(value) is CelUint else value), _value_kind(value), True
    )


@attrs.frozen
class _Translator:
    model: type[models.Model]
    fields: Mapping[str, str]
    vendor: str

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
            present = self.present(self.column(node))
            return present, _not(present)
        if isinstance(node, r.Field):  # a boolean only where the row holds one
            return self.each(
                self.operands(node),
                lambda side: (
                    _guarded(True, lookups.Exact(side.expression, Value(True)))
                    if side.kind == "bool"
                    else (False, False)
                ),
            )
        if isinstance(node, r.Compare):
            return self.compare(node)
        if isinstance(node, r.In):
            return self.member(node)
        if isinstance(node, r.Call) and node.name != "size":
            return self.string_call(node)
        if isinstance(node, r.Call):
            self.operands(node)
            return False, False  # a number used as a condition: an error
        raise NotExpressibleError(f"{r.to_cel(node)} cannot be a filter")

    @staticmethod
    def each(
        operands: list[_Operand], meaning: Callable[[_Operand], tuple[_Pred, _Pred]]
    ) -> tuple[_Pred, _Pred]:
        """T and F joined over the operands' rows (which never overlap), ``meaning``
        giving each's T and F where it is present."""
        true: _Pred = False
        false: _Pred = False
        for side in operands:
            t, f = meaning(side)
            true, false = _or(true, _and(side.present, t)), _or(false, _and(side.present, f))
        return true, false

    def present(self, column: _Column) -> _Pred:
        """Where the column holds a property: not NULL, and on SQLite not an empty
        boolean field (Python's sqlite3 reads that as None)."""
        if self.vendor == "sqlite" and column.kind == "bool":
            empty = lookups.Exact(Length(Cast(column.expression, models.BinaryField())), 0)
            return _and(column.present, ~Q(empty))
        return column.present

    def variants(self, column: _Column) -> list[_Operand]:
        """The column as Django reads the rows: on SQLite a value by its storage class
        (an integer field keeps 'abc'; an integer id is text, but a fraction errs),
        except a boolean field's, true where its text is '1' and false elsewhere; on
        PostgreSQL a float field's NaN apart."""
        declared = column.need_kind()
        col = column.expression
        if self.vendor == "sqlite" and declared == "bool":
            one = lookups.Exact(Cast(col, models.TextField()), Value("1"))
            return [
                _Operand(
                    ExpressionWrapper(Q(one), models.BooleanField()), "bool", self.present(column)
                )
            ]
        if self.vendor == "sqlite" and column.stored is not None:  # an integer key as text
            storage = _TypeOf(column.stored)
            text = Q(lookups.In(storage, ["integer", "text"]))
            return [
                _Operand(col, "string", _and(column.present, text)),
                _Operand(None, None, _and(column.present, ~text)),  # 2.5: no one text
            ]
        if self.vendor == "sqlite":
            return [
                _Operand(
                    col, kind, _and(column.present, Q(lookups.Exact(_TypeOf(col), Value(storage))))
                )
                for storage, kind in _STORAGE
            ]
        if declared == "double" and self.vendor == "postgresql":
            nan = Q(lookups.Exact(col, Value(math.nan)))
            return [
                _Operand(col, "double", _and(column.present, ~nan)),
                _Operand(None, "nan", _and(column.present, nan)),
            ]
        return [_Operand(col, declared, column.present)]

    def operands(self, node: r.Node) -> list[_Operand]:
        if isinstance(node, r.Value):
            return [_literal(node.value)]
        if isinstance(node, r.Field):
            return self.variants(self.column(node))
        if (
            isinstance(node, r.Call)
            and node.name == "size"
            and not node.args
            and isinstance(node.target, r.Field)
        ):
            return [
                sized
                for side in self.variants(self.column(node.target))
                for sized in self.size(side)
            ]
        raise NotExpressibleError(f"{r.to_cel(node)} cannot be compared in a filter")

    def size(self, side: _Operand) -> list[_Operand]:
        """``size`` of a string side, in characters; on SQLite an error where the text
        holds a NUL, as its ``length()`` stops there and no other function counts
        characters (the row fails closed rather than being guessed)."""
        if side.kind != "string":
            return [_Operand(None, None, side.present)]
        if self.vendor != "sqlite":
            return [_Operand(Length(side.expression), "int", side.present)]
        nul = Q(lookups.GreaterThan(StrIndex(side.expression, Value("\x00")), 0))
        return [
            _Operand(Length(side.expression), "int", _and(side.present, ~nul)),
            _Operand(None, None, _and(side.present, nul)),
        ]

    def code_point(self, expression: Any) -> Any:
        """Text compared by code point, as CEL compares strings, whatever the column's
        collation (case-insensitive, trailing blanks ignored, a locale's order); on
        SQLite as text, as a numeric column's affinity would make a number of '5'."""
        if self.vendor == "sqlite":
            return Collate(Cast(expression, models.TextField()), "BINARY")
        return Collate(expression, "C")

    @staticmethod
    def double(side: _Operand) -> Any:
        """An int side as the double CEL makes of it beside a double (SQLite would
        compare an integer with a real exactly, PostgreSQL a bigint with the numeric
        Django writes a float as)."""
        if isinstance(side.expression, Value):
            return Value(float(side.expression.value))
        return Cast(side.expression, models.FloatField())

    def pair(self, op: str, left: _Operand, right: _Operand) -> tuple[_Pred, _Pred]:
        """T and F of ``left op right`` where both are present."""
        if left.kind is None or right.kind is None:
            return False, False
        if not _compatible(left.kind, right.kind):
            if op == "==":  # unequal kinds are unequal, not an error
                return False, True
            if op == "!=":
                return True, False
            return False, False  # ordering across kinds: an error
        if "nan" in (left.kind, right.kind):  # NaN equals and orders nothing
            return (True, False) if op == "!=" else (False, True)
        a, b = left.expression, right.expression
        if left.kind == "string":
            a, b = self.code_point(a), self.code_point(b)
        elif left.kind != right.kind:  # an int and a double
            a = self.double(left) if left.kind == "int" else a
            b = self.double(right) if right.kind == "int" else b
        if op == "!=":
            false, true = _guarded(True, lookups.Exact(a, b))
            return true, false
        return _guarded(True, _LOOKUPS[op](a, b))

    def compare(self, node: r.Compare) -> tuple[_Pred, _Pred]:
        lefts, rights = self.operands(node.left), self.operands(node.right)
        return self.each(lefts, lambda a: self.each(rights, lambda b: self.pair(node.op, a, b)))

    def member(self, node: r.In) -> tuple[_Pred, _Pred]:
        container = node.container
        if not isinstance(container, r.Value) or not isinstance(container.value, list | tuple):
            raise NotExpressibleError(f"{r.to_cel(node)}: a filter tests membership in lists")
        items = [_literal(v) for v in container.value]

        def meaning(side: _Operand) -> tuple[_Pred, _Pred]:
            if side.kind is None:
                return False, False
            found = _or(False, *(self.pair("==", side, item)[0] for item in items))
            return found, _not(found)

        return self.each(self.operands(node.item), meaning)

    def string_call(self, node: r.Call) -> tuple[_Pred, _Pred]:
        """startsWith, endsWith and contains: exact and case-sensitive (never LIKE)."""
        if not isinstance(node.target, r.Field) or len(node.args) != 1:
            raise NotExpressibleError(f"{r.to_cel(node)} cannot be a filter")
        (arg,) = node.args
        if not isinstance(arg, r.Value):
            raise NotExpressibleError(f"{r.to_cel(node)}: a filter takes a known argument")
        sides = self.variants(self.column(node.target))
        if type(arg.value) is not str:
            return False, False  # no such overload: an error on every row
        text: str = arg.value
        return self.each(
            sides,
            lambda side: (
                self.text_test(node.name, side.expression, text)
                if side.kind == "string"
                else (False, False)
            ),
        )

    def text_test(self, name: str, col: Any, text: str) -> tuple[_Pred, _Pred]:
        if not text:
            return True, False
        if self.vendor == "sqlite" and name != "contains":
            return _guarded(True, self.sqlite_affix(name, col, text))
        col = self.code_point(col)
        if name == "startsWith":
            condition = lookups.Exact(self.code_point(Left(col, len(text))), Value(text))
        elif name == "endsWith":
            # A substring is never longer than the column, so a short column (where
            # the position is below 1) never equals the text.
            position = Length(col) - Value(len(text) - 1)
            condition = lookups.Exact(self.code_point(Substr(col, position)), Value(text))
        else:
            condition = lookups.GreaterThan(StrIndex(col, Value(text)), 0)
        return _guarded(True, condition)

    @staticmethod
    def sqlite_affix(name: str, col: Any, text: str) -> Any:
        """startsWith/endsWith on SQLite, compared as the text's bytes: its ``substr()``
        and ``length()`` of text stop at a NUL, of a blob they do not. A byte prefix
        or suffix of text equal to a whole encoded text is a character one (the text
        is never empty here)."""
        data, part = Cast(col, models.BinaryField()), Cast(Value(text), models.BinaryField())
        # substr() of an empty blob is NULL: only a blob as long as the text is cut.
        position = Length(data) - Length(part) + 1 if name == "endsWith" else 1
        cut = Substr(data, position, Length(part))
        return Q(lookups.GreaterThanOrEqual(Length(data), Length(part))) & Q(
            lookups.Exact(cut, part)
        )
