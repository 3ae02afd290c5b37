"""BehaviorConfig and StepUp: every value is checked where it enters, at construction.

What reaches a ``WWW-Authenticate`` challenge (acr values, max_age), a Redis script
argument, an EXPIRE or a socket timeout is refused with a typed error naming the field,
never carried along to be mangled or to fail every request later.
"""

from __future__ import annotations

import datetime
import math
import re
import socket
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import CONFIG_FIELDS, acr_values, config_changes

from zerotrust import (
    AccessRequest,
    BehaviorConfig,
    BehaviorConfigError,
    Effect,
    MemoryBehaviorStore,
    PolicyDecisionPoint,
    RedisBehaviorStore,
    StepUp,
    StepUpError,
    StoreErrorMode,
    ZeroTrustError,
)
from zerotrust.web.challenges import parse_challenges, step_up_challenge

NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)
LIMIT = 2**31 - 1
NQCHAR_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,255}")
REQUEST = {
    "subject": {"id": "u-1"},
    "action": {"name": "read"},
    "resource": {"type": "customer_record", "id": "c-1"},
}
ALLOW = "policy: p\nrules: [{id: ok, effect: allow}]\n"


def _refused(**fields: Any) -> str:
    with pytest.raises(BehaviorConfigError) as info:
        BehaviorConfig(**fields)
    assert isinstance(info.value, ZeroTrustError) and isinstance(info.value, ValueError)
    return str(info.value)


def _unreachable_store(config: BehaviorConfig) -> RedisBehaviorStore:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused
    return RedisBehaviorStore.from_url(f"redis://127.0.0.1:{port}/0", config)


# --- the reported inputs -------------------------------------------------------------------


def test_store_error_acr_value_with_a_space_is_refused_not_sent_as_another_value() -> None:
    """Before: accepted, and the challenge asked for ``urn:example:loa2``."""
    message = _refused(store_error_acr_values=["urn:example:loa 2"])
    assert message.startswith("BehaviorConfig.store_error_acr_values entry 'urn:example:loa 2'")
    assert "RFC 6749 NQCHAR" in message


def test_store_error_acr_values_given_as_one_string_are_refused_not_split() -> None:
    """Before: the string became 16 one-character acr values."""
    message = _refused(store_error_acr_values="urn:example:loa2")
    assert "store_error_acr_values must be a list of acr values" in message


def test_store_error_acr_value_with_a_quote_cannot_break_out_of_the_challenge() -> None:
    """Before: ``a"b`` was sent as ``ab``."""
    assert "entry 'a\"b' must be one token" in _refused(store_error_acr_values=['a"b'])


@pytest.mark.parametrize("max_age", [-5, 2**40, "300", 300.7, True, math.nan, [300]])
def test_store_error_max_age_a_client_cannot_read_is_refused(max_age: Any) -> None:
    """Before: -5 was sent as "0", 2**40 as itself, "300" / 300.7 / True passed."""
    message = _refused(store_error_max_age=max_age)
    assert message.startswith("BehaviorConfig.store_error_max_age must be a whole number")
    assert f"from 0 to {LIMIT} or None" in message


def test_the_store_error_step_up_reaches_the_challenge_exactly() -> None:
    config = BehaviorConfig(
        on_store_error=StoreErrorMode.STEP_UP,
        store_error_acr_values=["urn:example:loa2", "phr", "phr"],
        store_error_max_age=300,
    )
    pdp = PolicyDecisionPoint.from_texts(
        {"p.yaml": ALLOW}, clock=lambda: NOW, behavior=_unreachable_store(config)
    )
    decision = pdp.evaluate(REQUEST)
    assert decision.effect is Effect.STEP_UP and decision.step_up is not None
    (challenge,) = parse_challenges(step_up_challenge(decision.step_up))
    assert challenge.params["acr_values"] == "urn:example:loa2 phr"
    assert challenge.params["max_age"] == "300"


