"""Condition libraries: variables and derived roles declared once, imported by policies,
inlined at load (so a condition decides exactly as with the expressions pasted in), and
every misuse refused at its position. ``explain`` shows each one's value.

Each kind of refusal also has a file in the malformed corpus (``policies/malformed``).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from test_policy_variables import _REQUESTS, _program, _render
from test_testing_formats import run_cli

from zerotrust import PolicyDecisionPoint, PolicyError
from zerotrust.audit.sinks import JsonLinesLog
from zerotrust.cel import (
    VARIABLES,
    Backend,
    CompiledBackend,
    InterpreterBackend,
    default_backend,
)
from zerotrust.cel._compiler import compile_expression
from zerotrust.cli import main
from zerotrust.errors import Diagnostic
from zerotrust.policy.loader import load_texts
from zerotrust.policy.schemas import schema
from zerotrust.request import AccessRequest, request_variables

LIBRARY = """\
library: ownership
description: who owns what
variables:
  is_owner: resource.properties.owner == subject.id
  big: resource.properties.size > 10
derived_roles:
  owner:
    parent_roles: [user, admin]
    when: variables.is_owner
  anyone_owning:
    when: variables.is_owner
"""

POLICY = """\
policy: documents
imports: [ownership]
target: {resources: [document]}
variables:
  small_own: variables.is_owner && !variables.big
rules:
  - id: owners-read
    effect: allow
    when: derived_roles.owner && variables.small_own
"""


PLAIN = "policy: plain\nrules:\n  - id: r\n    effect: allow\n"


def _request(roles: Any = None, owner: str = "alice", size: int = 1) -> dict[str, Any]:
    props = {} if roles is None else {"roles": roles}
    return {
        "subject": {"type": "user", "id": "alice", "properties": props},
        "resource": {"type": "document", "id": "d1", "properties": {"owner": owner, "size": size}},
        "action": {"name": "read"},
    }


def _problems(texts: dict[str, str]) -> list[Diagnostic]:
    with pytest.raises(PolicyError) as info:
        load_texts(texts, default_backend())
    return sorted(info.value.diagnostics, key=lambda d: (d.file, d.line, d.column))


def _where(found: list[Diagnostic]) -> list[tuple[str, int, int, str]]:
    return [(d.file, d.line, d.column, d.message) for d in found]


# --- what an import means -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("roles", "owner", "size", "effect"),
    [
        (["user"], "alice", 1, "allow"),
        (["admin", "x"], "alice", 1, "allow"),
        (["guest"], "alice", 1, "deny"),  # no parent role
        (None, "alice", 1, "deny"),  # no roles at all: false, not an error
        ("user", "alice", 1, "deny"),  # roles not a list: false, not an error
        ([1, None, {"a": 1}], "alice", 1, "deny"),
        (["user"], "bob", 1, "deny"),  # not the owner
        (["user"], "alice", 11, "deny"),  # the policy's own variable reads the library's
    ],
)
@pytest.mark.parametrize("backend", [CompiledBackend, InterpreterBackend])
def test_a_policy_reads_its_imports_variables_and_derived_roles(
    roles: Any, owner: str, size: int, effect: str, backend: type[Backend]
) -> None:
    texts = {"lib.yaml": LIBRARY, "p.yaml": POLICY}
    pdp = PolicyDecisionPoint.from_texts(texts, backend=backend())
    decision = pdp.evaluate(_request(roles, owner, size))
    assert decision.effect.value == effect
    assert decision.errors == ()


def test_a_library_and_a_policy_may_share_a_file_in_any_order() -> None:
    pdp = PolicyDecisionPoint.from_texts({"a.yaml": POLICY + "---\n" + LIBRARY})
    assert pdp.evaluate(_request(["user"])).effect.value == "allow"
    assert "a.yaml" in pdp.policies.sources[0]


def test_a_role_without_parent_roles_needs_only_its_when() -> None:
    policy = POLICY.replace("derived_roles.owner", "derived_roles.anyone_owning")
    pdp = PolicyDecisionPoint.from_texts({"lib.yaml": LIBRARY, "p.yaml": policy})
    assert pdp.evaluate(_request(None)).effect.value == "allow"


def test_the_library_is_part_of_the_revision_and_the_sources() -> None:
    one = PolicyDecisionPoint.from_texts({"lib.yaml": LIBRARY, "p.yaml": POLICY}).policies
    changed = LIBRARY.replace("> 10", "> 20")
    two = PolicyDecisionPoint.from_texts({"lib.yaml": changed, "p.yaml": POLICY}).policies
    assert one.revision != two.revision
    assert "lib.yaml" in one.sources


def test_libraries_cost_nothing_at_run_time_the_rule_runs_the_inlined_text() -> None:
    pdp = PolicyDecisionPoint.from_texts({"lib.yaml": LIBRARY, "p.yaml": POLICY})
    (rule,) = pdp.policies.policies[0].rules
    assert rule.condition is not None
    assert "variables." not in rule.condition.source
    assert "derived_roles" not in rule.condition.source
    assert "subject.properties.roles" in rule.condition.source


# --- refusals, each at its position -------------------------------------------------------

TWO_LIBRARIES = """\
library: extra
variables:
  is_owner: "true"
