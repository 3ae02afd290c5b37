"""Group hierarchies: a data file's ``groups``, tested in conditions with ``in_group``.

Each refusal also has a case in the malformed corpus (``policies/malformed_sets`` and
``policies/malformed``) with its exact position; here the behaviour around them, on both
backends.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cli_conventions import zerotrust_cli

from zerotrust import PolicyDecisionPoint, PolicyError
from zerotrust.cel import Backend, CompiledBackend, InterpreterBackend
from zerotrust.cel.functions import in_group
from zerotrust.cli import main
from zerotrust.policy.groups import read_groups
from zerotrust.policy.located import load_documents
from zerotrust.policy.schemas import schema

GROUPS = """\
groups:
  support:
    members: [u-dave]
    groups: [support-leads]
  support-leads:
    members: [u-alice, u-bob]
    groups: [emea-support-leads]
  emea-support-leads:
    members: [u-carol]
  auditors:
    members: [u-alice]
"""

POLICY = """\
policy: tickets
target:
  resources: [ticket]
rules:
  - id: leads
    effect: allow
    when: in_group(subject.id, "support-leads")
  - id: by-claim
    effect: allow
    when: has(subject.properties.groups) && in_group(subject.properties.groups, "support")
  - id: by-resource
    effect: allow
    when: has(resource.properties.group) && in_group(subject.id, resource.properties.group)
