from __future__ import annotations

import copy
import enum
import json
import pickle
from collections.abc import Mapping
from typing import Any

import attrs
import pytest
from conftest import FIXED_NOW
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import (
    DICT_MUTATIONS,
    LIST_MUTATIONS,
    REFUSED,
    Colour,
    FakeStr,
    HostileFloat,
    HostileInt,
    HostileStr,
    Level,
    PlainMapping,
    RaisingMapping,
    hostile_values,
    json_containers_with_paths,
    json_ish,
    json_value_count,
    lone_surrogate_texts,
    requests,
    requests_at_the_limits,
)

from zerotrust import AccessRequest, Action, PolicyDecisionPoint, RequestError, Resource, Subject
from zerotrust.cel import default_backend
from zerotrust.request import plain_mapping, request_variables


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
    | lone_surrogate_texts()
    | st.sampled_from([b"x", 1j, object(), HostileStr("a"), HostileInt(5), Colour.ADMIN]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=3) | st.integers(0, 3), inner, max_size=4)
    ),
    max_leaves=40,
)


def _read_only_throughout(value: Any) -> bool:
    if type(value) is dict or type(value) is list:
        return False
    if isinstance(value, dict):
        return all(map(_read_only_throughout, value.values()))
    if isinstance(value, list):
        return all(map(_read_only_throughout, value))
    return True


@settings(max_examples=300, deadline=None)
@given(value=_JSONISH, depth=st.integers(0, 34), show=st.booleans())
def test_fast_copy_agrees_with_the_field_naming_walk(value: object, depth: int, show: bool) -> None:
    from zerotrust._plain import MAX_DEPTH, _copy_json, _fast_object, _Walk, shown

    try:
        slow: Any = _copy_json(value, "x", depth, _Walk("x", surrogates=False))
    except RequestError:
        slow = RequestError
    try:  # the value as an item of an object one level up
        plain = _fast_object({"v": value}, depth - 1, [10_000 - 1])
    except Exception:
        return  # the slow walk decides; nothing to compare
    assert depth <= MAX_DEPTH
    assert _exact(plain["v"], slow)  # the same data, in exact builtins
    if show:  # and the same again, read-only all the way down
        view = shown(plain)
        assert view == plain
        assert _read_only_throughout(view)


# --- canonical values: a condition sees plain data, whatever the caller passed -----------

ADMIN_ONLY = """
policy: admins
rules:
  - {id: admin-reads, effect: allow, when: "subject.properties.role == 'admin'"}
  - {id: big-only, effect: allow, when: "context.n > 100"}
  - {id: high, effect: allow, when: "double(context.score) >= 50.0"}
"""


def _pdp() -> PolicyDecisionPoint:
    return PolicyDecisionPoint.from_texts({"p.yaml": ADMIN_ONLY}, behavior=None)


def _exact(value: Any, expected: Any) -> bool:
    """Same data and exactly the builtin types JSON has (no subclass anywhere)."""
    if type(value) is not type(expected):
        return False
    if type(value) is dict:
        return list(value) == list(expected) and all(
            type(k) is str and _exact(value[k], expected[k]) for k in value
        )
    if type(value) is list:
        return len(value) == len(expected) and all(map(_exact, value, expected))
    return bool(value == expected)


def _refused(expected: Any) -> bool:
    if expected is REFUSED:
        return True
    if type(expected) is dict:
        return any(_refused(v) for v in expected.values())
    if type(expected) is list:
        return any(_refused(v) for v in expected)
    return False


def test_str_subclass_equal_to_everything_does_not_pass_for_admin() -> None:
    req = minimal(subject={"id": "u-1", "properties": {"role": HostileStr("user")}})
    assert AccessRequest.from_mapping(req).subject.properties == {"role": "user"}
    assert type(AccessRequest.from_mapping(req).subject.properties["role"]) is str
    assert not _pdp().evaluate(req).allowed


def test_str_subclass_with_a_lying_str_is_read_as_its_real_text() -> None:
    # HostileStr.__str__ says "admin"; its data says "user": the data wins.
    req = AccessRequest.from_mapping(minimal(subject={"id": HostileStr("u-1")}))
    assert req.subject.id == "u-1"
    assert type(req.subject.id) is str


def test_int_subclass_claiming_a_huge_value_is_read_as_its_real_value() -> None:
    req = AccessRequest.from_mapping(minimal(context={"n": HostileInt(5)}))
    assert type(req.context["n"]) is int
    assert req.context["n"] == 5
    assert not _pdp().evaluate(minimal(context={"n": HostileInt(5)})).allowed


