"""The encoding never rules out what the engine does: the linter's soundness, tested.

For random conditions and random requests, the real outcome of the compiled condition
(true, false or an error) must be one the encoding allows once its variables are fixed to
the request's values. A condition the encoding called dead, valid or equivalent to another
while a request shows otherwise would fail here first.

The condition strategy stays in this file (not ``strategies.py``): it is the linter's
own grammar of what it encodes, and nothing else draws from it.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

z3 = pytest.importorskip("z3")

from zerotrust.cel import CelCompileError, CompiledBackend, ConditionError  # noqa: E402
from zerotrust.cel._compiler import FUNCTIONS  # noqa: E402
from zerotrust.cel._syntax import parse  # noqa: E402
from zerotrust.lint._encode import Encoder  # noqa: E402
from zerotrust.lint._values import string_val  # noqa: E402

BACKEND = CompiledBackend()
PATHS = (
    "device.a",
    "device.b",
    "device.m.c",
    "device.m",
    'device["a"]',
    "resource.properties.x",
    "resource.id",
    "subject.id",
    "risk.score",
    'context["k"]',
)
STRINGS = ("", "a", "b", "ab", "\\", "é", "\U0001f600")


def _string_literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_ints = st.integers(-3, 3) | st.sampled_from([2**53, 2**53 + 1, 2**63 - 1, -(2**63)])
_doubles = st.sampled_from([0.0, -0.0, 0.5, 1.0, 2.0, -1.5, 1e300, 9007199254740992.0])
_literals = st.one_of(
    _ints.map(str),
    _doubles.map(repr),
    st.sampled_from(STRINGS).map(_string_literal),
    st.sampled_from(["true", "false", "null"]),
)
_paths = st.sampled_from(PATHS)
_values = st.one_of(
    _paths,
    _literals,
    st.tuples(_paths, st.sampled_from(["+", "-", "*", "/"]), _literals).map(" ".join),
    _paths.map(lambda p: f"-{p}"),
)
_ops = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
_lists = st.lists(_literals | _values, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]")
_atoms = st.one_of(
    st.tuples(_values, _ops, _values).map(" ".join),
    _paths.map(lambda p: f"has({p})"),
    st.tuples(_values, _lists).map(lambda t: f"{t[0]} in {t[1]}"),
    st.tuples(
        _paths, st.sampled_from(["startsWith", "endsWith", "contains"]), st.sampled_from(STRINGS)
    ).map(lambda t: f"{t[0]}.{t[1]}({_string_literal(t[2])})"),
    _paths,  # a path read as a bool
    _paths.map(lambda p: f"size({p}) > 1"),  # not encoded: an unknown
    st.sampled_from(["true", "false"]),
)


def _combine(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(["&&", "||", "==", "!="]), inner).map(
            lambda t: f"({t[0]}) {t[1]} ({t[2]})"
        ),
        inner.map(lambda c: f"!({c})"),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]}) ? ({t[1]}) : ({t[2]})"),
    )


CONDITIONS = st.recursive(_atoms, _combine, max_leaves=6)

_leaf = st.one_of(
    st.none(),
    st.booleans(),
    _ints,
    _doubles,
    st.sampled_from(STRINGS),
    st.just([]),
    st.just([1]),
)
_MISSING = object()


@st.composite
def _devices(draw: st.DrawFn) -> dict[str, Any]:
    device: dict[str, Any] = {}
    for key in ("a", "b"):
        value = draw(st.one_of(st.just(_MISSING), _leaf))
        if value is not _MISSING:
            device[key] = value
    shape = draw(st.sampled_from(["missing", "map", "leaf"]))
    if shape == "map":
        inner = draw(st.one_of(st.just(_MISSING), _leaf))
        device["m"] = {} if inner is _MISSING else {"c": inner}
    elif shape == "leaf":
        device["m"] = draw(_leaf)
    return device


VARIABLES = st.tuples(_devices(), st.one_of(st.just(_MISSING), _leaf))


def _lookup(variables: dict[str, Any], parts: tuple[str, ...]) -> Any:
    node: Any = variables
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _fixed(encoder: Encoder, variables: dict[str, Any]) -> list[Any]:
    """The encoding's path variables set to what ``variables`` holds."""
    facts = []
    for parts, v in encoder.paths().items():
        value = _lookup(variables, parts)
        if value is _MISSING:
            facts.append(z3.Not(v["has"]))
            continue
        facts.append(v["has"])
        kind = {bool: "bool", int: "int", float: "double", str: "string", dict: "map"}.get(
            type(value)
        )
        for flag in ("map", "is_int", "is_double", "is_string", "is_bool"):
            wanted = kind is not None and flag in (kind, f"is_{kind}")
            facts.append(v[flag] if wanted else z3.Not(v[flag]))
        if kind == "bool":
            facts.append(v["bool"] == value)
        elif kind == "int":
            facts.append(v["int"] == value)
        elif kind == "double":
            facts.append(z3.fpEQ(v["double"], z3.FPVal(value, z3.Float64())))
            if value == 0.0:
                facts.append(z3.fpIsNegative(v["double"]) == (math.copysign(1, value) < 0))
        elif kind == "string":
            facts.append(v["string"] == string_val(value))
    return facts


