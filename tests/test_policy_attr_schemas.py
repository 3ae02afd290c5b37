"""Attribute schemas (``*.schema.yaml``): read into a typed model at load, refused with
positions outside the documented JSON Schema subset, and requests checked against them
at evaluate (``schema_validation`` off, report or enforce).

Each refusal also has a directory in ``policies/malformed_sets`` with its exact position.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zerotrust import PolicyDecisionPoint, PolicyError, RequestError, ZeroTrustError
from zerotrust.cel import default_backend
from zerotrust.cli import main
from zerotrust.policy.attr_check import _accepts, _compile
from zerotrust.policy.attr_schema import (
    BoolType,
    DoubleType,
    DurationType,
    IntType,
    ListType,
    MapType,
    ObjectType,
    StringType,
    TimestampType,
)
from zerotrust.policy.loader import is_policy_file, is_schema_file, load_texts
from zerotrust.policy.schemas import KINDS, schema, schema_text

POLICY = "policy: documents\nrules:\n  - id: everyone\n    effect: allow\n"

SCHEMA = """\
resources:
  document:
    properties:
      owner: {type: string}
      pages: {type: integer}
      score: {type: number}
      draft: {type: boolean}
      level: {type: string, enum: [public, internal, secret]}
      created: {type: string, format: date-time}
      ttl: {type: string, format: duration}
      origin: {type: string, format: ip}
      network: {type: string, format: cidr}
      tags: {type: array, items: {type: string}}
      counts: {type: object, additionalProperties: {type: integer}}
      author:
        type: object
        properties:
          name: {type: string}
        required: [name]
    required: [owner]
    additionalProperties: false
subjects:
  user:
    properties:
      department: {type: string}
action:
  properties:
    reason: {type: string}
device:
  properties:
    managed: {type: boolean}
context:
  properties:
    ip: {type: string, format: ip}
