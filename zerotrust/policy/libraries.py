"""Condition libraries: variables and derived roles declared once, imported by policies.

A library is a document of its own (``library: <name>``), set-wide like action groups.
A policy that lists it under ``imports:`` reads its variables as ``variables.<name>``
and its derived roles as ``derived_roles.<name>``. Both are inlined at load through the
policy variables' machinery (:mod:`zerotrust.policy.variables`), so an import costs a
decision nothing, and each piece of an inlined text still knows the library file and
position it was written at. A derived role is the condition "the subject holds one of
its parent roles, and its ``when`` holds", written so that it never errors on a request
without roles.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from zerotrust._describe import describe
from zerotrust.errors import Diagnostic
from zerotrust.obligations import did_you_mean
from zerotrust.policy.action_groups import _CEL_WORDS
from zerotrust.policy.located import LNode
from zerotrust.policy.model import CelSource, Inlined, InlinedPiece, VariableSpec
from zerotrust.policy.positions import first_declared
from zerotrust.policy.variables import (
    ROLES,
    VARIABLE_NAME,
    PolicyVariables,
    described,
    read_variables,
)

__all__ = [
    "DOCUMENT_KEY",
    "IMPORTS_KEY",
    "Checker",
    "ImportScope",
    "Libraries",
    "LibrarySpec",
    "RoleSpec",
    "is_library",
    "own_clashes",
    "read_library",
    "resolve_libraries",
    "resolve_library_documents",
]

DOCUMENT_KEY = "library"
IMPORTS_KEY = "imports"
LIBRARY_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*\Z")
_KEYS = (DOCUMENT_KEY, "description", "variables", ROLES)
_ROLE_KEYS = ("parent_roles", "when", "description")
#: Where a derived role finds the subject's roles.
ROLES_PATH = "subject.properties.roles"
#: Checks named expressions' CEL, reporting into the list; the names that fail.
Checker = Callable[[list[VariableSpec], list[Diagnostic]], frozenset[str]]


@attrs.frozen
class RoleSpec:
    """A derived role as written: parent roles (any one suffices; none: no role needed)
    and its ``when``; where its name is written."""

    name: str
    parent_roles: tuple[str, ...]
    when: CelSource | None
    line: int
    column: int


@attrs.frozen
class LibrarySpec:
    """A library document; ``refused`` when it has a structural problem (its name is
    still known, so an import of it is not reported as unknown too)."""

    name: str
    variables: tuple[VariableSpec, ...]
    roles: tuple[RoleSpec, ...]
    file: str
    line: int
    column: int
    refused: bool = False
    raw: Any = attrs.field(default=None, eq=False, repr=False)
    #: A variable was refused as written: a name read but not declared may be that one.
    partial: bool = False


@attrs.frozen
class ImportScope:
    """What one policy's imports give it: the names it may read, already inlined (None:
    refused in its library), the names other libraries hold (for hints)."""

    names: tuple[str, ...] = ()
    items: Mapping[str, Inlined | None] = attrs.field(factory=dict)
    elsewhere: Mapping[str, str] = attrs.field(factory=dict)
    #: Where each imported name is defined (library, file, line, column).
    defined: Mapping[str, tuple[str, str, int, int]] = attrs.field(factory=dict)
    #: An import names an unknown library, or one refused for its own problems.
    failed: bool = False


@attrs.frozen
class _Library:
    spec: LibrarySpec
    items: Mapping[str, Inlined | None]


@attrs.frozen
class Libraries:
    """The set's libraries, resolved, by name."""

    by_name: Mapping[str, _Library] = attrs.field(factory=dict)
    #: Every library name declared, even when the library was refused.
    names: frozenset[str] = frozenset()

    @property
    def files(self) -> frozenset[str]:
        return frozenset(lib.spec.file for lib in self.by_name.values())

    def meaning(self) -> list[Any]:
        """The libraries as written, in a stable order (for the set's revision)."""
        return [self.by_name[name].spec.raw for name in sorted(self.by_name)]

    def scope(
        self, node: LNode | None, file: str, policy: str | None
    ) -> tuple[ImportScope, list[Diagnostic]]:
        """Read a policy's ``imports:`` and gather what it may read."""
        problems: list[Diagnostic] = []

        def add(at: LNode, message: str) -> None:
            problems.append(Diagnostic(file, at.line, at.column, message, policy))

        names: list[str] = []
        failed = False
        items = [] if node is None or node.value is None else node.value
        if not isinstance(items, list):
            add(
                node or LNode(None, 0, 0),
                f"imports must be a list of library names, not {_kind(items)}",
            )
            items, failed = [], True
        for item in items:
            name = item.value
            if not isinstance(name, str) or not name:
                add(item, f"imports entries must be library names, not {_kind(name)}")
                failed = True
            elif name in names:
                add(item, f"library {name!r} is imported twice")
            elif name not in self.names:
                hint = did_you_mean(name, self.names) if self.names else ""
                none = "" if self.names else " (no library is declared in the policy set)"
                add(item, f"unknown library {name!r}{hint}{none}")
                failed = True
            else:
                names.append(name)
                failed = failed or name not in self.by_name
        found: dict[str, Inlined | None] = {}
        defined: dict[str, tuple[str, str, int, int]] = {}
        for name in names:
            library = self.by_name.get(name)
            if library is None:
                continue
            for key, inlined in library.items.items():
                where = _definition(library.spec, key)
                first = defined.get(key)
                if first is not None:
                    problems.extend(_clash(key, first, where, policy))
                    continue
                found[key] = inlined
                defined[key] = where
        elsewhere = {
            key: lib.spec.name
            for lib in self.by_name.values()
            if lib.spec.name not in names
            for key in lib.items
        }
        return ImportScope(tuple(names), found, elsewhere, defined, failed), problems


