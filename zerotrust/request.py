"""Caller input: one data-access request, validated before any policy sees it.

Subject, action and resource follow the OpenID AuthZEN 1.0 information model;
``device`` and ``context`` are free-form JSON objects. Validation copies every
value into exact ``dict``/``list``/``str``/``int``/``float``/``bool``/``None``, so a
caller mutating its dicts later cannot change a request in flight, and a condition
never meets a caller's subclass (a ``str`` whose ``__eq__`` always says yes) or a
string that is not valid Unicode.

A validated request is read-only all the way down: the PDP trusts it without copying
it again, and hands the same object to the web integrations (``access_request_of``,
``current_request``) and to ``record_access``, so nobody holding it can change what
a later decision trusts. Its maps and lists read as ``dict`` and ``list`` (``==``,
``isinstance``, ``json.dumps``) and raise ``TypeError`` on any change; the conditions,
the behaviour stores and the decision log read a private plain copy (exact
``dict``/``list``, the compiled CEL's fast paths). The read-only fields are made from
that copy the first time something reads them, so a decision whose caller only reads
the answer copies the request once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from zerotrust._describe import describe
from zerotrust._plain import (
    INT64_MAX,
    INT64_MIN,
    MAX_VALUES,
    NotPlain,
    plain_copy,
    plain_mapping,
    plain_object,
    raised,
    shown,
)
from zerotrust.errors import RequestError

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "AccessRequest",
    "Action",
    "Resource",
    "Subject",
    "plain_mapping",
    "request_variables",
    "validated_variables",
]

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
        return {"type": self.type, "id": self.id, "properties": plain_copy(self.properties)}


@attrs.frozen
class Action:
    """What is being done, e.g. ``read`` or ``export``."""

    name: str
    properties: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "properties": plain_copy(self.properties)}


@attrs.frozen
class Resource:
    """What it is done to. ``type`` selects the applicable policies; ``id`` may be absent."""

    type: str
    id: str | None = None
    properties: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "id": self.id, "properties": plain_copy(self.properties)}


@attrs.frozen
class AccessRequest:
    """A validated request. Build one with :meth:`from_mapping`."""

    subject: Subject
    action: Action
    resource: Resource
    device: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    context: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    # Set only by from_mapping: the plain data the conditions see, private (the
    # public fields are read-only copies of it). A request built by hand (or by
    # attrs.evolve) has none and is validated again before any policy sees it.
    _variables: dict[str, Any] | None = attrs.field(default=None, init=False, repr=False, eq=False)

    @classmethod
    def from_mapping(cls, data: Any) -> AccessRequest:
        """Validate a JSON-shaped mapping into a read-only request of plain JSON values.

        Subclasses of ``str``/``int``/``float``/``dict``/``list`` (an ``enum.StrEnum``
        member, say) are copied as their underlying data without calling any method
        they override. Raises :class:`RequestError` naming the bad field for anything
        else: a value JSON cannot carry, an integer outside 64 bits, NaN or infinity,
        a string holding a lone surrogate, a mapping whose own code raises, more than
        ``MAX_VALUES`` values or nesting deeper than ``MAX_DEPTH``.

        A request this method made is returned as it is (it cannot have changed);
        one built by hand or by ``attrs.evolve`` is validated like a mapping.
        """
        if type(data) is AccessRequest:
            if data._variables is not None:
                return data
            data = _read_fields(data)
        elif type(data) is dict:
            try:
                return _build(cls, data)  # the usual case: checked and copied in one pass
            except Exception:  # something is off, or merely unusual (a subclass, a
                pass  # lone surrogate): the checked walk below decides, and names it
        clean = plain_mapping(data)  # RequestError naming a value JSON cannot carry
        try:
            return _build(cls, clean)
        except NotPlain:
            _name_the_fault(clean)  # RequestError naming what is out of shape
            raise RequestError("request", "is not a valid request") from None

    if not TYPE_CHECKING:  # (a typed __getattr__ would make every typo an Any to mypy)

        def __getattr__(self, name: str) -> Any:
            # A request made by from_mapping shows its data in read-only copies built
            # on first read: the decision itself reads only the plain data, so a PDP
            # whose callers never look pays for one copy, not two.
            if name in _SHOWN:
                variables = object.__getattribute__(self, "_variables")
                if variables is not None:
                    _show(self, variables)
                    return object.__getattribute__(self, name)
            raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        """The request as the JSON the CEL conditions see: plain data, the caller's
        to change (a copy; the request itself is read-only)."""
        if self._variables is not None:
            return plain_copy(self._variables)  # type: ignore[no-any-return]
        return {
            "subject": self.subject.to_dict(),
            "action": self.action.to_dict(),
            "resource": self.resource.to_dict(),
            "device": plain_copy(self.device),
            "context": plain_copy(self.context),
        }


def validated_variables(request: AccessRequest) -> dict[str, Any] | None:
    """The plain data of a request made by :meth:`AccessRequest.from_mapping` (shared,
    only to be read: what :func:`request_variables` returns), or None for one built
    by hand. For readers on the decision's path that must not validate again."""
    return request._variables


