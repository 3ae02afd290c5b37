"""Attribute schemas: the shapes of request attributes, declared in ``*.schema.yaml`` files.

A schema file names, for each resource type and subject type, the shape of its
``properties``, and the shapes of ``action.properties``, ``device`` and ``context``. Each
shape is written in a small subset of JSON Schema (``type``, ``properties``,
``required``, ``items``, ``additionalProperties``, ``enum``, ``format``) so editors and
other tools can read it, and is read here into a typed model (one frozen class per kind
of field) that request checks and the condition type checker build on. Anything outside
the subset is refused with its position rather than ignored: a keyword we ignored would
be a constraint the author believes holds and nothing checks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal, TypeAlias

import attrs

from zerotrust._describe import describe
from zerotrust.errors import Diagnostic
from zerotrust.obligations import did_you_mean
from zerotrust.policy.located import LNode

__all__ = [
    "KEYWORDS",
    "SECTIONS",
    "VALIDATIONS",
    "AttributeSchemas",
    "BoolType",
    "DoubleType",
    "DurationType",
    "FieldType",
    "IntType",
    "ListType",
    "MapType",
    "ObjectType",
    "SchemaFile",
    "StringType",
    "TimestampType",
    "merge_schema_files",
    "read_schema_file",
]

#: The JSON Schema keywords understood; any other is refused.
KEYWORDS = ("type", "properties", "required", "items", "additionalProperties", "enum", "format")
#: The top-level keys of a schema file.
SECTIONS = ("resources", "subjects", "action", "device", "context", "actions", "validation")
#: What ``validation:`` may say: whether an optional field read without ``has()`` is an
#: error (``strict``) or a warning (``permissive``) of the condition type checker.
VALIDATIONS = ("strict", "permissive")
_TYPES = ("string", "integer", "number", "boolean", "array", "object")
_FORMATS = ("date-time", "duration", "ip", "cidr")
_OBJECT_ONLY = ("properties", "required", "additionalProperties")


@attrs.frozen
class StringType:
    """A string; ``format`` is ``"ip"`` or ``"cidr"`` when declared, ``enum`` its values."""

    format: Literal["ip", "cidr"] | None = None
    enum: tuple[str, ...] | None = None


@attrs.frozen
class IntType:
    """A whole number (CEL ``int``): never a bool, never a float, even ``1.0``."""

    enum: tuple[int, ...] | None = None


@attrs.frozen
class DoubleType:
    """A number (CEL ``double``); an int is accepted too, as CEL's JSON reading does."""

    enum: tuple[float, ...] | None = None


@attrs.frozen
class BoolType:
    """``true`` or ``false``."""

    enum: tuple[bool, ...] | None = None


@attrs.frozen
class TimestampType:
    """A string in RFC 3339 form (``format: date-time``), read by ``timestamp()``."""


@attrs.frozen
class DurationType:
    """A string in CEL's duration form (``"1h30m"``, ``"90s"``), read by ``duration()``."""


@attrs.frozen
class ListType:
    """A list whose items have one type; ``None`` when ``items`` is not declared."""

    items: FieldType | None = None


@attrs.frozen
class MapType:
    """A map of string keys to values of one type (``additionalProperties`` only)."""

    values: FieldType


@attrs.frozen
class ObjectType:
    """An object of named fields. ``additional`` says what other keys may hold: ``True``
    (anything, JSON Schema's default), ``False`` (refused) or a type."""

    properties: tuple[tuple[str, FieldType], ...] = ()
    required: tuple[str, ...] = ()  # in the order written: reprs (and revisions) are stable
    additional: bool | FieldType = True

    def field(self, name: str) -> FieldType | None:
        """The declared type of ``name``, or None."""
        return next((t for n, t in self.properties if n == name), None)


FieldType: TypeAlias = (
    StringType
    | IntType
    | DoubleType
    | BoolType
    | TimestampType
    | DurationType
    | ListType
    | MapType
    | ObjectType
)


@attrs.frozen
class SchemaFile:
    """What one schema file declares, with where each type's schema is written."""

    file: str
    resources: tuple[tuple[str, ObjectType, int, int], ...] = ()
    subjects: tuple[tuple[str, ObjectType, int, int], ...] = ()
    singles: tuple[tuple[str, ObjectType, int, int], ...] = ()  # action, device, context
    #: The ``actions`` list (the set's action names), with where the key is written.
    actions: tuple[tuple[str, ...], int, int] | None = None
    validation: tuple[str, int, int] | None = None  # the setting, where it is written


