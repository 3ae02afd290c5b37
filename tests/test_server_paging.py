"""Search page tokens signed with ``paging_secret``: a page from one app, worker or
replica continues on another with the same secret, and only there; and the behaviour
store ``zerotrust serve`` builds from the ``behavior`` section."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from zerotrust import PolicyDecisionPoint
from zerotrust.behavior.memory import MemoryBehaviorStore
from zerotrust.behavior.redis import RedisBehaviorStore
from zerotrust.server import ServerConfig, create_app
from zerotrust.server import workers as workers_module
from zerotrust.server.workers import ServeOptions, build, configure, share_paging_secret

ROOT = Path(__file__).resolve().parents[1]
SEARCH = ROOT / "examples" / "authzen-search"
SECRET = "paging-tests-secret-0123456789"
PAGING = "q" * 43
QUERY: dict[str, Any] = {
    "subject": {"type": "user", "id": "alice"},
    "action": {"name": "view"},
    "resource": {"type": "record"},
}
PAGE = "/access/v1/search/resource"


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The server's warnings (building a server sets up logging anew: read them here)."""
    found: list[str] = []

    class Recorder:
        def warning(self, message: str, *args: Any) -> None:
            found.append(message % args)

    monkeypatch.setattr(workers_module, "_log", Recorder())
    return found


def app_with(paging_secret: str | None) -> TestClient:
    config = ServerConfig(bearer_secrets=(SECRET,), paging_secret=paging_secret)
    app = create_app(PolicyDecisionPoint.from_path(SEARCH), config=config)
    return TestClient(app, headers={"authorization": f"Bearer {SECRET}"})


def first_page(client: TestClient) -> dict[str, Any]:
    answer = client.post(PAGE, json={**QUERY, "page": {"limit": 2}})
    assert answer.status_code == 200
    page: dict[str, Any] = answer.json()
    assert page["page"]["next_token"]
    return page


def test_a_page_token_is_accepted_by_another_app_with_the_same_secret_only() -> None:
    with app_with(PAGING) as one, app_with(PAGING) as two:
        page = first_page(one)
        body = {**QUERY, "page": {"limit": 2, "token": page["page"]["next_token"]}}
        on_one = one.post(PAGE, json=body)
        on_two = two.post(PAGE, json=body)
        assert on_two.status_code == 200
        assert on_two.json() == on_one.json()
        assert on_two.json()["results"] != page["results"]  # the next page, not the first
    with app_with("r" * 43) as other, app_with(None) as unconfigured:
        for client in (other, unconfigured):
            refused = client.post(PAGE, json=body)
            assert refused.status_code == 400
            assert refused.text.startswith("page.token")


def test_without_a_paging_secret_each_app_has_its_own_key() -> None:
    with app_with(None) as one, app_with(None) as two:
        token = first_page(one)["page"]["next_token"]
        body = {**QUERY, "page": {"limit": 2, "token": token}}
        assert one.post(PAGE, json=body).status_code == 200
        assert two.post(PAGE, json=body).status_code == 400


def test_serve_without_a_secret_warns_that_pages_stay_in_the_process(
    warnings: list[str],
) -> None:
    options = ServeOptions(str(SEARCH), "127.0.0.1", insecure_local=True, environ=())
    built = build(options)
    assert warnings == []  # not before it serves: it may never start
    built.server._on_serving()  # what uvicorn calls once listening
    (warning,) = warnings
    assert "no paging_secret configured: generated one for this process" in warning
    warnings.clear()
    environ = (("ZEROTRUST_PAGING_SECRET", PAGING),)
    built = build(ServeOptions(str(SEARCH), "127.0.0.1", insecure_local=True, environ=environ))
    assert built.server._on_serving is None  # nothing to warn about when serving
    assert warnings == []


def test_the_supervisor_makes_one_secret_for_its_workers(
    warnings: list[str],
) -> None:
    options = ServeOptions(str(SEARCH), "127.0.0.1", insecure_local=True, environ=())
    shared = share_paging_secret(options, configure(options))
    assert shared.paging_secret is not None and len(shared.paging_secret) >= 43
    assert shared.paging_secret not in repr(shared)
    built = build(shared)  # as each worker does: it warns not (the supervisor does)
    assert built.server._on_serving is None
    assert warnings == []
    configured = ServeOptions(
        str(SEARCH),
        "127.0.0.1",
        insecure_local=True,
        environ=(("ZEROTRUST_PAGING_SECRET", PAGING),),
    )
    assert share_paging_secret(configured, configure(configured)) == configured


