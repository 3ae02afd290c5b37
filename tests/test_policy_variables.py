"""Policy variables: inlined at load, so a condition reading them decides exactly as the
same condition with their expressions pasted in; every problem is refused with its
position, at the variable's definition or at the reference.

Each kind of refusal also has a file in the malformed corpus (``policies/malformed``).
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from zerotrust import PolicyDecisionPoint, PolicyError
from zerotrust.cel import MAX_SOURCE_CHARS, default_backend
from zerotrust.cli import main
from zerotrust.errors import Diagnostic
from zerotrust.policy.loader import load_texts
from zerotrust.policy.located import load_documents
from zerotrust.policy.schemas import schema
from zerotrust.policy.validate import validate_policy

POLICY = """\
policy: documents
variables:
  is_owner: resource.properties.owner == subject.id
  corporate: context.ip.startsWith("10.")
  owner_on_site: variables.is_owner && variables.corporate
  clearance: subject.properties.level + 1
rules:
  - id: owners-on-site
    effect: allow
    when: variables.owner_on_site
  - id: cleared
    effect: allow
    when: variables.clearance > 3
"""


def _request(
    owner: str = "alice", ip: str = "10.0.0.1", level: int = 0, **props: Any
) -> dict[str, Any]:
    return {
        "subject": {"type": "user", "id": "alice", "properties": {"level": level, **props}},
        "resource": {"type": "document", "id": "d1", "properties": {"owner": owner}},
        "action": {"name": "read"},
        "context": {"ip": ip},
    }


def _problems(text: str) -> list[Diagnostic]:
    with pytest.raises(PolicyError) as info:
        load_texts({"p.yaml": text}, default_backend())
    return list(info.value.diagnostics)


def _only(text: str) -> Diagnostic:
    [found] = _problems(text)
    return found


def _policy(variables: str, when: str, *, signal: str | None = None) -> str:
    text = f"policy: p\nvariables:\n{variables}rules:\n  - id: r\n    effect: allow\n"
    text += f"    when: {when}\n"
    if signal is not None:
        text += f"signals:\n  - name: s\n    score: 10\n    when: {signal}\n"
    return text


# --- what a variable means ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "ip", "level", "allowed", "rule"),
    [
        ("alice", "10.0.0.1", 0, True, "documents/owners-on-site"),
        ("alice", "192.0.2.1", 0, False, None),
        ("bob", "10.0.0.1", 0, False, None),
        ("bob", "192.0.2.1", 3, True, "documents/cleared"),
        ("bob", "192.0.2.1", 2, False, None),
    ],
)
def test_conditions_read_variables_and_variables_read_variables(
    owner: str, ip: str, level: int, allowed: bool, rule: str | None
) -> None:
    decision = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}).evaluate(
        _request(owner, ip, level)
    )
    assert decision.allowed is allowed
    assert [r.rule for r in decision.reasons] == [rule or "default-deny"]
    assert decision.errors == ()


def test_the_spec_carries_the_inlined_text_for_tools() -> None:
    [node] = load_documents(POLICY)
    spec = validate_policy(node, "p.yaml").spec
    assert spec is not None
    when = spec.rules[0].when
    assert when is not None and when.inlined is not None
    assert when.text == "variables.owner_on_site"
    assert when.compiled_text == (
        '((resource.properties.owner == subject.id) && (context.ip.startsWith("10.")))'
    )
    assert when.inlined.variables == {"owner_on_site", "is_owner", "corporate"}
    plain = spec.rules[1].when
    assert plain is not None and plain.inlined is not None
    assert plain.compiled_text == "(subject.properties.level + 1) > 3"
    assert [v.name for v in spec.variables] == [
        "is_owner",
        "corporate",
        "owner_on_site",
        "clearance",
    ]


def test_a_condition_without_variables_is_compiled_as_written() -> None:
    text = "policy: p\nrules:\n  - id: r\n    effect: allow\n    when: subject.id == 'a'\n"
    [node] = load_documents(text)
    spec = validate_policy(node, "p.yaml").spec
    assert spec is not None and spec.rules[0].when is not None
    assert spec.rules[0].when.inlined is None
    assert spec.rules[0].when.compiled_text == "subject.id == 'a'"


def test_explain_lists_the_attributes_the_inlined_condition_reads() -> None:
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY})
    explain = pdp.evaluate(_request(), explain=True).explain
    first = explain[0]
    assert first.rule == "documents/owners-on-site"
    assert [(r.path, r.value) for r in first.reads] == [
        ("resource.properties.owner", "alice"),
        ("subject.id", "alice"),
        ("context.ip", "10.0.0.1"),
    ]


def test_the_text_variables_inside_a_string_or_after_a_dot_is_no_reference() -> None:
    text = _policy(
        "  v: subject.id == 'a'\n",
        "\"'variables.v' == subject.properties.x.variables || variables.v\"",
    )
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": text})
    request = _request()
    request["subject"]["id"] = "a"
    request["subject"]["properties"]["x"] = {"variables": "variables.v"}
    decision = pdp.evaluate(request)
    assert decision.allowed and decision.errors == ()


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from(["all", "exists", "exists_one", "map", "filter"]),
    st.sampled_from(["variables", "derived_roles"]),
    st.sampled_from(["x == 1", "x.m == 1", "true"]),
    st.booleans(),
)
def test_a_macro_loop_variable_named_variables_or_derived_roles_is_refused(
    macro: str, name: str, body: str, declared: bool
) -> None:
    """Such a loop variable would shadow what conditions read variables and derived
    roles through: refused at the loop variable, whether the body reads it or not."""
    condition = f"[{{'m': 1}}].{macro}({name}, {body.replace('x', name)})"
    when = condition if macro in ("all", "exists", "exists_one") else f"size({condition}) > 0"
    found = _only(_policy("  m: 'true'\n" if declared else "  v: 'true'\n", f'"{when}"'))
    assert (found.line, found.column) == (7, 12 + when.index(f"({name},") + 1)
    assert f"a macro's loop variable cannot be named {name}" in found.message
    assert "rename the loop variable" in found.message


def test_a_variable_inside_a_macro_reads_the_request_not_the_loop_variable() -> None:
    text = _policy(
        "  admin: subject.properties.admin\n",
        "subject.properties.tags.exists(t, t == 'x' && variables.admin)",
    )
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": text})
    assert pdp.evaluate(_request(tags=["x"], admin=True)).allowed
    assert not pdp.evaluate(_request(tags=["x"], admin=False)).allowed


def test_unused_variables_are_fine_and_variables_may_be_null() -> None:
    assert PolicyDecisionPoint.from_texts({"p.yaml": _policy("  unused: subject.id\n", "'true'")})
    text = "policy: p\nvariables:\nrules:\n  - id: r\n    effect: allow\n"
    assert PolicyDecisionPoint.from_texts({"p.yaml": text})


def test_variables_belong_to_their_policy() -> None:
    other = "policy: q\nrules:\n  - id: r\n    effect: allow\n    when: variables.v\n"
    found = list(_problems_of({"a.yaml": _policy("  v: 'true'\n", "variables.v"), "b.yaml": other}))
    assert [(d.file, d.message) for d in found] == [
        ("b.yaml", "unknown variable 'v': this policy declares no variables")
    ]


def _problems_of(texts: dict[str, str]) -> list[Diagnostic]:
    with pytest.raises(PolicyError) as info:
        load_texts(texts, default_backend())
    return list(info.value.diagnostics)


# --- refusals, each at its position -------------------------------------------------------


def test_unknown_variable_in_a_condition_is_at_the_reference_with_did_you_mean() -> None:
    found = _only(_policy("  is_owner: 'true'\n", "true && variables.is_ownr"))
    assert (found.line, found.column, found.rule) == (7, 19, "r")
    assert found.message == "unknown variable 'is_ownr': did you mean 'is_owner'?"


def test_unknown_variable_in_a_variable_is_at_the_reference() -> None:
    found = _only(_policy("  a: 'true'\n  b: variables.a || variables.c\n", "variables.b"))
    assert (found.line, found.column, found.rule) == (4, 21, None)
    assert found.message.startswith("unknown variable 'c'")


@pytest.mark.parametrize(
    ("variables", "cycle", "line", "column"),
    [
        ("  a: variables.a\n", "a -> a", 3, 6),
        ("  a: variables.b\n  b: variables.a\n", "a -> b -> a", 4, 6),
        (
            "  a: variables.b && true\n  b: variables.c\n  c: '!variables.a'\n",
            "a -> b -> c -> a",
            5,
            8,
        ),
    ],
)
def test_a_cycle_is_refused_naming_it(variables: str, cycle: str, line: int, column: int) -> None:
    found = _only(_policy(variables, "variables.a"))
    assert found.message == f"variable cycle: {cycle}"
    assert (found.line, found.column) == (line, column)


def test_a_variable_with_a_cel_error_is_reported_at_its_definition_once() -> None:
    text = _policy(
        "  owner: resource.properties.owner == subjct.id\n",
        "variables.owner || variables.owner",
        signal="variables.owner",
    )
    found = _only(text)
    assert (found.line, found.column, found.rule) == (3, 39, None)
    assert found.message.startswith("CEL: unknown variable 'subjct'")
    assert "(in variable 'owner')" in found.message


def test_a_variable_that_ends_too_soon_says_so_at_its_end() -> None:
    found = _only(_policy("  n: subject.properties.level +\n", "variables.n > 1"))
    assert (found.line, found.column) == (3, 32)
    assert found.message.startswith("CEL: syntax error: unexpected end of expression")


def test_a_variable_broken_only_through_another_is_not_reported_again() -> None:
    found = _only(_policy("  a: subject.(\n  b: variables.a\n", "variables.b"))
    assert (found.line, found.column) == (3, 14)


def test_an_error_only_where_it_is_used_is_at_the_reference() -> None:
    found = _only(_policy("  n: subject.properties.level + 1\n", "variables.n"))
    assert (found.line, found.column, found.rule) == (7, 11, "r")
    assert found.message == (
        "CEL: condition is an addition, never a boolean (in variable 'n', inlined here)"
    )


def test_errors_in_the_condition_itself_keep_their_position() -> None:
    text = _policy(
        "  long_name: resource.properties.owner == subject.id || subject.id == 'x'\n",
        "|\n      variables.long_name &&\n      subject.id = 'a'",
    )
    found = _only(text)
    assert (found.line, found.column) == (9, 18)
    assert found.message == "CEL: syntax error: unexpected character '='"
    text = _policy("  v: 'true'\n", "variables.v && subject.x.nope(1)")
    found = _only(text)
    assert (found.line, found.column) == (7, 36)
    assert found.message == "CEL: unknown function 'nope'"


@pytest.mark.parametrize("use", ['variables["v"]', "variables", ".variables.v", "variables.v()"])
def test_variables_read_any_other_way_is_refused(use: str) -> None:
    found = _only(_policy("  v: 'true'\n", f"true && {use}"))
    assert found.message.startswith("CEL: read a policy variable as variables.<name>")
    assert found.line == 7
    assert found.column == (20 if use.startswith(".") else 19)


def test_a_macro_rebinding_a_name_the_variable_reads_is_refused() -> None:
    found = _only(
        _policy(
            "  mine: resource.properties.owner == subject.id\n",
            "'[1].exists(subject, variables.mine)'",
        )
    )
    assert (found.line, found.column) == (7, 32)
    assert "reads 'subject', which a macro around it binds" in found.message


@pytest.mark.parametrize(
    ("variables", "message", "line", "column"),
    [
        ("  1bad: 'true'\n", "variable name '1bad' must be a CEL identifier", 3, 3),
        ("  in: 'true'\n", "variable name 'in' must be a CEL identifier", 3, 3),
        ("  v: 3\n", "variable 'v' must be a CEL expression string", 3, 6),
        ("  - 'true'\n", "variables must be a mapping of names to CEL expressions", 3, 3),
    ],
)
def test_malformed_declarations_are_refused(
    variables: str, message: str, line: int, column: int
) -> None:
    found = [d for d in _problems(_policy(variables, "'true'")) if message in d.message]
    assert [(d.line, d.column) for d in found] == [(line, column)]


def test_a_signal_reading_risk_through_a_variable_is_refused_at_the_reference() -> None:
    found = _only(_policy("  risky: risk > 50\n", "'true'", signal="variables.risky"))
    assert (found.line, found.column, found.rule) == (11, 11, "s")
    assert "a signal cannot read risk" in found.message
    assert "(in variable 'risky', inlined here)" in found.message


@pytest.mark.parametrize(
    ("variables", "when", "column", "note"),
    [
        (
            "  m: subject.id == 'a' || subject.id == 'b'\n",
            "has(variables.m)",
            15,
            "(in variable 'm', inlined here)",
        ),
        (
            "  m: subject.id == 'a' || subject.id == 'b'\n  n: variables.m\n",
            "has(variables.n)",
            15,
            "(in variable 'n', inlined here)",
        ),
        (
            "  m: subject.properties.level + 1\n  n: variables.m\n",
            "variables.n",
            11,
            "(in variable 'm', which variable 'n' reads, inlined here)",
        ),
    ],
)
def test_an_error_reached_through_a_variable_names_the_variable_read_there(
    variables: str, when: str, column: int, note: str
) -> None:
    found = _only(_policy(variables, when))
    assert (found.line, found.column) == (len(variables.splitlines()) + 6, column)
    assert found.message.endswith(note), found.message


def test_an_inlined_text_longer_than_a_condition_may_be_is_refused() -> None:
    # each variable doubles the text: a short file that would inline to megabytes
    lines = ["  v0: subject.id == 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'\n"]
    lines += [f"  v{i}: variables.v{i - 1} || variables.v{i - 1}\n" for i in range(1, 30)]
    found = _problems(_policy("".join(lines), "variables.v29"))
    assert found
    assert all("longer than" in d.message for d in found)
    assert str(MAX_SOURCE_CHARS) in found[0].message


# --- property: inlining is pasting --------------------------------------------------------

ATOMS_BOOL = ["subject.properties.flag", "true", "false", "'x' in subject.properties.tags"]
ATOMS_INT = ["subject.properties.level", "0", "1", "2", "resource.properties.size"]


@st.composite
def _expression(draw: st.DrawFn, kind: str, ints: int, bools: int, depth: int = 3) -> Any:
    """A tree: ('var', kind, index) | ('atom', text) | (op, children...)."""
    leaves = []
    if kind == "bool":
        leaves.append(st.sampled_from(ATOMS_BOOL).map(lambda a: ("atom", a)))
        if bools:
            leaves.append(st.integers(0, bools - 1).map(lambda i: ("var", "bool", i)))
    else:
        leaves.append(st.sampled_from(ATOMS_INT).map(lambda a: ("atom", a)))
        if ints:
            leaves.append(st.integers(0, ints - 1).map(lambda i: ("var", "int", i)))
    if depth == 0 or draw(st.booleans()):
        return draw(st.one_of(leaves))
    if kind == "int":
        op = draw(st.sampled_from(["+", "*", "-"]))
        left = draw(_expression("int", ints, bools, depth - 1))
        return (op, left, draw(_expression("int", ints, bools, depth - 1)))
    op = draw(st.sampled_from(["&&", "||", "!", "==", ">", "?:"]))
    if op == "!":
        return ("!", draw(_expression("bool", ints, bools, depth - 1)))
    if op in ("==", ">"):
        left = draw(_expression("int", ints, bools, depth - 1))
        return (op, left, draw(_expression("int", ints, bools, depth - 1)))
    if op == "?:":
        parts = [draw(_expression("bool", ints, bools, depth - 1)) for _ in range(3)]
        return ("?:", *parts)
    left = draw(_expression("bool", ints, bools, depth - 1))
    return (op, left, draw(_expression("bool", ints, bools, depth - 1)))


def _render(tree: Any, defs: dict[tuple[str, int], Any], pasted: bool) -> str:
    """The expression's text: operands that are operations bracketed, leaves bare, so a
    variable's text pasted without its brackets would change what it means."""
    tag = tree[0]
    if tag == "atom":
        return str(tree[1])
    if tag == "var":
        if pasted:
            return f"({_render(defs[(tree[1], tree[2])], defs, pasted)})"
        return f"variables.{tree[1]}{tree[2]}"
    parts = [_operand(t, defs, pasted) for t in tree[1:]]
    if tag == "!":
        return f"!{parts[0]}"
    if tag == "?:":
        return f"{parts[0]} ? {parts[1]} : {parts[2]}"
    return f"{parts[0]} {tag} {parts[1]}"


