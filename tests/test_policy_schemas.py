"""The JSON Schemas for editors agree with the loader.

The guarantee, for policy documents: what the schema refuses, the loader refuses. For
documents near the valid shape the two agree exactly, except for what a schema cannot
see (CEL, duplicate names, obligation types declared elsewhere in the document).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zerotrust.cel import default_backend
from zerotrust.cli import main
from zerotrust.errors import PolicyError
from zerotrust.policy.loader import (
    is_data_file,
    is_policy_file,
    is_schema_file,
    is_test_file,
    load_path,
)
from zerotrust.policy.located import load_documents
from zerotrust.policy.schemas import KINDS, UnknownSchemaError, schema, schema_text
from zerotrust.policy.validate import validate_policy
from zerotrust.testing import run_tests

ROOT = Path(__file__).resolve().parents[1]
MALFORMED = ROOT / "tests" / "policies" / "malformed"
POLICY_DIRS = [ROOT / "policies", *sorted((ROOT / "examples").glob("authzen-*"))]
POLICY_DIRS += sorted((ROOT / "examples").glob("from-*"))  # translations from other languages


def _validator(kind: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema(kind))


def _kind(path: Path) -> str | None:
    if is_test_file(path):
        return "test"
    if is_data_file(path):
        return "data"
    if is_schema_file(path):
        return "schema"
    return "policy" if is_policy_file(path) else None


FILES = sorted(p for d in POLICY_DIRS for p in d.iterdir() if p.is_file() and _kind(p))


def _documents(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return [json.loads(text)]
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


@pytest.mark.parametrize("kind", KINDS)
def test_each_schema_is_a_valid_draft_2020_12_schema(kind: str) -> None:
    jsonschema.Draft202012Validator.check_schema(schema(kind))
    assert schema(kind)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(UnknownSchemaError, match="known: policy, data, test"):
        schema("rules")


def test_every_kind_of_shipped_file_is_covered() -> None:
    kinds = {_kind(p) for p in FILES}
    assert {"policy", "data", "test"} <= kinds


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shipped_and_example_files_validate(path: Path) -> None:
    validator = _validator(_kind(path) or "")
    documents = _documents(path)
    assert documents
    for doc in documents:
        errors = [e.message for e in validator.iter_errors(doc)]
        assert errors == []


# The malformed files the loader refuses for their structure (not YAML, CEL or names
# given twice): the schema refuses each of them too.
STRUCTURAL = [
    "acr-values-not-strings.yaml",
    "bad-effect.yaml",
    "bad-mode.yaml",
    "description-not-string.yaml",
    "max-age-negative.yaml",
    "missing-effect.yaml",
    "missing-policy-name.yaml",
    "missing-rule-id.yaml",
    "missing-rules.yaml",
    "not-a-mapping.yaml",
    "obligation-type-empty.yaml",
    "obligation-without-type.yaml",
    "obligations-not-a-list.yaml",
    "policy-name-not-string.yaml",
    "policy-name-uppercase.yaml",
    "reason-not-string.yaml",
    "rule-id-bad-characters.yaml",
    "rule-not-a-mapping.yaml",
    "rules-empty.yaml",
    "rules-not-a-list.yaml",
    "score-not-integer.yaml",
    "score-out-of-range.yaml",
    "signal-missing-score.yaml",
    "signal-when-not-string.yaml",
    "step-up-block-on-allow-rule.yaml",
    "step-up-not-mapping.yaml",
    "step-up-unknown-key.yaml",
    "target-action-not-string.yaml",
    "target-not-mapping.yaml",
    "target-resources-empty.yaml",
    "unknown-rule-key.yaml",
    "unknown-target-key.yaml",
    "unknown-top-level-key.yaml",
    "variable-not-a-string.yaml",
    "when-is-yaml-bool.yaml",
]


@pytest.mark.parametrize("name", STRUCTURAL)
def test_structurally_malformed_policies_are_refused_by_the_schema(name: str) -> None:
    path = MALFORMED / name
    with pytest.raises(PolicyError):
        load_path(path, default_backend())
    validator = _validator("policy")
    docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    assert any(not validator.is_valid(doc) for doc in docs)


_SUITE_POLICY = "policy: p\nrules:\n  - id: all\n    effect: allow\n"
_GOOD_SUITES = [
    {"cases": [{"request": {}, "expect": {"effect": "allow"}}]},
    {"suite": "s", "defaults": {"request": {}}, "cases": [{"expect": {"effect": "allow"}}]},
]
_BAD_SUITES = [
    {"cases": []},
    {"cases": [{"request": {}, "expect": {"effect": "permit"}}]},
    {"cases": [{"request": {}, "expect": {"effect": "allow", "rule": ["all"]}}]},
    {"cases": [{"request": {}, "expect": {"effect": "allow"}, "when": "x"}]},
    {"cases": [{"expect": {"effect": "allow"}}]},  # no request, here or in defaults
    {"defaults": {"expect": {"effect": "allow"}}, "cases": [{"request": {}}]},
    {"cases": [{"request": {}, "now": 5, "expect": {"effect": "allow"}}]},
    {"cases": [{"request": [], "expect": {"effect": "allow"}}]},
    {"case": [{"request": {}, "expect": {"effect": "allow"}}]},
]


def _run_suite(tmp_path: Path, suite: Any) -> None:
    (tmp_path / "p.yaml").write_text(_SUITE_POLICY, encoding="utf-8")
    (tmp_path / "p_test.yaml").write_text(yaml.safe_dump(suite), encoding="utf-8")
    run_tests(tmp_path)


@pytest.mark.parametrize("suite", _GOOD_SUITES)
def test_a_well_formed_test_suite_is_accepted(suite: Any, tmp_path: Path) -> None:
    assert _validator("test").is_valid(suite)
    _run_suite(tmp_path, suite)


@pytest.mark.parametrize("suite", _BAD_SUITES)
def test_a_malformed_test_suite_is_refused_by_both(suite: Any, tmp_path: Path) -> None:
    assert not _validator("test").is_valid(suite)
    with pytest.raises(PolicyError):
        _run_suite(tmp_path, suite)


def test_a_data_file_is_a_mapping() -> None:
    validator = _validator("data")
    assert validator.is_valid({})
    assert validator.is_valid({"networks": {"office": ["10.0.0.0/8"]}})
    assert not validator.is_valid(["10.0.0.0/8"])
    assert not validator.is_valid("text")


# Documents near the valid shape: a valid policy, then one or two changes at random.
_NAME = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,8}", fullmatch=True)
_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 120),
    st.sampled_from([0.5, -1.5, 2**31, 2**31 - 1]),
    st.sampled_from(["", "allow", "deny", "step_up", "enforce", "report-only", "Bad Name"]),
    st.sampled_from(["mask", "tokenize", "limit", "audit", "*", "a.b", "mfa", "x y"]),
    _NAME,
)
_KEYS_POOL = [
    "policy", "description", "target", "obligation_types", "signals", "rules",
    "resources", "actions", "name", "when", "score", "id", "effect", "reason", "mode",
    "step_up", "obligations", "acr_values", "max_age", "type", "fields", "keep_last",
    "replacement", "max", "field", "owner",
]  # fmt: skip
_VALUE = st.recursive(
    _SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(_KEYS_POOL), inner, max_size=3),
    ),
    max_leaves=6,
)
_OBLIGATION = st.one_of(
    st.fixed_dictionaries({"type": st.just("mask"), "fields": st.just(["ssn"])}),
    st.fixed_dictionaries({"type": st.just("limit"), "max": st.integers(1, 50)}),
    st.fixed_dictionaries({"type": st.just("audit"), "level": st.just("high")}),
)
_RULE = st.fixed_dictionaries(
    {"id": _NAME, "effect": st.sampled_from(["allow", "deny", "step_up"])},
    optional={
        "when": st.just("subject.id != ''"),
        "reason": st.just("why"),
        "mode": st.sampled_from(["enforce", "report-only"]),
        "obligations": st.lists(_OBLIGATION, max_size=2),
    },
)
_SIGNAL = st.fixed_dictionaries(
    {"name": _NAME, "score": st.integers(0, 100)}, optional={"when": st.just("true")}
)
_POLICY = st.fixed_dictionaries(
    {"policy": _NAME, "rules": st.lists(_RULE, min_size=1, max_size=3)},
    optional={
        "description": st.just("text"),
        "target": st.fixed_dictionaries(
            {}, optional={"resources": st.just(["doc"]), "actions": st.just("read")}
        ),
        "signals": st.lists(_SIGNAL, max_size=2),
        "obligation_types": st.just(["audit"]),
    },
)


def _containers(value: Any) -> list[Any]:
    found = [value] if isinstance(value, dict | list) else []
    children = (
        value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    )
    for child in children:
        found.extend(_containers(child))
    return found


@st.composite
def _near_valid(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(draw(_POLICY))  # st.just values are shared: never mutate them
    for _ in range(draw(st.integers(0, 2))):
        targets = _containers(doc)
        target = targets[draw(st.integers(0, len(targets) - 1))]
        if isinstance(target, dict):
            key = draw(st.sampled_from([*_KEYS_POOL, *target]))
            if key in target and draw(st.booleans()):
                del target[key]
            else:
                target[key] = draw(_VALUE)
        elif target:
            target[draw(st.integers(0, len(target) - 1))] = draw(_VALUE)
        else:
            target.append(draw(_VALUE))
    return doc


# What a schema cannot see: names given twice, obligation types declared elsewhere.
_UNSEEN = ("duplicate rule id", "duplicate signal name", "unknown obligation type")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_near_valid())
def test_schema_and_loader_agree_near_the_valid_shape(doc: Any) -> None:
    validator = _validator("policy")
    [node] = load_documents(json.dumps(doc))
    diagnostics = validate_policy(node, "p.yaml").diagnostics
    schema_ok = validator.is_valid(doc)
    if not schema_ok:
        assert diagnostics, "the schema refused what the loader accepts"
    seen = [d for d in diagnostics if not any(u in d.message for u in _UNSEEN)]
    assert schema_ok == (not seen), [d.message for d in diagnostics]


@pytest.mark.parametrize("kind", KINDS)
def test_cli_prints_each_schema(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", kind]) == 0
    assert json.loads(capsys.readouterr().out) == schema(kind)


def test_console_script_prints_the_schema_and_refuses_an_unknown_kind() -> None:
    run = [sys.executable, "-m", "zerotrust", "schema"]
    done = subprocess.run([*run, "policy"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == schema_text("policy")
    bad = subprocess.run([*run, "rules"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2
    assert "invalid choice: 'rules'" in bad.stderr
    assert bad.stdout == ""


DOC = ROOT / "docs" / "policy-language.md"


def _section_blocks() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Schemas for editors\n", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^```(\w+)\n(.*?)^```", section, re.S | re.M))


def test_the_editor_section_runs(tmp_path: Path) -> None:
    """The commands write the schemas, the example policy names one by its first line
    and loads, and the workspace settings point at the files written."""
    blocks = _section_blocks()
    (tmp_path / "schemas").mkdir()
    for line in blocks["sh"].splitlines():
        command, _, _comment = line.partition("#")
        words = command.split()
        assert words[:2] == ["zerotrust", "schema"] and words[3] == ">", line
        done = subprocess.run(
            [sys.executable, "-m", "zerotrust", "schema", words[2]],
            capture_output=True,
            text=True,
            check=True,
        )
        (tmp_path / "schemas" / words[4]).write_text(done.stdout, encoding="utf-8")
    policy = tmp_path / "policies" / "reports.yaml"
    policy.parent.mkdir()
    policy.write_text(blocks["yaml"], encoding="utf-8")
    first = blocks["yaml"].splitlines()[0]
    named = first.removeprefix("# yaml-language-server: $schema=")
    assert named != first
    schema_file = policy.parent / named
    document = yaml.safe_load(blocks["yaml"])
    assert jsonschema.Draft202012Validator(json.loads(schema_file.read_text())).is_valid(document)
    load_path(policy, default_backend())
    settings = json.loads(blocks["json"])
    for path, globs in settings["yaml.schemas"].items():
        assert (tmp_path / path).is_file()
        assert all(
            _kind(Path(f"x{g.removeprefix('*')}")) == Path(path).name.split(".")[0] for g in globs
        )
    for entry in settings["json.schemas"]:
        assert (tmp_path / entry["url"]).is_file()


def test_what_the_section_says_a_schema_cannot_see() -> None:
    validator = _validator("policy")
    doc = {
        "policy": "p",
        "signals": [{"name": "s", "score": 1.0}],
        "rules": [{"id": "r", "effect": "allow"}],
    }
    assert validator.is_valid(doc)  # an integral float: the loader refuses it
    [node] = load_documents(yaml.safe_dump(doc))
    assert validate_policy(node, "p.yaml").diagnostics
    suite = {"cases": [{"request": {}, "expect": {"effect": "allow", "risk": "high"}}]}
    assert not _validator("test").is_valid(suite)
