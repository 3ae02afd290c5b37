"""Policy loading: the malformed corpus, multi-file sets, and the loader's guarantees.

Each file in ``policies/malformed/`` is loaded on its own and must fail with exactly
the diagnostics ``policies/malformed/expected.yaml`` lists (same count, line, column,
rule, and a message containing the expected text). ``policies/malformed_sets/`` holds
whole directories that must fail together.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from zerotrust import Diagnostic, Effect, PolicyDecisionPoint, PolicyError
from zerotrust.cel import CompiledBackend, Condition

HERE = Path(__file__).parent
MALFORMED = HERE / "policies" / "malformed"
SETS = HERE / "policies" / "malformed_sets"

REQUEST = {
    "subject": {"id": "alice", "properties": {"department": "support"}},
    "action": {"name": "read"},
    "resource": {"type": "customer_record", "properties": {"owner_dept": "support"}},
    "context": {"ip": "10.1.2.3"},
}

MINIMAL = """\
policy: minimal
rules:
  - id: allow-support
    effect: allow
    when: "subject.properties.department == 'support'"
"""


def _expectations(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _params(expected: dict[str, Any]) -> list[Any]:
    """One pytest param per case; ``{xfail, diagnostics}`` entries are strict xfails."""
    params = []
    for name, spec in sorted(expected.items()):
        marks: tuple[Any, ...] = ()
        diagnostics = spec
        if isinstance(spec, dict):
            marks = (pytest.mark.xfail(strict=True, reason=" ".join(spec["xfail"].split())),)
            diagnostics = spec["diagnostics"]
        params.append(pytest.param(name, diagnostics, id=name, marks=marks))
    return params


MALFORMED_EXPECTED = _expectations(MALFORMED / "expected.yaml")
SETS_EXPECTED = _expectations(SETS / "expected.yaml")


def _describe(d: Diagnostic) -> str:
    return f"{d.file}:{d.line}:{d.column} rule={d.rule!r} {d.message}"


def _assert_diagnostics(
    actual: Sequence[Diagnostic],
    expected: Iterable[dict[str, Any]],
    file_of: Callable[[dict[str, Any]], str],
) -> None:
    """Each expected entry matches one distinct diagnostic, and nothing is left over."""
    remaining = list(actual)
    missing = []
    for want in expected:
        found = next(
            (
                got
                for got in remaining
                if got.file == file_of(want)
                and (got.line, got.column) == (want["line"], want["column"])
                and want["message_contains"] in got.message
                and got.rule == want.get("rule")
            ),
            None,
        )
        if found is None:
            missing.append(want)
        else:
            remaining.remove(found)
    report = "\n".join(
        [
            "missing:",
            *(f"  {m}" for m in missing),
            "unexpected:",
            *(f"  {_describe(d)}" for d in remaining),
        ]
    )
    assert not missing and not remaining, report


# --- the malformed corpus -----------------------------------------------------------------


def test_corpus_is_complete() -> None:
    files = {p.name for p in MALFORMED.iterdir() if p.name != "expected.yaml"}
    assert files == set(MALFORMED_EXPECTED)
    assert len(files) >= 35
    cases = {p.name for p in SETS.iterdir() if p.is_dir()}
    assert cases == set(SETS_EXPECTED)


@pytest.mark.parametrize(("name", "expected"), _params(MALFORMED_EXPECTED))
def test_malformed_policy(name: str, expected: list[dict[str, Any]]) -> None:
    path = MALFORMED / name
    with pytest.raises(PolicyError) as info:
        PolicyDecisionPoint.from_path(path)
    _assert_diagnostics(info.value.diagnostics, expected, lambda want: want.get("file", str(path)))
    for d in info.value.diagnostics:
        assert _describe(d).split(" rule=")[0] in str(info.value)


@pytest.mark.parametrize(("case", "expected"), _params(SETS_EXPECTED))
def test_malformed_policy_set(case: str, expected: list[dict[str, Any]]) -> None:
    root = SETS / case
    with pytest.raises(PolicyError) as info:
        PolicyDecisionPoint.from_path(root)

    def file_of(want: dict[str, Any]) -> str:
        return str(root) if want["file"] == "." else str(root / want["file"])

    _assert_diagnostics(info.value.diagnostics, expected, file_of)


def test_policy_error_is_a_value_error_listing_every_problem() -> None:
    with pytest.raises(ValueError, match=r"^8 problems in policy set:\n") as info:
        PolicyDecisionPoint.from_path(MALFORMED / "several-problems.yaml")
    assert isinstance(info.value, PolicyError)
    lines = str(info.value).splitlines()[1:]
    assert len(lines) == 8
    assert all("several-problems.yaml:" in line for line in lines)


def test_duplicate_policy_names_across_files_name_both_files() -> None:
    root = SETS / "duplicate-policy-name"
    with pytest.raises(PolicyError) as info:
        PolicyDecisionPoint.from_path(root)
    (d,) = info.value.diagnostics
    assert d.file == str(root / "invoices.yaml") and d.line == 1
    assert f"first in {root / 'customers.yaml'}:1" in d.message
    assert d.policy == "customer-records"


# --- what loads, and what a set holds ------------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_minimal_policy_loads_from_a_directory_and_a_file(tmp_path: Path) -> None:
    _write(tmp_path, {"minimal.yaml": MINIMAL})
    for source in (tmp_path, tmp_path / "minimal.yaml", str(tmp_path)):
        pdp = PolicyDecisionPoint.from_path(source)
        assert [p.name for p in pdp.policies.policies] == ["minimal"]
        assert pdp.policies.rule_count == 1
        assert pdp.policies.sources == (str(tmp_path / "minimal.yaml"),)
        assert pdp.evaluate(REQUEST).effect is Effect.ALLOW


def test_every_policy_file_and_document_is_loaded_in_path_order(tmp_path: Path) -> None:
    second = MINIMAL.replace("minimal", "second")
    _write(
        tmp_path,
        {
            "b.yml": MINIMAL.replace("minimal", "third"),
            "a/nested/deep.yaml": f"{MINIMAL}---\n{second}",
            "notes.txt": "not: [a policy",
            "README.md": "# not a policy",
            ".hidden/broken.yaml": "policy: [",
            ".broken.yaml": "policy: [",
        },
    )
    pdp = PolicyDecisionPoint.from_path(tmp_path)
    assert [p.name for p in pdp.policies.policies] == ["minimal", "second", "third"]
    reasons = [r.rule for r in pdp.evaluate(REQUEST).reasons]
    assert reasons == ["minimal/allow-support", "second/allow-support", "third/allow-support"]


def test_data_files_become_data(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "office.yaml": """\
policy: office
rules:
  - id: allow-known-in-office
    effect: allow
    when: "subject.id in data.users && ip_in_cidr(context.ip, data.networks.office)"