def _kind(value: Any) -> str:
    return describe(value, mapping="a mapping", sequence="a list")


def _definition(spec: LibrarySpec, key: str) -> tuple[str, str, int, int]:
    for variable in spec.variables:
        if variable.name == key:
            return spec.name, spec.file, variable.line, variable.column
    short = key[len(ROLES) + 1 :]
    role = next(r for r in spec.roles if r.name == short)
    return spec.name, spec.file, role.line, role.column


def _clash(
    key: str,
    first: tuple[str, str, int, int],
    second: tuple[str, str, int, int],
    policy: str | None,
) -> list[Diagnostic]:
    """A name two imports (or the policy and an import) both give: at both definitions."""
    one, two = described(key, first[0] or None), described(key, second[0] or None)
    return [
        Diagnostic(
            second[1],
            second[2],
            second[3],
            f"{two} clashes with {one} ({first[1]}:{first[2]}:{first[3]}) in policy "
            f"{policy!r}, which reads both: rename one",
        ),
        Diagnostic(
            first[1],
            first[2],
            first[3],
            f"{one} clashes with {two} ({second[1]}:{second[2]}:{second[3]}) in policy "
            f"{policy!r}, which reads both: rename one",
        ),
    ]


def own_clashes(
    scope: ImportScope, variables: Iterable[VariableSpec], file: str, policy: str | None
) -> list[Diagnostic]:
    """A policy's own variables that an import also declares: at both definitions."""
    found: list[Diagnostic] = []
    for variable in variables:
        other = scope.defined.get(variable.name)
        if other is not None:
            own = ("", file, variable.line, variable.column)
            at_own, at_library = _clash(variable.name, other, own, policy)
            found.extend((attrs.evolve(at_own, policy=policy), at_library))
    return found


def is_library(doc: LNode) -> bool:
    """Whether a document declares a library (and is not a policy)."""
    return isinstance(doc.value, dict) and DOCUMENT_KEY in doc.value and "policy" not in doc.value


