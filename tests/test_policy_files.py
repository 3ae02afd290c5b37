"""Policy files that try to crash the process, expand beyond their size, or quietly
contribute nothing to a load.

Each test is named after the attack it stops. Inputs that crashed the interpreter
before the fix are loaded in a child process, so a regression fails one test instead
of killing the run.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loader_child import LoaderChild
from strategies import yaml_ambiguous_scalars

import zerotrust
from zerotrust import Diagnostic, Effect, PolicyDecisionPoint, PolicyError
from zerotrust.policy.located import MAX_ALIAS_CHARS

ALLOW = """\
policy: allow
target: {resources: [doc], actions: [read]}
rules:
  - {id: allow-all, effect: allow, when: "true"}
"""
DENY = """\
policy: deny-contractors
target: {resources: [doc], actions: [read]}
rules:
  - id: deny-contractor
    effect: deny
    when: "subject.properties.kind == 'contractor'"
"""
CONTRACTOR = {
    "subject": {"id": "c", "properties": {"kind": "contractor"}},
    "action": {"name": "read"},
    "resource": {"type": "doc"},
}
DEEP = 30_000
TOO_DEEP = "nested deeper than 64 levels"


@pytest.fixture(scope="module")
def child() -> Iterator[LoaderChild]:
    loader = LoaderChild()
    yield loader
    loader.close()


def _refused(texts: dict[str, str]) -> list[Diagnostic]:
    with pytest.raises(PolicyError) as info:
        PolicyDecisionPoint.from_texts(texts, behavior=None)
    return list(info.value.diagnostics)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(zerotrust.__file__).parents[1])}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


# --- nesting: libyaml's composer recursed in C and crashed the process (exit 139) ---------

DEEP_TEXTS = {
    "flow-list": "a: " + "[" * DEEP + "]" * DEEP + "\n",
    "flow-mapping": "a: " + "{a: " * DEEP + "1" + "}" * DEEP + "\n",
    "block-list": "- " * DEEP + "x\n",
    "explicit-keys": "? " * DEEP + "x\n",
    "anchored-and-tagged": "a: " + "".join(f"&n{i} !!seq [" for i in range(DEEP)) + "]" * DEEP,
}


@pytest.mark.parametrize("name", ["p.yaml", "d.data.yaml"])
@pytest.mark.parametrize("shape", sorted(DEEP_TEXTS))
def test_yaml_nested_30000_deep_is_refused_not_a_segfault(
    child: LoaderChild, shape: str, name: str
) -> None:
    """Before: ``a: [[[...]]]`` 30,000 deep (60 KB) killed the process with SIGSEGV;
    on a thread's smaller stack a tenth of that was enough."""
    text = DEEP_TEXTS[shape]
    if name.endswith(".data.yaml") and not text.startswith("a: "):
        text = "a:\n  " + text.replace("\n", "\n  ")
    result = child.load({"q.yaml": ALLOW, name: text})
    assert result["outcome"] == "refused", result
    ((file, line, column, message),) = result["diagnostics"]
    assert (file, message) == (name, TOO_DEEP)
    assert line >= 1 and column >= 1  # past 64 levels, or past 1,000 (libyaml >= 0.2.6)
    assert result["seconds"] < 1


_RELOAD_SCRIPT = """
import sys
from pathlib import Path
from zerotrust import PolicyDecisionPoint, PolicyError
root = Path(sys.argv[1])
pdp = PolicyDecisionPoint.from_path(root, behavior=None)
(root / "deep.data.yaml").write_text("a: " + "[" * 30000 + "]" * 30000 + "\\n")
try:
    pdp.reload()
except PolicyError as exc:
    print(exc)
"""


def test_deep_yaml_written_before_a_reload_is_refused_not_a_segfault(tmp_path: Path) -> None:
    _write(tmp_path, {"allow.yaml": ALLOW})
    run = _run("-c", _RELOAD_SCRIPT, str(tmp_path))
    assert run.returncode == 0, run.stderr
    # The column is where the nesting passes 64 levels, or (libyaml >= 0.2.6, which refuses
    # 1,000 levels while scanning ahead) where it passes 1,000: the same diagnostic.
    assert re.search(rf"deep\.data\.yaml:1:(68|1003): {TOO_DEEP}", run.stdout)