""",
            "users.data.yaml": "users: [alice, bob]\n",
            "networks.data.json": '{"networks": {"office": ["10.0.0.0/8"]}}',
            "more/limits.data.yml": "limits: {records: 100}\n",
        },
    )
    pdp = PolicyDecisionPoint.from_path(tmp_path)
    assert dict(pdp.policies.data) == {
        "users": ["alice", "bob"],
        "networks": {"office": ["10.0.0.0/8"]},
        "limits": {"records": 100},
    }
    assert [p.name for p in pdp.policies.policies] == ["office"]
    assert pdp.evaluate(REQUEST).effect is Effect.ALLOW
    assert pdp.evaluate({**REQUEST, "context": {"ip": "192.0.2.1"}}).effect is Effect.DENY
    stranger = {**REQUEST, "subject": {"id": "mallory"}}
    assert pdp.evaluate(stranger).effect is Effect.DENY


def test_data_files_via_texts() -> None:
    pdp = PolicyDecisionPoint.from_texts(
        {"p.yaml": MINIMAL, "d.data.yaml": "countries: [DE]\n", "e.data.json": '{"n": 1}'}
    )
    assert dict(pdp.policies.data) == {"countries": ["DE"], "n": 1}


def test_test_suites_are_skipped(tmp_path: Path) -> None:
    suite = "cases:\n  - {name: x, request: {}, expect: allow}\n"
    _write(
        tmp_path,
        {
            "minimal.yaml": MINIMAL,
            "minimal_test.yaml": suite,
            "sub/other_test.yml": "this is: [not a policy",
        },
    )
    pdp = PolicyDecisionPoint.from_path(tmp_path)
    assert [p.name for p in pdp.policies.policies] == ["minimal"]
    assert PolicyDecisionPoint.from_texts({"p.yaml": MINIMAL, "p_test.yaml": suite}).revision == (
        PolicyDecisionPoint.from_texts({"p.yaml": MINIMAL}).revision
    )


def test_missing_path_is_a_policy_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(PolicyError) as info:
        PolicyDecisionPoint.from_path(missing)
    (d,) = info.value.diagnostics
    assert (d.file, d.line, d.column) == (str(missing), 0, 0)


def test_file_that_is_not_utf8_is_a_policy_error(tmp_path: Path) -> None:
    _write(tmp_path, {"minimal.yaml": MINIMAL})
    (tmp_path / "latin1.yaml").write_bytes("policy: caf\xe9\n".encode("latin-1"))
    with pytest.raises(PolicyError) as info:
        PolicyDecisionPoint.from_path(tmp_path)
    (d,) = info.value.diagnostics
    assert (d.file, d.line, d.column) == (str(tmp_path / "latin1.yaml"), 1, 12)  # the byte
    assert "UTF-8" in d.message


# --- revision ----------------------------------------------------------------------------

TWO = """\
policy: alpha
target: {resources: [doc], actions: [read]}
signals:
  - {name: unmanaged, when: "!device.managed", score: 30}