derived_roles:
  owner:
    when: "true"
"""


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        pytest.param(
            {"lib.yaml": LIBRARY, "p.yaml": POLICY.replace("[ownership]", "[ownrship]")},
            [("p.yaml", 2, 11, "unknown library 'ownrship': did you mean 'ownership'?")],
            id="unknown-library",
        ),
        pytest.param(
            {"p.yaml": POLICY},
            [("p.yaml", 2, 11, "unknown library 'ownership' (no library is declared")],
            id="no-library-declared",
        ),
        pytest.param(
            {"lib.yaml": LIBRARY, "p.yaml": POLICY.replace("[ownership]", "[]")},
            [
                (
                    "p.yaml",
                    5,
                    14,
                    "unknown variable 'is_owner': it is in library 'ownership', which this "
                    "policy does not import (add imports: [ownership])",
                ),
                ("p.yaml", 5, 37, "unknown variable 'big': it is in library 'ownership'"),
                ("p.yaml", 9, 11, "unknown derived role 'owner': it is in library 'ownership'"),
            ],
            id="not-imported",
        ),
        pytest.param(
            {
                "lib.yaml": LIBRARY,
                "p.yaml": POLICY.replace("derived_roles.owner", "derived_roles.ownr"),
            },
            [("p.yaml", 9, 11, "unknown derived role 'ownr': did you mean 'owner'?")],
            id="unknown-role",
        ),
        pytest.param(
            {"lib.yaml": LIBRARY, "p.yaml": POLICY.replace("variables.big", "variables.bigg")},
            [("p.yaml", 5, 37, "unknown variable 'bigg': did you mean 'big'?")],
            id="unknown-library-variable",
        ),
        pytest.param(
            {
                "lib.yaml": LIBRARY.replace(
                    "when: variables.is_owner\n  any", "when: variables.is_ownr\n  any"
                )
            },
            [("lib.yaml", 9, 11, "unknown variable 'is_ownr': did you mean 'is_owner'?")],
            id="library-unknown-variable",
        ),
        pytest.param(
            {"lib.yaml": LIBRARY + "  reads_role:\n    when: derived_roles.anyone_owning\n"},
            [
                (
                    "lib.yaml",
                    13,
                    11,
                    "a library cannot read derived roles (derived_roles.anyone_owning)",
                )
            ],
            id="library-reads-derived-role",
        ),
        pytest.param(
            {"lib.yaml": LIBRARY.replace("size > 10", "size > variables.big")},
            [("lib.yaml", 5, 35, "variable cycle: big -> big")],
            id="library-cycle",
        ),
        pytest.param(
            {"lib.yaml": LIBRARY, "lib2.yaml": LIBRARY, "p.yaml": POLICY},
            [("lib2.yaml", 1, 10, "library 'ownership' is defined twice (first in lib.yaml:1:10)")],
            id="defined-twice",
        ),
        pytest.param(
            {
                "lib.yaml": LIBRARY,
                "p.yaml": POLICY.replace("variables:\n", "variables:\n  is_owner: 'true'\n"),
            },
            [
                (
                    "lib.yaml",
                    4,
                    3,
                    "variable 'is_owner' of library 'ownership'"
                    " clashes with variable 'is_owner' (p.yaml:5:3)",
                ),
                (
                    "p.yaml",
                    5,
                    3,
                    "variable 'is_owner'"
                    " clashes with variable 'is_owner' of library 'ownership' (lib.yaml:4:3)",
                ),
            ],
            id="clash-with-own-variable",
        ),
        pytest.param(
            {
                "lib.yaml": LIBRARY,
                "x.yaml": TWO_LIBRARIES,
                "p.yaml": POLICY.replace("[ownership]", "[ownership, extra]"),
            },
            [
                (
                    "lib.yaml",
                    4,
                    3,
                    "variable 'is_owner' of library 'ownership'"
                    " clashes with variable 'is_owner' of library 'extra' (x.yaml:3:3)",
                ),
                (
                    "lib.yaml",
                    7,
                    3,
                    "derived role 'owner' of library 'ownership'"
                    " clashes with derived role 'owner' of library 'extra'",
                ),
                ("x.yaml", 3, 3, "variable 'is_owner' of library 'extra' clashes with"),
                ("x.yaml", 5, 3, "derived role 'owner' of library 'extra' clashes with"),
            ],
            id="clash-between-imports",
        ),
        pytest.param(
            {
                "lib.yaml": LIBRARY,
                "p.yaml": POLICY.replace("derived_roles.owner &&", 'derived_roles["owner"] &&'),
            },
            [("p.yaml", 9, 11, "read a derived role as derived_roles.<name>")],
            id="derived-roles-indexed",
        ),
        pytest.param(
            {
                "lib.yaml": LIBRARY,
                "p.yaml": POLICY.replace("[ownership]", "[ownership, ownership]"),
            },
            [("p.yaml", 2, 22, "library 'ownership' is imported twice")],
            id="imported-twice",
        ),
        pytest.param(
            {
                "lib.yaml": LIBRARY,
                "p.yaml": POLICY.replace(
                    "derived_roles.owner &&", "true && [1].exists(subject, derived_roles.owner) &&"
                ),
            },
            [("p.yaml", 9, 39, "derived_roles.owner reads 'subject', which a macro around it")],
            id="macro-rebinds-what-a-role-reads",
        ),
    ],
)
def test_misuse_is_refused_at_its_position(
    texts: dict[str, str], expected: list[tuple[str, int, int, str]]
) -> None:
    found = _where(_problems(texts))
    assert len(found) == len(expected), found
    for (file, line, column, message), want in zip(found, expected, strict=True):
        assert (file, line, column) == want[:3], found
        assert want[3] in message, found


def test_a_cel_error_in_a_library_is_reported_once_however_many_import_it() -> None:
    broken = LIBRARY.replace("size > 10", "size >")
    other = POLICY.replace("policy: documents", "policy: other")
    found = _problems({"lib.yaml": broken, "p.yaml": POLICY, "q.yaml": other})
    assert _where(found) == [
        (
            "lib.yaml",
            5,
            34,
            "CEL: syntax error: unexpected end of expression (in variable 'big' of library "
            "'ownership')",
        )
    ]


def test_an_error_from_where_it_is_used_is_at_the_reference_noting_the_library() -> None:
    library = LIBRARY + "  risky_role:\n    when: risk.score > 50\n"
    policy = POLICY.replace(
        "rules:", "signals:\n  - name: s\n    score: 5\n    when: derived_roles.risky_role\nrules:"
    )
    found = _where(_problems({"lib.yaml": library, "p.yaml": policy}))
    assert len(found) == 1, found
    file, line, column, message = found[0]
    assert (file, line, column) == ("p.yaml", 9, 11)
    assert message.startswith("a signal cannot read risk")
    assert "(in derived role 'risky_role' of library 'ownership', inlined here)" in message


@pytest.mark.parametrize(
    ("library", "line", "column", "message"),
    [
        (
            "library: Bad Name\nvariables: {a: 'true'}\n",
            1,
            10,
            "library name 'Bad Name' must match",
        ),
        ("library: x\n", 1, 1, "library 'x' declares nothing"),
        (
            "library: x\nvariabels: {a: 'true'}\n",
            2,
            1,
            "unknown key 'variabels' in a library: did you mean 'variables'?",
        ),
        ("library: x\nderived_roles: [a]\n", 2, 16, "derived_roles must be a mapping"),
        (
            "library: x\nderived_roles:\n  a: {}\n",
            3,
            3,
            "derived role 'a' needs parent_roles, a when, or both",
        ),
        (
            "library: x\nderived_roles:\n  a: {parent_roles: []}\n",
            3,
            21,
            "parent_roles must be a list of role names, not an empty list",
        ),
        (
            "library: x\nderived_roles:\n  a: {parent_roles: [1]}\n",
            3,
            22,
            "parent_roles entries must be role names",
        ),
        (
            "library: x\nderived_roles:\n  a: {when: true}\n",
            3,
            13,
            'when must be a CEL expression string (quote it: "true")',
        ),
        (
            "library: x\nderived_roles:\n  in: {when: 'true'}\n",
            3,
            3,
            "derived role name 'in' must be a CEL identifier",
        ),
        (
            "library: x\nderived_roles:\n  a: {when: 'true', parents: [x]}\n",
            3,
            21,
            "unknown key 'parents' in derived role 'a'",
        ),
    ],
)
def test_malformed_libraries_are_refused(
    library: str, line: int, column: int, message: str
) -> None:
    found = _where(_problems({"lib.yaml": library, "p.yaml": PLAIN}))
    assert len(found) == 1, found
    assert found[0][:3] == ("lib.yaml", line, column)
    assert message in found[0][3]


def test_imports_must_be_a_list_of_names() -> None:
    policy = POLICY.replace("[ownership]", "ownership")
    found = _where(_problems({"lib.yaml": LIBRARY, "p.yaml": policy}))
    assert len(found) == 1, found  # (the names it would have given are not reported)
    assert found[0][:3] == ("p.yaml", 2, 10)
    assert "imports must be a list of library names, not a string" in found[0][3]


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(
        [
            ("resource.properties.size + 1", "an addition, never a boolean"),
            ("\"'yes'\"", "the constant 'yes', not a boolean"),
            ("'1.5'", "the constant 1.5, not a boolean"),
            ("variables.size", "an addition, never a boolean"),
        ]
    ),
    st.sampled_from(["", "    parent_roles: [user]\n"]),
    st.booleans(),
)
def test_a_derived_roles_when_that_is_not_a_boolean_is_refused_used_or_not(
    when: tuple[str, str], parents: str, used: bool
) -> None:
    """As a rule's condition is: a role holding it would error on every request."""
    text, message = when
    library = (
        "library: x\nvariables:\n  size: resource.properties.size + 1\n"
        f"derived_roles:\n  sized:\n{parents}    when: {text}\n"
    )
    policy = "policy: p\nimports: [x]\nrules:\n  - id: r\n    effect: allow\n"
    policy += "    when: derived_roles.sized\n"
    found = _where(_problems({"lib.yaml": library, "p.yaml": policy if used else PLAIN}))
    line = 7 if parents else 6
    assert len(found) == 1, found
    assert found[0][:3] == ("lib.yaml", line, 11 + (text[0] in "'\""))
    assert f"CEL: condition is {message} (in derived role 'sized' of library 'x')" in found[0][3]


