"""The CEL compiler and policy loading: conditions against hand-written Python, and scale.

    python benchmarks/bench_engine.py [--quick] [--decisions-only]

For one request against the same 20 rules, in one process: the 20 compiled conditions
alone (no request validation or Decision), the same rules as hand-written Python
lambdas with the same combining, and ``evaluate()`` on cel-python's interpreter (the
reference backend). What a whole decision costs in each configuration, against
cel-expr-python and cedarpy, is ``bench_decision.py``'s (it imports ``RULES``,
``REQUEST``, ``hand_written`` and ``policy_yaml`` from here).

Then scale: 10,000 rules over 500 resource types, loaded three ways, because the
loader compiles each distinct condition text once per load (identical texts share one
condition) and the compiled backend runs Python's ``compile()`` once per shape of
generated code: conditions that differ only in field names or constants share it
(strings and doubles are closure constants, so those share the code object too;
integers are put into a code object of their own without compiling):

* ``repeated``: the same 20 conditions for every type (20 distinct texts);
* ``distinct constants``: every type's literals carry the type number (strings get a
  suffix, integers are offset); the four literal-free rules stay identical;
* ``distinct shapes``: as above and every field name carries the type number too, so
  every condition text is distinct and is parsed, checked and generated (field names
  are constants of the generated code, so these still share Python code objects);
* ``distinct structure``: as ``distinct shapes``, and every type wraps its conditions
  in its own sequence of three of eight wrappers (``!!(c)``, ``(c) == true``,
  ``true && (c)``, ``(c) ? true : false``, ..., by the digits of the type number in
  base 8), so no two conditions have the same syntax tree and every one is compiled
  by Python: the worst case.

For each: load time (wall and CPU, min and median of repeats), the load time with
attribute schemas declaring every field the conditions read (each resource type its
own, closed, every field required; conditions are type-checked against them), and for
the distinct
cases tracemalloc peak and retained memory per rule (a separate, untimed load:
tracemalloc slows allocation). Decision time for the 10,000-rule set is measured on
the ``distinct constants`` load against type 0, whose rules are exactly the 20-rule set.
The one-time Lark grammar build is timed separately, first thing in the process.
Prints medians; record results in docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import ipaddress
import re
import statistics
import time
import timeit
import tracemalloc
from collections.abc import Callable
from typing import Any

from zerotrust import NullLog, PolicyDecisionPoint
from zerotrust.cel import InterpreterBackend, _syntax

NOW = datetime.datetime(2026, 3, 2, 14, 30, tzinfo=datetime.UTC)

REQUEST: dict[str, Any] = {
    "subject": {
        "type": "user",
        "id": "u-123",
        "properties": {
            "email": "alice@example.com",
            "roles": ["agent", "viewer"],
            "department": "support",
            "amr": ["pwd", "mfa"],
            "clearance": 3,
        },
    },
    "action": {"name": "read", "properties": {}},
    "resource": {
        "type": "customer_record",
        "id": "c-77",
        "properties": {"owner_dept": "support", "sensitivity": 2, "tags": ["eu", "retail"]},
    },
    "device": {"id": "d-9", "managed": True, "compliant": True, "os": "macOS", "os_version": 15},
    "context": {"ip": "10.2.3.4", "country": "DE", "records": 1},
}

_TEN = ipaddress.ip_network("10.0.0.0/8")


@functools.lru_cache(maxsize=4096)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Parsed once per distinct address, as zerotrust's ``ip_in_cidr`` does."""
    return ipaddress.ip_address(text)


def _p(r: dict[str, Any], part: str) -> dict[str, Any]:
    props: dict[str, Any] = r[part]["properties"]
    return props


