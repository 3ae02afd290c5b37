"""Action groups: named sets of actions, declared once for the whole policy set.

A group stands for its members wherever an action list names it (``target.actions``,
other groups), so each group is flattened to plain actions at load: the index matches
plain actions at no run-time cost, and everything downstream sees plain actions.
Conditions read the flattened groups as data (``data.action_groups.viewing``), so they
need no new CEL function.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from zerotrust._describe import describe
from zerotrust.errors import Diagnostic
from zerotrust.obligations import did_you_mean
from zerotrust.policy.located import LNode
from zerotrust.policy.model import CelSource, PolicySpec, Target
from zerotrust.policy.positions import first_declared

__all__ = [
    "DATA_KEY",
    "DOCUMENT_KEY",
    "ActionGroup",
    "ActionGroups",
    "Member",
    "condition_references",
    "cycles",
    "expand_specs",
    "read_action_groups",
    "resolve_action_groups",
    "undeclared_actions",
    "unknown_group_message",
]

#: The document key that declares groups, and the ``data`` key conditions read them under.
DOCUMENT_KEY = "action_groups"
DATA_KEY = "action_groups"
GROUP_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
# CEL's reserved words: a group so named could not be read as data.action_groups.<name>.
_CEL_WORDS = frozenset(
    {
        "as",
        "break",
        "const",
        "continue",
        "else",
        "false",
        "for",
        "function",
        "if",
        "import",
        "in",
        "let",
        "loop",
        "package",
        "namespace",
        "null",
        "return",
        "true",
        "var",
        "void",
        "while",
    }
)
_REFERENCE = re.compile(
    r"(?<![\w.])data\s*\.\s*action_groups(?:\s*\.\s*([A-Za-z_]\w*)"
    r"|\s*\[\s*(?:\"([^\"\\]*)\"|'([^'\\]*)')\s*\])?"
)


@attrs.frozen
class Member:
    """One entry of a group: an action, or another group's name; where it is written."""

    name: str
    line: int
    column: int


@attrs.frozen
class ActionGroup:
    """A group as declared: its name, members, and where the name is written."""

    name: str
    members: tuple[Member, ...]
    file: str
    line: int
    column: int


@attrs.frozen
class ActionGroups:
    """The set's groups, each flattened to the plain actions it stands for."""

    flat: Mapping[str, frozenset[str]] = attrs.field(factory=dict)
    #: Every group name declared, even when the groups were refused (for references).
    names: frozenset[str] = frozenset()

    def as_data(self) -> dict[str, list[str]]:
        """The flattened groups as ``data.action_groups`` holds them (sorted lists)."""
        return {name: sorted(actions) for name, actions in sorted(self.flat.items())}


_Add = Callable[[LNode, str], None]


def _kind(value: Any) -> str:
    return describe(value, mapping="a mapping", sequence="a list")


def read_action_groups(doc: LNode, file: str) -> tuple[tuple[ActionGroup, ...], list[Diagnostic]]:
    """The groups a document declares, with every structural problem in it."""
    problems: list[Diagnostic] = []

    def add(node: LNode, message: str) -> None:
        problems.append(Diagnostic(file, node.line, node.column, message))

    keys = doc.keys or {}
    for key in doc.value:
        if key != DOCUMENT_KEY:
            add(
                keys.get(key, doc),
                f"unknown key {key!r} in an action groups document (it holds only "
                f"{DOCUMENT_KEY}; a policy is a document of its own, after ---)",
            )
    node: LNode = doc.value[DOCUMENT_KEY]
    if not isinstance(node.value, dict) or not node.value:
        shown = "an empty mapping" if node.value == {} else _kind(node.value)
        add(node, f"{DOCUMENT_KEY} must be a mapping of group names to lists, not {shown}")
        return (), problems
    groups: list[ActionGroup] = []
    name_nodes = node.keys or {}
    for name, members_node in node.value.items():
        at = name_nodes.get(name, node)
        if not _group_name_ok(name, at, add):
            continue
        members = _members(name, members_node, add)
        if members is not None:
            groups.append(ActionGroup(name, members, file, at.line, at.column))
    return tuple(groups), problems


def _group_name_ok(name: Any, at: LNode, add: _Add) -> bool:
    if not isinstance(name, str) or not GROUP_NAME.match(name):
        add(
            at,
            f"action group name {name!r} must match [a-z][a-z0-9_]* (it is read in "
            "conditions as data.action_groups.<name>)",
        )
        return False
    if name in _CEL_WORDS:
        add(
            at,
            f"action group name {name!r} is a CEL reserved word: "
            f"data.action_groups.{name} could not be written",
        )
        return False
    return True


def _members(name: str, node: LNode, add: _Add) -> tuple[Member, ...] | None:
    if not isinstance(node.value, list):
        add(
            node,
            f"action group {name!r} must be a list of action or group names, "
            f"not {_kind(node.value)}",
        )
        return None
    if not node.value:
        add(node, f"action group {name!r} is empty: a group needs at least one member")
        return None
    members: list[Member] = []
    ok = True
    for item in node.value:
        if not isinstance(item.value, str) or not item.value:
            shown = "an empty string" if item.value == "" else _kind(item.value)
            add(
                item,
                f"action group {name!r}: members must be non-empty strings "
                f"(action or group names), not {shown}",
            )
            ok = False
        elif item.value == "*":
            add(
                item,
                f"action group {name!r}: '*' (any action) cannot be a member; "
                "write it in the target itself",
            )
            ok = False
        else:
            members.append(Member(item.value, item.line, item.column))
    return tuple(members) if ok else None