_MANY_PROBLEMS = (
    "library: x\n"
    "variables:\n"
    "  a: variables.w\n"  # unknown
    "  b: 3\n"  # not a string: refused, and its readers are not told b is unknown
    "  c: variables.b\n"
    "derived_roles:\n"
    "  r:\n"
    "    parent_roles: []\n"  # structural
    "    when: resource.properties.size +\n"  # CEL, in the role refused above
)


@pytest.mark.parametrize(
    ("library", "expected"),
    [
        (
            _MANY_PROBLEMS,
            [
                (4, 6, "variable 'b' must be a CEL expression string"),
                (8, 19, "parent_roles must be a list of role names, not an empty list"),
                (9, 37, "CEL: syntax error"),
            ],
        ),
        (
            _MANY_PROBLEMS.replace("  b: 3\n", "").replace("variables.b", "'true'"),
            [
                (3, 6, "unknown variable 'w'"),
                (7, 19, "parent_roles must be a list of role names, not an empty list"),
                (8, 37, "(in derived role 'r' of library 'x')"),
            ],
        ),
    ],
)
def test_every_problem_of_a_library_is_reported_at_once(
    library: str, expected: list[tuple[int, int, str]]
) -> None:
    """A structural error does not hide the CEL errors of the same library, nor give
    a bogus unknown name for a variable it refused."""
    found = _where(_problems({"lib.yaml": library, "p.yaml": PLAIN}))
    assert [f[:3] for f in found] == [("lib.yaml", *e[:2]) for e in expected], found
    for got, want in zip(found, expected, strict=True):
        assert want[2] in got[3], found


