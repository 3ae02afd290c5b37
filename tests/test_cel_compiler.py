"""Unit tests of the compiled CEL backend: semantics, load-time refusals, safety, threads."""

from __future__ import annotations

import contextlib
import datetime
import threading
from typing import Any, cast

import pytest

from zerotrust.cel import CelCompileError, ConditionError
from zerotrust.cel._compiler import CelLiteralError, CompiledBackend, compile_expression
from zerotrust.cel._compiler_runtime import CelError, CelUint

BACKEND = CompiledBackend()
NOW = datetime.datetime(2024, 3, 15, 14, 30, 0, tzinfo=datetime.UTC)
REQUEST: dict[str, Any] = {
    "subject": {
        "id": "alice",
        "roles": ["admin", "dev"],
        "level": 3,
        "score": 0.75,
        "active": True,
        "meta": {"team": "core", "none": None},
    },
    "resource": {"type": "doc", "owner": "alice", "tags": {"pii": True}, "size": 10},
    "action": {"name": "read"},
    "context": {"ip": "10.1.2.3"},
    "now": NOW,
}


def check(source: str, bindings: dict[str, Any] | None = None) -> bool:
    return BACKEND.compile(source)(BACKEND.bind(REQUEST if bindings is None else bindings))


def value(source: str, **variables: Any) -> Any:
    return compile_expression(source, frozenset(variables))(variables)


def fails(source: str, **variables: Any) -> bool:
    try:
        value(source, **variables)
    except CelCompileError:
        raise
    except Exception:
        return True
    return False


@pytest.mark.parametrize(
    "source",
    [
        'subject.id == resource.owner && "admin" in subject.roles',
        "subject.level >= 3 && subject.score < 1.0",
        "subject.active",
        "has(subject.meta.team) && !has(subject.meta.missing)",
        "subject.meta.none == null",
        "subject.roles.exists(r, r.startsWith('ad'))",
        "subject.roles.all(r, size(r) <= 5)",
        "subject.roles.exists_one(r, r == 'dev')",
        "subject.roles.map(r, r + '!') == ['admin!', 'dev!']",
        "subject.roles.filter(r, r != 'dev') == ['admin']",
        "resource.tags.pii ? action.name == 'read' : false",
        "ip_in_cidr(context.ip, '10.0.0.0/8') && ip_is_private(context.ip)",
        "now.getHours() == 14 && now.getDayOfWeek() == 5",
        "now.getHours('Europe/Paris') == 15",
        "now < timestamp('2025-01-01T00:00:00Z')",
        "now - timestamp('2024-03-15T14:00:00Z') == duration('30m')",
        "resource.owner.matches('^al[a-z]+$')",
        "string(resource.size) == '10' && int('10') == resource.size",
        "type(resource.size) == int && type(subject.score) == double",
        "{'a': 1}.a == 1 && [1, 2, 3][1] == 2",
        "dyn(subject.level) == 3u",
        "resource['type'] == 'doc'",
        "subject.level + 1 == 4 && subject.level * 2 == 6 && -subject.level == -3",
        "7 / 2 == 3 && -7 / 2 == -3 && -7 % 3 == -1 && 7u % 2u == 1u",
        "size('🐱é') == 2 && 'aé🐱'.endsWith('🐱')",
        "bytes('é') == b'\\xc3\\xa9' && string(b'abc') == 'abc'",
    ],
)
def test_true_conditions(source: str) -> None:
    assert check(source) is True


@pytest.mark.parametrize(
    "source",
    [
        "false && subject.missing",  # false absorbs the error, left to right ...
        "subject.missing && false",  # ... and right to left
        "!(true || subject.missing) ",
        "!(subject.missing || true)",
        "true == 1",  # bool is not a number
        "[true] == [1]",
        "{'k': true} == {'k': 1}",
        "1 in [true]",
        "subject.roles.exists(r, r == 'x')",
        "[1, 'a'].exists(x, x == 'b')",
    ],
)
def test_false_conditions(source: str) -> None:
    assert check(source) is False


