"""Obligations are checked at load by the grammar the enforcement point applies them with.

A rule whose obligation the enforcement point would refuse must not load: otherwise
every request it allows is refused (a 403) at run time, far from the typo.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import obligation_specs

from zerotrust import Effect, Obligation, PolicyDecisionPoint, PolicyError
from zerotrust.cli import main
from zerotrust.web import ObligationError, ObligationPlan, Tokenizer

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "policy-language.md"
TOKENIZER = Tokenizer({"k1": b"1" * 32}, current="k1")

MAX_ROWS = """\
policy: p
target: {resources: [doc], actions: [read]}
rules:
  - id: r
    effect: allow
    obligations:
      - {type: limit, max_rows: 50}
"""


def _diagnostics(texts: Mapping[str, str]) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        PolicyDecisionPoint.from_texts(dict(texts))
    return [str(d) for d in caught.value.diagnostics]


def _document(obligation: Mapping[str, Any], declared: tuple[str, ...] = ()) -> str:
    document = {
        "policy": "p",
        "obligation_types": list(declared),
        "target": {"resources": ["doc"], "actions": ["read"]},
        "rules": [{"id": "r", "effect": "allow", "obligations": [dict(obligation)]}],
    }
    return json.dumps(document)  # JSON is YAML: every string quoted, read as written


def _request(**properties: Any) -> dict[str, Any]:
    return {
        "subject": {"id": "u", "properties": properties},
        "action": {"name": "read"},
        "resource": {"type": "doc"},
    }


def test_limit_with_max_rows_is_refused_at_load_not_a_403_for_every_request(
    tmp_path: Path,
) -> None:
    expected = [
        "p.yaml:7:9: [p/r] obligation limit: 'max' is required (the records to keep)",
        "p.yaml:7:23: [p/r] obligation limit: unknown parameter 'max_rows': "
        "did you mean 'max'? (allowed: max, field)",
    ]
    assert _diagnostics({"p.yaml": MAX_ROWS}) == expected
    # The enforcement point refuses the same obligation with the same words.
    with pytest.raises(ObligationError, match="unknown parameter 'max_rows': did you mean 'max'"):
        ObligationPlan.compile([Obligation("limit", {"max_rows": 50})])

    (tmp_path / "p.yaml").write_text(MAX_ROWS)
    run = subprocess.run(
        [sys.executable, "-m", "zerotrust", "validate", "p.yaml"],
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        },
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1, run
    assert [line for line in run.stderr.splitlines() if line.startswith("p.yaml:")] == expected


def test_validate_in_process_reports_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p.yaml").write_text(MAX_ROWS)
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "p.yaml"]) == 1
    assert "p.yaml:7:23: [p/r] obligation limit: unknown parameter 'max_rows'" in (
        capsys.readouterr().err
    )


def test_every_obligation_problem_is_collected_with_the_others() -> None:
    text = """\
policy: p
obligation_types: [watermark]
rules:
  - id: r
    effect: allow
    obligations:
      - {type: mas, fields: ssn}
      - {type: watermak}
      - {type: mask, fields: ssn, keep_last: "4"}
      - {type: tokenize}
      - {type: watermark, anything: [1, {two: 2}]}
  - id: s
    effect: permit
