"""Group hierarchies at their limits: a group literal of the wrong type and the method
form, refused at load with the right form shown; a deep hierarchy flattened with shared
sets, and one too large to flatten refused (see test_policy_groups for the behaviour)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_policy_groups import BACKENDS, GROUPS, SIMPLE, _messages, _messages_json, _pdp, _request

from zerotrust import PolicyError
from zerotrust.cel import Backend, CompiledBackend
from zerotrust.policy import groups as groups_module
from zerotrust.policy.groups import read_groups, resolve_groups
from zerotrust.policy.located import load_documents


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("written", "right"),
    [
        ('subject.id.in_group("support-leads")', 'in_group(subject.id, "support-leads")'),
        (
            "subject.properties.groups.in_group(resource.properties.group)",
            "in_group(subject.properties.groups, resource.properties.group)",
        ),
        ('true && [subject.id].in_group("support")', 'in_group(..., "support")'),
        ('subject.id.in_group("support", "x")', 'in_group(subject.id, "support", "x")'),
    ],
)
def test_method_form_in_group_names_the_function_form(
    backend: type[Backend], written: str, right: str
) -> None:
    policy = SIMPLE.replace('in_group(subject.id, "support-leads")', written)
    with pytest.raises(PolicyError) as caught:
        _pdp(backend, GROUPS, policy)
    [problem] = caught.value.diagnostics
    assert problem.message == f"CEL: in_group() is a function, not a method: write {right}"
    assert (problem.line, problem.column) == (7, 11 + written.index(".in_group") + 1)


# --- a group written in the condition must be a string --------------------------------------

_WRONG_GROUPS = [
    ("1", "a number"),
    ("2.5", "a number"),
    ("1u", "a number"),
    ("true", "a boolean"),
    ("null", "null"),
    ('b"support"', "bytes"),
    ('{"support": 1}', "a map"),
    ('["support"]', "a list"),
    ("[subject.id]", "a list"),
    ("[]", "a list"),
]


def _with_group(literal: str) -> str:
    """SIMPLE with ``literal`` as the group, in a block scalar (any text is safe in it):
    ``in_group`` is at line 8, column 7."""
    return SIMPLE.replace(
        'when: in_group(subject.id, "support-leads")',
        f"when: |\n      in_group(subject.id, {literal})",
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("literal", "shown"), _WRONG_GROUPS)
def test_group_literal_of_wrong_type_is_a_load_error(
    backend: type[Backend], literal: str, shown: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        _pdp(backend, GROUPS, _with_group(literal))
    [problem] = caught.value.diagnostics
    assert (problem.line, problem.column) == (8, 7)
    expected = f"in_group(): the second argument must be a group name (a string), not {shown}"
    assert problem.message.startswith(f"CEL: {expected}"), problem.message
    assert "in_group(subject." in problem.message  # the right form is shown


_SCALARS = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.booleans().map(lambda b: str(b).lower()),
    st.binary(max_size=4).map(lambda b: 'b"' + "".join(f"\\x{c:02x}" for c in b) + '"'),
    st.just("null"),
)
_LITERALS = st.recursive(
    _SCALARS | st.sampled_from(['"support"', "subject.id"]),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: f"[{', '.join(xs)}]"),
        st.lists(inner, min_size=1, max_size=2).map(
            lambda xs: "{" + ", ".join(f'"k{i}": {x}' for i, x in enumerate(xs)) + "}"
        ),
    ),
    max_leaves=4,
).filter(lambda text: text not in ('"support"', "subject.id"))


@settings(max_examples=40, deadline=None)
@given(_LITERALS)
def test_any_non_string_group_literal_is_refused_at_load(literal: str) -> None:
    [message] = _messages(GROUPS, _with_group(literal))
    assert "in_group(): the second argument must be a group name (a string), not " in message


# --- a deep hierarchy ----------------------------------------------------------------------


def _chain(depth: int, width: int) -> dict[str, Any]:
    """``depth`` nested groups, each with ``width`` members of its own (g0 at the top)."""
    return {
        f"g{i}": {
            "groups": [f"g{i + 1}"] if i + 1 < depth else [],
            "members": [f"u{i}-{j}" for j in range(width)],
        }
        for i in range(depth)
    }


def test_deep_chain_shares_ancestor_sets_instead_of_copying_them() -> None:
    # 1,000 levels x 20 members: once 0.5 GB of copied sets; a member in one group holds
    # that group's own set, so the closure is the groups' sets plus one reference each.
    [node] = load_documents(json.dumps({"groups": _chain(1000, 20)}))
    groups, problems = read_groups(node.value["groups"], "g.data.json")
    index, problems = resolve_groups(groups)
    assert not problems
    assert index.members["u999-0"] is index.above["g999"]
    assert index.members["u999-0"] == frozenset(f"g{i}" for i in range(1000))
    assert len({id(s) for s in index.members.values()}) == 1000


def test_member_in_several_groups_gets_the_union() -> None:
    data = "groups:\n  a: {members: [u], groups: [b]}\n  b: {}\n  c: {members: [u, v]}\n"
    [node] = load_documents(data)
    index, _ = resolve_groups(read_groups(node.value["groups"], "g.data.yaml")[0])
    assert index.members == {"u": frozenset({"a", "c"}), "v": frozenset({"c"})}
    assert index.above["b"] == frozenset({"a", "b"})


def test_hierarchy_too_large_to_flatten_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # The bound counts what would be stored (a chain of n levels stores n(n+1)/2 names,
    # plus one reference per member), so a data file cannot make the load exhaust memory;
    # refused at the first group.
    monkeypatch.setattr(groups_module, "MAX_CLOSURE", 5_050 + 10_000)
    policy = SIMPLE.replace('"support-leads")', '"g0")')
    pdp = _pdp(CompiledBackend, json.dumps({"groups": _chain(100, 100)}), policy, "o.data.json")
    assert pdp.evaluate(_request("u99-0")).effect.value == "allow"
    with pytest.raises(PolicyError) as caught:
        _pdp(CompiledBackend, json.dumps({"groups": _chain(101, 100)}), policy, "o.data.json")
    [problem] = caught.value.diagnostics
    assert (problem.file, problem.line, problem.column) == ("o.data.json", 1, 2)
    assert problem.message == (
        "the group hierarchy is too large to flatten: more than 15,050 (name, group) pairs; "
        "nest groups fewer levels deep, or put fewer members in several groups each"
    )
    both = {"a": {"members": [f"u{i}" for i in range(6_000)]}, "b": {"groups": ["a"]}}
    both["c"] = {"members": both["a"]["members"]}  # in two groups: 3 names each, a union
    assert "too large to flatten" in _messages_json(both, policy.replace('"g0"', '"a"'))[0]