@pytest.mark.parametrize(
    "source",
    [
        "subject.missing == 1",  # missing key is an error, not null
        "subject.missing || false",
        "true && subject.missing",
        "subject.id.x == 1",  # field of a string
        "subject.level / 0 == 1",
        "subject.level % 0 == 1",
        "9223372036854775807 + subject.level > 0",
        "-9223372036854775808 - subject.level < 0",
        "0u - 1u == 0u",
        "subject.level + subject.score > 0.0",  # no mixed arithmetic
        "subject.roles[2] == 'x'",
        "subject.roles[-1] == 'dev'",  # no negative indexing
        "subject.id[0] == 'a'",  # no string indexing
        "[1, 2][true] == 2",
        "{1: 'a'}[true] == 'a'",
        "subject.level",  # not a boolean
        "subject.active ? 1 : 2",
        "!subject.level",
        "-subject.active == 1",
        "'a' < 1",
        "subject.level.exists(x, true)",
        "[1, 0].all(x, 1 / x > 0)",
        "[1, 0].exists_one(x, 1 / x > 0)",
        "size(null) == 0",
        "subject.roles.contains('admin')",  # contains() is for strings
        "int('1_000') == 1000",
        "timestamp(subject.id) == now",
        "now.getHours(subject.id) == 1",
        "ip_in_cidr(subject.id, '10.0.0.0/8')",
        "{1: 1, 1u: 2}.size() == 1",
        "string(b'\\xff') == ''",
    ],
)
def test_error_conditions(source: str) -> None:
    with pytest.raises(ConditionError):
        check(source)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 == 1.0", True),
        ("1u == 1", True),
        ("2 < 2.5", True),
        ("9223372036854775807 < 9223372036854775808.0", False),  # compared as doubles
        ("0.0 / 0.0 == 0.0 / 0.0", False),
        ("1.0 / 0.0", float("inf")),
        ("string(1.0)", "1"),
        ("string(123456789.0)", "1.23456789e+08"),
        ("string(duration('90m'))", "5400s"),
        ("string(timestamp('2009-02-13T23:31:30.5Z'))", "2009-02-13T23:31:30.500Z"),
        ("uint(3.9)", CelUint(3)),
        ("int(-3.9)", -3),
        ("double('1e3')", 1000.0),
        ("bool('TRUE')", True),
        ("int(timestamp('1970-01-01T00:01:00Z'))", 60),
        ("timestamp(60) == timestamp('1970-01-01T00:01:00Z')", True),
        ("duration('1h30m').getMinutes()", 90),
        ("duration('-1.5s').getMilliseconds()", -500),
        ("timestamp('2009-02-13T23:31:30Z').getDayOfYear()", 43),
        ("timestamp('2009-02-13T23:31:30Z').getMonth('+11:00')", 1),
        ("[1, 2] + [3]", [1, 2, 3]),
        ("{'a': [1, {'b': 2u}]}", {"a": [1, {"b": CelUint(2)}]}),
        ("type(null)", value("null_type")),
        ("type(type(1)) == type", True),
        ("[1, 2, 3].map(x, x > 1, x * 10)", [20, 30]),
        ("'''multi\nline'''", "multi\nline"),
        ("r'\\d'", "\\d"),
        ("'\\u00e9\\U0001F431\\x41\\101'", "é🐱AA"),
        ("b'\\377'", b"\xff"),
        ("0x10 + -0x1", 15),
    ],
)
def test_values(source: str, expected: Any) -> None:
    got = value(source)
    assert type(got) is type(expected)
    assert got == expected


def test_macro_variable_shadowing_and_nesting() -> None:
    assert value("[1, 2].all(x, [3, 4].exists(x, x > 3)) && x == 5", x=5) is True
    assert value("[[1, 2], [3]].map(l, l.map(x, x * 2))") == [[2, 4], [6]]
    assert value("{'a': 1, 'b': 2}.filter(k, k != 'a')") == ["b"]


def test_bind_is_the_mapping_itself() -> None:
    assert BACKEND.bind(REQUEST) is REQUEST
    extended = BACKEND.extend(REQUEST, {"risk": {"score": 0.5}})
    assert extended["risk"] == {"score": 0.5}
    assert "risk" not in REQUEST