def test_int_subclass_holding_more_than_64_bits_is_refused() -> None:
    with pytest.raises(RequestError) as info:
        AccessRequest.from_mapping(minimal(context={"n": HostileInt(2**100)}))
    assert info.value.field == "context.n"


def test_float_subclass_holding_nan_cannot_pass_the_finiteness_check() -> None:
    with pytest.raises(RequestError, match="NaN") as info:
        AccessRequest.from_mapping(minimal(context={"score": HostileFloat("nan")}))
    assert info.value.field == "context.score"
    # ...and one holding a real number is read as that number, not its __float__ (NaN).
    req = AccessRequest.from_mapping(minimal(context={"score": HostileFloat(10.5)}))
    assert type(req.context["score"]) is float
    assert req.context["score"] == 10.5


def test_object_faking_class_str_is_refused() -> None:
    assert isinstance(FakeStr(), str)  # what the old isinstance check believed
    with pytest.raises(RequestError, match="not a JSON value") as info:
        AccessRequest.from_mapping(minimal(subject={"id": "u", "properties": {"r": FakeStr()}}))
    assert info.value.field == "subject.properties.r"


def test_object_faking_class_dict_is_refused_as_the_whole_request() -> None:
    class FakeDict:
        @property  # type: ignore[misc]
        def __class__(self) -> type:
            return dict

    with pytest.raises(RequestError) as info:
        AccessRequest.from_mapping(FakeDict())
    assert info.value.field == "request"


def test_object_faking_class_access_request_is_not_passed_through() -> None:
    real = AccessRequest.from_mapping(minimal())

    class FakeRequest:
        subject = real.subject

        @property  # type: ignore[misc]
        def __class__(self) -> type:
            return AccessRequest

    with pytest.raises(RequestError):
        AccessRequest.from_mapping(FakeRequest())


def test_enum_members_arrive_as_their_plain_values() -> None:
    req = AccessRequest.from_mapping(
        minimal(
            subject={"id": "u", "properties": {"role": Colour.ADMIN, Colour.RED: Level.TOP}},
        )
    )
    assert req.subject.properties == {"role": "admin", "red": 2**40}
    assert [type(v) for v in req.subject.properties.values()] == [str, int]
    assert [type(k) for k in req.subject.properties] == [str, str]
    assert (
        _pdp().evaluate(minimal(subject={"id": "u", "properties": {"role": Colour.ADMIN}})).allowed
    )


def test_booleans_stay_booleans() -> None:
    req = AccessRequest.from_mapping(minimal(context={"a": True, "b": [False], "n": Level.LOW}))
    assert req.context["a"] is True
    assert req.context["b"][0] is False
    assert req.context["n"] == 1
    assert type(req.context["n"]) is int


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (minimal(subject={"id": "\ud800"}), "subject.id"),
        (minimal(resource={"type": "doc", "id": "c-\udfff"}), "resource.id"),
        (minimal(action={"name": "re\udc00ad"}), "action.name"),
        (minimal(context={"ip": "10.0.0.1\ud800"}), "context.ip"),
        (minimal(context={"tags": ["ok", "\ud800"]}), "context.tags[1]"),
        (minimal(device={"os": {"name": "mac\ud800"}}), "device.os.name"),
        (minimal(subject={"id": "u", "properties": {"r\ud800le": "x"}}), "subject.properties"),
        (minimal(context={"é\ud800": 1}), "context"),
    ],
)
def test_lone_surrogate_in_any_string_is_refused(data: object, field: str) -> None:
    with pytest.raises(RequestError, match="lone surrogate") as info:
        AccessRequest.from_mapping(data)
    assert info.value.field == field
    str(info.value).encode("utf-8")  # the message itself can be logged


def test_lone_surrogate_in_a_top_level_key_is_refused() -> None:
    data: dict[str, Any] = minimal()
    data["\ud800"] = {}
    with pytest.raises(RequestError, match="lone surrogate") as info:
        AccessRequest.from_mapping(data)
    assert info.value.field == "request"


def test_valid_non_ascii_text_is_accepted() -> None:
    req = AccessRequest.from_mapping(minimal(context={"名前": "Zoë 😀", "k": ["ü"]}))
    assert req.context == {"名前": "Zoë 😀", "k": ["ü"]}


@pytest.mark.parametrize("where", ["items", "iter", "pairs", "recursion"])
def test_mapping_that_raises_while_read_is_a_request_error(where: str) -> None:
    with pytest.raises(RequestError, match="could not be read") as info:
        AccessRequest.from_mapping(minimal(context={"x": RaisingMapping(where)}))
    assert info.value.field == "context.x"
    assert info.value.__cause__ is not None


