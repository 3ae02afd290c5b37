"""Turn one located YAML document into a :class:`PolicySpec`, collecting every problem.

Nothing here stops at the first error: a policy author fixing a file wants the
whole list at once (Cerbos' compile ``ErrorList`` is the model).
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from zerotrust._describe import describe
from zerotrust.decision import ACR_VALUE, MAX_AGE_LIMIT, Effect, Obligation, StepUp
from zerotrust.errors import Diagnostic
from zerotrust.obligations import BUILTIN_OBLIGATIONS, did_you_mean, read_obligation
from zerotrust.policy.action_groups import DOCUMENT_KEY, ActionGroup, read_action_groups
from zerotrust.policy.libraries import (
    IMPORTS_KEY,
    ImportScope,
    Libraries,
    is_library,
    own_clashes,
    read_library,
)
from zerotrust.policy.located import LNode
from zerotrust.policy.model import (
    CelSource,
    PolicySpec,
    RuleSpec,
    SignalSpec,
    Target,
    VariableSpec,
)
from zerotrust.policy.variables import PolicyVariables, read_variables

__all__ = ["NAME_PATTERN", "Condition", "Validated", "validate_policy"]

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]*\Z")
_SHOWN = 60
_POLICY_KEYS = (
    "policy",
    "description",
    "target",
    "obligation_types",
    IMPORTS_KEY,
    "variables",
    "signals",
    "rules",
)
_TARGET_KEYS = ("resources", "actions")
_SIGNAL_KEYS = ("name", "when", "score", "description")
_RULE_KEYS = ("id", "effect", "when", "reason", "mode", "step_up", "obligations", "description")
_STEP_UP_KEYS = ("acr_values", "max_age")
_MODES = {"enforce": False, "report-only": True}
_EFFECTS = {e.value: e for e in Effect}


class _Collector:
    """Diagnostics for one document, tagged with the policy and rule in hand."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.policy: str | None = None
        self.rule: str | None = None
        self.items: list[Diagnostic] = []
        #: The application's obligation types this document declares (``obligation_types``).
        self.obligation_types: frozenset[str] = frozenset()
        # Every condition seen, so CEL is checked even when the document has other errors.
        self.conditions: list[Condition] = []
        #: The policy's variables, inlined into each condition as it is read.
        self.variables = PolicyVariables({}, None)

    def add(self, node: LNode | None, message: str, *, line: int = 0, column: int = 0) -> None:
        if node is not None:
            line, column = node.line, node.column
        self.items.append(Diagnostic(self.file, line, column, message, self.policy, self.rule))


@attrs.frozen
class Condition:
    """A condition found in a document, and whose it is (for diagnostics)."""

    source: CelSource
    policy: str | None
    owner: str | None
    is_signal: bool
    #: A policy variable's expression (``owner`` its name), not a condition.
    is_variable: bool = False


@attrs.frozen
class Validated:
    """One document's outcome: a spec only when no diagnostic was found; an action
    groups document gives no spec, its groups instead."""

    spec: PolicySpec | None
    diagnostics: tuple[Diagnostic, ...]
    conditions: tuple[Condition, ...]
    groups: tuple[ActionGroup, ...] = ()


def validate_policy(doc: LNode, file: str, libraries: Libraries | None = None) -> Validated:
    """Validate one document, collecting every structural problem; ``libraries`` are the
    set's condition libraries, which a policy may import (a library document gives
    only its structural problems here: see :mod:`zerotrust.policy.libraries`)."""
    out = _Collector(file)
    if not isinstance(doc.value, dict):
        out.add(doc, f"a policy document must be a mapping, not {_kind(doc.value)}")
        return Validated(None, tuple(out.items), ())
    fields: dict[str, LNode] = doc.value
    if DOCUMENT_KEY in fields and "policy" not in fields:
        groups, problems = read_action_groups(doc, file)
        return Validated(None, tuple(problems), (), groups)
    if is_library(doc):
        return Validated(None, tuple(read_library(doc, file)[1]), ())
    name = _name(fields.get("policy"), "policy", out, doc)
    out.policy = name
    _unknown_keys(doc, (*_POLICY_KEYS, DOCUMENT_KEY), "policy", out)
    if DOCUMENT_KEY in fields:
        out.add(
            (doc.keys or {}).get(DOCUMENT_KEY, doc),
            f"{DOCUMENT_KEY} is a document of its own, not a key of a policy: "
            "move it after --- (it applies to the whole policy set)",
        )
    description = _optional_str(fields.get("description"), "description", out)
    target = _target(fields.get("target"), out)
    out.obligation_types = _obligation_types(fields.get("obligation_types"), out)
    scope, problems = (libraries or Libraries()).scope(fields.get(IMPORTS_KEY), file, name)
    out.items.extend(problems)
    variables = _variables(fields.get("variables"), out, scope)
    signals = _signals(fields.get("signals"), out)
    rules = _rules(fields.get("rules"), doc, out)
    out.items.extend(out.variables.diagnostics)
    if out.items or name is None or target is None or scope.failed or out.variables.failed:
        return Validated(None, tuple(out.items), tuple(out.conditions))
    spec = PolicySpec(
        name=name,
        description=description,
        target=target,
        signals=signals,
        rules=rules,
        file=file,
        line=doc.line,
        raw=doc.plain(),
        name_line=fields["policy"].line,
        name_column=fields["policy"].column,
        variables=variables,
        imports=scope.names,
    )
    return Validated(spec, (), tuple(out.conditions))