def _operand(tree: Any, defs: dict[tuple[str, int], Any], pasted: bool) -> str:
    text = _render(tree, defs, pasted)
    return text if tree[0] in ("atom", "var") else f"({text})"


@st.composite
def _program(draw: st.DrawFn) -> tuple[dict[tuple[str, int], Any], Any]:
    """Variables int0.., bool0.., each reading only earlier ones, and a condition."""
    defs: dict[tuple[str, int], Any] = {}
    ints = bools = 0
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["int", "bool"]))
        tree = draw(_expression(kind, ints, bools, 2))
        if kind == "int":
            defs[("int", ints)] = tree
            ints += 1
        else:
            defs[("bool", bools)] = tree
            bools += 1
    return defs, draw(_expression("bool", ints, bools, 3))


_REQUESTS = st.fixed_dictionaries(
    {},
    optional={
        "flag": st.booleans(),
        "level": st.integers(-3, 3),
        "tags": st.lists(st.sampled_from(["x", "y"]), max_size=2),
        "size": st.integers(0, 3),
    },
)


def _yaml_policy(variables: dict[str, str], when: str) -> str:
    document = {"policy": "p", "rules": [{"id": "r", "effect": "allow", "when": when}]}
    if variables:
        document["variables"] = variables
    return yaml.safe_dump(document, sort_keys=False, width=10_000)