def request_variables(request: AccessRequest) -> dict[str, Any]:
    """``{"subject": …, "action": …, "resource": …, "device": …, "context": …}`` as the
    conditions see them: exact ``dict``/``list`` data, validated.

    Shared with the request (no copy per decision): the caller only reads it. A request
    not made by :meth:`AccessRequest.from_mapping` is validated first (so
    :class:`RequestError` for what it cannot hold).
    """
    variables = AccessRequest.from_mapping(request)._variables
    if variables is None:  # pragma: no cover - from_mapping always sets it
        raise RequestError("request", "was not validated")
    return variables


def _read_fields(request: AccessRequest) -> Any:
    """The fields of a request built by hand, as a mapping for the slow walk."""
    try:
        s, a, r = request.subject, request.action, request.resource
        return {
            "subject": {"type": s.type, "id": s.id, "properties": s.properties},
            "action": {"name": a.name, "properties": a.properties},
            "resource": {"type": r.type, "id": r.id, "properties": r.properties},
            "device": request.device,
            "context": request.context,
        }
    except Exception as exc:
        raise RequestError("request", f"could not be read ({raised(exc)})") from exc


def _build(cls: type[AccessRequest], data: dict[str, Any]) -> AccessRequest:
    """The request in ``data`` if that is exact plain data of the right shape.

    One pass checks it and makes the plain copy the conditions see (the read-only
    fields are made from it on first read: ``_show``). Keys are proved exact ``str`` before any
    lookup, so no caller's ``__hash__`` or ``__eq__`` runs. Raises :class:`NotPlain`
    (or, on a caller's data, another exception: see ``plain_object``) for anything
    else; :meth:`AccessRequest.from_mapping` then names what is wrong.
    """
    _fields(data, _TOP_KEYS)
    subject = _fields(data.get("subject"), _SUBJECT_KEYS)
    action = _fields(data.get("action"), _ACTION_KEYS)
    resource = _fields(data.get("resource"), _RESOURCE_KEYS)
    budget = [MAX_VALUES - 1 - len(data) - len(subject) - len(action) - len(resource)]
    subject_id = _text(subject.get("id"))
    subject_type = subject.get("type")
    subject_type = "user" if subject_type is None else _text(subject_type)
    action_name = _text(action.get("name"))
    resource_type = _text(resource.get("type"))
    resource_id = resource.get("id")
    if resource_id is not None:
        resource_id = _text(resource_id)
    variables = {
        "subject": {
            "type": subject_type,
            "id": subject_id,
            "properties": plain_object(subject.get("properties"), 2, budget),
        },
        "action": {
            "name": action_name,
            "properties": plain_object(action.get("properties"), 2, budget),
        },
        "resource": {
            "type": resource_type,
            "id": resource_id,
            "properties": plain_object(resource.get("properties"), 2, budget),
        },
        "device": plain_object(data.get("device"), 1, budget),
        "context": plain_object(data.get("context"), 1, budget),
    }
    request: AccessRequest = object.__new__(cls)  # its read-only fields come on first read
    object.__setattr__(request, "_variables", variables)  # frozen: set once, here
    return request