# (id, effect, CEL condition, the same in Python, the same in Cedar)
RULES: list[tuple[str, str, str, Callable[[dict[str, Any]], bool], str]] = [
    ("deny-unmanaged", "deny", "!device.managed",
     lambda r: not r["device"]["managed"],
     "!context.device.managed"),
    ("deny-noncompliant", "deny", "!device.compliant",
     lambda r: not r["device"]["compliant"],
     "!context.device.compliant"),
    ("deny-foreign", "deny", 'context.country in ["RU", "KP", "IR"]',
     lambda r: r["context"]["country"] in ("RU", "KP", "IR"),
     'context.ctx.country == "RU" || context.ctx.country == "KP" || context.ctx.country == "IR"'),
    ("deny-bulk", "deny", "context.records > 1000",
     lambda r: r["context"]["records"] > 1000,
     "context.ctx.records > 1000"),
    ("deny-old-os", "deny", 'device.os == "macOS" && device.os_version < 13',
     lambda r: r["device"]["os"] == "macOS" and r["device"]["os_version"] < 13,
     'context.device.os == "macOS" && context.device.os_version < 13'),
    ("deny-outside-network", "deny", '!ip_in_cidr(context.ip, "10.0.0.0/8")',
     lambda r: _address(r["context"]["ip"]) not in _TEN,
     '!(ip(context.ctx.ip).isInRange(ip("10.0.0.0/8")))'),
    ("deny-no-role", "deny", "size(subject.properties.roles) == 0",
     lambda r: len(_p(r, "subject")["roles"]) == 0,
     "context.subject.roles.isEmpty()"),
    ("deny-contractor", "deny", 'subject.properties.email.endsWith("@contractor.example")',
     lambda r: _p(r, "subject")["email"].endswith("@contractor.example"),
     'context.subject.email like "*@contractor.example"'),
    ("deny-clearance", "deny", "resource.properties.sensitivity > subject.properties.clearance",
     lambda r: _p(r, "resource")["sensitivity"] > _p(r, "subject")["clearance"],
     "context.resource.sensitivity > context.subject.clearance"),
    ("deny-other-dept-export", "deny",
     'action.name == "export" && subject.properties.department != resource.properties.owner_dept',
     lambda r: r["action"]["name"] == "export"
     and _p(r, "subject")["department"] != _p(r, "resource")["owner_dept"],
     'context.action == "export" && context.subject.department != context.resource.owner_dept'),
    ("step-up-sensitive", "step_up",
     'resource.properties.sensitivity >= 3 && !("mfa" in subject.properties.amr)',
     lambda r: _p(r, "resource")["sensitivity"] >= 3 and "mfa" not in _p(r, "subject")["amr"],
     'context.resource.sensitivity >= 3 && !(context.subject.amr.contains("mfa"))'),
    ("step-up-tagged", "step_up",
     'resource.properties.tags.exists(t, t == "vip") && !("hwk" in subject.properties.amr)',
     lambda r: any(t == "vip" for t in _p(r, "resource")["tags"])
     and "hwk" not in _p(r, "subject")["amr"],
     'context.resource.tags.contains("vip") && !(context.subject.amr.contains("hwk"))'),
    ("step-up-export", "step_up", 'action.name == "export" && !("mfa" in subject.properties.amr)',
     lambda r: r["action"]["name"] == "export" and "mfa" not in _p(r, "subject")["amr"],
     'context.action == "export" && !(context.subject.amr.contains("mfa"))'),
    ("step-up-new-os", "step_up", "device.os_version > 30",
     lambda r: r["device"]["os_version"] > 30,
     "context.device.os_version > 30"),
    ("allow-own-dept", "allow",
     "subject.properties.department == resource.properties.owner_dept && device.compliant",
     lambda r: _p(r, "subject")["department"] == _p(r, "resource")["owner_dept"]
     and r["device"]["compliant"],
     "context.subject.department == context.resource.owner_dept && context.device.compliant"),
    ("allow-admin", "allow", '"admin" in subject.properties.roles',
     lambda r: "admin" in _p(r, "subject")["roles"],
     'context.subject.roles.contains("admin")'),
    ("allow-auditor-read", "allow",
     '"auditor" in subject.properties.roles && action.name == "read"',
     lambda r: "auditor" in _p(r, "subject")["roles"] and r["action"]["name"] == "read",
     'context.subject.roles.contains("auditor") && context.action == "read"'),
    ("allow-public", "allow", "resource.properties.sensitivity == 0",
     lambda r: _p(r, "resource")["sensitivity"] == 0,
     "context.resource.sensitivity == 0"),
    ("allow-retail-agents", "allow",
     '"retail" in resource.properties.tags && subject.properties.roles.exists(x, x == "agent")',
     lambda r: "retail" in _p(r, "resource")["tags"]
     and any(x == "agent" for x in _p(r, "subject")["roles"]),
     'context.resource.tags.contains("retail") && context.subject.roles.contains("agent")'),
    ("allow-eu-staff", "allow",
     'subject.properties.email.endsWith("@example.com") && context.country == "DE"',
     lambda r: _p(r, "subject")["email"].endswith("@example.com")
     and r["context"]["country"] == "DE",
     'context.subject.email like "*@example.com" && context.ctx.country == "DE"'),
]  # fmt: skip