def read_library(doc: LNode, file: str) -> tuple[LibrarySpec | None, list[Diagnostic]]:
    """A library document's declarations, with every structural problem in it."""
    problems: list[Diagnostic] = []

    def add(at: LNode, message: str) -> None:
        problems.append(Diagnostic(file, at.line, at.column, message))

    fields: dict[str, LNode] = doc.value
    keys = doc.keys or {}
    for key in fields:
        if key not in _KEYS:
            add(
                keys.get(key, doc),
                f"unknown key {key!r} in a library{did_you_mean(key, _KEYS)} "
                f"(allowed: {', '.join(_KEYS)})",
            )
    name_node = fields[DOCUMENT_KEY]
    name = name_node.value
    if not isinstance(name, str) or not LIBRARY_NAME.match(name):
        # (the rest is still read: every problem of the library at once)
        add(name_node, f"library name {name!r} must match [a-z0-9][a-z0-9._-]*")
    description = fields.get("description")
    if description is not None and not isinstance(description.value, str | None):
        add(description, f"description must be a string, not {_kind(description.value)}")
    found, more = read_variables(fields.get("variables"), file, None)
    problems.extend(more)
    partial = bool(more)
    roles = _roles(fields.get(ROLES), file, add)
    if not found and not roles and not problems:
        add(doc, f"library {name!r} declares nothing: give it variables or {ROLES}")
    if not isinstance(name, str):
        return None, problems
    spec = LibrarySpec(
        name,
        tuple(found.values()),
        roles,
        file,
        name_node.line,
        name_node.column,
        bool(problems),
        doc.plain(),
        partial,
    )
    return spec, problems


def _roles(node: LNode | None, file: str, add: Any) -> tuple[RoleSpec, ...]:
    if node is None or node.value is None:
        return ()
    if not isinstance(node.value, dict):
        add(
            node, f"{ROLES} must be a mapping of role names to definitions, not {_kind(node.value)}"
        )
        return ()
    keys = node.keys or {}
    roles: list[RoleSpec] = []
    for name, item in node.value.items():
        at = keys.get(name) or item
        if not isinstance(name, str) or not VARIABLE_NAME.match(name) or name in _CEL_WORDS:
            add(
                at,
                f"derived role name {name!r} must be a CEL identifier ([A-Za-z_][A-Za-z0-9_]*, "
                f"not a reserved word): it is read as {ROLES}.<name>",
            )
            continue
        if not isinstance(item.value, dict):
            add(
                item,
                f"derived role {name!r} must be a mapping (parent_roles, when), "
                f"not {_kind(item.value)}",
            )
            continue
        item_keys = item.keys or {}
        for key in item.value:
            if key not in _ROLE_KEYS:
                add(
                    item_keys.get(key, item),
                    f"unknown key {key!r} in derived role {name!r}"
                    f"{did_you_mean(key, _ROLE_KEYS)} (allowed: {', '.join(_ROLE_KEYS)})",
                )
        parents = _parent_roles(item.value.get("parent_roles"), name, add)
        when_node = item.value.get("when")
        when = None
        if when_node is not None:
            if not isinstance(when_node.value, str):
                hint = ' (quote it: "true")' if isinstance(when_node.value, bool) else ""
                add(when_node, f"derived role {name!r}: when must be a CEL expression string{hint}")
                continue
            w = when_node
            when = CelSource(w.value, file, w.line, w.column, w.style, w.raw)
        if parents is None:
            if when is not None:  # (the library is refused; its when is still checked)
                roles.append(RoleSpec(name, (), when, at.line, at.column))
            continue
        if not parents and when is None:
            add(at, f"derived role {name!r} needs parent_roles, a when, or both")
            continue
        roles.append(RoleSpec(name, parents, when, at.line, at.column))
    return tuple(roles)


def _parent_roles(node: LNode | None, role: str, add: Any) -> tuple[str, ...] | None:
    if node is None or node.value is None:
        return ()
    items = node.value if isinstance(node.value, list) else None
    if not items:
        shown = "an empty list" if items == [] else _kind(node.value)
        add(node, f"derived role {role!r}: parent_roles must be a list of role names, not {shown}")
        return None
    names: list[str] = []
    for item in items:
        if not isinstance(item.value, str) or not item.value:
            shown = "an empty string" if item.value == "" else _kind(item.value)
            add(
                item, f"derived role {role!r}: parent_roles entries must be role names, not {shown}"
            )
            return None
        if item.value == "*":
            add(
                item,
                f"derived role {role!r}: parent_roles lists role names, and '*' is not a "
                "wildcard: leave parent_roles out for any subject, or list the roles",
            )
            return None
        names.append(item.value)
    return tuple(dict.fromkeys(names))


