"""Load test of ``zerotrust serve`` on 127.0.0.1: decisions per second, p50 and p99.

    python benchmarks/bench_server.py [--requests 2000] [--concurrency 4]
                                      [--batch-size 10] [--max-seconds 30]

Starts ``python -m zerotrust serve --insecure-local`` on a free loopback port with
the examples/authzen-todo policies, in its own process, and sends it a bounded
number of requests from ``--concurrency`` client threads (keep-alive http.client connections):
first single evaluations (POST /access/v1/evaluation), then batches
(POST /access/v1/evaluations with ``--batch-size`` items). Each phase stops after
``--requests`` requests or ``--max-seconds``, whichever comes first, and the server
is stopped at the end. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "examples" / "authzen-todo"
MORTY = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
SINGLE = {
    "subject": {"type": "user", "id": MORTY},
    "action": {"name": "can_update_todo"},
    "resource": {
        "type": "todo",
        "id": "7240d0db-8ff0-41ec-98b2-34a096273b91",
        "properties": {"ownerID": "morty@the-citadel.com"},
    },
}
HEADERS = {"content-type": "application/json"}
OWNERS = ["morty@the-citadel.com", "rick@the-citadel.com", "beth@the-smiths.com"]


def batch_body(size: int) -> dict[str, Any]:
    return {
        "subject": SINGLE["subject"],
        "action": SINGLE["action"],
        "evaluations": [
            {
                "resource": {
                    "type": "todo",
                    "id": f"todo-{i}",
                    "properties": {"ownerID": OWNERS[i % len(OWNERS)]},
                }
            }
            for i in range(size)
        ],
    }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "zerotrust",
        "serve",
        "--policies",
        str(POLICIES),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--insecure-local",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    deadline = time.monotonic() + 20
    with httpx.Client(trust_env=False) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"the server exited with code {process.returncode}")
            try:
                if client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    return process
            except httpx.TransportError:
                time.sleep(0.05)
    process.terminate()
    raise SystemExit("the server did not start within 20 s")


def run_phase(
    port: int, path: str, body: dict[str, Any], requests: int, concurrency: int, max_seconds: float
) -> tuple[list[float], float]:
    """Send up to ``requests`` POSTs; return each latency (s) and the wall time."""
    content = json.dumps(body).encode()
    host = "127.0.0.1"
    counter = itertools.count()
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds
    failures: list[str] = []

    def worker() -> None:
        mine: list[float] = []
        # http.client sends headers and a bytes body in one write: no Nagle stall, and
        # far less client overhead than httpx, so the figures are the server's.
        connection = http.client.HTTPConnection(host, port, timeout=30)
        try:
            while next(counter) < requests and time.monotonic() < deadline:
                started = time.perf_counter()
                connection.request("POST", path, body=content, headers=HEADERS)
                response = connection.getresponse()
                text = response.read()
                mine.append(time.perf_counter() - started)
                if response.status != 200:
                    failures.append(f"{response.status} {text[:200]!r}")
                    return
        finally:
            connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if failures:
        raise SystemExit(f"request failed: {failures[0]}")
    return latencies, wall


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, latencies: list[float], wall: float, per_request: int) -> dict[str, Any]:
    row = {
        "phase": name,
        "requests": len(latencies),
        "decisions_per_s": round(len(latencies) * per_request / wall, 1),
        "requests_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
    }
    print(
        f"{name:<22} {row['requests']:>6} req  {row['requests_per_s']:>8} req/s  "
        f"{row['decisions_per_s']:>8} decisions/s  p50 {row['p50_ms']:>7} ms  "
        f"p99 {row['p99_ms']:>7} ms"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per phase (default 2000)")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--batch-size", type=int, default=10, help="items per batch (default 10)")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="per phase (default 30)")
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    args = parser.parse_args()
    if not 0 < args.requests <= 100_000 or not 0 < args.max_seconds <= 300:
        raise SystemExit("--requests must be 1..100000 and --max-seconds 1..300")

    port = free_port()
    server = start_server(port)
    rows = []
    try:
        warm = min(200, args.requests)
        run_phase(port, "/access/v1/evaluation", SINGLE, warm, args.concurrency, 10)
        print(
            f"zerotrust serve, examples/authzen-todo, {args.concurrency} client threads, "
            f"python {sys.version.split()[0]}"
        )
        for name, path, body, per in (
            ("evaluation (single)", "/access/v1/evaluation", SINGLE, 1),
            (
                f"evaluations (batch {args.batch_size})",
                "/access/v1/evaluations",
                batch_body(args.batch_size),
                args.batch_size,
            ),
        ):
            latencies, wall = run_phase(
                port, path, body, args.requests, args.concurrency, args.max_seconds
            )
            rows.append(report(name, latencies, wall, per))
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
