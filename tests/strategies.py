"""Hypothesis strategies shared by the property tests.

Three families: JSON values and requests (valid ones, and arbitrary JSON-ish junk
for the request validator); small policy sets built from a plain model whose
outcome a test oracle can compute; and policy-shaped or arbitrary YAML for the
loader. Conditions are constants so the oracle needs no CEL: ``true``, ``false``
and an expression that always errors at evaluation (a key the request lacks).
"""

from __future__ import annotations

import base64
import datetime
import functools
import re
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
    "TreeEntry",
    "acr_values",
    "dump_yaml",
    "dump_yaml_all",
    "hostile_json_texts",
    "hostile_yaml_data_texts",
    "json_ish",
    "json_values",
    "mutated_policy_documents",
    "policy_ish_documents",
    "policy_sets",
    "policy_trees",
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
            # a built-in type carries its required parameter; "log" is the app's own
            params = {"mask": {"fields": ["card"]}}
            out["obligations"] = [
                {"type": t, **params.get(t, {"by": self.id})} for t in self.obligations
            ]
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
        if any("log" in r.obligations for r in self.rules):
            out["obligation_types"] = ["log"]  # the application's own type, declared
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


# --- YAML that both YAML 1.1 and YAML 1.2 read the same ----------------------------------

# PyYAML writes text such as 0E0, 1e3 or 0o7 plain, because YAML 1.1 reads it as text;
# YAML 1.2 reads it as a number and the loader refuses it as ambiguous. Test documents
# mean text, so they quote every string that starts like a number or is a YAML word.
_AMBIGUOUS_START = re.compile(r"[-+.0-9]")
_YAML_WORDS = frozenset(
    w.lower() for w in ("y", "n", "yes", "no", "on", "off", "true", "false", "null", "~")
)


class _Yaml12Dumper(yaml.SafeDumper):
    pass


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = '"' if _AMBIGUOUS_START.match(text) or text.lower() in _YAML_WORDS else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Yaml12Dumper.add_representer(str, _represent_text)


def dump_yaml(document: Any) -> str:
    """``document`` as YAML text that YAML 1.1 and 1.2 read alike (key order kept)."""
    return yaml.dump(document, Dumper=_Yaml12Dumper, sort_keys=False, allow_unicode=True)


def dump_yaml_all(documents: list[Any]) -> str:
    """``documents`` as one multi-document YAML text, as :func:`dump_yaml`."""
    return yaml.dump_all(documents, Dumper=_Yaml12Dumper, sort_keys=False, allow_unicode=True)


def to_texts(policies: tuple[PolicyModel, ...], *, split: bool = False) -> dict[str, str]:
    """YAML texts for ``PolicyDecisionPoint.from_texts``: one file, or one file per policy."""
    documents = [p.document() for p in policies]
    if split:
        return {f"{p.name}.yaml": dump_yaml(d) for p, d in zip(policies, documents, strict=True)}
    return {"policies.yaml": dump_yaml_all(documents)}


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
    return dump_yaml(document)


# === request values: hostile subclasses, fakes and invalid Unicode =======================
# (area: canonical request values; AccessRequest.from_mapping)
#
# ``hostile_values()`` draws (value, expected) pairs: ``value`` is what a caller passes,
# ``expected`` the plain JSON data a condition must see, or ``REFUSED`` somewhere inside
# when the request must be refused with RequestError.

import enum  # noqa: E402  (kept with the block it serves)

__all__ += ["REFUSED", "hostile_values", "lone_surrogate_texts"]


class _Refused:
    def __repr__(self) -> str:
        return "REFUSED"


#: Marks, inside ``expected``, a value the request validator must refuse.
REFUSED: Any = _Refused()


def _boom(*_: object, **__: object) -> Any:
    raise RuntimeError("a caller's override ran")


class HostileStr(str):
    """Equal to everything, and every method a condition or copy might call lies or raises."""

    __hash__ = str.__hash__  # stays usable as a dict key

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    def __str__(self) -> str:
        return "admin"

    __format__ = __iter__ = __len__ = __getitem__ = encode = isascii = _boom


class HostileInt(int):
    __hash__ = int.__hash__

    def __int__(self) -> int:
        return 2**100

    def __index__(self) -> int:
        return 2**100

    def __eq__(self, other: object) -> bool:
        return True

    def __le__(self, other: object) -> bool:
        return True

    def __ge__(self, other: object) -> bool:
        return True

    __float__ = __format__ = __abs__ = _boom


class HostileFloat(float):
    __hash__ = float.__hash__

    def __float__(self) -> float:
        return float("nan")

    def __sub__(self, other: object) -> float:
        return 0.0  # would pass an ``x - x == 0`` finiteness test

    def __eq__(self, other: object) -> bool:
        return True

    __format__ = __int__ = _boom


class HostileDict(dict):  # type: ignore[type-arg]
    items = keys = values = __iter__ = __len__ = __getitem__ = get = _boom


class HostileList(list):  # type: ignore[type-arg]
    __iter__ = __len__ = __getitem__ = copy = _boom


class HostileTuple(tuple):  # type: ignore[type-arg]
    __iter__ = __len__ = __getitem__ = _boom


class PlainMapping(Mapping[str, Any]):
    """A well-behaved caller Mapping that is not a dict: read through its own methods."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Any:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


class RaisingMapping(Mapping[str, Any]):
    """A caller Mapping whose own code raises while being read."""

    def __init__(self, where: str) -> None:
        self.where = where

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Any:
        if self.where == "recursion":
            raise RecursionError("maximum recursion depth exceeded")
        raise RuntimeError("iteration failed")

    def __len__(self) -> int:
        return 1

    def items(self) -> Any:  # type: ignore[override]
        if self.where == "items":
            raise RuntimeError("items failed")
        if self.where == "pairs":
            return [("a", 1, 2)]  # not a (key, value) pair
        return super().items()


class FakeStr:
    """Claims to be a str through ``__class__``; ``isinstance`` believes it."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return str

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = object.__hash__


class Colour(enum.StrEnum):
    RED = "red"
    ADMIN = "admin"


class Level(enum.IntEnum):
    LOW = 1
    TOP = 2**40


_SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"])


def lone_surrogate_texts() -> st.SearchStrategy[str]:
    """Strings holding at least one lone surrogate (legal as a JSON ``\\ud800`` escape)."""
    return st.tuples(st.text(max_size=3), _SURROGATE, st.text(max_size=3)).map("".join)


_INT64S = st.integers(min_value=INT64[0], max_value=INT64[1])
_BEYOND_INT64 = st.integers(min_value=INT64[1] + 1) | st.integers(max_value=INT64[0] - 1)
_HOSTILE_LEAVES: st.SearchStrategy[tuple[Any, Any]] = st.one_of(
    JSON_SCALARS.map(lambda v: (v, v)),
    st.text(max_size=6).map(lambda s: (HostileStr(s), s)),
    _INT64S.map(lambda i: (HostileInt(i), i)),
    _BEYOND_INT64.map(lambda i: (HostileInt(i), REFUSED)),
    _BEYOND_INT64.map(lambda i: (i, REFUSED)),
    _FLOATS.map(lambda f: (HostileFloat(f), f)),
    st.sampled_from([float("nan"), float("inf"), -float("inf")]).map(
        lambda f: (HostileFloat(f), REFUSED)
    ),
    st.sampled_from(list(Colour)).map(lambda m: (m, m.value)),
    st.sampled_from(list(Level)).map(lambda m: (m, int(m.value))),
    lone_surrogate_texts().map(lambda s: (s, REFUSED)),
    lone_surrogate_texts().map(lambda s: (HostileStr(s), REFUSED)),
    st.sampled_from(["items", "iter", "pairs", "recursion"]).map(
        lambda w: (RaisingMapping(w), REFUSED)
    ),
    st.builds(FakeStr).map(lambda f: (f, REFUSED)),
    st.sampled_from([b"x", object(), {1}, 1j]).map(lambda v: (v, REFUSED)),
)
_KEYS: st.SearchStrategy[tuple[Any, Any]] = st.one_of(
    st.text(max_size=4).map(lambda k: (k, k)),
    st.text(max_size=4).map(lambda k: (HostileStr(k), k)),
    st.sampled_from(list(Colour)).map(lambda m: (m, m.value)),
    lone_surrogate_texts().map(lambda k: (k, REFUSED)),
    st.integers(0, 3).map(lambda k: (k, REFUSED)),
)


@st.composite
def _hostile_object(draw: st.DrawFn, children: st.SearchStrategy[tuple[Any, Any]]) -> Any:
    pairs = draw(st.lists(st.tuples(_KEYS, children), max_size=4))
    value: dict[Any, Any] = {}
    expected: dict[Any, Any] = {}
    refused = False
    for (key, plain_key), (item, plain_item) in pairs:
        if key in value or plain_key in expected:
            # One entry per text, and none a HostileStr key's __eq__ would merge with
            # an earlier one: two keys equal as text are a test of their own.
            continue
        if plain_key is REFUSED:
            refused = True
        value[key] = item
        expected[plain_key if plain_key is not REFUSED else object()] = plain_item
    if refused:
        expected[object()] = REFUSED
    shape = draw(st.sampled_from(["dict", "hostile", "mapping"]))
    if shape == "hostile":
        value = HostileDict(value)
    elif shape == "mapping":
        value = PlainMapping(value)  # type: ignore[assignment]
    return value, expected


def _hostile_array(pairs: list[tuple[Any, Any]], shape: str) -> tuple[Any, Any]:
    items = [v for v, _ in pairs]
    expected = [e for _, e in pairs]
    kinds = {
        "list": list,
        "tuple": tuple,
        "hostile-list": HostileList,
        "hostile-tuple": HostileTuple,
    }
    return kinds[shape](items), expected


def hostile_values(max_leaves: int = 12) -> st.SearchStrategy[tuple[Any, Any]]:
    """(value, expected): JSON data disguised as subclasses with lying dunders, enum
    members, caller Mappings, and refusable values (fakes, lone surrogates, raising
    Mappings, out-of-range numbers). ``expected`` holds ``REFUSED`` where the whole
    request must be refused; otherwise it is the exact plain data."""
    return st.recursive(
        _HOSTILE_LEAVES,
        lambda children: (
            st.builds(
                _hostile_array,
                st.lists(children, max_size=4),
                st.sampled_from(["list", "tuple", "hostile-list", "hostile-tuple"]),
            )
            | _hostile_object(children)
        ),
        max_leaves=max_leaves,
    )


# ---------------------------------------------------------------------------------------
# Behaviour stores and JWKS key sets: the circuit breaker's call endings, corrupted
# Redis keys, and key sets mixing usable and unusable keys.
# ---------------------------------------------------------------------------------------

__all__ += [
    "BREAKER_ENDINGS",
    "REDIS_KEY_PARTS",
    "StoreDown",
    "breaker_endings",
    "corrupted_subjects",
    "jwks_documents",
    "untrackable_values",
]


class StoreDown(ConnectionError):
    """A store failure, as the test breakers classify it."""


def _encode_error() -> BaseException:
    return UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")