def _kind(value: Any) -> str:
    return describe(value, mapping="a mapping", sequence="a list")


def _shown(node: LNode) -> str:
    """A value as the policy wrote it, short enough for a message."""
    text = repr(node.plain())
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _unknown_keys(node: LNode, allowed: tuple[str, ...], what: str, out: _Collector) -> None:
    keys = node.keys or {}
    for key in node.value:
        if key not in allowed:
            out.add(
                keys.get(key, node),
                f"unknown key {key!r} in {what}{did_you_mean(key, allowed)} "
                f"(allowed: {', '.join(allowed)})",
            )


def _name(node: LNode | None, what: str, out: _Collector, parent: LNode) -> str | None:
    if node is None:
        out.add(parent, f"{what} is required")
        return None
    if not isinstance(node.value, str):
        out.add(node, f"{what} must be a string, not {_kind(node.value)}")
        return None
    if not NAME_PATTERN.match(node.value):
        out.add(
            node,
            f"{what} {node.value!r} must match [a-z0-9][a-z0-9._-]* (lower case, digits, . _ -)",
        )
        return None
    return node.value


def _optional_str(node: LNode | None, what: str, out: _Collector) -> str | None:
    if node is None or node.value is None:
        return None
    if not isinstance(node.value, str):
        out.add(node, f"{what} must be a string, not {_kind(node.value)}")
        return None
    return node.value


def _str_list(node: LNode, what: str, out: _Collector) -> list[str] | None:
    """A string or a list of non-empty strings."""
    items = node.value if isinstance(node.value, list) else [node]
    if not items:
        hint = ' (use "*" for any)' if what.startswith("target") else ""
        out.add(node, f"{what} must not be empty{hint}")
        return None
    result: list[str] = []
    for item in items:
        if item.value == "":
            out.add(item, f"{what} entries must be non-empty strings, not an empty string")
            return None
        if not isinstance(item.value, str):
            out.add(item, f"{what} entries must be non-empty strings, not {_kind(item.value)}")
            return None
        result.append(item.value)
    return result


def _target(node: LNode | None, out: _Collector) -> Target | None:
    if node is None or node.value is None:
        return Target()
    if not isinstance(node.value, dict):
        out.add(node, f"target must be a mapping, not {_kind(node.value)}")
        return None
    _unknown_keys(node, _TARGET_KEYS, "target", out)
    parts: dict[str, frozenset[str] | None] = {}
    ok = True
    for key in _TARGET_KEYS:
        sub = node.value.get(key)
        if sub is None or sub.value is None:
            parts[key] = None
            continue
        values = _str_list(sub, f"target.{key}", out)
        if values is None:
            ok = False
            continue
        parts[key] = None if "*" in values else frozenset(values)
    if not ok:
        return None
    return Target(resources=parts["resources"], actions=parts["actions"])


def _cel(
    node: LNode | None, what: str, out: _Collector, owner: str | None, *, is_signal: bool = False
) -> CelSource | None:
    if node is None:
        return None
    if not isinstance(node.value, str):
        hint = ' (quote it: "true")' if isinstance(node.value, bool) else ""
        out.add(node, f"{what} must be a CEL expression string, not {_kind(node.value)}{hint}")
        return None
    source = CelSource(node.value, out.file, node.line, node.column, node.style, node.raw)
    inlined = out.variables.inline(source, owner)
    if inlined is None:
        return source  # (the document is refused: the problem is reported)
    out.conditions.append(Condition(inlined, out.policy, owner, is_signal))
    return inlined