@pytest.mark.parametrize("name", ["Bad Name", "[a]"])
def test_a_bad_library_name_does_not_hide_the_librarys_other_problems(name: str) -> None:
    library = f"library: {name}\nvariables:\n  b: 3\nderived_roles:\n  r: {{parent_roles: ['*']}}\n"
    found = _where(_problems({"lib.yaml": library, "p.yaml": PLAIN}))
    assert [f[:3] for f in found] == [
        ("lib.yaml", 1, 10),
        ("lib.yaml", 3, 6),
        ("lib.yaml", 5, 22),
    ], found
    assert "library name" in found[0][3] and "'*' is not a wildcard" in found[2][3]


@pytest.mark.parametrize(("parents", "column"), [("['*']", 20), ("[user, '*']", 26)])
def test_a_wildcard_parent_role_is_refused_saying_what_to_write(parents: str, column: int) -> None:
    library = f"library: x\nderived_roles:\n  r:\n    parent_roles: {parents}\n"
    found = _where(_problems({"lib.yaml": library, "p.yaml": PLAIN}))
    assert len(found) == 1, found
    assert found[0][:3] == ("lib.yaml", 4, column)
    assert "'*' is not a wildcard" in found[0][3]
    assert "leave parent_roles out for any subject, or list the roles" in found[0][3]


