"""Group hierarchies: groups of members and of other groups, declared in a data file.

Conditions test membership with ``in_group(x, "group")``. Two closures are computed once,
at load, so a test is one dictionary lookup per name however deep the hierarchy: each
group name -> itself and every group above it, and each member id -> every group it is
in. They are kept apart: a member id that happens to equal a group name gets that
group's membership through neither. Ancestor sets are shared, not copied, and their total
size is bounded, so a data file cannot make the load exhaust memory. ``data.groups`` keeps the
declaration as written (plain data, like every other data key); ``in_group`` is what
follows the hierarchy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from zerotrust._describe import describe
from zerotrust.cel.functions import SetFunction, in_group
from zerotrust.errors import Diagnostic
from zerotrust.obligations import did_you_mean
from zerotrust.policy.action_groups import ActionGroup, Member, cycles
from zerotrust.policy.located import LNode

__all__ = [
    "DATA_KEY",
    "MAX_CLOSURE",
    "Group",
    "GroupIndex",
    "located",
    "read_groups",
    "resolve_groups",
]

#: The data file key that declares groups (and the ``data`` key that shows them as written).
DATA_KEY = "groups"
_FIELDS = ("members", "groups")
_Add = Callable[[LNode, str], None]
#: The most (name, group) pairs the flattened hierarchy may hold: far above any real
#: organisation, far below what would exhaust memory.
MAX_CLOSURE = 2_000_000


@attrs.frozen
class Group:
    """A group as declared: its direct members and subgroups, and where it is written."""

    name: str
    members: tuple[Member, ...]
    subgroups: tuple[Member, ...]
    file: str
    line: int
    column: int


@attrs.frozen
class GroupIndex:
    """The declared groups, flattened: each member id -> the groups it is in (``members``),
    and each group name -> itself and every group above it (``above``)."""

    members: Mapping[str, frozenset[str]]
    above: Mapping[str, frozenset[str]]
    names: frozenset[str]
    #: False when the declaration could not be read at all (its names are unknown).
    readable: bool = True

    def check(self, group: Any) -> None:
        """``ValueError`` for a group written in a condition that is no string, or a name
        that is not declared."""
        if not isinstance(group, str):
            shown = describe(group, mapping="a map", sequence="a list")
            shown = "bytes" if isinstance(group, bytes) else shown
            hint = (
                ': a list of group names goes first, in_group(subject.properties.groups, "support")'
                if isinstance(group, list)
                else ', like in_group(subject.id, "support")'
            )
            raise ValueError(
                f"the second argument must be a group name (a string), not {shown}{hint}"
            )
        if self.readable and group not in self.names:
            hint = did_you_mean(group, self.names) or " (it is not declared)"
            raise ValueError(f"unknown group {group!r}{hint}")

    def functions(self) -> Mapping[str, SetFunction]:
        """The CEL functions these groups give a condition: ``in_group(x, "group")``."""
        fn = functools.partial(in_group, self.members, self.above)
        return MappingProxyType({"in_group": SetFunction(fn, 2, (None, self.check))})


_EMPTY: Mapping[str, frozenset[str]] = MappingProxyType({})


def _kind(value: Any) -> str:
    return describe(value, mapping="a mapping", sequence="a list")


def read_groups(node: LNode, file: str) -> tuple[tuple[Group, ...] | None, list[Diagnostic]]:
    """The groups a data file's ``groups`` key declares (None when it is no mapping), with
    every structural problem."""
    problems: list[Diagnostic] = []

    def add(at: LNode, message: str) -> None:
        problems.append(Diagnostic(file, at.line, at.column, message))

    if not isinstance(node.value, dict):
        add(
            node,
            f"{DATA_KEY} must be a mapping of group names to {{members: [...], groups: [...]}}, "
            f"not {_kind(node.value)}",
        )
        return None, problems
    found: list[Group] = []
    keys = node.keys or {}
    for name, body in node.value.items():
        at = keys.get(name, node)
        if not isinstance(name, str) or not name:
            add(at, f"a group name must be a non-empty string, not {name!r}")
            continue
        # A malformed group is still declared: conditions naming it are not reported too.
        members, subgroups = _fields(name, body, add)
        found.append(Group(name, members, subgroups, file, at.line, at.column))
    return tuple(found), problems


def _fields(name: str, body: LNode, add: _Add) -> tuple[tuple[Member, ...], tuple[Member, ...]]:
    """A group's ``members`` and ``groups`` lists (the well-formed names of each)."""
    if not isinstance(body.value, dict):
        add(
            body,
            f"group {name!r} must be a mapping with members and/or groups (lists of names), "
            f"not {_kind(body.value)}",
        )
        return (), ()
    keys = body.keys or {}
    for key in body.value:
        if key not in _FIELDS:
            hint = did_you_mean(key, _FIELDS) or ": a group holds members and groups"
            add(keys.get(key, body), f"unknown key {key!r} in group {name!r}{hint}")
    members = _names(name, "members", body.value.get("members"), add)
    return members, _names(name, "groups", body.value.get("groups"), add)


