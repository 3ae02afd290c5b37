from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zerotrust import AccessRequest, RequestError


def minimal(**extra: object) -> dict[str, object]:
    base: dict[str, object] = {
        "subject": {"id": "u-1"},
        "action": {"name": "read"},
        "resource": {"type": "doc"},
    }
    base.update(extra)
    return base


def test_defaults_are_filled() -> None:
    req = AccessRequest.from_mapping(minimal())
    assert req.subject.type == "user"
    assert req.subject.properties == {}
    assert req.resource.id is None
    assert req.device == {}
    assert req.context == {}


def test_full_request_round_trips() -> None:
    data = {
        "subject": {"type": "user", "id": "u-eve", "properties": {"roles": ["agent"]}},
        "action": {"name": "read", "properties": {"bulk": False}},
        "resource": {"type": "customer_record", "id": "c-77", "properties": {"s": 2}},
        "device": {"id": "d-9", "managed": True},
        "context": {"ip": "10.1.2.3", "records": 1},
    }
    assert AccessRequest.from_mapping(data).to_dict() == data


def test_request_is_a_copy_of_caller_data() -> None:
    data = minimal(context={"tags": ["a"]})
    req = AccessRequest.from_mapping(data)
    data["context"]["tags"].append("b")  # type: ignore[index]
    assert req.context == {"tags": ["a"]}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"action": {"name": "r"}, "resource": {"type": "t"}}, "subject"),
        (minimal(subject={}), "subject.id"),
        (minimal(subject={"id": 7}), "subject.id"),
        (minimal(subject={"id": ""}), "subject.id"),
        (minimal(action={}), "action.name"),
        (minimal(resource={"id": "x"}), "resource.type"),
        (minimal(resource={"type": "t", "id": 5}), "resource.id"),
        (minimal(subject={"id": "u", "properties": []}), "subject.properties"),
        (minimal(subject={"id": "u", "role": "admin"}), "subject.role"),
        (minimal(device="laptop"), "device"),
        (minimal(context=[1]), "context"),
        (minimal(extra={}), "extra"),
        (minimal(context={"when": object()}), "context.when"),
        (minimal(context={"x": float("nan")}), "context.x"),
        (minimal(context={1: "a"}), "context"),
        ("not a mapping", "request"),
    ],
)
def test_bad_input_names_the_field(data: object, field: str) -> None:
    with pytest.raises(RequestError) as info:
        AccessRequest.from_mapping(data)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)


def test_nesting_deeper_than_32_is_refused() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(40):
        child: dict[str, object] = {}
        node["n"] = child
        node = child
    with pytest.raises(RequestError, match="deeper than 32"):
        AccessRequest.from_mapping(minimal(context=deep))


def test_nesting_at_the_limit_is_accepted() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(29):
        child: dict[str, object] = {}
        node["n"] = child
        node = child
    AccessRequest.from_mapping(minimal(context=deep))


def test_more_than_10000_values_is_refused() -> None:
    with pytest.raises(RequestError, match="more than 10000 values"):
        AccessRequest.from_mapping(minimal(context={"xs": list(range(10_001))}))


def test_access_request_passes_through() -> None:
    req = AccessRequest.from_mapping(minimal())
    assert AccessRequest.from_mapping(req) is req


# The fast copy must never accept what the slow, field-naming walk refuses.
_JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=5)
    | st.sampled_from([b"x", 1j, object()]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=3) | st.integers(0, 3), inner, max_size=4)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(value=_JSONISH, depth=st.integers(0, 34))
def test_fast_copy_agrees_with_the_field_naming_walk(value: object, depth: int) -> None:
    from zerotrust.request import MAX_DEPTH, _copy_fast, _copy_json, _Counter, _NotPlain

    try:
        slow = _copy_json(value, "x", depth, _Counter())
    except RequestError:
        slow = _NotPlain
    try:
        fast = _copy_fast(value, depth, [10_000 - 1])
    except _NotPlain:
        return  # the slow walk decides; nothing to compare
    assert depth <= MAX_DEPTH
    assert fast == slow