_CONTROL = st.sampled_from([*range(9), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])


@settings(max_examples=40, deadline=None)
@given(
    _CONTROL,
    st.sampled_from(
        [
            'derived_roles:\n  r:\n    parent_roles: ["admin{}"]\n',
            'derived_roles:\n  r:\n    parent_roles: [user, "{}admin"]\n',
            'derived_roles:\n  r:\n    when: "true{}"\n',
            'variables:\n  v: "true{}"\n',
            'description: "about{}"\nvariables:\n  v: "true"\n',
        ]
    ),
)
def test_a_control_character_in_a_library_is_one_error(code: int, body: str) -> None:
    library = "library: x\n" + body.replace("{}", f"\\u{code:04x}")
    found = _where(_problems({"lib.yaml": library, "p.yaml": PLAIN}))
    assert len(found) == 1, found
    assert f"U+{code:04X} is a control character" in found[0][3]


def test_an_error_reached_through_a_derived_role_names_the_role() -> None:
    library = (
        "library: x\nvariables:\n  risky: risk.score > 1\n  m: subject.id == 'a' || true\n"
        "derived_roles:\n  sized:\n    when: variables.risky\n  either:\n    when: variables.m\n"
    )
    policy = (
        "policy: p\nimports: [x]\nsignals:\n  - name: s\n    score: 5\n"
        "    when: derived_roles.sized\nrules:\n  - id: r\n    effect: allow\n"
        "    when: has(derived_roles.either)\n"
    )
    found = _where(_problems({"lib.yaml": library, "p.yaml": policy}))
    assert [f[:3] for f in found] == [("p.yaml", 6, 11), ("p.yaml", 10, 15)], found
    assert found[0][3].endswith(
        "(in variable 'risky' of library 'x', which derived role 'sized' of library 'x' "
        "reads, inlined here)"
    )
    assert found[1][3].endswith("(in derived role 'either' of library 'x', inlined here)")


@pytest.mark.parametrize(
    ("read", "message"),
    [
        (
            "w",
            "unknown variable 'w': library 'b' reads only its own variables, and 'w' is in "
            "library 'a' (declare it here too, or read both in the policy that imports them)",
        ),
        ("vv", "unknown variable 'vv': did you mean 'v'? (library 'b' reads only its own"),
    ],
)
def test_a_library_reads_only_its_own_variables(read: str, message: str) -> None:
    texts = {
        "a.yaml": "library: a\nvariables:\n  w: 'true'\n",
        "b.yaml": f"library: b\nvariables:\n  v: 'true'\n  u: variables.{read}\n",
        "p.yaml": PLAIN,
    }
    found = _where(_problems(texts))
    assert len(found) == 1, found
    assert found[0][:3] == ("b.yaml", 4, 6)
    assert message in found[0][3]


