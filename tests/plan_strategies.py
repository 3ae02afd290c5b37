"""Hypothesis strategies for query plans: random policy sets over a small attribute
vocabulary, random subjects and random tables of resources (missing properties included).

The vocabulary is a table a database can hold: ``resource.id`` (text) and four nullable
columns, ``level`` (int), ``name`` (text), ``active`` (bool), ``score`` (double), where
NULL is a missing property. Conditions mix the resource with the subject, compare with the
wrong types (errors, which must fail closed), test presence, use the string methods, and
risk signals that read the resource.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "COLUMNS",
    "PLAN_ACTION",
    "PLAN_TYPE",
    "plan_request",
    "policy_sets",
    "row_request",
    "rows",
    "subjects",
]

PLAN_TYPE = "customer"
PLAN_ACTION = "read"
#: The table's columns: attribute name -> CEL kind of the column.
COLUMNS = {"level": "int", "name": "string", "active": "bool", "score": "double"}

# Text that tells databases apart from CEL: case, LIKE's wildcards and escape, non-ASCII,
# the empty string (no NUL: PostgreSQL text cannot hold it).
_NAMES = ["", "a", "A", "ab", "abc", "b", "ba", "a%", "a_c", "%", "_", "\\", "é", "éa", "Z", "zz"]
_INTS = st.integers(-5, 5)
_DOUBLES = st.sampled_from([-2.5, -1.0, 0.0, 0.5, 1.0, 2.0, 3.25])
_STR = st.sampled_from(_NAMES)


def _lit(value: Any) -> str:
    if type(value) is bool:
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


@st.composite
def _resource_atom(draw: st.DrawFn) -> str:
    """A condition about the resource (and maybe the subject)."""
    kind = draw(st.integers(0, 15))
    op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
    if kind == 0:
        return f"resource.properties.level {op} {draw(_INTS)}"
    if kind == 1:
        return f"resource.properties.level {op} subject.properties.level"
    if kind == 2:
        return f"resource.properties.name {op} {_lit(draw(_STR))}"
    if kind == 3:
        items = draw(st.lists(st.one_of(_STR, _INTS), max_size=3))
        return f"resource.properties.name in [{', '.join(_lit(i) for i in items)}]"
    if kind == 4:
        method = draw(st.sampled_from(["startsWith", "endsWith", "contains"]))
        arg = draw(st.one_of(_STR.map(_lit), st.just("subject.properties.prefix")))
        return f"resource.properties.name.{method}({arg})"
    if kind == 5:
        return f"size(resource.properties.name) {op} {draw(st.integers(0, 3))}"
    if kind == 6:
        field = draw(st.sampled_from([*COLUMNS, "other"]))
        return f"has(resource.properties.{field})"
    if kind == 7:
        return draw(
            st.sampled_from(
                [
                    "resource.properties.active",
                    "resource.properties.active == subject.properties.flag",
                    "resource.properties.active != true",
                ]
            )
        )
    if kind == 8:
        value = draw(st.one_of(_DOUBLES, _INTS))
        return f"resource.properties.score {op} {_lit(value)}"
    if kind == 9:
        ids = draw(st.lists(st.sampled_from(["r0", "r1", "r2", "r3"]), max_size=3))
        return draw(
            st.sampled_from(
                [
                    f"resource.id in [{', '.join(_lit(i) for i in ids)}]",
                    f"resource.id {op} {_lit(draw(st.sampled_from(['r0', 'r1', 'r2'])))}",
                ]
            )
        )
    if kind == 10:  # a type mismatch: equality is false, ordering an error
        return draw(
            st.sampled_from(
                [
                    f'resource.properties.level {op} "x"',
                    f"resource.properties.name {op} 1",
                    f"resource.properties.active {op} 1",
                    "resource.properties.level == null",
                    "resource.properties.name != null",
                ]
            )
        )
    if kind == 11:
        return "resource.properties.name in subject.properties.depts"
    if kind == 12:
        return f"resource.properties.level {op} resource.properties.score"
    if kind == 14:  # known data keyed by the row's id (enumerated over the data's keys)
        return draw(
            st.sampled_from(
                [
                    f"data.m[resource.id].level {op} {draw(_INTS)}",
                    "resource.id in data.m"
                    " && data.m[resource.id].name == subject.properties.prefix",
                    "data.m[resource.id].name.startsWith(subject.properties.prefix)",
                    "data.m[resource.id].level",  # not a bool: an error on every key
                    "has(data.m[resource.id].name) || resource.id in data.l",
                    "resource.properties.name in data.m",  # `in` a map: its keys (or an error)
                    'resource.properties.level in {"r1": 1, "x": 2}',
                ]
            )
        )
    if kind == 15:  # data keyed by the row's id mixed with its properties: no filter
        return f"data.m[resource.id].level {op} resource.properties.level"
    return f'"a" in resource.properties || resource.properties.name == {_lit(draw(_STR))}'


_SUBJECT_ATOMS = st.sampled_from(
    [
        "subject.properties.flag",
        "subject.properties.level > 1",
        "has(subject.properties.missing)",
        "subject.properties.missing == 1",  # an error at plan time
        'subject.properties.prefix == "a"',
        "true",
        "false",
    ]
)


def _conditions(atoms: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.recursive(
        atoms,
        lambda inner: st.one_of(
            st.tuples(inner, inner).map(lambda p: f"({p[0]}) && ({p[1]})"),
            st.tuples(inner, inner).map(lambda p: f"({p[0]}) || ({p[1]})"),
            inner.map(lambda c: f"!({c})"),
        ),
        max_leaves=4,
    )


_ATOMS = st.one_of(_resource_atom(), _resource_atom(), _SUBJECT_ATOMS)
_CONDITIONS = _conditions(_ATOMS)


@st.composite
def policy_sets(draw: st.DrawFn, *, signals: bool = True) -> dict[str, str]:
    """``{file name: YAML text}``: one policy for (customer, read), 1-5 rules of every
    effect, maybe risk signals reading the resource and a rule reading the score."""
    lines = [
        "policy: plans",
        f"target: {{resources: [{PLAN_TYPE}], actions: [{PLAN_ACTION}]}}",
    ]
    if signals and draw(st.booleans()):
        lines.append("signals:")
        for i in range(draw(st.integers(1, 3))):
            lines.append(f"  - name: s{i}")
            lines.append(f"    score: {draw(st.sampled_from([20, 40, 60, 80]))}")
            lines.append(f"    when: {json.dumps(draw(_CONDITIONS))}")
    lines.append("rules:")
    count = draw(st.integers(1, 5))
    for i in range(count):
        effect = draw(st.sampled_from(["allow", "allow", "deny", "step_up"]))
        lines.append(f"  - id: r{i}")
        lines.append(f"    effect: {effect}")
        if draw(st.integers(0, 5)) == 0:
            condition = draw(
                st.sampled_from(
                    [
                        f"risk.score >= {draw(st.sampled_from([20, 50, 80]))}",
                        f'risk.signals[0] == "s{draw(st.integers(0, 2))}"',  # (the order)
                        f'"s{draw(st.integers(0, 2))}" in risk.signals',
                        "size(risk.signals) >= 2",
                    ]
                )
            )
            if draw(st.booleans()):
                condition += f" && ({draw(_CONDITIONS)})"
        else:
            condition = draw(_CONDITIONS)
        if draw(st.integers(0, 7)) != 0:  # (sometimes no condition: always matches)
            lines.append(f"    when: {json.dumps(condition)}")
        if effect == "step_up":
            lines.append("    step_up: {acr_values: [mfa]}")
        if effect == "allow" and draw(st.booleans()):
            lines.append(f"    obligations: [{{type: mask, fields: [f{i}]}}]")
    data = {
        "m": {
            f"r{i}": {"level": draw(_INTS), "name": draw(_STR)}
            for i in range(8)
            if draw(st.booleans())
        },
        "l": draw(st.lists(st.sampled_from(["r0", "r1", "r5", "x"]), max_size=3)),
    }
    return {"plans.yaml": "\n".join(lines) + "\n", "plans.data.yaml": json.dumps(data)}


@st.composite
def subjects(draw: st.DrawFn) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "level": draw(_INTS),
        "flag": draw(st.booleans()),
        "prefix": draw(_STR),
        "depts": draw(st.lists(_STR, max_size=3)),
    }
    for key in list(properties):
        if draw(st.integers(0, 6)) == 0:
            del properties[key]  # a missing subject attribute: errors at plan time
    return {"type": "user", "id": "u1", "properties": properties}


def _column_value(kind: str) -> st.SearchStrategy[Any]:
    return {
        "int": _INTS,
        "string": _STR,
        "bool": st.booleans(),
        "double": _DOUBLES,
    }[kind]


@st.composite
def rows(draw: st.DrawFn, *, typed: bool = True, max_size: int = 12) -> list[dict[str, Any]]:
    """Resources ``{"id": "r<i>", "properties": {...}}``, a missing property absent.
    ``typed=False`` also puts values of other types in the columns (Python only)."""
    made = []
    for i in range(draw(st.integers(0, max_size))):
        properties = {}
        for name, kind in COLUMNS.items():
            if draw(st.integers(0, 3)) == 0:
                continue  # missing (NULL)
            value = draw(_column_value(kind))
            if not typed and draw(st.integers(0, 5)) == 0:
                value = draw(
                    st.one_of(
                        _INTS,
                        _STR,
                        st.booleans(),
                        st.none(),
                        st.lists(_STR, max_size=2),
                        st.dictionaries(_STR, _INTS, max_size=1),
                    )
                )
            properties[name] = value
        made.append({"id": f"r{i}", "properties": properties})
    return made


def plan_request(subject: dict[str, Any]) -> dict[str, Any]:
    return {"subject": subject, "action": {"name": PLAN_ACTION}, "resource": {"type": PLAN_TYPE}}


def row_request(subject: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    return {
        "subject": subject,
        "action": {"name": PLAN_ACTION},
        "resource": {"type": PLAN_TYPE, **row},
    }
