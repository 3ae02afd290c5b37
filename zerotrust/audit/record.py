"""What one decision-log entry holds, redaction, and the sink protocol."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import attrs

from zerotrust._describe import hider
from zerotrust._plain import plain_json
from zerotrust.decision import Decision, plain_behavior, plan_of
from zerotrust.errors import ZeroTrustError
from zerotrust.request import AccessRequest, request_variables

__all__ = ["REDACTED", "DecisionLog", "audit_record", "entry", "redaction_paths"]

REDACTED = "[REDACTED]"

# Where a redact path may start: a part of the request, the caller's extra, the
# behaviour features the decision used, or any.
_HEADS = frozenset({"subject", "action", "resource", "device", "context", "extra", "behavior", "*"})
# The heads that are not parts of the request (each applied to its own map).
_OWN = frozenset({"extra", "behavior"})

# One step of a redact path after its head: ``.name``, ``.*`` or ``["exact key"]``.
_STEP = re.compile(r'\.([^.\[\]"]+)|\[("(?:[^"\\]|\\.)*")\]')
_HEAD = re.compile(r'[^.\[\]"]+')


@attrs.frozen
class _Step:
    """One step of a redact path: ``name`` (may join the next names with dots to
    match a key holding dots), ``any`` (``*``) or ``key`` (one key, exactly).

    ``keys``: the keys it matches, each with the index of the step after it (worked
    out once, when the path is parsed).
    """

    kind: str
    key: str
    keys: tuple[tuple[str, int], ...] = ()


_Path = tuple[_Step, ...]
Paths = tuple[_Path, ...]


class DecisionLog(Protocol):
    """Receives every decision. ``emit`` may raise; the engine counts and logs failures."""

    def emit(
        self, decision: Decision, request: AccessRequest, extra: Mapping[str, Any]
    ) -> None: ...


def redaction_paths(redact: Iterable[str]) -> Paths:
    """Parse and check redact paths once, when a sink is built.

    A path is a head (``subject``, ``action``, ``resource``, ``device``, ``context``,
    ``extra``, ``behavior`` or ``*``) and steps: ``.name``, ``.*`` (every key, or every item of
    an array) or ``["key"]`` (one key exactly, written as a JSON string: any
    characters, dots included). Arrays are looked through: ``context.cards.number``
    hides the ``number`` of every card. Dotted names also match keys that hold dots:
    ``context.user.email`` hides ``context.user.email`` and ``context["user.email"]``
    alike (hiding more is the safe side). A path that starts elsewhere would hide
    nothing, so a typo would store what it meant to hide: raises
    :class:`ZeroTrustError` instead, as for an empty step or a malformed ``[...]``.
    """
    if isinstance(redact, str | bytes):
        raise ZeroTrustError("redact must be a list of dotted paths, not one string")
    return tuple(_parse(path) for path in redact)


def _parse(path: Any) -> _Path:
    if type(path) is not str or not path:
        raise ZeroTrustError(f"redact paths must be non-empty strings, not {path!r}")
    head = _HEAD.match(path)
    if head is None or head.group() not in _HEADS:
        heads = ", ".join(sorted(_HEADS))
        raise ZeroTrustError(f"redact path {path!r} must start with one of: {heads}")
    steps = [_Step("any" if head.group() == "*" else "name", head.group())]
    at = head.end()
    while at < len(path):
        step = _STEP.match(path, at)
        if step is None:
            raise ZeroTrustError(
                f'redact path {path!r}: expected .name, .* or ["key"] at character {at + 1}'
                ' (an empty step, or a key with . [ ] or " not written as ["key"])'
            )
        name, quoted = step.groups()
        if quoted is not None:
            steps.append(_Step("key", json.loads(quoted)))
        else:
            steps.append(_Step("any" if name == "*" else "name", name))
        at = step.end()
    return tuple(attrs.evolve(step, keys=_keys(steps, i)) for i, step in enumerate(steps))


def _keys(steps: list[_Step], i: int) -> tuple[tuple[str, int], ...]:
    """The keys step ``i`` matches: its own, and for a name also it joined with the
    names after it (``user.email``: the key ``user``, or the key ``user.email``)."""
    if steps[i].kind == "key":
        return ((steps[i].key, i + 1),)
    found: list[tuple[str, int]] = []
    name = ""
    for j in range(i, len(steps)):
        if steps[j].kind != "name":
            break
        name = f"{name}.{steps[j].key}" if name else steps[j].key
        found.append((name, j + 1))
    return tuple(found)


def audit_record(
    decision: Decision,
    request: AccessRequest,
    *,
    redact: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON entry for one decision, as the built-in sinks write it.

    The whole request is kept (nothing dropped silently), and under ``behavior`` the
    whole feature map the decision was made with (absent when the PDP has no behaviour
    source); ``redact`` names paths such as ``subject.properties.email``,
    ``context["user.email"]``, ``extra.http.path`` or ``behavior.peers`` (see
    :func:`redaction_paths`) whose values are replaced by
    ``"[REDACTED]"`` (see :func:`entry`). ``extra`` adds caller context (e.g. HTTP
    route). The result is the caller's to change: it shares nothing with
    ``request``. Raises :class:`ZeroTrustError` for a bad path and
    :class:`RequestError` naming the field for an ``extra`` that is not JSON data.
    """
    record = entry(decision, request, redaction_paths(redact), extra)
    record["request"] = _copy(record["request"])  # (extra is a copy already)
    if "behavior" in record:
        record["behavior"] = _copy(record["behavior"])
    return record


