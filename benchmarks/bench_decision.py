"""What one decision costs as people run it, against hand-written Python and peers, in one run.

    python benchmarks/bench_decision.py [--quick] [--rounds 5]

One request against the same 20 rules (``RULES`` in ``bench_engine.py``), measured in
one process, each engine in turn within every round so all see the same machine load;
the figure is the median over rounds of the per-call mean of ``--number`` calls
(``timeit``, garbage collector off during a batch, as timeit does). Ratios are to the
hand-written Python baseline of the same round set.

Measured:

* hand-written Python: the 20 rules as lambdas with the same combining (the address
  parse cached per distinct address, as zerotrust's ``ip_in_cidr`` does);
* the 20 compiled conditions alone, and ``AccessRequest.from_mapping`` alone;
* ``PolicyDecisionPoint.evaluate``: no behaviour store and the null decision log; the
  default configuration (the in-memory behaviour store, null log); the memory store
  with a ``JsonLinesLog`` to a file;
* the memory store's own work per decision: ``features`` + ``record``, as the PDP calls
  them;
* the same with the log as traffic looks rather than one subject at one instant: 1,000
  subjects in turn and a clock moving 0.2 s a decision (windows slide, buckets are new);
* cel-expr-python (Google's C++ CEL, when installed): the 20 rules as 20 programs over
  one activation, and folded into one expression that returns the effect;
* cedarpy (Cedar's Rust engine, when installed): ``is_authorized`` on a pre-parsed
  policy set with cached (empty) entities; Cedar has no step-up, so step-up rules are
  ``forbid`` and only allow / not allow is compared.

Before anything is timed, every engine decides a set of request variants (allow, each
deny, each step-up) and must agree with the hand-written baseline; the run stops if one
does not. The issue's targets are printed with the figures.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import itertools
import statistics
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_engine import NOW, REQUEST, RULES, hand_written, policy_yaml

from zerotrust import AccessRequest, JsonLinesLog, MemoryBehaviorStore, NullLog, PolicyDecisionPoint


def variants() -> list[dict[str, Any]]:
    """REQUEST and changes of it that make each kind of rule decide."""

    def changed(part: str, key: str, value: Any, inner: str | None = None) -> dict[str, Any]:
        out = copy.deepcopy(REQUEST)
        target = out[part] if inner is None else out[part][inner]
        target[key] = value
        return out

    return [
        REQUEST,
        changed("device", "managed", False),
        changed("context", "country", "KP"),
        changed("context", "ip", "192.0.2.7"),
        changed("subject", "email", "bob@contractor.example", "properties"),
        changed("resource", "sensitivity", 3, "properties"),
        changed("resource", "tags", ["vip", "retail"], "properties"),
        changed("device", "os_version", 31),
        changed("action", "name", "export"),
        changed("resource", "owner_dept", "sales", "properties"),
        changed("subject", "roles", ["viewer"], "properties"),
    ]


def cel_cpp() -> tuple[Callable[[dict[str, Any]], str], Callable[[dict[str, Any]], str]] | None:
    """(20 programs over one activation, one folded expression), or None."""
    try:
        from cel_expr_python import cel  # type: ignore[import-untyped]
    except ImportError:
        return None
    names = ("subject", "action", "resource", "device", "context")
    env = cel.NewEnv(variables=dict.fromkeys(names, cel.Type.DYN))

    def text(c: str) -> str:  # cel-expr-python has no ip_in_cidr: a same-meaning stand-in here
        return c.replace('!ip_in_cidr(context.ip, "10.0.0.0/8")', '!context.ip.startsWith("10.")')

    programs = [(effect, env.compile(text(c), disable_check=True)) for _, effect, c, _, _ in RULES]

    def any_of(effect: str) -> str:
        return " || ".join(f"({text(c)})" for _, e, c, _, _ in RULES if e == effect) or "false"

    folded = env.compile(
        f'({any_of("deny")}) ? "deny" : ({any_of("step_up")}) ? "step_up" : '
        f'({any_of("allow")}) ? "allow" : "deny"',
        disable_check=True,
    )

    def twenty(request: dict[str, Any]) -> str:
        activation = env.Activation(data={k: request[k] for k in names})
        matched = {"deny": False, "step_up": False, "allow": False}
        for effect, program in programs:
            if program.eval(activation).value():
                matched[effect] = True
        return next((e for e in ("deny", "step_up", "allow") if matched[e]), "deny")

    def one(request: dict[str, Any]) -> str:
        result: str = folded.eval(data={k: request[k] for k in names}).value()
        return result

    return twenty, one


def cedar() -> tuple[Callable[[dict[str, Any]], bool], Callable[[dict[str, Any]], Any]] | None:
    """(is the request allowed, its Cedar form), or None without cedarpy."""
    try:
        import cedarpy
    except ImportError:
        return None
    texts = []
    for i, (_, effect, _, _, rule) in enumerate(RULES):
        kind = "permit" if effect == "allow" else "forbid"
        texts.append(f'@id("r{i}")\n{kind}(principal, action, resource) when {{ {rule} }};')
    policies = cedarpy.PolicySet.from_str("\n".join(texts))
    entities = cedarpy.Entities.from_json_str("[]")

    def form(request: dict[str, Any]) -> dict[str, Any]:
        return {
            "principal": f'User::"{request["subject"]["id"]}"',
            "action": f'Action::"{request["action"]["name"]}"',
            "resource": f'Record::"{request["resource"]["id"]}"',
            "context": {
                "subject": request["subject"]["properties"],
                "resource": request["resource"]["properties"],
                "device": request["device"],
                "ctx": request["context"],
                "action": request["action"]["name"],
            },
        }

    def allowed(cedar_request: Any) -> bool:
        result = cedarpy.is_authorized(cedar_request, policies, entities)
        if result.diagnostics.errors:
            raise SystemExit(f"cedar rules failed: {result.diagnostics.errors}")
        return bool(result.allowed)

    return allowed, form


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls per batch")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (median taken)")
    args = parser.parse_args()
    number = 300 if args.quick else 2000

    texts = {"bench.yaml": policy_yaml()}
    bare = PolicyDecisionPoint.from_texts(
        texts, clock=lambda: NOW, decision_log=NullLog(), behavior=None
    )
    default = PolicyDecisionPoint.from_texts(texts, clock=lambda: NOW)
    log_dir = tempfile.TemporaryDirectory()
    log = JsonLinesLog(Path(log_dir.name) / "decisions.jsonl")
    logged = PolicyDecisionPoint.from_texts(texts, clock=lambda: NOW, decision_log=log)
    # As traffic looks: 1,000 subjects in turn, the clock moving 0.2 s a decision (every
    # window slides now and then), the memory store and the decision log.
    moving = [NOW]

    def clock() -> datetime.datetime:
        moving[0] += datetime.timedelta(seconds=0.2)
        return moving[0]

    crowd = [copy.deepcopy(REQUEST) for _ in range(1_000)]
    for i, request in enumerate(crowd):
        request["subject"]["id"] = f"u-{i}"
    busy = PolicyDecisionPoint.from_texts(texts, clock=clock, decision_log=log)
    turns = itertools.cycle(crowd)
    store = MemoryBehaviorStore()
    validated = AccessRequest.from_mapping(REQUEST)
    decided = bare.evaluate(validated)
    conditions = [r.condition for p in bare.policies.policies for r in p.rules]
    bindings = {**REQUEST, "data": {}, "behavior": {}, "now": NOW,
                "risk": {"score": 0, "signals": []}}  # fmt: skip

    def rules_only() -> None:
        for c in conditions:
            if c is not None:
                c(bindings)

    def store_work() -> None:
        store.features(validated, NOW)
        store.record(validated, decided)

    cpp, ced = cel_cpp(), cedar()
    # Cross-check on every variant before timing anything.
    for i, request in enumerate(variants()):
        expected = hand_written(request)
        answers = {
            "evaluate(), no behaviour": bare.evaluate(request).effect.value,
            "evaluate(), memory store": default.evaluate(request).effect.value,
            "evaluate(), memory store, JsonLinesLog": logged.evaluate(request).effect.value,
        }
        if cpp is not None:
            answers["cel-expr-python, 20 programs"] = cpp[0](request)
            answers["cel-expr-python, folded"] = cpp[1](request)
        wrong = {k: v for k, v in answers.items() if v != expected}
        if ced is not None and ced[0](ced[1](request)) != (expected == "allow"):
            wrong["cedarpy"] = "allow" if expected != "allow" else "not allow"
        if wrong:
            raise SystemExit(f"variant {i}: hand-written says {expected}, but {wrong}")
    print(f"cross-checked: {len(variants())} request variants, every engine agrees\n")

    engines: dict[str, Callable[[], object]] = {
        "hand-written Python (20 lambdas + combining)": lambda: hand_written(REQUEST),
        "20 compiled conditions alone": rules_only,
        "AccessRequest.from_mapping (validation, copies)": lambda: AccessRequest.from_mapping(
            REQUEST
        ),
        "evaluate(), no behaviour, null log": lambda: bare.evaluate(REQUEST),
        "evaluate(), memory store, null log (default)": lambda: default.evaluate(REQUEST),
        "evaluate(), memory store, JsonLinesLog": lambda: logged.evaluate(REQUEST),
        "memory store's own work (features + record)": store_work,
        "evaluate(), memory store, JsonLinesLog, 1,000 subjects": lambda: busy.evaluate(
            next(turns)
        ),
    }
    if cpp is not None:
        engines["cel-expr-python (C++), 20 programs"] = lambda: cpp[0](REQUEST)
        engines["cel-expr-python (C++), folded"] = lambda: cpp[1](REQUEST)
    if ced is not None:
        cedar_request = ced[1](REQUEST)
        engines["cedarpy is_authorized (Rust)"] = lambda: ced[0](cedar_request)
    runs: dict[str, list[float]] = {name: [] for name in engines}
    for fn in engines.values():
        fn()
    for _ in range(args.rounds):
        for name, fn in engines.items():
            runs[name].append(timeit.timeit(fn, number=number) / number * 1e6)
    us = {name: statistics.median(values) for name, values in runs.items()}
    base = us["hand-written Python (20 lambdas + combining)"]
    print(f"µs per decision, median of {args.rounds} rounds of {number:,} calls")
    for name, value in us.items():
        spread = f"{min(runs[name]):.1f}-{max(runs[name]):.1f}"
        print(f"  {name:<50} {value:>8.2f} µs  ({spread:>13})  {value / base:>6.2f}x")
    log.close()
    log_dir.cleanup()

    def ratio(name: str) -> float:
        return us[name] / base

    print("\ntargets")
    rows = [
        ("evaluate(), no behaviour, null log", "<= 6x",
         ratio("evaluate(), no behaviour, null log"), 6),
        ("evaluate(), memory store, null log", "<= 10x",
         ratio("evaluate(), memory store, null log (default)"), 10),
        ("evaluate(), memory store, JsonLinesLog", "<= 15x",
         ratio("evaluate(), memory store, JsonLinesLog"), 15),
        ("memory store's own work", "<= 3x",
         ratio("memory store's own work (features + record)"), 3),
    ]  # fmt: skip
    for name, target, value, limit in rows:
        verdict = "met" if value <= limit else "NOT met"
        print(f"  {name:<42} {value:>6.2f}x  target {target:<7} {verdict}")
    if ced is not None:
        value = (
            us["cedarpy is_authorized (Rust)"] / us["evaluate(), memory store, null log (default)"]
        )
        verdict = "met" if value >= 4 else "NOT met"
        print(f"  {'cedarpy / default configuration':<42} {value:>6.2f}   target >= 4    {verdict}")


if __name__ == "__main__":
    main()
