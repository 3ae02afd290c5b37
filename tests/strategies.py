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