@pytest.mark.parametrize(
    ("command", "file"),
    [("validate", "deep.data.yaml"), ("test", "deep_test.yaml")],
)
def test_deep_yaml_given_to_the_cli_is_refused_not_a_segfault(
    tmp_path: Path, command: str, file: str
) -> None:
    _write(tmp_path, {"allow.yaml": ALLOW, file: "a: " + "[" * DEEP + "]" * DEEP + "\n"})
    run = _run("-m", "zerotrust", command, str(tmp_path))
    assert run.returncode == 1, (run.returncode, run.stderr)
    assert re.search(rf"{re.escape(file)}:1:(68|1003): {TOO_DEEP}", run.stdout + run.stderr)


def test_deep_yaml_in_a_thread_with_a_small_stack_is_refused() -> None:
    """The same input on a 256 KiB thread stack, in this process: nothing recurses."""
    found: list[object] = []

    def load() -> None:
        try:
            PolicyDecisionPoint.from_texts({"p.yaml": "- " * 100_000 + "x\n"}, behavior=None)
        except PolicyError as exc:
            found.append(exc.diagnostics[0].message)

    before = threading.stack_size(256 * 1024)
    try:
        worker = threading.Thread(target=load)
        worker.start()
        worker.join()
    finally:
        threading.stack_size(before)
    assert found == [TOO_DEEP]


# --- a file that holds nothing: a set loaded without the deny policy ------------------------


@pytest.mark.parametrize(
    "text",
    ["", "\n\n", "# being edited\n", "~\n", "null\n", "---\n", "---\n...\n", "--- # c\n", "\ufeff"],
    ids=[
        "empty",
        "blank",
        "comment",
        "tilde",
        "null",
        "dashes",
        "dashes-dots",
        "dashes-comment",
        "bom",
    ],
)
def test_policy_file_truncated_to_nothing_is_refused_not_skipped(text: str) -> None:
    """Before: the set loaded without the file, and the contractor the file denies was
    allowed (in-place writers truncate first: ``cp``, ``>``, ``open(..., "w")``)."""
    (d,) = _refused({"allow.yaml": ALLOW, "deny.yaml": text})
    assert d.file == "deny.yaml" and d.line >= 1 and d.column >= 1
    assert d.message.startswith("holds no policy document")


def test_policy_file_of_only_an_end_marker_is_refused() -> None:
    (d,) = _refused({"allow.yaml": ALLOW, "deny.yaml": "...\n"})
    assert d.file == "deny.yaml" and d.message.startswith("invalid YAML")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (f"{ALLOW}---\n", 5),
        (f"{ALLOW}---\n---\n{DENY.replace('deny-contractors', 'd')}", 5),
        (f"{ALLOW}--- ~\n---\n{DENY.replace('deny-contractors', 'd')}", 5),
        (f"---\n---\n{ALLOW}", 1),
    ],
    ids=["trailing", "between", "tilde-between", "leading"],
)
def test_empty_document_beside_policies_is_refused(text: str, line: int) -> None:
    """A multi-document file cut right after a ``---`` loses the policies after it."""
    (d,) = _refused({"set.yaml": text})
    assert (d.file, d.line) == ("set.yaml", line)
    assert d.message.startswith("empty YAML document")


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "~\n", "---\n", "null\n"])
def test_data_file_truncated_to_nothing_is_refused(text: str) -> None:
    (d,) = _refused({"allow.yaml": ALLOW, "blocked.data.yaml": text})
    assert d.file == "blocked.data.yaml" and d.line >= 1
    assert d.message == "a data file must hold a mapping of names (write {} for none)"