def test_whole_request_mapping_that_raises_while_read_is_a_request_error() -> None:
    with pytest.raises(RequestError) as info:
        AccessRequest.from_mapping(RaisingMapping("items"))
    assert info.value.field == "request"


def test_key_whose_hash_raises_is_never_hashed() -> None:
    class Armed(str):
        armed = False

        def __hash__(self) -> int:
            if Armed.armed:
                raise RuntimeError("hash called")
            return str.__hash__(self)

    context = {Armed("role"): "admin"}
    Armed.armed = True
    req = AccessRequest.from_mapping(minimal(context=context))
    assert req.context == {"role": "admin"}
    assert [type(k) for k in req.context] == [str]


def test_two_keys_with_the_same_text_are_refused() -> None:
    class Twin(str):
        def __hash__(self) -> int:
            return id(self)

        def __eq__(self, other: object) -> bool:
            return self is other

    with pytest.raises(RequestError, match="duplicate key") as info:
        AccessRequest.from_mapping(minimal(context={Twin("role"): "user", Twin("role"): "admin"}))
    assert info.value.field == "context.role"


def test_hand_built_request_with_hostile_values_is_validated_again() -> None:
    hand = AccessRequest(
        subject=Subject(id=HostileStr("u-1"), properties={"role": HostileStr("user")}),
        action=Action(name="read"),
        resource=Resource(type="doc"),
    )
    req = AccessRequest.from_mapping(hand)
    assert req is not hand
    assert type(req.subject.id) is str
    assert type(req.subject.properties["role"]) is str
    assert AccessRequest.from_mapping(req) is req
    assert not _pdp().evaluate(hand).allowed
    # attrs.evolve makes a new, unvalidated request: validated again too.
    evolved = attrs.evolve(req, context={"n": HostileInt(2**100)})
    with pytest.raises(RequestError):
        AccessRequest.from_mapping(evolved)


def test_hand_built_request_with_a_raising_mapping_is_a_request_error() -> None:
    hand = AccessRequest(
        subject=Subject(id="u"),
        action=Action(name="read"),
        resource=Resource(type="doc", properties=RaisingMapping("items")),
    )
    with pytest.raises(RequestError) as info:
        AccessRequest.from_mapping(hand)
    assert info.value.field == "resource.properties"


@settings(max_examples=400, deadline=None)
@given(pair=hostile_values())
def test_conditions_see_exact_builtins_holding_the_real_data(pair: tuple[Any, Any]) -> None:
    value, expected = pair
    try:
        req = AccessRequest.from_mapping(minimal(context={"v": value}))
    except RequestError as exc:
        assert _refused(expected), exc
        str(exc).encode("utf-8")
        return
    assert not _refused(expected)
    assert _exact(request_variables(req)["context"], {"v": expected})  # what conditions see
    assert req.context == {"v": expected}  # and what the read-only request shows


@settings(max_examples=100, deadline=None)
@given(text=lone_surrogate_texts(), where=st.sampled_from(["id", "key", "value", "nested"]))
def test_lone_surrogates_are_refused_wherever_they_stand(text: str, where: str) -> None:
    data: dict[str, Any] = {
        "id": minimal(subject={"id": text}),
        "key": minimal(context={text: 1}),
        "value": minimal(resource={"type": "doc", "properties": {"v": text}}),
        "nested": minimal(device={"a": [{"b": [text]}]}),
    }[where]
    with pytest.raises(RequestError, match="lone surrogate"):
        AccessRequest.from_mapping(data)


class _Rainbow(enum.Enum):
    RED = "red"


def test_plain_enum_member_is_not_json() -> None:
    with pytest.raises(RequestError, match="not a JSON value"):
        AccessRequest.from_mapping(minimal(context={"c": _Rainbow.RED}))


def test_mapping_subclass_is_copied_into_a_plain_dict() -> None:
    class Props(dict):  # type: ignore[type-arg]
        pass

    req = AccessRequest.from_mapping(minimal(context=Props(a=Props(b=1))))
    seen = request_variables(req)["context"]
    assert type(seen) is dict
    assert type(seen["a"]) is dict
    assert isinstance(req.context, Mapping) and isinstance(req.context["a"], dict)


# --- a validated request is read-only: nobody holding it changes what is trusted ------

GUEST = minimal(subject={"id": "u-1", "properties": {"role": "guest", "teams": ["a"]}})