def test_condition_metadata() -> None:
    condition = BACKEND.compile("subject.level > 1 && resource.x.all(y, y == now)")
    assert condition.source == "subject.level > 1 && resource.x.all(y, y == now)"
    assert condition.variables == frozenset({"subject", "resource", "now"})


def test_missing_variable_is_an_error_only_when_read() -> None:
    condition = BACKEND.compile("true || risk.score > 0.5")
    assert condition({}) is True
    with pytest.raises(ConditionError, match="risk"):
        BACKEND.compile("risk.score > 0.5")({})


# --- refused at load -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "column"),
    [
        ("subject.a == Foo{x: 1}", 14),
        ("subject.a.unknownMethod()", 11),
        ("size(subject.a, 2) == 1", 1),
        ("has(subject) && true", 5),  # at the argument that is no field selection
        ("subject.a.all(x) && true", 11),
        ("[1].map(x, x, x, x) == []", 5),
        ("subject.name.matches('(') && true", 14),
        ("now < timestamp('2024-13-01T00:00:00Z')", 7),
        ("now.getHours('Mars/Olympus') == 1", 5),
        ("duration('1 hour') > duration('1h')", 1),
        ("ip_in_cidr(context.ip) && true", 1),
        ("ip_in_cidr('not-an-ip', '10.0.0.0/8')", 1),
        ("subject.n == 9223372036854775808", 14),
    ],
)
def test_refused_at_load_with_position(source: str, column: int) -> None:
    with pytest.raises(CelCompileError) as info:
        BACKEND.compile(source)
    assert info.value.line == 1
    assert info.value.column == column


def test_literal_errors_are_marked() -> None:
    with pytest.raises(CelLiteralError):
        BACKEND.compile("subject.name.matches('[') && true")


def test_deep_nesting_is_refused_not_crashing() -> None:
    source = "[1].all(x, " * 30 + "true" + ")" * 30
    with pytest.raises(CelCompileError):
        BACKEND.compile(source)


# --- generated code safety -----------------------------------------------------------------

INJECTIONS = [
    # strings: must stay data
    "subject.name == '\\'); __import__(\"os\").system(\"echo pwned\"); (\\''",
    'subject.name == "\\"; import os; os.system(\'x\') #"',
    "subject.name == '''\n__import__('os')\n'''",
    "subject.name.matches('__import__(\"os\")')",
    # field names and map keys: identifiers, and bracketed strings
    "subject.__class__ == 1",
    "subject.__dict__.__globals__ == 1",
    "subject['__class__'] == 1",
    "{'__builtins__': 1}.__builtins__ == 1",
    # macro variables that look like Python, or like the generator's own names
    "subject.roles.exists(__import__, __import__ == 'x')",
    "subject.roles.exists(b, b == 'admin')",
    "subject.roles.exists(k0, k0 == 'admin')",
    "subject.roles.exists(_eq, _eq == 'admin')",
    "subject.roles.exists(x, x == 'admin')",
]


@pytest.mark.parametrize("source", INJECTIONS)
def test_injection_attempts_stay_data(source: str, capfd: pytest.CaptureFixture[str]) -> None:
    try:
        condition = BACKEND.compile(source)
    except CelCompileError:
        return  # refused outright is also safe
    python_source = cast(Any, condition).python_source
    assert "import" not in python_source
    assert "os" not in python_source.split()
    with contextlib.suppress(ConditionError):
        condition(REQUEST)
    assert "pwned" not in capfd.readouterr().out


def test_generator_names_cannot_be_shadowed() -> None:
    assert check("subject.roles.exists(b, b == 'admin')") is True
    assert check("subject.roles.exists(k0, k0 == 'dev')") is True
    assert check("subject.roles.exists(_eq, _eq == 'dev')") is True


def test_builtins_are_not_reachable() -> None:
    for name in ("__import__", "eval", "open", "print"):
        with pytest.raises(CelCompileError):
            BACKEND.compile(f"{name}('x') == 1")


# --- runtime helpers and threads ------------------------------------------------------------


def test_cel_error_is_internal() -> None:
    with pytest.raises(CelError):
        value("1 / 0")