def _variables(node: LNode | None, out: _Collector, scope: ImportScope) -> tuple[VariableSpec, ...]:
    """Read and resolve the policy's variables, with what its imports give; they are
    inlined as conditions are read."""
    specs, problems = read_variables(node, out.file, out.policy)
    out.items.extend(problems)
    out.items.extend(own_clashes(scope, specs.values(), out.file, out.policy))
    out.variables = PolicyVariables(
        specs,
        out.policy,
        imported=scope.items,
        elsewhere=scope.elsewhere,
        incomplete=scope.failed,
    )
    found = []
    for spec in out.variables.resolved():
        if out.variables.inlinable(spec.name):
            out.conditions.append(Condition(spec.when, out.policy, spec.name, False, True))
        found.append(spec)
    return tuple(found)


def _list_of_mappings(node: LNode | None, what: str, out: _Collector) -> list[LNode]:
    if node is None or node.value is None:
        return []
    if not isinstance(node.value, list):
        out.add(node, f"{what} must be a list, not {_kind(node.value)}")
        return []
    items = []
    for item in node.value:
        if not isinstance(item.value, dict):
            out.add(item, f"each entry of {what} must be a mapping, not {_kind(item.value)}")
            continue
        items.append(item)
    return items


def _signals(node: LNode | None, out: _Collector) -> tuple[SignalSpec, ...]:
    seen: dict[str, LNode] = {}
    signals = []
    for item in _list_of_mappings(node, "signals", out):
        fields = item.value
        _unknown_keys(item, _SIGNAL_KEYS, "signal", out)
        name = _name(fields.get("name"), "signal name", out, item)
        score_node = fields.get("score")
        score = None
        if score_node is None:
            out.add(item, "signal score is required (0..100)")
        elif not isinstance(score_node.value, int) or isinstance(score_node.value, bool):
            kind = _kind(score_node.value)
            out.add(score_node, f"signal score must be an integer, not {kind}")
        elif not 0 <= score_node.value <= 100:
            out.add(score_node, f"signal score must be between 0 and 100, not {score_node.value}")
        else:
            score = score_node.value
        _optional_str(fields.get("description"), "signal description", out)
        when = _cel(fields.get("when"), "signal when", out, name, is_signal=True)
        if name is not None and name in seen:
            out.add(
                fields["name"], f"duplicate signal name {name!r} (first at line {seen[name].line})"
            )
        elif name is not None:
            seen[name] = fields["name"]
        if name is not None and score is not None:
            signals.append(SignalSpec(name=name, score=score, when=when, line=item.line))
    return tuple(signals)


def _rules(node: LNode | None, doc: LNode, out: _Collector) -> tuple[RuleSpec, ...]:
    if node is None or node.value is None:
        out.add(node or doc, "rules is required: a list of at least one rule")
        return ()
    items = _list_of_mappings(node, "rules", out)
    if isinstance(node.value, list) and not node.value:
        out.add(node, "rules must hold at least one rule")
    seen: dict[str, LNode] = {}
    rules = []
    for item in items:
        out.rule = None
        rule = _rule(item, seen, out)
        if rule is not None:
            rules.append(rule)
    out.rule = None
    return tuple(rules)


def _rule(item: LNode, seen: dict[str, LNode], out: _Collector) -> RuleSpec | None:
    fields = item.value
    before = len(out.items)
    rule_id = _name(fields.get("id"), "rule id", out, item)
    out.rule = rule_id
    _unknown_keys(item, _RULE_KEYS, "rule", out)
    if rule_id is not None and rule_id in seen:
        out.add(fields["id"], f"duplicate rule id {rule_id!r} (first at line {seen[rule_id].line})")
    elif rule_id is not None:
        seen[rule_id] = fields["id"]

    effect = None
    effect_node = fields.get("effect")
    if effect_node is None:
        out.add(item, "rule effect is required (allow, deny or step_up)")
    elif not isinstance(effect_node.value, str) or effect_node.value not in _EFFECTS:
        out.add(
            effect_node,
            f"rule effect must be allow, deny or step_up, not {_shown(effect_node)}"
            f"{did_you_mean(effect_node.value, _EFFECTS)}",
        )
    else:
        effect = _EFFECTS[effect_node.value]

    report_only = False
    mode_node = fields.get("mode")
    if mode_node is not None:
        if not isinstance(mode_node.value, str) or mode_node.value not in _MODES:
            out.add(
                mode_node,
                f"rule mode must be enforce or report-only, not {_shown(mode_node)}"
                f"{did_you_mean(mode_node.value, _MODES)}",
            )
        else:
            report_only = _MODES[mode_node.value]

    when = _cel(fields.get("when"), "rule when", out, rule_id)
    reason = _optional_str(fields.get("reason"), "rule reason", out)
    _optional_str(fields.get("description"), "rule description", out)
    step_up = _step_up(fields.get("step_up"), effect, out)
    obligations = _obligations(fields.get("obligations"), rule_id, out)
    if len(out.items) != before or rule_id is None or effect is None:
        return None
    if effect is Effect.STEP_UP and step_up is None:
        step_up = StepUp()
    return RuleSpec(
        id=rule_id,
        effect=effect,
        when=when,
        reason=reason,
        report_only=report_only,
        step_up=step_up,
        obligations=obligations,
        line=item.line,
    )