_LITERAL = re.compile(r'("[^"]*")|(?<![\w.])(\d+)(?![\w.])')
_FIELD = re.compile(r"\.([a-z_]+)\b(?!\()")


def variant(cel: str, n: int, mode: str) -> str:
    """Rule text for resource type ``n``; type 0 is always the 20-rule set itself."""
    if n == 0 or mode == "repeated":
        return cel

    def literal(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            text = m.group(1)[1:-1]
            if "/" in text:  # a CIDR: keep it a valid one
                return f'"10.{n % 256}.0.0/16"'
            return f'"{text}~{n}"'
        return str(int(m.group(2)) + n)

    parts = re.split(r'("[^"]*")', cel)
    out = []
    for i, part in enumerate(parts):
        code = part
        if i % 2 == 0 and mode in ("shapes", "structure"):
            code = _FIELD.sub(lambda m: _renamed(m.group(1), n), part)
        out.append(_LITERAL.sub(literal, code))
    text = "".join(out)
    if mode == "structure":  # the digits of n in base 8 pick a wrapper each: no two alike
        for _ in range(3):
            n, digit = divmod(n, len(_WRAPPERS))
            text = _WRAPPERS[digit].format(text)
    return text


def _renamed(field: str, n: int) -> str:
    """A field of type ``n``'s own name: the request's own fields keep theirs."""
    return f".{field}" if field in ("properties", "name") else f".{field}_{n}"


# Eight ways to write the same boolean, each a different syntax tree.
_WRAPPERS = (
    "!!({})",
    "({}) == true",
    "({}) != false",
    "true && ({})",
    "({}) && true",
    "false || ({})",
    "({}) || false",
    "({}) ? true : false",
)


def policy_yaml(
    name: str = "bench", resource: str = "customer_record", n: int = 0, mode: str = "repeated"
) -> str:
    lines = [f"policy: {name}", f"target: {{resources: [{resource}], actions: [read, export]}}"]
    lines.append("rules:")
    for rule_id, effect, cel, _, _ in RULES:
        escaped = variant(cel, n, mode).replace("'", "''")
        lines.append(f"  - id: {rule_id}\n    effect: {effect}\n    when: '{escaped}'")
    return "\n".join(lines) + "\n"


def median_us(fn: Callable[[], object], number: int, repeat: int) -> float:
    fn()
    timer = timeit.Timer(fn)
    times = timer.repeat(repeat=repeat, number=number)
    return statistics.median(times) / number * 1e6


def hand_written(request: dict[str, Any]) -> str:
    matched = {"deny": False, "step_up": False, "allow": False}
    for _, effect, _, fn, _ in RULES:
        try:
            if fn(request):
                matched[effect] = True
        except (KeyError, TypeError, ValueError):
            matched[effect] = matched[effect] or effect != "allow"
    for effect in ("deny", "step_up", "allow"):
        if matched[effect]:
            return effect
    return "deny"


def scale_texts(types: int, mode: str) -> dict[str, str]:
    return {
        f"p{i:03d}.yaml": policy_yaml(f"p{i:03d}", f"type{i:03d}", i, mode) for i in range(types)
    }


# Every field the 20 conditions read, by section: (name, JSON Schema of the field).
_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "subject": (
        ("email", "{type: string}"),
        ("roles", "{type: array, items: {type: string}}"),
        ("department", "{type: string}"),
        ("amr", "{type: array, items: {type: string}}"),
        ("clearance", "{type: integer}"),
    ),
    "resource": (
        ("owner_dept", "{type: string}"),
        ("sensitivity", "{type: integer}"),
        ("tags", "{type: array, items: {type: string}}"),
    ),
    "device": (
        ("id", "{type: string}"),
        ("managed", "{type: boolean}"),
        ("compliant", "{type: boolean}"),
        ("os", "{type: string}"),
        ("os_version", "{type: integer}"),
    ),
    "context": (
        ("ip", "{type: string, format: ip}"),
        ("country", "{type: string}"),
        ("records", "{type: integer}"),
    ),
}