def test_threads_agree_with_one_thread() -> None:
    sources = [
        "subject.level > 2 && 'admin' in subject.roles",
        "subject.roles.exists(r, r == subject.id)",
        "resource.size * 2 > 15 || has(resource.missing)",
        "now.getDayOfWeek() == 5",
    ]
    conditions = [BACKEND.compile(s) for s in sources]
    requests = [
        {**REQUEST, "subject": {**REQUEST["subject"], "level": i % 5, "id": ["admin", "x"][i % 2]}}
        for i in range(50)
    ]
    expected = [[c(r) for c in conditions] for r in requests]
    failures: list[str] = []

    def work() -> None:
        for _ in range(40):
            for request, want in zip(requests, expected, strict=True):
                if [c(request) for c in conditions] != want:
                    failures.append("mismatch")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


# --- the load path: fast parse, exact diagnostics, shared code ------------------------------


def _corpus() -> list[str]:
    """Every CEL source in this module's parametrized tests, and the conformance cases."""
    sources: list[str] = list(INJECTIONS)
    for test in (
        test_true_conditions,
        test_false_conditions,
        test_error_conditions,
        test_values,
        test_refused_at_load_with_position,
    ):
        for mark in getattr(test, "pytestmark", []):
            if mark.name == "parametrize":
                for params in mark.args[1]:
                    sources.append(params if isinstance(params, str) else params[0])
    with contextlib.suppress(ImportError, OSError):
        from test_cel_conformance import FILES, _cases, _get

        for file in FILES:
            sources.extend(_get(test, "expr").decode() for _, test in _cases(file))
    sources.extend(
        [
            "[1].all(x, " * 30 + "true" + ")" * 30,
            "((((((((((subject.level))))))))))> 1",
            "subject.id ==",
            "subject.id == 'unterminated",
            "subject.roles.exists(1, true)",
            "42",
            "1 + 2",
            "",
            "   ",
            "subject.id == 'a' // comment\n && true",
        ]
    )
    return sources


CORPUS = _corpus()


def _program(tree: Any) -> Any:
    from zerotrust.cel._backend import VARIABLES
    from zerotrust.cel._compiler_codegen import generate
    from zerotrust.cel.functions import EXTRA_FUNCTIONS

    try:
        program = generate(tree, VARIABLES, EXTRA_FUNCTIONS)
    except CelCompileError as exc:
        return ("refused", exc.message)
    return (program.body, program.result, repr(program.constants))


def test_fast_parse_accepts_exactly_what_the_exact_parse_accepts() -> None:
    from zerotrust.cel._compiler import FUNCTIONS
    from zerotrust.cel._syntax import parse, parse_fast

    assert len(CORPUS) > 100  # 800+ with the shared conformance data present
    for source in CORPUS:
        try:
            exact = parse(source, FUNCTIONS)
        except CelCompileError:
            exact = None
        fast = parse_fast(source, FUNCTIONS)
        assert (fast is None) == (exact is None), source
        if fast is not None and exact is not None:
            assert fast.variables == exact.variables, source
            assert _program(fast.tree) == _program(exact.tree), source


def test_fast_parser_builds_larks_trees_and_rejects_what_lark_rejects() -> None:
    import random

    from lark.exceptions import LarkError

    from zerotrust.cel._syntax import _build_parser, _fast_parser

    lark_parser = _build_parser(positions=False)
    fast = _fast_parser()
    rng = random.Random(3)
    pieces = [*"()[]{}.,:?!<>=&|+-*/%'\"\\ \n_xu09", "in", "true", "null", "'''", "0x", "b'"]
    sources = list(CORPUS)
    for _ in range(3000):  # mutated sources: mostly invalid, some valid in unusual ways
        text = rng.choice(CORPUS)
        at = rng.randrange(len(text) + 1)
        if rng.random() < 0.5:
            text = text[:at] + rng.choice(pieces) + text[at:]
        else:
            text = text[:at] + text[at + 1 :]
        sources.append(text)
    for source in sources:
        try:
            expected = lark_parser.parse(source)
        except LarkError:
            expected = None
        assert _same_tree(fast(source), expected), source


