"""Replay a decision log against another policy set: what would change before it ships.

Each logged request is decided again, purely (:func:`zerotrust.evaluation.decide`), at
its logged time and with the behaviour features the logged decision used, so the only
difference is the policies. The log is read one line at a time: memory stays constant
apart from the examples kept and the counts per rule. A line that cannot be replayed
faithfully (not JSON, not a decision entry, a redacted value) is counted with its line
number, never guessed at and never dropped silently.
"""

from __future__ import annotations

import datetime
import json
import os
from collections import Counter
from collections.abc import Mapping
from typing import IO, Any

import attrs

from zerotrust._ijson import loads
from zerotrust.audit.logfile import log_lines, open_log, parse_entry
from zerotrust.audit.record import REDACTED
from zerotrust.behavior.config import StoreErrorMode
from zerotrust.cel import Backend, default_backend
from zerotrust.decision import Decision, Effect, StepUp
from zerotrust.errors import ZeroTrustError
from zerotrust.evaluation import STORE_UNAVAILABLE, decide
from zerotrust.policy.loader import load_path
from zerotrust.policy.policy_set import PolicySet
from zerotrust.request import AccessRequest

__all__ = [
    "MAX_LINE_BYTES",
    "MAX_RULES",
    "OTHER_RULES",
    "Change",
    "ReplayReport",
    "Transition",
    "open_log",
    "replay",
    "to_json",
    "to_text",
]

#: A longer line is skipped ("too long"), read past in chunks, never held whole.
MAX_LINE_BYTES = 16 * 1024 * 1024
#: Line numbers kept per skip reason (the count is always exact).
LINES_KEPT = 5
#: Distinct rule refs counted per transition; the log names them, and a hostile or
#: odd log could name millions: the rest are counted together under :data:`OTHER_RULES`.
MAX_RULES = 1_000
OTHER_RULES = "(other rules)"
_EFFECTS = {e.value: e for e in Effect}


@attrs.frozen
class Change:
    """One logged decision whose outcome (effect, step-up or obligations) would differ.

    ``newly_matching`` and ``no_longer_matching``: rule refs (``policy/rule``, or
    ``default-deny``) among the new decision's reasons but not the logged one's, and
    the other way round. ``differs``: which parts of the outcome changed.
    """

    line: int
    decision_id: str
    time: str
    subject: str
    action: str
    resource: str
    old_effect: str
    new_effect: str
    differs: tuple[str, ...]
    newly_matching: tuple[str, ...]
    no_longer_matching: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=False, value_serializer=_listed)


@attrs.frozen
class Transition:
    """The changed decisions that went from ``old`` to ``new`` effect, and the rules
    behind them: ``(rule, decisions)`` pairs, most decisions first."""

    old: str
    new: str
    count: int
    newly_matching: tuple[tuple[str, int], ...]
    no_longer_matching: tuple[tuple[str, int], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.old,
            "to": self.new,
            "count": self.count,
            "newly_matching": dict(self.newly_matching),
            "no_longer_matching": dict(self.no_longer_matching),
        }


@attrs.frozen
class ReplayReport:
    """What replaying a log found.

    ``replayed``: decision entries decided again; ``changed``: those whose outcome would
    differ (``transitions`` groups them by old and new effect); ``rules_only``: the
    same outcome reached by other rules. ``skipped``: ``(reason, count, first line
    numbers)`` for every line not replayed.
    """

    revision: str
    lines: int
    replayed: int
    changed: int
    rules_only: int
    transitions: tuple[Transition, ...]
    examples: tuple[Change, ...]
    skipped: tuple[tuple[str, int, tuple[int, ...]], ...]

    @property
    def skipped_lines(self) -> int:
        return sum(count for _, count, _ in self.skipped)


class _Skip(ZeroTrustError):
    """A line that is not replayed, and why (internal: counted, never raised out)."""