rules:
  - id: deny-risky
    effect: deny
    when: "risk.score >= 80"
---
policy: beta
rules:
  - id: allow-all
    effect: allow
    obligations: [{type: mask, fields: [ssn]}]
"""
# The same set: comments, blank lines, quoting, flow/block style and key order differ.
TWO_REFORMATTED = """\
# Alpha protects documents.
policy: "alpha"

target:
  actions: ['read']   # only reads
  resources:
    - doc
signals:
  - score: 30
    name: unmanaged
    when: '!device.managed'
rules:
  - id: deny-risky
    when: risk.score >= 80
    effect: deny
---
# Beta
rules:
  - effect: allow
    id: allow-all
    obligations:
      - type: mask
        fields: [ssn]
policy: beta
"""


def _revision(texts: dict[str, str]) -> str:
    return PolicyDecisionPoint.from_texts(texts).revision


def test_revision_is_stable_across_formatting_only_edits() -> None:
    assert _revision({"p.yaml": TWO}) == _revision({"p.yaml": TWO_REFORMATTED})
    assert _revision({"p.yaml": TWO}).startswith("sha256:")


def test_revision_is_stable_across_file_names_and_order() -> None:
    alpha, beta = TWO.split("---\n")
    reference = _revision({"p.yaml": TWO})
    assert _revision({"p.yaml": f"{beta}---\n{alpha}"}) == reference
    assert _revision({"a.yaml": alpha, "b.yaml": beta}) == reference
    assert _revision({"b.yaml": beta, "a.yaml": alpha}) == reference
    assert _revision({"z/one.yaml": beta, "x.yml": alpha}) == reference
    with_data = {"p.yaml": TWO, "a.data.yaml": "x: 1\n", "b.data.json": '{"y": [2]}'}
    moved = {"p.yaml": TWO, "a.data.json": '{"y": [2], "x": 1}'}
    assert _revision(with_data) == _revision(moved)


def test_revision_is_stable_across_comment_edits_on_disk(tmp_path: Path) -> None:
    _write(tmp_path, {"p.yaml": TWO})
    pdp = PolicyDecisionPoint.from_path(tmp_path)
    before = pdp.revision
    _write(tmp_path, {"p.yaml": "# reviewed 2026-03-01\n" + TWO.replace("\n", "  # note\n", 3)})
    assert pdp.reload() == before == pdp.revision


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('"risk.score >= 80"', '"risk.score >= 81"'),
        ("score: 30", "score: 31"),
        ("resources: [doc]", "resources: [doc, file]"),
        ("effect: allow", "effect: deny"),
        ("fields: [ssn]", "fields: [ssn, iban]"),
        ("id: allow-all", "id: allow-everything"),
        ("policy: beta", "policy: gamma"),
        ("    effect: allow\n", "    effect: allow\n    mode: report-only\n"),
        ("    effect: allow\n", "    effect: allow\n    reason: because\n"),
    ],
)
def test_revision_changes_with_content(old: str, new: str) -> None:
    assert old in TWO
    assert _revision({"p.yaml": TWO}) != _revision({"p.yaml": TWO.replace(old, new, 1)})


def test_revision_changes_with_data_and_with_added_policies() -> None:
    base = {"p.yaml": TWO, "d.data.yaml": "users: [alice]\n"}
    assert _revision(base) != _revision({**base, "d.data.yaml": "users: [alice, bob]\n"})
    assert _revision(base) != _revision({**base, "q.yaml": MINIMAL})


# --- all or nothing, and reload ----------------------------------------------------------


def test_a_set_with_any_error_is_never_partly_loaded(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "a-good.yaml": MINIMAL,
            "b-bad.yaml": MINIMAL.replace("minimal", "bad").replace("effect: allow", "effect: yes"),
        },
    )
    with pytest.raises(PolicyError) as info:
        PolicyDecisionPoint.from_path(tmp_path)
    assert {d.file for d in info.value.diagnostics} == {str(tmp_path / "b-bad.yaml")}
    with pytest.raises(PolicyError):
        PolicyDecisionPoint.from_texts({"good.yaml": MINIMAL, "bad.data.json": "{"})


def test_reload_keeps_the_last_good_set_and_raises_on_a_broken_edit(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {"a.yaml": MINIMAL, "b.yaml": MINIMAL.replace("minimal", "other")},
    )
    pdp = PolicyDecisionPoint.from_path(tmp_path)
    good = pdp.revision
    good_reasons = [r.rule for r in pdp.evaluate(REQUEST).reasons]
    assert good_reasons == ["minimal/allow-support", "other/allow-support"]

    # One file gets a valid change, the other breaks: neither edit may take effect.
    _write(
        tmp_path,
        {
            "a.yaml": MINIMAL.replace("allow-support", "allow-support-v2"),
            "b.yaml": MINIMAL.replace("minimal", "other").replace('"subject', '"subjct'),
        },
    )
    with pytest.raises(PolicyError) as info:
        pdp.reload()
    (d,) = info.value.diagnostics
    assert (d.file, d.line, d.column) == (str(tmp_path / "b.yaml"), 5, 12)
    assert "unknown variable 'subjct'" in d.message
    assert pdp.revision == good
    assert [r.rule for r in pdp.evaluate(REQUEST).reasons] == good_reasons
    assert pdp.evaluate(REQUEST).policy_revision == good

    # Every policy file gone: still an error, still the last good set.
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).unlink()
    with pytest.raises(PolicyError):
        pdp.reload()
    assert pdp.revision == good

    # Fixed: the reload takes effect and reports the new revision.
    _write(tmp_path, {"a.yaml": MINIMAL.replace("allow-support", "allow-support-v2")})
    fresh = pdp.reload()
    assert fresh != good and pdp.revision == fresh
    assert [r.rule for r in pdp.evaluate(REQUEST).reasons] == ["minimal/allow-support-v2"]
    assert pdp.evaluate(REQUEST).policy_revision == fresh


def test_reload_of_texts_reloads_the_same_texts() -> None:
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": MINIMAL})
    assert pdp.reload() == pdp.revision


# --- no process-wide side effects --------------------------------------------------------


@pytest.fixture
def odd_recursion_limit() -> Any:
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(before + 137)
    yield before + 137
    sys.setrecursionlimit(before)


def test_loading_does_not_change_the_recursion_limit(
    tmp_path: Path, odd_recursion_limit: int
) -> None:
    _write(tmp_path, {"p.yaml": TWO, "d.data.yaml": "users: [alice]\n"})
    pdp = PolicyDecisionPoint.from_path(tmp_path)
    assert sys.getrecursionlimit() == odd_recursion_limit
    pdp.evaluate(REQUEST)
    pdp.reload()
    assert sys.getrecursionlimit() == odd_recursion_limit
    for name, expected in MALFORMED_EXPECTED.items():
        if isinstance(expected, list):  # the xfail cases may load
            with pytest.raises(PolicyError):
                PolicyDecisionPoint.from_path(MALFORMED / name)
    assert sys.getrecursionlimit() == odd_recursion_limit


@pytest.mark.parametrize("text", ["!!int ", "!!bool x", "!!float .", "!!timestamp 2020-99-99"])
def test_yaml_constructor_crashes_become_policy_errors(text: str) -> None:
    """Found by hypothesis: PyYAML's constructors raise IndexError / KeyError on these."""
    with pytest.raises(PolicyError, match="invalid YAML value"):
        PolicyDecisionPoint.from_texts(
            {"p.yaml": f"policy: p\nrules: [{{id: r, effect: {text}}}]\n"}
        )