def _object(fields: list[tuple[str, str]], indent: str) -> str:
    """A closed object schema whose fields are all required."""
    lines = [f"{indent}properties:"]
    lines += [f"{indent}  {name}: {schema}" for name, schema in fields]
    lines.append(f"{indent}required: [{', '.join(name for name, _ in fields)}]")
    lines.append(f"{indent}additionalProperties: false")
    return "\n".join(lines)


def schema_text(types: int, mode: str) -> str:
    """Attribute schemas for :func:`scale_texts`: each resource type's fields (with its
    number where the mode renames fields), and every field name any type reads for the
    subject, the device and the context."""

    def named(section: str, n: int) -> list[tuple[str, str]]:
        renamed = n > 0 and mode in ("shapes", "structure")
        return [(f"{f}_{n}" if renamed else f, t) for f, t in _FIELDS[section]]

    def every(section: str) -> list[tuple[str, str]]:
        return list(dict.fromkeys(f for n in range(types) for f in named(section, n)))

    parts = ["resources:"]
    for n in range(types):
        parts += [f"  type{n:03d}:", _object(named("resource", n), "    ")]
    parts += ["subjects:", "  user:", _object(every("subject"), "    ")]
    for section in ("device", "context"):
        parts += [f"{section}:", _object(every(section), "  ")]
    return "\n".join(parts) + "\n"


def load(texts: dict[str, str]) -> PolicyDecisionPoint:
    return PolicyDecisionPoint.from_texts(
        texts, clock=lambda: NOW, decision_log=NullLog(), behavior=None
    )


