"""Action groups: flattened at load into targets and ``data.action_groups``, refused
whole when they cannot mean one thing (cycles, a group twice, unknown references...).

Each refusal also has a file in the malformed corpus (``policies/malformed`` and
``policies/malformed_sets``) with its exact position; here the behaviour around them.
"""

from __future__ import annotations

import itertools
import json
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
from zerotrust.cel import default_backend
from zerotrust.cli import main
from zerotrust.policy.loader import load_texts, with_action_groups
from zerotrust.policy.located import load_documents
from zerotrust.policy.schemas import schema
from zerotrust.policy.validate import validate_policy

GROUPS = """\
action_groups:
  viewing: [read, list, search]
  editing: [update, delete]
  all_access: [viewing, editing, share]
"""

POLICY = """\
policy: documents
target:
  resources: [document]
  actions: [viewing]
rules:
  - id: viewers
    effect: allow
"""

CONDITIONS = """\
policy: folders
target:
  resources: [folder]
rules:
  - id: read-only-for-guests
    effect: allow
    when: >
      subject.type != "guest" ||
      action.name in data.action_groups.viewing
  - id: bracket-form
    effect: allow
    when: subject.type == "admin" && action.name in data.action_groups["all_access"]
"""

ALL_ACTIONS = ["read", "list", "search", "update", "delete", "share", "viewing", "admin"]
MALFORMED = Path(__file__).parent / "policies" / "malformed"


def _request(action: str, resource: str = "document", subject: str = "user") -> dict[str, Any]:
    return {
        "subject": {"type": subject, "id": "alice"},
        "resource": {"type": resource, "id": "r1"},
        "action": {"name": action},
    }


def _pdp(*documents: str) -> PolicyDecisionPoint:
    return PolicyDecisionPoint.from_texts({"p.yaml": "---\n".join(documents)})


def _messages(*documents: str, data: str | None = None) -> list[str]:
    texts = {"p.yaml": "---\n".join(documents)}
    if data is not None:
        texts["d.data.yaml"] = data
    with pytest.raises(PolicyError) as info:
        load_texts(texts, default_backend())
    return [d.message for d in info.value.diagnostics]


# --- what a group means -------------------------------------------------------------------


@pytest.mark.parametrize("action", ALL_ACTIONS)
def test_a_target_by_group_allows_each_member_and_no_other(action: str) -> None:
    decision = _pdp(GROUPS, POLICY).evaluate(_request(action))
    assert decision.allowed is (action in {"read", "list", "search"})


@pytest.mark.parametrize("action", ALL_ACTIONS)
def test_a_group_of_groups_stands_for_every_action_below_it(action: str) -> None:
    policy = POLICY.replace("actions: [viewing]", "actions: [all_access, admin]")
    decision = _pdp(GROUPS, policy).evaluate(_request(action))
    assert decision.allowed is (action != "viewing")  # a group name is not an action


def test_the_index_sees_plain_actions() -> None:
    policy_set = load_texts({"p.yaml": f"{GROUPS}---\n{POLICY}"}, default_backend())
    assert policy_set.action_names("document") == ("list", "read", "search")
    assert policy_set.applicable("document", "viewing") == ()


@pytest.mark.parametrize(
    ("subject", "action", "allowed"),
    [
        ("guest", "read", True),
        ("guest", "search", True),
        ("guest", "delete", False),
        ("guest", "viewing", False),
        ("user", "delete", True),
        ("admin", "share", True),
    ],
)
def test_conditions_read_the_flattened_groups_as_data(
    subject: str, action: str, allowed: bool
) -> None:
    decision = _pdp(GROUPS, CONDITIONS).evaluate(_request(action, "folder", subject))
    assert decision.allowed is allowed
    assert decision.errors == ()


def test_tools_reading_documents_again_get_the_expanded_targets() -> None:
    documents = [
        validate_policy(node, "p.yaml") for node in load_documents(f"{GROUPS}---\n{POLICY}")
    ]
    [spec] = with_action_groups(documents)
    assert spec.target.actions == frozenset({"read", "list", "search"})
    assert spec.target.resources == frozenset({"document"})


def test_the_data_holds_each_group_sorted_and_flattened() -> None:
    policy_set = load_texts({"p.yaml": f"{GROUPS}---\n{POLICY}"}, default_backend())
    assert policy_set.data["action_groups"] == {
        "all_access": ["delete", "list", "read", "search", "share", "update"],
        "editing": ["delete", "update"],
        "viewing": ["list", "read", "search"],
    }