def _step_up(node: LNode | None, effect: Effect | None, out: _Collector) -> StepUp | None:
    if node is None:
        return None
    if effect is not None and effect is not Effect.STEP_UP:
        out.add(node, f"step_up requirements are only allowed on step_up rules, not {effect.value}")
        return None
    if not isinstance(node.value, dict):
        out.add(node, f"step_up must be a mapping, not {_kind(node.value)}")
        return None
    _unknown_keys(node, _STEP_UP_KEYS, "step_up", out)
    acr = _acr_values(node.value.get("acr_values"), out)
    max_age = None
    age_node = node.value.get("max_age")
    if age_node is not None:
        value = age_node.value
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_AGE_LIMIT:
            out.add(
                age_node,
                f"step_up.max_age must be a whole number of seconds from 0 to {MAX_AGE_LIMIT}, "
                f"not {_shown(age_node)}",
            )
        else:
            max_age = value
    return StepUp(acr_values=acr, max_age=max_age)


def _acr_values(node: LNode | None, out: _Collector) -> tuple[str, ...]:
    if node is None:
        return ()
    values = _str_list(node, "step_up.acr_values", out)
    if values is None:
        return ()
    items = node.value if isinstance(node.value, list) else [node]
    for item in items:
        if not ACR_VALUE.match(item.value):
            out.add(
                item,
                f"step_up.acr_values entry {_shown(item)} must be one token of printable ASCII "
                "without spaces, quotes or backslashes (RFC 6749 NQCHAR, at most 255): the "
                "values are sent space-separated",
            )
            return ()
    return tuple(dict.fromkeys(values))


def _obligation_types(node: LNode | None, out: _Collector) -> frozenset[str]:
    """The application's own obligation types: declared, so that a misspelt one is caught."""
    if node is None or node.value is None:
        return frozenset()
    items = node.value if isinstance(node.value, list) else None
    if items is None:
        out.add(node, f"obligation_types must be a list of type names, not {_kind(node.value)}")
        return frozenset()
    declared: set[str] = set()
    for item in items:
        if not isinstance(item.value, str) or not item.value:
            out.add(item, f"obligation_types entries must be non-empty strings, not {_shown(item)}")
        elif item.value in BUILTIN_OBLIGATIONS:
            out.add(item, f"obligation type {item.value!r} is built in: it needs no declaration")
        else:
            declared.add(item.value)
    return frozenset(declared)


def _obligations(
    node: LNode | None, rule_id: str | None, out: _Collector
) -> tuple[Obligation, ...]:
    obligations = []
    for item in _list_of_mappings(node, "obligations", out):
        type_node = item.value.get("type")
        if type_node is None:
            out.add(item, "obligation type is required (e.g. mask, tokenize, limit)")
            continue
        if not isinstance(type_node.value, str) or not type_node.value:
            out.add(
                type_node,
                f"obligation type must be a non-empty string, not {_kind(type_node.value)}",
            )
            continue
        type_ = type_node.value
        params = {k: v.plain() for k, v in item.value.items() if k != "type"}
        if type_ not in BUILTIN_OBLIGATIONS and type_ not in out.obligation_types:
            known = BUILTIN_OBLIGATIONS | out.obligation_types
            out.add(
                type_node,
                f"unknown obligation type {type_!r}{did_you_mean(type_, known)} (built in: "
                f"{', '.join(sorted(BUILTIN_OBLIGATIONS))}; declare an application's own "
                "type in the policy's obligation_types)",
            )
        # Built-in types are checked here, so what loads is what the PEP can carry out.
        # An unknown parameter is reported at its key, a wrong value at the value.
        for problem in read_obligation(type_, params).problems:
            where: dict[str, LNode] = (item.keys or {}) if problem.unknown else item.value
            at = where.get(problem.param, item) if problem.param else item
            out.add(at, f"obligation {type_}: {problem.message}")
        obligations.append(Obligation(type=type_node.value, params=params, rule=rule_id))
    return tuple(obligations)