#: How a guarded call can end, and what it raises (None: it returns). ``cancelled``
#: cancels the awaiting task; ``timeout`` also moves the clock by the timeout.
BREAKER_ENDINGS: Mapping[str, Any] = {
    "success": lambda: None,
    "store_error": StoreDown,
    "timeout": TimeoutError,
    "unrelated_error": ValueError,
    "encode_error": _encode_error,
    "cancelled": lambda: None,
}


def breaker_endings() -> st.SearchStrategy[str]:
    """Every way a call through the breaker can end."""
    return st.sampled_from(sorted(BREAKER_ENDINGS))


#: A subject's Redis keys (``zt:{user:<id>}:<part>``) and the type each must have.
REDIS_KEY_PARTS: Mapping[str, str] = {
    **dict.fromkeys(("m", "h", "d", "H", "D"), "hash"),
    **dict.fromkeys(("r", "sd", "si", "sc", "R"), "zset"),
}
_REDIS_TYPES = ("string", "list", "set", "hash", "zset", "stream")


@st.composite
def corrupted_subjects(draw: st.DrawFn, subjects: int) -> dict[int, tuple[str, str]]:
    """Some of ``subjects`` subjects (by index), each with one key given a wrong type:
    ``{subject: (key part, Redis type)}``."""
    chosen = draw(st.sets(st.integers(0, subjects - 1), max_size=subjects - 1))
    result = {}
    for subject in sorted(chosen):
        part = draw(st.sampled_from(sorted(REDIS_KEY_PARTS)))
        kind = draw(st.sampled_from([t for t in _REDIS_TYPES if t != REDIS_KEY_PARTS[part]]))
        result[subject] = (part, kind)
    return result


def _circular() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


def untrackable_values() -> st.SearchStrategy[Any]:
    """Values no JSON holds, as a request built without validation may carry them:
    sets, objects, maps with keys of mixed types, self-containing lists, each also
    nested inside a list or map."""
    base = st.one_of(
        st.sets(st.integers(), min_size=1, max_size=3),
        st.builds(object),
        st.just({1: "a", "b": 2}),
        st.builds(_circular),
    )
    return (
        base
        | st.lists(base, min_size=1, max_size=2)
        | st.dictionaries(st.just("k"), base, min_size=1)
    )


@functools.cache
def _jwk_pool() -> Mapping[str, Mapping[str, Any]]:
    """Public JWKs of keys generated once per test run, by kind."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

    def rsa_jwk(bits: int) -> dict[str, Any]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
        return dict(RSAAlgorithm.to_jwk(key, as_dict=True))

    def ec_jwk(curve: ec.EllipticCurve) -> dict[str, Any]:
        key = ec.generate_private_key(curve).public_key()
        return dict(ECAlgorithm.to_jwk(key, as_dict=True))

    x = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    return {
        "rsa": rsa_jwk(2048),
        "rsa1024": rsa_jwk(1024),
        "p256": ec_jwk(ec.SECP256R1()),
        "p384": ec_jwk(ec.SECP384R1()),
        "ed25519": dict(
            OKPAlgorithm.to_jwk(ed25519.Ed25519PrivateKey.generate().public_key(), as_dict=True)
        ),
        "x25519": {
            "kty": "OKP",
            "crv": "X25519",
            "x": base64.urlsafe_b64encode(x).rstrip(b"=").decode("ascii"),
        },
    }


def _usable_jwk(pool: Mapping[str, Mapping[str, Any]], kind: str, extra: str) -> dict[str, Any]:
    jwk = dict(pool[kind])
    if extra == "use":
        jwk["use"] = "sig"
    elif extra == "ops":
        jwk["key_ops"] = ["verify"]
    elif extra == "alg":
        jwk["alg"] = {"rsa": "PS256", "p256": "ES256", "p384": "ES384", "ed25519": "EdDSA"}[kind]
    return jwk


def _unusable_jwk(pool: Mapping[str, Mapping[str, Any]], kind: str) -> Any:
    """A key set entry this verifier must skip (RFC 7517 section 5), by kind."""
    rsa, p256 = dict(pool["rsa"]), dict(pool["p256"])
    return {
        "encryption": {**rsa, "use": "enc", "alg": "RSA-OAEP"},
        "x25519": {**pool["x25519"], "use": "enc", "alg": "ECDH-ES"},
        "ops_without_verify": {**p256, "key_ops": ["encrypt", "sign"]},
        "unsupported_alg": {**p256, "alg": "HS256"},
        "alg_not_a_string": {**rsa, "alg": ["RS256"]},
        "unknown_kty": {"kty": "PQC", "pub": "AAAA"},
        "unknown_curve": {**p256, "crv": "P-192"},
        "symmetric": {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"},
        "private": {**p256, "d": "AAAA"},
        "short_rsa": dict(pool["rsa1024"]),
        "broken_ec": {**p256, "x": "AA", "y": "AA"},
        "missing_members": {"kty": "RSA", "e": "AQAB"},
        "bad_base64": {**rsa, "n": "!!not base64!!"},
        "kid_not_a_string": {**p256, "kid": 7},
        "not_an_object": "RSA",
        "null": None,
    }[kind]


_USABLE_KINDS = ("rsa", "p256", "p384", "ed25519")
_UNUSABLE_KINDS = (
    *("encryption", "x25519", "ops_without_verify", "unsupported_alg", "alg_not_a_string"),
    *("unknown_kty", "unknown_curve", "symmetric", "private", "short_rsa", "broken_ec"),
    *("missing_members", "bad_base64", "kid_not_a_string", "not_an_object", "null"),
)


@st.composite
def jwks_documents(draw: st.DrawFn) -> tuple[dict[str, Any], frozenset[str]]:
    """A key set mixing usable and unusable keys in any order, and the ``kid`` of each
    usable one (entry ``i`` has ``kid`` ``k<i>`` where it can carry one)."""
    pool = _jwk_pool()
    usable = st.tuples(
        st.just(True), st.sampled_from(_USABLE_KINDS), st.sampled_from(["", "use", "ops", "alg"])
    )
    unusable = st.tuples(st.just(False), st.sampled_from(_UNUSABLE_KINDS), st.just(""))
    picks = draw(st.lists(usable | unusable, max_size=8))
    entries: list[Any] = []
    kids: set[str] = set()
    for i, (ok, kind, extra) in enumerate(picks):
        entry = _usable_jwk(pool, kind, extra) if ok else _unusable_jwk(pool, kind)
        if isinstance(entry, dict) and "kid" not in entry:
            entry["kid"] = f"k{i}"
        if ok:
            kids.add(f"k{i}")
        entries.append(entry)
    return {"keys": entries}, frozenset(kids)


# --- web enforcement: client addresses and every way into the app -------------------------
# (strategies for tests/test_web_properties.py; kept in one block to ease merging)

__all__ += [  # extended here, so that this block merges on its own
    "WEB_METHODS",
    "address_spellings",
    "addresses",
    "asgi_calls",
    "range_spellings",
    "trusted_ranges",
    "web_paths",
    "wsgi_calls",
]

import ipaddress as _ipaddress  # noqa: E402

_V4_POOL = ("10.0.0.0/8", "192.168.0.0/16", "192.0.2.0/24", "8.8.4.0/24", "203.0.113.0/24")
_V6_POOL = ("2001:db8::/32", "fe80::/64", "2606:4700::/32")


@st.composite
def addresses(draw: st.DrawFn) -> _ipaddress.IPv4Address | _ipaddress.IPv6Address:
    """A canonical address from a few ranges, so that random ones often share a range."""
    net = _ipaddress.ip_network(draw(st.sampled_from(_V4_POOL + _V6_POOL)))
    offset = draw(st.integers(0, min(net.num_addresses - 1, 2**16)))
    return net.network_address + offset


@st.composite
def address_spellings(
    draw: st.DrawFn, address: _ipaddress.IPv4Address | _ipaddress.IPv6Address
) -> str:
    """One of the ways a peer or an X-Forwarded-For hop may write ``address``."""
    if isinstance(address, _ipaddress.IPv4Address):
        mapped = _ipaddress.IPv6Address(f"::ffff:{address}")
        forms = [
            str(address),
            f"{address}:{draw(st.integers(0, 65535))}",
            f"::ffff:{address}",
            f"::FFFF:{address}",
            mapped.compressed,
            mapped.exploded,
            f"[{mapped.compressed}]:{draw(st.integers(0, 65535))}",
        ]
    else:
        forms = [
            address.compressed,
            address.exploded.upper(),
            f"[{address.compressed}]",
            f"[{address.compressed}]:{draw(st.integers(0, 65535))}",
            f"{address.compressed}%eth0",
        ]
    pad = st.sampled_from(["", " ", "\t"])
    return draw(pad) + draw(st.sampled_from(forms)) + draw(pad)


@st.composite
def trusted_ranges(draw: st.DrawFn) -> list[_ipaddress.IPv4Network | _ipaddress.IPv6Network]:
    """A few canonical ranges, from the same pools as :func:`addresses`."""
    names = draw(st.lists(st.sampled_from(_V4_POOL + _V6_POOL), max_size=3, unique=True))
    return [_ipaddress.ip_network(n) for n in names]


def range_spellings(net: _ipaddress.IPv4Network | _ipaddress.IPv6Network) -> st.SearchStrategy[str]:
    """``net`` as written in configuration: IPv4 ranges also in their IPv4-mapped form."""
    forms = [str(net)]
    if isinstance(net, _ipaddress.IPv4Network):
        forms.append(f"::ffff:{net.network_address}/{net.prefixlen + 96}")
        mapped = _ipaddress.IPv6Address(f"::ffff:{net.network_address}")
        forms.append(f"{mapped.compressed}/{net.prefixlen + 96}")
    return st.sampled_from(forms)


WEB_METHODS = ("GET", "HEAD", "PATCH", "POST", "DELETE", "OPTIONS", "WEBSOCKET", "get", "*")

_SEGMENTS = st.sampled_from(
    ["customers", "c-1001", "c-5150", "c-1002", "live", "api", "..", ".", "", "%2F", "é", "a b"]
)


@st.composite
def web_paths(draw: st.DrawFn) -> str:
    """Paths near the routes under test: extra, empty and dot segments, encoded slashes,
    non-ASCII, doubled leading or trailing slashes."""
    segments = draw(st.lists(_SEGMENTS | st.text(max_size=4), max_size=5))
    lead = draw(st.sampled_from(["/", "/", "//", ""]))
    trail = draw(st.sampled_from(["", "", "/"]))
    return lead + "/".join(segments) + trail


@st.composite
def asgi_calls(draw: st.DrawFn) -> dict[str, Any]:
    """An ASGI connection: scope type, method, root path, path and which credentials."""
    root = draw(st.sampled_from(["", "", "/api"]))
    path = draw(web_paths())
    return {
        "type": draw(st.sampled_from(["http", "http", "websocket", "websocket", "lifespan"]))
        if draw(st.integers(0, 9))
        else draw(st.text(max_size=10)),
        "method": draw(st.sampled_from(WEB_METHODS)),
        "root_path": root,
        "path": (root + path) if draw(st.booleans()) else path,
        "who": draw(st.sampled_from(["none", "agent", "manager", "no-mfa", "forged"])),
    }


@st.composite
def wsgi_calls(draw: st.DrawFn) -> dict[str, Any]:
    """A WSGI call: method, SCRIPT_NAME, a PATH_INFO as PEP 3333 carries it (latin-1)."""
    path = draw(web_paths())
    raw = draw(st.booleans())
    if raw:  # any bytes, as a server passes them on, including invalid UTF-8
        path = path.encode("utf-8") + draw(st.binary(max_size=3))
        text = path.decode("latin-1")
    else:
        text = path.encode("utf-8").decode("latin-1")
    return {
        "method": draw(st.sampled_from(WEB_METHODS)),
        "script_name": draw(st.sampled_from(["", "/app"])),
        "path_info": text,
        "who": draw(st.sampled_from(["none", "agent", "manager", "no-mfa", "forged"])),
    }


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


# === policy loading: hostile data files, acr values, directory trees (loader area) ========
#
# Data files that probe the limits YAML and JSON share (depth, integer range, finite
# numbers, duplicate keys, text), acr values for step_up challenges, and small directory
# trees with links, loops, hidden and broken entries for the snapshot reader.

#: JSON tokens at and beyond every limit, and some that are not JSON at all.
_JSON_ATOMS = st.sampled_from(
    [
        "0",
        "-0",
        "1.5",
        "-2.5e-3",
        "1e308",
        "1e309",
        "1e400",
        "-1e400",
        "1e-400",
        "NaN",
        "Infinity",
        "-Infinity",
        "true",
        "false",
        "null",
        '"x"',
        '"\\ud800"',
        '"\\udc00x"',
        '"\\ud83d\\ude00"',
        '"\\u0000"',
        '"\\u001b[2J"',
        '"\\x"',
        '"caf\\u00e9"',
        '"tab\\there"',
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "01",
        "+1",
        "'single'",
    ]
) | st.integers(min_value=15, max_value=5000).map(lambda n: "7" * n)
_JSON_KEYS = st.sampled_from(['"a"', '"b"', '"users"', '"\\ud800"', '""', "a", "1"])


def _json_containers(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    arrays = st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]")
    pairs = st.lists(st.tuples(_JSON_KEYS, inner), max_size=4)
    objects = pairs.map(lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}")
    return arrays | objects


@st.composite
def hostile_json_texts(draw: st.DrawFn) -> str:
    """``.data.json`` text: a data mapping around junk, nested to around the limit,
    sometimes cut short or with a stray character."""
    value = draw(st.recursive(_JSON_ATOMS, _json_containers, max_leaves=16))
    depth = draw(st.sampled_from([0, 0, 0, 62, 63, 64, 65, 1000]))
    text = "[" * depth + value + "]" * depth
    if draw(st.booleans()):
        text = '{"d": ' + text + "}"
    mutation = draw(st.sampled_from(["none", "none", "cut", "insert"]))
    if mutation != "none" and text:
        at = draw(st.integers(min_value=0, max_value=len(text)))
        junk = draw(st.sampled_from([",", "]", "}", '"', "\\", "\n", "\x00", "\ud800"]))
        text = text[:at] if mutation == "cut" else text[:at] + junk + text[at:]
    return text


_YAML_DATA_ATOMS = st.sampled_from(
    [
        "0",
        "1.5",
        ".inf",
        "-.inf",
        ".nan",
        "1.0e+400",
        "1e400",
        "0x7fffffffffffffff",
        "0x8000000000000000",
        "0b" + "1" * 64,
        "0o7777777777777777777777",
        "1_000_000",
        "190:20:30",
        "2026-11-30",
        "2026-11-30T10:00:00Z",
        "~",
        "yes",
        '"\\ud800"',
        '"\\x00"',
        '"\\e[2J"',
        "!!binary aGk=",
        "!!python/name:os.system",
        "!custom x",
        "&a [1, 2]",
        "*a",
        "'quoted'",
    ]
) | st.integers(min_value=15, max_value=5000).map(lambda n: "7" * n)


@st.composite
def hostile_yaml_data_texts(draw: st.DrawFn) -> str:
    """``.data.yaml`` text: the YAML counterpart of :func:`hostile_json_texts`, plus
    what only YAML can do: nest in block style, expand aliases, hold empty documents.
    Deep texts go tens of thousands of levels (libyaml's composer would crash)."""
    value = draw(st.recursive(_YAML_DATA_ATOMS, _json_containers, max_leaves=16))
    depth = draw(st.sampled_from([0, 0, 0, 62, 63, 64, 65, 1000, 30_000]))
    text = "d: " + "[" * depth + value + "]" * depth + "\n"
    if draw(st.booleans()):
        text += draw(
            st.sampled_from(
                [
                    "d: 1\n",
                    "e: 2\n---\nf: 3\n",
                    "? [a]\n: 1\n",
                    "<<: {}\n",
                    "---\n",
                    "--- ~\n",
                    f'big: &big "{"x" * 100_000}"\nmany: [{", ".join(["*big"] * 200)}]\n',
                    "e:\n  " + "- " * 30_000 + "x\n",
                ]
            )
        )
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        return draw(st.sampled_from(["", "# only a comment\n", "~\n", "---\n"]))
    return text


#: One acr value: a token the challenge can carry, or text that may not be one.
acr_values = (
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1)
    | st.text(max_size=12)
    | st.sampled_from(["urn:example:loa 2", "a\tb", 'say "hi"', "back\\slash", "stärker", ""])
)


