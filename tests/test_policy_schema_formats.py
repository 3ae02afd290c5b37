"""``format: ip`` and ``format: cidr`` in attribute schemas accept exactly what the CEL
IP functions read: a value the schema lets through never errors in ``ip_in_cidr`` /
``cidr()``, and what they refuse the schema refuses (zones, IPv4-mapped IPv6, prefix
lengths with leading zeros...)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zerotrust import PolicyDecisionPoint, RequestError

POLICY = """\
policy: p
rules:
  - id: in-range
    effect: allow
    when: ip_in_cidr(context.ip, context.net)
"""
SCHEMA = """\
context:
  properties:
    ip: {type: string, format: ip}
    net: {type: string, format: cidr}
  required: [ip, net]
"""


def pdp(mode: str) -> PolicyDecisionPoint:
    return PolicyDecisionPoint.from_texts(
        {"p.yaml": POLICY, "s.schema.yaml": SCHEMA}, schema_validation=mode
    )


REPORTING, ENFORCING = pdp("report"), pdp("enforce")


def request(ip: Any, net: Any) -> dict[str, Any]:
    return {
        "subject": {"type": "user", "id": "a"},
        "resource": {"type": "doc", "id": "d"},
        "action": {"name": "read"},
        "context": {"ip": ip, "net": net},
    }


@pytest.mark.parametrize(
    ("ip", "net", "field"),
    [
        ("fe80::1%eth0", "fe80::/10", "context.ip"),  # a zone
        ("::ffff:10.0.0.1", "10.0.0.0/8", "context.ip"),  # IPv4-mapped IPv6
        ("10.0.0.1", "10.0.0.0/08", "context.net"),  # a prefix length with a leading zero
        ("10.0.0.1", "::ffff:10.0.0.0/104", "context.net"),  # an IPv4-mapped range
        ("10.0.0.1", "10.0.0.1", "context.net"),  # no prefix length
        ("010.0.0.1", "10.0.0.0/8", "context.ip"),  # a leading zero in an octet
    ],
)
def test_schema_format_refuses_what_ip_functions_refuse(ip: str, net: str, field: str) -> None:
    """The attack: a value the schema let through made every rule reading it error (a
    deny fails closed, an allow never matches) while ``enforce`` promised conformance."""
    with pytest.raises(RequestError) as caught:
        ENFORCING.evaluate(request(ip, net))
    assert caught.value.field == field


def test_a_range_with_host_bits_is_accepted_as_ip_in_cidr_reads_it() -> None:
    decision = ENFORCING.evaluate(request("10.9.9.9", "10.1.2.3/8"))
    assert decision.allowed and decision.errors == ()


_OCTET = st.integers(0, 255).map(str) | st.sampled_from(["00", "010", "256", "-1", ""])
_V4 = st.lists(_OCTET, min_size=3, max_size=5).map(".".join)
_V6 = st.ip_addresses(v=6).map(str) | st.sampled_from(["::ffff:1.2.3.4", "fe80::1%1", "::"])
_ADDRESS = _V4 | _V6 | st.text(max_size=12)
_PREFIX = st.integers(0, 140).map(str) | st.sampled_from(["08", "", "x", "+8", "٣"])
_RANGE = st.tuples(_ADDRESS, _PREFIX).map("/".join) | _ADDRESS


@given(_ADDRESS, _RANGE)
def test_the_schema_accepts_exactly_what_the_rule_can_evaluate(ip: str, net: str) -> None:
    """Whatever the strings: the request conforms exactly when the condition reading
    them evaluates without error, on the same request."""
    decision = REPORTING.evaluate(request(ip, net))
    schema_errors = [e for e in decision.errors if e.kind == "schema"]
    rule_errors = [e for e in decision.errors if e.kind != "schema"]
    assert bool(schema_errors) == bool(rule_errors), decision.errors
    if not schema_errors:  # and then it decides as ipaddress does
        network = ipaddress.ip_network(net, strict=False)
        assert decision.allowed == (ipaddress.ip_address(ip) in network)
