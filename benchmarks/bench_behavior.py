"""What recent behaviour costs: memory store time and space, Redis throughput and round trips.

    python benchmarks/bench_behavior.py [--quick] [--redis-only]
        [--redis-url redis://127.0.0.1:6379/0]

* memory store overhead per decision: ``features`` + ``record`` as the PDP calls them
  (median, microseconds), and the PDP's own median with and without the store;
* the same with peer groups: 1,000 subjects in 10 departments with three days of
  history, so every decision reads its group's statistics (snapshots refreshed
  every ``peer_refresh`` seconds, default 60);
* memory per tracked subject with a day of history at 20 requests an hour
  (tracemalloc, averaged over 300 subjects), and per group member: its row in the
  group table and in the group's snapshot (1,000 members);
* Redis on loopback: decisions per second through ``PolicyDecisionPoint.evaluate``
  beside, in the same rounds, the floor (a bare redis-py ``PING`` and ``EVALSHA`` of
  ``return 1``) and ``evaluate`` with the memory store and without a store; round
  trips per decision counted three ways: the store's counter, socket writes by the
  client (redis-py's ``send_packed_command``), and the server's ``INFO
  commandstats``; the script's server time, and client and server CPU per decision.
  Without ``--redis-url`` a redis-server is started on a free port (needs the
  binary); without either, the Redis part is skipped.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import tracemalloc
from typing import Any

from zerotrust import (
    AccessRequest,
    BehaviorConfig,
    Decision,
    Effect,
    MemoryBehaviorStore,
    PolicyDecisionPoint,
    Risk,
)

START = datetime.datetime(2026, 3, 2, 0, 0, tzinfo=datetime.UTC)
ALLOW_ALL = "policy: p\nrules:\n  - {id: a, effect: allow}\n"


def _request(
    subject: int, resource: int, records: int = 3, department: str | None = None
) -> AccessRequest:
    properties = {} if department is None else {"department": department}
    return AccessRequest.from_mapping(
        {
            "subject": {"id": f"u-{subject}", "properties": properties},
            "action": {"name": "read"},
            "resource": {"type": "customer_record", "id": f"c-{resource}"},
            "device": {"id": f"d-{subject}", "managed": True},
            "context": {"ip": "10.1.2.3", "country": "DE", "records": records},
        }
    )


def memory_overhead(n: int) -> float:
    """Median microseconds of features + record for one decision."""
    store = MemoryBehaviorStore()
    requests = [_request(i % 1_000, i % 97) for i in range(n)]
    times: list[float] = []
    t = START
    step = datetime.timedelta(seconds=0.05)
    allow = Decision(Effect.ALLOW, (), Risk(), None, (), (), (), "r", "id", START)
    gc.disable()
    for req in requests:
        t += step
        began = time.perf_counter_ns()
        store.features(req, t)
        store.record(req, allow)
        times.append(time.perf_counter_ns() - began)
    gc.enable()
    return statistics.median(times) / 1000


def _with_history(subjects: int, days: int) -> tuple[MemoryBehaviorStore, datetime.datetime]:
    """A store whose subjects (in 10 departments) worked ``days`` days; the next day."""
    store = MemoryBehaviorStore()
    for day in range(days):
        t = START + datetime.timedelta(days=day)
        for s in range(subjects):
            for r in range(3):
                store.features(_request(s, 31 * s + r, department=f"dept-{s % 10}"), t)
    return store, START + datetime.timedelta(days=days)


def memory_overhead_peers(n: int) -> float:
    """Median microseconds of features + record with peer statistics to read."""
    store, t = _with_history(1_000, 3)
    requests = [_request(i % 1_000, i % 97, department=f"dept-{i % 10}") for i in range(n)]
    times: list[float] = []
    step = datetime.timedelta(seconds=0.05)
    allow = Decision(Effect.ALLOW, (), Risk(), None, (), (), (), "r", "id", START)
    gc.disable()
    for req in requests:
        t += step
        began = time.perf_counter_ns()
        features = store.features(req, t)
        store.record(req, allow)
        times.append(time.perf_counter_ns() - began)
    gc.enable()
    if "peers" not in features:  # pragma: no cover - the benchmark would be wrong
        raise SystemExit("no peer statistics: the benchmark measures the wrong path")
    return statistics.median(times) / 1000


def memory_per_member(members: int) -> tuple[float, float]:
    """Bytes per member of one group: its table row (a store with the group less the
    same store without groups), and its row in the group's snapshot."""

    def traced(groups: tuple[str, ...]) -> tuple[int, int]:
        store = MemoryBehaviorStore(BehaviorConfig(peer_groups=groups))
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for day in range(2):  # the second day's first requests publish
            t = START + datetime.timedelta(days=day)
            for s in range(members):
                store.features(_request(s, s, department="support"), t)
        gc.collect()
        rows = tracemalloc.get_traced_memory()[0] - before
        later = START + datetime.timedelta(days=1, seconds=61)  # a snapshot of them all
        store.features(_request(0, 0, department="support"), later)
        gc.collect()
        snapshot = tracemalloc.get_traced_memory()[0] - before - rows
        tracemalloc.stop()
        return rows, snapshot

    plain, _ = traced(())
    grouped, snapshot = traced(("department",))
    return (grouped - plain) / members, snapshot / members