@attrs.frozen
class TreeEntry:
    """One entry of a generated policy directory: a policy file, an other file, a
    directory, or a symlink to ``target`` (relative to the entry's directory)."""

    path: str
    kind: str
    target: str = ""


_TREE_NAMES = st.sampled_from(["a", "b", "sub", ".git", "..data", "..2026_11_30"])


@st.composite
def policy_trees(draw: st.DrawFn) -> list[TreeEntry]:
    """A small directory tree: files, directories (hidden ones too) and symlinks that
    lead to files, directories, ancestors (loops), themselves or nowhere."""
    dirs = [""]
    entries: list[TreeEntry] = []
    used: set[str] = set()
    for _ in range(draw(st.integers(min_value=1, max_value=7))):
        parent = draw(st.sampled_from(dirs))
        base = draw(_TREE_NAMES)
        kind = draw(st.sampled_from(["policy", "policy", "other", "dir", "link"]))
        name = {"policy": f"{base}.yaml", "other": f"{base}.txt"}.get(kind, base)
        if kind == "link" and draw(st.booleans()):
            name += ".yaml"
        path = f"{parent}/{name}".lstrip("/")
        if path in used:
            continue
        used.add(path)
        if kind == "dir":
            dirs.append(path)
            entries.append(TreeEntry(path, "dir"))
        elif kind == "link":
            target = draw(
                st.sampled_from(
                    [
                        ".",
                        "..",
                        "../..",
                        "missing",
                        "a.yaml",
                        "sub",
                        "sub/a.yaml",
                        path.split("/")[-1],
                    ]
                )
            )
            entries.append(TreeEntry(path, "link", target))
        else:
            entries.append(TreeEntry(path, kind))
    return entries


# --- server: HTTP uploads (slow, cut short, abandoned) ----------------------------------
# For tests/test_server_limits.py: how a client may deliver (or fail to deliver) a body.

__all__ += ["UPLOAD_ENDINGS", "UploadPlan", "upload_plans"]

#: complete: every byte is sent; disconnect: the client goes away part-way;
#: stall: the client stops sending part-way and waits for an answer.
UPLOAD_ENDINGS = ("complete", "disconnect", "stall")


@attrs.frozen
class UploadPlan:
    """One upload: the body the client means to send and what it actually does.

    ``chunks`` joined is ``body`` when ``ending`` is ``"complete"`` and a strict
    prefix of it otherwise; ``pauses`` (seconds) come before each chunk.
    """

    body: bytes
    chunks: tuple[bytes, ...]
    pauses: tuple[float, ...]
    ending: str


def _damaged(valid: bytes) -> st.SearchStrategy[bytes]:
    """The control body cut short, with a byte changed or spliced in, or junk."""
    cut = st.integers(min_value=0, max_value=max(len(valid) - 1, 0)).map(lambda n: valid[:n])
    flipped = st.tuples(
        st.integers(min_value=0, max_value=len(valid) - 1), st.integers(0, 255)
    ).map(lambda p: valid[: p[0]] + bytes([p[1]]) + valid[p[0] + 1 :])
    spliced = st.tuples(
        st.integers(min_value=0, max_value=len(valid)), st.binary(min_size=1, max_size=8)
    ).map(lambda p: valid[: p[0]] + p[1] + valid[p[0] :])
    junk = st.binary(max_size=64) | st.sampled_from([b"{", b"[]", b"null", b'{"a":', b"\xff"])
    return cut | flipped | spliced | junk


@st.composite
def upload_plans(draw: st.DrawFn, valid: bytes, max_pause: float = 0.02) -> UploadPlan:
    """Uploads of ``valid`` (a well-formed body) or of a damaged copy, in 1-6 chunks."""
    body = draw(st.just(valid) | _damaged(valid))
    ending = draw(st.sampled_from(UPLOAD_ENDINGS))
    if ending != "complete" and not body:
        ending = "complete"  # nothing to cut short
    sent = body if ending == "complete" else body[: draw(st.integers(0, len(body) - 1))]
    pieces: list[bytes] = []
    rest = sent
    for size in draw(st.lists(st.integers(0, 64), max_size=5)):
        pieces.append(rest[:size])
        rest = rest[size:]
    chunks = (*pieces, rest)
    pauses = tuple(
        draw(st.lists(st.floats(0, max_pause), min_size=len(chunks), max_size=len(chunks)))
    )
    return UploadPlan(body, chunks, pauses, ending)


# ---------------------------------------------------------------------------------------
# Behaviour stores, round 2: subject identities for the Redis key encoding, tracked
# values both stores must tell apart alike, and values for every BehaviorConfig field.
# (tests/test_behavior_keys.py and tests/test_behavior_config.py)
# ---------------------------------------------------------------------------------------

import math  # noqa: E402  (kept with the block it serves)

__all__ += [
    "CONFIG_FIELDS",
    "config_changes",
    "subject_pairs",
    "tracked_value_sequences",
]

#: Characters that matter to the key encoding: the separator, the escape character and
#: what it escapes to, braces (Cluster hash tags), lone surrogates, NUL, non-ASCII.
_KEY_CHARS = st.sampled_from([*":{}%3Aa257BDx\\ ", "\ud800", "\udfff", "\x00", "é", "\U0001f600"])
_SUBJECT_PARTS = st.text(alphabet=_KEY_CHARS, max_size=8) | st.sampled_from(
    ["user", "user:alice", "alice:x", "x", "%3A", "%253A", "a%3Ab", "{user}", "%7B", ""]
)


@st.composite
def subject_pairs(draw: st.DrawFn) -> tuple[tuple[str, str], tuple[str, str]]:
    """Two different ``(type, id)`` subjects, often ones whose ``type + ":" + id`` (or
    escaped form) is the same text split at another ``:``."""
    if draw(st.booleans()):
        parts = draw(st.lists(_SUBJECT_PARTS, min_size=3, max_size=5))
        i, j = draw(st.lists(st.integers(1, len(parts) - 1), min_size=2, max_size=2, unique=True))
        a = (":".join(parts[:i]), ":".join(parts[i:]))
        b = (":".join(parts[:j]), ":".join(parts[j:]))
    else:
        a = (draw(_SUBJECT_PARTS), draw(_SUBJECT_PARTS))
        b = (draw(_SUBJECT_PARTS), draw(_SUBJECT_PARTS))
    if a == b:
        b = (b[0], b[1] + ":")
    return a, b