class Liar(str):
    """The review's value: a str equal to everything."""

    __hash__ = str.__hash__

    def __eq__(self, other: object) -> bool:
        return True


def test_validated_request_changed_afterwards_cannot_pass_for_admin() -> None:
    pdp = _pdp()
    req = AccessRequest.from_mapping(GUEST)
    with pytest.raises(TypeError, match="read-only"):
        req.subject.properties["role"] = Liar("guest")  # type: ignore[index]
    with pytest.raises(TypeError, match="read-only"):
        req.subject.properties["teams"].append("admins")
    assert not pdp.evaluate(req).allowed
    assert req.subject.properties == {"role": "guest", "teams": ["a"]}


def test_request_changed_behind_its_read_only_back_does_not_change_the_decision() -> None:
    # dict's own __setitem__ bypasses the read-only view: conditions never read it.
    req = AccessRequest.from_mapping(GUEST)
    dict.__setitem__(req.subject.properties, "role", "admin")  # type: ignore[arg-type]
    assert not _pdp().evaluate(req).allowed
    assert request_variables(req)["subject"]["properties"]["role"] == "guest"


@settings(max_examples=300, deadline=None)
@given(where=json_containers_with_paths(), pick=st.integers(0, 100))
def test_no_change_to_a_validated_request_is_possible(
    where: tuple[str, dict[str, Any], tuple[Any, ...]], pick: int
) -> None:
    part, value, path = where
    data = minimal()
    if part in ("context", "device"):
        data[part] = value
    else:
        data[part] = {**data[part], "properties": value}  # type: ignore[dict-item]
    req = AccessRequest.from_mapping(data)
    before, seen = req.to_dict(), json.dumps(request_variables(req), sort_keys=True)
    node: Any = getattr(req, part)
    node = node if part in ("context", "device") else node.properties
    for step in path:
        node = node[step]
    table = DICT_MUTATIONS if isinstance(node, dict) else LIST_MUTATIONS
    change = table[sorted(table)[pick % len(table)]]
    with pytest.raises(TypeError, match="read-only"):
        change(node)
    assert req.to_dict() == before
    assert json.dumps(request_variables(req), sort_keys=True) == seen
    assert AccessRequest.from_mapping(req) is req


@pytest.mark.parametrize(
    "copy_of",
    [copy.copy, copy.deepcopy, lambda r: pickle.loads(pickle.dumps(r))],
    ids=["copy", "deepcopy", "pickle"],
)
def test_copies_of_a_validated_request_stay_read_only(copy_of: Any) -> None:
    req = AccessRequest.from_mapping(GUEST)
    twin = copy_of(req)
    assert twin == req
    assert AccessRequest.from_mapping(twin) is twin  # still trusted as validated...
    with pytest.raises(TypeError):  # ...because it is still read-only
        twin.subject.properties["teams"].append("admins")
    assert request_variables(twin) == request_variables(req)
    assert not _pdp().evaluate(twin).allowed


def test_to_dict_is_a_plain_copy_the_caller_may_change() -> None:
    req = AccessRequest.from_mapping(GUEST)
    mine = req.to_dict()
    mine["subject"]["properties"]["role"] = "admin"
    mine["subject"]["properties"]["teams"].append("b")
    assert _exact(mine["subject"]["properties"], {"role": "admin", "teams": ["a", "b"]})
    assert req.subject.properties == {"role": "guest", "teams": ["a"]}
    assert not _pdp().evaluate(req).allowed
    assert _pdp().evaluate(mine).allowed  # a new request, validated on its way in


def test_read_only_request_reads_as_plain_json() -> None:
    req = AccessRequest.from_mapping(minimal(context={"a": [1, {"b": None}], "c": "d"}))
    assert isinstance(req.context, dict) and isinstance(req.context["a"], list)
    assert json.loads(json.dumps(req.context)) == {"a": [1, {"b": None}], "c": "d"}
    assert {**req.context, "e": 1} == {"a": [1, {"b": None}], "c": "d", "e": 1}
    assert req.context | {"e": 1} == {"a": [1, {"b": None}], "c": "d", "e": 1}
    assert req.context["a"] + [2] == [1, {"b": None}, 2]


def test_decide_validates_a_request_built_by_hand() -> None:
    from zerotrust.engine import decide

    hand = AccessRequest(
        subject=Subject(id="u-1", properties={"role": Liar("guest")}),
        action=Action(name="read"),
        resource=Resource(type="doc"),
    )
    pdp = _pdp()
    decision = decide(pdp.policies, hand, FIXED_NOW, {}, default_backend())
    assert not decision.allowed
    with pytest.raises(RequestError):
        decide(
            pdp.policies,
            attrs.evolve(hand, context={"n": HostileInt(2**100)}),
            FIXED_NOW,
            {},
            default_backend(),
        )


