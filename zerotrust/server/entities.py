"""The entities the search APIs enumerate: subjects, resources and actions.

The policies decide; this module only lists the candidates. The same shape is read
from an ``--entities`` file or from the ``entities`` key of the policy data, so a
policy can look up attributes by id (``data.entities.subjects.user[subject.id]``)::

    subjects:                 # subject type -> id -> properties
      user:
        alice: {role: manager, department: Sales}
    resources:                # resource type -> id -> properties
      record:
        "101": {department: Legal, owner: alice}
    actions:                  # resource type (or "*" for every type) -> action names
      record: [view, edit, delete]
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs

from zerotrust.server.config import ServerConfigError, read_structured

__all__ = ["DATA_KEY", "Entities", "Entity", "entities_from_mapping", "load_entities"]

DATA_KEY = "entities"
_SECTIONS = frozenset({"subjects", "resources", "actions"})
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@attrs.frozen
class Entity:
    """One subject or resource that a search may return."""

    type: str
    id: str
    properties: Mapping[str, Any] = attrs.field(default=_EMPTY, hash=False)


@attrs.frozen
class Entities:
    """Candidates for the search APIs, in the order they were written."""

    subjects: Mapping[str, tuple[Entity, ...]] = attrs.field(default=_EMPTY, hash=False)
    resources: Mapping[str, tuple[Entity, ...]] = attrs.field(default=_EMPTY, hash=False)
    actions: Mapping[str, tuple[str, ...]] = attrs.field(default=_EMPTY, hash=False)

    def subjects_of(self, type_: str) -> tuple[Entity, ...]:
        return self.subjects.get(type_, ())

    def resources_of(self, type_: str) -> tuple[Entity, ...]:
        return self.resources.get(type_, ())

    def actions_for(self, resource_type: str) -> tuple[str, ...]:
        """Actions listed for this resource type, then those listed for every type."""
        names = list(self.actions.get(resource_type, ()))
        names += [n for n in self.actions.get("*", ()) if n not in names]
        return tuple(names)


def load_entities(path: str | Path) -> Entities:
    """Read an entities file (YAML, or JSON when it ends ``.json``)."""
    file = Path(path)
    raw = read_structured(file, "entities file")
    return entities_from_mapping(raw if raw is not None else {}, origin=str(file))


def entities_from_mapping(raw: Any, *, origin: str = "entities") -> Entities:
    """Validate the entities shape; report every problem at once."""
    problems: list[str] = []
    if not isinstance(raw, Mapping):
        raise ServerConfigError([f"{origin}: must be a mapping of subjects, resources, actions"])
    problems += [f"{origin}: unknown section {k!r}" for k in sorted(set(map(str, raw)) - _SECTIONS)]
    subjects = _typed(raw.get("subjects"), f"{origin}.subjects", problems)
    resources = _typed(raw.get("resources"), f"{origin}.resources", problems)
    actions = _actions(raw.get("actions"), f"{origin}.actions", problems)
    if problems:
        raise ServerConfigError(problems)
    return Entities(subjects=subjects, resources=resources, actions=actions)


def _typed(raw: Any, where: str, problems: list[str]) -> Mapping[str, tuple[Entity, ...]]:
    if raw is None:
        return _EMPTY
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must map a type to {{id: properties}}")
        return _EMPTY
    out: dict[str, tuple[Entity, ...]] = {}
    for type_, members in raw.items():
        if not isinstance(type_, str) or not type_:
            problems.append(f"{where}: type {type_!r} must be a non-empty string")
            continue
        members = {} if members is None else members  # noqa: PLW2901
        if not isinstance(members, Mapping):
            problems.append(f"{where}.{type_}: must map an id to its properties")
            continue
        found: list[Entity] = []
        for id_, props in members.items():
            if not isinstance(id_, str) or not id_:
                # YAML reads 101: as a number, which would never equal the string id a
                # PEP sends, so a lookup in the policy would silently miss: refuse it.
                problems.append(f"{where}.{type_}: id {id_!r} must be a string (quote it)")
                continue
            props = {} if props is None else props  # noqa: PLW2901
            if not isinstance(props, Mapping):
                problems.append(f"{where}.{type_}.{id_}: properties must be a mapping")
                continue
            found.append(Entity(type_, id_, MappingProxyType(dict(props))))
        out[type_] = tuple(found)
    return MappingProxyType(out)


def _actions(raw: Any, where: str, problems: list[str]) -> Mapping[str, tuple[str, ...]]:
    if raw is None:
        return _EMPTY
    if isinstance(raw, list):
        raw = {"*": raw}
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must map a resource type (or '*') to action names")
        return _EMPTY
    out: dict[str, tuple[str, ...]] = {}
    for type_, names in raw.items():
        if not isinstance(type_, str) or not type_:
            problems.append(f"{where}: resource type {type_!r} must be a non-empty string")
            continue
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            problems.append(f"{where}.{type_}: must be a list of action names")
            continue
        out[type_] = tuple(dict.fromkeys(names))
    return MappingProxyType(out)