"""
    assert _diagnostics({"p.yaml": text}) == [
        "p.yaml:7:16: [p/r] unknown obligation type 'mas': did you mean 'mask'? (built in: "
        "limit, mask, tokenize; declare an application's own type in the policy's "
        "obligation_types)",
        "p.yaml:8:16: [p/r] unknown obligation type 'watermak': did you mean 'watermark'? "
        "(built in: limit, mask, tokenize; declare an application's own type in the "
        "policy's obligation_types)",
        "p.yaml:9:46: [p/r] obligation mask: 'keep_last' must be a whole number from 0 to "
        "2147483647, not '4'",
        "p.yaml:10:9: [p/r] obligation tokenize: 'fields' is required (the keys whose "
        "values it replaces)",
        "p.yaml:13:13: [p/s] rule effect must be allow, deny or step_up, not 'permit'",
    ]


def test_unknown_type_without_a_close_name_has_no_guess() -> None:
    (message,) = _diagnostics({"p.yaml": _document({"type": "audit-trail"})})
    assert "unknown obligation type 'audit-trail' (built in: limit, mask, tokenize;" in message
    assert "did you mean" not in message


def test_declared_type_loads_with_any_parameters_and_reaches_the_decision_unchanged() -> None:
    params = {"text": "confidential", "max_rows": 50, "nested": {"a": [1, None]}}
    pdp = PolicyDecisionPoint.from_texts(
        {"p.yaml": _document({"type": "watermark", **params}, declared=("watermark",))}
    )
    decision = pdp.evaluate(_request())
    assert decision.effect is Effect.ALLOW
    assert [(o.type, o.params) for o in decision.obligations] == [("watermark", params)]
    # Declared is not handled: the enforcement point still refuses what it cannot do.
    with pytest.raises(ObligationError, match="unsupported obligation type 'watermark'"):
        ObligationPlan.compile(decision.obligations)
    assert not ObligationPlan.compile(decision.obligations, handled={"watermark"})


def test_a_declaration_holds_for_its_own_document_only() -> None:
    declares = _document({"type": "watermark"}, declared=("watermark",))
    uses = _document({"type": "watermark"}).replace('"p"', '"q"')
    (message,) = _diagnostics({"a.yaml": declares, "b.yaml": uses})
    assert message.startswith("b.yaml:")
    assert "unknown obligation type 'watermark'" in message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("watermark", "obligation_types must be a list of type names, not a string"),
        ("{watermark: 1}", "obligation_types must be a list of type names, not a mapping"),
        ("[watermark, 3]", "obligation_types entries must be non-empty strings, not 3"),
        ('[""]', "obligation_types entries must be non-empty strings, not ''"),
        ("[mask]", "obligation type 'mask' is built in: it needs no declaration"),
    ],
)
def test_malformed_declarations_are_load_errors(value: str, message: str) -> None:
    text = f"policy: p\nobligation_types: {value}\nrules: [{{id: r, effect: allow}}]\n"
    assert [d.partition(": ")[2] for d in _diagnostics({"p.yaml": text})] == [f"[p] {message}"]


def _enforced(obligation: Mapping[str, Any]) -> ObligationError | None:
    """What the enforcement point says of the obligation: ``None`` if it can carry it out."""
    params = {k: v for k, v in obligation.items() if k != "type"}
    try:
        ObligationPlan.compile([Obligation(obligation["type"], params)], tokenizer=TOKENIZER)
    except ObligationError as exc:
        return exc
    return None


@settings(max_examples=300, deadline=None)
@given(spec=obligation_specs())
def test_property_load_and_the_enforcement_point_agree_on_builtin_obligations(
    spec: dict[str, Any],
) -> None:
    refused = _enforced(spec)
    try:
        pdp = PolicyDecisionPoint.from_texts({"p.yaml": _document(spec)})
    except PolicyError as exc:
        assert refused is not None, exc
        return
    assert refused is None, (spec, refused)
    assert [o.type for o in pdp.evaluate(_request()).obligations] == [spec["type"]]


@settings(max_examples=100, deadline=None)
@given(
    kind=st.sampled_from(["watermark", "log", "mask", "limit", "tokenize", "mas", "Limit"]),
    declared=st.lists(st.sampled_from(["watermark", "log", "audit"]), unique=True),
    params=st.dictionaries(st.sampled_from(["fields", "max", "text", "max_rows"]), st.just(1)),
)
def test_property_a_type_loads_iff_it_is_built_in_and_well_formed_or_declared(
    kind: str, declared: list[str], params: dict[str, Any]
) -> None:
    spec = {"type": kind, **params}
    loads = kind in declared or (kind in {"mask", "limit", "tokenize"} and not _enforced(spec))
    try:
        PolicyDecisionPoint.from_texts({"p.yaml": _document(spec, tuple(declared))})
    except PolicyError:
        assert not loads
    else:
        assert loads


# --- the documentation's obligation examples load and are carried out -------------------

#: For each example policy in the obligations section: a request it allows, the data the
#: application returns, the types the application handles itself, and what is released.
DOC_CASES: Mapping[str, tuple[dict[str, Any], Any, frozenset[str], Any]] = {
    "support-records": (
        {
            "subject": {"id": "u", "properties": {"roles": ["support"]}},
            "action": {"name": "read"},
            "resource": {"type": "customer_record"},
        },
        {"items": [{"ssn": "123-45-6789", "email": "a@example.com"}] * 60, "total": 60},
        frozenset(),
        {
            "items": [{"ssn": "*******6789", "email": TOKENIZER.token("a@example.com")}] * 50,
            "total": 60,
        },
    ),
    "exports": (
        {
            "subject": {"id": "u", "properties": {"roles": ["analyst"]}},
            "action": {"name": "export"},
            "resource": {"type": "report"},
        },
        list(range(1200)),
        frozenset({"watermark"}),
        list(range(1000)),
    ),
}


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.index("\n## ", start)
    return text[start:end]


def test_the_documented_obligation_examples_load_and_are_applied() -> None:
    section = _section(DOC.read_text(encoding="utf-8"), "### `obligations`")
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert sorted(yaml.safe_load(b)["policy"] for b in blocks) == sorted(DOC_CASES)
    for block in blocks:
        name = yaml.safe_load(block)["policy"]
        request, data, handled, released = DOC_CASES[name]
        pdp = PolicyDecisionPoint.from_texts({f"{name}.yaml": block})
        decision = pdp.evaluate(request)
        assert decision.effect is Effect.ALLOW, name
        plan = ObligationPlan.compile(decision.obligations, tokenizer=TOKENIZER, handled=handled)
        assert plan.apply(data) == released, name


def test_the_documented_max_rows_message_is_the_one_printed() -> None:
    section = _section(DOC.read_text(encoding="utf-8"), "### `obligations`")
    (policy,) = re.findall(r'```yaml title="exports.yaml"\n(.*?)```', section, re.S)
    (shown,) = re.findall(
        r"```console\n\$ zerotrust validate exports.yaml\n(.*?)```", section, re.S
    )
    *lines, count = shown.splitlines()
    assert lines == _diagnostics({"exports.yaml": policy})
    assert count == f"{len(lines)} problems found"
    assert "unknown parameter 'max_rows'" in lines[-1]
