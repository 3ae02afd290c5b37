"""The cel-spec "simple" conformance cases, run through the compiled backend.

Each case is compiled with :func:`compile_expression` (any expression, any variable
names) and its value or error compared with the expected result. Cases that need
what a PDP never has (protobuf messages, ``google.protobuf.*`` type names,
nanosecond timestamps) are excluded by the rules in ``EXCLUDED`` below, each with
its reason; ``docs/cel-compiler.md`` lists them. The suite fails if fewer cases pass
than ``EXPECTED_PASSING`` records, so a regression cannot hide behind the count.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zerotrust.cel import _compiler_runtime as rt
from zerotrust.cel._backend import CelCompileError
from zerotrust.cel._compiler import CelLiteralError, compile_expression

CONFORMANCE = Path(__file__).resolve().parents[1].parent / "shared" / "conformance"
TESTDATA = CONFORMANCE / "cel-spec" / "tests" / "simple" / "testdata"
FILES = (
    "basic",
    "logic",
    "comparisons",
    "conversions",
    "integer_math",
    "fp_math",
    "lists",
    "macros",
    "network_ext",
    "parse",
    "string",
    "timestamps",
)

#: Passing cases per file when this was recorded; raise these when you fix something.
EXPECTED_PASSING = {
    "basic": 39,
    "logic": 30,
    "comparisons": 334,
    "conversions": 108,
    "integer_math": 64,
    "fp_math": 30,
    "lists": 39,
    "macros": 44,
    "network_ext": 67,
    "parse": 176,
    "string": 51,
    "timestamps": 71,
}

#: (pattern on "file/section/test", reason). Matching cases are not run.
EXCLUDED: tuple[tuple[str, str], ...] = (
    (
        r"basic/(variables/(self_eval_)?unbound.*|functions/unbound.*)"
        r"|conversions/type/dyn_no_denotation|parse/receiver_function_names/.*",
        "an unknown variable or function is a load-time error in zerotrust, not a runtime one"
        " (the receiver_function_names cases call methods on an undeclared variable `a`; the"
        " method names themselves, reserved words, parse)",
    ),
    (
        r"comparisons/eq_wrapper/.*|comparisons/.*proto.*|comparisons/eq_literal/eq_dyn_json_null"
        r"|parse/(nest|repeat)/(message_literal|select)|parse/struct_field_names/.*"
        r"|parse/(whitespace|comments)/.*",
        "protobuf messages and wrapper types: a PDP evaluates JSON, message construction is a "
        "load-time error (the whitespace and comments cases build a TestAllTypes message)",
    ),
    (
        r"timestamps/(timestamp|duration)_conversions/type_comparison",
        "qualified type names (google.protobuf.Timestamp) are unknown identifiers at load",
    ),
    (
        r"network_ext/ipv4/ipv4_(not_)?equals_ipv6",
        "IPv4-mapped IPv6 addresses are refused in every spelling (cel-go ext/network.go"
        " refuses them with netip's Is4In6; the same file's parse_invalid_ipv4_in_ipv6 refuses"
        " the dotted spelling): these two cases expect the hex spelling ::ffff:c0a8:1 to be"
        " read as 192.168.0.1",
    ),
    (
        r"timestamps/.*nanos.*",
        "timestamps and durations hold microseconds (datetime); nanosecond digits are truncated",
    ),
)


# --- a reader for the subset of protobuf text format the files use ---------------------

_TOKEN = re.compile(
    r"""\s+|\#[^\n]*
    |(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    |(?P<ext>\[[^\]]*\])
    |(?P<punct>[{}:<>\[\],;])
    |(?P<word>[-+]?(?:[0-9.]+[eE][-+]?[0-9]+|[A-Za-z0-9_.]+))""",
    re.VERBOSE | re.DOTALL,
)
_STRING_ESCAPE = re.compile(
    r"\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|(.))"
)
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


def _unquote(token: str) -> bytes:
    body = token[1:-1]
    out = bytearray()
    pos = 0
    for m in _STRING_ESCAPE.finditer(body):
        out += body[pos : m.start()].encode("utf-8")
        pos = m.end()
        octal, hexa, uni, uni8, other = m.groups()
        if octal is not None:
            out.append(int(octal, 8))
        elif hexa is not None:
            out.append(int(hexa, 16))
        elif uni is not None or uni8 is not None:
            out += chr(int(uni or uni8, 16)).encode("utf-8")
        else:
            out += _SIMPLE.get(other, other).encode("utf-8")
    out += body[pos:].encode("utf-8")
    return bytes(out)


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"textproto: cannot read {text[pos : pos + 20]!r}")
        pos = m.end()
        if m.lastgroup is not None:
            yield m.lastgroup, m.group(m.lastgroup)


Message = list[tuple[str, Any]]


def _parse_message(
    tokens: list[tuple[str, str]], pos: int, close: str | None
) -> tuple[Message, int]:
    fields: Message = []
    while pos < len(tokens):
        kind, text = tokens[pos]
        if kind == "punct" and text == close:
            return fields, pos + 1
        if kind == "punct" and text in ",;":
            pos += 1
            continue
        name = text
        pos += 1
        if tokens[pos] == ("punct", ":"):
            pos += 1
        kind, text = tokens[pos]
        if kind == "punct" and text in "{<":
            value, pos = _parse_message(tokens, pos + 1, "}" if text == "{" else ">")
        elif kind == "string":
            data = b""
            while pos < len(tokens) and tokens[pos][0] == "string":
                data += _unquote(tokens[pos][1])
                pos += 1
            value = data
        else:
            value = text
            pos += 1
        fields.append((name, value))
    if close is not None:
        raise ValueError("textproto: unbalanced braces")
    return fields, pos


def parse_textproto(text: str) -> Message:
    tokens = list(_tokens(text))
    fields, _ = _parse_message(tokens, 0, None)
    return fields


def _get(message: Message, name: str, default: Any = None) -> Any:
    for key, value in message:
        if key == name:
            return value
    return default


def _all(message: Message, name: str) -> list[Any]:
    return [value for key, value in message if key == name]


# --- expected values --------------------------------------------------------------------


class Unsupported(Exception):
    """A value form (protobuf message, enum...) this test does not model."""


def to_value(message: Message) -> Any:
    """A ``cel.expr.Value`` as the runtime represents it."""
    (kind, raw), *_ = message or [("map_value", [])]
    if kind == "int64_value":
        return int(raw)
    if kind == "uint64_value":
        return rt.CelUint(int(raw))
    if kind == "double_value":
        return float(raw.replace("inf", "inf").replace("nan", "nan"))
    if kind == "string_value":
        return raw.decode("utf-8")
    if kind == "bytes_value":
        return raw
    if kind == "bool_value":
        return raw == "true"
    if kind == "null_value":
        return None
    if kind == "list_value":
        return [to_value(v) for v in _all(raw, "values")]
    if kind == "map_value":
        return {to_value(_get(e, "key")): to_value(_get(e, "value")) for e in _all(raw, "entries")}
    if kind == "type_value":
        return rt.CelType(raw.decode("utf-8"))
    if kind == "object_value":
        (type_url, body), *_ = raw
        if type_url.endswith("google.protobuf.Duration]"):
            seconds = int(_get(body, "seconds", "0"))
            nanos = int(_get(body, "nanos", "0"))
            return datetime.timedelta(seconds=seconds, microseconds=nanos // 1000)
        if type_url.endswith("google.protobuf.Timestamp]"):
            seconds = int(_get(body, "seconds", "0"))
            nanos = int(_get(body, "nanos", "0"))
            epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
            return epoch + datetime.timedelta(seconds=seconds, microseconds=nanos // 1000)
    raise Unsupported(kind)


def same(actual: Any, expected: Any) -> bool:
    """Value equality as the conformance suite means it: same type, NaN matches NaN."""
    ka = rt.kind_of(actual)
    if ka is not rt.kind_of(expected):
        return False
    if ka is rt.DOUBLE and math.isnan(expected):
        return math.isnan(actual)
    if ka is rt.LIST:
        return len(actual) == len(expected) and all(
            same(a, e) for a, e in zip(actual, expected, strict=True)
        )
    if ka is rt.MAP:
        return len(actual) == len(expected) and all(
            rt.map_find(actual, k)[0] and same(rt.map_find(actual, k)[1], v)
            for k, v in expected.items()
        )
    return bool(actual == expected)


# --- running the cases ------------------------------------------------------------------


def _cases(file: str) -> Iterator[tuple[str, Message]]:
    data = parse_textproto((TESTDATA / f"{file}.textproto").read_text(encoding="utf-8"))
    for section in _all(data, "section"):
        section_name = _get(section, "name").decode()
        for test in _all(section, "test"):
            yield f"{file}/{section_name}/{_get(test, 'name').decode()}", test


def _excluded(case_id: str) -> str | None:
    for pattern, reason in EXCLUDED:
        if re.fullmatch(pattern, case_id):
            return reason
    return None


def run_case(test: Message) -> tuple[bool, str]:
    """(passed, detail) for one conformance case."""
    expr = _get(test, "expr").decode("utf-8")
    bindings = {}
    for binding in _all(test, "bindings"):
        bindings[_get(binding, "key").decode()] = to_value(_get(_get(binding, "value"), "value"))
    expects_error = (
        _get(test, "eval_error") is not None or _get(test, "any_eval_errors") is not None
    )
    expected_message = _get(test, "value")
    expected = True if expected_message is None else to_value(expected_message)
    names = frozenset(bindings) | {_get(decl, "name").decode() for decl in _all(test, "type_env")}
    try:
        fn = compile_expression(expr, names)
    except CelLiteralError as exc:
        return expects_error, f"literal error at load: {exc}"
    except CelCompileError as exc:
        return False, f"compile error: {exc}"
    try:
        actual = fn(bindings)
    except Exception as exc:  # any evaluation error
        return expects_error, f"error: {type(exc).__name__}: {exc}"
    if expects_error:
        return False, f"expected an error, got {actual!r}"
    if same(actual, expected):
        return True, ""
    return False, f"expected {expected!r}, got {actual!r}"


def _results(file: str) -> tuple[int, list[tuple[str, str]], list[str]]:
    passed = 0
    failures: list[tuple[str, str]] = []
    excluded: list[str] = []
    for case_id, test in _cases(file):
        if _excluded(case_id) is not None:
            excluded.append(case_id)
            continue
        try:
            ok, detail = run_case(test)
        except Unsupported as exc:
            ok, detail = False, f"unsupported value form {exc}"
        if ok:
            passed += 1
        else:
            failures.append((case_id, detail))
    return passed, failures, excluded


needs_data = pytest.mark.skipif(
    not TESTDATA.is_dir(),
    reason=f"cel-spec conformance data not found at {TESTDATA}",
)


@needs_data
@pytest.mark.parametrize("file", FILES)
def test_conformance_count(file: str) -> None:
    passed, failures, excluded = _results(file)
    report = "\n".join(f"  {case}: {detail}" for case, detail in failures)
    print(f"{file}: {passed} passed, {len(failures)} failed, {len(excluded)} excluded")
    if report:
        print(report)
    assert passed >= EXPECTED_PASSING[file], (
        f"{file}: {passed} cases pass, fewer than the {EXPECTED_PASSING[file]} recorded\n{report}"
    )


@needs_data
def test_no_unexpected_failures() -> None:
    """Every case not excluded passes: an exclusion is a decision, a failure is a bug."""
    failures = [f for file in FILES for f in _results(file)[1]]
    assert not failures, "\n".join(f"{case}: {detail}" for case, detail in failures)


def test_textproto_reader() -> None:
    text = 'a: 1 b { c: "x\\303\\277" "y" } # comment\n d: { e: NULL_VALUE }'
    assert parse_textproto(text) == [
        ("a", "1"),
        ("b", [("c", b"x\xc3\xbfy")]),
        ("d", [("e", "NULL_VALUE")]),
    ]