#: Device ids whose text forms, hashes or JSON spellings are close: the empty string
#: and ``'""'``, ``1``/``1.0``/``True``/``"1"``, ``-1``/``-2`` (equal hashes in Python),
#: ints 2**61 - 1 apart (equal hashes too), a list and its JSON text.
_TRACKED = st.sampled_from(
    [
        "",
        '""',
        "1",
        1,
        1.0,
        True,
        "true",
        -1,
        -2,
        2**61,
        "[1]",
        [1],
        {"a": 1},
        '{"a":1}',
        None,
        "d-1",
        "\x00",
        "null",
    ]
)


def tracked_value_sequences() -> st.SearchStrategy[list[Any]]:
    """Device ids one subject sends in turn (None: no device)."""
    return st.lists(_TRACKED, min_size=1, max_size=12)


#: Every BehaviorConfig field and the kind of value it takes.
CONFIG_FIELDS: Mapping[str, str] = {
    **dict.fromkeys(
        ("minute_window", "hour_window", "day_window", "seen_lookback", "baseline_lookback"),
        "seconds",
    ),
    **dict.fromkeys(
        ("buckets", "max_subjects", "max_resources", "max_seen", "breaker_failures"), "count"
    ),
    "ttl": "ttl",
    "on_store_error": "mode",
    "store_error_acr_values": "acr",
    "store_error_max_age": "max_age",
    **dict.fromkeys(("connect_timeout", "timeout", "breaker_reset"), "duration"),
    "key_prefix": "prefix",
    "defer_outcomes": "flag",
}


class _FakeStr:
    """An object that claims to be a str."""

    __class__ = str  # type: ignore[assignment]


class _LyingStr(str):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = str.__hash__


class _BigInt(int):
    def __int__(self) -> int:
        return 2**100


_NUMBERS = st.sampled_from(
    [
        0,
        1,
        59,
        60,
        120,
        3600,
        86_400,
        2_592_000,
        2**31 - 1,
        2**31,
        2**63,
        -1,
        -60,
        0.05,
        60.0,
        0.0,
        -0.5,
        math.nan,
        math.inf,
        -math.inf,
        1e300,
        2.0**31,
    ]
) | st.integers(-(2**40), 2**40)
_CONFIG_OTHERS = st.sampled_from(
    [
        True,
        False,
        None,
        "60",
        "deny",
        "step_up",
        "evaluate",
        "DENY",
        "",
        "zt",
        "a{b",
        "p}",
        "mfa",
        "urn:example:loa 2",
        'a"b',
        "x" * 256,
        (),
        [],
        ("mfa",),
        ["mfa", "phr"],
        ["urn:example:loa 2"],
        ["mfa", ""],
        ("mfa", 1),
        [b"mfa"],
        {"mfa": 1},
        b"zt",
    ]
).map(lambda v: list(v) if isinstance(v, list) else v)


@st.composite
def config_changes(draw: st.DrawFn) -> dict[str, Any]:
    """One to three BehaviorConfig fields with values of every kind: in and out of
    range, of the wrong type, bools for numbers, strs for lists, hostile subclasses."""
    from zerotrust.behavior.config import StoreErrorMode

    values = (
        _NUMBERS
        | _CONFIG_OTHERS
        | st.sampled_from(list(StoreErrorMode))
        | st.lists(acr_values, max_size=3)
        | st.lists(acr_values, max_size=3).map(tuple)
        | st.sampled_from([_FakeStr(), _LyingStr("deny"), _LyingStr("zt"), _BigInt(60)])
        | st.sampled_from([[_LyingStr("mfa")], (_FakeStr(),)])
    )
    names = draw(st.lists(st.sampled_from(sorted(CONFIG_FIELDS)), min_size=1, max_size=3))
    return {name: draw(values) for name in names}


# === web and obligations: built-in obligation parameters, @require's arguments ==========
# (strategies for tests/test_web_obligations.py and tests/test_web_decorator.py; one block
# to ease merging)

__all__ += [  # extended here, so that this block merges on its own
    "OBLIGATION_PARAMS",
    "OBLIGATION_WRONG_VALUES",
    "obligation_payloads",
    "obligation_specs",
    "require_parts",
]

#: Key names for obligations and payloads: some overlap, one is a path, one is empty.
_OB_KEYS = ("card", "ssn", "items", "name", "email", "customer.card", "")
_OB_PLAIN = st.text(alphabet="abc._ 1", max_size=5)
_OB_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-3, 6)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | _OB_PLAIN
)
#: Wrong values of each parameter, at and beyond the bounds and of every wrong type
#: (drawn from the list first, so that each is tried), then arbitrary scalars.
OBLIGATION_WRONG_VALUES: Mapping[str, list[Any]] = {
    "fields": ["", "customer.card", [], [""], ["a.b"], [1], [{"a": 1}], 3, None, {"card": 1}],
    "keep_last": [-1, 2**31, -(2**40), True, 1.5, "4", "1e3", None, [4]],
    "replacement": [None, 4, ["x"], True, {"a": "b"}],
    "max": [0, -1, 2**31, True, 2.0, "3", "1e3", None, [2]],
    "field": ["", "data.items", 1, None, ["items"], True],
    "max_rows": [50],  # a plausible typo of a real parameter
    "text": ["confidential"],
}


def _ob_wrong(name: str) -> st.SearchStrategy[Any]:
    return st.sampled_from(OBLIGATION_WRONG_VALUES[name]) | _OB_SCALARS


_OB_NAMES = st.sampled_from(["card", "ssn", "items", "name", "email"])
#: Right values for each parameter; a valid spec uses only these.
_OB_RIGHT: Mapping[str, Any] = {
    "fields": _OB_NAMES | st.lists(_OB_NAMES, min_size=1, max_size=3),
    "keep_last": st.integers(0, 12),
    "replacement": _OB_PLAIN,
    "max": st.integers(1, 8),
    "field": st.sampled_from(["items", "items", "data", "card"]),
}
#: Each built-in obligation type's own parameters.
OBLIGATION_PARAMS: Mapping[str, tuple[str, ...]] = {
    "mask": ("fields", "keep_last", "replacement"),
    "tokenize": ("fields",),
    "limit": ("max", "field"),
}
_OB_REQUIRED = {"mask": "fields", "tokenize": "fields", "limit": "max"}


@st.composite
def obligation_specs(draw: st.DrawFn) -> dict[str, Any]:
    """One built-in obligation as a policy writes it: ``{"type": ..., **params}``.

    Half are right (the required key, optional keys with right values); the others
    have a wrong value (negative, bool, float, a string, a path, a mapping, 2**31),
    a missing required key or an unknown key (another type's, or ``max_rows``).
    """
    kind = draw(st.sampled_from(sorted(OBLIGATION_PARAMS)))
    own = OBLIGATION_PARAMS[kind]
    optional = [n for n in own if n != _OB_REQUIRED[kind]]
    extra = st.lists(st.sampled_from(optional), unique=True) if optional else st.just([])
    names = [_OB_REQUIRED[kind], *draw(extra)]
    spec: dict[str, Any] = {"type": kind}
    for name in names:
        spec[name] = draw(_OB_RIGHT[name])
    fault = draw(st.sampled_from(["none", "none", "value", "value", "missing", "unknown"]))
    if fault == "value":
        name = draw(st.sampled_from(own))
        spec[name] = draw(_ob_wrong(name))
    elif fault == "missing":
        del spec[_OB_REQUIRED[kind]]
    elif fault == "unknown":
        name = draw(st.sampled_from(sorted(set(OBLIGATION_WRONG_VALUES) - set(own))))
        spec[name] = draw(_OB_RIGHT.get(name, st.sampled_from(OBLIGATION_WRONG_VALUES[name])))
    return spec


_OB_VALUES = (
    st.none()
    | st.booleans()
    | st.integers(-5, 10**12)
    | st.text(alphabet="0123456789ab", max_size=8)
)
_OB_RECORDS = st.recursive(
    _OB_VALUES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_OB_KEYS), inner, max_size=4)
    ),
    max_leaves=8,
)


def obligation_payloads() -> st.SearchStrategy[Any]:
    """What a protected function returns: lists of records, ``{"items": [...]}``
    envelopes (also nested deeper or with the list missing), single records, scalars."""
    record = st.dictionaries(st.sampled_from(_OB_KEYS), _OB_RECORDS, max_size=4)
    records = st.lists(record, max_size=6)
    return (
        records
        | records
        | st.fixed_dictionaries({"items": records, "total": st.integers(0, 9)})
        | st.fixed_dictionaries({"items": records})
        | st.fixed_dictionaries({"data": st.fixed_dictionaries({"items": records})})
        | record
        | _OB_VALUES
    )