# --- every other field ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "wanted"),
    [
        ("minute_window", 0, "whole number of seconds from 1"),
        ("minute_window", 60.0, "whole number of seconds from 1"),
        ("hour_window", True, "whole number of seconds from 1"),
        ("day_window", "86400", "whole number of seconds from 1"),
        ("seen_lookback", 2**31, f"to {LIMIT}"),
        ("baseline_lookback", LIMIT, f"at most {LIMIT} s"),
        ("buckets", 59, "at least 60"),
        ("max_subjects", 2**63, f"whole number from 1 to {LIMIT}"),
        ("max_resources", -1, "whole number from 1"),
        ("max_seen", None, "whole number from 1"),
        ("ttl", True, "whole number of seconds"),
        ("ttl", "forever", "whole number of seconds"),
        ("ttl", 60, "at least the longest lookback"),
        ("on_store_error", "DENY", "one of deny, step_up, evaluate"),
        ("on_store_error", ["deny"], "one of deny, step_up, evaluate"),
        ("connect_timeout", math.inf, "number of seconds above 0"),
        ("timeout", math.nan, "number of seconds above 0"),
        ("timeout", 0, "number of seconds above 0"),
        ("breaker_reset", 1e300, f"at most {LIMIT}"),
        ("breaker_reset", "2", "number of seconds above 0"),
        ("breaker_failures", 1.5, "whole number from 1"),
        ("key_prefix", "", "non-empty string without braces"),
        ("key_prefix", "zt}", "non-empty string without braces"),
        ("key_prefix", b"zt", "non-empty string without braces"),
        ("defer_outcomes", 1, "True or False"),
        ("defer_outcomes", "yes", "True or False"),
    ],
)
def test_every_field_refuses_a_value_of_the_wrong_type_or_range(
    field: str, value: Any, wanted: str
) -> None:
    message = _refused(**{field: value})
    assert message.startswith(f"BehaviorConfig.{field}") and wanted in message


def test_a_str_subclass_that_lies_about_equality_is_not_a_mode_or_prefix() -> None:
    class Liar(str):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = str.__hash__

    assert "on_store_error" in _refused(on_store_error=Liar("deny"))
    assert "key_prefix" in _refused(key_prefix=Liar("zt"))
    assert "store_error_acr_values" in _refused(store_error_acr_values=[Liar("mfa")])


def test_messages_name_a_hostile_value_by_its_kind_without_calling_it() -> None:
    class Loud:
        def __repr__(self) -> str:
            raise AssertionError("repr called")

    assert _refused(timeout=Loud()).endswith("not a Loud")


def test_evolve_checks_again_and_rebuilds_the_step_up() -> None:
    config = BehaviorConfig(store_error_acr_values=("mfa",))
    assert attrs.evolve(config, store_error_max_age=60).store_error_step_up == StepUp(("mfa",), 60)
    with pytest.raises(BehaviorConfigError):
        attrs.evolve(config, store_error_max_age=-1)


# --- StepUp itself ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "wanted"),
    [
        ({"acr_values": ("urn:example:loa 2",)}, "StepUp.acr_values entry"),
        ({"acr_values": "mfa"}, "StepUp.acr_values must be a list"),
        ({"acr_values": ("",)}, "StepUp.acr_values entry ''"),
        ({"acr_values": ("x" * 256,)}, "1 to 255 characters"),
        ({"acr_values": (1,)}, "StepUp.acr_values entry a number"),
        ({"max_age": -5}, "StepUp.max_age must be"),
        ({"max_age": True}, "StepUp.max_age must be"),
        ({"max_age": 2**31}, "StepUp.max_age must be"),
    ],
)
def test_a_step_up_a_challenge_cannot_carry_cannot_be_built(
    fields: dict[str, Any], wanted: str
) -> None:
    """Whoever builds one (a custom behaviour source, an integration): nothing
    malformed reaches ``WWW-Authenticate`` or an AuthZEN reply."""
    with pytest.raises(StepUpError, match=re.escape(wanted)):
        StepUp(**fields)


# --- the families --------------------------------------------------------------------------

CHEAP = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_MODES = {m.value for m in StoreErrorMode}