def replay(
    policies: PolicySet | str | os.PathLike[str],
    log: IO[bytes] | str | os.PathLike[str],
    *,
    examples: int = 10,
    backend: Backend | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> ReplayReport:
    """Decide every entry of the decision log ``log`` again with ``policies`` and report
    what would change; keeps the first ``examples`` changes.

    ``policies``: a policy file or directory, or a loaded set (compiled with
    ``backend``, the default backend when left out). ``log``: a path (gzip read too,
    see :func:`open_log`) or a binary stream of JSON lines. Raises
    :class:`~zerotrust.errors.PolicyError` for invalid policies and ``OSError`` when
    the log cannot be read (a gzip stream cut short or corrupt included); nothing a
    line holds raises.
    """
    if examples < 0:
        raise ZeroTrustError(f"examples must be >= 0, not {examples}")
    backend = backend or default_backend()
    if not isinstance(policies, PolicySet):
        policies = load_path(policies, backend)
    if isinstance(log, str | os.PathLike):
        with open_log(log) as stream:
            return _replay(policies, stream, examples, backend, max_line_bytes)
    return _replay(policies, log, examples, backend, max_line_bytes)


def _replay(
    policies: PolicySet, log: IO[bytes], examples: int, backend: Backend, max_line_bytes: int
) -> ReplayReport:
    skips: dict[str, tuple[int, list[int]]] = {}
    groups: dict[tuple[str, str], tuple[int, Counter[str], Counter[str]]] = {}
    kept: list[Change] = []
    lines = replayed = changed = rules_only = 0
    for number, data in log_lines(log, max_line_bytes):
        lines = number
        try:
            entry = _entry(data)
            old_rules, new, old = _decide_again(policies, entry, backend)
        except _Skip as skip:
            count, first = skips.get(str(skip), (0, []))
            if len(first) < LINES_KEPT:
                first.append(number)
            skips[str(skip)] = (count + 1, first)
            continue
        replayed += 1
        new_rules = [r.rule for r in new.reasons]
        differs = _differs(old, new)
        added = tuple(r for r in dict.fromkeys(new_rules) if r not in old_rules)
        removed = tuple(r for r in dict.fromkeys(old_rules) if r not in new_rules)
        if not differs:
            rules_only += bool(added or removed)
            continue
        changed += 1
        key = (old["effect"], new.effect.value)
        count, plus, minus = groups.get(key) or (0, Counter(), Counter())
        _count(plus, added)
        _count(minus, removed)
        groups[key] = (count + 1, plus, minus)
        if len(kept) < examples:
            kept.append(_change(number, entry, new, differs, added, removed))
    return ReplayReport(
        revision=policies.revision,
        lines=lines,
        replayed=replayed,
        changed=changed,
        rules_only=rules_only,
        transitions=tuple(
            Transition(old, new, count, _ranked(plus), _ranked(minus))
            for (old, new), (count, plus, minus) in sorted(
                groups.items(), key=lambda item: (-item[1][0], item[0])
            )
        ),
        examples=tuple(kept),
        skipped=tuple(
            (reason, count, tuple(first))
            for reason, (count, first) in sorted(skips.items(), key=lambda i: -i[1][0])
        ),
    )


def _entry(data: bytes | None) -> dict[str, Any]:
    """One line as a decision entry, or :class:`_Skip` saying why not."""
    if data is None:
        raise _Skip("too long")
    if not data.strip():
        raise _Skip("blank")
    try:
        value = parse_entry(data, loads)
    except UnicodeDecodeError:
        raise _Skip("not UTF-8") from None
    except (ValueError, RecursionError):
        raise _Skip("not JSON") from None
    if type(value) is not dict or not {"decision_id", "effect", "request"} <= value.keys():
        raise _Skip("not a decision entry")
    return value


def _decide_again(
    policies: PolicySet, entry: dict[str, Any], backend: Backend
) -> tuple[list[str], Decision, dict[str, Any]]:
    """The logged rule refs, the new decision and the logged outcome."""
    old = {key: entry.get(key) for key in ("effect", "step_up", "obligations")}
    if type(entry["decision_id"]) is not str:
        raise _Skip("malformed entry: decision_id")
    if old["effect"] not in _EFFECTS:
        raise _Skip("malformed entry: effect")
    rules = entry.get("matched_rules")
    if type(rules) is not list or any(type(r) is not str for r in rules):
        raise _Skip("malformed entry: matched_rules")
    now = _time(entry.get("time"))
    features = entry.get("behavior")
    if features is not None and type(features) is not dict:
        raise _Skip("malformed entry: behavior")
    if _redacted(entry["request"]) or _redacted(features):
        raise _Skip("redacted (cannot be decided faithfully)")
    try:
        request = AccessRequest.from_mapping(entry["request"])
    except ZeroTrustError:
        raise _Skip("malformed entry: request") from None
    mode, required = _store_mode(entry, features)
    decision = decide(
        policies,
        request,
        now,
        features,
        backend,
        on_store_error=mode,
        store_error_step_up=required,
    )
    return rules, decision, old


def _time(text: Any) -> datetime.datetime:
    if type(text) is str:
        try:
            now = datetime.datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if now.tzinfo is not None:
                return now
    raise _Skip("malformed entry: time")


def _redacted(node: Any) -> bool:
    """Whether a value anywhere in ``node`` was hidden by a redact path."""
    kind = type(node)
    if kind is str:
        return bool(node == REDACTED)
    if kind is dict:
        return any(_redacted(item) for item in node.values())
    if kind is list:
        return any(_redacted(item) for item in node)
    return False


def _store_mode(
    entry: Mapping[str, Any], features: Mapping[str, Any] | None
) -> tuple[StoreErrorMode, StepUp | None]:
    """How the PDP treated an unavailable behaviour store, as the entry shows it.

    The mode is not logged. ``deny`` always adds the reason :data:`STORE_UNAVAILABLE`,
    ``step_up`` adds it to every outcome but a deny (the logged step-up then holds
    the configured requirement: merged again into the same rules' requirement, it
    changes nothing). Without the reason the mode was ``evaluate``, or ``step_up``
    for a deny: which one is not in the entry, so such a deny is skipped, not guessed.
    """
    if features is None or features.get("available") is not False:
        return StoreErrorMode.EVALUATE, None
    for reason in entry.get("reasons") or ():
        if type(reason) is dict and reason.get("rule") == STORE_UNAVAILABLE:
            if reason.get("effect") == Effect.DENY.value:
                return StoreErrorMode.DENY, None
            return StoreErrorMode.STEP_UP, _step_up(entry.get("step_up"))
    if entry.get("effect") == Effect.DENY.value:
        raise _Skip("behaviour unavailable, on_store_error unknown")
    return StoreErrorMode.EVALUATE, None


def _step_up(value: Any) -> StepUp:
    try:
        return StepUp(acr_values=value["acr_values"], max_age=value["max_age"])
    except (ZeroTrustError, TypeError, KeyError):
        raise _Skip("malformed entry: step_up") from None


def _differs(old: Mapping[str, Any], new: Decision) -> tuple[str, ...]:
    """The parts of the outcome an enforcement point acts on that differ."""
    now = {
        "effect": new.effect.value,
        "step_up": _plain(new.step_up.to_dict()) if new.step_up else None,
        "obligations": _plain([o.to_dict() for o in new.obligations]),
    }
    if old.get("obligations") is None:
        old = {**old, "obligations": []}
    return tuple(part for part in ("effect", "step_up", "obligations") if old[part] != now[part])


def _plain(value: Any) -> Any:
    """``value`` as it reads back from a log line (tuples as lists)."""
    return json.loads(json.dumps(value))


def _change(
    number: int,
    entry: Mapping[str, Any],
    new: Decision,
    differs: tuple[str, ...],
    added: tuple[str, ...],
    removed: tuple[str, ...],
) -> Change:
    request = entry["request"]
    subject, resource = request.get("subject") or {}, request.get("resource") or {}
    return Change(
        line=number,
        decision_id=entry["decision_id"],
        time=new.evaluated_at.isoformat(),
        subject=_named(subject),
        action=str((request.get("action") or {}).get("name")),
        resource=_named(resource),
        old_effect=entry["effect"],
        new_effect=new.effect.value,
        differs=differs,
        newly_matching=added,
        no_longer_matching=removed,
    )


def _count(counts: Counter[str], rules: tuple[str, ...]) -> None:
    for rule in rules:
        counts[rule if rule in counts or len(counts) < MAX_RULES else OTHER_RULES] += 1


def _ranked(counts: Counter[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _listed(_: Any, __: Any, value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def to_json(report: ReplayReport) -> str:
    """The report as one JSON object (the shape is documented with ``zerotrust replay``)."""
    body = {
        "revision": report.revision,
        "lines": report.lines,
        "replayed": report.replayed,
        "changed": report.changed,
        "rules_only": report.rules_only,
        "transitions": [t.to_dict() for t in report.transitions],
        "examples": [c.to_dict() for c in report.examples],
        "skipped": [
            {"reason": reason, "count": count, "lines": list(first)}
            for reason, count, first in report.skipped
        ],
    }
    return json.dumps(body, indent=2, ensure_ascii=False)


def to_text(report: ReplayReport) -> str:
    """The report for a person: the summary, the transitions with their rules, the
    lines skipped and the examples."""
    out = [
        f"replayed {_n(report.replayed, 'decision')} against revision {report.revision}: "
        f"{report.changed} would change"
        + (f"; {report.rules_only} decided alike by other rules" if report.rules_only else "")
    ]
    for t in report.transitions:
        out.append(f"  {t.old} -> {t.new}: {t.count}")
        for sign, rules in (("+", t.newly_matching), ("-", t.no_longer_matching)):
            out.extend(f"      {sign} {rule} ({count})" for rule, count in rules)
    if report.skipped:
        parts = ", ".join(
            f"{count} {reason} (line{'s' if len(first) > 1 else ''} "
            f"{', '.join(map(str, first))}{', ...' if count > len(first) else ''})"
            for reason, count, first in report.skipped
        )
        out.append(f"skipped {report.skipped_lines} of {_n(report.lines, 'line')}: {parts}")
    if report.examples:
        out.append(f"first {_n(len(report.examples), 'change')}:")
    for c in report.examples:
        out.append(
            f"  line {c.line}, decision {c.decision_id} at {c.time}: {c.subject} "
            f"{c.action} {c.resource}: {c.old_effect} -> {c.new_effect}"
            + ("" if "effect" in c.differs else f" ({', '.join(c.differs)} changed)")
        )
        out.extend(f"      + {rule}" for rule in c.newly_matching)
        out.extend(f"      - {rule}" for rule in c.no_longer_matching)
    return "\n".join(_printable(line) for line in out) + "\n"


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _printable(text: str) -> str:
    """A log's ids may hold control characters: shown escaped, never sent to a terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _named(part: Mapping[str, Any]) -> str:
    """``type id`` of a subject or resource, leaving out what the request did not give."""
    return " ".join(str(part[key]) for key in ("type", "id") if part.get(key) is not None) or "-"