"""

#: One rule naming one group, for the small hierarchies below.
SIMPLE = POLICY.split("  - id: by-claim", maxsplit=1)[0]
BACKENDS = [CompiledBackend, InterpreterBackend]


def _pdp(
    backend: type[Backend], data: str = GROUPS, policy: str = POLICY, name: str = "org.data.yaml"
) -> PolicyDecisionPoint:
    return PolicyDecisionPoint.from_texts({name: data, "tickets.yaml": policy}, backend=backend())


def _request(who: str, groups: Any = None, group: Any = None) -> dict[str, Any]:
    subject: dict[str, Any] = {"type": "user", "id": who}
    if groups is not None:
        subject["properties"] = {"groups": groups}
    resource: dict[str, Any] = {"type": "ticket", "id": "t-1"}
    if group is not None:
        resource["properties"] = {"group": group}
    return {"subject": subject, "resource": resource, "action": {"name": "read"}}


def _messages(data: str, policy: str = POLICY) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        _pdp(CompiledBackend, data, policy)
    return [d.message for d in caught.value.diagnostics]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("who", "effect"),
    [
        ("u-alice", "allow"),  # a direct member
        ("u-carol", "allow"),  # a member of a subgroup
        ("u-dave", "deny"),  # a member of the parent only
        ("u-erin", "deny"),  # nobody's member
        ("support-leads", "deny"),  # a subject id is a member id, never a group name
        ("emea-support-leads", "deny"),
    ],
)
def test_membership_follows_the_hierarchy_down(
    backend: type[Backend], who: str, effect: str
) -> None:
    assert _pdp(backend).evaluate(_request(who)).effect.value == effect


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("groups", "effect"),
    [
        (["emea-support-leads"], "allow"),  # a subgroup of support, two levels down
        (["okta-everyone", "support"], "allow"),  # any listed name will do
        (["support-leads"], "allow"),  # a listed group is in itself
        (["auditors"], "deny"),
        (["okta-support"], "deny"),  # a group the hierarchy does not declare
        (["u-alice"], "deny"),  # a listed name is a group name, never a member id
        ([], "deny"),
    ],
)
def test_a_list_of_groups_from_the_request_is_extended_by_the_hierarchy(
    backend: type[Backend], groups: list[str], effect: str
) -> None:
    request = _request("u-nobody", groups=groups)
    assert _pdp(backend).evaluate(request).effect.value == effect


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_group_name_from_the_request_that_is_not_declared_gives_false(
    backend: type[Backend],
) -> None:
    decision = _pdp(backend).evaluate(_request("u-alice-x", group="no-such-group"))
    assert decision.effect.value == "deny"
    assert not decision.errors
    assert _pdp(backend).evaluate(_request("u-bob", group="auditors")).effect.value == "allow"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        (["support", 7], "each listed group name must be a string, not int"),
        (
            {"support": True},
            "the first argument must be a member id (a string) or a list of group names, not dict",
        ),
    ],
)
def test_a_wrong_argument_type_is_an_evaluation_error(
    backend: type[Backend], groups: Any, expected: str
) -> None:
    # The rule errors (an allow that errors does not match): it fails closed.
    decision = _pdp(backend).evaluate(_request("u-nobody", groups=groups))
    assert decision.effect.value == "deny"
    messages = [e.message for e in decision.errors if e.rule == "tickets/by-claim"]
    assert len(messages) == 1 and expected in messages[0], messages


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_group_argument_that_is_not_a_string_is_an_evaluation_error(
    backend: type[Backend],
) -> None:
    decision = _pdp(backend).evaluate(_request("u-alice", group=3))
    [error] = [e for e in decision.errors if e.rule == "tickets/by-resource"]
    assert error.message == "in_group(): group must be a string, not int"


@pytest.mark.parametrize("backend", BACKENDS)
def test_in_group_works_inside_a_macro(backend: type[Backend]) -> None:
    policy = SIMPLE.replace(
        'in_group(subject.id, "support-leads")',
        'subject.properties.groups.exists(g, in_group([g], "support-leads"))',
    )
    pdp = _pdp(backend, GROUPS, policy)
    assert pdp.evaluate(_request("x", groups=["auditors", "emea-support-leads"])).allowed
    assert not pdp.evaluate(_request("x", groups=["auditors", "support"])).allowed


def test_the_function_alone_checks_every_listed_name() -> None:
    above = {"a": frozenset({"a"})}
    assert in_group({}, above, ["a"], "a") is True
    assert in_group({}, above, "a", "a") is False  # a string is a member id
    with pytest.raises(ValueError, match="each listed group name must be a string"):
        in_group({}, above, ["a", None], "a")  # after a match, still refused
    with pytest.raises(ValueError, match="must be a member id"):
        in_group({}, above, None, "a")


def test_data_groups_holds_the_declaration_as_written() -> None:
    pdp = _pdp(CompiledBackend)
    assert pdp.policies.data["groups"] == yaml.safe_load(GROUPS)["groups"]


def test_a_json_data_file_declares_groups_too() -> None:
    data = json.dumps(yaml.safe_load(GROUPS))
    pdp = _pdp(CompiledBackend, data, name="org.data.json")
    assert pdp.evaluate(_request("u-carol")).effect.value == "allow"


@pytest.mark.parametrize("backend", BACKENDS)
def test_subject_id_equal_to_a_group_name_does_not_get_that_group(
    backend: type[Backend],
) -> None:
    # Member ids and group names are separate: an account named like a group is only
    # in the groups that list it as a member.
    data = """\
groups:
  ops: {members: [support-leads]}
  support-leads: {members: [u-alice]}
  support: {}