# --- two workers over real HTTP ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid_of(connection: http.client.HTTPConnection) -> int:
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    line = next(x for x in text.splitlines() if x.startswith("zerotrust_process_info{pid="))
    return int(line.split('"')[1])


def post(connection: http.client.HTTPConnection, body: dict[str, Any]) -> tuple[int, Any]:
    connection.request("POST", PAGE, json.dumps(body), {"content-type": "application/json"})
    answer = connection.getresponse()
    data = answer.read()
    return answer.status, json.loads(data) if answer.status == 200 else data.decode()


@contextmanager
def serving(log: Path, *extra: str, env: dict[str, str] | None = None) -> Iterator[int]:
    port = free_port()
    command = [sys.executable, "-m", "zerotrust", "serve", "--policies", str(SEARCH)]
    command += ["--insecure-local", "--port", str(port), "--workers", "2", *extra]
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, env=environ, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 30
        seen: set[int] = set()
        while len(seen) < 2:  # both workers answer
            assert process.poll() is None and time.monotonic() < deadline, "did not start"
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                seen.add(pid_of(connection))
            except (OSError, StopIteration):
                time.sleep(0.1)
            finally:
                connection.close()
        yield port
    finally:
        process.kill()
        process.wait(timeout=30)


def on_another_worker(port: int, pid: int) -> http.client.HTTPConnection:
    """A connection the other worker holds (the kernel spreads new connections)."""
    for _ in range(200):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        if pid_of(connection) != pid:
            return connection
        connection.close()
    pytest.fail("every connection went to one worker")


@pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT spreads connections")
@pytest.mark.parametrize("configured", [False, True], ids=["generated", "configured"])
def test_with_two_workers_a_page_from_one_continues_on_the_other(
    configured: bool, tmp_path: Path
) -> None:
    env = {"ZEROTRUST_PAGING_SECRET": PAGING} if configured else {}
    log = tmp_path / "stderr.txt"
    with serving(log, env=env) as port:
        first = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        pid = pid_of(first)
        status, page = post(first, {**QUERY, "page": {"limit": 2}})
        assert status == 200 and page["page"]["next_token"]
        other = on_another_worker(port, pid)
        body = {**QUERY, "page": {"limit": 2, "token": page["page"]["next_token"]}}
        status, following = post(other, body)
        assert status == 200, following
        assert following["results"] and following["results"] != page["results"]
        assert post(first, body) == (status, following)  # the same page on either worker
        first.close()
        other.close()
    warned = log.read_text(encoding="utf-8").count("no paging_secret configured")
    assert warned == (0 if configured else 1)  # by the supervisor, for its workers


# --- the behaviour store from the configuration ---------------------------------------------


def built_with(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]
) -> tuple[Any, dict[str, Any]]:
    seen: dict[str, Any] = {}
    real = workers_module.create_app

    def recording(pdp: PolicyDecisionPoint, **options: Any) -> Any:
        seen.update(options, pdp=pdp)
        return real(pdp, **options)

    monkeypatch.setattr(workers_module, "create_app", recording)
    environ = {"ZEROTRUST_PAGING_SECRET": PAGING, **environ}
    options = ServeOptions(
        str(SEARCH), "127.0.0.1", insecure_local=True, environ=tuple(environ.items())
    )
    built = build(options)
    return built.pdp._behavior, seen  # the store the PDP was given


def test_the_memory_store_takes_the_behavior_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    store, seen = built_with(
        monkeypatch,
        {"ZEROTRUST_BEHAVIOR__MAX_SUBJECTS": "7", "ZEROTRUST_BEHAVIOR__ON_STORE_ERROR": "evaluate"},
    )
    assert isinstance(store, MemoryBehaviorStore)
    assert store.config.max_subjects == 7
    assert store.on_store_error.value == "evaluate"
    assert seen["decide_inline"] is True


@pytest.mark.parametrize(
    "environ",
    [
        {"ZEROTRUST_BEHAVIOR__STORE": "redis://127.0.0.1:1/0"},
        {"ZEROTRUST_BEHAVIOR_REDIS_URL": "redis://127.0.0.1:1/0"},  # the old spelling
    ],
    ids=["store", "behavior_redis_url"],
)
def test_a_redis_store_takes_the_behavior_settings_and_decides_in_threads(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]
) -> None:
    store, seen = built_with(monkeypatch, {**environ, "ZEROTRUST_BEHAVIOR__TIMEOUT": "0.2"})
    assert isinstance(store, RedisBehaviorStore)
    assert store.config.timeout == 0.2
    assert seen["decide_inline"] is False
    assert seen["config"].behavior.redis_url == "redis://127.0.0.1:1/0"