# --- one set of limits for YAML and JSON, reported where the value is written -------------


def _diagnostics(texts: dict[str, str]) -> list[Diagnostic]:
    with pytest.raises(PolicyError) as info:
        PolicyDecisionPoint.from_texts({"p.yaml": MINIMAL, **texts})
    for d in info.value.diagnostics:
        assert "<zerotrust." not in d.message and "object at 0x" not in d.message, d
    return list(info.value.diagnostics)


def _one(texts: dict[str, str]) -> tuple[int, int, str]:
    (d,) = _diagnostics(texts)
    return d.line, d.column, d.message


def test_json_data_nested_1000_deep_is_refused_not_a_recursion_error() -> None:
    assert _one({"d.data.json": '{"x": ' + "[" * 1000 + "]" * 1000 + "}"}) == (
        1,
        71,  # the first value deeper than 64 levels
        "nested deeper than 64 levels",
    )


@pytest.mark.parametrize(
    ("name", "text", "line", "column"),
    [
        ("d.data.json", '{"x": [' + "[" * 64 + "]" * 64 + "]}", 1, 71),
        ("d.data.yaml", "x: [" + "[" * 64 + "]" * 64 + "]\n", 1, 68),
    ],
)
def test_json_and_yaml_data_share_the_depth_limit(
    name: str, text: str, line: int, column: int
) -> None:
    assert _one({name: text}) == (line, column, "nested deeper than 64 levels")
    shallower = text.replace("[", "", 1).replace("]", "", 1)
    PolicyDecisionPoint.from_texts({"p.yaml": MINIMAL, name: shallower})


