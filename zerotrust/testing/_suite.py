"""Reading a suite file into cases, every problem at the position of its own key or value.

The file is read as located values (:mod:`zerotrust.policy.located`) and merged with its
``defaults`` as located values too, so a problem is reported where it was written: a
problem in ``defaults`` once, at its line, not once per case that inherits it.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from zerotrust._describe import describe
from zerotrust.errors import Diagnostic, RequestError
from zerotrust.evaluation import DEFAULT_DENY
from zerotrust.obligations import did_you_mean
from zerotrust.policy.located import LNode, YamlProblem, load_documents
from zerotrust.policy.policy_set import PolicySet
from zerotrust.request import AccessRequest

__all__ = ["Case", "Known", "read_suite"]

SUITE_KEYS = ("suite", "defaults", "cases")
DEFAULT_KEYS = ("now", "request", "behavior")
CASE_KEYS = ("name", "description", "now", "request", "behavior", "unset", "expect")
EXPECT_KEYS = ("effect", "rules", "risk", "signals", "step_up", "obligations", "report_only")
STEP_UP_KEYS = ("acr_values", "max_age")
EFFECTS = ("allow", "deny", "step_up")
#: Other engines' words for the effects (Cedar's permit/forbid, XACML's Permit/Deny).
_SYNONYMS = {"permit": "allow", "grant": "allow", "forbid": "deny", "reject": "deny"}
_ALLOWED = re.compile(r"\(allowed: ([^)]*)\)")


@attrs.frozen
class Case:
    """One case, merged with the defaults and checked: ready to run."""

    suite: str
    name: str
    line: int
    now: datetime.datetime | None
    request: Mapping[str, Any]
    behavior: Mapping[str, Any]
    expect: Mapping[str, Any]


@attrs.frozen
class Known:
    """The names a suite may refer to: what the loaded policy set defines."""

    rules: frozenset[str]  # enforced rule refs, and default-deny
    report_only: frozenset[str]
    signals: frozenset[str]

    @classmethod
    def of(cls, policies: PolicySet) -> Known:
        rules = [r for p in policies.policies for r in p.rules]
        return cls(
            frozenset({DEFAULT_DENY, *(r.ref for r in rules if not r.report_only)}),
            frozenset(r.ref for r in rules if r.report_only),
            frozenset(s.name for p in policies.policies for s in p.signals),
        )


def read_suite(path: Path, known: Known | None) -> tuple[list[Case], list[Diagnostic]]:
    """The cases of one suite file and every problem in it (references are checked
    against ``known``, or not at all when it is None: the policies did not load)."""
    file = str(path)
    # A bad value (NaN, a control character) is read as null and reported with the rest.
    values: list[YamlProblem] = []
    try:
        documents = load_documents(path.read_text(encoding="utf-8"), problems=values)
    except YamlProblem as exc:
        found = [*values, exc]
        return [], [Diagnostic(file, p.line, p.column, p.message) for p in found]
    except FileNotFoundError:
        return [], [Diagnostic(file, 0, 0, "no such file or directory")]
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Diagnostic(file, 0, 0, f"cannot read test suite: {exc}")]
    reader = _Reader(file, known)
    for problem in values:
        reader.bad(LNode(None, problem.line, problem.column), problem.message)
    cases: list[Case] = []
    for doc in documents:
        if doc.value is not None:
            cases.extend(reader.suite(doc))
    # What the null standing for a bad value led to is said already, at the same place.
    said, later = reader.problems[: len(values)], reader.problems[len(values) :]
    bad_values = {(p.line, p.column) for p in values}
    problems = [*said, *(d for d in later if (d.line, d.column) not in bad_values)]
    return cases, sorted(problems, key=lambda d: (d.line, d.column))


class _Reader:
    def __init__(self, file: str, known: Known | None) -> None:
        self.file = file
        self.known = known
        self.problems: list[Diagnostic] = []
        self._seen: set[tuple[int, int, str]] = set()

    def bad(self, node: LNode, message: str) -> None:
        # The same problem reached from several cases (a value they inherit) once.
        if (node.line, node.column, message) not in self._seen:
            self._seen.add((node.line, node.column, message))
            self.problems.append(Diagnostic(self.file, node.line, node.column, message))

    def keys(self, node: LNode, allowed: tuple[str, ...], where: str) -> None:
        for key, key_node in (node.keys or {}).items():
            if key not in allowed:
                hint = did_you_mean(key, allowed)
                self.bad(
                    key_node,
                    f"unknown key {key!r} in {where}{hint} (allowed: {', '.join(allowed)})",
                )

    def suite(self, doc: LNode) -> list[Case]:
        if not isinstance(doc.value, dict):
            self.bad(doc, f"a test suite must be a mapping with a 'cases' list, not {_kind(doc)}")
            return []
        self.keys(doc, SUITE_KEYS, "test suite")
        suite = self.name(doc, "suite", "") or Path(self.file).stem
        defaults = doc.value.get("defaults")
        if defaults is not None and defaults.value is not None:
            if isinstance(defaults.value, dict):
                self.keys(defaults, DEFAULT_KEYS, "defaults")
                self.shared(defaults, "defaults.")
            else:
                self.bad(
                    defaults,
                    "defaults must be a mapping of now, request and behavior, "
                    f"not {_kind(defaults)}",
                )
                defaults = None
        cases_node = doc.value.get("cases")
        if cases_node is None or not isinstance(cases_node.value, list) or not cases_node.value:
            self.bad(cases_node or doc, "a test suite needs a non-empty 'cases' list")
            return []
        cases = []
        for index, node in enumerate(cases_node.value, 1):
            case = self.case(node, index, suite, defaults)
            if case is not None:
                cases.append(case)
        return cases

    def name(self, node: LNode, key: str, prefix: str) -> str | None:
        """The ``suite`` or case ``name`` written, or None (not given, or reported here:
        a blank or non-text name would leave a blank or a Python repr in every report)."""
        found = _get(node, key)
        if found is None:
            return None
        if type(found.value) is str and found.value.strip():
            return found.value
        self.bad(found, f"{prefix}{key} must be a non-empty string, not {_shown(found)}")
        return None

    def shared(self, node: LNode, prefix: str) -> bool:
        """Check ``now``, ``request`` and ``behavior`` of defaults or a case, each at its value."""
        ok = True
        now = _get(node, "now")
        if now is not None and now.value is not None and _parse_now(now.plain()) is None:
            self.bad(
                now,
                f"{prefix}now must be an ISO 8601 time with a timezone, "
                f"like 2026-03-02T10:00:00Z, not {_shown(now)}",
            )
            ok = False
        for key in ("request", "behavior"):
            value = _get(node, key)
            if value is not None and value.value is not None and not isinstance(value.value, dict):
                self.bad(value, f"{prefix}{key} must be a mapping, not {_kind(value)}")
                ok = False
        return ok

    def case(self, node: LNode, index: int, suite: str, defaults: LNode | None) -> Case | None:
        if not isinstance(node.value, dict):
            self.bad(
                node, f"each case must be a mapping with expect and a request, not {_kind(node)}"
            )
            return None
        name = self.name(node, "name", f"case {index}: ") or f"case {index}"
        prefix = f"case {name!r}: "
        self.keys(node, CASE_KEYS, "test case")
        ok = self.shared(node, "")
        expect = self.expect(node, prefix)
        merged = _merge(self.unset(node, defaults, prefix), node)
        request = _get(merged, "request")
        if request is None or request.value is None:
            self.bad(node, f"{prefix}no request: give one here or in defaults.request")
            return None
        if not isinstance(request.value, dict):
            return None  # reported where it was written
        request_ok = self.request(request, prefix, _ids(defaults))
        if not (ok and request_ok) or expect is None:
            return None
        now_node = _get(merged, "now")
        now = _parse_now(now_node.plain()) if now_node is not None else None
        behavior = _get(merged, "behavior")
        return Case(
            suite,
            name,
            node.line,
            now,
            request.plain(),
            behavior.plain() if behavior is not None and behavior.value is not None else {},
            expect,
        )

    def unset(self, case: LNode, defaults: LNode | None, prefix: str) -> LNode | None:
        """The defaults without the keys the case's ``unset`` list names (each a dotted
        path such as ``request.resource.properties.x``), which must be there to remove."""
        node = _get(case, "unset")
        if node is None or node.value is None:
            return defaults
        if not isinstance(node.value, list):
            self.bad(node, f"{prefix}unset must be a list of paths, not {_kind(node)}")
            return defaults
        removed: list[str] = []
        for item in node.value:
            if type(item.value) is not str or not item.value:
                self.bad(
                    item, f"{prefix}unset holds paths like request.context.ip, not {_kind(item)}"
                )
                continue
            parts = item.value.split(".")
            # An earlier entry removed it already: say so, not "no key" (it was there).
            earlier = next((r for r in removed if parts[: r.count(".") + 1] == r.split(".")), None)
            if earlier == item.value:
                self.bad(item, f"{prefix}unset: {item.value} is listed twice")
                continue
            if earlier is not None:
                self.bad(
                    item,
                    f"{prefix}unset: {item.value} is inside {earlier}, "
                    "which this case already unsets",
                )
                continue
            at: LNode | None = defaults
            for depth, part in enumerate(parts):
                if at is None or not isinstance(at.value, dict) or part not in at.value:
                    choices = (
                        list(at.value) if at is not None and isinstance(at.value, dict) else []
                    )
                    where = ".".join(parts[:depth]) or "defaults"
                    hint = did_you_mean(part, choices)
                    if at is not None and at.value is not None and not isinstance(at.value, dict):
                        hint = f" ({where} is {_kind(at)}, not a mapping)"
                    self.bad(item, f"{prefix}unset: {where} has no key {part!r} to remove{hint}")
                    break
                at = at.value[part]
            else:
                defaults = _without(defaults, parts) if defaults is not None else None
                removed.append(item.value)
        return defaults

    def request(self, node: LNode, prefix: str, inherited: set[int]) -> bool:
        """A request key or value that is wrong, at its position. A required key that is
        missing is left to the run: the case fails there, saying which."""
        try:
            AccessRequest.from_mapping(node.plain())
        except RequestError as exc:
            if exc.reason == "is required":
                return True
            at, key = _walk(node, exc.field)
            hint = ""
            allowed = _ALLOWED.search(exc.reason)
            if allowed and key is not None:
                hint = did_you_mean(key.value, allowed.group(1).split(", "))
                at = key
            where = "" if id(at) in inherited else prefix
            self.bad(at, f"{where}request.{exc.field}: {exc.reason}{hint}")
            return False
        return True

    def expect(self, case: LNode, prefix: str) -> dict[str, Any] | None:
        node = _get(case, "expect")
        if node is None:
            self.bad(case, f"{prefix}expect is required (at least expect.effect)")
            return None
        if not isinstance(node.value, dict):
            self.bad(
                node, f"{prefix}expect must be a mapping with at least effect, not {_kind(node)}"
            )
            return None
        self.keys(node, EXPECT_KEYS, "expect")
        before = len(self.problems)
        effect = node.value.get("effect")
        if effect is None:
            self.bad(node, f"{prefix}expect.effect is required")
        elif effect.value not in EFFECTS:
            hint = did_you_mean(effect.value, EFFECTS)
            if not hint and isinstance(effect.value, str) and effect.value.lower() in _SYNONYMS:
                hint = f": did you mean {_SYNONYMS[effect.value.lower()]!r}?"
            self.bad(
                effect,
                f"{prefix}expect.effect must be allow, deny or step_up, not {_shown(effect)}{hint}",
            )
        known = self.known
        rules, report_only, signals = (
            (known.rules, known.report_only, known.signals) if known else (None, None, None)
        )
        self.names(node, "rules", prefix, rules, report_only, "report_only")
        self.names(node, "report_only", prefix, report_only, rules, "rules")
        self.names(node, "signals", prefix, signals, None, "")
        self.names(node, "obligations", prefix, None, None, "")
        risk = node.value.get("risk")
        if risk is not None and (
            type(risk.value) not in (int, float) or not 0 <= risk.value <= 100
        ):
            self.bad(
                risk,
                f"{prefix}expect.risk must be a number from 0 to 100 (the risk score), "
                f"not {_shown(risk)}",
            )
        step_up = node.value.get("step_up")
        if step_up is not None and step_up.value is not None:
            self.step_up(step_up, prefix)
        if len(self.problems) > before:
            return None
        plain: dict[str, Any] = node.plain()
        return plain

    def names(
        self,
        expect: LNode,
        key: str,
        prefix: str,
        known: frozenset[str] | None,
        other: frozenset[str] | None,
        other_key: str,
    ) -> None:
        """A list of names (rule refs, signal names...), each checked where it is written."""
        node = expect.value.get(key)
        if node is None or node.value is None:
            return
        if not isinstance(node.value, list):
            self.bad(node, f"{prefix}expect.{key} must be a list, not {_kind(node)}")
            return
        what = {"rules": "enforced rule", "report_only": "report-only rule", "signals": "signal"}
        for item in node.value:
            if type(item.value) is not str:
                self.bad(item, f"{prefix}expect.{key} holds names, not {_kind(item)}")
            elif known is not None and item.value not in known:
                if other is not None and item.value in other:
                    message = (
                        f"{item.value!r} is not {_a(what[key])}: list it under expect.{other_key}"
                    )
                else:
                    hint = did_you_mean(item.value, known)
                    message = f"no {what[key]} {item.value!r} in the policy set{hint}"
                self.bad(item, f"{prefix}expect.{key}: {message}")

    def step_up(self, node: LNode, prefix: str) -> None:
        if not isinstance(node.value, dict):
            self.bad(
                node,
                f"{prefix}expect.step_up must be a mapping of acr_values and max_age, or null, "
                f"not {_kind(node)}",
            )
            return
        self.keys(node, STEP_UP_KEYS, "expect.step_up")
        acr = node.value.get("acr_values")
        if acr is not None and not (
            isinstance(acr.value, list) and all(type(v.value) is str for v in acr.value)
        ):
            self.bad(
                acr,
                f"{prefix}expect.step_up.acr_values must be a list of strings, not {_shown(acr)}",
            )
        age = node.value.get("max_age")
        if (
            age is not None
            and age.value is not None
            and (type(age.value) is not int or age.value < 0)
        ):
            self.bad(
                age,
                f"{prefix}expect.step_up.max_age must be a number of seconds or null, "
                f"not {_shown(age)}",
            )


def _merge(base: LNode | None, over: LNode) -> LNode:
    """``over`` on ``base``: mappings key by key, anything else (lists, null) replaced."""
    if base is None or not isinstance(base.value, dict) or not isinstance(over.value, dict):
        return over
    value = dict(base.value)
    keys = dict(base.keys or {})
    for key, child in over.value.items():
        value[key] = _merge(value.get(key), child)
        keys[key] = (over.keys or {})[key]
    return LNode(value, over.line, over.column, over.style, keys)


def _without(node: LNode, parts: list[str]) -> LNode:
    """A copy of ``node`` without the key at ``parts`` (which exists); the rest shared."""
    value = dict(node.value)
    keys = dict(node.keys or {})
    if len(parts) == 1:
        del value[parts[0]]
        keys.pop(parts[0], None)
    else:
        value[parts[0]] = _without(value[parts[0]], parts[1:])
    return LNode(value, node.line, node.column, node.style, keys)


def _get(node: LNode | None, key: str) -> LNode | None:
    if node is None or not isinstance(node.value, dict):
        return None
    found: LNode | None = node.value.get(key)
    return found


def _walk(node: LNode, field: str) -> tuple[LNode, LNode | None]:
    """The value a request field path names and the node of its key (as deep as it goes)."""
    key: LNode | None = None
    for part in field.split("."):
        if not isinstance(node.value, dict) or part not in node.value:
            break
        key = (node.keys or {}).get(part)
        node = node.value[part]
    return node, key


def _ids(node: LNode | None) -> set[int]:
    """Identities of every value (and key) under ``node``: what a case inherits."""
    found: set[int] = set()
    stack = [node] if node is not None else []
    while stack:
        current = stack.pop()
        found.add(id(current))
        found.update(id(k) for k in (current.keys or {}).values())
        if isinstance(current.value, dict):
            stack.extend(current.value.values())
        elif isinstance(current.value, list):
            stack.extend(current.value)
    return found


def _parse_now(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _kind(node: LNode) -> str:
    return describe(node.value, mapping="a mapping", sequence="a list")


def _shown(node: LNode) -> str:
    value = node.plain()
    return repr(value) if isinstance(value, str | int | float | bool) else _kind(node)


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"
