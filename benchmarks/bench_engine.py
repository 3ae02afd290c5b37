"""Microseconds per decision: zerotrust against the alternatives, in one run.

    python benchmarks/bench_engine.py [--quick]

Measures, on the same machine in the same process, for one request against the same
20 rules:

* ``PolicyDecisionPoint.evaluate`` (compiled CEL, decision log to the null sink);
* the 20 compiled conditions alone (rule evaluation, no request validation or Decision);
* the same rules as hand-written Python lambdas with the same combining;
* the same PDP on cel-python's interpreter (the reference backend);
* cel-expr-python (Google's C++ CEL runtime), when installed;
* cedarpy (Cedar's Rust engine, ``is_authorized`` on a pre-parsed policy set), when installed.

Then scale: 10,000 rules over 500 resource types (load time, decision time against
the 20-rule case) and memory per loaded rule (tracemalloc peak while loading).
Prints medians; record results in docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import ipaddress
import statistics
import time
import timeit
import tracemalloc
from collections.abc import Callable
from typing import Any

from zerotrust import NullLog, PolicyDecisionPoint
from zerotrust.cel import InterpreterBackend

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
     lambda r: ipaddress.ip_address(r["context"]["ip"]) not in _TEN,
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
    ("allow-auditor-read", "allow", '"auditor" in subject.properties.roles && action.name == "read"',
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
    ("allow-eu-staff", "allow", 'subject.properties.email.endsWith("@example.com") && context.country == "DE"',
     lambda r: _p(r, "subject")["email"].endswith("@example.com") and r["context"]["country"] == "DE",
     'context.subject.email like "*@example.com" && context.ctx.country == "DE"'),
]  # fmt: skip


def policy_yaml(name: str = "bench", resource: str = "customer_record") -> str:
    lines = [f"policy: {name}", f"target: {{resources: [{resource}], actions: [read, export]}}"]
    lines.append("rules:")
    for rule_id, effect, cel, _, _ in RULES:
        escaped = cel.replace("'", "''")
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


def bench_cel_cpp(number: int, repeat: int) -> float | None:
    try:
        from cel_expr_python import cel
    except ImportError:
        return None
    names = ("subject", "action", "resource", "device", "context")
    env = cel.NewEnv(variables=dict.fromkeys(names, cel.Type.DYN))
    # cel-expr-python has no ip_in_cidr: give it a same-cost stand-in on a string prefix.
    programs = [
        env.compile(c.replace('!ip_in_cidr(context.ip, "10.0.0.0/8")', '!context.ip.startsWith("10.")'),
                    disable_check=True)
        for _, _, c, _, _ in RULES
    ]
    data = {k: REQUEST[k] for k in names}

    def run() -> None:
        for p in programs:
            p.eval(data=data).value()

    return median_us(run, number, repeat)


def bench_cedar(number: int, repeat: int) -> float | None:
    try:
        import cedarpy
    except ImportError:
        return None
    texts = []
    for i, (_, effect, _, _, cedar) in enumerate(RULES):
        kind = "permit" if effect == "allow" else "forbid"  # Cedar has no step-up
        texts.append(f'@id("r{i}")\n{kind}(principal, action, resource) when {{ {cedar} }};')
    policies = cedarpy.PolicySet.from_str("\n".join(texts))
    entities = cedarpy.Entities.from_json_str("[]")
    context = {
        "subject": REQUEST["subject"]["properties"],
        "resource": REQUEST["resource"]["properties"],
        "device": REQUEST["device"],
        "ctx": REQUEST["context"],
        "action": REQUEST["action"]["name"],
    }
    request = {
        "principal": 'User::"u-123"',
        "action": 'Action::"read"',
        "resource": 'Record::"c-77"',
        "context": context,
    }
    result = cedarpy.is_authorized(request, policies, entities)
    if result.diagnostics.errors:
        raise SystemExit(f"cedar rules failed: {result.diagnostics.errors}")
    return median_us(lambda: cedarpy.is_authorized(request, policies, entities), number, repeat)


def scale(quick: bool) -> dict[str, float]:
    types = 100 if quick else 500
    per_type = 20
    texts = {
        f"p{i:03d}.yaml": policy_yaml(f"p{i:03d}", f"type{i:03d}") for i in range(types)
    }
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    pdp = PolicyDecisionPoint.from_texts(texts, clock=lambda: NOW, decision_log=NullLog())
    load_s = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    request = {**REQUEST, "resource": {**REQUEST["resource"], "type": f"type{types // 2:03d}"}}
    return {
        "rules": types * per_type,
        "load_s": load_s,
        "bytes_per_rule": peak / (types * per_type),
        "decision_us": median_us(lambda: pdp.evaluate(request), 2000, 7),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations, 2,000 rules")
    args = parser.parse_args()
    number, repeat = (500, 5) if args.quick else (3000, 7)

    texts = {"bench.yaml": policy_yaml()}
    pdp = PolicyDecisionPoint.from_texts(texts, clock=lambda: NOW, decision_log=NullLog())
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
    results: dict[str, float | None] = {
        "zerotrust evaluate() (compiled CEL)": median_us(lambda: pdp.evaluate(REQUEST), number, repeat),
        "20 compiled conditions alone": median_us(rules_only, number, repeat),
        "hand-written Python (20 lambdas + combining)": median_us(
            lambda: hand_written(REQUEST), number, repeat
        ),
        "cel-expr-python (C++ CEL), 20 programs": bench_cel_cpp(number, repeat),
        "cedarpy is_authorized, 20 policies": bench_cedar(number // 10 or 1, repeat),
        "zerotrust evaluate() on cel-python interpreter": median_us(
            lambda: slow.evaluate(REQUEST), max(number // 100, 5), 3
        ),
    }
    base = results["hand-written Python (20 lambdas + combining)"] or 1.0
    print(f"one request, 20 rules, median of {repeat} runs (µs per decision)")
    for name, value in results.items():
        if value is None:
            print(f"  {name:<48} not installed")
        else:
            print(f"  {name:<48} {value:>10.2f}   {value / base:>7.1f}x hand-written")
    evaluate_us = results["zerotrust evaluate() (compiled CEL)"] or 0.0
    cedar = results["cedarpy is_authorized, 20 policies"]
    if cedar:
        print(f"  cedarpy / zerotrust evaluate(): {cedar / evaluate_us:.1f}x")
    big = scale(args.quick)
    print(
        f"\n{big['rules']:,.0f} rules over {big['rules'] / 20:,.0f} resource types: "
        f"load {big['load_s']:.2f} s, {big['bytes_per_rule'] / 1024:.1f} KiB peak per rule, "
        f"decision {big['decision_us']:.2f} µs = {big['decision_us'] / evaluate_us:.2f}x the 20-rule case"
    )


if __name__ == "__main__":
    main()
