"""Policy reloads while deciding: on file changes (watchfiles) and on demand (SIGHUP).

Every decision is made on one whole revision, none fails for a reload, and a set that
does not load leaves the last good one in force.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from zerotrust import Effect, PolicyDecisionPoint
from zerotrust.server.config import ServerConfigError
from zerotrust.server.reload import Reloader, ReloadResult

REQUEST = {
    "subject": {"type": "user", "id": "u-1"},
    "action": {"name": "read"},
    "resource": {"type": "doc", "id": "d-1"},
}


def policy(effect: str) -> str:
    return f"""
policy: p
target: {{resources: [doc], actions: [read]}}
rules:
  - id: r
    effect: {effect}
"""


BROKEN = """
policy: p
target: {resources: [doc], actions: [read]}
rules:
  - id: r
    effect: allow
    when: "subject.properties.department =="
"""


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    (tmp_path / "p.yaml").write_text(policy("allow"))
    return tmp_path


def test_a_reload_swaps_in_the_new_set(policies: Path) -> None:
    pdp = PolicyDecisionPoint.from_path(policies)
    results: list[ReloadResult] = []
    reloader = Reloader(pdp, [policies], on_result=results.append)
    before = pdp.revision
    (policies / "p.yaml").write_text(policy("deny"))
    result = reloader.reload("signal")
    assert result.ok and result.revision == pdp.revision != before
    assert pdp.evaluate(REQUEST).effect is Effect.DENY
    assert results == [result]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_set_that_does_not_load_leaves_the_last_good_one(policies: Path) -> None:
    pdp = PolicyDecisionPoint.from_path(policies)
    good = pdp.revision
    (policies / "p.yaml").write_text(BROKEN)
    # On the logger itself: a server's logging config may stop it propagating to root.
    logger, lines = logging.getLogger("zerotrust.server"), _Lines()
    logger.addHandler(lines)
    try:
        result = Reloader(pdp, [policies]).reload("signal")
    finally:
        logger.removeHandler(lines)
    assert not result.ok and result.revision == good == pdp.revision
    assert result.error is not None and "p.yaml" in result.error
    assert pdp.evaluate(REQUEST).effect is Effect.ALLOW
    assert any(f"revision {good} stays in force" in line for line in lines.lines)


def test_a_file_removed_mid_reload_is_a_failed_reload(policies: Path) -> None:
    pdp = PolicyDecisionPoint.from_path(policies / "p.yaml")
    (policies / "p.yaml").unlink()
    result = Reloader(pdp, [policies]).reload("watch")
    assert not result.ok and pdp.evaluate(REQUEST).effect is Effect.ALLOW


def test_a_changed_file_is_reloaded_once_the_writes_settle(policies: Path) -> None:
    pdp = PolicyDecisionPoint.from_path(policies)
    results: list[ReloadResult] = []
    reloader = Reloader(pdp, [policies], on_result=results.append, debounce_ms=50)
    reloader.start()
    try:
        time.sleep(0.3)  # the watcher is set up
        for effect in ("deny", "allow", "deny"):  # a burst: one reload at its end
            (policies / "p.yaml").write_text(policy(effect))
        deadline = time.monotonic() + 10
        while pdp.evaluate(REQUEST).effect is not Effect.DENY:
            assert time.monotonic() < deadline, "the change was never reloaded"
            time.sleep(0.05)
        (policies / "p.yaml").write_text(BROKEN)
        deadline = time.monotonic() + 10
        while not any(not r.ok for r in results):
            assert time.monotonic() < deadline, "the broken file was never tried"
            time.sleep(0.05)
        assert pdp.evaluate(REQUEST).effect is Effect.DENY  # the last good set
        assert all(r.trigger == "watch" for r in results)
    finally:
        reloader.stop()


def test_decisions_during_a_hundred_reloads_each_come_from_one_whole_revision(
    policies: Path,
) -> None:
    """Some sets deny, some allow, some do not load; a decision's effect always matches
    the revision it names, and no decision fails."""
    pdp = PolicyDecisionPoint.from_path(policies)
    effect_of = {pdp.revision: Effect.ALLOW}
    reloader = Reloader(pdp, [policies])
    stop = threading.Event()
    seen: list[tuple[str, Effect]] = []
    failures: list[BaseException] = []

    def decide() -> None:
        try:
            while not stop.is_set():
                decision = pdp.evaluate(REQUEST)
                seen.append((decision.policy_revision, decision.effect))
        except BaseException as exc:  # pragma: no cover - the assertion says what
            failures.append(exc)

    threads = [threading.Thread(target=decide) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for n in range(100):
            text = BROKEN if n % 7 == 3 else policy("deny" if n % 2 else "allow")
            # Rules differ by a comment so that each good set is its own revision.
            (policies / "p.yaml").write_text(f"# {n}\n{text}")
            result = reloader.reload("signal")
            if result.ok:
                effect_of[result.revision] = Effect.DENY if n % 2 else Effect.ALLOW
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert len(seen) > 100
    assert all(effect_of[revision] is effect for revision, effect in seen)


def test_the_debounce_is_checked() -> None:
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": policy("allow")})
    for bad in (-1, 1.5, True, "500"):
        with pytest.raises(ServerConfigError, match="debounce_ms"):
            Reloader(pdp, [], debounce_ms=bad)  # type: ignore[arg-type]