@settings(max_examples=60, deadline=None)
@given(_program(), st.lists(_REQUESTS, min_size=1, max_size=4))
def test_a_condition_with_variables_decides_as_the_pasted_condition(
    program: tuple[dict[tuple[str, int], Any], Any], requests: list[dict[str, Any]]
) -> None:
    defs, condition = program
    variables = {f"{k}{i}": _render(tree, defs, False) for (k, i), tree in defs.items()}
    with_vars = PolicyDecisionPoint.from_texts(
        {"p.yaml": _yaml_policy(variables, _render(condition, defs, False))}
    )
    pasted = PolicyDecisionPoint.from_texts(
        {"p.yaml": _yaml_policy({}, _render(condition, defs, True))}
    )
    for props in requests:
        request = {
            "subject": {"type": "user", "id": "u", "properties": props},
            "resource": {"type": "doc", "id": "d", "properties": {"size": props.get("size", 0)}},
            "action": {"name": "read"},
        }
        a, b = with_vars.evaluate(request), pasted.evaluate(request)
        assert a.effect == b.effect
        assert [(e.rule, e.message) for e in a.errors] == [(e.rule, e.message) for e in b.errors]


def _cycle_in(edges: dict[str, list[str]]) -> bool:
    state: dict[str, int] = {}

    def visit(node: str) -> bool:
        state[node] = 1
        for nxt in edges[node]:
            if state.get(nxt) == 1 or (nxt not in state and visit(nxt)):
                return True
        state[node] = 2
        return False

    return any(node not in state and visit(node) for node in edges)


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda n: st.lists(
            st.lists(st.integers(0, n - 1), max_size=3, unique=True), min_size=n, max_size=n
        )
    )
)
def test_every_cycle_is_refused_naming_a_real_cycle(graph: list[list[int]]) -> None:
    edges = {f"v{i}": [f"v{j}" for j in targets] for i, targets in enumerate(graph)}
    variables = {
        name: " && ".join([*(f"variables.{t}" for t in targets), "true"])
        for name, targets in edges.items()
    }
    text = _yaml_policy(variables, " || ".join(f"variables.{n}" for n in edges))
    if not _cycle_in(edges):
        assert PolicyDecisionPoint.from_texts({"p.yaml": text})
        return
    found = _problems(text)
    cycles = [d.message for d in found if d.message.startswith("variable cycle: ")]
    assert cycles and len(cycles) == len(found)
    for message in cycles:
        names = message.removeprefix("variable cycle: ").split(" -> ")
        assert names[0] == names[-1]
        assert all(b in edges[a] for a, b in itertools.pairwise(names))


