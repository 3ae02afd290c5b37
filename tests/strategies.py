"""Hypothesis strategies shared by the property tests.

Three families: JSON values and requests (valid ones, and arbitrary JSON-ish junk
for the request validator); small policy sets built from a plain model whose
outcome a test oracle can compute; and policy-shaped or arbitrary YAML for the
loader. Conditions are constants so the oracle needs no CEL: ``true``, ``false``
and an expression that always errors at evaluation (a key the request lacks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import yaml
from hypothesis import strategies as st

__all__ = [
    "CONDITION_SOURCE",
    "INT64",
    "REQUEST",
    "PolicyModel",
    "RuleModel",
    "SignalModel",
    "json_ish",
    "json_values",
    "mutated_policy_documents",
    "policy_ish_documents",
    "policy_sets",
    "requests",
    "rules",
    "to_texts",
    "yaml_ish_text",
]

INT64 = (-(2**63), 2**63 - 1)

#: condition kind -> CEL source; ``None`` means the rule has no ``when`` (always matches).
CONDITION_SOURCE: Mapping[str, str | None] = {
    "true": "true",
    "false": "false",
    "error": "context.missing_key == 1",
    "absent": None,
}
CONDITIONS = tuple(CONDITION_SOURCE)

#: The request every generated policy set is evaluated against: its context has no
#: ``missing_key``, so the "error" condition always errors.
REQUEST: Mapping[str, Any] = {
    "subject": {"type": "user", "id": "u-1", "properties": {"roles": ["agent"]}},
    "action": {"name": "read"},
    "resource": {"type": "doc", "id": "d-1"},
    "device": {"managed": True},
    "context": {"country": "DE"},
}
#: target.resources choices: the request's type, another type, any.
TARGETS = (("doc",), ("invoice",), ("*",), None)


# --- JSON values and requests ---------------------------------------------------------

_FLOATS = st.floats(allow_nan=False, allow_infinity=False)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=INT64[0], max_value=INT64[1])
    | _FLOATS
    | st.text(max_size=12)
)


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value (integers within CEL's 64-bit range)."""
    return st.recursive(
        JSON_SCALARS,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


_NAMES = st.text(min_size=1, max_size=12)
_PROPERTIES = st.dictionaries(st.text(max_size=8), json_values(8), max_size=4)


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request mapping: required fields present, optional ones sometimes."""
    subject: dict[str, Any] = {"id": draw(_NAMES)}
    if draw(st.booleans()):
        subject["type"] = draw(_optional(_NAMES))
    if draw(st.booleans()):
        subject["properties"] = draw(_optional(_PROPERTIES))
    action: dict[str, Any] = {"name": draw(_NAMES)}
    if draw(st.booleans()):
        action["properties"] = draw(_optional(_PROPERTIES))
    resource: dict[str, Any] = {"type": draw(_NAMES)}
    if draw(st.booleans()):
        resource["id"] = draw(_optional(_NAMES))
    if draw(st.booleans()):
        resource["properties"] = draw(_optional(_PROPERTIES))
    request: dict[str, Any] = {"subject": subject, "action": action, "resource": resource}
    for free in ("device", "context"):
        if draw(st.booleans()):
            request[free] = draw(_optional(_PROPERTIES))
    return request


class _Opaque:
    """Not JSON: an arbitrary object a careless caller might pass."""


_NOT_JSON = st.sampled_from(
    [
        float("nan"),
        float("inf"),
        -float("inf"),
        b"bytes",
        bytearray(b"x"),
        {1, 2},
        frozenset(),
        1 + 2j,
        _Opaque(),
        object,
        len,
    ]
)
_TOP_KEYS = st.sampled_from(["subject", "action", "resource", "device", "context", "extra"])
_SECTION_KEYS = st.sampled_from(["id", "type", "name", "properties", "extra"])
_ANY_KEY = st.text(max_size=6) | st.integers() | st.none() | st.tuples(st.integers())


def _nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def json_ish() -> st.SearchStrategy[Any]:
    """Arbitrary input for ``AccessRequest.from_mapping``: mostly request-shaped, with
    wrong types, unknown keys, non-JSON values, non-string keys and deep nesting."""
    leaf = JSON_SCALARS | _NOT_JSON | st.integers()
    anything = st.recursive(
        leaf,
        lambda c: (
            st.lists(c, max_size=3)
            | st.tuples(c, c)
            | st.dictionaries(_ANY_KEY, c, max_size=3)
            | st.dictionaries(_SECTION_KEYS, c, max_size=3)
        ),
        max_leaves=10,
    )
    deep = st.builds(_nested, st.integers(min_value=28, max_value=40), leaf)
    section = (
        st.dictionaries(_SECTION_KEYS, anything | _NAMES, max_size=4)
        | anything
        | st.builds(lambda d: {"properties": d, "id": "x", "type": "t", "name": "n"}, deep)
    )
    request_like = st.dictionaries(_TOP_KEYS, section, max_size=6)
    mutated = st.builds(_mutate, requests(), _TOP_KEYS, anything | deep)
    return request_like | mutated | anything


def _mutate(request: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    out = dict(request)
    if key in out and isinstance(out[key], dict):
        section = dict(out[key])
        section[next(iter(section), "extra")] = value
        out[key] = section
    else:
        out[key] = value
    return out


# --- policy sets with a computable outcome -----------------------------------------------


@attrs.frozen
class SignalModel:
    name: str
    condition: str  # a key of CONDITION_SOURCE
    score: int

    def document(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "score": self.score}
        source = CONDITION_SOURCE[self.condition]
        if source is not None:
            out["when"] = source
        return out


@attrs.frozen
class RuleModel:
    id: str
    effect: str  # allow | deny | step_up
    condition: str  # a key of CONDITION_SOURCE
    report_only: bool = False
    acr_values: tuple[str, ...] = ()
    max_age: int | None = None
    obligations: tuple[str, ...] = ()  # obligation types

    def document(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "effect": self.effect}
        source = CONDITION_SOURCE[self.condition]
        if source is not None:
            out["when"] = source
        if self.report_only:
            out["mode"] = "report-only"
        if self.effect == "step_up" and (self.acr_values or self.max_age is not None):
            step_up: dict[str, Any] = {}
            if self.acr_values:
                step_up["acr_values"] = list(self.acr_values)
            if self.max_age is not None:
                step_up["max_age"] = self.max_age
            out["step_up"] = step_up
        if self.obligations:
            out["obligations"] = [{"type": t, "by": self.id} for t in self.obligations]
        return out


@attrs.frozen
class PolicyModel:
    name: str
    resources: tuple[str, ...] | None  # None: no target at all
    signals: tuple[SignalModel, ...]
    rules: tuple[RuleModel, ...]

    @property
    def applies(self) -> bool:
        """Whether the policy applies to :data:`REQUEST` (resource type ``doc``)."""
        return self.resources is None or "*" in self.resources or "doc" in self.resources

    def document(self) -> dict[str, Any]:
        out: dict[str, Any] = {"policy": self.name}
        if self.resources is not None:
            out["target"] = {"resources": list(self.resources), "actions": ["read", "write"]}
        if self.signals:
            out["signals"] = [s.document() for s in self.signals]
        out["rules"] = [r.document() for r in self.rules]
        return out


EFFECTS = ("allow", "deny", "step_up")


@st.composite
def rules(
    draw: st.DrawFn,
    rule_id: str = "r",
    effects: tuple[str, ...] = EFFECTS,
    conditions: tuple[str, ...] = CONDITIONS,
    report_only: bool | None = False,
) -> RuleModel:
    """One rule; ``report_only=None`` draws the mode too."""
    effect = draw(st.sampled_from(effects))
    acr: tuple[str, ...] = ()
    max_age = None
    if effect == "step_up":
        acr = tuple(draw(st.lists(st.sampled_from(["loa1", "loa2", "loa3"]), max_size=2)))
        max_age = draw(st.none() | st.integers(min_value=0, max_value=3600))
    return RuleModel(
        id=rule_id,
        effect=effect,
        condition=draw(st.sampled_from(conditions)),
        report_only=draw(st.booleans()) if report_only is None else report_only,
        acr_values=acr,
        max_age=max_age,
        obligations=tuple(draw(st.lists(st.sampled_from(["mask", "log"]), max_size=1))),
    )


@st.composite
def policy_sets(
    draw: st.DrawFn,
    *,
    max_policies: int = 2,
    max_rules: int = 3,
    max_signals: int = 2,
    effects: tuple[str, ...] = EFFECTS,
    conditions: tuple[str, ...] = CONDITIONS,
    report_only: bool | None = None,
    allow_conditions: tuple[str, ...] | None = None,
) -> tuple[PolicyModel, ...]:
    """A small policy set. ``allow_conditions`` restricts the conditions of allow rules."""
    policies = []
    for p in range(draw(st.integers(min_value=1, max_value=max_policies))):
        signals = tuple(
            SignalModel(
                name=f"s{i}",
                condition=draw(st.sampled_from(CONDITIONS)),
                score=draw(st.integers(min_value=0, max_value=100)),
            )
            for i in range(draw(st.integers(min_value=0, max_value=max_signals)))
        )
        policy_rules = []
        for i in range(draw(st.integers(min_value=1, max_value=max_rules))):
            rule = draw(
                rules(
                    rule_id=f"r{i}",
                    effects=effects,
                    conditions=conditions,
                    report_only=report_only,
                )
            )
            if rule.effect == "allow" and allow_conditions is not None:
                rule = attrs.evolve(rule, condition=draw(st.sampled_from(allow_conditions)))
            policy_rules.append(rule)
        policies.append(
            PolicyModel(
                name=f"p{p}",
                resources=draw(st.sampled_from(TARGETS)),
                signals=signals,
                rules=tuple(policy_rules),
            )
        )
    return tuple(policies)


def to_texts(policies: tuple[PolicyModel, ...], *, split: bool = False) -> dict[str, str]:
    """YAML texts for ``PolicyDecisionPoint.from_texts``: one file, or one file per policy."""
    documents = [p.document() for p in policies]
    if split:
        return {
            f"{p.name}.yaml": yaml.safe_dump(d, sort_keys=False)
            for p, d in zip(policies, documents, strict=True)
        }
    return {"policies.yaml": yaml.safe_dump_all(documents, sort_keys=False)}


# --- arbitrary YAML for the loader ---------------------------------------------------------

_POLICY_WORDS = [
    "policy",
    "description",
    "target",
    "resources",
    "actions",
    "signals",
    "name",
    "when",
    "score",
    "rules",
    "id",
    "effect",
    "reason",
    "mode",
    "step_up",
    "acr_values",
    "max_age",
    "obligations",
    "type",
    "fields",
]
_POLICY_VALUES = [
    "allow",
    "deny",
    "step_up",
    "enforce",
    "report-only",
    "*",
    "doc",
    "p",
    "r",
    "true",
    "false",
    "risk.score >= 80",
    "context.missing_key == 1",
    "subject.id ==",
    "1 + 2",
    "'text'",
    "data.users",
    "nope(1)",
    "",
]
_CEL_ISH = st.sampled_from(_POLICY_VALUES) | st.text(
    alphabet="abcsubjectrisk.=!&|<>()[]'\" 0123456789", max_size=20
)


def policy_ish_documents() -> st.SearchStrategy[Any]:
    """Structured documents with policy-shaped keys and random values of every type."""
    scalar = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | _CEL_ISH
        | st.sampled_from(_POLICY_WORDS)
        | st.dates()
    )
    keys = st.sampled_from(_POLICY_WORDS) | st.text(max_size=6) | st.integers(-3, 3) | st.booleans()
    return st.recursive(
        scalar,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(keys, c, max_size=5),
        max_leaves=25,
    )


@st.composite
def mutated_policy_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid policy document with one value somewhere replaced or removed."""
    model = draw(policy_sets(max_policies=1, max_rules=2, max_signals=1))[0]
    document: Any = model.document()
    path: list[tuple[Any, Any]] = []
    node = document
    while isinstance(node, dict | list) and node and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
        path.append((node, key))
        node = node[key]
    if not path:
        key = draw(st.sampled_from(sorted(document)))
        path.append((document, key))
    container, key = path[-1]
    if isinstance(container, dict) and draw(st.booleans()):
        del container[key]
    else:
        container[key] = draw(policy_ish_documents())
    return document


_YAML_TOKENS = st.sampled_from(
    [
        *_POLICY_WORDS,
        *_POLICY_VALUES,
        "- ",
        ": ",
        "\n",
        "  ",
        "    ",
        "[",
        "]",
        "{",
        "}",
        ", ",
        "&a ",
        "*a",
        "!!str ",
        "!!int ",
        "!!binary ",
        "!!python/name:os.system ",
        "!custom ",
        "<<: ",
        "---\n",
        "...\n",
        "'",
        '"',
        "|\n",
        ">-\n",
        "# c\n",
        "? ",
        "~",
        "1",
        "-5",
        "1e999",
        ".nan",
        "2024-01-01",
        "0x1F",
        "\t",
        "%YAML 1.1\n",
        "\\",
        "\x00",
        "\ufeff",
    ]
)


def yaml_ish_text() -> st.SearchStrategy[str]:
    """Text for the loader: token soup in YAML's and the policy language's vocabulary,
    dumped structured documents, and plain arbitrary text."""
    soup = st.lists(_YAML_TOKENS, max_size=40).map("".join)
    dumped = (policy_ish_documents() | mutated_policy_documents()).map(_dump)
    return soup | dumped | st.text(max_size=200)


def _dump(document: Any) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


# === CEL: conformance edges (NaN, time, IP addresses, macros, hostile conditions) ========
# Families for tests/test_cel_security.py. Each strategy yields the input and, where the
# test needs one, the right answer computed without CEL.

__all__ += [
    "ESCAPE_UNITS",
    "LITERAL_FRAMES",
    "NAN_CONTEXT",
    "NAN_EXPRESSIONS",
    "NUMBER_OPERANDS",
    "PREDICATE_VALUES",
    "UNICODE_DIGITS",
    "hostile_conditions",
    "ip_spellings",
    "macro_predicates",
    "nan_comparisons",
    "offsets",
    "range_lists_with_a_bad_entry",
    "rfc3339_timestamps",
]

#: Digit sets Python's int() and datetime accept besides ASCII: fullwidth, Arabic-Indic,
#: Devanagari, mathematical bold.
UNICODE_DIGITS = tuple(
    "".join(chr(zero + i) for i in range(10)) for zero in (0xFF10, 0x0660, 0x0966, 0x1D7CE)
)
_ASCII_DIGITS = "0123456789"

#: CEL expressions that evaluate to NaN, with the bindings they read.
NAN_EXPRESSIONS = (
    "double(context.s)",
    "(0.0 / 0.0)",
    'double("NaN")',
    "-double(context.s)",
    "double(context.s) + 1.0",
)
#: Numeric operands of every CEL type: (source, kind).
NUMBER_OPERANDS = (
    ("0", "int"),
    ("50", "int"),
    ("-7", "int"),
    ("9223372036854775807", "int"),
    ("context.i", "int"),
    ("5u", "uint"),
    ("0u", "uint"),
    ("18446744073709551615u", "uint"),
    ("uint(context.i)", "uint"),
    ("0.0", "double"),
    ("50.5", "double"),
    ("-1e300", "double"),
    ("context.f", "double"),
    ("double(context.i)", "double"),
    ('double("inf")', "double"),
)


@st.composite
def nan_comparisons(draw: st.DrawFn) -> tuple[str, bool]:
    """``NaN op x`` or ``x op NaN``, any ordering operator, any numeric type for ``x``;
    sometimes negated. The right answer: the comparison is false (true when negated)."""
    nan = draw(st.sampled_from(NAN_EXPRESSIONS))
    other, _ = draw(st.sampled_from(NUMBER_OPERANDS))
    op = draw(st.sampled_from(["<", "<=", ">", ">="]))
    left, right = (nan, other) if draw(st.booleans()) else (other, nan)
    source = f"{left} {op} {right}"
    if draw(st.booleans()):
        return f"!({source})", True
    return source, False


#: The bindings every NaN comparison reads.
NAN_CONTEXT: Mapping[str, Any] = {"context": {"s": "NaN", "i": 7, "f": 2.5}}


def _digits(draw: st.DrawFn, value: int, width: int) -> tuple[str, bool]:
    """``value`` zero-padded to ``width``, each digit ASCII or (sometimes) not."""
    out = []
    ascii_only = True
    for char in str(value).zfill(width):
        if draw(st.integers(0, 9)) == 0:
            digits = draw(st.sampled_from(UNICODE_DIGITS))
            ascii_only = False
        else:
            digits = _ASCII_DIGITS
        out.append(digits[int(char)])
    return "".join(out), ascii_only


@st.composite
def offsets(draw: st.DrawFn) -> tuple[str, bool]:
    """``[+-]HH:MM`` with hours 0..30 and minutes 0..75 and mixed digit sets; valid iff the
    digits are ASCII and the offset is within ±23:59."""
    hours = draw(st.integers(0, 30))
    minutes = draw(st.integers(0, 75))
    hh, ascii_h = _digits(draw, hours, 2)
    mm, ascii_m = _digits(draw, minutes, 2)
    sign = draw(st.sampled_from(["+", "-"]))
    return f"{sign}{hh}:{mm}", ascii_h and ascii_m and hours <= 23 and minutes <= 59


@st.composite
def rfc3339_timestamps(draw: st.DrawFn) -> tuple[str, bool]:
    """RFC 3339 date-times with valid fields, mixed digit sets and offsets as ``offsets``;
    valid iff every digit is ASCII and the offset (if any) is valid."""
    parts = []
    valid = True
    for value, width in (
        (draw(st.integers(1000, 9998)), 4),
        (draw(st.integers(1, 12)), 2),
        (draw(st.integers(1, 28)), 2),
        (draw(st.integers(0, 23)), 2),
        (draw(st.integers(0, 59)), 2),
        (draw(st.integers(0, 59)), 2),
    ):
        text, ascii_only = _digits(draw, value, width)
        parts.append(text)
        valid = valid and ascii_only
    date = "-".join(parts[:3]) + "T" + ":".join(parts[3:])
    if draw(st.booleans()):
        width = draw(st.integers(1, 9))
        fraction, ascii_only = _digits(draw, draw(st.integers(0, 10**width - 1)), width)
        date += "." + fraction
        valid = valid and ascii_only
    if draw(st.booleans()):
        return date + "Z", valid
    offset, offset_valid = draw(offsets())
    return date + offset, valid and offset_valid


#: How a test may spell an IPv4 address as IPv4-mapped IPv6: all are refused.
def _mapped_spellings(octets: tuple[int, ...]) -> list[str]:
    dotted = ".".join(map(str, octets))
    high, low = (octets[0] << 8) | octets[1], (octets[2] << 8) | octets[3]
    return [
        f"::ffff:{dotted}",
        f"::FFFF:{dotted}",
        f"0:0:0:0:0:ffff:{dotted}",
        f"::ffff:{high:x}:{low:x}",
        f"0000:0000:0000:0000:0000:ffff:{high:04X}:{low:04X}",
    ]


@st.composite
def ip_spellings(draw: st.DrawFn) -> tuple[str, str]:
    """(text, kind): kind is ``v4``/``v6`` (a valid address), ``mapped`` (IPv4-mapped IPv6
    in any spelling), ``zone`` (an IPv6 zone) or ``bad`` (not an address by the CEL network
    extension's rules: leading zeros, non-ASCII digits, surrounding space, junk)."""
    octets = tuple(draw(st.lists(st.integers(0, 255), min_size=4, max_size=4)))
    dotted = ".".join(map(str, octets))
    groups = draw(st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8))
    if groups[:6] == [0, 0, 0, 0, 0, 0xFFFF]:
        groups[5] = 0xFFFE
    v6 = ":".join(f"{g:x}" for g in groups)
    kind = draw(st.sampled_from(["v4", "v6", "mapped", "zone", "bad"]))
    if kind == "v4":
        return dotted, kind
    if kind == "v6":
        import ipaddress

        return draw(st.sampled_from([v6, v6.upper(), str(ipaddress.IPv6Address(v6))])), kind
    if kind == "mapped":
        return draw(st.sampled_from(_mapped_spellings(octets))), kind
    if kind == "zone":
        return f"fe80::{groups[0]:x}%{draw(st.sampled_from(['eth0', 'en0', '1']))}", kind
    fullwidth = dotted.translate(str.maketrans(_ASCII_DIGITS, UNICODE_DIGITS[0]))
    bad = [
        f" {dotted}",
        f"{dotted}\n",
        "0" + dotted,
        dotted + ".0",
        dotted.rsplit(".", 1)[0],
        f"{v6}:1",
        v6.replace(":", ":::", 1),
        "",
        "localhost",
        f"{dotted}/32",
    ]
    if fullwidth != dotted:
        bad.append(fullwidth)
    return draw(st.sampled_from(bad)), "bad"


