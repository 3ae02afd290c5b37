"""The condition type checker: with schema files, every rule and signal condition is
checked at load against the schemas and the loaded data; without them nothing changes.

Each refusal of the ill-typed corpus (``policies/malformed_sets/typecheck-*``) is also
checked with its exact position by ``test_policy_loading``; the soundness and
completeness properties are in ``test_policy_typecheck_properties``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zerotrust import PolicyDecisionPoint, PolicyError
from zerotrust.cel import default_backend
from zerotrust.cli import main
from zerotrust.policy.loader import load_texts

SCHEMA = """\
resources:
  document:
    properties:
      owner_dept: {type: string}
      pages: {type: integer}
      price: {type: number}
      draft: {type: boolean}
      label: {type: string, enum: [public, internal]}
      created: {type: string, format: date-time}
      origin: {type: string, format: ip}
      tags: {type: array, items: {type: string}}
      counts: {type: object, additionalProperties: {type: integer}}
      author:
        type: object
        properties:
          name: {type: string}
          teams: {type: array, items: {type: string}}
        required: [name]
    required: [owner_dept, pages, price, tags, counts, author]
    additionalProperties: false
  folder:
    properties:
      owner_dept: {type: string}
      pages: {type: integer}
    required: [owner_dept]
subjects:
  user:
    properties:
      department: {type: string}
      level: {type: integer}
    required: [department]
device:
  properties:
    managed: {type: boolean}
  required: [managed]
