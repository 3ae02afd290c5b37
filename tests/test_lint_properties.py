"""Every finding on random policies holds on random requests, judged by the engine's own
compiled conditions: the analyses' logic (errors fail closed, shadowing, equivalence) on
top of the encoding that ``test_lint_soundness`` checks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

pytest.importorskip("z3")

from test_lint_soundness import CONDITIONS, VARIABLES, _outcome

from zerotrust.cel import CelCompileError, CompiledBackend
from zerotrust.lint._analyse import lint_specs
from zerotrust.policy.located import load_documents
from zerotrust.policy.validate import validate_policy

BACKEND = CompiledBackend()
_EFFECTS = st.sampled_from(["allow", "deny", "step_up"])


def _compiles(source: str) -> bool:
    try:
        BACKEND.compile(source)
    except CelCompileError:
        return False
    return True


def _policy(rules: list[tuple[str, str]], signals: list[str]) -> str:
    lines = ["policy: p", "target: {resources: [doc], actions: [read]}"]
    if signals:
        lines.append("signals:")
        for n, source in enumerate(signals):
            when = json.dumps(source, ensure_ascii=False)
            lines += [f"  - name: s{n}", f"    when: {when}", "    score: 10"]
    lines.append("rules:")
    for n, (effect, source) in enumerate(rules):
        lines += [
            f"  - id: r{n}",
            f"    effect: {effect}",
            f"    when: {json.dumps(source, ensure_ascii=False)}",
        ]
        if effect == "step_up":
            lines.append('    step_up: {acr_values: ["urn:example:loa:2"]}')
    return "\n".join(lines) + "\n"


def _variables(drawn: tuple[Any, Any]) -> dict[str, Any]:
    device, x = drawn
    properties = {} if not isinstance(x, (bool, int, float, str, list, type(None))) else {"x": x}
    return {
        "subject": {"type": "user", "id": "u", "properties": {}},
        "action": {"name": "read", "properties": {}},
        "resource": {"type": "doc", "id": "d", "properties": properties},
        "device": device,
        "context": {},
        "behavior": {},
        "data": {},
        "risk": {"score": 0, "signals": []},
    }


# A deny or step-up and an allow that implies it, and a condition said twice: so that
# shadowing and duplicates are found often, not only by chance.
_RELATED = st.one_of(
    st.tuples(st.sampled_from(["deny", "step_up"]), CONDITIONS, CONDITIONS).map(
        lambda t: [(t[0], t[1]), ("allow", f"({t[2]}) && ({t[1]})")]
    ),
    st.tuples(_EFFECTS, _EFFECTS, CONDITIONS).map(lambda t: [(t[0], t[2]), (t[1], f"!!({t[2]})")]),
)
_RULES = st.tuples(
    st.lists(st.tuples(_EFFECTS, CONDITIONS), max_size=3), st.lists(_RELATED, max_size=1)
).map(lambda t: t[0] + [rule for pair in t[1] for rule in pair])


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    _RULES.filter(bool),
    st.lists(CONDITIONS, max_size=2),
    st.lists(VARIABLES, min_size=1, max_size=12),
)
def test_every_finding_holds_on_requests(
    rules: list[tuple[str, str]], signals: list[str], requests: list[tuple[Any, Any]]
) -> None:
    assume(all(_compiles(source) for _, source in rules) and all(map(_compiles, signals)))
    text = _policy(rules, signals)
    (document,) = load_documents(text)
    validated = validate_policy(document, "p.yaml")
    assume(validated.spec is not None)
    assert validated.spec is not None
    findings = lint_specs([validated.spec]).findings
    sources = {f"p/r{n}": source for n, (_, source) in enumerate(rules)}
    sources |= {f"p/s{n}": source for n, source in enumerate(signals)}
    effects = {f"p/r{n}": effect for n, (effect, _) in enumerate(rules)}
    for drawn in requests:
        variables = _variables(drawn)
        outcome = {ref: _outcome(source, variables) for ref, source in sources.items()}
        for f in findings:
            got = outcome[f.ref]
            where = f"{f.kind} {f.ref} on {variables['device']}: {got}\n{text}"
            if f.kind == "never-true" or (f.kind == "dead-rule" and effects[f.ref] == "allow"):
                assert got != "true", where
            elif f.kind in ("dead-rule", "dead-signal"):
                assert got == "false", where
            elif f.kind == "always-matches":
                assert got != "false", where
            elif f.kind == "shadowed-allow":
                if got == "true":
                    assert any(outcome[r] in ("true", "error") for r in f.related), where
            else:
                assert f.kind == "duplicate-condition"
                assert got == outcome[f.related[0]], where