def _field_ok(kind: str, value: Any) -> bool:
    """Each field's rule, restated from the documentation."""
    exact_int = type(value) is int
    if kind in ("seconds", "count"):
        return exact_int and 1 <= value <= LIMIT
    if kind == "ttl":
        return value is None or (exact_int and 1 <= value <= LIMIT)
    if kind == "mode":
        return type(value) is StoreErrorMode or (type(value) is str and value in _MODES)
    if kind == "acr":
        return type(value) in (list, tuple) and all(
            type(v) is str and NQCHAR_TOKEN.fullmatch(v) for v in value
        )
    if kind == "max_age":
        return value is None or (exact_int and 0 <= value <= LIMIT)
    if kind == "duration":
        return type(value) in (int, float) and math.isfinite(value) and 0 < value <= LIMIT
    if kind == "prefix":
        return type(value) is str and value != "" and not {"{", "}"} & set(value)
    assert kind == "flag"
    return type(value) is bool


def _valid(changes: dict[str, Any]) -> bool:
    if not all(_field_ok(CONFIG_FIELDS[name], value) for name, value in changes.items()):
        return False
    f = {field.name: field.default for field in attrs.fields(BehaviorConfig) if field.init}
    f.update(changes)
    windows = (f["minute_window"], f["hour_window"], f["day_window"])
    if f["buckets"] < 60 or any(w % f["buckets"] for w in windows):
        return False
    longest = max(f["day_window"], f["seen_lookback"], f["baseline_lookback"] + 3600)
    ttl = f["ttl"] if f["ttl"] is not None else longest
    return longest <= ttl <= LIMIT


@CHEAP
@given(config_changes())
def test_a_config_is_built_exactly_when_every_field_is_in_range(changes: dict[str, Any]) -> None:
    """Fields drawn from every kind of value (in and out of range, wrong types, bools
    for numbers, strings for lists, lying subclasses): built exactly when valid, else
    a BehaviorConfigError naming a field; and what is built serves a request."""
    if not _valid(changes):
        message = _refused(**changes)
        named = message.removeprefix("BehaviorConfig.").split(" ")[0]
        assert named in CONFIG_FIELDS, message
        return
    config = BehaviorConfig(**changes)
    for name, value in changes.items():
        if CONFIG_FIELDS[name] == "acr":
            assert config.store_error_acr_values == tuple(dict.fromkeys(value))
        elif CONFIG_FIELDS[name] == "mode":
            assert config.on_store_error is StoreErrorMode(value)
        else:
            assert getattr(config, name) == value and type(getattr(config, name)) is type(value)
    step_up = config.store_error_step_up
    assert step_up == StepUp(config.store_error_acr_values, config.store_error_max_age)
    features = MemoryBehaviorStore(config).features(AccessRequest.from_mapping(REQUEST), NOW)
    assert features["requests_1m"] == 1


@CHEAP
@given(
    st.lists(acr_values, max_size=4).map(tuple) | acr_values,
    st.sampled_from([None, 0, 300, LIMIT, LIMIT + 1, -1, 300.0, True, "300"]),
)
def test_a_store_error_step_up_is_built_only_when_the_challenge_carries_it_exactly(
    values: Any, max_age: Any
) -> None:
    """The same rule as a policy's ``step_up`` (tests/test_properties.py): what is
    accepted reaches the RFC 9470 challenge unchanged, in order, without duplicates."""
    try:
        config = BehaviorConfig(store_error_acr_values=values, store_error_max_age=max_age)
    except BehaviorConfigError as exc:
        assert not (_field_ok("acr", values) and _field_ok("max_age", max_age)), str(exc)
        return
    assert _field_ok("acr", values) and _field_ok("max_age", max_age)
    step_up = MemoryBehaviorStore(config).store_error_step_up
    wanted = tuple(dict.fromkeys(values))
    assert step_up.acr_values == wanted
    (challenge,) = parse_challenges(step_up_challenge(step_up))
    assert challenge.params.get("acr_values", "").split(" ") == list(wanted or [""])
    assert challenge.params.get("max_age") == (None if max_age is None else str(max_age))
