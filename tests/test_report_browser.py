"""The report page in a real headless Chromium, driven over the DevTools protocol.

The page must open offline: networking is blocked (every request would go to a proxy
on the discard port, 127.0.0.1:9), the browser reports every request the page makes,
every console message and every uncaught exception, and a screenshot of the whole
page must show the charts. A control page that does load something and log an error
is checked first, so a check that sees nothing is known to be able to see something.

Skipped without Chromium, except under CI=true, where it must run (``.ci/run``
installs Debian's ``chromium``).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from report_helpers import write_log
from websockets.sync.client import ClientConnection, connect

from zerotrust.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT = 60.0
HOT_RED = (0xC4, 0x4E, 0x52)  # the charts' colour for a day standing out
BAR_BLUE = (0x4C, 0x72, 0xB0)


@pytest.fixture(scope="module")
def chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return CHROMIUM


class DevTools:
    """One page target: commands in, and every event kept."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.events: list[dict[str, Any]] = []
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        ident = self.next_id
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + TIMEOUT
        while True:
            message = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == ident:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self.events.append(message)

    def wait_for(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while True:
            for event in self.events:
                if event.get("method") == method:
                    self.events.remove(event)
                    return event
            message = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            self.events.append(message)

    def settle(self, seconds: float = 0.5) -> None:
        """Collect what arrives for a moment (late requests, console messages)."""
        end = time.monotonic() + seconds
        with contextlib.suppress(TimeoutError):
            while (left := end - time.monotonic()) > 0:
                self.events.append(json.loads(self.socket.recv(timeout=left)))

    def open(self, url: str) -> dict[str, list[Any]]:
        """Navigate, wait for the load event, and return what the page did."""
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        self.settle()
        found: dict[str, list[Any]] = {"requests": [], "console": [], "exceptions": [], "log": []}
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Network.requestWillBeSent":
                found["requests"].append(params["request"]["url"])
            elif method == "Runtime.consoleAPICalled":
                found["console"].append((params["type"], params.get("args")))
            elif method == "Runtime.exceptionThrown":
                found["exceptions"].append(params["exceptionDetails"])
            elif method == "Log.entryAdded":
                found["log"].append((params["entry"]["level"], params["entry"]["text"]))
        return found

    def screenshot(self) -> Image.Image:
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        )
        return Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")


@pytest.fixture(scope="module")
def browser(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevTools]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    errors = (profile / "stderr.txt").open("wb")
    process = subprocess.Popen(
        [
            chromium,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--proxy-server=127.0.0.1:9",  # networking blocked: the discard port
            "--proxy-bypass-list=<-loopback>",  # loopback too (the DevTools port is not proxied)
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-extensions",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "--remote-debugging-address=127.0.0.1",
            "--window-size=1280,1600",
            "about:blank",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=errors,
    )
    try:
        socket = connect(_page_socket(profile, process), max_size=None, open_timeout=TIMEOUT)
        with socket:
            tools = DevTools(socket)
            for domain in ("Page", "Network", "Runtime", "Log"):
                tools.call(f"{domain}.enable")
            yield tools
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        errors.close()


def _page_socket(profile: Path, process: subprocess.Popen[bytes]) -> str:
    """The page target's DevTools WebSocket URL, once Chromium has written its port."""
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + TIMEOUT
    while not active.exists() or not active.read_text().strip():
        if process.poll() is not None or time.monotonic() > deadline:
            stderr = (profile / "stderr.txt").read_text(errors="replace")[-2000:]
            pytest.fail(f"chromium did not start (exit {process.poll()}): {stderr}")
        time.sleep(0.1)
    port = active.read_text().split()[0]
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # ignore *_proxy
    with direct.open(f"http://127.0.0.1:{port}/json/list", timeout=TIMEOUT) as answer:
        targets = json.load(answer)
    (page,) = [t for t in targets if t["type"] == "page"]
    return str(page["webSocketDebuggerUrl"])


def test_the_checks_see_a_page_that_loads_and_logs(browser: DevTools, tmp_path: Path) -> None:
    control = tmp_path / "control.html"
    control.write_text(
        "<!DOCTYPE html><title>control</title>"
        '<img src="http://report-test.invalid/pixel.png">'
        "<script>console.error('control error'); undefined_function();</script>"
    )
    found = browser.open(control.as_uri())
    assert "http://report-test.invalid/pixel.png" in found["requests"]
    assert ("error", [{"type": "string", "value": "control error"}]) in found["console"]
    assert found["exceptions"]


def test_report_opens_offline_without_errors_and_shows_its_charts(
    browser: DevTools, tmp_path: Path
) -> None:
    log, page = tmp_path / "decisions.jsonl", tmp_path / "report.html"
    write_log(log)
    report = write_report(log, page)
    assert report.flagged == 1
    url = page.as_uri()
    found = browser.open(url)
    assert found["requests"] == [url]  # the page itself, nothing else
    assert found["console"] == [] and found["exceptions"] == []
    assert [entry for entry in found["log"] if entry[0] in ("error", "warning")] == []
    counts = browser.call(
        "Runtime.evaluate",
        expression="JSON.stringify([document.scripts.length, document.images.length, "
        "document.querySelectorAll('svg').length, "
        "performance.getEntriesByType('resource').length, "
        "document.querySelector('svg').getBoundingClientRect().width])",
        returnByValue=True,
    )["result"]["value"]
    scripts, images, charts, resources, width = json.loads(counts)
    assert (scripts, images, charts, resources) == (0, 0, 1, 0)
    assert width > 600  # the chart is laid out, not collapsed

    shot = browser.screenshot()
    assert shot.width >= 1000 and shot.height > 1500
    colours = shot.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # not blank: text, tables, charts
    pixels = {colour for _, colour in colours}
    assert any(_near(colour, HOT_RED) for colour in pixels)  # the insider's bulk day
    assert any(_near(colour, BAR_BLUE) for colour in pixels)  # her ordinary days


def _near(colour: tuple[int, int, int], target: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 6 for a, b in zip(colour, target, strict=True))
