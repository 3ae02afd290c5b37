"""What one decision-log entry holds, redaction, and the sink protocol."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from zerotrust.decision import Decision
from zerotrust.errors import ZeroTrustError
from zerotrust.request import AccessRequest

__all__ = ["REDACTED", "DecisionLog", "audit_record", "entry", "redaction_paths"]

REDACTED = "[REDACTED]"

# Where a redact path may start: a part of the request, the caller's extra, or any.
_HEADS = frozenset({"subject", "action", "resource", "device", "context", "extra", "*"})

Paths = tuple[tuple[str, ...], ...]


class DecisionLog(Protocol):
    """Receives every decision. ``emit`` may raise; the engine counts and logs failures."""

    def emit(
        self, decision: Decision, request: AccessRequest, extra: Mapping[str, Any]
    ) -> None: ...


def redaction_paths(redact: Iterable[str]) -> Paths:
    """Split and check dotted redact paths once, when a sink is built.

    A path starts with ``subject``, ``action``, ``resource``, ``device``, ``context``,
    ``extra`` or ``*``; a path that starts elsewhere would redact nothing, so a typo
    would store what it meant to hide: raises :class:`ZeroTrustError` instead.
    """
    if isinstance(redact, str | bytes):
        raise ZeroTrustError("redact must be a list of dotted paths, not one string")
    out: list[tuple[str, ...]] = []
    for path in redact:
        if type(path) is not str or not path:
            raise ZeroTrustError(f"redact paths must be non-empty strings, not {path!r}")
        parts = tuple(path.split("."))
        if "" in parts:
            raise ZeroTrustError(f"redact path {path!r} has an empty segment")
        if parts[0] not in _HEADS:
            heads = ", ".join(sorted(_HEADS))
            raise ZeroTrustError(f"redact path {path!r} must start with one of: {heads}")
        out.append(parts)
    return tuple(out)


def audit_record(
    decision: Decision,
    request: AccessRequest,
    *,
    redact: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON entry for one decision, as the built-in sinks write it.

    The whole request is kept (nothing dropped silently); ``redact`` names dotted
    paths such as ``subject.properties.email``, ``context.ip`` or ``extra.http.path``
    whose values are replaced by ``"[REDACTED]"`` (see :func:`entry`). ``extra`` adds
    caller context (e.g. HTTP route). The result is the caller's to change: it
    shares nothing with ``request``. Raises :class:`ZeroTrustError` for a bad path.
    """
    record = entry(decision, request, redaction_paths(redact), extra)
    record["request"] = _copy(record["request"])
    return record


def entry(
    decision: Decision,
    request: AccessRequest,
    paths: Paths,
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The entry, sharing unredacted parts of the request (sinks serialise it at once).

    Redaction copies only the dicts on a redacted path, so the request is never
    changed and an entry costs no deep copy. The ``subject``, ``action`` and
    ``resource`` summaries are read from the redacted request, so a path that hides
    ``subject.id`` (or ``subject.*``, or ``*.id``) hides them too. Every non-empty
    string a path hid is also hidden wherever it occurs inside the strings of
    ``extra`` (the web integrations' ``extra.http.path`` holds ``resource.id``),
    ``errors`` and ``report_only`` (an error message may quote the value).
    """
    req = request.to_dict()
    hidden: list[str] = []
    if paths:
        for parts in paths:
            if parts[0] != "extra":
                req = _redact(req, parts, hidden)
    subject, action, resource = req["subject"], req["action"], req["resource"]
    record: dict[str, Any] = {
        "decision_id": decision.decision_id,
        "time": decision.evaluated_at.isoformat(),
        "subject": {"type": _field(subject, "type"), "id": _field(subject, "id")},
        "action": _field(action, "name"),
        "resource": {"type": _field(resource, "type"), "id": _field(resource, "id")},
        "effect": decision.effect.value,
        "matched_rules": [r.rule for r in decision.reasons],
        "risk": decision.risk.to_dict(),
        "step_up": decision.step_up.to_dict() if decision.step_up else None,
        "obligations": [o.to_dict() for o in decision.obligations],
        "errors": [e.to_dict() for e in decision.errors],
        "report_only": [r.to_dict() for r in decision.report_only],
        "policy_revision": decision.policy_revision,
        "request": req,
    }
    if extra:
        more: Any = dict(extra)
        for parts in paths:
            if parts[0] in ("extra", "*"):
                more = _redact(more, parts[1:], hidden)
        record["extra"] = more
    if hidden:
        secrets = _secrets(hidden)
        for key in _SCRUBBED:
            if key in record:
                record[key] = _scrub(record[key], secrets)
    return record


# Entry fields whose text may quote request values: error messages ("cannot convert
# 'x' to int") and the caller's extra.
_SCRUBBED = ("errors", "report_only", "extra")


def _secrets(hidden: list[str]) -> list[str]:
    """The hidden strings as they may be quoted (raw, and as ``repr`` writes them),
    longest first so a longer secret is replaced before a shorter one inside it."""
    found = set()
    for text in hidden:
        if text and text != REDACTED:
            found.add(text)
            found.add(repr(text)[1:-1])
    found.discard("")
    return sorted(found, key=len, reverse=True)


def _field(part: Any, key: str) -> Any:
    """A summary field of the redacted request (the whole part may be redacted)."""
    return part.get(key) if type(part) is dict else REDACTED


def _redact(node: Any, parts: tuple[str, ...], hidden: list[str]) -> Any:
    """``node`` with the value at ``parts`` replaced (a copy where it changed)."""
    if not parts:
        _strings(node, hidden)
        return REDACTED
    if type(node) is not dict:
        return node  # paths do not descend into lists or scalars
    head, rest = parts[0], parts[1:]
    keys = list(node) if head == "*" else [head] if head in node else []
    if not keys:
        return node
    out = dict(node)
    for key in keys:
        out[key] = _redact(node[key], rest, hidden)
    return out


def _strings(node: Any, found: list[str]) -> None:
    """Collect the strings inside a value being hidden."""
    kind = type(node)
    if kind is str:
        found.append(node)
    elif kind is dict:
        for item in node.values():
            _strings(item, found)
    elif kind is list or kind is tuple:
        for item in node:
            _strings(item, found)


def _scrub(node: Any, secrets: list[str]) -> Any:
    """``node`` with every occurrence of each secret inside its strings replaced."""
    kind = type(node)
    if kind is str:
        for secret in secrets:
            if secret in node:
                node = node.replace(secret, REDACTED)
        return node
    if kind is dict:
        return {key: _scrub(item, secrets) for key, item in node.items()}
    if kind is list or kind is tuple:
        return [_scrub(item, secrets) for item in node]
    return node


def _copy(node: Any) -> Any:
    """A copy of plain JSON data (the request holds nothing else)."""
    kind = type(node)
    if kind is dict:
        return {key: _copy(item) for key, item in node.items()}
    if kind is list:
        return [_copy(item) for item in node]
    return node