@attrs.frozen
class AttributeSchemas:
    """Every schema of a policy set. A type with no schema is not described (``None``)."""

    resources: tuple[tuple[str, ObjectType], ...] = ()
    subjects: tuple[tuple[str, ObjectType], ...] = ()
    action: ObjectType | None = None
    device: ObjectType | None = None
    context: ObjectType | None = None
    #: Every action name the set knows (``actions``), or None when not declared.
    actions: tuple[str, ...] | None = None
    #: ``strict`` or ``permissive``: see :data:`VALIDATIONS`.
    validation: str = "strict"
    # Where they came from; not part of what they mean (nor of the set's revision).
    files: tuple[str, ...] = attrs.field(default=(), eq=False, repr=False)

    def resource(self, type_name: str) -> ObjectType | None:
        """The schema of a resource type's ``properties``, or None."""
        return next((t for n, t in self.resources if n == type_name), None)

    def subject(self, type_name: str) -> ObjectType | None:
        """The schema of a subject type's ``properties``, or None."""
        return next((t for n, t in self.subjects if n == type_name), None)


class _Reader:
    """Reads one file's schemas, collecting every problem with its position."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Diagnostic] = []

    def problem(self, node: LNode, message: str) -> None:
        self.problems.append(Diagnostic(self.file, node.line, node.column, message))

    def type_of(self, node: LNode, where: str, top: bool = False) -> FieldType | None:
        """The type a schema node declares; None (and a problem) if it cannot be read."""
        if not isinstance(node.value, dict):
            self.problem(node, f"{where}: a schema must be a mapping, not {describe(node.plain())}")
            return None
        keys = node.keys or {}
        fine = True
        for key in node.value:
            if key not in KEYWORDS:
                hint = did_you_mean(key, KEYWORDS) or f" (known: {', '.join(KEYWORDS)})"
                self.problem(keys[key], f"{where}: unknown schema keyword {key!r}{hint}")
                fine = False
        type_node = node.value.get("type")
        if not fine:
            return None
        if type_node is None:
            if not top:
                self.problem(node, f"{where}: a schema must declare its 'type'")
                return None
            kind = "object"
        else:
            kind = type_node.value
            if kind not in _TYPES:
                hint = did_you_mean(kind, _TYPES) if isinstance(kind, str) else ""
                self.problem(
                    type_node,
                    f"{where}: type must be one of {', '.join(_TYPES)}, not "
                    f"{_shown(type_node)}{hint}",
                )
                return None
            if top and kind != "object":
                self.problem(type_node, f"{where}: must be an object schema, not {kind!r}")
                return None
        for key in node.value:
            if key in KEYWORDS and not _applies(key, kind):
                self.problem(keys[key], f"{where}: {key!r} does not apply to type {kind!r}")
                fine = False
        if not fine:
            return None
        value: dict[str, LNode] = node.value
        if kind == "object":
            return self.object_of(value, keys, where)
        if kind == "array":
            items = value.get("items")
            if items is None:
                return ListType()
            inner = self.type_of(items, f"{where}[]")
            return None if inner is None else ListType(inner)
        made = self.scalar(kind, value.get("format"), where)
        if made is None or "enum" not in value:
            return made
        return self.enum(made, value["enum"], where)

    def action_names(self, node: LNode) -> tuple[str, ...] | None:
        """``actions``: a non-empty list of distinct action names (never ``"*"``)."""
        if not isinstance(node.value, list) or not node.value:
            self.problem(node, "actions must be a non-empty list of action names")
            return None
        names: list[str] = []
        for item in node.value:
            name = item.value
            if name == "*":
                self.problem(
                    item,
                    "'*' is not an action name: list each action here (a target's '*' "
                    "already means any action)",
                )
            elif not isinstance(name, str) or not name:
                self.problem(item, f"an action name must be a non-empty string, not {_shown(item)}")
            elif name in names:
                self.problem(item, f"action {name!r} is listed twice")
            else:
                names.append(name)
        return tuple(names) if len(names) == len(node.value) else None

    def object_of(
        self, value: dict[str, LNode], keys: dict[str, LNode], where: str
    ) -> FieldType | None:
        fields: list[tuple[str, FieldType]] = []
        fine = True
        props = value.get("properties")
        if props is not None:
            if not isinstance(props.value, dict):
                self.problem(props, f"{where}: properties must be a mapping of field names")
                return None
            for name, child in props.value.items():
                found = self.type_of(child, f"{where}.{name}" if where else name)
                if found is None:
                    fine = False
                else:
                    fields.append((name, found))
        additional: bool | FieldType = True
        more = value.get("additionalProperties")
        if more is not None:
            if isinstance(more.value, bool):
                additional = more.value
            else:
                inner = self.type_of(more, f"{where}.*")
                if inner is None:
                    return None
                additional = inner
        required: list[str] = []
        need = value.get("required")
        if need is not None:
            names = {n for n, _ in fields} | set((props.value if props else None) or ())
            if not isinstance(need.value, list):
                self.problem(need, f"{where}: required must be a list of field names")
                return None
            for item in need.value:
                if not isinstance(item.value, str):
                    self.problem(item, f"{where}: a required field name must be a string")
                    fine = False
                elif item.value not in names:
                    hint = did_you_mean(item.value, names)
                    self.problem(
                        item, f"{where}: required field {item.value!r} is not in properties{hint}"
                    )
                    fine = False
                elif item.value in required:
                    self.problem(item, f"{where}: field {item.value!r} is required twice")
                    fine = False
                else:
                    required.append(item.value)
        if not fine:
            return None
        if not fields and not required and not isinstance(additional, bool):
            return MapType(additional)
        return ObjectType(tuple(fields), tuple(required), additional)

    def scalar(self, kind: str, fmt: LNode | None, where: str) -> FieldType | None:
        if kind == "integer":
            return IntType()
        if kind == "number":
            return DoubleType()
        if kind == "boolean":
            return BoolType()
        if fmt is None:
            return StringType()
        name = fmt.value
        if name == "date-time":
            return TimestampType()
        if name == "duration":
            return DurationType()
        if name in ("ip", "cidr"):
            return StringType(format=name)
        hint = did_you_mean(name, _FORMATS) if isinstance(name, str) else ""
        self.problem(
            fmt,
            f"{where}: format must be one of {', '.join(_FORMATS)}, not {_shown(fmt)}{hint}",
        )
        return None

    def enum(self, made: FieldType, node: LNode, where: str) -> FieldType | None:
        if isinstance(made, TimestampType | DurationType) or (
            isinstance(made, StringType) and made.format is not None
        ):
            self.problem(node, f"{where}: enum is not allowed with a format")
            return None
        if not isinstance(node.value, list) or not node.value:
            self.problem(node, f"{where}: enum must be a non-empty list of values")
            return None
        values: list[Any] = []
        for item in node.value:
            value = item.value
            if not _conforms_scalar(made, value):
                self.problem(item, f"{where}: enum value {_shown(item)} is not {_name(made)}")
                return None
            if value in values:
                self.problem(item, f"{where}: enum value {value!r} is listed twice")
                return None
            values.append(value)
        if isinstance(made, DoubleType):
            return DoubleType(tuple(float(v) for v in values))
        if isinstance(made, IntType):
            return IntType(tuple(values))
        if isinstance(made, BoolType):
            return BoolType(tuple(values))
        return StringType(enum=tuple(values))


def _shown(node: LNode) -> str:
    """A scalar as written (``'strin'``, ``1.5``), anything else by its kind."""
    if isinstance(node.value, str | int | float | bool) or node.value is None:
        return repr(node.value) if node.value is not None else "null"
    return describe(node.plain())


def _applies(keyword: str, kind: str) -> bool:
    if keyword in _OBJECT_ONLY:
        return kind == "object"
    if keyword == "items":
        return kind == "array"
    if keyword == "format":
        return kind == "string"
    if keyword == "enum":
        return kind in ("string", "integer", "number", "boolean")
    return True


def _conforms_scalar(made: FieldType, value: Any) -> bool:
    if isinstance(made, StringType):
        return isinstance(value, str)
    if isinstance(made, IntType):
        return type(value) is int
    if isinstance(made, DoubleType):
        return type(value) in (int, float) and math.isfinite(value)
    return isinstance(made, BoolType) and type(value) is bool


def _name(made: FieldType) -> str:
    return {
        StringType: "a string",
        IntType: "an integer",
        DoubleType: "a number",
        BoolType: "a boolean",
    }.get(type(made), "of this type")


def read_schema_file(file: str, document: LNode) -> tuple[SchemaFile, list[Diagnostic]]:
    """One schema file's declarations, and every problem found in it."""
    reader = _Reader(file)
    if not isinstance(document.value, dict):
        reader.problem(
            document,
            f"a schema file must hold a mapping with keys among {', '.join(SECTIONS)}",
        )
        return SchemaFile(file), reader.problems
    keys = document.keys or {}
    named: dict[str, list[tuple[str, ObjectType, int, int]]] = {"resources": [], "subjects": []}
    singles: list[tuple[str, ObjectType, int, int]] = []
    actions: tuple[tuple[str, ...], int, int] | None = None
    validation: tuple[str, int, int] | None = None
    for section, node in document.value.items():
        if section not in SECTIONS:
            hint = did_you_mean(section, SECTIONS) or f" (known: {', '.join(SECTIONS)})"
            reader.problem(keys[section], f"unknown schema file key {section!r}{hint}")
            continue
        if section == "validation":
            if node.value in VALIDATIONS:
                validation = (node.value, keys[section].line, keys[section].column)
            else:
                hint = did_you_mean(node.value, VALIDATIONS) if isinstance(node.value, str) else ""
                reader.problem(
                    node, f"validation must be strict or permissive, not {_shown(node)}{hint}"
                )
            continue
        if section == "actions":
            names = reader.action_names(node)
            if names is not None:
                actions = (names, keys[section].line, keys[section].column)
            continue
        if section in named:
            if not isinstance(node.value, dict):
                reader.problem(node, f"{section} must be a mapping of type names to schemas")
                continue
            for type_name, child in node.value.items():
                found = reader.type_of(child, f"{section}.{type_name}", top=True)
                if isinstance(found, ObjectType):
                    at = (node.keys or {})[type_name]
                    named[section].append((type_name, found, at.line, at.column))
            continue
        found = reader.type_of(node, section, top=True)
        if isinstance(found, ObjectType):
            singles.append((section, found, keys[section].line, keys[section].column))
    made = SchemaFile(
        file,
        tuple(named["resources"]),
        tuple(named["subjects"]),
        tuple(singles),
        actions,
        validation,
    )
    return made, reader.problems


