"""Caller input: one data-access request, validated before any policy sees it.

Subject, action and resource follow the OpenID AuthZEN 1.0 information model;
``device`` and ``context`` are free-form JSON objects. Validation copies every
value, so a caller mutating its dicts later cannot change a request in flight.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from zerotrust._describe import describe
from zerotrust.errors import RequestError

__all__ = ["AccessRequest", "Action", "Resource", "Subject"]

MAX_DEPTH = 32
MAX_VALUES = 10_000

_TOP_KEYS = frozenset({"subject", "action", "resource", "device", "context"})
_SUBJECT_KEYS = frozenset({"type", "id", "properties"})
_ACTION_KEYS = frozenset({"name", "properties"})
_RESOURCE_KEYS = frozenset({"type", "id", "properties"})


@attrs.frozen
class Subject:
    """Who is asking. ``properties`` carry claims such as roles, department, ``amr``."""

    id: str
    type: str = "user"
    properties: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "id": self.id, "properties": dict(self.properties)}


@attrs.frozen
class Action:
    """What is being done, e.g. ``read`` or ``export``."""

    name: str
    properties: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "properties": dict(self.properties)}


@attrs.frozen
class Resource:
    """What it is done to. ``type`` selects the applicable policies; ``id`` may be absent."""

    type: str
    id: str | None = None
    properties: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "id": self.id, "properties": dict(self.properties)}


@attrs.frozen
class AccessRequest:
    """A validated request. Build one with :meth:`from_mapping`."""

    subject: Subject
    action: Action
    resource: Resource
    device: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    context: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    @classmethod
    def from_mapping(cls, data: Any) -> AccessRequest:
        """Validate a JSON-shaped mapping; raise :class:`RequestError` naming the bad field."""
        if isinstance(data, AccessRequest):
            return data
        if not isinstance(data, Mapping):
            raise RequestError("request", f"must be an object, not {_kind(data)}")
        try:
            clean = _copy_fast(data, 0, [MAX_VALUES - 1])
        except _NotPlain:
            # Something is off (or merely unusual, like a Mapping subclass): take the
            # slow walk, which names the offending field or copies what is valid.
            clean = _copy_json(data, "request", 0, _Counter())
        unknown = sorted(set(clean) - _TOP_KEYS)
        if unknown:
            raise RequestError(unknown[0], f"unknown top-level key (allowed: {_names(_TOP_KEYS)})")

        subject = _section(clean, "subject", _SUBJECT_KEYS)
        action = _section(clean, "action", _ACTION_KEYS)
        resource = _section(clean, "resource", _RESOURCE_KEYS)
        return cls(
            subject=Subject(
                id=_required_str(subject, "subject.id"),
                type=_optional_str(subject, "subject.type", "user"),
                properties=_properties(subject, "subject.properties"),
            ),
            action=Action(
                name=_required_str(action, "action.name"),
                properties=_properties(action, "action.properties"),
            ),
            resource=Resource(
                type=_required_str(resource, "resource.type"),
                id=_optional_id(resource),
                properties=_properties(resource, "resource.properties"),
            ),
            device=_free_map(clean, "device"),
            context=_free_map(clean, "context"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The request as the JSON the CEL conditions see."""
        return {
            "subject": self.subject.to_dict(),
            "action": self.action.to_dict(),
            "resource": self.resource.to_dict(),
            "device": dict(self.device),
            "context": dict(self.context),
        }


class _Counter:
    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


class _NotPlain(Exception):
    """Internal: the fast copy met something it does not vouch for."""


_PLAIN = (str, bool, type(None))
# CEL integers are 64-bit: larger ones would overflow in conditions, so refuse them here.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _copy_fast(value: Any, depth: int, budget: list[int]) -> Any:
    """Copy plain dict/list/str/int/float/bool/None data, counting values by container size.

    It accepts only what :func:`_copy_json` accepts; anything else (including what
    is merely unusual) raises :class:`_NotPlain` so the slow walk decides.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is int:
        if INT64_MIN <= value <= INT64_MAX:
            return value
        raise _NotPlain
    if kind is float:
        if value - value != 0.0:  # NaN or infinity
            raise _NotPlain
        return value
    if depth >= MAX_DEPTH:
        raise _NotPlain
    if kind is dict:
        budget[0] -= len(value)
        if budget[0] < 0:
            raise _NotPlain
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            out[key] = item if type(item) in _PLAIN else _copy_fast(item, depth + 1, budget)
        return out
    if kind is list or kind is tuple:
        budget[0] -= len(value)
        if budget[0] < 0:
            raise _NotPlain
        return [
            item if type(item) in _PLAIN else _copy_fast(item, depth + 1, budget) for item in value
        ]
    raise _NotPlain


def _copy_json(value: Any, path: str, depth: int, counter: _Counter) -> Any:
    """Deep-copy a JSON value, refusing anything JSON cannot carry."""
    counter.n += 1
    if counter.n > MAX_VALUES:
        raise RequestError(path, f"request holds more than {MAX_VALUES} values")
    if depth > MAX_DEPTH:
        raise RequestError(path, f"nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise RequestError(path, "integer outside the 64-bit range")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RequestError(path, "not a JSON number (NaN or infinity)")
        return float(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise RequestError(path, f"object keys must be strings, found {_kind(key)}")
            out[key] = _copy_json(
                item, f"{path}.{key}" if path != "request" else key, depth + 1, counter
            )
        return out
    if isinstance(value, list | tuple):
        return [
            _copy_json(item, f"{path}[{i}]", depth + 1, counter) for i, item in enumerate(value)
        ]
    raise RequestError(path, f"not a JSON value ({_kind(value)})")


def _section(data: dict[str, Any], name: str, allowed: frozenset[str]) -> dict[str, Any]:
    if name not in data:
        raise RequestError(name, "is required")
    section = data[name]
    if not isinstance(section, dict):
        raise RequestError(name, f"must be an object, not {_kind(section)}")
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise RequestError(f"{name}.{unknown[0]}", f"unknown key (allowed: {_names(allowed)})")
    return section


def _required_str(section: dict[str, Any], path: str) -> str:
    key = path.rsplit(".", 1)[1]
    if key not in section:
        raise RequestError(path, "is required")
    value = section[key]
    if not isinstance(value, str):
        raise RequestError(path, f"must be a string, not {_kind(value)}")
    if not value:
        raise RequestError(path, "must not be empty")
    return value


def _optional_str(section: dict[str, Any], path: str, default: str) -> str:
    key = path.rsplit(".", 1)[1]
    if section.get(key) is None:
        return default
    return _required_str(section, path)


def _optional_id(section: dict[str, Any]) -> str | None:
    value = section.get("id")
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError("resource.id", f"must be a string, not {_kind(value)}")
    if not value:
        raise RequestError("resource.id", "must not be empty (leave it out instead)")
    return value


def _properties(section: dict[str, Any], path: str) -> dict[str, Any]:
    value = section.get("properties")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(path, f"must be an object, not {_kind(value)}")
    return value


def _free_map(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(name, f"must be an object, not {_kind(value)}")
    return value


_kind = describe


def _names(keys: frozenset[str]) -> str:
    return ", ".join(sorted(keys))