"""
    ops = _pdp(backend, data, POLICY.replace('"support-leads")', '"ops")', 1))
    assert ops.evaluate(_request("support-leads")).effect.value == "allow"
    assert ops.evaluate(_request("u-alice")).effect.value == "deny"
    leads = _pdp(backend, data)
    assert leads.evaluate(_request("support-leads")).effect.value == "deny"
    assert leads.evaluate(_request("u-alice")).effect.value == "allow"


@pytest.mark.parametrize("backend", BACKENDS)
def test_request_groups_listing_a_user_id_do_not_get_that_users_groups(
    backend: type[Backend],
) -> None:
    pdp = _pdp(backend)
    for listed in (["u-alice"], ["u-carol", "u-dave"]):
        decision = pdp.evaluate(_request("u-nobody", groups=listed))
        assert decision.effect.value == "deny", listed
        assert not decision.errors
    assert pdp.evaluate(_request("u-nobody", groups=["support"])).effect.value == "allow"


def test_an_empty_group_and_an_empty_declaration_are_allowed() -> None:
    data = "groups:\n  support-leads: {}\n"
    pdp = _pdp(CompiledBackend, data, SIMPLE)
    assert pdp.evaluate(_request("u-alice")).effect.value == "deny"
    assert "unknown group 'support-leads'" in _messages("groups: {}\n", SIMPLE)[0]


def test_changing_a_group_changes_the_revision() -> None:
    before = _pdp(CompiledBackend).policies.revision
    after = _pdp(CompiledBackend, GROUPS.replace("[u-carol]", "[u-carl]")).policies.revision
    assert before != after


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "policy", "expected"),
    [
        (
            GROUPS.replace("[emea-support-leads]", "[emea-support-lead]"),
            POLICY,
            "subgroup 'emea-support-lead' is not declared: did you mean 'emea-support-leads'?",
        ),
        (
            GROUPS.replace("members: [u-carol]", "groups: [support]"),
            POLICY,
            "group cycle: support -> support-leads -> emea-support-leads -> support",
        ),
        (
            "groups:\n  a: {groups: [a]}\n",
            SIMPLE.replace("support-leads", "a"),
            "group cycle: a -> a",
        ),
        (
            GROUPS.replace("members: [u-carol]", "member: [u-carol]"),
            POLICY,
            "unknown key 'member' in group 'emea-support-leads': did you mean 'members'?",
        ),
        (
            GROUPS.replace("members: [u-carol]", "owners: [u-carol]"),
            POLICY,
            "unknown key 'owners' in group 'emea-support-leads': a group holds members and groups",
        ),
        (
            GROUPS.replace("[u-carol]", "[u-carol, u-carol]"),
            POLICY,
            "group 'emea-support-leads' lists 'u-carol' twice",
        ),
        (
            GROUPS.replace("[emea-support-leads]", "[emea-support-leads, emea-support-leads]"),
            POLICY,
            "group 'support-leads' lists 'emea-support-leads' twice",
        ),
        (GROUPS.replace("[u-carol]", "u-carol"), POLICY, "members must be a list of member ids"),
        (GROUPS.replace("[u-carol]", "['']"), POLICY, "not an empty string"),
        (GROUPS.replace("[u-carol]", "[[u-carol]]"), POLICY, "not a list"),
        ("groups:\n  support-leads:\n", SIMPLE, "must be a mapping with members and/or groups"),
        (
            "groups:\n  '': {}\n  support-leads: {}\n",
            SIMPLE,
            "a group name must be a non-empty string",
        ),
        ("groups: [support-leads]\n", POLICY, "groups must be a mapping of group names"),
        (GROUPS + "  auditors: {}\n", POLICY, "duplicate key 'auditors'"),
        (
            GROUPS,
            POLICY.replace('"support-leads")', '"support-lead")'),
            "in_group(): unknown group 'support-lead': did you mean 'support-leads'?",
        ),
        (
            "other: 1\n",
            SIMPLE,
            "in_group(): no groups are declared",
        ),
        (
            GROUPS,
            POLICY.replace('"support-leads")', '"support-leads", "x")'),
            "in_group() takes 2 argument(s), got 3",
        ),
    ],
)
def test_a_malformed_hierarchy_or_use_is_refused(data: str, policy: str, expected: str) -> None:
    messages = _messages(data, policy)
    assert len(messages) == 1 and expected in messages[0], messages


def test_a_second_data_file_declaring_groups_is_refused_naming_the_first() -> None:
    texts = {"a.data.yaml": GROUPS, "b.data.yaml": "groups: {x: {}}\n", "t.yaml": POLICY}
    with pytest.raises(PolicyError) as caught:
        PolicyDecisionPoint.from_texts(texts)
    [problem] = caught.value.diagnostics
    assert (problem.file, problem.line, problem.column) == ("b.data.yaml", 1, 1)
    assert problem.message == "data key 'groups' is also defined in a.data.yaml"


def test_conditions_of_a_policy_that_failed_validation_see_the_groups() -> None:
    # The policy comes before the data file: its conditions are checked once groups are known.
    broken = POLICY.replace(
        "effect: allow\n    when: in_group", "effect: allw\n    when: in_group", 1
    )
    texts = {"a.yaml": broken, "z.data.yaml": GROUPS}
    with pytest.raises(PolicyError) as caught:
        PolicyDecisionPoint.from_texts(texts)
    assert ["effect" in d.message for d in caught.value.diagnostics] == [True]


def test_every_problem_is_listed_at_once() -> None:
    data = GROUPS.replace("[u-carol]", "[u-carol, 1]").replace("[emea-support-leads]", "[emea]")
    messages = _messages(data, POLICY.replace('"support-leads")', '"suport-leads")'))
    assert len(messages) == 3, messages


# --- the hierarchy agrees with a naive search, on both backends -----------------------------

_NAMES = [f"g{i}" for i in range(6)]
_USERS = [f"u{i}" for i in range(4)]


@st.composite
def _hierarchies(draw: st.DrawFn) -> dict[str, dict[str, list[str]]]:
    """Groups, members and subgroups; half the time only later groups are subgroups, so
    acyclic hierarchies are as common as cyclic ones."""
    names = _NAMES[: draw(st.integers(1, len(_NAMES)))]
    forward = draw(st.booleans())
    return {
        name: {
            # Members are sometimes named like groups: the namespaces must stay apart.
            "members": draw(st.lists(st.sampled_from([*_USERS, *_NAMES]), unique=True, max_size=3)),
            "groups": draw(
                st.lists(
                    st.sampled_from(names[i + 1 :] if forward and i + 1 < len(names) else names),
                    unique=True,
                    max_size=3 if not forward or i + 1 < len(names) else 0,
                )
            ),
        }
        for i, name in enumerate(names)
    }


def _below(declared: dict[str, dict[str, list[str]]], group: str) -> set[str]:
    """The groups reachable from ``group`` through subgroups, itself included (a plain walk)."""
    seen, todo = {group}, [group]
    while todo:
        for sub in declared[todo.pop()]["groups"]:
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
    return seen


def _has_cycle(declared: dict[str, dict[str, list[str]]]) -> bool:
    return any(
        name in _below(declared, sub) for name in declared for sub in declared[name]["groups"]
    )


def _naive(declared: dict[str, dict[str, list[str]]], who: str | list[str], group: str) -> bool:
    """A string is a member id: listed as a member of the group or of a group below it.
    A list holds group names: one is the group or a group below it. Never the other way."""
    if group not in declared:
        return False
    below = _below(declared, group)
    if isinstance(who, str):
        return any(who in declared[g]["members"] for g in below)
    return any(name in below for name in who)


_MEMBERSHIP = """\
policy: p
rules:
  - id: one
    effect: allow
    when: in_group(subject.properties.who, resource.properties.group)