# --- property: importing is pasting -------------------------------------------------------

PARENTS = ["user", "admin"]


def _documents(
    defs: dict[tuple[str, int], Any], condition: Any, own: int, parents: list[str], when: Any
) -> tuple[dict[str, str], str, str]:
    """The library (the first definitions), the policy (its own variables: the last
    ``own`` definitions, which may read the library's) and the pasted condition."""
    names = list(defs)
    in_library = names[: len(names) - own]
    role: dict[str, Any] = {"when": _render(when, defs, False)}
    if parents:
        role["parent_roles"] = parents
    library = {
        "library": "lib",
        "variables": {f"{k}{i}": _render(defs[(k, i)], defs, False) for k, i in in_library},
        "derived_roles": {"role": role},
    }
    if not library["variables"]:
        del library["variables"]
    policy: dict[str, Any] = {"policy": "p", "imports": ["lib"]}
    mine = {f"{k}{i}": _render(defs[(k, i)], defs, False) for k, i in names[len(in_library) :]}
    if mine:
        policy["variables"] = mine
    rule = f"derived_roles.role && ({_render(condition, defs, False)})"
    policy["rules"] = [{"id": "r", "effect": "allow", "when": rule}]
    check = "true"
    if parents:
        listed = ", ".join(f'"{p}"' for p in parents)
        check = (
            f"has(subject.properties.roles) && subject.properties.roles.exists(x, x in [{listed}])"
        )
    pasted_role = f"(({check}) && ({_render(when, defs, True)}))"
    pasted = f"{pasted_role} && ({_render(condition, defs, True)})"
    texts = {
        "lib.yaml": yaml.safe_dump(library, sort_keys=False, width=10_000),
        "p.yaml": yaml.safe_dump(policy, sort_keys=False, width=10_000),
    }
    return texts, pasted, pasted_role


def _pasted_policy(when: str) -> dict[str, str]:
    document = {"policy": "p", "rules": [{"id": "r", "effect": "allow", "when": when}]}
    return {"p.yaml": yaml.safe_dump(document, sort_keys=False, width=10_000)}


@st.composite
def _case(draw: st.DrawFn) -> tuple[dict[str, str], str, dict[str, str]]:
    defs, condition = draw(_program())
    own = draw(st.integers(0, len(defs)))
    parents = draw(st.lists(st.sampled_from(PARENTS), unique=True, max_size=2))
    in_library = list(defs)[: len(defs) - own]  # a role reads only its library's variables
    bools = [("var", "bool", i) for kind, i in in_library if kind == "bool"]
    when = draw(st.sampled_from([("atom", "true"), *bools]))
    texts, pasted, role = _documents(defs, condition, own, parents, when)
    paths = {f"variables.{k}{i}": _render(tree, defs, True) for (k, i), tree in defs.items()}
    paths["derived_roles.role"] = role
    return texts, pasted, paths


_ROLES = st.one_of(st.none(), st.lists(st.sampled_from([*PARENTS, "guest"]), max_size=2))


@settings(max_examples=60, deadline=None)
@given(_case(), st.lists(st.tuples(_REQUESTS, _ROLES), min_size=1, max_size=4))
def test_a_condition_with_imports_decides_as_the_pasted_condition(
    case: tuple[dict[str, str], str, dict[str, str]],
    requests: list[tuple[dict[str, Any], list[str] | None]],
) -> None:
    texts, pasted, paths = case
    with_imports = PolicyDecisionPoint.from_texts(texts)
    plain = PolicyDecisionPoint.from_texts(_pasted_policy(pasted))
    for props, roles in requests:
        properties = {**props, **({} if roles is None else {"roles": roles})}
        request = {
            "subject": {"type": "user", "id": "u", "properties": properties},
            "resource": {"type": "doc", "id": "d", "properties": {"size": props.get("size", 0)}},
            "action": {"name": "read"},
        }
        a, b = with_imports.evaluate(request, explain=True), plain.evaluate(request)
        assert a.effect == b.effect
        assert [(e.rule, e.message) for e in a.errors] == [(e.rule, e.message) for e in b.errors]
        # explain shows each variable's value: the value of its pasted expression
        (entry,) = a.explain
        scope = {
            **request_variables(AccessRequest.from_mapping(request)),
            "data": {},
            "behavior": {},
        }
        scope["now"] = datetime.datetime.now(datetime.UTC)
        assert entry.variables[0].path == "derived_roles.role"
        for shown in entry.variables:
            try:
                expected = compile_expression(paths[shown.path], VARIABLES)(scope)
            except Exception:
                assert shown.error is not None
                continue
            assert shown.error is None
            assert shown.value == expected