def test_empty_data_written_as_an_empty_mapping_loads() -> None:
    pdp = PolicyDecisionPoint.from_texts({"allow.yaml": ALLOW, "none.data.yaml": "{}\n"})
    assert dict(pdp.policies.data) == {}


def test_reload_while_the_deny_policy_is_rewritten_in_place_never_allows(
    tmp_path: Path,
) -> None:
    """Before: 3,359 of 5,451 reloads during ``open(deny.yaml, "w")`` + write loaded the
    set without the deny policy and allowed the contractor."""
    _write(tmp_path, {"allow.yaml": ALLOW, "deny.yaml": DENY})
    pdp = PolicyDecisionPoint.from_path(tmp_path, behavior=None)
    good = pdp.revision
    (tmp_path / "deny.yaml").write_text("")
    with pytest.raises(PolicyError, match="holds no policy document"):
        pdp.reload()
    assert pdp.revision == good
    assert pdp.evaluate(CONTRACTOR).effect is Effect.DENY

    stop = threading.Event()

    def rewrite() -> None:
        while not stop.is_set():
            with open(tmp_path / "deny.yaml", "w", encoding="utf-8") as file:
                file.flush()
                time.sleep(0.001)
                file.write(DENY)

    writer = threading.Thread(target=rewrite)
    writer.start()
    effects = []
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline or len(effects) < 30:
            with contextlib.suppress(PolicyError):
                pdp.reload()
            effects.append(pdp.evaluate(CONTRACTOR).effect)
    finally:
        stop.set()
        writer.join()
    assert set(effects) == {Effect.DENY}


# --- aliases: a small file that expands to gigabytes ------------------------------------


def test_alias_bomb_of_long_strings_is_refused_in_linear_time_and_memory() -> None:
    """Before: 10,000 aliases of a 100 KB string (a 170 KB file) took 11.6 s and
    1.9 GB, then loaded; a 1 MB file ran out of memory."""
    text = f'big: &a "{"x" * 100_000}"\nlist:\n' + "  - *a\n" * 10_000
    tracemalloc.start()
    started = time.perf_counter()
    try:
        (d,) = _refused({"allow.yaml": ALLOW, "x.data.yaml": text})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 5
    assert peak < 20 * 2**20
    # 104 aliases fit in 10 MiB (100,002 characters each, with the quotes); the next not.
    assert (d.file, d.line, d.column) == ("x.data.yaml", 3 + 104, 5)
    assert d.message == (
        f"aliases in this policy set repeat more than {MAX_ALIAS_CHARS} characters (alias bomb?)"
    )


def test_alias_bombs_spread_over_many_files_share_one_limit() -> None:
    """Each file alone is within the limit; the set is not."""
    one = f'big: &a "{"x" * 10_000}"\nlist: [{", ".join(["*a"] * 100)}]\n'
    texts = {
        f"f{n:02}.data.yaml": one.replace("big", f"big{n}").replace("list", f"l{n}")
        for n in range(11)
    }
    PolicyDecisionPoint.from_texts({"allow.yaml": ALLOW, "f00.data.yaml": texts["f00.data.yaml"]})
    (d,) = _refused({"allow.yaml": ALLOW, **texts})
    assert d.file == "f10.data.yaml" and "alias bomb?" in d.message


def test_alias_inside_the_value_it_repeats_is_refused() -> None:
    (d,) = _refused({"allow.yaml": ALLOW, "x.data.yaml": "a: &a [1, [*a]]\n"})
    assert (d.line, d.column) == (1, 12)
    assert d.message == "invalid YAML: alias *a is inside the value it repeats"


