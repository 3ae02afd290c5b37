"""Load-time hints: "did you mean" for unknown keys and enumerated values, and a hint
after a YAML syntax error that names the slip (an unquoted ': ', a value starting with a
quote or bracket, indentation, tabs, an unclosed quote)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zerotrust import PolicyDecisionPoint, PolicyError
from zerotrust.errors import Diagnostic

_RULE_KEYS = ("id", "effect", "when", "reason", "mode", "step_up", "obligations", "description")


def _diagnostics(text: str) -> list[Diagnostic]:
    with pytest.raises(PolicyError) as caught:
        PolicyDecisionPoint.from_texts({"p.yaml": text})
    return list(caught.value.diagnostics)


def _rule(line: str, *, when: str = '"true"') -> str:
    return f"policy: p\nrules:\n  - id: r\n    effect: allow\n    when: {when}\n{line}"


def test_misspelt_obligations_key_gets_did_you_mean() -> None:
    (d,) = _diagnostics(_rule("    obligation: []\n"))
    assert (d.line, d.column) == (6, 5)
    assert d.message.startswith("unknown key 'obligation' in rule: did you mean 'obligations'?")
    assert "(allowed: id, effect, when" in d.message


def test_stepup_effect_gets_did_you_mean() -> None:
    text = "policy: p\nrules:\n  - id: r\n    effect: stepup\n    when: 'true'\n"
    (d,) = _diagnostics(text)
    assert (d.line, d.column) == (4, 13)
    assert d.message == (
        "rule effect must be allow, deny or step_up, not 'stepup': did you mean 'step_up'?"
    )


def test_report_only_mode_gets_did_you_mean() -> None:
    (d,) = _diagnostics(_rule("    mode: report_only\n"))
    assert d.message.endswith("not 'report_only': did you mean 'report-only'?")


def _one_edit(word: str) -> st.SearchStrategy[str]:
    """Every one-character slip: a letter dropped, doubled, swapped with the next."""
    at = st.integers(0, len(word) - 1)
    dropped = at.map(lambda i: word[:i] + word[i + 1 :])
    doubled = at.map(lambda i: word[:i] + word[i] + word[i:])
    swapped = st.integers(0, len(word) - 2).map(
        lambda i: word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    )
    return st.one_of(dropped, doubled, swapped).filter(lambda w: w != word)


@st.composite
def _misspelt_key(draw: st.DrawFn) -> tuple[str, str]:
    key = draw(st.sampled_from([k for k in _RULE_KEYS if len(k) >= 4 and k != "when"]))
    return key, draw(_one_edit(key).filter(lambda w: w not in _RULE_KEYS))


@given(_misspelt_key())
def test_every_one_letter_slip_in_a_rule_key_names_the_key(case: tuple[str, str]) -> None:
    key, slip = case
    problems = _diagnostics(_rule(f"    {slip}: x\n"))
    assert any(
        f"unknown key {slip!r} in rule: did you mean {key!r}?" in d.message for d in problems
    )


@given(
    st.sampled_from(["allow", "deny", "step_up"]).flatmap(
        lambda e: st.tuples(st.just(e), _one_edit(e))
    )
)
def test_every_one_letter_slip_in_an_effect_names_the_effect(case: tuple[str, str]) -> None:
    effect, slip = case
    text = f"policy: p\nrules:\n  - id: r\n    effect: '{slip}'\n    when: 'true'\n"
    (d,) = _diagnostics(text)
    assert d.message.endswith(f"not {slip!r}: did you mean {effect!r}?")


# --- YAML syntax errors --------------------------------------------------------------


def test_unquoted_colon_in_a_condition_gets_a_quoting_hint() -> None:
    (d,) = _diagnostics(_rule("", when="subject.properties.note == a: b"))
    assert (d.line, d.column) == (5, 39)
    assert d.message.startswith("invalid YAML: mapping values are not allowed in this context")
    assert "hint: a value cannot contain ': ' unquoted; quote the whole value (when: '...')" in (
        d.message
    )


_CEL_LEFT = st.sampled_from(["subject.id", "resource.properties.owner", "1", "x.y"])
_CEL_OP = st.sampled_from(["==", "!=", "<", "in"])


@given(_CEL_LEFT, _CEL_OP, st.from_regex(r"[a-z]{1,8}", fullmatch=True))
def test_any_unquoted_colon_space_in_a_value_gets_the_quoting_hint(
    left: str, op: str, right: str
) -> None:
    (d,) = _diagnostics(_rule("", when=f"{left} {op} {right}: {right}"))
    assert "hint: a value cannot contain ': ' unquoted" in d.message
    assert d.line == 5


@given(
    st.sampled_from(['"', "'", "[", "{"]),
    _CEL_OP,
    st.sampled_from(["subject.id", "x", "[1]"]),
)
def test_a_value_starting_with_a_quote_or_bracket_then_more_gets_a_hint(
    opener: str, op: str, right: str
) -> None:
    closer = {"[": "]", "{": "}"}.get(opener, opener)
    (d,) = _diagnostics(_rule("", when=f"{opener}a{closer} {op} {right}"))
    assert d.line == 5
    assert f"hint: a value that starts with {opener!r} ends where that" in d.message


@given(st.integers(1, 6).filter(lambda n: n != 2), st.sampled_from(_RULE_KEYS[3:]))
def test_a_rule_key_out_of_line_gets_the_indentation_hint(indent: int, key: str) -> None:
    text = f"policy: p\nrules:\n  - id: r\n    effect: allow\n{' ' * (2 + indent)}{key}: x\n"
    problems = _diagnostics(text)
    assert any(
        d.line == 5 and "hint:" in d.message and "check the indentation" in d.message
        for d in problems
    ), [d.message for d in problems]


@pytest.mark.parametrize("where", ["\t- id: r\n", "  - id: r\n\teffect: allow\n"])
def test_a_tab_gets_the_spaces_hint(where: str) -> None:
    (d,) = _diagnostics(f"policy: p\nrules:\n{where}")
    assert d.message.endswith("hint: YAML indents with spaces only: replace the tab with spaces")


def test_an_unclosed_quote_is_reported_where_it_opens() -> None:
    (d,) = _diagnostics('policy: p\nrules:\n  - id: "r\n    effect: allow\n')
    assert (d.line, d.column, d.message) == (
        3,
        9,
        "invalid YAML: this quoted value is never closed",
    )


@pytest.mark.parametrize(
    ("when", "hint"),
    [
        ("!has(subject.x)", "'!' starts a YAML tag"),
        ("*x", "'*' starts a YAML alias"),
        ("@x", "'@' is reserved in YAML and cannot start a value"),
        ('"a\\d" == x', "inside double quotes a backslash starts an escape"),
    ],
)
def test_a_value_starting_with_a_yaml_indicator_gets_a_hint(when: str, hint: str) -> None:
    (d,) = _diagnostics(_rule("", when=when))
    assert f"hint: {hint}" in d.message


def test_validate_prints_the_hint(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(_rule("", when="a: b"), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "zerotrust", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert f"{tmp_path / 'p.yaml'}:5:12: invalid YAML: mapping values" in done.stderr
    assert "hint: a value cannot contain ': ' unquoted" in done.stderr


# --- what a terminal or a review would show otherwise than it is ------------------------

_BIDI = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]


def test_trojan_source_condition_is_refused_at_the_character() -> None:
    """CVE-2021-42574: an override inside a string literal displays ``|| true`` as code."""
    when = "\"subject.id == 'user\u202e \u2066|| true\u2069 \u2066'\""
    (d,) = _diagnostics(_rule("", when=when))
    assert (d.line, d.column) == (5, 31)
    assert d.message.startswith("CEL: bidirectional control character U+202E in a condition")
    assert d.message.endswith("write it as an escape (\\u202e)")


@given(st.sampled_from(_BIDI), st.integers(0, 20))
def test_every_bidi_control_anywhere_in_a_condition_is_refused(char: str, at: int) -> None:
    text = "subject.id == 'abcdefghij' || true"
    at = min(at, len(text))
    source = text[:at] + char + text[at:]
    problems = _diagnostics(_rule("", when=json.dumps(source)))
    assert any("bidirectional control character" in d.message for d in problems)


def test_an_escaped_bidi_character_still_matches() -> None:
    pdp = PolicyDecisionPoint.from_texts(
        {"p.yaml": _rule("", when="\"subject.id == 'a\\\\u202eb'\"")}
    )
    request = {"subject": {"id": "a\u202eb"}, "action": {"name": "r"}, "resource": {"type": "t"}}
    assert pdp.evaluate(request).allowed


def test_diagnostics_print_control_characters_of_file_names_escaped(tmp_path: Path) -> None:
    name = "x\x1b]0;PWN\x07\x1b[31m.yaml"
    (tmp_path / name).write_text("policy: a\nrules: []\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "zerotrust", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "\x1b" not in done.stderr and "\x07" not in done.stderr
    assert "x\\x1b]0;PWN\\x07\\x1b[31m.yaml:2:8:" in done.stderr


@pytest.mark.parametrize(
    ("when", "advice"),
    [
        ("subject.id == a: b", "quote the whole value (when: '...'), or write it as a block"),
        ("'a' == subject.id && x", 'quote the whole value (when: "..."), or write it as a block'),
        ("'a' == \"b\" && x", "; write it as a block scalar"),
    ],
)
def test_the_quoting_advice_uses_quotes_the_value_does_not_hold(when: str, advice: str) -> None:
    (d,) = _diagnostics(_rule("", when=when))
    assert advice in d.message


def test_test_output_prints_controls_of_file_and_case_names_escaped(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(_rule(""), encoding="utf-8")
    suite = (
        'cases:\n  - name: "a\\u202eb"\n'
        "    request: {subject: {id: u}, action: {name: r}, resource: {type: t}}\n"
        "    expect: {effect: deny}\n"
    )
    (tmp_path / "x\x1b[31m_test.yaml").write_text(suite, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "zerotrust", "test", "-v", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "\x1b" not in done.stdout and "\u202e" not in done.stdout
    assert "x\\x1b[31m_test :: a\\u202eb" in done.stdout
