"""A real PostgreSQL for the tests: one server per test session, initdb'd into a temp dir
and listening on 127.0.0.1 on a free port (its unix socket in the same dir).

The cluster's default collation is ICU's ``en`` (where ``"a" < "B" < "é" < "f"``), as a
database made with an ``en_US.UTF-8`` locale orders: what plan filters must not follow.
PostgreSQL refuses to run as root; when the tests run as root, the server runs as the
unprivileged user ``nobody``. Tests that need it skip when ``initdb``/``pg_ctl`` are
missing (``apt-get install postgresql``), except under CI (``CI=true``), where a missing
server fails the run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "postgres_binaries", "running_postgres"]

#: Where Debian puts the binaries (``/usr/lib/postgresql/<major>/bin``), off the PATH.
_DEBIAN = Path("/usr/lib/postgresql")


def postgres_binaries() -> Path:
    """The directory of ``initdb`` and ``pg_ctl``, or skip (fail under CI) with how to
    install them."""
    found = shutil.which("initdb")
    if found is not None and shutil.which("pg_ctl", path=str(Path(found).parent)):
        return Path(found).parent
    versions = sorted(_DEBIAN.glob("*/bin/initdb"), key=lambda p: p.parts[-3])
    if versions:
        return versions[-1].parent
    message = "initdb/pg_ctl not found: apt-get install postgresql (Debian/Ubuntu)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in its own temp dir; ``stop`` removes it."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.directory = Path(tempfile.mkdtemp(prefix="zerotrust-pg-"))
        self.port = _free_port()
        self.user: list[str] = []
        if os.geteuid() == 0:  # postgres refuses root: drop to nobody
            shutil.chown(self.directory, "nobody", "nogroup")
            self.user = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [*self.user, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")

    def start(self) -> None:
        data = self.directory / "data"
        self._run(
            str(self.binaries / "initdb"),
            *("-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"),
            *("--locale=C.UTF-8", "--locale-provider=icu", "--icu-locale=en"),
        )
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.directory} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            str(self.binaries / "pg_ctl"),
            *("-D", str(data), "-o", options, "-l", str(self.directory / "log")),
            *("-w", "-t", "60", "start"),
        )

    def stop(self) -> None:
        data = self.directory / "data"
        if (data / "postmaster.pid").exists():
            self._run(str(self.binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)


def running_postgres() -> Iterator[PostgresServer]:
    """Body of a pytest fixture: a started server, stopped and removed afterwards
    (skipped without PostgreSQL, except under CI)."""
    server = PostgresServer(postgres_binaries())
    try:
        server.start()
        yield server
    finally:
        server.stop()