@pytest.mark.parametrize(
    ("name", "text", "column"),
    [
        ("d.data.json", '{"limit": ' + "1" * 4301 + "}", 11),
        ("d.data.yaml", "limit: " + "1" * 4301 + "\n", 8),
        ("d.data.json", '{"limit": 9223372036854775808}', 11),
        ("d.data.json", '{"limit": -9223372036854775809}', 11),
    ],
    ids=["json-4301-digits", "yaml-4301-digits", "json-int64-max-plus-1", "json-int64-min-minus-1"],
)
def test_huge_integer_in_data_is_refused_at_the_number(name: str, text: str, column: int) -> None:
    assert _one({name: text}) == (1, column, "integer outside the 64-bit range")


def test_integers_at_the_64_bit_limits_load() -> None:
    pdp = PolicyDecisionPoint.from_texts(
        {
            "p.yaml": MINIMAL,
            "d.data.json": '{"hi": 9223372036854775807, "lo": -9223372036854775808}',
        }
    )
    assert dict(pdp.policies.data) == {"hi": 2**63 - 1, "lo": -(2**63)}


@pytest.mark.parametrize(
    ("name", "text", "column"),
    [
        ("d.data.json", '{"x": 1e400}', 7),
        ("d.data.json", '{"x": -1e400}', 7),
        ("d.data.json", '{"x": NaN}', 7),
        ("d.data.json", '{"x": Infinity}', 7),
        ("d.data.yaml", "x: .inf\n", 4),
        ("d.data.yaml", "x: 1.0e+400\n", 4),
    ],
)
def test_json_infinity_is_refused_like_yaml_inf(name: str, text: str, column: int) -> None:
    line, col, message = _one({name: text})
    assert (line, col) == (1, column)
    assert "NaN and infinity are not allowed" in message


