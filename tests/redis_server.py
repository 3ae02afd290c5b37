"""A real redis-server for the tests: started on a free loopback port in a temp dir.

Tests that need one skip when the binary is missing (``apt-get install redis-server``),
except under CI (``CI=true``), where a missing binary fails the run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["RedisServer", "admin_client", "redis_server_binary", "running_redis"]


def redis_server_binary() -> str:
    """The redis-server path, or skip (fail under CI) with how to install it."""
    path = shutil.which("redis-server")
    if path is None:
        message = "redis-server not found: apt-get install redis-server (Debian/Ubuntu)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process; can be killed and started again on the same port."""

    def __init__(self, binary: str, directory: Path, *extra: str) -> None:
        self.binary = binary
        self.directory = directory
        self.extra = extra  # more redis-server arguments, e.g. "--replicaof", host, port
        self.port = _free_port()
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
