"""Load test of ``zerotrust serve`` on 127.0.0.1, against its own server stack.

    python benchmarks/bench_server.py [--workers 1 2] [--rounds 3] [--duration 10]
                                      [--connections 8]
    python benchmarks/bench_server.py --mode threads [--requests 2000] [--concurrency 4]
                                      [--batch-size 10] [--max-seconds 30]

``--mode wrk`` (the default) starts ``python -m zerotrust serve --insecure-local`` with
the examples/authzen-todo policies and, beside it, a trivial Starlette endpoint on the
same uvicorn, event loop and HTTP parser (it reads the same JSON body and answers
``{"decision": true}``), each on a free loopback port with the same number of worker
processes. It then runs ``wrk -t1 -c8`` (a Lua script POSTs the same single
evaluation) against each in turn, ``--rounds`` times, and prints requests/s, p50 and p99
of every run, the server's CPU time per request (Linux: steadier than requests/s on a
machine shared with other work), and the ratios zerotrust ÷ trivial of each round.
Every answer must be 2xx. ``--workers 1 2`` repeats the comparison with two processes
each.

``--mode threads`` sends a bounded number of requests from ``--concurrency`` client
threads (keep-alive http.client connections): first single evaluations, then batches
(POST /access/v1/evaluations with ``--batch-size`` items).

The servers are stopped at the end. Nothing leaves the machine.
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
import tempfile
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


def start_server(port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    """``zerotrust serve`` with the Todo policies, answering on ``port``."""
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
    if workers > 1:
        command += ["--workers", str(workers)]
    return _started(command, port)


def start_trivial(port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    """The trivial endpoint (this file's ``--trivial``), answering on ``port``."""
    command = [sys.executable, __file__, "--trivial", str(port), "--workers", str(workers)]
    return _started(command, port)


def _started(command: list[str], port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    deadline = time.monotonic() + 30
    with httpx.Client(trust_env=False) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"{command[1:4]} exited with code {process.returncode}")
            try:
                if client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    return process
            except httpx.TransportError:
                time.sleep(0.05)
    stop(process)
    raise SystemExit(f"{command[1:4]} did not start within 30 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- the trivial endpoint: the same stack, no decision -----------------------------------


def trivial_app() -> Any:
    """Starlette, reading and parsing the JSON body, answering ``{"decision": true}``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def evaluation(request: Request) -> JSONResponse:
        json.loads(await request.body())
        return JSONResponse({"decision": True})

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/access/v1/evaluation", evaluation, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def serve_trivial(port: int, workers: int) -> None:
    """uvicorn as ``zerotrust serve`` runs it (loop and http "auto", its access log),
    with as many processes, each on its own SO_REUSEPORT socket of the same port."""
    import uvicorn

    def sock() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if workers > 1:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", port))
        s.listen(1024)
        return s

    sockets = [sock() for _ in range(workers)]
    children = []
    for s in sockets[1:]:
        pid = os.fork()
        if pid == 0:
            sockets = [s]
            children = []
            break
        children.append(pid)
    else:
        sockets = sockets[:1]
    config = uvicorn.Config(trivial_app(), log_level="info", server_header=False)
    try:
        uvicorn.Server(config).run(sockets=sockets)
    finally:
        for pid in children:
            os.kill(pid, 15)
            os.waitpid(pid, 0)


# --- wrk -------------------------------------------------------------------------------

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [=[%s]=]
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d\\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout))
end
"""


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of ``pid`` and its descendants, from /proc (Linux)."""
    try:
        stats = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    except OSError:
        return None
    tree, total = {pid}, 0
    for _ in range(3):  # the server, its workers, their helpers
        tree |= {child for child, (parent, _) in stats.items() if parent in tree}
    total = sum(stats[p][1] for p in tree if p in stats)
    return total / os.sysconf("SC_CLK_TCK")


def run_wrk(
    port: int, script: Path, args: argparse.Namespace, pid: int | None = None
) -> dict[str, float]:
    """One wrk run against the evaluation endpoint: req/s, p50 and p99 (ms), and with
    ``pid`` the server's CPU time per request (µs): steadier than req/s on a machine
    shared with other work."""
    before = cpu_seconds(pid) if pid is not None else None
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}/access/v1/evaluation",
    ]
    out = subprocess.run(
        command, capture_output=True, text=True, timeout=args.duration + 30, check=True
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    requests, micros, p50, p99, bad_status, socket_errors = map(int, line.split()[1:])
    if bad_status or socket_errors:
        raise SystemExit(f"wrk saw {bad_status} non-2xx answers, {socket_errors} socket errors")
    row = {"rps": requests / (micros / 1e6), "p50_ms": p50 / 1000, "p99_ms": p99 / 1000}
    after = cpu_seconds(pid) if pid is not None else None
    if before is not None and after is not None:
        row["cpu_us"] = (after - before) / requests * 1e6
    return row


def compare(args: argparse.Namespace, workers: int, script: Path) -> dict[str, Any]:
    """zerotrust and the trivial endpoint, alternately, ``args.rounds`` times."""
    zt_port, trivial_port = free_port(), free_port()
    servers = [start_server(zt_port, workers)]
    try:
        servers.append(start_trivial(trivial_port, workers))
        runs: dict[str, list[dict[str, float]]] = {"zerotrust": [], "trivial": []}
        for port in (zt_port, trivial_port):  # warm-up
            run_wrk(port, script, argparse.Namespace(**{**vars(args), "duration": 2}))
        pids = {"zerotrust": servers[0].pid, "trivial": servers[1].pid}
        for round_ in range(args.rounds):
            order = [("zerotrust", zt_port), ("trivial", trivial_port)]
            for name, port in order if round_ % 2 == 0 else order[::-1]:
                row = run_wrk(port, script, args, pids[name])
                runs[name].append(row)
                cpu = f"  {row['cpu_us']:>5.0f} µs CPU/req" if "cpu_us" in row else ""
                print(
                    f"  workers {workers}  round {round_ + 1}  {name:<10} "
                    f"{row['rps']:>8.0f} req/s  p50 {row['p50_ms']:>6.2f} ms  "
                    f"p99 {row['p99_ms']:>6.2f} ms{cpu}",
                    flush=True,
                )
    finally:
        for server in servers:
            stop(server)
    med = {
        name: {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        for name, rows in runs.items()
    }
    ratios = [z["rps"] / t["rps"] for z, t in zip(runs["zerotrust"], runs["trivial"], strict=True)]
    p99s = [
        z["p99_ms"] / t["p99_ms"] for z, t in zip(runs["zerotrust"], runs["trivial"], strict=True)
    ]
    cpu = [
        t["cpu_us"] / z["cpu_us"]
        for z, t in zip(runs["zerotrust"], runs["trivial"], strict=True)
        if "cpu_us" in z and "cpu_us" in t
    ]
    cpu_line = (
        f"\n  CPU per request, trivial/zerotrust per round: "
        f"{', '.join(f'{r:.2f}' for r in cpu)} (median {statistics.median(cpu):.2f})"
        if cpu
        else ""
    )
    print(
        f"workers {workers}: zerotrust {med['zerotrust']['rps']:.0f} req/s "
        f"(p50 {med['zerotrust']['p50_ms']:.2f} ms, p99 {med['zerotrust']['p99_ms']:.2f} ms), "
        f"trivial {med['trivial']['rps']:.0f} req/s "
        f"(p50 {med['trivial']['p50_ms']:.2f} ms, p99 {med['trivial']['p99_ms']:.2f} ms)\n"
        f"  req/s ratio zerotrust/trivial per round: "
        f"{', '.join(f'{r:.2f}' for r in ratios)} (median {statistics.median(ratios):.2f}); "
        f"p99 ratio: {', '.join(f'{r:.1f}' for r in p99s)} "
        f"(median {statistics.median(p99s):.1f}){cpu_line}",
        flush=True,
    )
    return {
        "workers": workers,
        "median": med,
        "rps_ratios": ratios,
        "p99_ratios": p99s,
        "cpu_ratios": cpu,
    }


def wrk_mode(args: argparse.Namespace) -> list[dict[str, Any]]:
    import starlette
    import uvicorn.config

    loop = "uvloop" if _importable("uvloop") else "asyncio"
    http = "httptools" if _importable("httptools") else "h11"
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, {args.rounds} rounds; "
        f"python {sys.version.split()[0]}, uvicorn {uvicorn.__version__} ({loop}, {http}), "
        f"starlette {starlette.__version__}, {os.cpu_count()} cores",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_SCRIPT % json.dumps(SINGLE))
        for workers in args.workers:
            rows.append(compare(args, workers, script))
    return rows


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


# --- http.client threads ---------------------------------------------------------------


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


def threads_mode(args: argparse.Namespace) -> list[dict[str, Any]]:
    port = free_port()
    server = start_server(port, args.workers[0])
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
        stop(server)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("wrk", "threads"), default="wrk")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1], help="processes per server (default 1)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="wrk: rounds (default 3)")
    parser.add_argument("--duration", type=int, default=10, help="wrk: seconds a run (default 10)")
    parser.add_argument("--connections", type=int, default=8, help="wrk: -c (default 8)")
    parser.add_argument("--threads", type=int, default=1, help="wrk: -t (default 1)")
    parser.add_argument("--requests", type=int, default=2000, help="per phase (default 2000)")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--batch-size", type=int, default=10, help="items per batch (default 10)")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="per phase (default 30)")
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    parser.add_argument("--trivial", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trivial is not None:
        serve_trivial(args.trivial, args.workers[0])
        return
    if not 0 < args.requests <= 100_000 or not 0 < args.max_seconds <= 300:
        raise SystemExit("--requests must be 1..100000 and --max-seconds 1..300")
    if not 1 <= args.duration <= 120 or not 1 <= args.rounds <= 10:
        raise SystemExit("--duration must be 1..120 and --rounds 1..10")
    if not all(1 <= n <= 16 for n in args.workers) or not 1 <= args.connections <= 256:
        raise SystemExit("--workers must be 1..16 and --connections 1..256")
    rows = wrk_mode(args) if args.mode == "wrk" else threads_mode(args)
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