def merge_schema_files(files: Iterable[SchemaFile]) -> tuple[AttributeSchemas, list[Diagnostic]]:
    """The set's schemas; a type described twice (in one file or two) is refused at its
    second description, naming the first."""
    problems: list[Diagnostic] = []
    seen: dict[tuple[str, str], tuple[str, int, int]] = {}
    merged: dict[str, list[tuple[str, ObjectType]]] = {"resources": [], "subjects": []}
    singles: dict[str, ObjectType] = {}
    actions: tuple[str, ...] | None = None
    names: list[str] = []
    validation: tuple[str, str, int, int] | None = None
    for one in files:
        names.append(one.file)
        if one.validation is not None:
            if validation is None:
                validation = (one.file, *one.validation)
            else:
                problems.append(
                    Diagnostic(
                        one.file,
                        one.validation[1],
                        one.validation[2],
                        f"validation is already set at {validation[0]}:{validation[2]}:"
                        f"{validation[3]} (a policy set says it once)",
                    )
                )
        entries: list[tuple[str, str, ObjectType | tuple[str, ...], int, int]]
        entries = [("resources", *e) for e in one.resources]
        entries += [("subjects", *e) for e in one.subjects]
        entries += [(e[0], *e) for e in one.singles]
        if one.actions is not None:
            entries.append(("actions", "actions", *one.actions))
        for section, name, made, line, column in entries:
            first = seen.get((section, name))
            if first is not None:
                what = name if section == name else f"{section[:-1]} type {name!r}"
                what = "the actions" if section == "actions" else f"a schema for {what}"
                verb = "are" if section == "actions" else "is"
                problems.append(
                    Diagnostic(
                        one.file,
                        line,
                        column,
                        f"{what} {verb} already declared at {first[0]}:{first[1]}:{first[2]}",
                    )
                )
                continue
            seen[(section, name)] = (one.file, line, column)
            if isinstance(made, tuple):
                actions = made
            elif section in merged:
                merged[section].append((name, made))
            else:
                singles[section] = made
    schemas = AttributeSchemas(
        tuple(merged["resources"]),
        tuple(merged["subjects"]),
        singles.get("action"),
        singles.get("device"),
        singles.get("context"),
        actions,
        "strict" if validation is None else validation[1],
        tuple(names),
    )
    return schemas, problems
