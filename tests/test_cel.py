from __future__ import annotations

import datetime
import sys

import celpy.celparser
import pytest

from zerotrust.cel import CelCompileError, ConditionError, default_backend
from zerotrust.cel.functions import ip_in_cidr, ip_is_private

NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)


def run(source: str, **variables: object) -> bool:
    backend = default_backend()
    return backend.compile(source)(backend.bind({"now": NOW, **variables}))


def test_backend_has_no_process_wide_side_effects() -> None:
    before = sys.getrecursionlimit()
    backend = default_backend()
    backend.compile("subject.id == 'x'")
    assert sys.getrecursionlimit() == before
    assert celpy.celparser.CELParser.CEL_PARSER is None


@pytest.mark.parametrize(
    ("source", "message", "column"),
    [
        ("subject.id == ", "syntax error", 14),
        ("subjct.id == 'a'", "did you mean 'subject'", 1),
        ("frobnicate(subject)", "unknown function 'frobnicate'", 1),
        ("subject.id.frob()", "unknown function 'frob'", 12),
        ("42", "constant 42", 1),
        ("'yes'", "constant 'yes'", 1),
        ("1 + 2", "an addition", 1),
        ("[true]", "a list", 1),
        ("subject.roles.exists(1, true)", "takes a variable name", 15),
        ("   ", "empty condition", 1),
    ],
)
def test_compile_errors_have_positions(source: str, message: str, column: int) -> None:
    with pytest.raises(CelCompileError) as info:
        default_backend().compile(source)
    assert message in info.value.message
    assert info.value.column == column


def test_variables_read_are_reported() -> None:
    cond = default_backend().compile("subject.id == resource.id && [1].all(x, x > 0)")
    assert cond.variables == frozenset({"subject", "resource"})


def test_cel_error_semantics() -> None:
    assert run("false && device.missing", device={}) is False
    assert run("device.missing || true", device={}) is True
    with pytest.raises(ConditionError, match="missing"):
        run("device.missing && true", device={})
    with pytest.raises(ConditionError):
        run("1 / 0 == 1")
    assert run("has(device.managed)", device={}) is False


def test_macros_and_timestamps() -> None:
    assert run("subject.roles.exists(r, r == 'admin')", subject={"roles": ["x", "admin"]})
    assert run("now.getHours('Europe/Berlin') == 11")
    assert run("now - timestamp('2026-03-01T10:00:00Z') == duration('86400s')")


def test_ip_functions() -> None:
    assert ip_in_cidr("10.1.2.3", "10.0.0.0/8")
    assert ip_in_cidr("10.1.2.3", ["192.168.0.0/16", "10.0.0.0/8"])
    assert not ip_in_cidr("11.1.2.3", "10.0.0.0/8")
    assert not ip_in_cidr("::1", "10.0.0.0/8")
    assert ip_in_cidr("2001:db8::1", "2001:db8::/32")
    assert ip_is_private("192.168.1.1") and not ip_is_private("8.8.8.8")
    with pytest.raises(ValueError, match="not an IP address"):
        ip_in_cidr("nonsense", "10.0.0.0/8")
    with pytest.raises(ValueError, match="not a CIDR"):
        ip_in_cidr("10.0.0.1", "10.0.0.0/99")
    assert run("ip_in_cidr(context.ip, ['10.0.0.0/8'])", context={"ip": "10.9.9.9"})
    with pytest.raises(ConditionError, match="not an IP address"):
        run("ip_in_cidr(context.ip, '10.0.0.0/8')", context={"ip": "garbage"})


def test_redos_unterminated_string_full_of_escapes_is_refused_at_once() -> None:
    """cel-python's literal regexes backtrack exponentially on this (25 escapes: ~1 min)."""
    evil = 'subject.id == """x' + "\\242\\006" * 20 + "\\0041234'}}"
    with pytest.raises(CelCompileError, match="unterminated string literal") as info:
        default_backend().compile(evil)
    assert (info.value.line, info.value.column) == (1, 15)


@pytest.mark.parametrize(
    "source",
    [
        'subject.id == "a\\"b"',
        'subject.id == """two\nlines"""',
        "subject.id == r'raw\\d'",
        'subject.id == "x" // a comment with a \' quote',
        "subject.id == b'bytes' || true",
    ],
)
def test_terminated_strings_still_parse(source: str) -> None:
    default_backend().compile(source)
