"""``zerotrust serve --workers N``: N processes answer on one port, the parent stops
them all, a worker that dies is replaced, and workers never outlive their parent."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from metrics_helpers import samples
from redis_server import RedisServer, redis_server_binary

from zerotrust.server import ServerConfigError, load_config
from zerotrust.server.runner import ListenError, listen_each

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "examples" / "authzen-todo"
PID = re.compile(r'^zerotrust_process_info\{pid="(\d+)"\} 1(?:\.0)?$', re.MULTILINE)
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answering_pid(port: int) -> int | None:
    """The pid /metrics names, over a new connection (so any worker may take it)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/metrics", headers={"Connection": "close"})
        text = connection.getresponse().read().decode()
    except OSError:
        return None
    finally:
        connection.close()
    found = PID.search(text)
    return int(found.group(1)) if found else None


def workers_of(parent: int) -> set[int]:
    """The worker processes (not multiprocessing's helpers) whose parent is ``parent``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in command:
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def wait_for(condition: object, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


@contextmanager
def serve(workers: int, policies: Path = POLICIES) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    command = [sys.executable, "-m", "zerotrust", "serve", "--policies", str(policies)]
    command += ["--insecure-local", "--port", str(port), "--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert wait_for(lambda: answering_pid(port) is not None), "the server did not start"
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def test_two_workers_answer_on_one_port_and_stop_with_their_parent() -> None:
    with serve(2) as (parent, port):
        workers = workers_of(parent.pid)
        assert len(workers) == 2
        seen: set[int] = set()
        for _ in range(200):
            pid = answering_pid(port)
            if pid is not None:
                seen.add(pid)
            if len(seen) == 2:
                break
        assert seen == workers  # both answer, and nothing else does
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=30) == 0
        assert wait_for(lambda: not any(alive(pid) for pid in workers))


def test_a_worker_that_dies_is_replaced() -> None:
    with serve(2) as (parent, port):
        first = workers_of(parent.pid)
        seen: set[int] = set()  # both serve: neither is still starting when killed
        assert wait_for(lambda: seen.add(answering_pid(port) or 0) or first <= seen)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: len(workers_of(parent.pid) - {victim}) == 2)
        replacement = workers_of(parent.pid) - first
        assert len(replacement) == 1
        seen: set[int] = set()
        for _ in range(200):
            pid = answering_pid(port)
            if pid is not None:
                seen.add(pid)
            if replacement <= seen:
                break
        assert replacement <= seen  # the new worker serves
        assert victim not in seen or not alive(victim)


def test_a_replacement_that_cannot_start_leaves_the_others_serving(tmp_path: Path) -> None:
    """The policy files edited into an invalid state while serving, then a worker dies:
    its replacement cannot load them, the other worker serves on, and once the files are
    valid again a replacement starts."""
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    broken = policies / "broken.yaml"
    with serve(2, policies) as (parent, port):
        first = workers_of(parent.pid)
        seen: set[int] = set()  # both serve before the files break (each loaded them)
        assert wait_for(lambda: seen.add(answering_pid(port) or 0) or seen >= first, seconds=30)
        survivor, victim = sorted(first)
        broken.write_text("policy: broken\nrules: [{id: r, effect: stepup}]\n")
        os.kill(victim, signal.SIGKILL)
        # Once a replacement has failed, its socket is closed: only the survivor answers.
        assert wait_for(lambda: all(answering_pid(port) == survivor for _ in range(5)), seconds=40)
        assert parent.poll() is None  # the supervisor serves on
        assert alive(survivor)
        broken.unlink()
        assert wait_for(lambda: len(workers_of(parent.pid) - first) == 1, seconds=40)
        replacement = workers_of(parent.pid) - first
        assert wait_for(
            lambda: any(answering_pid(port) in replacement for _ in range(20)), seconds=20
        )


def test_workers_do_not_outlive_a_killed_parent() -> None:
    with serve(2) as (parent, _):
        workers = workers_of(parent.pid)
        assert len(workers) == 2
        parent.kill()  # no chance to stop them: they notice it is gone
        parent.wait(timeout=10)
        assert wait_for(lambda: not any(alive(pid) for pid in workers))


def test_each_worker_has_its_own_socket_of_one_port() -> None:
    sets = listen_each("127.0.0.1", 0, 3)
    try:
        assert len(sets) == 3
        ports = {sock.getsockname() for each in sets for sock in each}
        assert len(ports) == 1
        assert len({sock.fileno() for each in sets for sock in each}) == 3
    finally:
        for each in sets:
            for sock in each:
                sock.close()


def test_workers_refuse_a_port_another_program_holds() -> None:
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # even one that shares
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(ListenError, match="address already in use"):
            listen_each("127.0.0.1", other.getsockname()[1], 2)


def test_workers_flag_is_checked() -> None:
    command = [sys.executable, "-m", "zerotrust", "serve", "--policies", str(POLICIES)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for bad in ("0", "x", "65"):
        result = subprocess.run(
            [*command, "--workers", bad], env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 2
        assert "--workers" in result.stderr


def test_workers_share_behaviour_through_redis(redis_server: RedisServer, tmp_path: Path) -> None:
    """behavior_redis_url: every worker's PDP records to, and reads from, one store."""
    import redis
    from starlette.testclient import TestClient

    from zerotrust.server.workers import ServeOptions, build

    config = tmp_path / "server.yaml"
    config.write_text(f"insecure_local: true\nbehavior_redis_url: {redis_server.url}\n")
    options = ServeOptions(str(POLICIES), "127.0.0.1", config_file=str(config))
    body = {
        "subject": {"type": "user", "id": "alice"},
        "action": {"name": "can_read_todos"},
        "resource": {"type": "todo", "id": "t-1"},
    }
    for _ in range(2):  # two builds: two workers
        app = build(options).server.config.app
        with TestClient(app, client=("127.0.0.1", 50000)) as client:
            assert client.post("/access/v1/evaluation", json=body).status_code == 200
    assert redis.Redis.from_url(redis_server.url).dbsize() > 0