_GOOD_RANGES = ("10.0.0.0/8", "192.168.0.0/16", "0.0.0.0/0", "2001:db8::/32", "::/0", "10.1.2.3/8")
_BAD_RANGES = (
    "10.0.0.0",
    "10.0.0.0/",
    "10.0.0.0/33",
    "10.0.0.0/08",
    "10.0.0.0/255.0.0.0",
    "::ffff:10.0.0.0/104",
    "fe80::%eth0/64",
    "not-a-range",
    " 10.0.0.0/8",
    "\uff11\uff10.0.0.0/8",
)


@st.composite
def range_lists_with_a_bad_entry(draw: st.DrawFn) -> tuple[list[Any], int]:
    """A list of ranges, all good but one bad entry (a bad string or not a string) at a
    random position: ``ip_in_cidr`` must error whatever the position."""
    good = draw(st.lists(st.sampled_from(_GOOD_RANGES), max_size=5))
    bad = draw(st.sampled_from(_BAD_RANGES) | st.sampled_from([None, 8, ["10.0.0.0/8"]]))
    at = draw(st.integers(0, len(good)))
    return [*good[:at], bad, *good[at:]], at


#: Predicate values a macro may meet: booleans, and every other JSON kind.
PREDICATE_VALUES = st.one_of(
    st.booleans(),
    st.sampled_from(["", "x", 0, 1, 0.0, None, [], {}, [True], {"a": True}]),
)