def entry(
    decision: Decision,
    request: AccessRequest,
    paths: Paths,
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The entry, sharing unredacted parts of the request (sinks serialise it at once).

    ``extra``, and the decision's ``behavior`` map (a behaviour source's own mapping),
    are first copied into plain JSON data like a request (any Mapping, tuples as
    arrays; :class:`RequestError` naming the field for a key that is not a string,
    NaN, an object: never coerced, so the line fails and is counted). Redaction copies only the
    dicts and arrays on a redacted path, so the request is never changed and an entry
    costs no deep copy. The ``subject``, ``action`` and ``resource`` summaries are
    read from the redacted request, so a path that hides ``subject.id`` (or
    ``subject.*``, or ``*.id``) hides them too. Every value a path hid (each string
    in it, and each number) is also hidden wherever the strings of ``extra`` and
    ``behavior`` (``peers.group`` is built from subject properties) and the
    messages of ``errors`` and ``report_only`` hold it, in every form a message can
    quote it (whole, escaped, cut short: :func:`zerotrust._describe.hider`); the web
    integrations' ``extra.http.path`` holds ``resource.id``, and an error message
    may quote the value.
    """
    req = request_variables(request)
    hidden: list[Any] = []
    for path in paths:
        if path[0].key not in _OWN:
            req = _redact(req, path, 0, hidden)
    subject, action, resource = req["subject"], req["action"], req["resource"]
    record: dict[str, Any] = {
        "decision_id": decision.decision_id,
        "time": decision.evaluated_at.isoformat(),
        "subject": {"type": _field(subject, "type"), "id": _field(subject, "id")},
        "action": _field(action, "name"),
        "resource": {"type": _field(resource, "type"), "id": _field(resource, "id")},
        "effect": decision.effect.value,
        "matched_rules": [r.rule for r in decision.reasons],
        "reasons": [r.to_dict() for r in decision.reasons],
        "risk": decision.risk.to_dict(),
        "step_up": decision.step_up.to_dict() if decision.step_up else None,
        "obligations": [o.to_dict() for o in decision.obligations],
        "errors": [e.to_dict() for e in decision.errors],
        "report_only": [r.to_dict() for r in decision.report_only],
        "policy_revision": decision.policy_revision,
        "request": req,
    }
    plan = plan_of(decision)
    if plan is not None:  # a query plan's record: what it allows, not one resource's answer
        record["kind"] = "plan"
        record["plan"] = _without_trees(plan)  # (the condition as text says it all)
    if decision.behavior is not None:
        behavior: Any = plain_behavior(decision)  # shared: redaction copies what it changes
        if behavior is None:
            behavior = plain_json(decision.behavior, "behavior")
        for path in paths:
            if path[0].key in ("behavior", "*"):
                behavior = _redact(behavior, path, 1, hidden)
        record["behavior"] = behavior
    more: Any = plain_json(extra, "extra") if extra is not None else None
    if more:  # (read through plain_json only: a caller's Mapping may raise even in len())
        for path in paths:
            if path[0].key in ("extra", "*"):
                more = _redact(more, path, 1, hidden)
        record["extra"] = more
    secrets = [v for v in hidden if v != REDACTED and type(v) is not bool]
    if secrets:
        hide = hider(secrets, REDACTED)
        for part, field in _MESSAGES:
            for item in record[part]:
                if type(item.get(field)) is str:
                    item[field] = hide(item[field])
        for part in ("extra", "behavior"):  # a peer group's key text holds property values
            if part in record:
                record[part] = _scrub(record[part], hide)
        if "plan" in record:  # a plan's condition holds the request's values, as text
            record["plan"] = _scrub(record["plan"], hide)
    return record


def _without_trees(plan: Mapping[str, Any]) -> dict[str, Any]:
    """A logged plan without its condition trees (``ast``): the text says the same, in
    half the line, and the redaction of text finds every value in it."""
    kept = {k: v for k, v in plan.items() if k != "ast"}
    if isinstance(kept.get("step_up"), dict):
        kept["step_up"] = {k: v for k, v in kept["step_up"].items() if k != "ast"}
    return kept


# The entry's texts that may quote request values: error messages ("cannot convert
# 'x' to int"), not the rule refs or policy reasons beside them (so a hidden number
# never turns "p/rule-1" into "p/rule-[REDACTED]"); and all of the caller's extra.
_MESSAGES = (("errors", "message"), ("report_only", "error"))


def _field(part: Any, key: str) -> Any:
    """A summary field of the redacted request (the whole part may be redacted)."""
    return part.get(key) if type(part) is dict else REDACTED


def _redact(node: Any, path: _Path, at: int, hidden: list[Any]) -> Any:
    """``node`` with the values at ``path[at:]`` replaced (a copy where it changed)."""
    if at == len(path):
        _values(node, hidden)
        return REDACTED
    kind = type(node)
    step = path[at]
    if kind is list:  # looked through: the path (after a `*`, its rest) applies to every item
        after = at + 1 if step.kind == "any" else at
        items = [_redact(item, path, after, hidden) for item in node]
        return items if any(a is not b for a, b in zip(items, node, strict=True)) else node
    if kind is not dict:
        return node
    out = None
    for key, after in [(key, at + 1) for key in node] if step.kind == "any" else step.keys:
        if key in node:
            if out is None:
                out = dict(node)
            out[key] = _redact(node[key], path, after, hidden)
    return node if out is None else out


def _values(node: Any, found: list[Any]) -> None:
    """Collect the strings and numbers inside a value being hidden."""
    kind = type(node)
    if kind is dict:
        for item in node.values():
            _values(item, found)
    elif kind is list:
        for item in node:
            _values(item, found)
    elif kind is str or kind is int or kind is float:
        found.append(node)


def _scrub(node: Any, hide: Callable[[str], str]) -> Any:
    """``node`` with every hidden value inside its strings replaced (keys are the
    caller's structure, not data, and stay)."""
    kind = type(node)
    if kind is str:
        return hide(node)
    if kind is dict:
        return {key: _scrub(item, hide) for key, item in node.items()}
    if kind is list:
        return [_scrub(item, hide) for item in node]
    return node


def _copy(node: Any) -> Any:
    """A copy of plain JSON data (the request holds nothing else)."""
    kind = type(node)
    if kind is dict:
        return {key: _copy(item) for key, item in node.items()}
    if kind is list:
        return [_copy(item) for item in node]
    return node
