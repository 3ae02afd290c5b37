"""The condition type checker on the faults a review found, one test per kind of fault:
each was accepted (or crashed the load) and fails at run time, or the reverse."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zerotrust import PolicyError
from zerotrust.cel import CompiledBackend, ConditionError, InterpreterBackend, default_backend
from zerotrust.policy.loader import load_texts

SCHEMA = """\
resources:
  doc:
    properties:
      n: {type: integer}
      x: {type: number}
      gs: {type: array, items: {type: integer}}
      i: {type: string, format: ip}
      c: {type: string, format: cidr}
      t: {type: string, format: date-time}
      d: {type: string, format: duration}
      lab: {type: string}
    required: [n, x, gs, i, c, t, d]
  open:
    properties:
      lab: {type: string}
subjects:
  user:
    properties:
      level: {type: integer}
    required: [level]
  service:
    properties:
      name: {type: string}
"""
DATA = "groups:\n  support:\n    members: [u]\n"


def _problems(when: str, target: str = "[doc]", schema: str = SCHEMA) -> list[str]:
    policy = f"policy: p\ntarget: {{resources: {target}}}\nrules:\n  - id: r\n"
    policy += f"    effect: deny\n    when: {when!r}\n"
    texts = {"p.yaml": policy, "a.schema.yaml": schema, "d.data.yaml": DATA}
    try:
        load_texts(texts, default_backend())
    except PolicyError as exc:
        return [d.message for d in exc.diagnostics]
    return []


@pytest.mark.parametrize(
    ("when", "said"),
    [
        ('in_group(resource.properties.n, "support")', "in_group(int, string)"),
        ('in_group(resource.properties.gs, "support")', "in_group(list(int), string)"),
        ("in_group(subject.id, resource.properties.n)", "in_group(string, int)"),
        ('in_group(subject.id, "support") + 1 > 0', "_+_(bool, int)"),
        ("int.size() == 1", "type.size()"),
        ('string.startsWith("x")', "type.startsWith(string)"),
    ],
)
def test_in_group_and_a_method_of_a_type_name_are_type_checked(when: str, said: str) -> None:
    assert _problems(when) == [f"type: no such overload: {said}"]


def test_in_group_of_a_member_id_or_group_names_is_accepted() -> None:
    assert _problems('in_group(subject.id, "support") || in_group(["a"], "support")') == []


def test_a_field_of_one_type_is_what_another_open_type_lets_it_be() -> None:
    """'service' does not declare level: its open schema's undeclared keys hold strings
    ('robot': anything, 'bot': closed, never level)."""
    schema = """\
subjects:
  user:
    properties: {level: {type: integer}}
    required: [level]
  service:
    properties: {name: {type: string}}
    additionalProperties: {type: string}
