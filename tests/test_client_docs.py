"""docs/client.md runs as written: every Python block, in order and in one namespace,
against a real ``zerotrust serve`` app (uvicorn on 127.0.0.1) with the search example,
whose URL and PEP secret the page reads from PDP_URL and PDP_TOKEN."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from test_server_http import SECRET, LiveServer

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "client.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(language: str) -> list[str]:
    return [m.group(2) for m in FENCE.finditer(PAGE.read_text()) if m.group(1) == language]


@pytest.fixture(scope="module")
def live() -> Any:
    server = LiveServer(ROOT / "examples" / "authzen-search")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_every_python_block_runs(live: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDP_URL", live.url)
    monkeypatch.setenv("PDP_TOKEN", SECRET)
    namespace: dict[str, Any] = {"__name__": "client_page"}
    code = blocks("python")
    assert len(code) >= 8
    for i, block in enumerate(code):
        exec(compile(block, f"{PAGE.name} block {i + 1}", "exec"), namespace)
    # The web section's app, through the remote PDP: alice may view record 101, felix not.
    with TestClient(namespace["app"]) as client:
        allowed = client.get("/records/101", headers={"x-user": "alice"})
        assert allowed.status_code == 200 and allowed.json()["decision"]
        assert client.get("/records/101", headers={"x-user": "felix"}).status_code == 403
    namespace["remote"].close()


def test_the_shell_set_up_names_real_options() -> None:
    (_, server) = blocks("sh")
    assert "zerotrust serve --policies examples/authzen-search --config pdp.yaml" in server
    assert (ROOT / "examples" / "authzen-search").is_dir()