def test_hand_built_request_with_a_raising_mapping_is_named_when_read_for_credentials() -> None:
    # What a PDP with identity= does first: read the request as plain data.
    hand = AccessRequest(
        subject=Subject(id="u", properties=RaisingMapping("items")),
        action=Action(name="read"),
        resource=Resource(type="doc"),
        context=RaisingMapping("iter"),
    )
    data = hand.to_dict()  # reads nothing of the caller's Mappings
    with pytest.raises(RequestError, match="could not be read") as info:
        plain_mapping(data)
    assert info.value.field == "subject.properties"


# --- one pass for plain data, the field-naming walk for the rest: the same decisions ---
# A dict of exact builtins is checked and copied in one pass; anything else (here: the
# same data behind a Mapping that is not a dict) takes the walk that names fields.


def _decided(data: Any) -> tuple[Any, ...]:
    try:
        req = AccessRequest.from_mapping(data)
    except RequestError as exc:
        return ("refused", exc.field, exc.reason)
    shown = (req.subject.properties, req.action.properties, req.resource.properties)
    assert all(map(_read_only_throughout, (*shown, req.device, req.context)))
    return ("valid", req, request_variables(req))


def _same_decision(fast: tuple[Any, ...], slow: tuple[Any, ...]) -> bool:
    if fast[0] == "refused" or slow[0] == "refused":
        return fast == slow
    return bool(fast[1] == slow[1]) and _exact(fast[2], slow[2])


def _with_values(total: int) -> dict[str, Any]:
    data = minimal(context={"xs": []})
    data["context"]["xs"] = [0] * (total - json_value_count(data))  # type: ignore[index]
    return data


def _with_leaf_at(depth: int, leaf: Any) -> dict[str, Any]:
    value = leaf
    for level in range(depth - 2):  # context is at depth 1, its "n" at depth 2
        value = [value] if level % 2 else {"n": value}
    return minimal(context={"n": value})


@pytest.mark.parametrize("path", ["one pass", "field-naming walk"])
def test_one_value_over_the_limit_is_refused_on_every_path(path: str) -> None:
    wrap = PlainMapping if path == "field-naming walk" else dict
    assert json_value_count(_with_values(10_000)) == 10_000
    AccessRequest.from_mapping(wrap(_with_values(10_000)))
    with pytest.raises(RequestError, match="more than 10000 values") as info:
        AccessRequest.from_mapping(wrap(_with_values(10_001)))
    assert info.value.field.startswith("context.xs[")


@pytest.mark.parametrize("leaf", [{}, [], 7, "ü"], ids=["object", "array", "int", "str"])
@pytest.mark.parametrize("path", ["one pass", "field-naming walk"])
def test_value_one_level_too_deep_is_refused_on_every_path(path: str, leaf: Any) -> None:
    wrap = PlainMapping if path == "field-naming walk" else dict
    req = AccessRequest.from_mapping(wrap(_with_leaf_at(32, leaf)))
    assert request_variables(req)["context"] == _with_leaf_at(32, leaf)["context"]
    with pytest.raises(RequestError, match="deeper than 32"):
        AccessRequest.from_mapping(wrap(_with_leaf_at(33, leaf)))


@settings(max_examples=300, deadline=None)
@given(data=requests() | requests_at_the_limits() | json_ish().filter(lambda d: type(d) is dict))
def test_one_pass_and_the_field_naming_walk_decide_every_request_alike(data: Any) -> None:
    fast, slow = _decided(data), _decided(PlainMapping(data))
    assert _same_decision(fast, slow), (fast, slow)


def test_read_only_request_cannot_be_refilled_through_init() -> None:
    """Before: ``req.device.__init__(managed=True)`` refilled the read-only view in place
    (``dict.__init__`` updates), and ``list.__init__`` replaced a list's items."""
    req = AccessRequest.from_mapping(
        {
            "subject": {"id": "u", "properties": {"roles": ["agent"]}},
            "action": {"name": "read"},
            "resource": {"type": "doc"},
            "device": {"managed": False},
        }
    )
    with pytest.raises(TypeError, match="read-only"):
        req.device.__init__(managed=True)  # type: ignore[misc]
    with pytest.raises(TypeError, match="read-only"):
        req.subject.properties["roles"].__init__(["admin"])
    assert req.device == {"managed": False}
    assert req.subject.properties == {"roles": ["agent"]}
