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
