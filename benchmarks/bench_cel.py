"""Microseconds per evaluation of 20 typical policy conditions, three ways.

    python benchmarks/bench_cel.py [--repeat 7] [--number 2000]

Compares the compiled CEL backend, cel-python's interpreter (the reference backend)
and the same conditions written by hand as Python lambdas, on one request, in one
run. Prints the median over ``--repeat`` timings for each condition and for the
whole set of 20, with the ratio to hand-written Python.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import statistics
import timeit
from collections.abc import Callable
from typing import Any

from zerotrust.cel import InterpreterBackend
from zerotrust.cel._compiler import CompiledBackend

REQUEST: dict[str, Any] = {
    "subject": {
        "id": "u-123",
        "email": "alice@example.com",
        "roles": ["editor", "viewer"],
        "department": "eng",
        "clearance": 3,
        "mfa": True,
        "groups": ["eng", "oncall"],
    },
    "action": {"name": "update", "method": "PUT"},
    "resource": {
        "type": "document",
        "id": "doc-9",
        "owner": "alice@example.com",
        "department": "eng",
        "classification": 2,
        "tags": ["internal", "q3"],
        "properties": {"ownerID": "alice@example.com", "size": 2048},
    },
    "device": {"managed": True, "os": "macOS", "os_version": 14, "encrypted": True},
    "context": {"ip": "10.2.3.4", "country": "DE", "hour": 14},
    "risk": {"score": 0.2, "level": "low"},
    "now": datetime.datetime(2024, 3, 15, 14, 30, tzinfo=datetime.UTC),
}

_TEN = ipaddress.ip_network("10.0.0.0/8")

#: (CEL, the same condition in hand-written Python)
CONDITIONS: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
    ('"admin" in subject.roles', lambda r: "admin" in r["subject"]["roles"]),
    (
        "subject.email == resource.owner",
        lambda r: r["subject"]["email"] == r["resource"]["owner"],
    ),
    (
        'action.name in ["read", "list"]',
        lambda r: r["action"]["name"] in ("read", "list"),
    ),
    (
        "subject.department == resource.department",
        lambda r: r["subject"]["department"] == r["resource"]["department"],
    ),
    (
        "subject.clearance >= resource.classification",
        lambda r: r["subject"]["clearance"] >= r["resource"]["classification"],
    ),
    (
        "device.managed && device.encrypted",
        lambda r: r["device"]["managed"] and r["device"]["encrypted"],
    ),
    ("subject.mfa == true", lambda r: r["subject"]["mfa"] is True),
    ("risk.score < 0.5", lambda r: r["risk"]["score"] < 0.5),
    (
        'resource.type == "document" && action.name == "update"',
        lambda r: r["resource"]["type"] == "document" and r["action"]["name"] == "update",
    ),
    (
        "resource.properties.ownerID == subject.email",
        lambda r: r["resource"]["properties"]["ownerID"] == r["subject"]["email"],
    ),
    (
        "has(resource.properties.size) && resource.properties.size < 10000",
        lambda r: (
            "size" in r["resource"]["properties"] and r["resource"]["properties"]["size"] < 10000
        ),
    ),
    (
        'subject.groups.exists(g, g == "oncall")',
        lambda r: any(g == "oncall" for g in r["subject"]["groups"]),
    ),
    (
        'resource.tags.all(t, t != "secret")',
        lambda r: all(t != "secret" for t in r["resource"]["tags"]),
    ),
    (
        'subject.email.endsWith("@example.com")',
        lambda r: r["subject"]["email"].endswith("@example.com"),
    ),
    (
        'context.country in ["DE", "FR", "NL"]',
        lambda r: r["context"]["country"] in ("DE", "FR", "NL"),
    ),
    (
        "context.hour >= 8 && context.hour < 18",
        lambda r: 8 <= r["context"]["hour"] < 18,
    ),
    (
        'ip_in_cidr(context.ip, "10.0.0.0/8")',
        lambda r: ipaddress.ip_address(r["context"]["ip"]) in _TEN,
    ),
    (
        "now.getDayOfWeek() >= 1 && now.getDayOfWeek() <= 5",
        lambda r: 1 <= r["now"].isoweekday() % 7 <= 5,
    ),
    (
        'device.os == "macOS" && device.os_version >= 13',
        lambda r: r["device"]["os"] == "macOS" and r["device"]["os_version"] >= 13,
    ),
    (
        '("editor" in subject.roles || subject.email == resource.owner) && risk.level != "high"',
        lambda r: (
            ("editor" in r["subject"]["roles"] or r["subject"]["email"] == r["resource"]["owner"])
            and r["risk"]["level"] != "high"
        ),
    ),
]


def _median_us(fn: Callable[[], object], repeat: int, number: int) -> float:
    times = timeit.repeat(fn, repeat=repeat, number=number)
    return statistics.median(times) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()

    compiled_backend = CompiledBackend()
    interpreter = InterpreterBackend()
    compiled = [compiled_backend.compile(src) for src, _ in CONDITIONS]
    interpreted = [interpreter.compile(src) for src, _ in CONDITIONS]
    hand = [fn for _, fn in CONDITIONS]

    bound_c = compiled_backend.bind(REQUEST)
    bound_i = interpreter.bind(REQUEST)
    for (src, fn), c, i in zip(CONDITIONS, compiled, interpreted, strict=True):
        expected = fn(REQUEST)
        if c(bound_c) != expected or i(bound_i) != expected:
            raise SystemExit(f"backends disagree on {src!r}")

    slow_number = max(args.number // 50, 10)
    print(f"{'condition':<60} {'hand µs':>8} {'compiled':>9} {'interp':>9} {'c/hand':>7}")
    for (src, fn), c, i in zip(CONDITIONS, compiled, interpreted, strict=True):
        t_hand = _median_us(lambda fn=fn: fn(REQUEST), args.repeat, args.number)
        t_comp = _median_us(lambda c=c: c(bound_c), args.repeat, args.number)
        t_int = _median_us(lambda i=i: i(bound_i), args.repeat, slow_number)
        print(f"{src[:60]:<60} {t_hand:8.2f} {t_comp:9.2f} {t_int:9.1f} {t_comp / t_hand:7.1f}")

    def all_hand() -> None:
        for fn in hand:
            fn(REQUEST)

    def all_compiled() -> None:
        bindings = compiled_backend.bind(REQUEST)
        for c in compiled:
            c(bindings)

    def all_interpreted() -> None:
        bindings = interpreter.bind(REQUEST)
        for i in interpreted:
            i(bindings)

    t_hand = _median_us(all_hand, args.repeat, args.number // 10)
    t_comp = _median_us(all_compiled, args.repeat, args.number // 10)
    t_int = _median_us(all_interpreted, args.repeat, max(slow_number // 10, 3))
    print()
    print(f"20 conditions, one request (bind included), median of {args.repeat}:")
    print(f"  hand-written Python  {t_hand:9.2f} µs")
    print(f"  compiled CEL         {t_comp:9.2f} µs   {t_comp / t_hand:5.1f}x hand-written")
    print(f"  cel-python           {t_int:9.1f} µs   {t_int / t_comp:5.0f}x compiled")


if __name__ == "__main__":
    main()