"""

GOOD_PROPERTIES: dict[str, Any] = {
    "owner": "alice",
    "pages": 3,
    "score": 2,  # an int where a number is declared, as CEL reads JSON
    "draft": False,
    "level": "internal",
    "created": "2026-01-31T09:00:00Z",
    "ttl": "1h30m",
    "origin": "2001:db8::1",
    "network": "10.0.0.0/8",
    "tags": ["a", "b"],
    "counts": {"x": 1},
    "author": {"name": "Alice"},
}


def _request(properties: dict[str, Any], **parts: Any) -> dict[str, Any]:
    return {
        "subject": parts.get("subject", {"type": "user", "id": "alice"}),
        "resource": {"type": parts.get("type", "document"), "id": "d1", "properties": properties},
        "action": parts.get("action", {"name": "read"}),
        "device": parts.get("device", {}),
        "context": parts.get("context", {}),
    }


def _pdp(mode: str = "enforce", schema_text: str = SCHEMA) -> PolicyDecisionPoint:
    texts = {"p.yaml": POLICY, "a.schema.yaml": schema_text}
    return PolicyDecisionPoint.from_texts(texts, schema_validation=mode)


def _problems(schema_text: str) -> list[tuple[int, int, str]]:
    with pytest.raises(PolicyError) as info:
        load_texts({"p.yaml": POLICY, "a.schema.yaml": schema_text}, default_backend())
    return [(d.line, d.column, d.message) for d in info.value.diagnostics]


# --- the model ---------------------------------------------------------------------------


def test_each_kind_of_field_is_read_into_its_own_type() -> None:
    loaded = load_texts({"p.yaml": POLICY, "a.schema.yaml": SCHEMA}, default_backend())
    assert loaded.schemas is not None
    document = loaded.schemas.resource("document")
    assert document is not None
    assert document.required == ("owner",)
    assert document.additional is False
    assert dict(document.properties) == {
        "owner": StringType(),
        "pages": IntType(),
        "score": DoubleType(),
        "draft": BoolType(),
        "level": StringType(enum=("public", "internal", "secret")),
        "created": TimestampType(),
        "ttl": DurationType(),
        "origin": StringType(format="ip"),
        "network": StringType(format="cidr"),
        "tags": ListType(StringType()),
        "counts": MapType(IntType()),
        "author": ObjectType((("name", StringType()),), ("name",), True),
    }
    assert loaded.schemas.resource("folder") is None
    assert loaded.schemas.subject("user") == ObjectType((("department", StringType()),))
    assert loaded.schemas.context == ObjectType((("ip", StringType(format="ip")),))


def test_a_set_without_schema_files_has_no_schemas() -> None:
    assert load_texts({"p.yaml": POLICY}, default_backend()).schemas is None


def test_schema_files_are_not_policy_files() -> None:
    assert is_schema_file("a/b.schema.yaml") and is_schema_file("b.schema.yml")
    assert not is_policy_file("b.schema.yaml")
    assert not is_schema_file("b.schema.json")  # YAML reads JSON: name it .schema.yaml


def test_a_changed_schema_is_a_new_revision() -> None:
    plain = load_texts({"p.yaml": POLICY}, default_backend())
    one = load_texts({"p.yaml": POLICY, "a.schema.yaml": SCHEMA}, default_backend())
    two = load_texts(
        {"p.yaml": POLICY, "a.schema.yaml": SCHEMA.replace("pages: {type: integer}", "")},
        default_backend(),
    )
    assert len({plain.revision, one.revision, two.revision}) == 3
    again = load_texts({"p.yaml": POLICY, "a.schema.yaml": SCHEMA}, default_backend())
    assert again.revision == one.revision
    renamed = load_texts({"p.yaml": POLICY, "b.schema.yml": SCHEMA}, default_backend())
    assert renamed.revision == one.revision  # what the schemas say, not where


# --- refusals, each at its position --------------------------------------------------------

REFUSALS = [
    (
        "resources:\n  document:\n    properties:\n      a: {type: string, pattern: x}\n",
        (4, 25, "resources.document.a: unknown schema keyword 'pattern'"),
    ),
    (
        "resources:\n  document:\n    properties:\n      a: {tpye: string}\n",
        (4, 11, "unknown schema keyword 'tpye': did you mean 'type'?"),
    ),
    (
        "resources:\n  document:\n    properties:\n      a: {type: strng}\n",
        (4, 17, "not 'strng': did you mean 'string'?"),
    ),
    (
        "resources:\n  document:\n    properties:\n      a: {type: [string, 'null']}\n",
        (4, 17, "type must be one of string, integer, number, boolean, array, object"),
    ),
    (
        "resources:\n  document:\n    properties:\n      a: {format: ip}\n",
        (4, 10, "resources.document.a: a schema must declare its 'type'"),
    ),
    (
        "resources:\n  document:\n    properties:\n      a: {type: string, format: email}\n",
        (4, 33, "format must be one of date-time, duration, ip, cidr, not 'email'"),
    ),
    (
        "resources:\n  document:\n    properties:\n      a: {type: integer, format: ip}\n",
        (4, 26, "'format' does not apply to type 'integer'"),
    ),
    (
        "resources:\n  document:\n    properties:\n      a: {type: string, items: {type: string}}"
        "\n",
        (4, 25, "'items' does not apply to type 'string'"),
    ),
    (
        "resources:\n  document:\n    properties:\n      a: {type: boolean, enum: [true, 1]}\n",
        (4, 39, "enum value 1 is not a boolean"),
    ),
    (
        "resources:\n  document:\n    properties:\n      a: {type: number, enum: [1, '2']}\n",
        (4, 35, "enum value '2' is not a number"),
    ),
    (
        "resources:\n  document:\n    properties:\n      a: {type: string, enum: [x, x]}\n",
        (4, 35, "enum value 'x' is listed twice"),
    ),
    (
        "resources:\n  document:\n    properties:\n      a: {type: string, enum: []}\n",
        (4, 31, "enum must be a non-empty list of values"),
    ),
    (
        "resources:\n  document:\n    properties:\n      a: {type: string, format: ip, enum: [x]}"
        "\n",
        (4, 43, "enum is not allowed with a format"),
    ),
    (
        "resources:\n  document:\n    properties: {a: {type: string}}\n    required: [b]\n",
        (4, 16, "required field 'b' is not in properties"),
    ),
    (
        "resources:\n  document:\n    properties: {a: {type: string}}\n    required: [a, a]\n",
        (4, 19, "field 'a' is required twice"),
    ),
    ("resources:\n  document: {type: array}\n", (2, 20, "must be an object schema, not 'array'")),
    ("resources:\n  document: [a]\n", (2, 13, "a schema must be a mapping")),
    ("resources: [document]\n", (1, 12, "resources must be a mapping of type names")),
    ("contexts: {}\n", (1, 1, "unknown schema file key 'contexts': did you mean 'context'?")),
    ("[resources]\n", (1, 1, "a schema file must hold a mapping")),
    ("action: {}\n---\ndevice: {}\n", (3, 1, "a schema file holds one document")),
    (
        "context:\n  properties: {ip: {type: string}}\nresources: {}\ncontext: {}\n",
        (4, 1, "duplicate key"),
    ),
    (
        "resources:\n  document: {additionalProperties: {type: map}}\n",
        (2, 43, "resources.document.*: type must be one of"),
    ),
]


@pytest.mark.parametrize(("text", "expected"), REFUSALS, ids=[e[2][:40] for _, e in REFUSALS])
def test_each_refusal_is_reported_at_its_position(
    text: str, expected: tuple[int, int, str]
) -> None:
    problems = _problems(text)
    line, column, message = expected
    assert any(
        (got_line, got_column) == (line, column) and message in got
        for got_line, got_column, got in problems
    ), problems


def test_every_problem_is_reported_at_once() -> None:
    text = (
        "resources:\n  document:\n    properties:\n"
        "      a: {type: strng}\n      b: {type: string, minimum: 1}\n"
        "      c: {type: integer, enum: [x]}\n"
    )
    assert [(line, col) for line, col, _ in _problems(text)] == [(4, 17), (5, 25), (6, 33)]


def test_a_type_described_in_two_files_is_refused_at_the_second() -> None:
    texts = {
        "p.yaml": POLICY,
        "a.schema.yaml": "subjects:\n  user: {}\n",
        "b.schema.yaml": "subjects:\n  user: {}\naction: {}\n",
    }
    with pytest.raises(PolicyError) as info:
        load_texts(texts, default_backend())
    [only] = info.value.diagnostics
    assert (only.file, only.line, only.column) == ("b.schema.yaml", 2, 3)
    assert "subject type 'user' is already declared at a.schema.yaml:2:3" in only.message


# --- the editor JSON Schema agrees ---------------------------------------------------------


def test_the_editor_schema_accepts_the_documented_form() -> None:
    jsonschema.Draft202012Validator.check_schema(schema("schema"))
    jsonschema.Draft202012Validator(schema("schema")).validate(yaml.safe_load(SCHEMA))


# What a JSON Schema cannot see: a second YAML document, a duplicate key, and whether a
# required name is among the properties.
_UNSEEN = ("one document", "duplicate key", "is not in properties")


@pytest.mark.parametrize("text", [t for t, e in REFUSALS if not any(u in e[2] for u in _UNSEEN)])
def test_the_editor_schema_refuses_what_the_loader_refuses(text: str) -> None:
    validator = jsonschema.Draft202012Validator(schema("schema"))
    assert not validator.is_valid(yaml.safe_load(text))


# --- requests checked at evaluate ----------------------------------------------------------


def test_a_conforming_request_passes_every_mode() -> None:
    for mode in ("off", "report", "enforce"):
        decision = _pdp(mode).evaluate(_request(GOOD_PROPERTIES))
        assert decision.allowed and decision.errors == ()


MISMATCHES = [
    ("owner", 7, "resource.properties.owner", "expected a string"),
    ("pages", 1.0, "resource.properties.pages", "expected an integer"),
    ("pages", True, "resource.properties.pages", "expected an integer"),
    ("score", "2", "resource.properties.score", "expected a number"),
    ("draft", 0, "resource.properties.draft", "expected a boolean"),
    ("level", "top", "resource.properties.level", "expected one of 'public', 'internal'"),
    ("created", "31/01/2026", "resource.properties.created", "expected a timestamp string"),
    ("ttl", "P1D", "resource.properties.ttl", "expected a duration string"),
    ("origin", "10.0.0.300", "resource.properties.origin", "an IP address"),
    ("network", "10.0.0.1", "resource.properties.network", "a CIDR block"),
    ("tags", ["a", 2], "resource.properties.tags[1]", "expected a string"),
    ("tags", "a", "resource.properties.tags", "expected a list"),
    ("counts", {"x": "1"}, "resource.properties.counts.x", "expected an integer"),
    ("author", {}, "resource.properties.author.name", "is required and missing"),
    ("extra", 1, "resource.properties.extra", "is not declared in the schema"),
]


@pytest.mark.parametrize(("key", "value", "field", "message"), MISMATCHES)
def test_enforce_refuses_a_mismatch_naming_the_field(
    key: str, value: Any, field: str, message: str
) -> None:
    with pytest.raises(RequestError) as info:
        _pdp("enforce").evaluate(_request({**GOOD_PROPERTIES, key: value}))
    assert info.value.field == field
    assert message in str(info.value)


@pytest.mark.parametrize(("key", "value", "field", "message"), MISMATCHES)
def test_report_lists_the_mismatch_and_decides_as_before(
    key: str, value: Any, field: str, message: str
) -> None:
    request = _request({**GOOD_PROPERTIES, key: value})
    decision = _pdp("report").evaluate(request)
    assert decision.allowed  # the policies' decision, unchanged
    [error] = decision.errors
    assert (error.rule, error.kind) == (field, "schema")
    assert message in error.message
    assert _pdp("off").evaluate(request).errors == ()


def test_a_missing_required_field_and_the_other_parts_are_checked() -> None:
    request = _request(
        {"pages": 1},
        subject={"type": "user", "id": "a", "properties": {"department": 5}},
        action={"name": "read", "properties": {"reason": []}},
        device={"managed": "yes"},
        context={"ip": "nowhere"},
    )
    fields = [e.rule for e in _pdp("report").evaluate(request).errors]
    assert fields == [
        "resource.properties.owner",
        "subject.properties.department",
        "action.properties.reason",
        "device.managed",
        "context.ip",
    ]
    with pytest.raises(RequestError, match=r"owner: is required and missing \(and 4 more"):
        _pdp("enforce").evaluate(request)


def test_a_type_without_a_schema_is_not_checked() -> None:
    request = _request({"anything": [1, {"x": None}]}, type="folder")
    assert _pdp("enforce").evaluate(request).errors == ()
    subject = {"type": "service", "id": "s", "properties": {"department": 5}}
    assert _pdp("enforce").evaluate(_request(GOOD_PROPERTIES, subject=subject)).allowed


def test_report_is_the_default_and_a_bad_mode_is_refused() -> None:
    texts = {"p.yaml": POLICY, "a.schema.yaml": SCHEMA}
    decision = PolicyDecisionPoint.from_texts(texts).evaluate(_request({"pages": 1}))
    assert [e.kind for e in decision.errors] == ["schema"]
    with pytest.raises(ZeroTrustError, match="schema_validation must be one of off, report"):
        PolicyDecisionPoint.from_texts(texts, schema_validation="strict")


def test_enforce_refuses_before_anything_is_decided_in_every_entry_point() -> None:
    pdp = _pdp("enforce")
    good, bad = _request(GOOD_PROPERTIES), _request({"owner": 1})
    with pytest.raises(RequestError):
        pdp.evaluate_many([good, bad])
    with pytest.raises(RequestError):
        asyncio.run(pdp.evaluate_async(bad))
    assert asyncio.run(pdp.evaluate_async(good)).allowed


# --- property: conforming requests pass; one wrong field is named --------------------------

_SCALARS: dict[str, tuple[dict[str, Any], st.SearchStrategy[Any], Any]] = {
    # schema, conforming values, a value of the wrong type
    "string": ({"type": "string"}, st.text(max_size=5), 1),
    "integer": ({"type": "integer"}, st.integers(-(2**63), 2**63 - 1), "1"),
    "number": (
        {"type": "number"},
        st.one_of(st.integers(-1000, 1000), st.floats(allow_nan=False, allow_infinity=False)),
        True,
    ),
    "boolean": ({"type": "boolean"}, st.booleans(), 1),
    "timestamp": (
        {"type": "string", "format": "date-time"},
        st.datetimes(min_value=datetime.datetime(1000, 1, 1)).map(
            lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")
        ),
        "yesterday",
    ),
    "duration": (
        {"type": "string", "format": "duration"},
        st.integers(0, 10**6).map(lambda n: f"{n}s"),
        "1 day",
    ),
    "ip": ({"type": "string", "format": "ip"}, st.ip_addresses().map(str), "host"),
    "cidr": (
        {"type": "string", "format": "cidr"},
        st.ip_addresses(v=4).map(lambda a: f"{a}/32"),
        [],
    ),
}


@st.composite
def _field(draw: st.DrawFn, depth: int = 0) -> tuple[dict[str, Any], Any, Any]:
    """A field schema, a conforming value, and a value of the wrong type."""
    kind = draw(st.sampled_from([*_SCALARS, "list", "map", "object"][: 8 if depth > 1 else 11]))
    if kind in _SCALARS:
        made, values, wrong = _SCALARS[kind]
        return made, draw(values), wrong
    inner, value, _ = draw(_field(depth + 1))
    if kind == "list":
        return {"type": "array", "items": inner}, [value], {"not": "a list"}
    if kind == "map":
        return {"type": "object", "additionalProperties": inner}, {"k": value}, ["not a map"]
    return {"type": "object", "properties": {"f": inner}, "required": ["f"]}, {"f": value}, 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fields=st.dictionaries(
        st.from_regex(r"[a-z]{1,6}", fullmatch=True), _field(), min_size=1, max_size=4
    ),
    data=st.data(),
)
def test_conforming_requests_pass_and_one_wrong_field_is_named(
    fields: dict[str, tuple[dict[str, Any], Any, Any]], data: st.DataObject
) -> None:
    document = {
        "resources": {
            "document": {
                "properties": {k: v[0] for k, v in fields.items()},
                "required": sorted(fields),
                "additionalProperties": False,
            }
        }
    }
    pdp = _pdp("enforce", yaml.safe_dump(document))
    good = {k: v[1] for k, v in fields.items()}
    assert pdp.evaluate(_request(good)).errors == ()
    broken = data.draw(st.sampled_from(sorted(fields)))
    with pytest.raises(RequestError) as info:
        pdp.evaluate(_request({**good, broken: fields[broken][2]}))
    assert info.value.field == f"resource.properties.{broken}"


# --- the command line --------------------------------------------------------------------


def test_validate_reports_a_bad_schema_through_the_console_script(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(POLICY, encoding="utf-8")
    (tmp_path / "a.schema.yaml").write_text(SCHEMA, encoding="utf-8")
    run = [sys.executable, "-m", "zerotrust", "validate", str(tmp_path)]
    done = subprocess.run(run, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    (tmp_path / "a.schema.yaml").write_text(SCHEMA.replace("integer", "int"), encoding="utf-8")
    done = subprocess.run(run, capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert f"{tmp_path / 'a.schema.yaml'}:5:21: resources.document.pages: type must be" in (
        done.stdout + done.stderr
    )
    assert main(["validate", str(tmp_path)]) == 1


def test_the_editor_schema_is_shipped_beside_the_others() -> None:
    assert "schema" in KINDS
    assert schema_text("schema").startswith("{")


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(-5, 5)
    | st.sampled_from(["", "x", "10.0.0.1", "10.0.0.0/8", "1h", "2026-01-31T09:00:00Z"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("fkx"), inner),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    field=_field(),
    value=_JSON,
    use_good=st.booleans(),
    additional=st.sampled_from([True, False, {"type": "integer"}]),
    extra=st.dictionaries(st.sampled_from("gx"), _JSON, max_size=2),
)
def test_the_fast_check_and_the_reporting_walk_agree(
    field: tuple[dict[str, Any], Any, Any],
    value: Any,
    use_good: bool,
    additional: Any,
    extra: dict[str, Any],
) -> None:
    """Every request takes the fast check; only a refused one is walked for paths. They
    must agree, or a mismatch would pass unreported (or a good request be refused)."""
    document = {"context": {"properties": {"f": field[0]}, "additionalProperties": additional}}
    loaded = load_texts(
        {"p.yaml": POLICY, "a.schema.yaml": yaml.safe_dump(document)}, default_backend()
    )
    assert loaded.schemas is not None and loaded.schemas.context is not None
    made = loaded.schemas.context
    candidate = {**extra, "f": field[1] if use_good else value}
    out: list[tuple[str, str]] = []
    _compile(made)(candidate, "context", out)
    assert _accepts(made)(candidate) is (not out), out
    if use_good and not extra:
        assert out == []


@pytest.mark.parametrize("name", ["it's", 'a"b', "x\\n", "'); raise SystemExit('", "ü €", ""])
def test_field_names_are_data_never_code(name: str) -> None:
    """The fast check is generated code: a field name must stay a string literal in it."""
    document = {"context": {"properties": {name: {"type": "integer"}}, "required": [name]}}
    pdp = _pdp("enforce", json.dumps(document))
    assert pdp.evaluate(_request(GOOD_PROPERTIES, context={name: 1})).allowed
    with pytest.raises(RequestError) as info:
        pdp.evaluate(_request(GOOD_PROPERTIES, context={name: "1"}))
    assert info.value.field == f"context.{name}"