# --- the command line and the editor schema -----------------------------------------------


def test_validate_accepts_variables_and_reports_their_problems(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(POLICY, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "zerotrust", "validate", str(good)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: 1 policy, 2 rules in 1 file")
    bad = tmp_path / "bad.yaml"
    bad.write_text(POLICY.replace("when: variables.owner_on_site", "when: variables.owner"))
    done = subprocess.run(
        [sys.executable, "-m", "zerotrust", "validate", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    said = done.stdout + done.stderr
    assert f"{bad}:10:11: [documents/owners-on-site] unknown variable 'owner'" in said
    assert main(["validate", str(bad)]) == 1
    assert main(["validate", str(good)]) == 0


def test_the_editor_schema_accepts_variables_and_refuses_bad_ones() -> None:
    validator = jsonschema.Draft202012Validator(schema("policy"))
    document = yaml.safe_load(POLICY)
    assert list(validator.iter_errors(document)) == []
    for bad in ({"1x": "true"}, {"v": 3}, {"v": ""}, ["true"]):
        assert not validator.is_valid({**document, "variables": bad})


def test_the_decision_is_the_same_with_the_interpreter() -> None:
    from zerotrust.cel import InterpreterBackend

    compiled = PolicyDecisionPoint.from_texts({"p.yaml": POLICY})
    interpreted = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, backend=InterpreterBackend())
    for request in (_request(), _request("bob", level=5), _request("bob")):
        assert compiled.evaluate(request).effect == interpreted.evaluate(request).effect


def test_messages_name_no_internal_text() -> None:
    found = _problems(_policy("  a: variables.b\n  b: variables.a\n", "variables.zz"))
    assert all(not re.search(r"\[\(|\)\] != \[\]", d.message) for d in found)