def test_json_duplicate_key_is_reported_at_the_key_not_at_0_0() -> None:
    text = '{\n  "users": ["alice"],\n  "limits": {"max": 1, "max": 2}\n}'
    assert _one({"d.data.json": text}) == (3, 24, "duplicate key 'max'")


def test_json_syntax_errors_keep_their_position() -> None:
    assert _one({"d.data.json": '{"users": ["alice",]}'}) == (
        1,
        20,
        "invalid JSON: Expecting value",
    )


def test_data_key_defined_twice_is_reported_at_the_second_key() -> None:
    (d,) = _diagnostics(
        {"a.data.yaml": "users: [alice]\n", "b.data.json": '{\n  "x": 1,\n  "users": []\n}'}
    )
    assert (d.file, d.line, d.column) == ("b.data.json", 3, 3)
    assert d.message == "data key 'users' is also defined in a.data.yaml"


@pytest.mark.parametrize(
    ("name", "text", "line", "column"),
    [
        ("d.data.json", '{"x": "\\ud800"}', 1, 7),
        ("d.data.json", '{"\\udfff": 1}', 1, 2),
        ("d.data.yaml", 'x: "\\ud800"\n', 1, 7),
        ("q.yaml", 'policy: q\nrules: [{id: r, effect: allow, reason: "\\udc80"}]\n', 2, 43),
        (
            "q.yaml",
            'policy: q\nrules: [{id: r, effect: allow, when: "subject.id == \\"\\ud800\\""}]\n',
            2,
            57,
        ),
    ],
)
def test_lone_surrogate_in_a_policy_or_data_is_refused(
    name: str, text: str, line: int, column: int
) -> None:
    """It cannot be written as UTF-8: not to the decision log, not to Redis. JSON
    escapes are refused by us, YAML escapes already by libyaml."""
    got_line, got_column, message = _one({name: text})
    assert (got_line, got_column) == (line, column)
    assert "lone surrogate" in message or "invalid Unicode character escape" in message


@pytest.mark.parametrize("escape", ["\\x00", "\\e", "\\x1b", "\\x7f", "\\x9b"])
def test_control_character_in_a_policy_string_is_refused(escape: str) -> None:
    text = f'policy: q\nrules: [{{id: r, effect: allow, reason: "denied{escape}[2J"}}]\n'
    line, column, message = _one({"q.yaml": text})
    assert (line, column) == (2, 40) and "control character" in message


def test_large_texts_are_refused_like_large_files() -> None:
    big = "users: [" + ", ".join(["x"] * (6 * 1024 * 1024)) + "]\n"
    (d,) = _diagnostics({"d.data.yaml": big})
    assert (d.line, d.column) == (0, 0) and "larger than 10485760 bytes" in d.message


def test_a_list_in_a_message_shows_the_policy_not_our_objects() -> None:
    text = "policy: q\nrules:\n  - {id: r, effect: [allow], mode: {x: 1}, step_up: 3}\n"
    messages = [d.message for d in _diagnostics({"q.yaml": text})]
    assert "rule effect must be allow, deny or step_up, not ['allow']" in messages
    assert "rule mode must be enforce or report-only, not {'x': 1}" in messages


def test_a_non_string_key_is_shown_as_written() -> None:
    line, column, message = _one({"d.data.yaml": "? [a, b]\n: 1\n"})
    assert (line, column) == (1, 3)
    assert message == "keys must be strings, found a list ['a', 'b']"