_SHOWN = frozenset({"subject", "action", "resource", "device", "context"})


def _show(request: AccessRequest, variables: dict[str, Any]) -> None:
    """Set the read-only fields of a request made by ``_build`` from its plain data."""
    subject, action, resource = variables["subject"], variables["action"], variables["resource"]
    fields = (
        ("subject", Subject(subject["id"], subject["type"], shown(subject["properties"]))),
        ("action", Action(action["name"], shown(action["properties"]))),
        ("resource", Resource(resource["type"], resource["id"], shown(resource["properties"]))),
        ("device", shown(variables["device"])),
        ("context", shown(variables["context"])),
    )
    for name, value in fields:
        object.__setattr__(request, name, value)


def _fields(section: Any, allowed: frozenset[str]) -> dict[str, Any]:
    """``section`` if it is a ``dict`` whose keys are exact strings among ``allowed``."""
    if type(section) is not dict:
        raise NotPlain
    for key in section:
        if type(key) is not str or key not in allowed:
            raise NotPlain
    return section


def _text(value: Any) -> str:
    """A non-empty string that is valid Unicode."""
    if type(value) is not str or not value:
        raise NotPlain
    if not value.isascii():
        value.encode()  # UnicodeEncodeError for a lone surrogate
    return value


def _name_the_fault(clean: dict[str, Any]) -> None:
    """Raise the :class:`RequestError` naming the first field of ``clean`` (plain
    data) that is out of shape, in the order the fields are read."""
    if not _TOP_KEYS.issuperset(clean):
        unknown = sorted(set(clean) - _TOP_KEYS)[0]
        raise RequestError(unknown, f"unknown top-level key (allowed: {_names(_TOP_KEYS)})")
    subject = _section(clean, "subject", _SUBJECT_KEYS)
    action = _section(clean, "action", _ACTION_KEYS)
    resource = _section(clean, "resource", _RESOURCE_KEYS)
    if subject.get("type") is not None:
        _required_str(subject, "subject", "type")
    _required_str(subject, "subject", "id")
    _required_str(action, "action", "name")
    _required_str(resource, "resource", "type")
    _optional_id(resource)
    _optional_object(subject.get("properties"), "subject.properties")
    _optional_object(action.get("properties"), "action.properties")
    _optional_object(resource.get("properties"), "resource.properties")
    _optional_object(clean.get("device"), "device")
    _optional_object(clean.get("context"), "context")


def _section(data: dict[str, Any], name: str, allowed: frozenset[str]) -> dict[str, Any]:
    if name not in data:
        raise RequestError(name, "is required")
    section = data[name]
    if type(section) is not dict:
        raise RequestError(name, f"must be an object, not {_kind(section)}")
    if not allowed.issuperset(section):
        unknown = sorted(set(section) - allowed)[0]
        raise RequestError(f"{name}.{unknown}", f"unknown key (allowed: {_names(allowed)})")
    return section


def _required_str(section: dict[str, Any], name: str, key: str) -> None:
    value = section.get(key)
    path = f"{name}.{key}"
    if value is None:
        raise RequestError(path, "is required")
    if type(value) is not str:
        raise RequestError(path, f"must be a string, not {_kind(value)}")
    if not value:
        raise RequestError(path, "must not be empty")


def _optional_id(section: dict[str, Any]) -> None:
    value = section.get("id")
    if value is not None and type(value) is not str:
        raise RequestError("resource.id", f"must be a string, not {_kind(value)}")
    if value == "":
        raise RequestError("resource.id", "must not be empty (leave it out instead)")


def _optional_object(value: Any, path: str) -> None:
    if value is not None and type(value) is not dict:
        raise RequestError(path, f"must be an object, not {_kind(value)}")


_kind = describe


def _names(keys: frozenset[str]) -> str:
    return ", ".join(sorted(keys))