def resolve_action_groups(
    groups: Iterable[ActionGroup], data_origin: Mapping[str, str]
) -> tuple[ActionGroups, list[Diagnostic]]:
    """Flatten the groups: each to the plain actions it reaches through its members.

    Refuses a group declared twice, a cycle (named, at the member that closes it) and a
    data key ``action_groups`` the groups would shadow.
    """
    declared, problems = first_declared(groups, "action group")
    if not declared:
        return ActionGroups(), problems
    head = min(declared.values(), key=lambda g: (g.file, g.line, g.column))
    if DATA_KEY in data_origin:
        problems.append(
            Diagnostic(
                head.file,
                head.line,
                head.column,
                f"the data key {DATA_KEY!r} (in {data_origin[DATA_KEY]}) clashes with the "
                f"action groups, which conditions read as data.{DATA_KEY}: rename the key",
            )
        )
    for cycle, member, owner in cycles(declared):
        problems.append(
            Diagnostic(
                owner.file, member.line, member.column, f"action group cycle: {' -> '.join(cycle)}"
            )
        )
    names = frozenset(declared)
    if problems:
        return ActionGroups(names=names), problems
    return ActionGroups(_flatten_all(declared), names), []


def cycles(declared: Mapping[str, ActionGroup]) -> Iterator[tuple[list[str], Member, ActionGroup]]:
    """Each back edge of a depth-first walk closes one cycle: (the cycle, that member,
    its group); a member that names no declared group is a leaf. Iterative, so a long
    chain of groups cannot exhaust the stack."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    for root in declared:
        if root in state:
            continue
        path = [root]
        walks = [iter(declared[root].members)]
        state[root] = 1
        while walks:
            member = next(walks[-1], None)
            if member is None:
                state[path.pop()] = 2
                walks.pop()
                continue
            child = member.name
            if child not in declared:
                continue
            if state.get(child) == 1:
                yield [*path[path.index(child) :], child], member, declared[path[-1]]
            elif child not in state:
                state[child] = 1
                path.append(child)
                walks.append(iter(declared[child].members))


def _flatten_all(declared: Mapping[str, ActionGroup]) -> dict[str, frozenset[str]]:
    """Each group's actions, leaves first (the graph is acyclic here); iterative, so a
    long chain of groups cannot exhaust the stack."""
    flat: dict[str, frozenset[str]] = {}
    for root in declared:
        stack = [root]
        while stack:
            group = stack[-1]
            if group in flat:
                stack.pop()
                continue
            names = [m.name for m in declared[group].members]
            waiting = [n for n in names if n in declared and n not in flat]
            if waiting:
                stack.extend(waiting)
                continue
            stack.pop()
            actions = {n for n in names if n not in declared}
            flat[group] = frozenset(actions.union(*(flat[n] for n in names if n in declared)))
    return flat


def expand_specs(specs: Sequence[PolicySpec], groups: ActionGroups) -> list[PolicySpec]:
    """The policies with every group in ``target.actions`` replaced by its actions."""
    if not groups.flat:
        return list(specs)
    out = []
    for spec in specs:
        actions = spec.target.actions
        if actions is not None and any(a in groups.flat for a in actions):
            expanded = frozenset().union(*(groups.flat.get(a, {a}) for a in actions))
            out.append(attrs.evolve(spec, target=Target(spec.target.resources, expanded)))
        else:
            out.append(spec)
    return out


def condition_references(source: CelSource) -> list[tuple[str | None, int, int]]:
    """Each ``data.action_groups`` a condition reads, outside string literals: the group
    named (None for the whole mapping) and its line and column inside the condition."""
    found: list[tuple[str | None, int, int]] = []
    text = source.text
    for match in _REFERENCE.finditer(text):
        before = text[: match.start()]
        if before.count('"') % 2 or before.count("'") % 2:
            continue
        name = next((g for g in match.groups() if g is not None), None)
        start = match.start(1) if match.group(1) is not None else match.start()
        line = text.count("\n", 0, start) + 1
        found.append((name, line, start - text.rfind("\n", 0, start)))
    return found


def unknown_group_message(name: str | None, known: frozenset[str]) -> str | None:
    """Why a condition's reference to a group cannot be read, or None when it can."""
    if not known:
        return f"no action groups are declared, so data.{DATA_KEY} does not exist"
    if name is None or name in known:
        return None
    return f"unknown action group {name!r}{did_you_mean(name, known)}"


def undeclared_actions(
    targets: Iterable[tuple[str, str, LNode]],
    groups: Iterable[ActionGroup],
    actions: Iterable[str],
) -> list[Diagnostic]:
    """With the set's actions declared (the schemas' ``actions``), every name in a
    target (``(file, policy, node)``) or in a group that is neither a declared action
    nor a group. Without the declaration a misspelt group is read as an action that no
    request names, and its policy silently applies to nothing."""
    groups = list(groups)
    known = frozenset(actions)
    names = frozenset(g.name for g in groups)
    entries: list[tuple[str, str | None, Any, int, int]] = [
        (file, policy, node.value, node.line, node.column) for file, policy, node in targets
    ]
    entries += [(g.file, None, m.name, m.line, m.column) for g in groups for m in g.members]
    found = [
        Diagnostic(
            g.file,
            g.line,
            g.column,
            f"action group {g.name!r} has the name of a declared action: a target naming "
            "it could mean either, so rename the group or the action",
        )
        for g in groups
        if g.name in known
    ]
    for file, policy, name, line, column in entries:
        if name in known or name in names or name == "*":
            continue
        hint = did_you_mean(name, known | names)
        message = f"{name!r} is neither a declared action nor an action group{hint}"
        found.append(Diagnostic(file, line, column, message, policy))
    return found
