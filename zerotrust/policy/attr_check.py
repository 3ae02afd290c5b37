"""Requests checked against the set's attribute schemas, by checkers compiled at load.

Each schema is compiled twice, once, when the set loads: a fast test that only says
whether a value conforms (a generated function per object, no paths built), run on
every request, and a tree of closures that lists each mismatch by its path, run only
when the first says no. No schema is walked per request. A property test holds the two
to the same verdict. We compile the typed model
ourselves rather than hand it to a JSON Schema library: the subset is seven keywords,
and the checks must follow CEL's reading of JSON exactly (an int where a double is
declared is fine, ``1.0`` where an int is declared is not, a bool is never a number;
timestamps and durations parse as ``timestamp()`` and ``duration()`` parse them), and
report every mismatch by its path in the request, not only the first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from zerotrust.cel._runtime_time import parse_duration, parse_timestamp
from zerotrust.cel._runtime_values import CelError
from zerotrust.cel.functions import parse_address, parse_range
from zerotrust.decision import Decision, EvaluationError
from zerotrust.errors import RequestError
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
#: Whether a value conforms, and nothing else: the path every request takes.
_Accepts = Callable[[Any], bool]
_MISSING = object()


@attrs.frozen
class Mismatch:
    """A request field that does not match its schema: where, and what is wrong
    (``expected an integer``, ``is required and missing``)."""

    field: str
    message: str


@attrs.frozen
class RequestChecker:
    """The compiled checks of one policy set's schemas."""

    resources: Mapping[str, tuple[_Accepts, _Check]] = attrs.field(hash=False)
    subjects: Mapping[str, tuple[_Accepts, _Check]] = attrs.field(hash=False)
    singles: tuple[tuple[str, _Accepts, _Check], ...]  # ("action", ...), ("device", ...)
    actions: frozenset[str] | None = None  # the declared action names, when declared

    def check(self, variables: Mapping[str, Any]) -> list[Mismatch]:
        """Every mismatch of a request (its plain variables: ``subject``, ``resource``...).
        A resource or subject type with no schema is not checked."""
        resource, subject = variables["resource"], variables["subject"]
        if self.actions is not None and variables["action"]["name"] not in self.actions:
            return self._mismatches(variables)
        found = self.resources.get(resource["type"])
        if found is None or found[0](resource["properties"]):
            found = self.subjects.get(subject["type"])
            if found is None or found[0](subject["properties"]):
                for name, accepts, _ in self.singles:
                    part = variables[name]
                    if not accepts(part["properties"] if name == "action" else part):
                        break
                else:
                    return []
        return self._mismatches(variables)

    def enforce(self, variables: Mapping[str, Any]) -> None:
        """``enforce``: raise :class:`RequestError` naming the first mismatching field."""
        found = self.check(variables)
        if found:
            more = f" (and {len(found) - 1} more mismatches)" if len(found) > 1 else ""
            raise RequestError(found[0].field, f"{found[0].message}{more}")

    def reported(self, decision: Decision, variables: Mapping[str, Any]) -> Decision:
        """``report``: each mismatch becomes an error of the decision (and so of its log
        record), kind ``schema``; the decision is otherwise the one the policies made."""
        found = self.check(variables)
        if not found:
            return decision
        mismatches = [EvaluationError(m.field, "schema", m.message) for m in found]
        return attrs.evolve(decision, errors=(*mismatches, *decision.errors))

    def _mismatches(self, variables: Mapping[str, Any]) -> list[Mismatch]:
        out: list[tuple[str, str]] = []
        name = variables["action"]["name"]
        if self.actions is not None and name not in self.actions:
            out.append(("action.name", _undeclared_action(self.actions)))
        resource = variables["resource"]
        found = self.resources.get(resource["type"])
        if found is not None:
            found[1](resource["properties"], "resource.properties", out)
        subject = variables["subject"]
        found = self.subjects.get(subject["type"])
        if found is not None:
            found[1](subject["properties"], "subject.properties", out)
        for name, _, single in self.singles:
            if name == "action":
                single(variables["action"]["properties"], "action.properties", out)
            else:
                single(variables[name], name, out)
        return [Mismatch(path, message) for path, message in out]


def compile_checker(schemas: AttributeSchemas) -> RequestChecker:
    """Compile every schema of a set once."""
    singles = [
        (name, _accepts(made), _compile(made))
        for name, made in (
            ("action", schemas.action),
            ("device", schemas.device),
            ("context", schemas.context),
        )
        if made is not None
    ]
    return RequestChecker(
        {name: (_accepts(made), _compile(made)) for name, made in schemas.resources},
        {name: (_accepts(made), _compile(made)) for name, made in schemas.subjects},
        tuple(singles),
        None if schemas.actions is None else frozenset(schemas.actions),
    )


def _undeclared_action(actions: Iterable[str]) -> str:
    """Why a request's ``action.name`` is refused. Neither the value nor a near
    neighbour is shown: a decision log that redacts ``action.name`` would otherwise
    keep a hint of it (a "did you mean"), or see the declared names mangled where they
    contain the value."""
    return f"is not one of the {len(frozenset(actions))} declared actions"