def test_condition_the_compiler_cannot_handle_is_a_diagnostic_beside_the_others() -> None:
    """Before: a ValueError (a time zone offset of 24 hours, an integer literal of 4,301
    digits) escaped the loader and hid every other problem of the set."""
    texts = {
        "q.yaml": (
            "policy: q\nrules:\n"
            "  - {id: r1, effect: deny, when: \"now.getHours('+24:00') == 1\"}\n"
            f'  - {{id: r2, effect: deny, when: "context.n == {"1" * 4301}"}}\n'
        ),
        "z.yaml": "policy: z\nrules: []\n",
    }
    found = _diagnostics(texts)
    assert [(d.file, d.line, d.rule) for d in found] == [
        ("q.yaml", 3, "r1"),
        ("q.yaml", 4, "r2"),
        ("z.yaml", 2, None),
    ]
    for d in found[:2]:
        assert d.message.startswith("CEL: ")
        assert "sys.set_int_max_str_digits" not in d.message and "<cel>" not in d.message


# --- what reaches a header is checked when the policy loads ------------------------------

STEP_UP = """\
policy: q
rules:
  - id: need-mfa
    effect: step_up
    step_up:
      acr_values: {acr}
"""


@pytest.mark.parametrize(
    "acr",
    [
        '["urn:example:loa 2"]',
        '"urn:example:loa 2"',
        '["urn:example:loa2", "say \\"hi\\""]',
        '["back\\\\slash"]',
        '["loa\\t2"]',
        '["stärker"]',
        '[""]',
        '["' + "x" * 256 + '"]',
    ],
    ids=["space", "space-single", "quote", "backslash", "tab", "non-ascii", "empty", "long"],
)
def test_acr_value_a_challenge_cannot_carry_is_refused_at_load(acr: str) -> None:
    """Before: ``urn:example:loa 2`` loaded; the RFC 9470 challenge then asked for
    ``urn:example:loa2`` and an AuthZEN client read two values."""
    (d,) = _diagnostics({"q.yaml": STEP_UP.format(acr=acr)})
    assert d.line == 6 and d.rule == "need-mfa"
    assert "step_up.acr_values" in d.message


def test_acr_values_that_are_tokens_load() -> None:
    tokens = [
        "urn:example:loa2",
        "phr",
        "https://refeds.org/profile/mfa",
        "~!#$%&()*+,-./:;<=>?@[]^_`{|}",
    ]
    acr = json.dumps(tokens)
    pdp = PolicyDecisionPoint.from_texts({"q.yaml": STEP_UP.format(acr=acr)})
    decision = pdp.evaluate(REQUEST)
    assert decision.step_up is not None
    assert decision.step_up.acr_values == tuple(tokens)


@pytest.mark.parametrize("max_age", ["2147483648", "9223372036854775807", "-1", "1.5", "[1]"])
def test_max_age_a_client_cannot_read_is_refused(max_age: str) -> None:
    text = STEP_UP.format(acr="[phr]") + f"      max_age: {max_age}\n"
    (d,) = _diagnostics({"q.yaml": text})
    assert (d.line, d.column) == (7, 16)
    assert "from 0 to 2147483647" in d.message and "LNode" not in d.message


class _CrashingBackend(CompiledBackend):
    """A backend (the protocol is public) that fails on one condition the way a bug
    would: not with CelCompileError."""

    def compile(self, source: str) -> Condition:
        if "crash" in source:
            raise RuntimeError("too many statically nested blocks (<cel>, line 43)")
        return super().compile(source)


def test_only_policy_error_leaves_the_loader_when_the_compiler_fails_unexpectedly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    texts = {
        "q.yaml": 'policy: q\nrules:\n  - {id: r, effect: deny, when: "context.crash == 1"}\n',
        "z.yaml": "policy: z\nrules: []\n",
    }
    with pytest.raises(PolicyError) as info:
        PolicyDecisionPoint.from_texts(texts, backend=_CrashingBackend())
    first, second = info.value.diagnostics
    assert (first.file, first.line, first.column, first.rule) == ("q.yaml", 3, 33, "r")
    assert first.message == "CEL: this condition could not be compiled (details in the log)"
    assert second.file == "z.yaml"
    assert "<cel>" in caplog.text  # for maintainers, in the log
