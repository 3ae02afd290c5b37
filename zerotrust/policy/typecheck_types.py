"""The types the condition checker reasons with, and where they come from.

CEL's own types (cel-spec ``langdef.md``) plus what a schema can say about a request:
an object whose fields are declared, required or optional, closed or open. Request
values are JSON as the caller sent it, so a schema ``number`` holds an int or a double
at run time (``number`` here: compared freely, never mixed in arithmetic), and
timestamps, durations and addresses declared by ``format`` are strings until
``timestamp()``, ``duration()`` or ``ip()`` reads them. ``dyn`` is what is not known:
anything goes with it and its results are ``dyn`` too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

import attrs

from zerotrust.policy.attr_schema import (
    AttributeSchemas,
    BoolType,
    DoubleType,
    DurationType,
    FieldType,
    IntType,
    ListType,
    MapType,
    ObjectType,
    StringType,
    TimestampType,
)

__all__ = [
    "DYN",
    "ListT",
    "MapT",
    "ObjT",
    "Prim",
    "Type",
    "data_type",
    "join",
    "named",
    "request_types",
    "resource_properties",
    "resource_type",
]


@attrs.frozen
class Prim:
    """A scalar type by its CEL name (``int``, ``string``, ``timestamp``, ``net.IP``...);
    ``number`` is an int or a double, ``string|null`` a string or null; ``enum`` the
    values a schema allows, when it lists them; ``format`` what a schema string holds
    (``ip``, ``cidr``, ``date-time``, ``duration``), so only its own conversion reads it."""

    name: str
    enum: tuple[Any, ...] | None = attrs.field(default=None, eq=False)
    format: str | None = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        return self.name


@attrs.frozen
class ListT:
    elem: Type

    def __str__(self) -> str:
        return f"list({self.elem})"


@attrs.frozen
class MapT:
    key: Type
    value: Type

    def __str__(self) -> str:
        return f"map({self.key}, {self.value})"


@attrs.frozen
class ObjT:
    """A JSON object with declared ``fields`` (name, type, required). ``rest`` is the
    type of an undeclared key's value, None when the object is closed; ``what`` names
    the schema in messages (``resource type 'document'``)."""

    what: str
    fields: tuple[tuple[str, Type, bool], ...]
    rest: Type | None
    # name -> (type, required): a schema may declare thousands of fields
    _index: dict[str, tuple[Type, bool]] = attrs.field(init=False, eq=False, repr=False, hash=False)

    @_index.default
    def _indexed(self) -> dict[str, tuple[Type, bool]]:
        return {n: (t, required) for n, t, required in reversed(self.fields)}

    def field(self, name: str) -> tuple[Type, bool] | None:
        return self._index.get(name)

    def __str__(self) -> str:
        return "map(string, dyn)"


Type: TypeAlias = Prim | ListT | MapT | ObjT

DYN = Prim("dyn")
_STRING = Prim("string")


def named(name: str) -> Prim:
    return DYN if name == "dyn" else Prim(name)


def join(a: Type, b: Type) -> Type:
    """One type for two (branches of ``?:``, items of a list): what a value of either
    is known to be. Unlike scalars make a union (``bool|string``) that no operator but
    equality takes: a value of it may be either at run time."""
    if DYN in (a, b):
        return DYN
    if a == b:
        if not isinstance(a, Prim) or not isinstance(b, Prim):
            return a
        enum = a.enum if a.enum == b.enum else None
        return Prim(a.name, enum, a.format if a.format == b.format else None)
    if isinstance(a, ListT) and isinstance(b, ListT):
        return ListT(join(a.elem, b.elem))
    if isinstance(a, MapT) and isinstance(b, MapT):
        return MapT(join(a.key, b.key), join(a.value, b.value))
    if isinstance(a, ObjT) and isinstance(b, ObjT):
        return _union([a, b], a.what if a.what == b.what else "a map")
    names = set(str(a).split("|")) | set(str(b).split("|"))
    if names <= {"int", "double", "number"}:
        return Prim("number")
    return Prim("|".join(sorted(names)))


def from_schema(field: FieldType, what: str) -> Type:
    """The run-time type of a value that conforms to ``field``."""
    if isinstance(field, StringType):
        return Prim("string", field.enum, field.format)
    if isinstance(field, IntType):
        return Prim("int", field.enum)
    if isinstance(field, DoubleType):
        return Prim("number", field.enum)
    if isinstance(field, BoolType):
        return Prim("bool", field.enum)
    if isinstance(field, TimestampType):
        return Prim("string", format="date-time")
    if isinstance(field, DurationType):
        return Prim("string", format="duration")
    if isinstance(field, ListType):
        return ListT(DYN if field.items is None else from_schema(field.items, what))
    if isinstance(field, MapType):
        return MapT(_STRING, from_schema(field.values, what))
    return _object(field, what)


def _object(schema: ObjectType, what: str) -> ObjT:
    fields = tuple(
        (name, from_schema(t, what), name in schema.required) for name, t in schema.properties
    )
    rest: Type | None
    if schema.additional is True:
        rest = DYN
    elif schema.additional is False:
        rest = None
    else:
        rest = from_schema(schema.additional, what)
    return ObjT(what, fields, rest)


def _union(objects: list[ObjT], what: str) -> ObjT:
    """What a value of any one of ``objects`` is known to be: a field is required only
    where every one requires it, closed only where every one is closed."""
    if len(objects) == 1:
        return objects[0]
    names = list(dict.fromkeys(n for o in objects for n, _, _ in o.fields))
    fields = []
    for name in names:
        found = [o.field(name) for o in objects]
        # Where a type does not declare the field, its undeclared keys' type holds it
        # (dyn where the object is open); a closed one never has it.
        types = [o.rest if f is None else f[0] for o, f in zip(objects, found, strict=True)]
        required = all(f is not None and f[1] for f in found)
        fields.append((name, _joined([t for t in types if t is not None]), required))
    rests = [o.rest for o in objects if o.rest is not None]
    return ObjT(what, tuple(fields), _joined(rests) if rests else None)


def _joined(types: list[Type]) -> Type:
    made = types[0]
    for t in types[1:]:
        made = join(made, t)
    return made


def _types_text(kind: str, names: Iterable[str]) -> str:
    shown = sorted(names)
    listed = ", ".join(repr(n) for n in shown)
    plural = "" if len(shown) == 1 else "s"
    return f"the schema of {kind} type{plural} {listed}"


def resource_properties(schemas: AttributeSchemas, targeted: frozenset[str] | None) -> Type:
    """``resource.properties`` for a policy that targets ``targeted`` resource types:
    ``dyn`` when it targets any type or one without a schema."""
    if not targeted:
        return DYN
    found = []
    for name in sorted(targeted):
        schema = schemas.resource(name)
        if schema is None:
            return DYN
        found.append(_object(schema, _types_text("resource", [name])))
    return _union(found, _types_text("resource", targeted))


def request_types(
    schemas: AttributeSchemas, data: Mapping[str, Any], *, rules: bool
) -> dict[str, Type]:
    """The type of every variable but ``resource.properties`` (see
    :func:`resource_properties`); ``risk`` only where ``rules`` (signals cannot read it)."""
    subjects = [_object(s, _types_text("subject", [n])) for n, s in schemas.subjects]
    subject_props: Type = (
        _union(subjects, _types_text("subject", [n for n, _ in schemas.subjects]))
        if subjects
        else DYN
    )
    action_props: Type = (
        DYN if schemas.action is None else _object(schemas.action, "the schema of action")
    )
    found: dict[str, Type] = {
        "subject": ObjT(
            "the request's subject",
            (("type", _STRING, True), ("id", _STRING, True), ("properties", subject_props, True)),
            None,
        ),
        "action": ObjT(
            "the request's action",
            (("name", Prim("string", schemas.actions), True), ("properties", action_props, True)),
            None,
        ),
        "device": DYN
        if schemas.device is None
        else _object(schemas.device, "the schema of device"),
        "context": DYN
        if schemas.context is None
        else _object(schemas.context, "the schema of context"),
        "data": data_type(data, "the loaded data"),
        "behavior": DYN,  # its keys depend on the behaviour source
        "now": Prim("timestamp"),
    }
    if rules:
        found["risk"] = ObjT(
            "the decision's risk",
            (("score", Prim("int"), True), ("signals", ListT(_STRING), True)),
            None,
        )
    return found


def resource_type(properties: Type) -> ObjT:
    return ObjT(
        "the request's resource",
        (
            ("type", _STRING, True),
            ("id", Prim("string|null"), True),
            ("properties", properties, True),
        ),
        None,
    )


def data_type(value: Any, what: str) -> Type:
    """The type of a loaded data value: every key known exactly."""
    if isinstance(value, bool):
        return Prim("bool")
    if isinstance(value, int):
        return Prim("int")
    if isinstance(value, float):
        return Prim("double")
    if isinstance(value, str):
        return _STRING
    if value is None:
        return Prim("null")
    if isinstance(value, Mapping):
        fields = tuple((str(k), data_type(v, what), True) for k, v in value.items())
        return ObjT(what, fields, None)
    if isinstance(value, list | tuple):
        if not value:
            return ListT(DYN)
        elem = data_type(value[0], what)
        for item in value[1:]:
            elem = join(elem, data_type(item, what))
            if elem == DYN:
                break
        return ListT(elem)
    return DYN