"""


@settings(max_examples=60, deadline=None)
@given(_hierarchies(), st.lists(st.sampled_from([*_USERS, *_NAMES, "nobody"]), max_size=3))
def test_in_group_is_reachability_in_two_namespaces_and_every_cycle_is_refused(
    declared: dict[str, dict[str, list[str]]], names: list[str]
) -> None:
    texts = {"g.data.json": json.dumps({"groups": declared}), "p.yaml": _MEMBERSHIP}
    if _has_cycle(declared):
        with pytest.raises(PolicyError) as caught:
            PolicyDecisionPoint.from_texts(texts)
        for problem in caught.value.diagnostics:
            assert problem.message.startswith("group cycle: ")
            cycle = problem.message.removeprefix("group cycle: ").split(" -> ")
            assert cycle[0] == cycle[-1]
            assert all(b in declared[a]["groups"] for a, b in itertools.pairwise(cycle))
        return
    for backend in BACKENDS:
        pdp = PolicyDecisionPoint.from_texts(texts, backend=backend())
        for group in [*_NAMES, "nobody"]:
            for who in [names, *names]:
                request = {
                    "subject": {"type": "user", "id": "s", "properties": {"who": who}},
                    "resource": {"type": "r", "id": "r", "properties": {"group": group}},
                    "action": {"name": "a"},
                }
                expected = "allow" if _naive(declared, who, group) else "deny"
                assert pdp.evaluate(request).effect.value == expected, (backend, who, group)


def test_a_long_chain_does_not_exhaust_the_stack() -> None:
    chain = {f"g{i}": {"groups": [f"g{i + 1}"]} for i in range(1500)}
    chain["g1500"] = {"members": ["u-deep"]}
    policy = SIMPLE.replace('"support-leads")', '"g0")')
    pdp = _pdp(CompiledBackend, json.dumps({"groups": chain}), policy, name="org.data.json")
    assert pdp.evaluate(_request("u-deep")).effect.value == "allow"
    chain["g1500"] = {"groups": ["g0"]}
    assert "group cycle: g0 -> g1" in _messages_json(chain, policy)[0]


def _messages_json(groups: dict[str, Any], policy: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        _pdp(CompiledBackend, json.dumps({"groups": groups}), policy, name="org.data.json")
    return [d.message for d in caught.value.diagnostics]


# --- the schema for editors agrees with the loader on the shape ----------------------------

_ITEM = st.one_of(st.sampled_from(["u-a", "g", "", "u-a"]), st.integers(0, 2), st.none())
_BODY = st.one_of(
    st.dictionaries(
        st.sampled_from(["members", "groups", "member"]),
        st.one_of(st.lists(_ITEM, max_size=3), st.just("u-a"), st.none()),
        max_size=2,
    ),
    st.none(),
    st.just(["u-a"]),
)
_GROUPS_VALUE = st.one_of(
    st.dictionaries(st.sampled_from(["g", "h", ""]), _BODY, max_size=2), st.just([]), st.none()
)


@settings(max_examples=200, deadline=None)
@given(_GROUPS_VALUE)
def test_schema_and_loader_agree_on_the_shape(value: Any) -> None:
    [node] = load_documents(json.dumps({"groups": value}))
    _, problems = read_groups(node.value["groups"], "g.data.yaml")
    valid = jsonschema.Draft202012Validator(schema("data")).is_valid({"groups": value})
    assert valid is not problems, problems


def test_the_schema_accepts_the_documented_declaration() -> None:
    validator = jsonschema.Draft202012Validator(schema("data"))
    assert validator.is_valid(yaml.safe_load(GROUPS))
    assert validator.is_valid({"groups": "any other key is plain data"}) is False
    assert validator.is_valid({"other": [1, 2]})


# --- through the command line ---------------------------------------------------------------


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    (tmp_path / "org.data.yaml").write_text(GROUPS, encoding="utf-8")
    (tmp_path / "tickets.yaml").write_text(POLICY, encoding="utf-8")
    return tmp_path


def test_console_validate_and_eval(policies: Path) -> None:
    done = zerotrust_cli("validate", str(policies))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: 1 policy, 3 rules in "), done.stdout
    done = zerotrust_cli("eval", str(policies), "-", stdin=json.dumps(_request("u-carol")))
    assert json.loads(done.stdout)["effect"] == "allow", done.stderr


def test_console_validate_names_the_cycle(policies: Path) -> None:
    data = policies / "org.data.yaml"
    data.write_text(GROUPS.replace("members: [u-carol]", "groups: [support]"), "utf-8")
    done = zerotrust_cli("validate", str(policies))
    assert done.returncode == 1
    assert (
        "org.data.yaml:9:14: group cycle: support -> support-leads -> emea-support-leads -> support"
    ) in done.stderr, done.stderr


def test_cli_main_validate_and_test(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        {"name": who, "request": _request(who), "expect": {"effect": effect}}
        for who, effect in (("u-carol", "allow"), ("u-dave", "deny"))
    ]
    (policies / "tickets_test.yaml").write_text(yaml.safe_dump({"cases": cases}), "utf-8")
    assert main(["validate", str(policies)]) == 0
    assert main(["test", str(policies)]) == 0
    (policies / "org.data.yaml").write_text(GROUPS.replace("[u-carol]", "[u-carl]"), "utf-8")
    assert main(["test", str(policies)]) == 1
    capsys.readouterr()