def require_parts(reserved: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """What a decorated function's arguments supply under a middleware-decided request:
    a ``context`` whose keys are drawn from ``reserved`` (those the middleware sets) and
    from others, and sometimes a ``device`` (a claimed posture)."""
    values = (
        st.none() | st.booleans() | st.integers(-9, 9) | st.text(alphabet="abc.10:", max_size=9)
    )
    keys = st.sampled_from([*reserved, "ticket", "filters", "records"]) | st.text(
        alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8
    )
    device = st.none() | st.fixed_dictionaries(
        {}, optional={"verified": st.booleans(), "managed": st.booleans()}
    )
    return st.fixed_dictionaries(
        {},
        optional={
            "context": st.none() | st.dictionaries(keys, values, max_size=4),
            "device": device,
        },
    )


# === policy loading: deep nesting, alias expansion, files that hold nothing (loader) =====
#
# YAML nested tens of thousands of levels in every shape libyaml composes (flow and block
# collections, explicit keys, anchors and tags on the way), alias chains whose expanded
# size the generator knows exactly, and policy or data files holding empty documents.

#: (opener, closer, levels it adds) inside flow context; ``{i}`` numbers an anchor.
_FLOW_LEVELS = [
    ("[", "]", 1),
    ("{a: ", "}", 1),
    ("[a: ", "]", 2),
    ("&n{i} [", "]", 1),
    ("!!seq [", "]", 1),
    ("[? ", "]", 2),
]
#: Block context openers (only before the first flow opener, all on one line).
_BLOCK_LEVELS = [("- ", 1), ("? ", 1)]


@attrs.frozen
class DeepYaml:
    """A YAML text and how deep its innermost value is (the root is level 0)."""

    text: str
    depth: int
    is_data: bool


@st.composite
def deep_yaml_texts(draw: st.DrawFn) -> DeepYaml:
    """A policy or data file nesting collections from a few to 100,000 levels deep,
    mixing every kind of collection opener; the innermost value is a scalar."""
    levels = draw(
        st.integers(min_value=0, max_value=70) | st.sampled_from([1_000, 30_000, 100_000])
    )
    kinds = draw(st.lists(st.sampled_from(_FLOW_LEVELS), min_size=1, max_size=4))
    is_data = draw(st.booleans())
    block: list[tuple[str, int]] = []
    if not is_data:
        block = draw(st.lists(st.sampled_from(_BLOCK_LEVELS), max_size=min(levels, 200)))
    depth = 1 if is_data else 0
    depth += sum(added for _, added in block)
    openers: list[str] = []
    closers: list[str] = []
    for i in range(max(levels - len(block), 0)):
        opener, closer, added = kinds[i % len(kinds)]
        openers.append(opener.replace("{i}", str(i)))
        closers.append(closer)
        depth += added
    body = "".join(openers) + "x" + "".join(reversed(closers))
    prefix = "d: " if is_data else "".join(opener for opener, _ in block)
    return DeepYaml(prefix + body + "\n", depth, is_data)


@attrs.frozen
class AliasSet:
    """Data files whose anchors and aliases the generator sized: ``values`` and
    ``chars`` are what the aliases repeat in the whole set (each alias counts as the
    values and scalar characters, quotes included, of what it names), ``largest`` is
    the most values one file holds once aliases are expanded."""

    texts: dict[str, str]
    values: int
    chars: int
    largest: int


@st.composite
def alias_sets(draw: st.DrawFn) -> AliasSet:
    """One to six data files, each a chain of anchors: strings up to 400,000
    characters, then lists of aliases to earlier anchors (fan-out up to 40, chains up to
    7 deep: up to 40**7 values), around and far beyond the alias limits."""
    texts: dict[str, str] = {}
    values = chars = largest = 0
    for f in range(draw(st.integers(min_value=1, max_value=6))):
        chain = draw(st.booleans())  # each list repeats the anchor just before it
        sizes: dict[str, tuple[int, int]] = {}  # anchor -> (values, chars) it holds
        lines: list[str] = []
        held = 1  # the file's mapping
        for n in range(draw(st.integers(min_value=1, max_value=8))):
            anchor = f"a{n}"
            if not sizes or (not chain and draw(st.booleans())):
                length = draw(st.sampled_from([0, 1, 100, 10_000, 100_000, 400_000]))
                lines.append(f'k{f}_{n}: &{anchor} "{"x" * length}"')
                sizes[anchor] = (1, length + 2)
            else:
                fan_out = draw(st.sampled_from([1, 3, 10, 40]))
                names = st.just(f"a{n - 1}") if chain else st.sampled_from(sorted(sizes))
                refs = draw(st.lists(names, min_size=fan_out, max_size=fan_out))
                lines.append(f"k{f}_{n}: &{anchor} [{', '.join('*' + r for r in refs)}]")
                sizes[anchor] = (
                    1 + sum(sizes[r][0] for r in refs),
                    sum(sizes[r][1] for r in refs),
                )
                values += sum(sizes[r][0] for r in refs)
                chars += sum(sizes[r][1] for r in refs)
            held += 1 + sizes[anchor][0]  # the key, and the value
        largest = max(largest, held)
        texts[f"f{f}.data.yaml"] = "\n".join(lines) + "\n"
    return AliasSet(texts, values, chars, largest)


#: What an empty document can look like: nothing, a comment, ``~``, ``null``, ``!!null``.
_EMPTY_DOCUMENTS = ["", "# being edited\n", "~\n", "null\n", "!!null\n", "   \n\n"]


@attrs.frozen
class DocumentFile:
    """A file of YAML documents: how many, and how many of them hold nothing."""

    text: str
    documents: int
    empty: int


@st.composite
def files_with_empty_documents(draw: st.DrawFn, document: str) -> DocumentFile:
    """Zero to four documents, each ``document`` (``{n}`` numbered apart) or an empty
    one, each started by ``---`` (the first may go without when it is not empty) and
    perhaps ended by ``...``, perhaps after a comment."""
    kinds = draw(st.lists(st.booleans(), max_size=4))  # True: the document, False: empty
    parts = []
    for number, full in enumerate(kinds):
        body = (
            document.replace("{n}", str(number))
            if full
            else draw(st.sampled_from(_EMPTY_DOCUMENTS))
        )
        parts.append("---\n" + body + draw(st.sampled_from(["", "", "...\n"])))
    text = "".join(parts)
    if kinds and kinds[0] and draw(st.booleans()):
        text = text.removeprefix("---\n")
    if draw(st.booleans()):
        text = "# a comment\n" + text
    return DocumentFile(text, len(kinds), kinds.count(False))


# === CEL (round 2): the private-address table, backend agreement, time zones ==============
# Families for tests/test_cel_security.py and tests/test_cel_differential.py.

__all__ += [
    "SPECIAL_RANGES",
    "addresses_around_special_ranges",
    "conversion_calls",
    "numeric_texts",
    "singleton_list_conditions",
    "time_zone_names",
    "untyped_conditions",
]

#: Ranges whose addresses a private-address check or an address class may get wrong: the
#: private ones and their neighbours, and the special-purpose ranges Python's registry
#: has counted as private in some release (tunnels, NAT64, documentation, reserved).
SPECIAL_RANGES = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "0.0.0.0/8",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "::/128",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
    "ff02::/16",
    "ff12::/16",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001::/32",
    "2001:db8::/32",
    "2002::/16",
)


@st.composite
def addresses_around_special_ranges(draw: st.DrawFn) -> tuple[str, str]:
    """(text, kind): an address inside, at the edge of or just outside a special range, or
    anywhere (kind ``v4``/``v6``); or an IPv4-mapped IPv6 spelling (kind ``mapped``, which
    every IP function refuses)."""
    import ipaddress

    kind = draw(st.sampled_from(["near", "near", "anywhere", "mapped"]))
    if kind == "mapped":
        v4 = ipaddress.IPv4Address(draw(st.integers(0, 2**32 - 1)))
        text = draw(st.sampled_from([f"::ffff:{v4}", str(ipaddress.IPv6Address(f"::ffff:{v4}"))]))
        return text, "mapped"
    if kind == "anywhere":
        version = draw(st.sampled_from([4, 6]))
        value = draw(st.integers(0, 2 ** (32 if version == 4 else 128) - 1))
    else:
        network = ipaddress.ip_network(draw(st.sampled_from(SPECIAL_RANGES)))
        version = network.version
        first, last = int(network.network_address), int(network.broadcast_address)
        value = draw(st.sampled_from([first, last, first - 1, last + 1]) | st.integers(first, last))
        value = min(max(value, 0), 2**network.max_prefixlen - 1)
    address = ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address), "mapped"
    return str(address), f"v{version}"


#: In the zoneinfo directory on many hosts, yet no place's IANA name.
NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@st.composite
def time_zone_names(draw: st.DrawFn) -> tuple[str, bool]:
    """(name, valid): an IANA name of the host's tz database, as is or bent into something
    a file system might still open: another case, a ``posix/`` or ``right/`` copy, a
    relative or absolute path, doubled or trailing slashes, a look-alike letter, spaces; or
    one of the host's non-zones. Valid iff the result is still an IANA name (not one of
    ``NOT_ZONES``), spelt exactly."""
    import zoneinfo

    names = sorted(zoneinfo.available_timezones())
    accepted = frozenset(names) - NOT_ZONES
    name = draw(st.sampled_from(names) | st.sampled_from(sorted(NOT_ZONES)))
    bend = draw(
        st.sampled_from(
            [
                lambda n: n,
                str.lower,
                str.upper,
                str.swapcase,
                lambda n: "posix/" + n,
                lambda n: "right/" + n,
                lambda n: "../" + n,
                lambda n: "./" + n,
                lambda n: "/usr/share/zoneinfo/" + n,
                lambda n: n + "/",
                lambda n: n.replace("/", "//"),
                lambda n: n.replace("/", "/../" + n.split("/")[0] + "/"),
                lambda n: n.replace("a", "\u0430", 1),  # Cyrillic a
                lambda n: f" {n}",
                lambda n: f"{n}\n",
            ]
        )
    )
    bent = bend(name)
    return bent, bent in accepted or bent == "UTC"


_BLANKS = ("", "", "", " ", "\t", "\n", "\u00a0", "\u2003")
_SIGNS = ("", "", "+", "-", "\u2212", "\uff0b", "--")
_NUMBER_BODIES = (
    "0",
    "00",
    "007",
    "1",
    "3",
    "10",
    "1_0",
    "1__0",
    "_1",
    "0x10",
    "0X1f",
    "0o17",
    "0b11",
    "1u",
    "1.",
    ".5",
    "1.5",
    "1.5.5",
    "1e5",
    "1E+5",
    "1e-5",
    "1e400",
    "1e",
    "e5",
    "inf",
    "Inf",
    "infinity",
    "Infinity",
    "nan",
    "NaN",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "9" * 25,
    "true",
    "True",
    "TRUE",
    "tRue",
    "t",
    "f",
    "yes",
    "",
)


@st.composite
def numeric_texts(draw: st.DrawFn) -> str:
    """Strings a conversion may or may not read as a number or a bool: signs (also the
    Unicode minus and fullwidth plus), ASCII and other Unicode digits, underscores, hex,
    octal and binary prefixes, points, exponents, infinities, NaN, the int64 and uint64
    limits and one past them, bool spellings; with blanks around them (also no-break and
    em spaces)."""
    body = draw(st.sampled_from(_NUMBER_BODIES))
    if body and draw(st.integers(0, 4)) == 0:  # some digits from another script
        digits = draw(st.sampled_from(UNICODE_DIGITS))
        body = "".join(digits[int(c)] if c.isdigit() and draw(st.booleans()) else c for c in body)
    sign = draw(st.sampled_from(_SIGNS))
    return draw(st.sampled_from(_BLANKS)) + sign + body + draw(st.sampled_from(_BLANKS))


_TIME_TEXTS = (
    "2025-01-17T00:00:00Z",
    "2025-01-17T00:00:00.123456789+01:00",
    "2025-01-17 00:00:00Z",
    "2025-01-17",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999Z",
    "1h30m",
    "1.5s",
    "-1.5s",
    "+1s",
    "0",
    "1us",
    "1\u00b5s",
    "1e3s",
    "1_0s",
    "\uff11s",
    "315576000001s",
    "1d",
)
_CONVERSIONS = ("int", "uint", "double", "string", "bool", "bytes", "timestamp", "duration", "type")
_CONVERSIONS += ("dyn",)
_FLOAT_EDGES = (
    0.0,
    -0.0,
    0.5,
    -0.5,
    -0.9999,
    1.9,
    -1.9,
    2.0**53 + 1,
    2.0**63,
    -(2.0**63),
    2.0**63 - 1024,
    -(2.0**63) - 2048,
    2.0**64,
    2.0**64 - 2048,
    1e300,
    5e-324,
    float("inf"),
    float("-inf"),
    float("nan"),
)


@st.composite
def conversion_calls(draw: st.DrawFn) -> tuple[str, Any]:
    """(function, argument): every CEL conversion (and ``dyn``) on numeric texts, time
    texts, integers and doubles at and past the 64-bit limits, and every other kind of
    value a request or the runtime may hold."""
    import datetime

    from zerotrust.cel._runtime_values import CelUint

    fn = draw(st.sampled_from(_CONVERSIONS))
    value = draw(
        numeric_texts()
        | st.sampled_from(_TIME_TEXTS)
        | st.text(max_size=6)
        | st.sampled_from(_FLOAT_EDGES)
        | st.floats()
        | st.integers(INT64[0], INT64[1])
        | st.sampled_from([INT64[0], INT64[1], 0, -1, 1])
        | st.sampled_from([CelUint(0), CelUint(2**63), CelUint(2**64 - 1)])
        | st.booleans()
        | st.none()
        | st.binary(max_size=4)
        | st.sampled_from([b"\xff", "é".encode(), [], [1], {}, {"a": 1}])
        | st.sampled_from(
            [
                datetime.datetime(2025, 1, 17, tzinfo=datetime.UTC),
                datetime.timedelta(seconds=-1.5),
                datetime.timedelta(days=1),
            ]
        )
    )
    return fn, value