def pdp_medians(n: int) -> tuple[float, float]:
    """Median microseconds of evaluate without and with the memory store."""
    out = []
    for behavior in (None, MemoryBehaviorStore()):
        pdp = PolicyDecisionPoint.from_texts(
            {"p.yaml": ALLOW_ALL}, clock=lambda: START, behavior=behavior
        )
        requests = [_request(i % 1_000, i % 97) for i in range(n)]
        times = []
        for req in requests:
            began = time.perf_counter_ns()
            pdp.evaluate(req)
            times.append(time.perf_counter_ns() - began)
        out.append(statistics.median(times) / 1000)
    return out[0], out[1]


def memory_per_subject(subjects: int) -> float:
    """Bytes per subject holding a day of history at 20 requests an hour."""
    store = MemoryBehaviorStore()
    requests = [[_request(s, r) for r in range(40)] for s in range(subjects)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(24 * 20):
        t = START + datetime.timedelta(seconds=180 * i)
        for s in range(subjects):
            store.features(requests[s][i % 40], t)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / subjects


def _start_redis() -> tuple[subprocess.Popen[bytes], str] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    directory = tempfile.mkdtemp()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory, "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.02)
    return process, f"redis://127.0.0.1:{port}/0"


def _per_second(n: int, run: Any) -> tuple[float, float]:
    """Calls per second of ``run`` (called ``n`` times), and this process's CPU time
    per call in microseconds (what the client spends, whatever the machine's load)."""
    began, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        run()
    elapsed, used = time.perf_counter() - began, time.process_time() - cpu
    return n / elapsed, used / n * 1e6


def _decisions(pdp: PolicyDecisionPoint, requests: list[AccessRequest]) -> tuple[float, float]:
    """Decisions per second over ``requests``, and the client's CPU per decision (us)."""
    began, cpu = time.perf_counter(), time.process_time()
    for req in requests:
        pdp.evaluate(req)
    elapsed, used = time.perf_counter() - began, time.process_time() - cpu
    return len(requests) / elapsed, used / len(requests) * 1e6


def _server_cpu(admin: Any) -> float:
    """The Redis server's CPU seconds so far (user + system)."""
    info = admin.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def redis_figures(url: str, n: int, rounds: int = 3) -> dict[str, Any]:
    """Redis decisions per second beside their floor and peers, in one run: each round
    times a bare redis-py ``PING`` and ``EVALSHA`` of ``return 1`` (the round trip
    itself), ``evaluate`` without a store and with the memory store, then ``evaluate``
    with the Redis store; every figure is the median of ``rounds`` rounds, the first
    of which meets every subject for the first time (creating its keys)."""
    import redis
    from redis.connection import Connection

    from zerotrust import RedisBehaviorStore

    sends = [0]
    original = Connection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sends[0] += 1
        original(self, command, check_health)  # type: ignore[no-untyped-call]

    store = RedisBehaviorStore.from_url(url)
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": ALLOW_ALL}, clock=lambda: START, behavior=store)
    others = {
        name: PolicyDecisionPoint.from_texts(
            {"p.yaml": ALLOW_ALL}, clock=lambda: START, behavior=behavior
        )
        for name, behavior in (("none", None), ("memory", MemoryBehaviorStore()))
    }
    requests = [_request(i % 1_000, i % 97) for i in range(n)]
    pdp.evaluate(_request(-1, 0))  # loads the script
    admin = redis.Redis.from_url(url)
    bare = redis.Redis.from_url(url)
    nothing = bare.script_load("return 1")
    trips = store.stats().round_trips
    rows: dict[str, list[float]] = {}
    calls = usec = 0

    def note(key: str, value: float) -> None:
        rows.setdefault(key, []).append(value)

    for _ in range(rounds):
        rate, client = _per_second(n, bare.ping)
        note("ping_per_second", rate)
        note("client_cpu_us_per_ping", client)
        rate, client = _per_second(n, lambda: bare.evalsha(nothing, 0))
        note("bare_evalsha_per_second", rate)
        for name, other in others.items():
            note(f"{name}_decisions_per_second", _decisions(other, requests)[0])
        admin.config_resetstat()  # the server's figures: this store's calls alone
        server = _server_cpu(admin)
        Connection.send_packed_command = counting  # type: ignore[method-assign]
        try:
            rate, client = _decisions(pdp, requests)
        finally:
            Connection.send_packed_command = original  # type: ignore[method-assign]
        note("decisions_per_second", rate)
        note("client_cpu_us_per_decision", client)
        note("server_cpu_us_per_decision", (_server_cpu(admin) - server) / n * 1e6)
        evalsha = admin.info("commandstats")["cmdstat_evalsha"]
        calls += evalsha["calls"]
        usec += evalsha["usec"]
    done = n * rounds
    out: dict[str, Any] = {key: statistics.median(values) for key, values in rows.items()}
    out["ranges"] = {key: (min(values), max(values)) for key, values in rows.items()}
    out |= {
        "round_trips_per_decision_store": (store.stats().round_trips - trips) / done,
        "socket_writes_per_decision": sends[0] / done,
        "evalsha_per_decision_server": calls / done,
        "server_usec_per_evalsha": usec / calls,
    }
    out["parser"] = "hiredis" if redis.utils.HIREDIS_AVAILABLE else "python"
    store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--redis-url", help="use this Redis instead of starting one")
    parser.add_argument("--redis-only", action="store_true", help="only the Redis lines")
    args = parser.parse_args()
    n = 5_000 if args.quick else 50_000
    if not args.redis_only:
        memory_figures(n, quick=args.quick)
    redis_lines(args.redis_url, n // 10)


def memory_figures(n: int, *, quick: bool) -> None:
    """Print the memory store's lines."""
    print(f"memory store: features + record, median   {memory_overhead(n):8.2f} us")
    peers = memory_overhead_peers(n)
    print(f"  the same with peer groups (10 x 100)      {peers:8.2f} us")
    without, with_store = pdp_medians(n // 5)
    print(f"PDP evaluate (allow-all policy), median    {without:8.2f} us without store")
    print(f"                                           {with_store:8.2f} us with memory store")
    subjects = 100 if quick else 300
    print(f"memory per subject (a day at 20 req/h)     {memory_per_subject(subjects):8.0f} bytes")
    row, snapshot = memory_per_member(1_000)
    print(f"memory per group member: table row         {row:8.0f} bytes")
    print(f"                         snapshot row      {snapshot:8.0f} bytes")


def redis_lines(url: str | None, n: int) -> None:
    """Print the Redis lines (a redis-server of its own unless ``url`` is given)."""
    server = None
    if url is None:
        server = _start_redis()
        url = server[1] if server is not None else None
    if url is None:
        print("redis: skipped (no redis-server binary and no --redis-url)")
        return
    try:
        figures = redis_figures(url, n)
    finally:
        if server is not None:
            server[0].kill()
            server[0].wait()
    ranges = figures["ranges"]
    print(f"redis: reply parser                         {figures['parser']:>8}")
    for key, label in (
        ("decisions_per_second", "decisions per second (loopback)"),
        ("ping_per_second", "floor: bare PING per second"),
        ("bare_evalsha_per_second", "floor: bare EVALSHA per second"),
        ("memory_decisions_per_second", "memory store decisions per second"),
        ("none_decisions_per_second", "no store decisions per second"),
    ):
        low, high = ranges[key]
        print(f"redis: {label:<36}{figures[key]:8.0f}  ({low:.0f} to {high:.0f})")
    ratio = figures["decisions_per_second"] / figures["ping_per_second"]
    print(f"redis: Redis decisions / bare PING         {ratio:8.2f}")
    for key in (
        "round_trips_per_decision_store",
        "socket_writes_per_decision",
        "evalsha_per_decision_server",
    ):
        print(f"redis: {key:<36}{figures[key]:8.3f}")
    usec = figures["server_usec_per_evalsha"]
    print(f"redis: server time per script call         {usec:8.1f} us")
    for key, label in (
        ("client_cpu_us_per_decision", "client CPU per decision"),
        ("client_cpu_us_per_ping", "client CPU per bare PING"),
        ("server_cpu_us_per_decision", "server CPU per decision"),
    ):
        print(f"redis: {label:<36}{figures[key]:8.1f} us")


if __name__ == "__main__":
    main()