# --- explain ------------------------------------------------------------------------------


def test_explain_shows_each_variable_and_derived_role_with_its_value_or_error() -> None:
    pdp = PolicyDecisionPoint.from_texts({"lib.yaml": LIBRARY, "p.yaml": POLICY})
    request = _request(["user"])
    del request["resource"]["properties"]["size"]
    decision = pdp.evaluate(request, explain=True)
    (entry,) = decision.explain
    shown = {v.path: v for v in entry.variables}
    assert list(shown) == [
        "derived_roles.owner",
        "variables.is_owner",
        "variables.small_own",
        "variables.big",
    ]
    assert shown["derived_roles.owner"].value is True
    assert shown["variables.is_owner"].value is True
    assert shown["variables.big"].error == "no such key: 'size'"
    assert str(shown["variables.big"]) == "variables.big: error: no such key: 'size'"
    assert entry.to_dict()["variables"][0] == {"path": "derived_roles.owner", "value": True}
    # ... and nothing of it without explain, nor in an entry whose condition reads none
    assert pdp.evaluate(request).explain == ()


def test_explain_values_are_any_type_and_absent_without_variables() -> None:
    policy = (
        "policy: p\nvariables:\n  size: resource.properties.size * 2\nsignals:\n"
        "  - name: s\n    score: 5\n    when: variables.size > 100\nrules:\n"
        "  - id: plain\n    effect: allow\n"
    )
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": policy})
    signal, rule = pdp.evaluate(_request(size=21), explain=True).explain
    assert [(v.path, v.value) for v in signal.variables] == [("variables.size", 42)]
    assert rule.variables == ()
    assert "variables" not in rule.to_dict()


# --- the CLI ------------------------------------------------------------------------------


def _write(root: Path) -> None:
    (root / "lib.yaml").write_text(LIBRARY, encoding="utf-8")
    (root / "p.yaml").write_text(POLICY, encoding="utf-8")


def test_validate_and_eval_explain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path)
    assert main(["validate", str(tmp_path)]) == 0
    assert "ok: 1 policy, 1 rule in 2 files" in capsys.readouterr().out
    request = tmp_path / "request.json"
    request.write_text(json.dumps(_request(["user"])), encoding="utf-8")
    assert main(["eval", str(tmp_path), str(request), "--explain"]) == 0
    shown = json.loads(capsys.readouterr().out)["explain"][0]["variables"]
    assert {"path": "variables.small_own", "value": True} in shown


def test_validate_reports_every_problem_of_a_library(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path)
    broken = LIBRARY.replace("parent_roles: [user, admin]", "parent_roles: ['*']")
    broken = broken.replace("when: variables.is_owner\n", "when: subject.id + 'x'\n", 1)
    (tmp_path / "lib.yaml").write_text(broken, encoding="utf-8")
    assert main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr()
    printed = out.out + out.err
    assert "lib.yaml:8:20: derived role 'owner': parent_roles lists role names" in printed
    assert "lib.yaml:9:11: CEL: condition is an addition, never a boolean" in printed
    assert "2 problems found" in printed


def test_validate_reports_library_problems_through_the_console_script(tmp_path: Path) -> None:
    _write(tmp_path)
    (tmp_path / "p.yaml").write_text(POLICY.replace("[ownership]", "[ownrship]"), encoding="utf-8")
    done = run_cli("validate", str(tmp_path))
    assert done.returncode == 1
    assert "p.yaml:2:11: [documents] unknown library 'ownrship': did you mean 'ownership'?" in (
        done.stdout + done.stderr
    )


def test_lint_reads_a_set_with_libraries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path)
    code = main(["lint", str(tmp_path)])
    out = capsys.readouterr()
    assert code == 0, out


# --- the editor schema --------------------------------------------------------------------


def _schema_errors(text: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema("policy"))
    return [e.message for e in validator.iter_errors(yaml.safe_load(text))]


