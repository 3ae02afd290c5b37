"""The set's actions declared in the attribute schemas (``actions: [...]``): a name in a
target or an action group that is neither a declared action nor a group is refused at
load (a misspelt group would otherwise be read as an action no request names), and a
request naming another action is a schema mismatch (``report`` lists it, ``enforce``
refuses it).

The refusals' positions are in ``policies/malformed_sets`` (``misspelt-action-group``,
``schema-actions-twice``); here the behaviour around them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zerotrust import PolicyDecisionPoint, PolicyError, RequestError

ROOT = Path(__file__).resolve().parents[1]
ACTIONS = "actions: [read, list, search, share, update]\n"
GROUPS = "action_groups:\n  viewing: [read, list, search]\n"


def policy(*actions: str) -> str:
    return (
        f"policy: documents\ntarget:\n  resources: [document]\n  actions: [{', '.join(actions)}]\n"
        "rules:\n  - id: everyone\n    effect: allow\n"
    )


def load(*actions: str, schema: str = ACTIONS, **options: Any) -> PolicyDecisionPoint:
    texts = {"groups.yaml": GROUPS, "documents.yaml": policy(*actions)}
    texts["actions.schema.yaml"] = schema
    return PolicyDecisionPoint.from_texts(texts, **options)


def request(action: str) -> dict[str, Any]:
    return {
        "subject": {"type": "user", "id": "alice"},
        "resource": {"type": "document", "id": "d-1"},
        "action": {"name": action},
    }


def messages(exc: PolicyError) -> list[str]:
    return [d.message for d in exc.diagnostics]


def test_misspelt_group_in_a_target_is_refused_not_read_as_an_action() -> None:
    """The attack on meaning: ``veiwing`` for ``viewing`` made a policy that applies to
    no request, silently. With the actions declared it is refused, naming the group."""
    with pytest.raises(PolicyError) as caught:
        load("veiwing")
    assert messages(caught.value) == [
        "'veiwing' is neither a declared action nor an action group: did you mean 'viewing'?"
    ]
    assert caught.value.diagnostics[0].policy == "documents"


def test_misspelt_action_in_a_group_is_refused_at_the_member() -> None:
    texts = {
        "groups.yaml": "action_groups:\n  viewing: [read, lst]\n",
        "documents.yaml": policy("viewing"),
        "actions.schema.yaml": ACTIONS,
    }
    with pytest.raises(PolicyError) as caught:
        PolicyDecisionPoint.from_texts(texts)
    [problem] = caught.value.diagnostics
    assert (problem.file, problem.line, problem.column) == ("groups.yaml", 2, 19)
    assert problem.message == (
        "'lst' is neither a declared action nor an action group: did you mean 'list'?"
    )


def test_declared_actions_and_groups_load_and_decide() -> None:
    pdp = load("viewing", "share")
    assert pdp.evaluate(request("search")).allowed
    assert pdp.evaluate(request("share")).allowed
    assert not pdp.evaluate(request("update")).allowed  # declared, not targeted


def test_any_action_stays_any_action() -> None:
    texts = {
        "documents.yaml": "policy: documents\ntarget: {actions: '*'}\nrules:\n"
        "  - id: everyone\n    effect: allow\n",
        "actions.schema.yaml": ACTIONS,
    }
    assert PolicyDecisionPoint.from_texts(texts).evaluate(request("read")).allowed


def test_without_the_declaration_a_target_name_is_an_action() -> None:
    """Unchanged when ``actions`` is not declared: any name is an action."""
    texts = {"groups.yaml": GROUPS, "documents.yaml": policy("veiwing")}
    pdp = PolicyDecisionPoint.from_texts(texts)
    assert pdp.evaluate(request("veiwing")).allowed
    assert not pdp.evaluate(request("read")).allowed


def test_report_lists_an_undeclared_request_action_and_decides_as_usual() -> None:
    pdp = load("viewing")
    decision = pdp.evaluate(request("raed"))
    assert not decision.allowed  # no policy targets it
    [error] = decision.errors
    assert (error.kind, error.rule) == ("schema", "action.name")
    assert error.message == "is not one of the 5 declared actions"
    assert pdp.evaluate(request("read")).errors == ()


def test_enforce_refuses_an_undeclared_request_action_naming_the_field() -> None:
    pdp = load("viewing", schema_validation="enforce")
    with pytest.raises(RequestError) as caught:
        pdp.evaluate(request("raed"))
    assert caught.value.field == "action.name"
    assert pdp.evaluate(request("list")).allowed


def test_a_redacted_action_leaves_no_trace_in_the_log(tmp_path: Path) -> None:
    """The attack on the audit trail: with ``redact: [action.name]`` the mismatch message
    showed the declared names mangled around the hidden value and a "did you mean"
    naming its nearest neighbour. The message names neither the value nor a neighbour."""
    from zerotrust import JsonLinesLog

    path = tmp_path / "decisions.jsonl"
    texts = {"documents.yaml": policy("approve"), "a.schema.yaml": "actions: [approve, write]\n"}
    with JsonLinesLog(path, redact=["action.name"]) as log:
        PolicyDecisionPoint.from_texts(texts, decision_log=log).evaluate(request("approv"))
    written = path.read_text("utf-8")
    assert "is not one of the 2 declared actions" in written
    assert "approv" not in written.replace("approve", "")
    assert "did you mean" not in written and "REDACTED]e" not in written


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[]", "actions must be a non-empty list of action names"),
        ("read", "actions must be a non-empty list of action names"),
        ("[read, 1]", "an action name must be a non-empty string, not 1"),
        ("[read, '']", "an action name must be a non-empty string, not ''"),
        (
            "[read, '*']",
            "'*' is not an action name: list each action here (a target's '*' already means "
            "any action)",
        ),
        ("[read, read]", "action 'read' is listed twice"),
    ],
)
def test_a_bad_actions_list_is_refused(value: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        load("read", schema=f"actions: {value}\n")
    assert message in messages(caught.value)


def test_validate_reports_a_misspelt_group_through_the_console_script(tmp_path: Path) -> None:
    (tmp_path / "groups.yaml").write_text(GROUPS, encoding="utf-8")
    (tmp_path / "documents.yaml").write_text(policy("vewing"), encoding="utf-8")
    (tmp_path / "actions.schema.yaml").write_text(ACTIONS, encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "zerotrust", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert run.returncode == 1
    assert run.stderr.splitlines()[0] == (
        f"{tmp_path / 'documents.yaml'}:4:13: [documents] 'vewing' is neither a declared "
        "action nor an action group: did you mean 'viewing'?"
    )


NAMES = st.sampled_from(["read", "list", "search", "share", "update", "viewing", "raed", "x"])


@given(st.lists(NAMES, min_size=1, max_size=4, unique=True))
def test_a_set_loads_exactly_when_every_target_name_is_an_action_or_a_group(
    names: list[str],
) -> None:
    known = {"read", "list", "search", "share", "update", "viewing"}
    undeclared = [n for n in names if n not in known]
    try:
        load(*names)
    except PolicyError as exc:
        assert [m.split("'")[1] for m in messages(exc)] == undeclared
    else:
        assert not undeclared


def test_a_group_named_as_a_declared_action_is_refused() -> None:
    """``viewing`` both an action and a group: a target naming it could mean either, and
    a request for the action ``viewing`` would match no target."""
    with pytest.raises(PolicyError) as caught:
        load("viewing", schema="actions: [read, list, search, viewing]\n")
    [problem] = caught.value.diagnostics
    assert (problem.file, problem.line, problem.column) == ("groups.yaml", 2, 3)
    assert problem.message == (
        "action group 'viewing' has the name of a declared action: a target naming it "
        "could mean either, so rename the group or the action"
    )


def test_a_condition_comparing_with_an_undeclared_action_is_refused() -> None:
    """``action.name == "raed"`` never holds: with the actions declared, the type
    checker refuses it at its position with the closest action."""
    texts = {
        "documents.yaml": "policy: documents\nrules:\n  - id: readers\n    effect: allow\n"
        "    when: action.name == 'raed' || action.name in ['list']\n",
        "actions.schema.yaml": ACTIONS,
    }
    with pytest.raises(PolicyError) as caught:
        PolicyDecisionPoint.from_texts(texts)
    [problem] = caught.value.diagnostics
    assert (problem.line, problem.column) == (5, 26)
    assert '"raed" is not one of the values the schema allows' in problem.message
    assert problem.message.endswith('did you mean "read"?')
