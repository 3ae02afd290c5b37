"""A real redis-server for the tests: started on a free loopback port in a temp dir;
and a real Redis Cluster of three masters, joined with ``redis-cli --cluster create``.

Tests that need one skip when a binary is missing (``apt-get install redis-server``,
which brings ``redis-cli`` too), except under CI (``CI=true``), where a missing binary
fails the run.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "RedisCluster",
    "RedisServer",
    "admin_client",
    "redis_server_binary",
    "running_cluster",
    "running_redis",
    "shared_cluster",
]


def redis_server_binary(name: str = "redis-server") -> str:
    """The path of redis-server (or redis-cli), or skip (fail under CI) with how to
    install it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found: apt-get install redis-server (Debian/Ubuntu)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (``port + 10000``) is free too: ephemeral
    ports are mostly above 55535, where the bus port does not exist."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20_000, 30_000)
        try:
            for p in (port, port + 10_000):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


class RedisServer:
    """One redis-server process; can be killed and started again on the same port."""

    def __init__(self, binary: str, directory: Path, *extra: str, port: int | None = None) -> None:
        self.binary = binary
        self.directory = directory
        self.extra = extra  # more redis-server arguments, e.g. "--replicaof", host, port
        self.port = _free_port() if port is None else port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        """Kill the server (SIGKILL: as abrupt as a crash)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


def running_redis(tmp_path: Path, *extra: str) -> Iterator[RedisServer]:
    """Body of a pytest fixture: a started server, stopped afterwards."""
    server = RedisServer(redis_server_binary(), tmp_path, *extra)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def admin_client(server: RedisServer) -> Any:
    """A plain redis-py client of ``server``, for a test to look at or break its keys."""
    import redis

    return redis.Redis.from_url(server.url)


class RedisCluster:
    """Three cluster-enabled masters on 127.0.0.1, no replicas, each in its own
    directory (its own ``nodes.conf``, so a killed node started again rejoins)."""

    #: How long a silent node takes to be marked failed (and the cluster down).
    NODE_TIMEOUT_MS = 1000

    def __init__(self, server: str, cli: str, directory: Path) -> None:
        self.server = server
        self.cli = cli
        self.directory = directory
        self.replicas: list[RedisServer] = []
        self.nodes: list[RedisServer] = []
        self.nodes = [self._node(f"node{i}") for i in range(3)]

    def _node(self, name: str) -> RedisServer:
        node_dir = self.directory / name
        node_dir.mkdir()
        return RedisServer(
            self.server,
            node_dir,
            *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
            *("--cluster-node-timeout", str(self.NODE_TIMEOUT_MS)),
            port=_free_cluster_port(),
        )

    @property
    def url(self) -> str:
        """What a store is pointed at: one node; the client reads the rest."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        options = ("--cluster-replicas", "0", "--cluster-yes")
        subprocess.run(
            [self.cli, "--cluster", "create", *addresses, *options],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )
        self.wait_ok()

    def add_replica(self, master: RedisServer) -> RedisServer:
        """A fourth node, joined as ``master``'s replica and in step with it."""
        replica = self._node(f"replica{len(self.replicas)}")
        replica.start()
        self.replicas.append(replica)
        with self.admin(master) as client:
            master_id = client.execute_command("CLUSTER", "MYID")
        joined = (f"127.0.0.1:{replica.port}", f"127.0.0.1:{master.port}")
        options = ("--cluster-slave", "--cluster-master-id", master_id.decode())
        subprocess.run(
            [self.cli, "--cluster", "add-node", *joined, *options],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with self.admin(replica) as client:
                info = client.info("replication")
            if info.get("role") == "slave" and info.get("master_link_status") == "up":
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("the replica did not catch up with its master")
        self.wait_ok()
        return replica

    def wait_ok(self, timeout: float = 30) -> None:
        """Until every node says ``cluster_state:ok`` and knows every other."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._ok(node) for node in self.nodes + self.replicas):
                return
            time.sleep(0.1)
        raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")

    def _ok(self, node: RedisServer) -> bool:
        import redis

        try:
            with redis.Redis(port=node.port, socket_timeout=1) as client:
                info = client.execute_command("CLUSTER", "INFO")
                text = info.decode() if isinstance(info, bytes) else str(info)
        except (redis.RedisError, OSError):
            return False
        known = f"cluster_known_nodes:{len(self.nodes) + len(self.replicas)}"
        return "cluster_state:ok" in text and known in text

    def admin(self, node: RedisServer) -> Any:
        """A plain client of one node (to SCAN its keys, ask CLUSTER KEYSLOT)."""
        import redis

        return redis.Redis(port=node.port)

    def flushall(self) -> None:
        for node in self.nodes:
            with self.admin(node) as client:
                client.flushall()

    def stop(self) -> None:
        for node in self.nodes + self.replicas:
            node.stop()


_SHARED: list[RedisCluster] = []


def shared_cluster(config: pytest.Config, factory: pytest.TempPathFactory) -> RedisCluster:
    """One cluster for the whole test session (every module that asks gets it),
    stopped when the session ends; skipped without redis-server / redis-cli, except
    under CI. Tests that kill a node start a cluster of their own
    (:func:`running_cluster`)."""
    if not _SHARED:
        cluster = RedisCluster(
            redis_server_binary(), redis_server_binary("redis-cli"), factory.mktemp("cluster")
        )
        config.add_cleanup(cluster.stop)
        cluster.start()
        _SHARED.append(cluster)
    return _SHARED[0]


def running_cluster(directory: Path) -> Iterator[RedisCluster]:
    """Body of a pytest fixture: a started cluster, stopped afterwards (skipped without
    redis-server or redis-cli, except under CI)."""
    cluster = RedisCluster(redis_server_binary(), redis_server_binary("redis-cli"), directory)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