def test_alias_of_a_deep_value_counts_the_depth_where_it_is_used() -> None:
    deep = "[" * 40 + "1" + "]" * 40
    text = f"a: &a {deep}\nb: {'[' * 30}*a{']' * 30}\n"
    (d,) = _refused({"allow.yaml": ALLOW, "x.data.yaml": text})
    assert (d.line, d.column, d.message) == (2, 34, TOO_DEEP)
    shallower = f"a: &a {deep}\nb: {'[' * 20}*a{']' * 20}\n"
    PolicyDecisionPoint.from_texts({"allow.yaml": ALLOW, "x.data.yaml": shallower})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "a: *nowhere\n",
            "invalid YAML: alias *nowhere has no anchor; hint: '*' starts a YAML alias; "
            "if you meant text, quote the whole value (a: '...'), or write it as a block "
            "scalar (a: | on its own line, the text indented below)",
        ),
        ("a: &x 1\nb: &x 2\n", "invalid YAML: anchor &x is defined twice"),
    ],
)
def test_alias_without_an_anchor_or_an_anchor_twice_is_refused(text: str, message: str) -> None:
    (d,) = _refused({"allow.yaml": ALLOW, "x.data.yaml": text})
    assert d.message == message


def test_aliases_within_the_limits_still_repeat_their_value() -> None:
    text = 'nets: &nets ["10.0.0.0/8", "192.168.0.0/16"]\noffice: *nets\nvpn: [*nets, *nets]\n'
    pdp = PolicyDecisionPoint.from_texts({"allow.yaml": ALLOW, "n.data.yaml": text})
    nets = ["10.0.0.0/8", "192.168.0.0/16"]
    assert dict(pdp.policies.data) == {"nets": nets, "office": nets, "vpn": [nets, nets]}


# --- file names: a policy skipped because of the case of its suffix ------------------------


@pytest.mark.parametrize(
    ("name", "fixed"),
    [
        ("Deny.YAML", "Deny.yaml"),
        ("deny.Yml", "deny.yml"),
        ("blocked.Data.json", "blocked.data.json"),
        ("blocked.data.JSON", "blocked.data.json"),
        ("deny_TEST.yaml", "deny_test.yaml"),
        ("deny_Test.yml", "deny_test.yml"),
    ],
)
def test_suffix_in_another_case_is_refused_not_skipped(
    tmp_path: Path, name: str, fixed: str
) -> None:
    """Before: ``Deny.YAML`` was skipped silently and its deny rule was not in force."""
    _write(tmp_path, {"allow.yaml": ALLOW, name: DENY})
    with pytest.raises(PolicyError) as info:
        PolicyDecisionPoint.from_path(tmp_path, behavior=None)
    (d,) = info.value.diagnostics
    assert d.file == str(tmp_path / name)
    assert repr(fixed) in d.message and "matched with case" in d.message


def test_a_file_named_on_its_own_loads_whatever_its_suffix(tmp_path: Path) -> None:
    _write(tmp_path, {"Deny.YAML": DENY})
    pdp = PolicyDecisionPoint.from_path(tmp_path / "Deny.YAML", behavior=None)
    assert [p.name for p in pdp.policies.policies] == ["deny-contractors"]


def test_backups_and_other_files_beside_the_policies_are_ignored(tmp_path: Path) -> None:
    """Documented: editors leave ``deny.yaml~`` and ``deny.yaml.bak`` beside the file they
    edit; refusing them would stop every reload. They are not policy names."""
    broken = "policy: [\n"
    _write(
        tmp_path,
        {
            "allow.yaml": ALLOW,
            "deny.yaml~": broken,
            "deny.yaml.bak": broken,
            "deny.yaml.swp": broken,
            "request.json": broken,
            "README.md": broken,
        },
    )
    pdp = PolicyDecisionPoint.from_path(tmp_path, behavior=None)
    assert [p.name for p in pdp.policies.policies] == ["allow"]


# --- messages ---------------------------------------------------------------------------