def test_groups_may_be_declared_in_several_documents_and_files() -> None:
    texts = {
        "a.yaml": "action_groups:\n  viewing: [read, list]\n",
        "b.yaml": f"action_groups:\n  all_access: [viewing, update]\n---\n{POLICY}",
    }
    policy = POLICY.replace("actions: [viewing]", "actions: [all_access]")
    texts["b.yaml"] = texts["b.yaml"].replace(POLICY, policy)
    policy_set = load_texts(texts, default_backend())
    assert policy_set.action_names("document") == ("list", "read", "update")


def test_changing_a_group_changes_the_revision() -> None:
    first = load_texts({"p.yaml": f"{GROUPS}---\n{POLICY}"}, default_backend())
    changed = GROUPS.replace("search]", "search, export]")
    second = load_texts({"p.yaml": f"{changed}---\n{POLICY}"}, default_backend())
    assert first.revision != second.revision


def test_without_groups_the_data_is_unchanged() -> None:
    policy_set = load_texts({"p.yaml": POLICY, "d.data.yaml": "teams: [a]\n"}, default_backend())
    assert dict(policy_set.data) == {"teams": ["a"]}


def test_a_set_of_groups_alone_holds_no_policy() -> None:
    assert _messages(GROUPS) == ["the policy set holds no policy"]


# --- refusals -----------------------------------------------------------------------------


def test_a_cycle_is_refused_and_named() -> None:
    cyclic = GROUPS.replace("editing: [update, delete]", "editing: [update, all_access]")
    assert _messages(cyclic, POLICY) == [
        "action group cycle: editing -> all_access -> editing",
    ]


def test_a_group_that_contains_itself_is_a_cycle() -> None:
    assert _messages("action_groups:\n  viewing: [read, viewing]\n", POLICY) == [
        "action group cycle: viewing -> viewing"
    ]


def test_a_group_defined_twice_is_refused() -> None:
    again = "action_groups:\n  viewing: [read]\n"
    [message] = _messages(GROUPS, again, POLICY)
    assert message == "action group 'viewing' is defined twice (first in p.yaml:2:3)"


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("action.name in data.action_groups.vewing", "unknown action group 'vewing': did you "
         "mean 'viewing'?"),
        ("action.name in data.action_groups['edting']", "unknown action group 'edting': did "
         "you mean 'editing'?"),
        ('action.name in data.action_groups["zzz"]', "unknown action group 'zzz'"),
    ],
)  # fmt: skip
def test_a_condition_reading_an_unknown_group_is_refused(condition: str, expected: str) -> None:
    policy = f"policy: p\nrules:\n  - id: r\n    effect: allow\n    when: {condition}\n"
    [message] = _messages(GROUPS, policy)
    assert message == expected


def test_a_condition_reading_groups_when_none_are_declared_is_refused() -> None:
    policy = "policy: p\nrules:\n  - id: r\n    effect: allow\n"
    policy += "    when: action.name in data.action_groups.viewing\n"
    assert _messages(policy) == [
        "no action groups are declared, so data.action_groups does not exist"
    ]


def test_a_group_name_inside_a_string_literal_is_not_a_reference() -> None:
    policy = "policy: p\nrules:\n  - id: r\n    effect: allow\n    when: >\n"
    policy += '      "data.action_groups.nope" != action.name\n'
    assert _pdp(GROUPS, policy).evaluate(_request("read")).allowed


def test_a_data_key_the_groups_would_shadow_is_refused() -> None:
    [message] = _messages(GROUPS, POLICY, data="action_groups: {viewing: [read]}\n")
    assert message.startswith("the data key 'action_groups' (in d.data.yaml) clashes")


