"""apply_obligations: mask, tokenize, limit on JSON-shaped data; fail closed otherwise."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import (
    OBLIGATION_PARAMS,
    OBLIGATION_WRONG_VALUES,
    json_values,
    obligation_payloads,
    obligation_specs,
)

from zerotrust import Obligation, PolicyDecisionPoint, PolicyError
from zerotrust.web import (
    AccessDenied,
    ObligationError,
    ObligationPlan,
    Tokenizer,
    apply_obligations,
    require,
)
from zerotrust.web.errors import WebConfigError

TOKENIZER = Tokenizer({"k2": b"2" * 32, "k1": b"1" * 32}, current="k2")


def ob(kind: str, **params: Any) -> Obligation:
    return Obligation(kind, params, rule="p/r")


def test_mask_replaces_fields_at_any_depth_without_mutating_input() -> None:
    payload = {"card_number": "4111", "nested": [{"card_number": 4111, "name": "x"}], "n": None}
    before = copy.deepcopy(payload)
    out = apply_obligations(payload, [ob("mask", fields=["card_number", "n"])])
    assert out == {
        "card_number": "****",
        "nested": [{"card_number": "****", "name": "x"}],
        "n": None,
    }
    assert payload == before


def test_mask_keep_last_keeps_only_the_tail_and_never_a_short_value() -> None:
    out = apply_obligations(
        {"card": "4111111111111111", "short": "123", "num": 4111111111111111},
        [ob("mask", fields=["card", "short", "num"], keep_last=4)],
    )
    assert out == {"card": "************1111", "short": "****", "num": "************1111"}


def test_mask_replaces_objects_and_arrays_whole() -> None:
    out = apply_obligations(
        {"ssn": {"value": "123"}, "x": [{"ssn": ["1", "2"]}]},
        [ob("mask", fields="ssn", replacement="[hidden]")],
    )
    assert out == {"ssn": "[hidden]", "x": [{"ssn": "[hidden]"}]}


def test_tokenize_is_stable_per_key_and_carries_the_key_id() -> None:
    out = apply_obligations(
        [{"email": "a@example.com"}, {"email": "a@example.com"}, {"email": "b@example.com"}],
        [ob("tokenize", fields=["email"])],
        tokenizer=TOKENIZER,
    )
    tokens = [r["email"] for r in out]
    assert tokens[0] == tokens[1] != tokens[2]
    assert tokens[0].startswith("tok_k2_") and len(tokens[0]) == len("tok_k2_") + 32
    assert TOKENIZER.matches(tokens[0], "a@example.com")
    assert not TOKENIZER.matches(tokens[0], "b@example.com")


def test_rotation_new_key_new_tokens_old_tokens_still_recognised() -> None:
    old = Tokenizer({"k1": b"1" * 32}, current="k1")
    old_token = old.token("a@example.com")
    assert TOKENIZER.token("a@example.com") != old_token
    assert TOKENIZER.matches(old_token, "a@example.com")
    assert not Tokenizer({"k2": b"2" * 32}, current="k2").matches(old_token, "a@example.com")


def test_tokenize_distinguishes_types() -> None:
    assert TOKENIZER.token("1") != TOKENIZER.token(1)


def test_tokenizer_refuses_short_keys_and_bad_ids() -> None:
    with pytest.raises(WebConfigError):
        Tokenizer({"k1": b"short"}, current="k1")
    with pytest.raises(WebConfigError):
        Tokenizer({"k_1": b"x" * 32}, current="k_1")
    with pytest.raises(WebConfigError):
        Tokenizer({"k1": b"x" * 32}, current="k2")


def test_tokenizer_from_env() -> None:
    env = {"KEYS": "new:" + "A" * 43 + ",old:" + "B" * 43}
    tok = Tokenizer.from_env("KEYS", environ=env)
    assert tok.current == "new" and set(tok.keys) == {"new", "old"}
    with pytest.raises(WebConfigError):
        Tokenizer.from_env("MISSING", environ={})
    with pytest.raises(WebConfigError):
        Tokenizer.from_env("KEYS", environ={"KEYS": "nocolon"})


def test_limit_truncates_lists_and_enveloped_lists() -> None:
    assert apply_obligations([1, 2, 3], [ob("limit", max=2)]) == [1, 2]
    assert apply_obligations({"items": [1, 2, 3], "n": 3}, [ob("limit", max=1, field="items")]) == {
        "items": [1],
        "n": 3,
    }


@pytest.mark.parametrize(
    ("payload", "obligation"),
    [
        ({"results": list(range(10))}, ob("limit", max=2)),
        ({"one": "record"}, ob("limit", max=1)),
        ({"data": {"items": list(range(10))}}, ob("limit", max=2, field="items")),
        ({"total": 10}, ob("limit", max=2, field="items")),
        ({"items": None}, ob("limit", max=2, field="items")),
        ({"items": {"a": 1}}, ob("limit", max=2, field="items")),
        ([{"items": list(range(10))}], ob("limit", max=2, field="items")),
        (None, ob("limit", max=2)),
        ("10 records", ob("limit", max=2)),
    ],
    ids=[
        "list-under-another-key",
        "one-object",
        "list-nested-deeper",
        "no-items",
        "items-null",
        "items-an-object",
        "list-of-envelopes",
        "null",
        "string",
    ],
)
def test_limit_that_finds_no_list_to_cut_is_refused_not_released_unlimited(
    payload: Any, obligation: Obligation
) -> None:
    with pytest.raises(ObligationError, match="limit cannot apply"):
        apply_obligations(payload, [obligation])


def test_mask_of_absent_fields_and_of_lists_of_records() -> None:
    # nothing to hide where the key is not; records in lists are masked like any object
    assert apply_obligations({"a": 1}, [ob("mask", fields=["card"])]) == {"a": 1}
    assert apply_obligations(
        {"rows": [{"card": "4111"}, {"card": "5500", "x": [{"card": 1}]}]},
        [ob("mask", fields=["card"])],
    ) == {"rows": [{"card": "****"}, {"card": "****", "x": [{"card": "****"}]}]}


@pytest.mark.parametrize(
    "obligation",
    [
        ob("watermark", text="x"),
        ob("mask"),
        ob("mask", fields=[]),
        ob("mask", fields=["a"], keep_last=-1),
        ob("mask", fields=["a"], keep_last=True),
        ob("mask", fields=["a"], unknown=1),
        ob("limit", max=0),
        ob("limit", max="10"),
        ob("limit", max=1, field=""),
        ob("limit", max_rows=50),
        ob("limit", max=2**31),
        ob("limit", max=2, field="data.items"),
        ob("mask", fields=[{"a": 1}]),
        ob("mask", fields=["customer.card"]),
        ob("mask", fields=["a"], replacement=None),
        ob("tokenize", fields=["a"]),  # no tokenizer given
    ],
)
def test_unknown_or_malformed_obligations_fail_closed(obligation: Obligation) -> None:
    with pytest.raises(ObligationError):
        apply_obligations({"a": "secret"}, [obligation])


def test_handled_types_are_left_to_the_caller() -> None:
    plan = ObligationPlan.compile([ob("watermark"), ob("limit", max=1)], handled={"watermark"})
    assert plan.types == ("limit",)
    assert plan.apply([1, 2]) == [1]


def test_apply_takes_a_decision() -> None:
    pdp = PolicyDecisionPoint.from_texts(
        {
            "p.yaml": "policy: p\ntarget: {resources: [doc], actions: [read]}\nrules:\n"
            "  - id: allow\n    effect: allow\n    obligations: [{type: mask, fields: [ssn]}]\n"
        }
    )
    decision = pdp.evaluate(
        {"subject": {"id": "u"}, "action": {"name": "read"}, "resource": {"type": "doc"}}
    )
    assert apply_obligations({"ssn": "1"}, decision) == {"ssn": "****"}


# --- properties -----------------------------------------------------------------------

FIELDS = ("card_number", "ssn")
SECRETS = st.integers(0, 2**40).map(lambda n: f"SECRET{n:010x}")


@st.composite
def payload_with_secrets(draw: st.DrawFn) -> Any:
    """Arbitrary JSON in which masked fields hold distinctive secrets, at any depth."""
    secret_record = st.fixed_dictionaries(
        {},
        optional={
            "card_number": SECRETS,
            "ssn": SECRETS | st.lists(SECRETS, max_size=3) | st.dictionaries(st.text(), SECRETS),
            "other": st.text(max_size=4),
        },
    )
    leaf = json_values(3) | secret_record
    return draw(
        st.recursive(
            leaf,
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(st.text(max_size=6), children, max_size=4)
            ),
            max_leaves=10,
        )
    )


def _secrets_in(value: Any, under_field: bool = False) -> list[str]:
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _secrets_in(v, under_field or k in FIELDS)
    elif isinstance(value, list):
        for v in value:
            out += _secrets_in(v, under_field)
    elif under_field and value is not None and not isinstance(value, bool):
        out.append(str(value))
    return out


OBLIGATIONS = st.lists(
    st.sampled_from(
        [
            ob("mask", fields=list(FIELDS)),
            ob("mask", fields=list(FIELDS), keep_last=4),
            ob("tokenize", fields=["email", "other"]),
            ob("limit", max=2),
        ]
    ),
    max_size=3,
)


@settings(max_examples=150, deadline=None)
@given(payload=json_values(20), obligations=OBLIGATIONS)
def test_property_arbitrary_json_is_released_as_json_or_withheld_by_limit(
    payload: Any, obligations: list[Any]
) -> None:
    limited = any(o.type == "limit" for o in obligations)
    if limited and not isinstance(payload, list):
        with pytest.raises(ObligationError, match="limit cannot apply"):
            apply_obligations(payload, obligations, tokenizer=TOKENIZER)
        return
    out = apply_obligations(payload, obligations, tokenizer=TOKENIZER)
    json.dumps(out)  # still JSON
    if limited:
        assert out == [] if not payload else len(out) == min(len(payload), 2)


@settings(max_examples=100, deadline=None)
@given(payload=payload_with_secrets(), keep_last=st.sampled_from([None, 0, 4]))
def test_property_masked_values_appear_nowhere_in_the_output(
    payload: Any, keep_last: int | None
) -> None:
    params: dict[str, Any] = {"fields": list(FIELDS)}
    if keep_last is not None:
        params["keep_last"] = keep_last
    secrets = _secrets_in(payload)
    out = json.dumps(apply_obligations(payload, [Obligation("mask", params)]))
    for secret in secrets:
        assert secret not in out


class Card:
    """Not JSON-shaped: obligations cannot look inside it."""

    def __init__(self) -> None:
        self.card_number = "4111111111111111"


@pytest.mark.parametrize(
    "payload",
    [
        Card(),
        {"customer": Card()},
        [{"ok": 1}, Card()],
        (c for c in ["4111111111111111"]),
        {"records": {"4111111111111111"}},
    ],
    ids=["object", "nested-object", "object-in-list", "generator", "set"],
)
def test_mask_on_a_value_it_cannot_see_into_is_refused_not_returned(payload: Any) -> None:
    with pytest.raises(ObligationError, match="cannot be applied"):
        apply_obligations(payload, [ob("mask", fields=["card_number"])])


def test_limit_on_records_it_cannot_count_is_refused_not_returned() -> None:
    with pytest.raises(ObligationError, match="generator"):
        apply_obligations((r for r in range(5)), [ob("limit", max=1)])
    with pytest.raises(ObligationError, match="set"):
        apply_obligations({"records": {1, 2, 3}}, [ob("limit", max=1, field="records")])


# --- built-in obligations are checked where policies load --------------------------------


def _policy(obligation: Mapping[str, Any], *, declared: tuple[str, ...] = ()) -> str:
    document: dict[str, Any] = {
        "policy": "p",
        "obligation_types": list(declared),
        "target": {"resources": ["doc"], "actions": ["read"]},
        "rules": [{"id": "allow", "effect": "allow", "obligations": [dict(obligation)]}],
    }
    # JSON is YAML too, with every string quoted: a wrong value reaches the obligation check
    # as the string it is (a plain 1e3 is refused earlier, by the YAML reader).
    return json.dumps(document)


@pytest.mark.parametrize(
    ("obligation", "message"),
    [
        ("{type: mask, fields: [{a: 1}]}", "each entry of 'fields' must be a non-empty string"),
        ("{type: mask, fields: [card], keep_last: -1}", "'keep_last' must be a whole number"),
        ("{type: limit, max_rows: 50}", "unknown parameter 'max_rows'"),
        ("{type: limit, max_rows: 50}", "'max' is required"),
        ("{type: limit, max: '1e3'}", "'max' must be a whole number"),
        ("{type: mask, fields: [customer.card_number]}", "never a path"),
        ("{type: tokenize, fields: []}", "not an empty list"),
    ],
)
def test_malformed_builtin_obligation_is_a_policy_error_at_load_not_a_403_later(
    obligation: str, message: str
) -> None:
    text = f"policy: p\nrules:\n  - id: a\n    effect: allow\n    obligations: [{obligation}]\n"
    with pytest.raises(PolicyError) as caught:
        PolicyDecisionPoint.from_texts({"p.yaml": text})
    (diagnostic,) = [d for d in caught.value.diagnostics if message in d.message]
    assert diagnostic.file == "p.yaml" and diagnostic.line == 5 and diagnostic.column > 18
    assert diagnostic.message.startswith(f"obligation {obligation.split()[1].rstrip(',')}:")


RIGHT = {"mask": {"fields": ["card"]}, "tokenize": {"fields": ["card"]}, "limit": {"max": 2}}


@pytest.mark.parametrize(
    ("kind", "name", "value"),
    [
        (kind, name, value)
        for kind, names in OBLIGATION_PARAMS.items()
        for name in names
        for value in OBLIGATION_WRONG_VALUES[name]
    ],
)
def test_every_wrong_builtin_parameter_is_refused_at_load_and_by_the_pep(
    kind: str, name: str, value: Any
) -> None:
    spec = {"type": kind, **RIGHT[kind], name: value}
    with pytest.raises(PolicyError) as caught:
        PolicyDecisionPoint.from_texts({"p.yaml": _policy(spec)})
    assert any(
        d.message.startswith(f"obligation {kind}: ") and repr(name) in d.message
        for d in caught.value.diagnostics
    )
    with pytest.raises(ObligationError, match=f"^{kind}: "):
        ObligationPlan.compile(
            [Obligation(kind, {**RIGHT[kind], name: value})], tokenizer=TOKENIZER
        )


def test_application_obligation_types_still_load_and_are_refused_unless_handled() -> None:
    pdp = PolicyDecisionPoint.from_texts(
        {
            "p.yaml": _policy(
                {"type": "watermark", "text": "confidential", "max_rows": 50},
                declared=("watermark",),
            )
        }
    )
    decision = pdp.evaluate(
        {"subject": {"id": "u"}, "action": {"name": "read"}, "resource": {"type": "doc"}}
    )
    with pytest.raises(ObligationError, match="unsupported obligation type 'watermark'"):
        ObligationPlan.compile(decision.obligations)
    assert not ObligationPlan.compile(decision.obligations, handled={"watermark"})


def _valid_fields(value: Any) -> bool:
    names = [value] if type(value) is str else value
    return (
        type(names) is list
        and bool(names)
        and all(type(n) is str and n and "." not in n for n in names)
    )


def _valid_count(value: Any, minimum: int) -> bool:
    return type(value) is int and minimum <= value <= 2**31 - 1


def _valid(spec: Mapping[str, Any]) -> bool:
    """The grammar, written out independently of zerotrust.obligations."""
    params = {k: v for k, v in spec.items() if k != "type"}
    if spec["type"] == "limit":
        return (
            set(params) <= {"max", "field"}
            and _valid_count(params.get("max"), 1)
            and ("field" not in params or type(params["field"]) is str)
            and ("field" not in params or _valid_fields(params["field"]))
        )
    allowed = {"fields", "keep_last", "replacement"} if spec["type"] == "mask" else {"fields"}
    return (
        set(params) <= allowed
        and _valid_fields(params.get("fields"))
        and ("keep_last" not in params or _valid_count(params["keep_last"], 0))
        and ("replacement" not in params or type(params["replacement"]) is str)
    )


def _rewritten(value: Any, fields: set[str], change: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: change(v) if k in fields else _rewritten(v, fields, change) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rewritten(v, fields, change) for v in value]
    return value


def _masked(value: Any, keep: int, replacement: str) -> Any:
    if value is None:
        return None
    text = str(value) if type(value) in (int, str) else None
    if keep and text is not None and len(text) > keep:
        return "*" * (len(text) - keep) + text[-keep:]
    return replacement


def _expected(spec: Mapping[str, Any], payload: Any) -> Any:
    """What the PEP must release, or ``WITHHELD``: an oracle over plain data."""
    kind = spec["type"]
    if kind == "limit":
        most, field = spec["max"], spec.get("field")
        if field is None:
            return payload[:most] if isinstance(payload, list) else WITHHELD
        if isinstance(payload, dict) and isinstance(payload.get(field), list):
            return {**payload, field: payload[field][:most]}
        return WITHHELD
    fields = {spec["fields"]} if isinstance(spec["fields"], str) else set(spec["fields"])
    if kind == "tokenize":
        return _rewritten(payload, fields, lambda v: None if v is None else TOKENIZER.token(v))
    keep, replacement = spec.get("keep_last", 0), spec.get("replacement", "****")
    return _rewritten(payload, fields, lambda v: _masked(v, keep, replacement))


WITHHELD = object()


@settings(max_examples=250, deadline=None)
@given(spec=obligation_specs(), payload=obligation_payloads())
def test_property_builtin_obligation_is_refused_at_load_or_carried_out_exactly(
    spec: dict[str, Any], payload: Any
) -> None:
    try:
        pdp = PolicyDecisionPoint.from_texts({"p.yaml": _policy(spec)})
    except PolicyError as exc:
        assert not _valid(spec), exc
        ours = f"obligation {spec['type']}:"
        assert all(
            d.message.startswith(ours) or "64-bit range" in d.message  # the loader's limit
            for d in exc.diagnostics
        )
        return
    assert _valid(spec), spec

    @require(pdp, action="read", resource={"type": "doc"}, subject={"id": "u"}, tokenizer=TOKENIZER)
    def read(data: Any) -> Any:
        return copy.deepcopy(data)

    shaped = []
    if spec["type"] == "limit":  # also the shape the limit names, so that it always cuts
        records = payload if isinstance(payload, list) else [payload] * 9
        shaped = [records if "field" not in spec else {spec["field"]: records, "n": 1}]
    for data in [payload, *shaped]:
        expected = _expected(spec, data)
        if expected is WITHHELD:  # the data has no list where the limit says: never released
            with pytest.raises(AccessDenied, match="result withheld: limit cannot apply"):
                read(data)
        else:  # never a refusal for an obligation that loaded
            assert read(data) == expected