_SCALAR_LITERALS = ("1", "0", "-7", "1u", "2.5", "'a'", '"admin"', "b'x'", "true", "null")


def _in_lists(inner: str, depth: int, parens: list[bool]) -> str:
    for wrap in parens[:depth]:
        inner = f"[({inner})]" if wrap else f"[{inner}]"
    return inner


@st.composite
def singleton_list_conditions(draw: st.DrawFn) -> tuple[str, Any]:
    """(condition, answer): a one-element list literal, nested 1-3 deep with or without
    parentheses, where a compiler that looks through single-child syntax nodes would see
    its element. The answer is a bool, ``"error"`` (at evaluation) or ``"load"`` (refused
    when the set loads)."""
    depth = draw(st.integers(1, 3))
    parens = draw(st.lists(st.booleans(), min_size=3, max_size=3))
    scalar = draw(st.sampled_from(_SCALAR_LITERALS))
    lists = functools.partial(_in_lists, depth=depth, parens=parens)
    shallower = _in_lists(scalar, depth - 1, parens)
    return draw(
        st.sampled_from(
            [
                (f"{scalar} in {lists(scalar)}", depth == 1),
                (f"{shallower} in {lists(scalar)}", True),
                (f"size({lists(scalar)}) == 1", True),
                (f"{lists(scalar)} == {lists(scalar)}", True),
                (f"{scalar} == {lists(scalar)}", False),
                (f"timestamp({lists(repr('2025-01-17T00:00:00Z'))}) > now", "error"),
                (f"duration({lists(repr('1h'))}) > duration('0s')", "error"),
                (f"ip({lists(repr('10.0.0.1'))}) == ip('10.0.0.1')", "error"),
                (f"has({lists('subject.id')})", "load"),
                (f"[1].all({lists('x')}, true)", "load"),
                (f"[1].exists({lists('x')}, true)", "load"),
            ]
        )
    )


_UNTYPED_LEAVES = st.sampled_from(
    [
        "subject.a",
        "subject.b",
        "subject.c",
        "subject",
        "1",
        "-1",
        "1u",
        "2.5",
        "'a'",
        "b'a'",
        "true",
        "false",
        "null",
        "[]",
        "{}",
        "[1, 'a']",
        "{'a': 1, 1: 'b'}",
        "now",
        "duration('1h')",
        "timestamp(0)",
        "double('nan')",
        "int",
        "string",
        "net.IP",
        "ip('10.0.0.1')",
        "cidr('10.0.0.0/8')",
        "'10.0.0.1'",
    ]
)
_UNTYPED_OPS = ["==", "!=", "<", "<=", ">", ">=", "in", "+", "-", "*", "/", "%", "&&", "||"]
_UNTYPED_BINARY = st.sampled_from(_UNTYPED_OPS).map(lambda op: f" {op} ")
_UNTYPED_CALLS = st.sampled_from(
    ("size", "dyn", *_CONVERSIONS, "ip", "cidr", "isIP", "ip.isCanonical", "ip_is_private")
)
_UNTYPED_METHODS = st.sampled_from(
    [
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "size",
        "getHours",
        "getDayOfWeek",
        "containsIP",
        "family",
        "isLoopback",
        "ip",
        "prefixLength",
    ]
)


@st.composite
def untyped_conditions(draw: st.DrawFn, depth: int = 3) -> str:
    """Expressions over values of any kind: every operator, conversion, string and time
    method, indexing, field selection, ``has()``, ``?:`` and macro, on operands of any
    type (most combinations are no-overload errors: both backends must agree on which)."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return draw(_UNTYPED_LEAVES)
    a = draw(untyped_conditions(depth - 1))
    b = draw(untyped_conditions(depth - 1))
    shape = draw(st.integers(0, 8))
    if shape == 0:
        return f"({a}{draw(_UNTYPED_BINARY)}{b})"
    if shape == 1:
        return f"{draw(st.sampled_from(['!', '-']))}({a})"
    if shape == 2:
        return f"{draw(_UNTYPED_CALLS)}({a})"
    if shape == 3:
        return f"({a} ? {b} : {draw(untyped_conditions(depth - 1))})"
    if shape == 4:
        return f"{a}[{b}]"
    if shape == 5:
        macro = draw(st.sampled_from(["all", "exists", "exists_one", "map", "filter"]))
        return f"[{a}, {b}].{macro}(x, {draw(untyped_conditions(depth - 1))})"
    if shape == 6:  # a macro over a map's keys
        return f"{{'a': {a}}}.{draw(st.sampled_from(['all', 'exists', 'map']))}(k, {b})"
    if shape == 7:
        return f"has({a}.f)" if draw(st.booleans()) else f"{a}.f"
    return f"{a}.{draw(_UNTYPED_METHODS)}({b})"


# --- request and audit: read-only requests, redaction in every form, CLI input -----------
# For tests/test_request.py, tests/test_audit.py and tests/test_cli.py.

import collections  # noqa: E402  (kept with the block it serves)
import json  # noqa: E402
import types  # noqa: E402

__all__ += [
    "DICT_MUTATIONS",
    "LIST_MUTATIONS",
    "QUOTING_CONDITIONS",
    "extra_shapes",
    "json_containers_with_paths",
    "lead_ins",
    "malformed_request_inputs",
    "redaction_secrets",
]

#: Every way to change a dict or a list in place: none may work on a validated
#: request's data (each is tried whether or not the key or item exists).
DICT_MUTATIONS: dict[str, Any] = {
    "d[k] = v": lambda d: d.__setitem__("role", "admin"),
    "del d[k]": lambda d: d.__delitem__(next(iter(d), "k")),
    "clear": lambda d: d.clear(),
    "pop": lambda d: d.pop(next(iter(d), "k"), None),
    "popitem": lambda d: d.popitem(),
    "update": lambda d: d.update(role="admin"),
    "setdefault": lambda d: d.setdefault("role", "admin"),
    "|=": lambda d: d.__ior__({"role": "admin"}),
    "__init__": lambda d: d.__init__(role="admin"),
}
LIST_MUTATIONS: dict[str, Any] = {
    "l[0] = v": lambda li: li.__setitem__(0, "admin"),
    "l[:] = v": lambda li: li.__setitem__(slice(None), ["admin"]),
    "del l[0]": lambda li: li.__delitem__(0),
    "del l[:]": lambda li: li.__delitem__(slice(None)),
    "append": lambda li: li.append("admin"),
    "extend": lambda li: li.extend(["admin"]),
    "insert": lambda li: li.insert(0, "admin"),
    "pop": lambda li: li.pop(),
    "remove": lambda li: li.remove("admin"),
    "clear": lambda li: li.clear(),
    "sort": lambda li: li.sort(key=repr),
    "reverse": lambda li: li.reverse(),
    "+=": lambda li: li.__iadd__(["admin"]),
    "*=": lambda li: li.__imul__(2),
    "__init__": lambda li: li.__init__(["admin"]),
}


def _containers(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The paths of every dict and list inside ``value`` (itself included)."""
    if isinstance(value, dict):
        found = [path]
        for key, item in value.items():
            found += _containers(item, (*path, key))
        return found
    if isinstance(value, list):
        found = [path]
        for i, item in enumerate(value):
            found += _containers(item, (*path, i))
        return found
    return []


@st.composite
def json_containers_with_paths(draw: st.DrawFn) -> tuple[str, dict[str, Any], tuple[Any, ...]]:
    """(part, JSON object, path of one dict or list inside it): where in a request
    (``context``, ``device`` or a ``*.properties``) a mutation will be tried."""
    part = draw(st.sampled_from(["context", "device", "subject", "action", "resource"]))
    value = draw(st.dictionaries(st.text(max_size=6), json_values(10), max_size=5))
    return part, value, draw(st.sampled_from(_containers(value)))


#: CEL conditions whose error message quotes the string ``X`` (built from request
#: values): every runtime function that names a bad argument.
QUOTING_CONDITIONS = (
    "int(X) > 0",
    "uint(X) > 0u",
    "double(X) > 0.0",
    "bool(X)",
    "ip_in_cidr(X, '10.0.0.0/8')",
    "ip_in_cidr('10.0.0.1', X)",
    "ip_is_private(X)",
    "timestamp(X) > now",
    "duration(X) > duration('1s')",
    "now.getHours(X) > 0",
    "context.m[X] == 1",
    "subject.id.matches(X)",
)

# Characters that quoting escapes or may cut: quotes, backslashes, controls, line
# breaks, zero-width and non-ASCII letters, astral characters.
_AWKWARD = st.sampled_from(["'", '"', "\\", "\n", "\t", "\x00", "\x7f", "\u200b", "é", "😀", "("])


@st.composite
def redaction_secrets(draw: st.DrawFn) -> str:
    """Secrets for redaction: a distinctive start (so any visible piece of one is
    recognisable), then 0-120 characters mixing awkward ones: some are quoted whole,
    some cut short."""
    size = draw(st.integers(0, 120))
    body = draw(
        st.lists(_AWKWARD | st.characters(exclude_categories=["Cs"]), min_size=size, max_size=size)
    )
    return "Q9Z" + "".join(body)


def lead_ins() -> st.SearchStrategy[str]:
    """Text before a secret inside a quoted string (no ``Q``), of any length up to
    past the cut, so the cut falls before, inside and after the secret."""
    return st.tuples(st.integers(0, 70), st.text(alphabet="ab-/ 0é'", min_size=1)).map(
        lambda p: (p[1] * p[0])[: p[0]]
    )


_MAPPING_SHAPES: dict[str, Any] = {
    "dict": dict,
    "OrderedDict": collections.OrderedDict,
    "defaultdict": lambda d: collections.defaultdict(str, d),
    "MappingProxyType": types.MappingProxyType,
    "user Mapping": PlainMapping,
}


@st.composite
def extra_shapes(draw: st.DrawFn, value: Any) -> Any:
    """``value`` (plain JSON) with every object rebuilt as some kind of Mapping and
    every array as a list or a tuple, chosen at random: what a caller may pass as
    ``extra``."""
    if isinstance(value, dict):
        shape = _MAPPING_SHAPES[draw(st.sampled_from(sorted(_MAPPING_SHAPES)))]
        return shape({k: draw(extra_shapes(v)) for k, v in value.items()})
    if isinstance(value, list):
        items = [draw(extra_shapes(v)) for v in value]
        return tuple(items) if draw(st.booleans()) else items
    return value


_VALID = b'{"subject": {"id": "u-1"}, "action": {"name": "read"}, "resource": {"type": "doc"}}'