def scale(quick: bool) -> None:
    types = 100 if quick else 500
    repeats = 2 if quick else 3
    rules = types * 20
    print(f"\n{rules:,} rules over {types} resource types (load: {repeats} repeats each)")
    kept: PolicyDecisionPoint | None = None
    for mode in ("repeated", "constants", "shapes", "structure"):
        texts = scale_texts(types, mode)
        walls: list[float] = []
        cpus: list[float] = []
        loaded: list[PolicyDecisionPoint] = []
        for _ in range(repeats):
            loaded.clear()  # the previous load is garbage before the next starts
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            loaded.append(load(texts))
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        pdp = loaded.pop()
        conditions = [r.condition for p in pdp.policies.policies for r in p.rules]
        distinct_text = len({c.source for c in conditions if c is not None})
        distinct_obj = len({id(c) for c in conditions})
        distinct_code = len({id(getattr(c, "__code__", c)) for c in conditions})
        print(
            f"  {mode:<10} {distinct_text:>6,} distinct texts, {distinct_obj:>6,} condition "
            f"objects, {distinct_code:>6,} code objects: load wall min {min(walls):.2f} s / "
            f"median {statistics.median(walls):.2f} s, CPU min {min(cpus):.2f} s"
        )
        typed = {**texts, "bench.schema.yaml": schema_text(types, mode)}
        typed_cpus: list[float] = []
        for _ in range(repeats):
            loaded.clear()
            gc.collect()
            cpu = time.process_time()
            loaded.append(load(typed))
            typed_cpus.append(time.process_time() - cpu)
        print(
            f"  {mode:<10} with attribute schemas for every field read: load CPU min "
            f"{min(typed_cpus):.2f} s, {min(typed_cpus) / min(cpus):.2f}x without"
        )
        if mode == "constants":
            kept = pdp
        if mode != "repeated":
            del pdp
            gc.collect()
            tracemalloc.start()
            pdp = load(texts)
            retained, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(
                f"  {'':<10} memory (tracemalloc, separate load): peak "
                f"{peak / rules / 1024:.1f} KiB per rule, "
                f"retained {retained / rules / 1024:.1f} KiB"
            )
            del pdp
    if kept is None:
        return
    request = {**REQUEST, "resource": {**REQUEST["resource"], "type": "type000"}}
    small = load({"bench.yaml": policy_yaml()})

    def matched(pdp: PolicyDecisionPoint, req: dict[str, Any]) -> list[tuple[str, str]]:
        return [(r.rule.split("/")[-1], r.effect.value) for r in pdp.evaluate(req).reasons]

    if matched(kept, request) != matched(small, REQUEST):
        raise SystemExit("the 10,000-rule set and the 20-rule set disagree")
    # interleave so both see the same machine load; median of 9
    big_us, small_us = [], []
    for _ in range(9):
        big_us.append(median_us(lambda: kept.evaluate(request), 1000, 1))
        small_us.append(median_us(lambda: small.evaluate(REQUEST), 1000, 1))
    b, m = statistics.median(big_us), statistics.median(small_us)
    print(
        f"  decision (behavior=None), median of 9: {rules:,} rules {b:.2f} µs, "
        f"20 rules {m:.2f} µs: {b / m:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations, 2,000 rules")
    parser.add_argument(
        "--decisions-only", action="store_true", help="skip the 10,000-rule loading runs"
    )
    args = parser.parse_args()
    number, repeat = (500, 5) if args.quick else (3000, 7)

    started = time.perf_counter()
    _syntax._fast_parser()
    fast_s = time.perf_counter() - started
    started = time.perf_counter()
    _syntax._parser()
    exact_s = time.perf_counter() - started
    print(
        f"one-time Lark grammar build: {fast_s:.2f} s (load parser), "
        f"{exact_s:.2f} s (positions parser, built on the first error only)\n"
    )

    texts = {"bench.yaml": policy_yaml()}
    pdp = load(texts)
    decision = pdp.evaluate(REQUEST)
    if decision.effect.value != hand_written(REQUEST) or decision.errors:
        raise SystemExit(f"engines disagree: {decision.to_dict()}")
    conditions = [r.condition for p in pdp.policies.policies for r in p.rules]
    bindings = {**REQUEST, "data": {}, "behavior": {}, "now": NOW,
                "risk": {"score": 0, "signals": []}}  # fmt: skip

    def rules_only() -> None:
        for c in conditions:
            if c is not None:
                c(bindings)

    slow = PolicyDecisionPoint.from_texts(
        texts, clock=lambda: NOW, decision_log=NullLog(), backend=InterpreterBackend()
    )
    results = {
        "20 compiled conditions alone": median_us(rules_only, number, repeat),
        "hand-written Python (20 lambdas + combining)": median_us(
            lambda: hand_written(REQUEST), number, repeat
        ),
        "evaluate(), behavior=None, compiled CEL": median_us(
            lambda: pdp.evaluate(REQUEST), number, repeat
        ),
        "evaluate(), behavior=None, cel-python interpreter": median_us(
            lambda: slow.evaluate(REQUEST), max(number // 100, 5), 3
        ),
    }
    base = results["hand-written Python (20 lambdas + combining)"]
    print(f"one request, 20 rules, median of {repeat} runs (µs per decision)")
    for name, value in results.items():
        print(f"  {name:<50} {value:>10.2f}   {value / base:>7.1f}x hand-written")
    if not args.decisions_only:
        scale(args.quick)


if __name__ == "__main__":
    main()
