"""Requests checked against the set's attribute schemas, by checkers compiled at load.

Each schema becomes a tree of closures once, when the set loads; a request is then
checked by calling them, with no schema walked per request. We compile the typed model
ourselves rather than hand it to a JSON Schema library: the subset is seven keywords,
and the checks must follow CEL's reading of JSON exactly (an int where a double is
declared is fine, ``1.0`` where an int is declared is not, a bool is never a number;
timestamps and durations parse as ``timestamp()`` and ``duration()`` parse them), and
report every mismatch by its path in the request, not only the first.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from zerotrust.cel._runtime_time import parse_duration, parse_timestamp
from zerotrust.cel._runtime_values import CelError
from zerotrust.policy.attr_schema import (
    AttributeSchemas,
    BoolType,
    DoubleType,
    FieldType,
    IntType,
    ListType,
    MapType,
    ObjectType,
    StringType,
    TimestampType,
)

__all__ = ["Mismatch", "RequestChecker", "compile_checker"]

#: Appends ``(path, message)`` for each mismatch below ``value`` to ``out``.
_Check = Callable[[Any, str, list[tuple[str, str]]], None]


@attrs.frozen
class Mismatch:
    """A request field that does not match its schema: where, and what is wrong
    (``expected an integer``, ``is required and missing``)."""

    field: str
    message: str


@attrs.frozen
class RequestChecker:
    """The compiled checks of one policy set's schemas."""

    resources: Mapping[str, _Check] = attrs.field(hash=False)
    subjects: Mapping[str, _Check] = attrs.field(hash=False)
    singles: tuple[tuple[str, _Check], ...]  # ("action", ...), ("device", ...), ...

    def check(self, variables: Mapping[str, Any]) -> list[Mismatch]:
        """Every mismatch of a request (its plain variables: ``subject``, ``resource``...).
        A resource or subject type with no schema is not checked."""
        out: list[tuple[str, str]] = []
        resource = variables["resource"]
        found = self.resources.get(resource["type"])
        if found is not None:
            found(resource["properties"], "resource.properties", out)
        subject = variables["subject"]
        found = self.subjects.get(subject["type"])
        if found is not None:
            found(subject["properties"], "subject.properties", out)
        for name, single in self.singles:
            if name == "action":
                single(variables["action"]["properties"], "action.properties", out)
            else:
                single(variables[name], name, out)
        return [Mismatch(path, message) for path, message in out] if out else []


def compile_checker(schemas: AttributeSchemas) -> RequestChecker:
    """Compile every schema of a set once."""
    singles = [
        (name, _compile(made))
        for name, made in (
            ("action", schemas.action),
            ("device", schemas.device),
            ("context", schemas.context),
        )
        if made is not None
    ]
    return RequestChecker(
        {name: _compile(made) for name, made in schemas.resources},
        {name: _compile(made) for name, made in schemas.subjects},
        tuple(singles),
    )


def _compile(made: FieldType) -> _Check:
    if isinstance(made, ObjectType):
        return _object(made)
    if isinstance(made, MapType):
        values = _compile(made.values)

        def check_map(value: Any, path: str, out: list[tuple[str, str]]) -> None:
            if type(value) is not dict:
                out.append((path, "expected an object"))
                return
            for key, item in value.items():
                values(item, f"{path}.{key}", out)

        return check_map
    if isinstance(made, ListType):
        items = None if made.items is None else _compile(made.items)

        def check_list(value: Any, path: str, out: list[tuple[str, str]]) -> None:
            if type(value) is not list:
                out.append((path, "expected a list"))
            elif items is not None:
                for index, item in enumerate(value):
                    items(item, f"{path}[{index}]", out)

        return check_list
    if isinstance(made, StringType):
        return _string(made)
    if isinstance(made, IntType):
        return _scalar(lambda v: type(v) is int, "an integer", made.enum)
    if isinstance(made, DoubleType):
        return _scalar(lambda v: type(v) is float or type(v) is int, "a number", made.enum)
    if isinstance(made, BoolType):
        return _scalar(lambda v: type(v) is bool, "a boolean", made.enum)
    if isinstance(made, TimestampType):
        return _parsed(parse_timestamp, 'a timestamp string ("2026-01-31T09:00:00Z")')
    return _parsed(parse_duration, 'a duration string ("1h30m")')


def _object(made: ObjectType) -> _Check:
    fields = tuple((name, _compile(kind)) for name, kind in made.properties)
    required = made.required
    declared = frozenset(name for name, _ in made.properties)
    additional = made.additional
    more = None if isinstance(additional, bool) else _compile(additional)

    def check_object(value: Any, path: str, out: list[tuple[str, str]]) -> None:
        if type(value) is not dict:
            out.append((path, "expected an object"))
            return
        for name in required:
            if name not in value:
                out.append((f"{path}.{name}", "is required and missing"))
        for name, check in fields:
            if name in value:
                check(value[name], f"{path}.{name}", out)
        if additional is True or (len(value) <= len(fields) and value.keys() <= declared):
            return
        for key, item in value.items():
            if key in declared:
                continue
            if more is not None:
                more(item, f"{path}.{key}", out)
            else:
                out.append((f"{path}.{key}", "is not declared in the schema"))

    return check_object


def _string(made: StringType) -> _Check:
    if made.format is not None:
        kind = "an IP address" if made.format == "ip" else "a CIDR block (10.0.0.0/8)"
        parse = ipaddress.ip_address if made.format == "ip" else _network

        def check_format(value: Any, path: str, out: list[tuple[str, str]]) -> None:
            if type(value) is not str:
                out.append((path, f"expected a string holding {kind}"))
                return
            try:
                parse(value)
            except ValueError:
                out.append((path, f"expected a string holding {kind}"))

        return check_format
    return _scalar(lambda v: type(v) is str, "a string", made.enum)


def _network(text: str) -> object:
    return ipaddress.ip_network(text, strict=False) if "/" in text else _no_prefix(text)


def _no_prefix(text: str) -> object:
    raise ValueError(f"{text!r} has no prefix length")


def _scalar(accepts: Callable[[Any], bool], expected: str, enum: tuple[Any, ...] | None) -> _Check:
    if enum is None:

        def check(value: Any, path: str, out: list[tuple[str, str]]) -> None:
            if not accepts(value):
                out.append((path, f"expected {expected}"))

        return check
    allowed = enum
    listed = ", ".join(repr(v) for v in enum)

    def check_enum(value: Any, path: str, out: list[tuple[str, str]]) -> None:
        if not accepts(value):
            out.append((path, f"expected {expected}"))
        elif value not in allowed or (type(value) is float and math.isnan(value)):
            out.append((path, f"expected one of {listed}"))

    return check_enum


def _parsed(parse: Callable[[str], object], expected: str) -> _Check:
    def check(value: Any, path: str, out: list[tuple[str, str]]) -> None:
        if type(value) is not str:
            out.append((path, f"expected {expected}"))
            return
        try:
            parse(value)
        except CelError:
            out.append((path, f"expected {expected}"))

    return check