def resolve_library_documents(
    documents: Iterable[tuple[str, LNode]], check: Checker | None = None
) -> tuple[Libraries, list[Diagnostic]]:
    """Read every library document among ``documents`` (file, document) and resolve them;
    without ``check`` their CEL is not checked (for tools reading a set that loaded)."""
    specs: list[LibrarySpec] = []
    problems: list[Diagnostic] = []
    for file, doc in documents:
        if is_library(doc):
            spec, found = read_library(doc, file)
            problems.extend(found)
            if spec is not None:
                specs.append(spec)
    libraries, found = resolve_libraries(specs, check)
    return libraries, problems + found


def resolve_libraries(
    specs: Iterable[LibrarySpec], check: Checker | None = None
) -> tuple[Libraries, list[Diagnostic]]:
    """Inline each library's variables into its variables and roles and check their CEL
    once, at the library; refuses a library defined twice (naming the first)."""
    declared, problems = first_declared(specs, "library")
    resolved: dict[str, _Library] = {}
    for spec in declared.values():
        own = {v.name: v for v in spec.variables}
        others = {
            v.name: other.name
            for other in declared.values()
            if other is not spec
            for v in other.variables
        }
        variables = PolicyVariables(
            own, None, library=spec.name, elsewhere=others, incomplete=spec.partial
        )
        items = {name: variables.inlined(name) for name in own}
        # A role's when is checked as a condition is: it must be a boolean.
        checked = [_checked(name, inlined) for name, inlined in items.items() if inlined]
        for role in spec.roles:
            key = f"{ROLES}.{role.name}"
            when = None if role.when is None else variables.inline_as(role.when, key)
            items[key] = None if role.when is not None and when is None else _role(role, spec, when)
            if when is not None:
                checked.append(_checked(key, when))
        problems.extend(variables.diagnostics)
        broken = frozenset() if check is None else check(checked, problems)
        kept = {key: None if key in broken else inlined for key, inlined in items.items()}
        if not spec.refused:  # (a refused one is still checked: every problem at once)
            resolved[spec.name] = _Library(spec, kept)
    return Libraries(resolved, frozenset(declared)), problems


def _checked(key: str, inlined: Inlined) -> VariableSpec:
    return VariableSpec(key, attrs.evolve(inlined.pieces[0].source, inlined=inlined), 0, 0)


def _role(role: RoleSpec, spec: LibrarySpec, when: Inlined | None) -> Inlined:
    """The role's condition: ``(<has one parent role>) && (<when>)``, either part
    left out when the role has none (``when`` is its when, inlined)."""
    key = f"{ROLES}.{role.name}"
    anchor = role.when or CelSource(role.name, spec.file, role.line, role.column)
    text = ""
    pieces: list[InlinedPiece] = []

    def synthetic(chunk: str) -> None:
        nonlocal text
        start = len(text)
        text += chunk
        pieces.append(InlinedPiece(start, len(text), anchor, 0, False, key, None, spec.name))

    if role.parent_roles:
        listed = ", ".join(json.dumps(name, ensure_ascii=False) for name in role.parent_roles)
        # Never an error: no roles, or roles that are not a list, hold no parent role.
        synthetic(
            f"(has({ROLES_PATH}) && type({ROLES_PATH}) == list && "
            f"{ROLES_PATH}.exists(r, r in [{listed}]))"
        )
        if when is not None:
            synthetic(" && ")
    if when is not None:
        synthetic("(")
        shift = len(text)
        pieces.extend(
            attrs.evolve(p, start=p.start + shift, end=p.end + shift) for p in when.pieces
        )
        text += when.text
        synthetic(")")
    variables_read = when.variables if when is not None else frozenset()
    values = when.values if when is not None else ()
    return Inlined(text, tuple(pieces), variables_read, values)