"""
    level = "has(subject.properties.level) && subject.properties.level"
    assert _problems(f"{level} + 1 > 2", schema=schema) == [
        "type: no such overload: _+_(int|string, int)"
    ]
    anything = schema + "  robot:\n    properties: {name: {type: string}}\n"
    assert _problems(f"{level}.startsWith('a')", schema=anything) == []  # dyn: not known
    closed = schema.replace("{type: string}}\n", "{type: string}}\n", 1).replace(
        "additionalProperties: {type: string}", "additionalProperties: false"
    )
    assert _problems(f"{level} + 1 > 2", schema=closed) == []
    assert _problems("subject.properties.level > 1", schema=closed) != []  # (optional)


@pytest.mark.parametrize(
    ("when", "said"),
    [
        ("ip(P.c).family() == 4", "ip() never reads a string of format cidr"),
        ("cidr(P.i).prefixLength() > 0", "cidr() never reads a string of format ip"),
        ("timestamp(P.d) < now", "timestamp() never reads a string of format duration"),
        ('duration(P.t) > duration("1s")', "duration() never reads a string of format date-time"),
        ("cidr(P.c).containsIP(P.c)", "containsIP() never reads a string of format cidr"),
    ],
)
def test_a_conversion_of_a_string_of_another_format_is_refused(when: str, said: str) -> None:
    (found,) = _problems(when.replace("P.", "resource.properties."))
    assert found.startswith(f"type: {said} (the schema's): read it with ")


def test_a_string_of_the_right_format_or_none_is_converted() -> None:
    when = (
        "ip(resource.properties.i).family() == 4 && cidr(resource.properties.c).containsIP("
        "resource.properties.i) && timestamp(resource.properties.t) < now && duration("
        "resource.properties.d) > duration('1s') && (!has(resource.properties.lab) || "
        "ip(resource.properties.lab).family() == 4)"
    )
    assert _problems(when) == []


def test_a_condition_deeper_than_the_compiler_takes_never_crashes_the_checker() -> None:
    chained = " && ".join(["resource.properties.n == 1"] * 500)
    unguarded = " && resource.properties.lab == 'x'"
    for when in (chained, " && ".join(["true"] * 1000) + unguarded, "!" * 1000 + "true"):
        (said,) = _problems(when)
        assert said.startswith("CEL: condition nested too deeply"), said


@pytest.mark.parametrize(
    "when", ["[1, 2][1.5] == 2", "resource.properties.gs[resource.properties.x] > 0"]
)
def test_a_double_list_index_is_refused(when: str) -> None:
    (said,) = _problems(when)
    assert said.startswith("type: no such overload: _[_](list(int), ")


def test_negation_takes_a_schema_number() -> None:
    assert _problems("-resource.properties.x < 0") == []


#: Each format, a conforming value and one that the format's conversion reads.
_FORMATS = {
    "ip": (st.sampled_from(["10.0.0.1", "::1", "192.168.1.2"]), "ip({p}).family() > 0"),
    "cidr": (st.sampled_from(["10.0.0.0/8", "::/0"]), "cidr({p}).prefixLength() >= 0"),
    "date-time": (st.just("2026-01-31T09:00:00Z"), "timestamp({p}) < now"),
    "duration": (st.sampled_from(["1h", "90s"]), "duration({p}) > duration('0s')"),
}
_USES = [u for _, u in _FORMATS.values()] + [
    "cidr('10.0.0.0/8').containsIP({p})",
    "cidr('10.0.0.0/8').containsCIDR({p})",
]


@given(fmt=st.sampled_from(sorted(_FORMATS)), use=st.sampled_from(_USES), data=st.data())
def test_a_format_string_accepted_by_a_conversion_is_read_by_it(
    fmt: str, use: str, data: st.DataObject
) -> None:
    """Soundness over formats: a conversion the checker accepts on a string of a declared
    format never fails on a value of that format, on either backend."""
    schema = f"resources:\n  doc:\n    properties:\n      f: {{type: string, format: {fmt}}}\n"
    schema += "    required: [f]\n"
    when = use.format(p="resource.properties.f")
    policy = "policy: p\ntarget: {resources: [doc]}\nrules:\n  - id: r\n    effect: deny\n"
    policy += f"    when: {when!r}\n"
    try:
        load_texts({"p.yaml": policy, "a.schema.yaml": schema}, default_backend())
    except PolicyError:
        return
    value = data.draw(_FORMATS[fmt][0])
    variables = {
        "resource": {"type": "doc", "id": "d", "properties": {"f": value}},
        "now": datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC),
    }
    for backend in (CompiledBackend(), InterpreterBackend()):
        names = ("subject", "action", "device", "context", "data", "risk", "behavior")
        base: dict[str, object] = {name: {} for name in names}
        try:
            backend.compile(when)(backend.bind({**base, **variables}))
        except ConditionError as exc:
            pytest.fail(f"{backend.name}: {when} on {value!r}: {exc}")


def test_a_key_that_is_no_identifier_is_guarded_by_in() -> None:
    schema = SCHEMA.replace(
        "      lab: {type: string}\n", "      lab: {type: string}\n      x-y: {type: string}\n", 1
    )
    read = 'resource.properties["x-y"] == "s"'
    assert _problems(f'"x-y" in resource.properties && {read}', schema=schema) == []
    assert _problems(read, schema=schema) == [
        "type: resource.properties['x-y'] is optional in the schema of resource type 'doc':"
        " read it only under 'x-y' in resource.properties"
    ]


def test_a_guard_through_a_key_read_from_a_path_covers_the_read() -> None:
    data = "nested: {a: {x: 1}, b: {y: 2}}\n"
    read = "data.nested[resource.id].x"
    policy = (
        f"policy: p\nrules:\n  - id: r\n    effect: deny\n    when: 'has({read}) && {read} == 1'\n"
    )
    texts = {"p.yaml": policy, "a.schema.yaml": SCHEMA, "d.data.yaml": data}
    load_texts(texts, default_backend())
    policy = f"policy: p\nrules:\n  - id: r\n    effect: deny\n    when: '{read} == 1'\n"
    with pytest.raises(PolicyError) as info:
        load_texts({**texts, "p.yaml": policy}, default_backend())
    (said,) = [d.message for d in info.value.diagnostics]
    assert said.startswith(
        f"type: {read} is optional in the loaded data: read it only under has({read})"
    )


def test_enum_values_are_shown_as_cel_writes_them() -> None:
    schema = SCHEMA.replace(
        "      lab: {type: string}\n",
        "      lab: {type: string}\n      b: {type: boolean, enum: [true]}\n"
        "      s: {type: string, enum: [a, b]}\n",
        1,
    ).replace("required: [n,", "required: [b, s, n,", 1)
    assert _problems("resource.properties.b == false", schema=schema) == [
        "type: false is not one of the values the schema allows (true)"
    ]
    assert _problems('resource.properties.s == "c"', schema=schema) == [
        'type: "c" is not one of the values the schema allows ("a", "b")'
    ]


@pytest.mark.parametrize(
    ("when", "said"),
    [
        ("has(data.typo)", "data.typo is not declared in the loaded data"),
        ("has(risk.scroe)", "risk.scroe is not declared in the decision's risk: did you mean"),
        ("has(subject.idd)", "subject.idd is not declared in the request's subject: did you"),
    ],
)
def test_a_misspelt_path_under_has_on_a_closed_object_is_refused(when: str, said: str) -> None:
    (found,) = _problems(when)
    assert found.startswith(f"type: {said}") and found.endswith("(has() of it is always false)")


def test_an_undeclared_field_under_has_on_an_open_object_is_accepted() -> None:
    assert _problems("has(resource.properties.other)", "[open]") == []


LIBRARY = "library: own\nderived_roles:\n  boss:\n    parent_roles: [user]\n    when: 'true'\n"


@pytest.mark.parametrize(
    "subject",
    [
        "properties: {dept: {type: string}}\n    additionalProperties: false",
        "properties: {roles: {type: string}}",
        "properties: {roles: {type: string}}\n    required: [roles]",
        "properties: {roles: {type: array, items: {type: integer}}}",
    ],
)
def test_a_parent_role_test_loads_against_any_subject_schema(subject: str) -> None:
    policy = "policy: p\nimports: [own]\nrules:\n  - id: r\n    effect: deny\n"
    policy += "    when: derived_roles.boss\n"
    texts = {"p.yaml": policy, "lib.yaml": LIBRARY}
    load_texts(
        {**texts, "a.schema.yaml": f"subjects:\n  user:\n    {subject}\n"}, default_backend()
    )


def test_type_of_a_path_equal_to_list_makes_it_a_list() -> None:
    schema = SCHEMA.replace(
        "      lab: {type: string}\n", "      lab: {type: string}\n      r: {type: string}\n", 1
    )
    when = "type(resource.properties.r) == list && resource.properties.r.exists(x, x == 1)"
    assert _problems(f"has(resource.properties.r) && {when}", schema=schema) == []


def test_a_problem_in_a_multi_line_double_quoted_condition_is_at_its_character() -> None:
    when = '"resource.properties.n == 1 &&\n      \\t resource.properties.lab == \\"\\\\u00e9\\""'
    policy = "policy: p\ntarget: {resources: [doc]}\nrules:\n  - id: r\n    effect: deny\n"
    policy += f"    when: {when}\n"
    with pytest.raises(PolicyError) as info:
        load_texts({"p.yaml": policy, "a.schema.yaml": SCHEMA}, default_backend())
    (problem,) = info.value.diagnostics
    assert (problem.line, problem.column) == (7, 30)  # lab, after \t, a space and the path
    assert "resource.properties.lab is optional" in problem.message


def test_an_enum_in_a_list_that_is_not_all_constants_is_not_judged() -> None:
    schema = SCHEMA.replace(
        "      lab: {type: string}\n",
        "      lab: {type: string}\n      s: {type: string, enum: [a, b]}\n",
        1,
    ).replace("required: [n,", "required: [s, n,", 1)
    assert _problems('resource.properties.s in [resource.properties.lab, "c"]', schema=schema) == [
        "type: resource.properties.lab is optional in the schema of resource type 'doc': read it"
        " only under has(resource.properties.lab)"
    ]
    assert _problems('resource.properties.s in ["a", "c"]', schema=schema) == [
        'type: "c" is not one of the values the schema allows ("a", "b")'
    ]