def test_empty_acr_value_is_called_an_empty_string() -> None:
    text = "policy: q\nrules:\n  - {id: r, effect: step_up, step_up: {acr_values: ['']}}\n"
    (d,) = _refused({"q.yaml": text})
    assert d.message == "step_up.acr_values entries must be non-empty strings, not an empty string"


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (
            "signals: [{name: s, when: 'true', score: 1e3}]",
            "'1e3' is text in YAML 1.1 but a number in YAML 1.2: for the number write it in "
            "plain decimal or with a dot and a signed exponent (1.0e+3); for text, quote it",
        ),
        (
            "rules: [{id: r, effect: step_up, step_up: {max_age: 3e2}}]",
            "'3e2' is text in YAML 1.1 but a number in YAML 1.2: for the number write it in "
            "plain decimal or with a dot and a signed exponent (1.0e+3); for text, quote it",
        ),
    ],
)
def test_exponent_without_a_dot_is_explained_as_yaml_1_1_text(field: str, expected: str) -> None:
    text = f"policy: q\n{field}\n"
    if not field.startswith("rules"):
        text += "rules: [{id: r, effect: allow}]\n"
    (d,) = _refused({"q.yaml": text})
    assert d.message == expected


def test_lone_surrogate_in_a_text_given_by_the_caller_is_a_positioned_diagnostic() -> None:
    """Before: libyaml failed to encode the text and the load failed with an internal
    error (UnicodeEncodeError) and no position."""
    (d,) = _refused({"p.yaml": "policy: p\nrules: [{id: r, effect: allow, reason: x\ud800}]\n"})
    assert (d.file, d.line, d.column) == ("p.yaml", 2, 41)
    assert d.message == "strings must be text: U+D800 is a lone surrogate"


def test_control_character_written_raw_is_reported_where_it_is() -> None:
    (d,) = _refused({"allow.yaml": ALLOW, "x.data.yaml": "a: 1\nb: \x01\n"})
    assert (d.line, d.column) == (2, 4)
    assert (
        d.message
        == "invalid YAML: unacceptable character #x0001: control characters are not allowed"
    )


# --- YAML 1.1 against 1.2: one text, two meanings ------------------------------------------

NORWAY_POLICY = """policy: geo
rules:
  - id: deny-sanctioned-country
    effect: deny
    when: "context.country in data.sanctioned_countries"
  - {id: allow-rest, effect: allow}
"""


def test_unquoted_country_code_no_is_not_read_as_false_in_a_deny_list() -> None:
    """Before: ``[RU, BY, KP, NO]`` loaded as ``['RU', 'BY', 'KP', False]`` (YAML 1.1), so
    a request from Norway was allowed while the test suite, whose ``country: NO`` was also
    ``false``, passed."""
    (d,) = _refused(
        {"geo.yaml": NORWAY_POLICY, "geo.data.yaml": "sanctioned_countries: [RU, BY, KP, NO]\n"}
    )
    assert (d.file, d.line, d.column) == ("geo.data.yaml", 1, 36)
    assert d.message.startswith("'NO' is false in YAML 1.1 but text in YAML 1.2")
    pdp = PolicyDecisionPoint.from_texts(
        {"geo.yaml": NORWAY_POLICY, "geo.data.yaml": "sanctioned_countries: [RU, BY, KP, 'NO']\n"},
        behavior=None,
    )
    norway = {
        "subject": {"id": "u"},
        "action": {"name": "read"},
        "resource": {"type": "doc"},
        "context": {"country": "NO"},
    }
    assert pdp.evaluate(norway).effect is Effect.DENY


def test_unquoted_country_code_in_a_test_suite_is_refused(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "geo.yaml": NORWAY_POLICY,
            "geo.data.yaml": "sanctioned_countries: [RU, 'NO']\n",
            "geo_test.yaml": "cases:\n  - name: norway\n    request: {subject: {id: u}, "
            "action: {name: read}, resource: {type: doc}, context: {country: NO}}\n"
            "    expect: {effect: deny}\n",
        },
    )
    run = _run("-m", "zerotrust", "test", str(tmp_path))
    assert run.returncode == 1
    assert "'NO' is false in YAML 1.1" in run.stdout + run.stderr