@st.composite
def malformed_request_inputs(draw: st.DrawFn) -> bytes:
    """Bytes that are not a valid request, of every kind a command line may be fed:
    empty, not UTF-8, a byte order mark, broken JSON, a bare constant, duplicate keys,
    a huge number, deep nesting, a lone surrogate escape, not an object, a bad value
    or field (with keys holding line breaks, which must not break the message)."""
    key = draw(st.text(min_size=1, max_size=6))
    name = json.dumps(key)
    deep = draw(st.sampled_from([40, 1_500, 100_000]) | st.integers(40, 200_000))
    digits = draw(st.sampled_from([20, 4_301, 6_000]) | st.integers(20, 6_000))
    return draw(
        st.sampled_from(
            [
                b"",
                b" \n\t ",
                b"\xff" + _VALID,
                _VALID[:10] + b"\xc3(" + _VALID[10:],
                b"\xef\xbb\xbf" + _VALID,
                _VALID[: draw(st.integers(1, len(_VALID) - 1))],
                _VALID[:-1] + b', "context": {"x": NaN}}',
                _VALID[:-1] + b', "context": {"x": -Infinity}}',
                _VALID[:-1] + b', "context": {"x": 1e400}}',
                _VALID[:-1] + b', "context": {"x": ' + b"9" * digits + b"}}",
                _VALID[:-1] + b', "context": {"x": 9223372036854775808}}',
                _VALID[:-1]
                + b', "context": {'
                + name.encode()
                + b": 1, "
                + name.encode()
                + b": 2}}",
                _VALID[:-1] + b', "context": {"x": "\\ud800"}}',
                _VALID[:-1] + b', "context": {' + name.encode() + b': "\\udfff"}}',
                _VALID[:-1] + b', "context": {"x": ' + b"[" * deep + b"]" * deep + b"}}",
                b"[" * deep + b"]" * deep,
                b'{"a": ' * min(deep, 5000) + b"1" + b"}" * min(deep, 5000),
                b"[]",
                b'"request"',
                b"null",
                b"42",
                b'{"subject": {"id": ""}, "action": {"name": "r"}, "resource": {"type": "t"}}',
                _VALID[:-1]
                + b', "context": {'
                + name.encode()
                + b": {"
                + name.encode()
                + b": [1, {}, NaN]}}}",
                _VALID[:-1] + b", " + name.encode() + b": 1}",
            ]
        )
    )


# === YAML 1.1 / 1.2 ambiguity: plain scalars two YAML readers read differently ===========
# For tests/test_policy_files.py: each value is (plain text, what YAML 1.1 reads it as).

__all__ += ["yaml_ambiguous_scalars"]

_BOOL_WORDS = ("yes", "no", "on", "off")  # PyYAML reads y and n as text, as YAML 1.2 does


@st.composite
def yaml_ambiguous_scalars(draw: st.DrawFn) -> str:
    """A plain scalar that YAML 1.1 and YAML 1.2 read as different values: a boolean word
    in any capitalisation PyYAML resolves, a number with a leading zero, ``_``, a base-60
    ``:`` or ``0b``, or an exponent without a dot or sign (text to 1.1, a number to 1.2)."""
    kind = draw(
        st.sampled_from(
            ["bool", "octal", "underscore", "sexagesimal", "binary", "exp", "tagged", "signed"]
        )
    )
    if kind == "tagged":  # an explicit tag is held to the same rule
        return draw(st.sampled_from(["!!int 010", "!!int 1_000", "!!bool yes", "!!int 0b11"]))
    if kind == "signed":  # text to YAML 1.1, a number to 1.2; or the other way round
        return draw(st.sampled_from(["-.5", "+.25", "08", "0099", "-0x1F", "+0x10"]))
    digits = st.text("0123456789", min_size=1, max_size=4)
    if kind == "bool":
        word = draw(st.sampled_from(_BOOL_WORDS))
        return draw(st.sampled_from([word, word.capitalize(), word.upper()]))
    if kind == "octal":  # 010 is 8 to YAML 1.1, 10 to YAML 1.2 (00 to 07 agree: not drawn)
        lead = draw(st.text("0", max_size=2)) + draw(st.sampled_from("1234567"))
        return "0" + lead + draw(st.text("01234567", min_size=1, max_size=3))
    if kind == "underscore":
        return f"{draw(st.integers(1, 999))}_{draw(st.text('0123456789', min_size=3, max_size=3))}"
    if kind == "sexagesimal":
        return f"{draw(st.integers(1, 59))}:{draw(st.integers(0, 59)):02d}"
    if kind == "binary":
        return "0b" + draw(st.text("01", min_size=1, max_size=8))
    sign = draw(st.sampled_from(["", "-"]))
    return (
        f"{sign}{draw(st.integers(1, 9))}{draw(st.sampled_from(['', '.0', '.5']))}e{draw(digits)}"
    )


# --- request validation's fast path: requests at the edges of its limits ----------------
# For tests/test_request.py: the one-pass check of plain data must decide every request
# as the field-naming walk does, also exactly at MAX_VALUES and MAX_DEPTH.

from zerotrust._plain import MAX_DEPTH, MAX_VALUES  # noqa: E402

__all__ += ["json_value_count", "requests_at_the_limits"]


def json_value_count(value: Any) -> int:
    """How many JSON values ``value`` holds, itself included (as ``MAX_VALUES`` counts)."""
    if type(value) is dict:
        return 1 + sum(map(json_value_count, value.values()))
    if type(value) is list:
        return 1 + sum(map(json_value_count, value))
    return 1