def _names(group: str, field: str, node: LNode | None, add: _Add) -> tuple[Member, ...]:
    """One list of names (member ids or subgroups), each once."""
    if node is None:
        return ()
    what = "member ids" if field == "members" else "group names"
    if not isinstance(node.value, list):
        add(node, f"group {group!r}: {field} must be a list of {what}, not {_kind(node.value)}")
        return ()
    names: dict[str, Member] = {}
    for item in node.value:
        value = item.value
        if not isinstance(value, str) or not value:
            shown = "an empty string" if value == "" else _kind(value)
            add(item, f"group {group!r}: {field} must be non-empty strings ({what}), not {shown}")
        elif value in names:
            first = names[value]
            add(item, f"group {group!r} lists {value!r} twice (first at line {first.line})")
        else:
            names[value] = Member(value, item.line, item.column)
    return tuple(names.values())


def resolve_groups(groups: Iterable[Group] | None) -> tuple[GroupIndex, list[Diagnostic]]:
    """The closure of the declared groups; refuses a subgroup that is not declared and
    each cycle (named from the subgroup that closes it). With problems, the index holds
    the declared names only, so conditions are still checked against them; None (an
    unreadable declaration or data file, already reported) checks nothing."""
    if groups is None:
        return GroupIndex(_EMPTY, _EMPTY, frozenset(), readable=False), []
    declared = {group.name: group for group in groups}
    names = frozenset(declared)
    problems: list[Diagnostic] = []
    for group in declared.values():
        for sub in group.subgroups:
            if sub.name not in declared:
                hint = did_you_mean(sub.name, names)
                message = f"group {group.name!r}: subgroup {sub.name!r} is not declared{hint}"
                problems.append(Diagnostic(group.file, sub.line, sub.column, message))
    edges = {
        name: ActionGroup(name, group.subgroups, group.file, group.line, group.column)
        for name, group in declared.items()
    }
    for cycle, member, owner in cycles(edges):
        message = f"group cycle: {' -> '.join(cycle)}"
        problems.append(Diagnostic(owner.file, member.line, member.column, message))
    if not problems:
        members, above, size = _closure(declared)
        if size <= MAX_CLOSURE:  # else the first group's position carries the refusal
            return GroupIndex(members, above, names), []
        first = next(iter(declared.values()))
        message = (
            f"the group hierarchy is too large to flatten: more than {MAX_CLOSURE:,} "
            "(name, group) pairs; nest groups fewer levels deep, or put fewer members in "
            "several groups each"
        )
        problems.append(Diagnostic(first.file, first.line, first.column, message))
    return GroupIndex(_EMPTY, _EMPTY, names), problems


def _closure(
    declared: Mapping[str, Group],
) -> tuple[Mapping[str, frozenset[str]], Mapping[str, frozenset[str]], int]:
    """Each group's ancestors (itself included), each computed once, parents first; then
    each member's, the union over the groups that list it (the group's own set, shared,
    when it is in one). Iterative: a long chain cannot exhaust the stack. Also the total
    size (the entries actually stored), counted before any member set is built, so an
    oversized hierarchy is refused without building it."""
    parents: dict[str, list[str]] = {name: [] for name in declared}
    for group in declared.values():
        for sub in group.subgroups:
            parents[sub.name].append(group.name)
    above: dict[str, frozenset[str]] = {}
    size = 0
    for root in declared:
        stack = [root]
        while stack and size <= MAX_CLOSURE:
            name = stack[-1]
            if name in above:
                stack.pop()
                continue
            waiting = [p for p in parents[name] if p not in above]
            if waiting:
                stack.extend(waiting)
                continue
            stack.pop()
            above[name] = frozenset({name}).union(*(above[p] for p in parents[name]))
            size += len(above[name])
    owners: dict[str, list[str]] = {}
    for group in declared.values():
        for member in group.members:
            owners.setdefault(member.name, []).append(group.name)
    for groups in owners.values():
        # One group: its set is shared (one reference); several: a union is built.
        size += 1 if len(groups) == 1 else sum(len(above.get(g, ())) for g in groups)
    if size > MAX_CLOSURE:
        return _EMPTY, _EMPTY, size
    members = {
        who: above[groups[0]]
        if len(groups) == 1
        else frozenset().union(*(above[g] for g in groups))
        for who, groups in owners.items()
    }
    return MappingProxyType(members), MappingProxyType(above), size


def located(value: Any, line: int, column: int, depth: int = 3) -> LNode:
    """``value`` (plain data) as nodes all at one position, ``depth`` levels down: for a
    JSON data file, whose reader keeps the positions of top-level keys only."""
    if depth and isinstance(value, dict):
        items = {k: located(v, line, column, depth - 1) for k, v in value.items()}
        return LNode(items, line, column, keys={k: LNode(k, line, column) for k in value})
    if depth and isinstance(value, list):
        return LNode([located(v, line, column, depth - 1) for v in value], line, column)
    return LNode(value, line, column)