@settings(max_examples=200, deadline=None)
@given(text=yaml_ambiguous_scalars(), where=st.sampled_from(["data", "list", "policy"]))
def test_plain_scalars_yaml_readers_disagree_on_are_refused_and_load_quoted(
    text: str, where: str
) -> None:
    """Every plain scalar YAML 1.1 and 1.2 read differently is refused at its position;
    quoted, it loads as the text it is."""

    def texts(value: str) -> dict[str, str]:
        if where == "data":
            return {"p.yaml": ALLOW, "d.data.yaml": f"v: {value}\n"}
        if where == "list":
            return {"p.yaml": ALLOW, "d.data.yaml": f"v: [a, {value}]\n"}
        return {"p.yaml": f"policy: p\ndescription: {value}\nrules: [{{id: r, effect: allow}}]\n"}

    (d,) = _refused(texts(text))
    assert "YAML 1.1" in d.message and "1.2" in d.message and d.line >= 1
    pdp = PolicyDecisionPoint.from_texts(texts(f"'{text}'"), behavior=None)
    if where != "policy":
        assert pdp.policies.data["v"] in (text, ["a", text])


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("! NO", "NO"),  # the non-specific tag is text (PyYAML read false)
        ("! 010", "010"),  # (PyYAML read 8)
        ("2026-01-01 10:00:00", "2026-01-01 10:00:00"),  # (was rewritten 2026-01-01T10:00:00)
        ("2026-01-01T10:00:00Z", "2026-01-01T10:00:00Z"),  # (was ...+00:00)
        ("y", "y"),
    ],
)
def test_tagged_or_timestamp_scalar_keeps_the_text_every_reader_sees(
    written: str, expected: str
) -> None:
    pdp = PolicyDecisionPoint.from_texts(
        {"p.yaml": ALLOW, "d.data.yaml": f"codes: [{written}]\n"}, behavior=None
    )
    assert pdp.policies.data["codes"] == [expected]


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("!!int 010", "'010' is 8 in YAML 1.1 but 10 in YAML 1.2"),
        ("!!bool yes", "'yes' is true in YAML 1.1 but text in YAML 1.2"),
        ("08", "'08' is text in YAML 1.1 but a number in YAML 1.2"),
        ("-.5", "'-.5' is text in YAML 1.1 but a number in YAML 1.2"),
        ("-0x1F", "'-0x1F' is -31 in YAML 1.1 but text in YAML 1.2"),
        ("=", "'=' is a YAML 1.1 value key: quote it for text"),
    ],
)
def test_scalar_yaml_readers_disagree_on_is_refused_even_tagged_or_signed(
    written: str, message: str
) -> None:
    """Found by review: explicit tags skipped the check, and ``08``, ``-.5``, ``-0x1F``
    loaded as text or numbers other tools read differently."""
    (d,) = _refused({"p.yaml": ALLOW, "d.data.yaml": f"codes: [{written}]\n"})
    assert d.message.startswith(message) and (d.line, d.column) == (1, 9)


_BAD_VALUES = {
    ".nan": "NaN and infinity are not allowed",
    "-.inf": "NaN and infinity are not allowed",
    '"a\\x01b"': "strings must be text: U+0001 is a control character",
    "1" + "0" * 30: "",
}


@given(st.sampled_from(sorted(_BAD_VALUES)), st.sampled_from(["reason", "description"]))
def test_a_bad_value_does_not_hide_the_files_other_problems(bad: str, key: str) -> None:
    """One value refused on its own (NaN, a control character, an integer past 64 bits) is
    reported with every other problem of the file, not instead of them."""
    text = (
        "policy: p\nrules:\n"
        f"  - id: r\n    effect: deny\n    when: 'true'\n    {key}: {bad}\n"
        "  - id: s\n    effect: alow\n    when: 'true'\n"
    )
    with pytest.raises(PolicyError) as caught:
        PolicyDecisionPoint.from_texts({"p.yaml": text})
    found = [(d.line, d.message) for d in caught.value.diagnostics]
    assert any(line == 6 and _BAD_VALUES[bad] in message for line, message in found), found
    assert any(line == 8 and "not 'alow': did you mean 'allow'?" in m for line, m in found), found
    assert [line for line, _ in found].count(6) == 1, found  # no follow-on error at the value