def test_a_data_key_named_action_groups_is_plain_data_without_groups() -> None:
    pdp = PolicyDecisionPoint.from_texts(
        {"p.yaml": POLICY, "d.data.yaml": "action_groups: {viewing: [read]}\n"}
    )
    assert pdp.evaluate(_request("viewing")).allowed


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        ("viewing: []", "action group 'viewing' is empty: a group needs at least one member"),
        ("viewing:", "action group 'viewing' must be a list of action or group names, not null"),
        ("viewing: read", "must be a list of action or group names, not a string"),
        ("viewing: [read, 1]", "members must be non-empty strings (action or group names), "
         "not a number"),
        ("viewing: [read, '']", "not an empty string"),
        ("viewing: [[read]]", "not a list"),
        ("viewing: ['*']", "'*' (any action) cannot be a member"),
        ("in: [read]", "action group name 'in' is a CEL reserved word"),
        ("'null': [read]", "action group name 'null' is a CEL reserved word"),
        ("read-all: [read]", "action group name 'read-all' must match [a-z][a-z0-9_]*"),
        ("'*': [read]", "action group name '*' must match"),
    ],
)  # fmt: skip
def test_a_malformed_group_is_refused(groups: str, expected: str) -> None:
    [message] = _messages(f"action_groups:\n  {groups}\n", POLICY)
    assert expected in message


@pytest.mark.parametrize("value", ["{}", "[]", "viewing", "null"])
def test_action_groups_must_be_a_mapping_with_a_group(value: str) -> None:
    [message] = _messages(f"action_groups: {value}\n", POLICY)
    assert message.startswith("action_groups must be a mapping of group names to lists")


def test_a_groups_document_holds_nothing_else() -> None:
    [message] = _messages(f"{GROUPS}rules: []\n", POLICY)
    assert message.startswith("unknown key 'rules' in an action groups document")


def test_groups_inside_a_policy_are_refused_with_where_they_go() -> None:
    policy = POLICY.replace("rules:", "action_groups: {viewing: [read]}\nrules:")
    [message] = _messages(policy)
    assert "action_groups is a document of its own" in message


def test_every_problem_is_listed_at_once() -> None:
    groups = "action_groups:\n  a: [b]\n  b: [a]\n  c: []\n"
    policy = POLICY.replace("rules:", "rules:\n  - id: x\n    effect: allow\n    when: nope(")
    messages = _messages(groups, policy, data="action_groups: 1\n")
    assert len(messages) == 4, messages


# --- random group graphs ------------------------------------------------------------------

_GROUP_NAMES = [f"g{i}" for i in range(6)]
_ACTION_NAMES = [f"a{i}" for i in range(5)]


@st.composite
def _graphs(draw: st.DrawFn) -> dict[str, list[str]]:
    count = draw(st.integers(1, len(_GROUP_NAMES)))
    names = _GROUP_NAMES[:count]
    pool = st.sampled_from([*names, *_ACTION_NAMES])
    return {n: draw(st.lists(pool, min_size=1, max_size=4, unique=True)) for n in names}


def _reach(graph: dict[str, list[str]], start: str) -> set[str]:
    """Every name reachable from ``start`` by one or more member steps."""
    seen: set[str] = set()
    frontier = list(graph[start])
    while frontier:
        name = frontier.pop()
        if name not in seen:
            seen.add(name)
            frontier.extend(graph.get(name, []))
    return seen


@settings(max_examples=200, deadline=None)
@given(_graphs(), st.sampled_from(_GROUP_NAMES))
def test_expansion_is_the_transitive_closure_and_every_cycle_is_refused(
    graph: dict[str, list[str]], targeted: str
) -> None:
    target = targeted if targeted in graph else next(iter(graph))
    groups = yaml.safe_dump({"action_groups": graph})
    policy = POLICY.replace("actions: [viewing]", f"actions: [{target}]")
    texts = {"p.yaml": f"{groups}---\n{policy}"}
    cyclic = [g for g in graph if g in _reach(graph, g)]
    if cyclic:
        with pytest.raises(PolicyError) as info:
            load_texts(texts, default_backend())
        named = [d.message for d in info.value.diagnostics]
        assert named and all(m.startswith("action group cycle: ") for m in named)
        for message in named:
            cycle = message.removeprefix("action group cycle: ").split(" -> ")
            assert cycle[0] == cycle[-1]
            assert all(b in graph[a] for a, b in itertools.pairwise(cycle))
        # Every strongly connected part with a cycle in it has a cycle named inside it.
        cycles = [set(m.split(": ")[1].split(" -> ")) for m in named]
        for group in cyclic:
            part = {g for g in graph if g in _reach(graph, group) and group in _reach(graph, g)}
            assert any(cycle <= part for cycle in cycles), (group, part, named)
        return
    policy_set = load_texts(texts, default_backend())
    closure = {g: sorted(_reach(graph, g) - set(graph)) for g in graph}
    assert policy_set.data["action_groups"] == closure
    for action in [*_ACTION_NAMES, *_GROUP_NAMES]:
        applies = bool(policy_set.applicable("document", action))
        assert applies is (action in closure[target])