def _outcome(source: str, variables: dict[str, Any]) -> str | None:
    try:
        condition = BACKEND.compile(source)
    except CelCompileError:
        return None
    try:
        result = condition(BACKEND.bind(variables))
    except ConditionError:
        return "error"
    return "true" if result is True else "false"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CONDITIONS, VARIABLES)
def test_the_encoding_allows_what_the_engine_does(source: str, drawn: tuple[Any, Any]) -> None:
    _check_encoding(source, drawn)


# Numbers where a double cannot hold every int: the engine compares an int with a double
# as doubles (2**53 + 1 == 2**53.0), exact arithmetic would not. The whole family, every
# operator and operand order over ints and doubles around +-2**53, is small enough to try.
_BIG = 2**53
_NEAR = [_BIG, _BIG + 1, -(_BIG + 1), float(_BIG), float(_BIG + 2)]
_NEAR_OPERANDS = ["device.a", "device.b", *(repr(v) for v in _NEAR)]


@pytest.mark.parametrize("left", _NEAR_OPERANDS)
def test_the_encoding_allows_what_the_engine_does_with_numbers_past_2_53(left: str) -> None:
    for op, right in itertools.product(["==", "!=", "<", "<=", ">", ">="], _NEAR_OPERANDS):
        for a, b in itertools.product(_NEAR, [_BIG + 1, float(_BIG)]):
            _check_encoding(f"{left} {op} {right}", ({"a": a, "b": b}, _MISSING))


def _check_encoding(source: str, drawn: tuple[Any, Any]) -> None:
    device, x = drawn
    properties = {} if x is _MISSING else {"x": x}
    variables = {
        "subject": {"type": "user", "id": "u", "properties": {}},
        "action": {"name": "read", "properties": {}},
        "resource": {"type": "doc", "id": "d", "properties": properties},
        "device": device,
        "context": {},
        "behavior": {},
        "data": {},
        "risk": {"score": 0, "signals": []},
    }
    outcome = _outcome(source, variables)
    if outcome is None:
        return
    encoder = Encoder()
    tri = encoder.condition(parse(source, FUNCTIONS).tree)
    formula = {"true": tri.t, "false": tri.f, "error": tri.error}[outcome]
    solver = z3.Solver()
    solver.add(*encoder.axioms, *_fixed(encoder, variables), formula)
    assert solver.check() == z3.sat, f"{source!r} on {variables['device']!r}, x={x!r}: {outcome}"


@pytest.mark.parametrize(
    ("source", "device", "outcome"),
    [
        ('device.a == "a"', {"a": 1}, "false"),  # another type: false, not an error
        ("device.a > 2", {"a": "x"}, "error"),  # ordering another type errors
        ("device.a > 2", {"a": 2.5}, "true"),  # int and double compare as numbers
        ("device.a + 1 > 2", {"a": 2.5}, "error"),  # arithmetic does not mix them
        ("has(device.m.c)", {"m": 1}, "error"),  # has() on no map errors
        ("device.a", {"a": 1}, "error"),  # no truthiness
        ('device.a.startsWith("\\\\")', {"a": "\\x"}, "true"),  # a backslash is one char
        ("device.a + 1 > 0", {"a": 2**63 - 1}, "error"),  # overflow errors
    ],
)
def test_the_encoding_allows_these_outcomes(
    source: str, device: dict[str, Any], outcome: str
) -> None:
    variables = {"device": device, "resource": {"properties": {}}}
    assert _outcome(source, variables) == outcome  # the engine, as the case says
    encoder = Encoder()
    tri = encoder.condition(parse(source, FUNCTIONS).tree)
    formula = {"true": tri.t, "false": tri.f, "error": tri.error}[outcome]
    solver = z3.Solver()
    solver.add(*encoder.axioms, *_fixed(encoder, variables))
    assert solver.check(formula) == z3.sat
    others = [
        f
        for name, f in (("true", tri.t), ("false", tri.f), ("error", tri.error))
        if name != outcome
    ]
    # and the encoding is exact here: no other outcome is possible
    assert all(solver.check(f) == z3.unsat for f in others)