def test_behavior_redis_url_must_be_a_redis_url(tmp_path: Path) -> None:
    config = tmp_path / "server.yaml"
    config.write_text("insecure_local: true\nbehavior_redis_url: http://example.com\n")
    with pytest.raises(
        ServerConfigError, match="behavior_redis_url: must be a redis://, rediss://"
    ):
        load_config(config)


def scrape(port: int) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/metrics", headers={"Connection": "close"})
        return connection.getresponse().read().decode()
    finally:
        connection.close()


def test_metrics_add_up_across_workers() -> None:
    """Requests spread over both workers; whichever answers /metrics counts them all."""
    body = json.dumps(
        {
            "subject": {"type": "user", "id": "alice"},
            "action": {"name": "can_read_todos"},
            "resource": {"type": "todo", "id": "t-1"},
        }
    )
    sent = 40
    with serve(2) as (_, port):
        for _ in range(sent):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:  # a new connection each time, so the kernel spreads them over the workers
                connection.request(
                    "POST",
                    "/access/v1/evaluation",
                    body,
                    headers={"Content-Type": "application/json", "Connection": "close"},
                )
                response = connection.getresponse()
                assert response.status == 200
                response.read()
            finally:
                connection.close()
        answered: set[str] = set()
        for _ in range(50):
            text = scrape(port)
            found = samples(text)
            decisions = sum(
                v for k, v in found.items() if k.startswith("zerotrust_decisions_total")
            )
            assert decisions == sent  # every worker's, not the answering one's
            requests = found['zerotrust_http_requests_total{endpoint="evaluation",status="200"}']
            assert requests == sent
            answered |= {k for k in found if k.startswith("zerotrust_process_info")}
            if len(answered) == 2:
                break
        assert len(answered) == 2  # both workers answered the scrape with the same sums


def test_readyz_follows_the_redis_store(tmp_path: Path) -> None:
    """Ready while Redis answers, 503 while it is down, ready again when it is back."""
    from starlette.testclient import TestClient

    from zerotrust.server.workers import ServeOptions, build

    server = RedisServer(redis_server_binary(), tmp_path)
    server.start()
    try:
        config = tmp_path / "server.yaml"
        config.write_text(f"insecure_local: true\nbehavior_redis_url: {server.url}\n")
        options = ServeOptions(str(POLICIES), "127.0.0.1", config_file=str(config))
        app = build(options).server.config.app
        with TestClient(app, client=("127.0.0.1", 50000)) as client:
            assert client.get("/readyz").json()["checks"]["behavior_store"] == "ok"
            server.stop()
            r = client.get("/readyz")
            assert r.status_code == 503
            assert r.json()["checks"]["behavior_store"] == "not answering"
            server.start()
            assert wait_for(lambda: client.get("/readyz").status_code == 200)
    finally:
        server.stop()