"""

DATA = """\
owners: {d-1: finance, d-2: support}
limits: {pages: 10}
networks: [10.0.0.0/8]
"""


def _policy(when: str, target: str = "[document]", signal: bool = False) -> str:
    quoted = when.replace("'", "''")
    body = (
        f"signals:\n  - name: s\n    score: 10\n    when: '{quoted}'\nrules:\n"
        "  - id: r\n    effect: allow\n"
        if signal
        else f"rules:\n  - id: r\n    effect: allow\n    when: '{quoted}'\n"
    )
    return f"policy: p\ntarget:\n  resources: {target}\n{body}"


def _load(when: str, schema: str = SCHEMA, **kw: object) -> object:
    texts = {"p.yaml": _policy(when, **kw), "a.schema.yaml": schema, "d.data.yaml": DATA}
    return load_texts(texts, default_backend())


def _problems(when: str, schema: str = SCHEMA, **kw: object) -> list[tuple[int, str]]:
    """(column in the condition, message) of each diagnostic."""
    with pytest.raises(PolicyError) as info:
        _load(when, schema, **kw)
    offset = len("    when: '") + 1
    return [(d.column - offset + 1, d.message) for d in info.value.diagnostics]


ACCEPTED = [
    "resource.properties.owner_dept == subject.properties.department",
    "resource.properties.pages >= 3 && resource.properties.price < 2.5",
    "resource.properties.price >= 1",  # numbers of any kind compare by value
    "double(resource.properties.price) * 2.0 > 10.0",
    "resource.properties.pages + 1 > 3 && size(resource.properties.tags) < 4",
    "'x' in resource.properties.tags && resource.properties.tags.exists(t, t.startsWith('a'))",
    "resource.properties.counts.all(k, resource.properties.counts[k] > 0)",
    "resource.properties.author.name == 'ann'",
    "has(resource.properties.author.teams) && 'ops' in resource.properties.author.teams",
    "!has(resource.properties.label) || resource.properties.label == 'public'",
    "has(resource.properties.label) ? resource.properties.label != 'internal' : true",
    "has(resource.properties.created) && timestamp(resource.properties.created) < now",
    "has(resource.properties.origin) && ip_in_cidr(resource.properties.origin, data.networks)",
    "data.owners[resource.id] == subject.properties.department",
    "data.limits.pages >= resource.properties.pages",
    "resource.id != null && resource.id.size() > 0",
    "resource.id == null ? true : resource.id.startsWith('d-')",
    "behavior.anything.at.all > 3",
    "context.whatever == 1",  # no schema for context: dyn
    "risk.score > 50 && 'x' in risk.signals",
    "device.managed",
    "subject.type == 'user' && action.name == 'read'",
    "resource.properties.pages == 'three'",  # unlike types are unequal, never an error
    "has(resource.properties.label) && 'internal' != resource.properties.label",
    "[1, 2].map(x, x * 2).exists(y, y > 3)",
    "dyn(resource.properties.pages) + 1.0 > 0.0",  # dyn: anything goes
    "resource.properties.tags.filter(t, t != '').size() > 0",
    "has(subject.properties.level) && subject.properties.level > 1",
    "has(resource.properties.counts.x) && resource.properties.counts.x > 1",
    "resource.properties.counts[action.name] > 1",  # a key known only at run time
    "matches(subject.id, '^u-') && startsWith(subject.id, 'u')",
    "string(resource.properties.price) != '' && int(now) > 0 && double(1u) > 0.0",
]


@pytest.mark.parametrize("when", ACCEPTED)
def test_well_typed_conditions_load(when: str) -> None:
    _load(when)


REFUSED = [
    (
        "resource.properties.owner_dep == 'x'",
        21,
        "resource.properties.owner_dep is not declared in the schema of resource type "
        "'document': did you mean 'owner_dept'?",
    ),
    ("resource.properties.pages >= '3'", 1, "no such overload: _>=_(int, string)"),
    ("size(1) > 0", 1, "no such overload: size(int)"),
    ("subject.properties.department + 1 == 2", 1, "no such overload: _+_(string, int)"),
    ("resource.properties.price + 1 > 2", 1, "_+_(number, int) (a number may be an int"),
    ("resource.properties.label == 'public'", 21, "resource.properties.label is optional"),
    ("resource.properties.pages", 1, "the condition is of type int, never a bool"),
    ("resource.properties.tags.all(t, t + 1 > 0)", 33, "no such overload: _+_(string, int)"),
    ("resource.properties.pages.exists(t, true)", 27, "exists() needs a list or a map, not int"),
    ("resource.properties.author.nme == 'a'", 28, "did you mean 'name'?"),
    ("resource.properties.author.teams[0] == 'a'", 28, "author.teams is optional"),
    ("data.ownrs['x'] == 'a'", 6, "data.ownrs is not declared in the loaded data: did you"),
    ("resource.id.size() > 0", 13, "no such overload: string|null.size()"),
    ("has(resource.properties.pages.x)", 5, "has() needs a map or an object, not int"),
    ("resource.properties.pages.x > 1", 27, "type int has no fields"),
    ("now > 1", 1, "no such overload: _>_(timestamp, int)"),
    ("risk.scor > 1", 6, "did you mean 'score'?"),
    ("subject.propertes.department == 'x'", 9, "did you mean 'properties'?"),
    ("'a' in 1", 1, "no such overload: @in(string, int)"),
    ("resource.properties.tags[true] == 'a'", 26, "no such overload: _[_](list(string), bool)"),
    ("!resource.properties.pages", 2, "the operand of ! must be a bool, not int"),
    ("resource.properties.pages > 1 && 'a'", 34, "an operand of && must be a bool"),
    ("-resource.properties.owner_dept == 'a'", 1, "no such overload: -_(string)"),
    ("device.managed.startsWith('a')", 16, "no such overload: bool.startsWith(string)"),
    ("string(resource.properties.tags) == ''", 1, "no such overload: string(list(string))"),
    (
        "has(resource.properties.label) && resource.properties.label == 'publc'",
        64,
        '"publc" is not one of the values the schema allows ("public", "internal"): did you '
        'mean "public"?',
    ),
    (
        "has(resource.properties.label) && resource.properties.label in ['public', 'secret']",
        77,
        '"secret" is not one of the values the schema allows',
    ),
    ("now.getHours(1) == 1", 5, "no such overload: timestamp.getHours(int)"),
    ("resource.properties.counts.x > 1", 28, "counts.x may be absent (a key of a map)"),
    ("resource.properties.counts['x'] > 1", 28, "counts.x may be absent"),
]


@pytest.mark.parametrize(("when", "column", "message"), REFUSED)
def test_ill_typed_conditions_are_refused_at_their_position(
    when: str, column: int, message: str
) -> None:
    found = _problems(when)
    assert len(found) == 1, found
    assert found[0][0] == column
    assert message in found[0][1]
    assert found[0][1].startswith("type: ")


def test_a_field_in_only_some_targeted_types_is_optional() -> None:
    # folder declares no price, and pages only as optional
    assert (
        "is optional in the schema of resource types 'document', 'folder'"
        in (_problems("resource.properties.pages > 1", target="[document, folder]")[0][1])
    )
    assert (
        "price is optional"
        in _problems("resource.properties.price > 1", target="[document, folder]")[0][1]
    )
    _load("resource.properties.owner_dept == 'a'", target="[document, folder]")
    _load(
        "has(resource.properties.pages) && resource.properties.pages > 1",
        target="[document, folder]",
    )


def test_resource_properties_are_dyn_without_a_target_or_a_schema() -> None:
    when = "resource.properties.anything + 1 > 2"
    _load(when, target="[invoice]")  # no schema for invoice
    _load(when, target="[document, invoice]")
    texts = {
        "p.yaml": "policy: p\nrules:\n  - id: r\n    effect: allow\n    when: " + when + "\n",
        "a.schema.yaml": SCHEMA,
    }
    load_texts(texts, default_backend())


def test_a_signal_is_checked_too() -> None:
    found = _problems("subject.properties.department > 1", signal=True)
    assert [m for _, m in found] == ["type: no such overload: _>_(string, int)"]


def test_without_schema_files_nothing_is_type_checked() -> None:
    texts = {"p.yaml": _policy("resource.properties.pages >= '3' && size(1) > 0")}
    load_texts(texts, default_backend())


def test_guards_follow_the_short_circuit_order() -> None:
    label = "resource.properties.label"
    for when in (
        f"{label} == 'public' && has({label})",  # the guard comes too late
        f"has({label}) || {label} == 'public'",  # only where it is absent
        f"!has({label}) && {label} == 'public'",
        f"has({label}) ? true : {label} == 'public'",
        f"(has({label}) || true) && {label} == 'public'",
        f"resource.properties.tags.exists(t, has({label})) && {label} == 'public'",
    ):
        assert "is optional" in _problems(when)[0][1], when
    for when in (
        f"has({label}) && (true || {label} == 'public')",
        f"!(!has({label}) || {label} != 'public')",
        f"!has({label}) ? false : {label} == 'public'",
        f"has({label}) && resource.properties.tags.all(t, t == {label})",
        f"has({label}) && has(resource.properties.origin) && {label} == 'public'",
        f"(has({label}) && has(resource.properties.origin)) && {label} == 'public'",
    ):
        _load(when)


def test_a_macro_variable_shadowing_a_guarded_path_is_not_guarded() -> None:
    when = (
        "has(subject.properties.level) && "
        "[{'properties': {'level': 2}}].all(subject, subject.properties.level > 1)"
    )
    assert "subject.properties may be absent (a key of a map)" in _problems(when)[0][1]
    shadow = "has(resource.properties.label) && ['a'].all(resource, resource.size() > 0)"
    _load(shadow)


PERMISSIVE = SCHEMA + "validation: permissive\n"


def test_permissive_makes_an_optional_read_a_warning_and_nothing_else() -> None:
    loaded = _load("resource.properties.label == 'public'", PERMISSIVE)
    warnings = loaded.warnings  # type: ignore[attr-defined]
    assert [(w.line, w.column, w.rule) for w in warnings] == [(7, 32, "r")]
    assert "resource.properties.label is optional" in warnings[0].message
    assert (
        "did you mean 'owner_dept'"
        in _problems("resource.properties.owner_dep == 1", PERMISSIVE)[0][1]
    )
    assert _load("resource.properties.pages > 1").warnings == ()  # type: ignore[attr-defined]


def test_a_set_without_warnings_has_none_and_strict_is_the_default() -> None:
    assert load_texts({"p.yaml": _policy("true")}, default_backend()).warnings == ()
    assert _load("true").schemas.validation == "strict"  # type: ignore[attr-defined]
    assert _load("true", PERMISSIVE).schemas.validation == "permissive"  # type: ignore[attr-defined]


def _write(tmp_path: Path, schema: str = PERMISSIVE) -> Path:
    (tmp_path / "p.yaml").write_text(_policy("resource.properties.label == 'public'"))
    (tmp_path / "a.schema.yaml").write_text(schema)
    return tmp_path


def test_validate_prints_warnings_and_succeeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path)
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        f"{path / 'p.yaml'}:7:32: warning: [p/r] type: resource.properties.label is optional "
        "in the schema of resource type 'document': read it only under "
        "has(resource.properties.label)"
    )
    assert out[1].startswith("ok: 1 policy, 1 rule in 2 files")


def test_validate_refuses_under_strict_through_the_console_script(tmp_path: Path) -> None:
    path = _write(tmp_path, SCHEMA)
    done = subprocess.run(
        [sys.executable, "-m", "zerotrust", "validate", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert f"{path / 'p.yaml'}:7:32: [p/r] type: resource.properties.label is optional" in (
        done.stdout + done.stderr
    )


def test_the_shipped_policies_type_check_against_their_schema() -> None:
    root = Path(__file__).parent.parent / "policies"
    pdp = PolicyDecisionPoint.from_path(root, behavior=None)
    assert pdp.policies.schemas is not None
    assert pdp.policies.warnings == ()
