"""The condition type checker's two properties, over random schemas.

Soundness: a condition the checker accepts never fails with a type error (no such
overload, no such key on a required or guarded field, a field of a non-object, a
non-bool where a bool belongs) on a request that conforms to the schema, on either
backend. Completeness where it matters: a misspelt path and an operator applied to
operands it has no overload for are always refused, at the position of the fault.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
from typing import Any

import attrs
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import (
    TYPED_NAMES,
    TypedSchema,
    conforming_properties,
    typed_conditions,
    typed_schemas,
)

from zerotrust import PolicyError
from zerotrust.cel import CompiledBackend, ConditionError, InterpreterBackend
from zerotrust.cel._backend import CelCompileError
from zerotrust.cel.functions import SetFunction, in_group
from zerotrust.policy.attr_schema import merge_schema_files, read_schema_file
from zerotrust.policy.loader import load_texts
from zerotrust.policy.located import load_documents
from zerotrust.policy.typecheck import check_text
from zerotrust.policy.typecheck_types import Type, request_types, resource_properties, resource_type

BACKENDS = (CompiledBackend(), InterpreterBackend())
#: What a run-time error says when it is a type error: none may reach an accepted condition.
TYPE_ERRORS = (
    "no such overload",
    "no such key",
    "has no fields",
    "map key type",
    "expected bool",
    "invalid list index",
    "must be a member id",
    "must be a string, not",
)


def _roots(schema: TypedSchema) -> dict[str, Type]:
    document = load_documents(schema.text())[0]
    read, problems = read_schema_file("a.schema.yaml", document)
    assert problems == []
    merged, clashes = merge_schema_files([read])
    assert clashes == []
    roots = request_types(merged, {}, rules=True)
    roots["resource"] = resource_type(resource_properties(merged, frozenset({"doc"})))
    return roots


def _variables(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "subject": {"type": "user", "id": "u", "properties": {}},
        "action": {"name": "read", "properties": {}},
        "resource": {"type": "doc", "id": "d", "properties": properties},
        "device": {},
        "context": {},
        "data": {},
        "risk": {"score": 0, "signals": []},
        "behavior": {},
        "now": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    }


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), schema=typed_schemas())
def test_an_accepted_condition_never_fails_with_a_type_error(
    data: st.DataObject, schema: TypedSchema
) -> None:
    roots = _roots(schema)
    conditions = data.draw(st.lists(typed_conditions(schema), min_size=5, max_size=15, unique=True))
    accepted = []
    for text in conditions:
        found = check_text(text, roots)
        if found == []:
            accepted.append(text)
    assume(accepted)
    compiled = _compiled(accepted)
    for properties in data.draw(st.lists(conforming_properties(schema), min_size=1, max_size=4)):
        _no_type_error(compiled, _variables(properties))


#: The set function ``in_group`` over a set that declares no groups (each call is False).
_IN_GROUP = {"in_group": SetFunction(functools.partial(in_group, {}, {}), 2)}


def _compiled(accepted: list[str]) -> list[tuple[str, Any, Any]]:
    """Each accepted condition compiled by each backend (unless a literal is refused)."""
    compiled = []
    for text in accepted:
        for backend in BACKENDS:
            with contextlib.suppress(CelCompileError):
                compiled.append((text, backend, backend.compile(text, functions=_IN_GROUP)))
    return compiled


def _no_type_error(compiled: list[tuple[str, Any, Any]], variables: dict[str, Any]) -> None:
    for text, backend, condition in compiled:
        try:
            condition(backend.bind(variables))
        except ConditionError as exc:
            said = str(exc)
            assert not any(e in said for e in TYPE_ERRORS), (backend.name, text, variables)


def _misspelt(name: str, how: int, at: int) -> str:
    at %= len(name)
    if how == 0:
        return name[:at] + name[at + 1 :]  # a letter dropped
    if how == 1:
        return name[:at] + "x" + name[at:]  # a letter added
    return name[:at] + ("z" if name[at] != "z" else "y") + name[at + 1 :]  # one replaced


@settings(max_examples=150, deadline=None)
@given(
    schema=typed_schemas(),
    data=st.data(),
    how=st.integers(0, 2),
    at=st.integers(0, 10),
    prefix=st.sampled_from(["", "true && ", "resource.id == 'x' || "]),
)
def test_a_misspelt_path_is_always_refused_at_the_misspelt_name(
    schema: TypedSchema, data: st.DataObject, how: int, at: int, prefix: str
) -> None:
    paths = schema.paths()
    text, _, guards = data.draw(st.sampled_from(paths))
    parent, _, name = text.rpartition(".")
    wrong = _misspelt(name, how, at)
    assert wrong not in TYPED_NAMES
    guard = "".join(f"has({g}) && " for g in guards if g != text)
    condition = f"{prefix}{guard}{parent}.{wrong} == 1"
    found = check_text(condition, _roots(schema))
    assert found, condition
    offset = condition.rindex("." + wrong) + 1
    assert any(p.offset == offset and "is not declared" in p.message for p in found), found
    if how != 1 or len(name) > 4:
        assert any(f"did you mean {name!r}" in p.message for p in found), found
    # Under has(): always false on a closed object (a misspelt guard), fine on an open one.
    closed = {t: f.closed for t, f, _ in paths}.get(parent, schema.closed)
    guarded = f"{prefix}{guard}has({parent}.{wrong})"
    said = [p for p in check_text(guarded, _roots(schema)) or [] if "is not declared" in p.message]
    assert [p.offset for p in said] == ([guarded.rindex("." + wrong) + 1] if closed else [])


_WRONG = {
    "string": ["{p} >= 1", "{p} + 1 == 2", "{p} * 'a' == 'b'", "-{p} == 'a'"],
    "integer": ["{p} >= 'a'", "{p} + 'a' == 'b'", "{p}.startsWith('a')", "size({p}) == 1"],
    "number": ["{p} + 1 > 0", "{p} >= 'a'", "{p} * 2.0 > 0.0"],
    "boolean": ["{p} + 1 == 2", "{p} < 'a'", "{p}.size() > 0"],
    "strings": ["{p} > 1", "{p}.exists(x, x > 1)", "{p} - [1] == []"],
    "integers": ["{p}.all(x, x.startsWith('a'))", "{p} < 1"],
    "map": ["{p} + 1 == 2", "{p} < 1"],
    "object": ["{p} + 1 == 2", "{p} < 1"],
}


@settings(max_examples=150, deadline=None)
@given(schema=typed_schemas(), data=st.data())
def test_an_operator_without_an_overload_is_always_refused(
    schema: TypedSchema, data: st.DataObject
) -> None:
    text, field, guards = data.draw(st.sampled_from(schema.paths()))
    wrong = data.draw(st.sampled_from(_WRONG[field.kind])).format(p=text)
    guard = "".join(f"has({g}) && " for g in guards)
    condition = f"{guard}{wrong}"
    found = check_text(condition, _roots(schema))
    assert found, condition
    assert all("no such overload" in p.message or "needs a list" in p.message for p in found)
    assert all(p.offset >= len(guard) for p in found)
    # And it does fail at run time on a conforming request; except a macro's body, run
    # only for a non-empty list, and a number, which fails as an int or as a double.
    if "(x," in wrong or field.kind == "number":
        return
    properties = data.draw(conforming_properties(schema))
    assume(_present(properties, text))
    for backend in BACKENDS:
        with pytest.raises(ConditionError, match="no such overload"):
            backend.compile(condition)(backend.bind(_variables(properties)))


def _present(properties: dict[str, Any], text: str) -> bool:
    value: Any = properties
    for step in text.split(".")[2:]:
        if not isinstance(value, dict) or step not in value:
            return False
        value = value[step]
    return True


def test_a_set_refused_by_the_checker_names_every_fault_once() -> None:
    schema = (
        "resources:\n  doc:\n    properties:\n      alpha: {type: integer}\n    required: [alpha]\n"
    )
    policy = (
        "policy: p\ntarget:\n  resources: [doc]\nrules:\n"
        "  - id: a\n    effect: allow\n    when: resource.properties.alpa > 1\n"
        "  - id: b\n    effect: allow\n    when: resource.properties.alpha > 'x'\n"
    )
    with pytest.raises(PolicyError) as info:
        load_texts({"p.yaml": policy, "a.schema.yaml": schema}, BACKENDS[0])
    assert [(d.line, d.column, d.rule) for d in info.value.diagnostics] == [
        (7, 31, "a"),
        (10, 11, "b"),
    ]


#: A value of each type, as CEL text.
_VALUES = {
    "int": "1",
    "uint": "1u",
    "double": "1.5",
    "string": "'a'",
    "bytes": "b'a'",
    "bool": "true",
    "null": "null",
    "timestamp": "now",
    "duration": "duration('1s')",
    "list": "[1]",
    "map": "{'a': 1}",
    "ip": "ip('1.2.3.4')",
    "cidr": "cidr('10.0.0.0/8')",
}
_OPERATORS = ("+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!=", "in")
_FUNCTIONS = (
    "size",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "timestamp",
    "duration",
    "dyn",
    "type",
    "ip",
    "cidr",
    "isIP",
    "ip_is_private",
)
_METHODS = (
    "size",
    "contains",
    "startsWith",
    "matches",
    "getHours",
    "getDayOfWeek",
    "family",
    "isLoopback",
    "containsIP",
    "containsCIDR",
    "masked",
    "prefixLength",
    "ip",
)


def _expressions() -> list[str]:
    values = list(_VALUES.values())
    made = [f"{a} {op} {b}" for op in _OPERATORS for a in values for b in values]
    made += [f"-{a}" for a in values] + [f"!{a}" for a in values]
    made += [f"{f}({a})" for f in _FUNCTIONS for a in values]
    made += [f"{a}.{m}()" for m in _METHODS for a in values]
    made += [f"{a}.{m}({b})" for m in _METHODS for a in values for b in values]
    return made


def _outcome(backend: Any, text: str) -> str:
    """ "compile" (refused), "overload" (a type error), "error" (another) or "value"."""
    try:
        condition = backend.compile(text)
    except CelCompileError:
        return "compile"
    try:
        condition(backend.bind(_variables({})))
    except ConditionError as exc:
        return "overload" if any(e in str(exc) for e in TYPE_ERRORS) else "error"
    return "value"


def test_the_overload_tables_agree_with_both_backends() -> None:
    """Every operator, function and method on a value of every type: what the checker
    accepts never fails with a type error, and what it refuses as an overload never
    gives a value."""
    roots = request_types(merge_schema_files([])[0], {}, rules=True)
    unsound, strict = [], []
    for expression in _expressions():
        text = f"[{expression}] != []"  # any value is fine: a list of it is compared
        found = check_text(text, roots)
        assert found is not None, text
        refused = any("no such overload" in p.message for p in found)
        for backend in BACKENDS:
            outcome = _outcome(backend, text)
            if outcome == "compile":
                continue
            if not found and outcome == "overload":
                unsound.append((backend.name, expression))
            if refused and outcome == "value":
                strict.append((backend.name, expression))
    assert unsound == [], unsound
    assert strict == [], strict


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), first=typed_schemas(), second=typed_schemas())
def test_a_field_of_only_some_subject_types_is_read_soundly(
    data: st.DataObject, first: TypedSchema, second: TypedSchema
) -> None:
    """Two subject types: a condition over either's fields is accepted only where it
    cannot fail on a subject of either type (a field of one only is optional, a field
    of unlike types in the two takes only what both take; an open one's undeclared keys
    hold strings, so a field of the other may be one: where a type lets undeclared keys
    hold anything, the field is dyn, not checked)."""
    first, second = (attrs.evolve(s, strings=True) for s in (first, second))
    text = yaml.safe_dump({"subjects": {"a": first.top(), "b": second.top()}})
    read, problems = read_schema_file("a.schema.yaml", load_documents(text)[0])
    assert problems == []
    roots = request_types(merge_schema_files([read])[0], {}, rules=True)
    prefix = "subject.properties"
    either = st.one_of(typed_conditions(first, prefix), typed_conditions(second, prefix))
    conditions = data.draw(st.lists(either, min_size=5, max_size=15, unique=True))
    compiled = _compiled([t for t in conditions if check_text(t, roots) == []])
    for name, schema in (("a", first), ("b", second)):
        variables = _variables({})
        properties = data.draw(conforming_properties(schema))
        variables["subject"] = {"type": name, "id": "u", "properties": properties}
        _no_type_error(compiled, variables)