@st.composite
def macro_predicates(draw: st.DrawFn) -> tuple[str, list[Any]]:
    """``context.items.<macro>(i, i.v)`` over items whose ``v`` is any JSON value."""
    macro = draw(
        st.sampled_from(
            [
                "size(context.items.filter(i, i.v)) > 0",
                "context.items.exists_one(i, i.v)",
                "context.items.all(i, i.v)",
                "context.items.exists(i, i.v)",
                "size(context.items.map(i, i.v, 1)) > 0",
                "context.items.filter(i, i.v) == []",
            ]
        )
    )
    values = draw(st.lists(PREDICATE_VALUES, max_size=4))
    return macro, [{"v": v} for v in values]


#: Pieces of string-literal bodies that stress a lexer: escapes of every kind, quotes,
#: backslash-newline, raw-string markers.
ESCAPE_UNITS = st.lists(
    st.sampled_from(
        [
            "\\a",
            "\\\\",
            '\\"',
            "\\'",
            "\\x41",
            "\\X4a",
            "\\101",
            "\\u00e9",
            "\\?",
            "a",
            " ",
            "'",
            '"',
        ]
    ),
    min_size=1,
    max_size=4,
).map("".join)
#: How a literal is opened and closed, and what follows it: terminated or not, a one-line
#: literal with a backslash-newline, triple-quoted, raw, bytes.
LITERAL_FRAMES = st.sampled_from(
    [
        ('subject.id == "', '"'),
        ('subject.id == "', '\\\n"'),
        ('subject.id == "', ""),
        ("subject.id == '", "\\\n'"),
        ('subject.id == """', '"""'),
        ('subject.id == """', '\\\n"'),
        ("subject.id == r'", "'"),
        ("subject.id == b'", "\\\n"),
        ("subject.id == '", "' + '"),
    ]
)