def _same_tree(a: Any, b: Any) -> bool:
    """Lark's ``Tree.__eq__`` without its recursion (the corpus has trees 300 deep)."""
    import lark

    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if isinstance(x, lark.Tree) and isinstance(y, lark.Tree):
            if x.data != y.data or len(x.children) != len(y.children):
                return False
            stack.extend(zip(x.children, y.children, strict=True))
        elif isinstance(x, lark.Tree) or isinstance(y, lark.Tree) or x != y:
            return False
    return True


def test_diagnostics_keep_exact_positions_through_the_fast_path() -> None:
    with pytest.raises(CelCompileError) as info:
        BACKEND.compile("subject.id == 'a' &&\n  subjct.level > 1")
    assert (info.value.line, info.value.column) == (2, 3)
    with pytest.raises(CelLiteralError) as literal:
        BACKEND.compile("true &&\n   subject.name.matches('[')")
    assert (literal.value.line, literal.value.column) == (2, 17)


def test_conditions_differing_in_string_constants_share_code() -> None:
    backend = CompiledBackend()
    admin = backend.compile("'admin' in subject.roles && subject.id == 'alice'")
    dev = backend.compile("'dev' in subject.roles && subject.id == 'bob'")
    level = backend.compile("subject.level > 2")
    other_level = backend.compile("subject.level > 3")
    assert admin.__code__ is dev.__code__  # type: ignore[attr-defined]
    assert level.__code__ is not other_level.__code__  # type: ignore[attr-defined]
    assert admin(REQUEST) is True
    assert dev(REQUEST) is False
    assert (level(REQUEST), other_level(REQUEST)) == (True, False)
    assert admin.source != dev.source


def test_conditions_differing_in_field_names_share_code() -> None:
    backend = CompiledBackend()
    team = backend.compile("subject.meta.team == 'core' && resource.size > 2")
    owner = backend.compile("subject.meta.owner == 'core' && resource.count > 2")
    assert team.__code__ is owner.__code__  # type: ignore[attr-defined]
    assert team(REQUEST) is True
    with pytest.raises(ConditionError, match="no such key: 'owner'"):
        owner(REQUEST)


def test_conditions_differing_in_integers_are_compiled_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from zerotrust.cel import _compiler

    compiled: list[str] = []
    maker_code = _compiler._maker_code

    def counting(text: str) -> Any:
        compiled.append(text)
        return maker_code(text)

    monkeypatch.setattr(_compiler, "_maker_code", counting)
    backend = CompiledBackend()
    sources = [
        f"resource.size > {n} && subject.level in [{n}, 3] && [{n}, -1][1] == -1"
        for n in (-9223372036854775808, -1, 0, 9, 10, 11, 9223372036854775807)
    ]
    conditions = [backend.compile(s) for s in sources]
    assert len(compiled) == 1
    assert len({id(c.__code__) for c in conditions}) == len(sources)  # type: ignore[attr-defined]
    assert [c(REQUEST) for c in conditions] == [True, True, True, True, False, False, False]
    listing = cast(Any, conditions[3]).python_source
    assert " > 9 if " in listing and str(2**70) not in listing


def test_identical_conditions_in_one_load_share_one_condition() -> None:
    from zerotrust import PolicyDecisionPoint, PolicyError

    def doc(name: str, when: str, pad: str = "") -> str:
        return (
            f"policy: {name}\ntarget: {{resources: [doc]}}\nrules:\n"
            f"  - id: r\n    effect: allow\n    when: {pad}'{when}'\n"
        )

    texts = {f"p{i}.yaml": doc(f"p{i}", "subject.level > 2") for i in range(3)}
    pdp = PolicyDecisionPoint.from_texts(texts, behavior=None)
    conditions = {id(p.rules[0].condition) for p in pdp.policies.policies}
    assert len(conditions) == 1
    # the second copy is remembered from the first, but reported at its own position
    broken = {"a.yaml": doc("a", "subjct.level > 2"), "b.yaml": doc("b", "subjct.level > 2", "  ")}
    with pytest.raises(PolicyError) as info:
        PolicyDecisionPoint.from_texts(broken, behavior=None)
    found = sorted((d.file, d.line, d.column) for d in info.value.diagnostics)
    assert found == [("a.yaml", 6, 12), ("b.yaml", 6, 14)]