def test_the_editor_schema_accepts_libraries_and_imports() -> None:
    assert _schema_errors(LIBRARY) == []
    assert _schema_errors(POLICY) == []


@pytest.mark.parametrize(
    "text",
    [
        "library: x\n",  # declares nothing
        "library: X\nvariables: {a: 'true'}\n",
        "library: x\nvariabels: {a: 'true'}\n",
        "library: x\nderived_roles: {a: {}}\n",
        "library: x\nderived_roles: {a: {parent_roles: []}}\n",
        "library: x\nderived_roles: {a: {when: true}}\n",
        "library: x\nderived_roles: {a: {when: 'true', parents: [x]}}\n",
        "library: x\nderived_roles: {1a: {when: 'true'}}\n",
        POLICY.replace("[ownership]", "ownership"),
        POLICY.replace("[ownership]", "[ownership, ownership]"),
    ],
)
def test_the_editor_schema_refuses_what_the_loader_refuses(text: str) -> None:
    assert _schema_errors(text)
    with pytest.raises(PolicyError):
        load_texts({"lib.yaml": LIBRARY, "p.yaml": PLAIN, "x.yaml": text}, default_backend())


def test_test_v_prints_each_variable_below_the_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path)
    suite = {
        "cases": [
            {
                "name": "an owner without a size",
                "request": {
                    "subject": {"id": "alice", "properties": {"roles": ["user"]}},
                    "action": {"name": "read"},
                    "resource": {"type": "document", "properties": {"owner": "alice"}},
                },
                "expect": {"effect": "deny"},
            }
        ]
    }
    (tmp_path / "p_test.yaml").write_text(yaml.safe_dump(suite), encoding="utf-8")
    assert main(["test", "-v", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = lines.index("    trace: rule documents/owners-read (allow): error: no such key: 'size'")
    assert lines[at + 1 : at + 9] == [
        "    trace:     " + line
        for line in [
            'subject.properties.roles = ["user"]',
            'resource.properties.owner = "alice"',
            'subject.id = "alice"',
            "resource.properties.size: missing",
            "derived_roles.owner = true",
            "variables.is_owner = true",
            "variables.small_own: error: no such key: 'size'",
            "variables.big: error: no such key: 'size'",
        ]
    ]


def test_the_decision_log_never_receives_the_values(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    sink = JsonLinesLog(log)
    pdp = PolicyDecisionPoint.from_texts({"lib.yaml": LIBRARY, "p.yaml": POLICY}, decision_log=sink)
    assert pdp.evaluate(_request(["user"]), explain=True).explain[0].variables
    sink.close()
    written = log.read_text(encoding="utf-8")
    assert written.count("\n") == 1
    assert "variables.is_owner" not in written
    assert "derived_roles" not in written


@pytest.mark.parametrize("backend", [CompiledBackend, InterpreterBackend])
def test_a_library_may_read_the_sets_group_hierarchy(backend: type[Backend]) -> None:
    groups = (
        "groups:\n  staff:\n    members: [bob]\n    groups: [leads]\n"
        "  leads:\n    members: [alice]\n"
    )
    library = "library: org\nderived_roles:\n  staff:\n    when: in_group(subject.id, 'staff')\n"
    policy = (
        "policy: p\nimports: [org]\nrules:\n  - id: r\n    effect: allow\n"
        "    when: derived_roles.staff\n"
    )
    texts = {"org.data.yaml": groups, "lib.yaml": library, "p.yaml": policy}
    pdp = PolicyDecisionPoint.from_texts(texts, backend=backend())
    for who, effect in [("alice", "allow"), ("bob", "allow"), ("eve", "deny")]:
        request = {**_request(), "subject": {"type": "user", "id": who}}
        decision = pdp.evaluate(request, explain=True)
        assert decision.effect.value == effect
        (shown,) = decision.explain[0].variables  # explain evaluates in_group() too
        assert (shown.path, shown.value, shown.error) == (
            "derived_roles.staff",
            effect == "allow",
            None,
        )
    broken = library.replace("'staff'", "'staf'")
    found = _where(_problems({**texts, "lib.yaml": broken}))
    assert [(f, line) for f, line, _, _ in found] == [("lib.yaml", 4)]
    assert (
        "in variable" not in found[0][3] and "derived role 'staff' of library 'org'" in found[0][3]
    )