def _accepts(made: FieldType) -> _Accepts:
    """The fast conformance test of ``made`` (the same verdict as :func:`_compile`)."""
    if isinstance(made, ObjectType):
        return _object_accepts(made)
    if isinstance(made, MapType):
        values = _accepts(made.values)
        return lambda v: type(v) is dict and all(values(i) for i in v.values())
    if isinstance(made, ListType):
        if made.items is None:
            return lambda v: type(v) is list
        exact = _exact_types(made.items)
        if exact is not None:
            kinds = frozenset(exact)  # the item types, gathered by C-level map
            return lambda v: type(v) is list and kinds.issuperset(map(type, v))
        items = _accepts(made.items)
        return lambda v: type(v) is list and all(items(i) for i in v)
    exact = _exact_types(made)
    if exact is not None:
        types = exact
        return lambda v: type(v) in types
    if isinstance(made, StringType | IntType | DoubleType | BoolType) and made.enum:
        enum_types = _ENUM_TYPES[type(made)]  # (an enum never has a format: refused at load)
        allowed = frozenset(made.enum)
        return lambda v: type(v) in enum_types and v in allowed
    if isinstance(made, StringType) and made.format == "ip" and made.enum is None:
        return lambda v: type(v) is str and _is_address(v)
    # other enums and formats: the reporting check is fast enough and says the same
    check = _compile(made)

    def accepts_other(value: Any) -> bool:
        out: list[tuple[str, str]] = []
        check(value, "", out)
        return not out

    return accepts_other


def _object_accepts(made: ObjectType) -> _Accepts:
    """One generated function per object: a line per declared field, so a conforming
    object costs a dict lookup and a type test a field, with no call per field.

    Field names reach the source only as ``repr()`` string literals; every other value
    is bound by name in the function's namespace, never written into the source.
    """
    names: dict[str, Any] = {"_MISSING": _MISSING}
    lines = ["def accepts(value):", "    if type(value) is not dict: return False"]

    def bind(value: Any) -> str:
        name = f"_c{len(names)}"
        names[name] = value
        return name

    required = frozenset(made.required)
    declared = frozenset(name for name, _ in made.properties)
    if made.additional is False and required == declared:
        lines.append(f"    if value.keys() != {bind(declared)}: return False")  # one test
    else:
        if required:
            lines.append(f"    if not {bind(required)} <= value.keys(): return False")
        if made.additional is False:
            lines.append(f"    if not value.keys() <= {bind(declared)}: return False")
    for name, kind in made.properties:
        if name in required:  # present: tested above
            lines.append(f"    v = value[{name!r}]")
            lines.append(f"    if not ({_test_source(kind, bind)}): return False")
        else:
            lines.append(f"    v = value.get({name!r}, _MISSING)")
            lines.append(
                f"    if v is not _MISSING and not ({_test_source(kind, bind)}): return False"
            )
    if not isinstance(made.additional, bool):
        more, known = bind(_accepts(made.additional)), bind(declared)
        lines.append(f"    for key in value.keys() - {known}:")
        lines.append(f"        if not {more}(value[key]): return False")
    lines.append("    return True")
    exec(compile("\n".join(lines), "<attribute schema>", "exec"), names)
    accepts: _Accepts = names["accepts"]
    return accepts


def _test_source(kind: FieldType, bind: Callable[[Any], str]) -> str:
    """A Python expression testing the value ``v`` against ``kind``."""
    exact = _exact_types(kind)
    if exact is not None:
        return " or ".join(f"type(v) is {bind(t)}" for t in exact)
    if isinstance(kind, ListType) and kind.items is not None:
        items = _exact_types(kind.items)
        if items is not None:
            return f"type(v) is list and {bind(frozenset(items))}.issuperset(map(type, v))"
    return f"{bind(_accepts(kind))}(v)"


_ENUM_TYPES: dict[type, tuple[type, ...]] = {
    StringType: (str,),
    IntType: (int,),
    DoubleType: (float, int),
    BoolType: (bool,),
}


def _exact_types(made: FieldType) -> tuple[type, ...] | None:
    """The Python types a field accepts when its type alone decides, else None."""
    if isinstance(made, StringType) and made.format is None and made.enum is None:
        return (str,)
    if isinstance(made, IntType) and made.enum is None:
        return (int,)
    if isinstance(made, DoubleType) and made.enum is None:
        return (float, int)
    if isinstance(made, BoolType) and made.enum is None:
        return (bool,)
    return None


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
        parse = parse_address if made.format == "ip" else parse_range
        return _parsed(parse, f"a string holding {kind}", ValueError)
    return _scalar(lambda v: type(v) is str, "a string", made.enum)


def _is_address(text: str) -> bool:
    """Whether ``text`` is an address as the CEL IP functions read it (the same
    parser, cached there: a value the schema accepts never errors in ``ip_in_cidr``)."""
    try:
        parse_address(text)
    except ValueError:
        return False
    return True


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
        elif value not in allowed:
            out.append((path, f"expected one of {listed}"))

    return check_enum


def _parsed(
    parse: Callable[[str], object], expected: str, error: type[Exception] = CelError
) -> _Check:
    """A string that ``parse`` reads without raising ``error``."""

    def check(value: Any, path: str, out: list[tuple[str, str]]) -> None:
        if type(value) is not str:
            out.append((path, f"expected {expected}"))
            return
        try:
            parse(value)
        except error:
            out.append((path, f"expected {expected}"))

    return check