# --- the schema for editors agrees --------------------------------------------------------

_SCHEMA_FILES = [
    "action-group-empty.yaml",
    "action-group-member-not-string.yaml",
    "action-group-not-a-list.yaml",
    "action-group-reserved-name.yaml",
    "action-groups-inside-policy.yaml",
]


@pytest.mark.parametrize("name", _SCHEMA_FILES)
def test_the_schema_refuses_the_structurally_malformed_groups(name: str) -> None:
    validator = jsonschema.Draft202012Validator(schema("policy"))
    docs = list(yaml.safe_load_all((MALFORMED / name).read_text(encoding="utf-8")))
    assert any(not validator.is_valid(doc) for doc in docs)


_MEMBER = st.one_of(
    st.sampled_from(["read", "viewing", "*", "", "a b"]),
    st.integers(-3, 3),
    st.none(),
    st.lists(st.just("read"), max_size=1),
)
_GROUP_NAME = st.sampled_from(["viewing", "all_access", "in", "true", "Bad", "x-y", "_x", "v2"])
_GROUPS_VALUE = st.one_of(
    st.dictionaries(
        _GROUP_NAME,
        st.one_of(st.lists(_MEMBER, max_size=3), st.just("read"), st.none()),
        max_size=3,
    ),
    st.none(),
    st.just([]),
)


@settings(max_examples=200, deadline=None)
@given(_GROUPS_VALUE, st.sampled_from([{}, {"description": "x"}]))
def test_schema_and_loader_agree_on_groups_documents(value: Any, extra: dict[str, Any]) -> None:
    doc = {"action_groups": value, **extra}
    [node] = load_documents(json.dumps(doc))
    validated = validate_policy(node, "p.yaml")
    assert validated.spec is None
    loader_ok = not validated.diagnostics
    assert jsonschema.Draft202012Validator(schema("policy")).is_valid(doc) is loader_ok


def test_the_shipped_schema_accepts_a_groups_document() -> None:
    validator = jsonschema.Draft202012Validator(schema("policy"))
    assert validator.is_valid(yaml.safe_load(GROUPS))
    assert validator.is_valid(yaml.safe_load(POLICY))


# --- through the command line -------------------------------------------------------------


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    (tmp_path / "groups.yaml").write_text(GROUPS, encoding="utf-8")
    (tmp_path / "documents.yaml").write_text(POLICY, encoding="utf-8")
    return tmp_path


def _run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zerotrust", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def test_console_validate_and_eval(policies: Path) -> None:
    done = _run("validate", str(policies))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: 1 policy, 1 rule in 2 files")
    for action, effect in (("search", "allow"), ("update", "deny")):
        done = _run("eval", str(policies), "-", stdin=json.dumps(_request(action)))
        assert json.loads(done.stdout)["effect"] == effect, done.stderr


def test_console_validate_names_the_cycle(policies: Path) -> None:
    groups = policies / "groups.yaml"
    groups.write_text(GROUPS.replace("[update, delete]", "[update, all_access]"), "utf-8")
    done = _run("validate", str(policies))
    assert done.returncode == 1
    assert re.search(
        r"groups\.yaml:4:25: action group cycle: editing -> all_access -> editing", done.stderr
    ), done.stderr


def test_console_test_runs_a_suite_over_groups(policies: Path) -> None:
    cases = [
        {"name": action, "request": _request(action), "expect": {"effect": effect}}
        for action, effect in (("read", "allow"), ("search", "allow"), ("delete", "deny"))
    ]
    suite = policies / "documents_test.yaml"
    suite.write_text(yaml.safe_dump({"cases": cases}), encoding="utf-8")
    done = _run("test", str(policies))
    assert done.returncode == 0, done.stdout + done.stderr
    suite.write_text(yaml.safe_dump({"cases": [{**cases[2], "request": _request("list")}]}))
    assert _run("test", str(policies)).returncode == 1


def test_cli_main_eval(policies: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request = tmp_path / "request.json"
    request.write_text(json.dumps(_request("list")), encoding="utf-8")
    assert main(["eval", str(policies), str(request), "--compact"]) == 0
    assert json.loads(capsys.readouterr().out)["effect"] == "allow"