_CEL_TOKENS = st.sampled_from(
    [
        "subject",
        "resource.id",
        "context",
        ".",
        "a",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        "?",
        "!",
        "-",
        "+",
        "*",
        "/",
        "%",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "&&",
        "||",
        " in ",
        "true",
        "null",
        "1",
        "1u",
        "1.5",
        "1.",
        "0x1F",
        "'s'",
        '"s"',
        "'''t'''",
        "b'x'",
        "r'\\d'",
        "'\\",
        "\\",
        "'",
        '"',
        "\n",
        " ",
        "// c\n",
        ".all(x, ",
        ".exists_one(x, ",
        ".map(x, ",
        ".filter(x, ",
        "has(",
        "size(",
        "int(",
        "timestamp('",
        "duration('",
        "getHours('",
        "ip_in_cidr(",
        "matches('",
        "\ud800",
        "\x00",
        "\uff19",
        "\u0663",
    ]
)


@st.composite
def hostile_conditions(draw: st.DrawFn) -> str:
    """Conditions built to break a compiler: token soup, deep nesting of every construct
    (past every limit), huge numeric literals, long escape runs, non-text characters."""
    kind = draw(st.sampled_from(["soup", "deep", "number", "escapes", "mixed"]))
    if kind == "soup":
        return "".join(draw(st.lists(_CEL_TOKENS, max_size=60)))
    if kind == "number":
        digits = "9" * draw(st.integers(15, 6000))
        form = draw(
            st.sampled_from(["{d}", "-{d}", "{d}u", "0x{d}", "0x{d}u", "1e{d}", "{d}.5", "{d}e3"])
        )
        return f"subject.n == {form.format(d=digits)}"
    if kind == "escapes":
        unit = draw(ESCAPE_UNITS)
        open_, close = draw(LITERAL_FRAMES)
        return open_ + unit * draw(st.integers(1, 400)) + close
    depth = draw(st.integers(1, 220))
    shapes = [
        ("(", ")"),
        ("!", ""),
        ("-", ""),
        ("int(", ")"),
        ("[", "]"),
        ("{1: ", "}"),
        ("[1].all(x, ", ")"),
        ("[1].exists(x, ", ")"),
        ("[1].filter(x, ", ")"),
        ("[1].map(x, ", ")"),
        ("[1].exists_one(x, ", ")"),
        ("(subject.a || ", ")"),
        ("(subject.b && ", ")"),
        ("(true ? ", " : false)"),
        ("size(", ")"),
        ("1 + ", ""),
        ("subject.c[", "]"),
        ("(subject.d < ", ")"),
    ]
    if kind == "deep":
        pre, post = draw(st.sampled_from(shapes))
        return pre * depth + "subject.e" + post * depth
    chosen = draw(st.lists(st.sampled_from(shapes), min_size=1, max_size=depth))
    return "".join(p for p, _ in chosen) + "subject.e" + "".join(q for _, q in reversed(chosen))
