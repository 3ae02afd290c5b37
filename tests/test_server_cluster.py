"""``zerotrust serve`` with ``behavior_redis_url: redis+cluster://...``: two server
processes on 127.0.0.1 share one history on a real Redis Cluster.

The insider of ``zerotrust demo`` (her own laptop, over the VPN, paging through
customer records) is sent alternately to the two servers, and request for request to
a third server with the default memory store (one process): she is stopped at the
same request, by the same rules, with the same records served. The servers decide by
the wall clock, so the three see the same times only because they are sent each
request together.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from redis_server import RedisCluster, shared_cluster
from test_server_workers import free_port, wait_for

from zerotrust import demo as zdemo
from zerotrust.server import ServerConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def redis_cluster(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> RedisCluster:
    """The session's cluster (see ``redis_server.shared_cluster``)."""
    return shared_cluster(pytestconfig, tmp_path_factory)


def _post(port: int, body: dict[str, Any]) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(
            "POST",
            "/access/v1/evaluation",
            body=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        assert response.status == 200
        answer: dict[str, Any] = json.loads(response.read())
        return answer
    finally:
        connection.close()


def _ready(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@contextmanager
def serve(config: Path) -> Iterator[int]:
    port = free_port()
    command = [sys.executable, "-m", "zerotrust", "serve"]
    command += ["--policies", str(zdemo.default_policies()), "--insecure-local"]
    command += ["--port", str(port), "--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            started = wait_for(lambda: _ready(port) or process.poll() is not None, 30)
            if not started or process.poll() is not None:
                process.kill()
                process.wait(timeout=30)
                log.seek(0)
                pytest.fail(f"zerotrust serve did not start: {log.read().decode()[-2000:]}")
            yield port
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)


class Insider:
    """The demo's insider against one PDP (a list of server ports, used in turn): her
    step-ups passed with her own second factor, refusals counted until she gives up."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.sent = 0
        self.amr: tuple[str, ...] = ("pwd",)
        self.served = self.refusals = 0
        self.stopped: tuple[int, tuple[str, ...]] | None = None
        self.done = False

    def send(self, page: int) -> None:
        if self.done:
            return
        request = zdemo.agent_request(
            zdemo.INSIDER,
            f"c-{20_000 + page}",
            zdemo.ATTACK_PAGE,
            device={"id": "d-eve-private", "managed": True, "compliant": True},
            ip="192.0.2.77",
            amr=self.amr,
        )
        body = {
            "subject": {"type": "user", **request["subject"]},
            "action": request["action"],
            "resource": request["resource"],
            "context": {**request["context"], "device": request["device"]},
        }
        answer = _post(self.ports[self.sent % len(self.ports)], body)
        self.sent += 1
        context = answer["context"]
        effect = context["effect"]
        if effect == "allow":
            self.served += zdemo.ATTACK_PAGE
            self.refusals, self.stopped = 0, None
        elif effect == "step_up":
            self.amr = ("pwd", "mfa")
        else:
            assert effect == "deny"
            if self.refusals == 0:
                rules = tuple(r["rule"] for r in context["reasons"] if r.get("effect") == "deny")
                self.stopped = (page, rules)
            self.refusals += 1
            self.done = self.refusals >= zdemo.GIVE_UP_AFTER


def test_the_insider_sent_to_two_servers_on_the_cluster_is_stopped_as_on_one(
    redis_cluster: RedisCluster, tmp_path: Path
) -> None:
    redis_cluster.wait_ok()
    redis_cluster.flushall()
    alone = tmp_path / "alone.yaml"
    alone.write_text("insecure_local: true\n")
    shared = tmp_path / "cluster.yaml"
    shared.write_text(f"insecure_local: true\nbehavior_redis_url: {redis_cluster.url}\n")
    with serve(alone) as single, serve(shared) as a, serve(shared) as b:
        one, two = Insider([single]), Insider([a, b])
        for page in range(zdemo.ATTACK_MAX):
            one.send(page)
            two.send(page)
    assert one.stopped is not None and one.done
    assert two.done
    assert (two.stopped, two.served) == (one.stopped, one.served)
    assert two.sent == one.sent and two.sent > 2  # both servers answered her
    # her keys, written by two processes, are all in her slot
    keys = []
    for node in redis_cluster.nodes:
        with redis_cluster.admin(node) as client:
            keys += [(node.port, k) for k in client.scan_iter(match=b"zt:{user:u-eve}:*")]
            slots = {int(client.execute_command("CLUSTER", "KEYSLOT", k)) for _, k in keys}
    assert len(keys) >= 7 and len({port for port, _ in keys}) == 1 and len(slots) == 1


def test_the_config_takes_a_cluster_url(tmp_path: Path) -> None:
    config = tmp_path / "server.yaml"
    for url in ("redis+cluster://127.0.0.1:7000", "rediss+cluster://redis.example:7000"):
        config.write_text(f"insecure_local: true\nbehavior_redis_url: {url}\n")
        assert load_config(config).behavior_redis_url == url
    config.write_text("insecure_local: true\nbehavior_redis_url: cluster://127.0.0.1:7000\n")
    with pytest.raises(ServerConfigError, match=r"redis\+cluster://"):
        load_config(config)
