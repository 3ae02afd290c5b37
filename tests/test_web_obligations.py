"""apply_obligations: mask, tokenize, limit on JSON-shaped data; fail closed otherwise."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import json_values

from zerotrust import Obligation, PolicyDecisionPoint
from zerotrust.web import ObligationError, ObligationPlan, Tokenizer, apply_obligations
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
    assert apply_obligations({"one": "record"}, [ob("limit", max=1)]) == {"one": "record"}


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
def test_property_never_raises_on_arbitrary_json(payload: Any, obligations: list[Any]) -> None:
    out = apply_obligations(payload, obligations, tokenizer=TOKENIZER)
    json.dumps(out)  # still JSON


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
    # JSON-shaped values keep their meaning: one record, or a list to cut
    assert apply_obligations({"a": 1}, [ob("limit", max=1)]) == {"a": 1}
    assert apply_obligations({"records": None}, [ob("limit", max=1, field="records")]) == {
        "records": None
    }