@st.composite
def requests_at_the_limits(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request (:func:`requests`) pushed to an edge of a limit, in any of its
    free-form objects: ``MAX_VALUES`` -2..+2 values in all (an array of scalars or
    of small objects), or a value (an empty object, an empty array, a scalar, a
    non-ASCII string) nested at ``MAX_DEPTH`` -1..+1 through objects and arrays."""
    request = draw(requests())
    part = draw(st.sampled_from(["subject", "action", "resource", "device", "context"]))
    if part in ("device", "context"):
        holder, depth = request.setdefault(part, {}) or {}, 1
        request[part] = holder
    else:
        section = request[part]
        holder, depth = section.get("properties") or {}, 2
        section["properties"] = holder
    edge = draw(st.integers(-2, 2))
    if draw(st.booleans()):  # values
        holder["limit"] = []
        missing = MAX_VALUES + edge - json_value_count(request)
        item = draw(st.sampled_from([0, "x", True, None, 1.5, {}, {"k": 1}]))
        each = json_value_count(item)
        holder["limit"] = [item] * (missing // each) + [0] * (missing % each)
    else:  # depth: holder["limit"] is at depth + 1, the leaf at MAX_DEPTH + edge
        value = draw(st.sampled_from([{}, [], 7, "ü"]))
        for level in range(MAX_DEPTH + max(-1, min(edge, 1)) - depth - 1):
            value = [value] if level % 2 else {"n": value}
        holder["limit"] = value
    return request


# === web (round 3): request methods as each framework reads them ===========================
# (strategies for tests/test_web_properties.py; kept in one block to ease merging)

__all__ += ["unroutable_methods"]  # extended here, so that this block merges on its own

_REGISTERED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


@st.composite
def _mixed_case(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(_REGISTERED_METHODS))
    lower = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.lower() if down else c for c, down in zip(name, lower, strict=True))


def unroutable_methods() -> st.SearchStrategy[str]:
    """A method token not all in upper case: a registered method in mixed or lower case
    (``get``, ``pAtCh``), or any RFC 9110 token with a lower-case letter in it."""
    token = st.from_regex(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}", fullmatch=True)
    return (_mixed_case() | token).filter(lambda method: method != method.upper())


# === server (round 3): bearer secrets, connection floods, decisions that overrun =========
# For tests/test_server_config.py and tests/test_server_connections.py.

__all__ += [
    "B64TOKEN_CHARS",
    "ConnectionEvent",
    "Overrun",
    "bearer_secret_candidates",
    "connection_events",
    "decision_overruns",
]

#: RFC 6750 section 2.1 b64token characters (before the optional "=" padding).
B64TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"


@st.composite
def bearer_secret_candidates(draw: st.DrawFn) -> str:
    """Strings a config may hold as a bearer secret: valid tokens (with padding),
    tokens with one character no HTTP client sends as is (non-ASCII, a space, a
    quote, a control character, "=" before the end), too short ones, and any text."""
    token = draw(st.text(B64TOKEN_CHARS, min_size=1, max_size=40))
    token += "=" * draw(st.integers(0, 2))
    bad = draw(
        st.sampled_from(["ä", "é", "€", "\u00a0", " ", "\t", '"', ",", "\\", "\x00", "\x7f"])
        | st.characters(min_codepoint=0x80, exclude_categories=["Cs"])
        | st.just("=")
    )
    spot = draw(st.integers(0, len(token)))
    damaged = token[:spot] + bad + token[spot:]
    if bad == "=" and spot >= len(token.rstrip("=")):
        damaged = "=" + token  # padding in front is never valid
    return draw(st.sampled_from([token, damaged]) | st.text(max_size=40))


@attrs.frozen
class ConnectionEvent:
    """One step of a connection flood: ``open`` a new connection from client address
    ``index`` (modulo 3); ``start`` or ``end`` a request on the connection ``index``
    (modulo those open); ``close`` it; ``tick``: ``index`` tenths of a second pass
    (modulo 16)."""

    kind: str
    index: int


def connection_events() -> st.SearchStrategy[list[ConnectionEvent]]:
    kinds = st.sampled_from(["open", "open", "open", "start", "end", "close", "tick"])
    event = st.builds(ConnectionEvent, kinds, st.integers(0, 1000))
    return st.lists(event, max_size=80)


@attrs.frozen
class Overrun:
    """Requests whose decisions take ``durations`` seconds (each, in arrival order),
    sent together to a server with ``timeout``, ``in_flight`` places and ``threads``
    decision threads."""

    durations: tuple[float, ...]
    timeout: float
    in_flight: int
    threads: int


@st.composite
def decision_overruns(draw: st.DrawFn) -> Overrun:
    timeout = draw(st.sampled_from([0.05, 0.1, 0.2]))
    durations = draw(
        st.lists(
            st.sampled_from([0.0, 0.01, timeout / 2, timeout * 1.5, timeout * 3]),
            min_size=1,
            max_size=12,
        )
    )
    return Overrun(tuple(durations), timeout, draw(st.integers(1, 8)), draw(st.integers(1, 3)))


# ---------------------------------------------------------------------------------------
# Behaviour over weeks: several subjects in a few peer groups, refusals, corrections.
# ---------------------------------------------------------------------------------------

__all__ += ["BEHAVIOR_CONFIGS", "Step", "steps"]

from zerotrust import AccessRequest, BehaviorConfig, Decision, Effect, Risk  # noqa: E402

_WEEKS_START = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC).timestamp()


@attrs.frozen
class Step:
    """A request (its decision's effect recorded after it) or, when ``correction``,
    ``record_access`` of :attr:`delta` records at :attr:`at`."""

    t: float
    subject: str
    records: int
    resource: str = "c-1"
    effect: Effect = Effect.ALLOW
    department: str | None = "support"
    roles: tuple[str, ...] = ()
    correction: bool = False
    back: float = 0.0

    def request(self) -> AccessRequest:
        properties: dict[str, Any] = {"roles": list(self.roles)}
        if self.department is not None:
            properties["department"] = self.department
        return AccessRequest.from_mapping(
            {
                "subject": {"id": self.subject, "properties": properties},
                "action": {"name": "read"},
                "resource": {"type": "customer_record", "id": self.resource},
                "context": {"records": self.records},
            }
        )

    @property
    def delta(self) -> int:
        """A correction's records: -2 to 398 (taking back more than was read, too)."""
        return self.records - 2

    @property
    def at(self) -> datetime.datetime:
        """When a correction applies: ``back`` seconds before the step."""
        return datetime.datetime.fromtimestamp(self.t - self.back, datetime.UTC)

    def decision(self) -> Decision:
        when = datetime.datetime.fromtimestamp(self.t, datetime.UTC)
        return Decision(self.effect, (), Risk(), None, (), (), (), "test", "id", when)


_SUBJECTS = ("u-a", "u-b", "u-c", "u-d", "u-e")
_DEPARTMENTS = ("support", "sales", "a&b=c%")
_GAPS = (0.0, 30.0, 600.0, 3599.0, 3600.0, 4 * 3600.0, 43_200.0, 86_399.0, 86_400.0, 2 * 86_400.0)


@st.composite
def steps(draw: st.DrawFn, size: int = 80, days: float | None = None) -> list[Step]:
    """Several subjects in a few groups over weeks (``days``: the whole stream's span
    at most), random resources, refusals and corrections, some department moves."""
    gaps = list(_GAPS) + ([5 * 86_400.0, 9 * 86_400.0] if days is None else [])
    home = {s: draw(st.sampled_from(_DEPARTMENTS)) for s in _SUBJECTS}
    t = _WEEKS_START + draw(st.floats(0, 86_400))
    end = t + (days or 1e9) * 86_400
    out: list[Step] = []
    for _ in range(draw(st.integers(1, size))):
        t += draw(st.sampled_from(gaps))
        if t > end:
            break
        subject = draw(st.sampled_from(_SUBJECTS))
        department = draw(
            st.sampled_from([home[subject], home[subject], home[subject], None, "sales"])
        )
        out.append(
            Step(
                t=t,
                subject=subject,
                records=draw(st.sampled_from([0, 1, 3, 25, 400])),
                resource=draw(st.sampled_from([f"c-{i}" for i in range(8)])),
                effect=draw(st.sampled_from([Effect.ALLOW] * 3 + [Effect.DENY, Effect.STEP_UP])),
                department=department,
                roles=tuple(draw(st.lists(st.sampled_from(["agent", "lead"]), max_size=3))),
                correction=draw(st.integers(0, 9)) == 0,
                back=draw(st.sampled_from([0.0, 3600.0, 86_400.0, 3 * 86_400.0])),
            )
        )
    return out


BEHAVIOR_CONFIGS = st.builds(
    BehaviorConfig,
    peer_groups=st.just(("department", ("department", "roles"))),
    min_peers=st.sampled_from([2, 3]),
    peer_days=st.sampled_from([1, 3, 7, 28, 40]),
    peer_refresh=st.sampled_from([1.0, 3600.0, 86_400.0]),
)


# --- typed schemas, the conditions over them and conforming requests (type checker) ------

__all__ += [
    "TypedField",
    "TypedSchema",
    "conforming_properties",
    "typed_conditions",
    "typed_schemas",
]

#: Field names of generated schemas: no two within two edits of each other, so a
#: misspelling of one is never another.
TYPED_NAMES = ("alpha", "bravo", "charlie", "delta", "kilo", "oscar")
_SCALAR_KINDS = ("string", "integer", "number", "boolean", "strings", "integers", "map")


@attrs.frozen
class TypedField:
    """One field of a generated schema; ``children`` and ``closed`` for an object."""

    name: str
    kind: str
    required: bool
    children: tuple[TypedField, ...] = ()
    closed: bool = False

    def schema(self) -> dict[str, Any]:
        if self.kind == "object":
            return _object_schema(self.children, self.closed)
        if self.kind in ("strings", "integers"):
            items = "string" if self.kind == "strings" else "integer"
            return {"type": "array", "items": {"type": items}}
        if self.kind == "map":
            return {"type": "object", "additionalProperties": {"type": "integer"}}
        return {"type": self.kind}


def _object_schema(fields: tuple[TypedField, ...], closed: bool) -> dict[str, Any]:
    made: dict[str, Any] = {"type": "object", "properties": {f.name: f.schema() for f in fields}}
    required = [f.name for f in fields if f.required]
    if required:
        made["required"] = required
    if closed:
        made["additionalProperties"] = False
    return made


@attrs.frozen
class TypedSchema:
    """The generated schema of resource type ``doc``'s properties."""

    fields: tuple[TypedField, ...]
    closed: bool
    #: Where open: an undeclared key holds a string (else anything).
    strings: bool = False

    def top(self) -> dict[str, Any]:
        """The schema as a schema file's section holds it."""
        made = _object_schema(self.fields, self.closed)
        del made["type"]
        if self.strings and not self.closed:
            made["additionalProperties"] = {"type": "string"}
        return made

    def text(self) -> str:
        return yaml.safe_dump({"resources": {"doc": self.top()}}, sort_keys=False)

    def paths(
        self, prefix: str = "resource.properties"
    ) -> list[tuple[str, TypedField, tuple[str, ...]]]:
        """Every field as (path text, field, the optional paths on the way to it)."""
        found: list[tuple[str, TypedField, tuple[str, ...]]] = []

        def walk(prefix: str, fields: tuple[TypedField, ...], guards: tuple[str, ...]) -> None:
            for f in fields:
                text = f"{prefix}.{f.name}"
                needs = guards if f.required else (*guards, text)
                found.append((text, f, needs))
                if f.kind == "object":
                    walk(text, f.children, needs)

        walk(prefix, self.fields, ())
        return found


@st.composite
def _typed_fields(draw: st.DrawFn, depth: int) -> tuple[TypedField, ...]:
    names = draw(st.lists(st.sampled_from(TYPED_NAMES), min_size=1, max_size=4, unique=True))
    kinds = _SCALAR_KINDS + (("object",) if depth < 2 else ())
    fields = []
    for name in names:
        kind = draw(st.sampled_from(kinds))
        children = draw(_typed_fields(depth + 1)) if kind == "object" else ()
        fields.append(TypedField(name, kind, draw(st.booleans()), children, draw(st.booleans())))
    return tuple(fields)


def typed_schemas() -> st.SearchStrategy[TypedSchema]:
    return st.builds(TypedSchema, _typed_fields(0), st.booleans(), st.booleans())


_SHORT_TEXT = st.text(alphabet="ab", max_size=2)


def _value(field: TypedField) -> st.SearchStrategy[Any]:
    kind = field.kind
    if kind == "string":
        return _SHORT_TEXT
    if kind == "integer":
        return st.integers(-3, 3)
    if kind == "number":
        return st.one_of(st.integers(-3, 3), st.floats(-3, 3, allow_nan=False))
    if kind == "boolean":
        return st.booleans()
    if kind == "strings":
        return st.lists(_SHORT_TEXT, max_size=3)
    if kind == "integers":
        return st.lists(st.integers(-3, 3), max_size=3)
    if kind == "map":
        return st.dictionaries(_SHORT_TEXT, st.integers(-3, 3), max_size=3)
    return _object_value(field.children, field.closed)


@st.composite
def _object_value(
    draw: st.DrawFn,
    fields: tuple[TypedField, ...],
    closed: bool,
    top: bool = False,
    strings: bool = False,
) -> dict[str, Any]:
    made = {}
    for f in fields:
        if f.required or draw(st.booleans()):
            made[f.name] = draw(_value(f))
    if top and not closed and not strings and draw(st.booleans()):
        # An undeclared key of an open object, named nothing a condition reads: its value
        # is not known (dyn), so a macro over a nested object's keys would read it unchecked.
        made["extra"] = draw(st.one_of(st.integers(), _SHORT_TEXT, st.none()))
    if top and strings and not closed:
        # A string under a name another type's schema may declare (as an integer...):
        # where several types are seen, this one's may hold it.
        for name in sorted(set(TYPED_NAMES) - {f.name for f in fields}):
            if draw(st.booleans()):
                made[name] = draw(_SHORT_TEXT)
    return made


def conforming_properties(schema: TypedSchema) -> st.SearchStrategy[dict[str, Any]]:
    return _object_value(schema.fields, schema.closed, top=True, strings=schema.strings)


_LITERALS = (
    "1",
    "0",
    "2",
    "1.5",
    "'a'",
    '"b"',
    "true",
    "1u",
    "null",
    "[1, 2]",
    "['a']",
    "{'a': 1}",
)
_ATOMS = (
    "{p} == {l}",
    "{p} != {l}",
    "{p} < {l}",
    "{p} >= {l}",
    "{p} + {l} == {m}",
    "{p} - {l} > {m}",
    "{p} * {l} < {m}",
    "size({p}) > 0",
    "{p}.size() == 1",
    "{l} in {p}",
    "{p} in {m}",
    "{p}.startsWith({l})",
    "{p}.contains({l})",
    "{p}.exists(x, x == {l})",
    "{p}.all(x, x > {l})",
    "{p}.exists(x, x + {l} > {m})",
    "{p}.exists(k, {p}[k] > {l})",
    "!{p}",
    "{p}",
    "double({p}) > {l}",
    "has({p}.alpha) && {p}.alpha == {l}",
    "{p}[{l}] == {m}",
    "-{p} < {l}",
    "({p} ? {l} : {m}) == {l}",
    "in_group({p}, {l})",
    "in_group({l}, {p})",
    "int.size() == {l}",
    "string.startsWith({p})",
    "{p}.size() == {p}[{l}]",
)


@st.composite
def _atom(draw: st.DrawFn, schema: TypedSchema, prefix: str) -> str:
    paths = schema.paths(prefix)
    text, _, guards = draw(st.sampled_from(paths))
    atom = draw(st.sampled_from(_ATOMS)).format(
        p=text, l=draw(st.sampled_from(_LITERALS)), m=draw(st.sampled_from(_LITERALS))
    )
    how = draw(st.sampled_from(("guarded", "negated", "bare", "every step")))
    if how == "every step":  # as where the field is declared by only some types
        steps = text.removeprefix(prefix + ".").split(".")
        guards = tuple(".".join([prefix, *steps[: i + 1]]) for i in range(len(steps)))
        how = "guarded"
    if how == "bare" or not guards:
        return atom
    if how == "guarded":
        tests = [f"has({g})" for g in guards]
        if draw(st.booleans()):  # ('k' in m guards m.k as has(m.k) does)
            tests = [f"{g.rpartition('.')[2]!r} in {g.rpartition('.')[0]}" for g in guards]
        return "(" + " && ".join([*tests, atom]) + ")"
    return "(" + " || ".join([*(f"!has({g})" for g in guards), atom]) + ")"


def typed_conditions(
    schema: TypedSchema, prefix: str = "resource.properties"
) -> st.SearchStrategy[str]:
    """Conditions over ``schema``'s paths: many well typed, many not."""
    return st.recursive(
        _atom(schema, prefix),
        lambda sub: st.one_of(
            st.tuples(sub, sub).map(lambda t: f"({t[0]} && {t[1]})"),
            st.tuples(sub, sub).map(lambda t: f"({t[0]} || {t[1]})"),
            sub.map(lambda e: f"!({e})"),
            st.tuples(sub, sub, sub).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        ),
        max_leaves=4,
    )
