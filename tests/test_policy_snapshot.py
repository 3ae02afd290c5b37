"""Loading a policy directory from the file system: one consistent snapshot or nothing.

Real directories, real symlinks, real threads: policies are swapped under the loader in
every way people publish them (a release symlink, a renamed directory, a Kubernetes
ConfigMap volume, an editor saving by rename) while it reloads, and every load must be
exactly one version or a :class:`PolicyError` that keeps the last good set.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT
from publishers import (
    PUBLISHERS,
    V1,
    V2,
    V3,
    VERSIONS,
    ConfigMap,
    Publisher,
    SaveByRename,
    publish_until_stopped,
    write,
)

from zerotrust import Effect, PolicyDecisionPoint, PolicyError

CONTRACTOR = {
    "subject": {"id": "c-1", "properties": {"role": "contractor"}},
    "action": {"name": "read"},
    "resource": {"type": "customer_record", "id": "c-1001"},
}
EMPLOYEE = {**CONTRACTOR, "subject": {"id": "e-1", "properties": {"role": "employee"}}}


def _revision(files: dict[str, str]) -> str:
    return PolicyDecisionPoint.from_texts(files).revision


def _expected_revisions(publisher: type[Publisher]) -> set[str]:
    if publisher is SaveByRename:
        return {_revision({"p.yaml": "---\n".join(v[n] for n in sorted(v))}) for v in VERSIONS}
    return {_revision(v) for v in VERSIONS}


@pytest.mark.parametrize("publisher", PUBLISHERS, ids=lambda p: p.__name__)
def test_each_publishing_pattern_loads_each_version_whole(
    tmp_path: Path, publisher: type[Publisher]
) -> None:
    pub = publisher(tmp_path)
    for files in VERSIONS:
        pub.publish(files)
        pdp = PolicyDecisionPoint.from_path(pub.root)
        assert pdp.revision in _expected_revisions(publisher)
        assert pdp.evaluate(CONTRACTOR).effect is Effect.DENY
        assert pdp.evaluate(EMPLOYEE).effect is Effect.ALLOW


@pytest.mark.parametrize(
    ("publisher", "keep"),
    [(p, False) for p in PUBLISHERS] + [(p, True) for p in PUBLISHERS if p is not SaveByRename],
    ids=lambda p: p.__name__ if isinstance(p, type) else ("kept" if p else "fresh"),
)
def test_reloads_racing_a_publisher_never_mix_versions(
    tmp_path: Path, publisher: type[Publisher], keep: bool
) -> None:
    """Reloads while versions are published as fast as possible: each reload is one
    whole version or a PolicyError (the last good set stays), and a contractor, whom
    every version denies, is never allowed; not by a reload, nor by a decision made
    while reloading."""
    publisher(tmp_path, keep=keep).publish(V1)
    pdp = PolicyDecisionPoint.from_path(publisher(tmp_path).root, behavior=None)
    expected = _expected_revisions(publisher)
    failures: list[str] = []
    counts = {"reloads": 0, "refused": 0, "decisions": 0}
    # Another process publishes, so that it runs while this one reads (no GIL between).
    context = multiprocessing.get_context("spawn")
    stop, published = context.Event(), context.Value("i", 0)
    args = (publisher, tmp_path, keep, stop, published)
    writer = context.Process(target=publish_until_stopped, args=args)
    deciding = threading.Event()

    def decide() -> None:
        while not deciding.is_set():
            if pdp.evaluate(CONTRACTOR).effect is not Effect.DENY:
                failures.append(f"contractor allowed under {pdp.revision}")
            counts["decisions"] += 1
            time.sleep(0.0002)

    decider = threading.Thread(target=decide)
    writer.start()
    decider.start()
    try:
        while published.value < 3:
            time.sleep(0.001)
        # Half a second, and at least 30 reloads (a loaded machine is slower).
        start = time.monotonic()
        while time.monotonic() < start + 0.5 or counts["reloads"] + counts["refused"] < 30:
            if time.monotonic() > start + 10:
                break
            before = pdp.revision
            try:
                revision = pdp.reload()
            except PolicyError:
                counts["refused"] += 1
                if pdp.revision != before:
                    failures.append("a failed reload changed the set")
                continue
            counts["reloads"] += 1
            if revision not in expected:
                failures.append(f"mixed set loaded: {sorted(pdp.policies.sources)}")
    finally:
        stop.set()
        deciding.set()
        writer.join(timeout=30)
        decider.join()
    assert writer.exitcode == 0
    assert not failures, (failures[:5], counts)
    assert counts["reloads"] >= 5 and published.value >= 5, (counts, published.value)


# --- symlinks, hidden entries, unreadable entries -----------------------------------------


def test_kubernetes_configmap_volume_loads_through_its_links(tmp_path: Path) -> None:
    pub = ConfigMap(tmp_path)
    pub.publish(V3)
    pdp = PolicyDecisionPoint.from_path(pub.root)
    assert pdp.revision == _revision(V3)
    assert pdp.policies.sources == (str(pub.root / "a.yaml"), str(pub.root / "c" / "d.yaml"))


def test_hidden_directories_are_never_descended(tmp_path: Path) -> None:
    write(tmp_path, V1)
    write(tmp_path / ".git", {"objects/x.yaml": "policy: [", "HEAD.yaml": "policy: ["})
    write(tmp_path / "..2026_11_30_old", V2)
    pdp = PolicyDecisionPoint.from_path(tmp_path)
    assert pdp.revision == _revision(V1)


def test_symlinked_directory_is_loaded(tmp_path: Path) -> None:
    write(tmp_path / "shared", {"b.yaml": V1["b.yaml"]})
    root = write(tmp_path / "root", {"a.yaml": V1["a.yaml"]})
    (root / "shared").symlink_to("../shared")
    pdp = PolicyDecisionPoint.from_path(root)
    assert pdp.policies.sources == (str(root / "a.yaml"), str(root / "shared" / "b.yaml"))
    assert pdp.evaluate(CONTRACTOR).effect is Effect.DENY


def _problems(root: Path) -> list[tuple[str, str]]:
    with pytest.raises(PolicyError) as info:
        PolicyDecisionPoint.from_path(root)
    return [(d.file, d.message) for d in info.value.diagnostics]


def test_broken_symlink_named_like_a_policy_is_refused(tmp_path: Path) -> None:
    root = write(tmp_path, {"a.yaml": V1["a.yaml"]})
    (root / "deny.yaml").symlink_to("gone/deny.yaml")
    ((file, message),) = _problems(root)
    assert file == str(root / "deny.yaml")
    assert "broken symlink" in message and "gone/deny.yaml" in message


def test_broken_symlink_that_may_have_been_a_directory_is_refused(tmp_path: Path) -> None:
    root = write(tmp_path, {"a.yaml": V1["a.yaml"]})
    (root / "deny").symlink_to("/nonexistent/deny-policies")
    ((file, message),) = _problems(root)
    assert file == str(root / "deny") and "broken symlink" in message


@pytest.mark.parametrize(
    "links",
    [
        {"loop": "."},
        {"loop": ".."},
        {"sub/up": "../.."},
        {"a.yaml": "a.yaml"},
        {"x.yaml": "y.yaml", "y.yaml": "x.yaml"},
        {"deep": "d1", "d1": "d2", "d2": "d3", "d3": "deep"},
    ],
    ids=["self", "parent", "grandparent", "file-self", "file-pair", "dir-chain"],
)
def test_symlink_loop_is_refused_without_hanging(tmp_path: Path, links: dict[str, str]) -> None:
    root = write(tmp_path / "root", {"b.yaml": V1["b.yaml"]})
    (root / "sub").mkdir()
    for name, target in links.items():
        (root / name).symlink_to(target)
    problems = _problems(root)
    assert problems and all("symlink loop" in message for _, message in problems), problems


def test_the_same_directory_twice_is_refused(tmp_path: Path) -> None:
    root = write(tmp_path / "root", V1)
    (root / "again").symlink_to(str(root))
    ((file, message),) = _problems(root)
    assert file == str(root / "again") and "symlink loop" in message


def test_fifo_named_like_a_policy_is_refused_without_hanging(tmp_path: Path) -> None:
    root = write(tmp_path, {"a.yaml": V1["a.yaml"]})
    os.mkfifo(root / "b.yaml")
    ((file, message),) = _problems(root)
    assert file == str(root / "b.yaml") and "not a regular file" in message


# --- entries the loader may not read ---------------------------------------------------


def _load_unprivileged(root: Path) -> list[str]:
    """Load ``root`` in a process that file permissions apply to, and return its
    diagnostics. Root reads everything (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH): when the
    tests run as root, the process runs without those two capabilities."""
    code = (
        "import sys\n"
        "from zerotrust import PolicyDecisionPoint, PolicyError\n"
        "try:\n"
        "    PolicyDecisionPoint.from_path(sys.argv[1])\n"
        "except PolicyError as exc:\n"
        "    print('\\n'.join(f'{d.file}: {d.message}' for d in exc.diagnostics))\n"
        "else:\n"
        "    print('loaded')\n"
    )
    command = [sys.executable, "-c", code, str(root)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv (util-linux) to drop capabilities")
        caps = "-dac_override,-dac_read_search"
        command = [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", "--", *command]
    done = subprocess.run(
        command,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.splitlines()


@pytest.mark.parametrize("mode", [0o000, 0o111, 0o444], ids=["none", "search-only", "list-only"])
def test_unreadable_deny_directory_is_refused_not_skipped(tmp_path: Path, mode: int) -> None:
    """Before: ``deny/`` at mode 000 was skipped and the set loaded without its deny
    policy, so a contractor was allowed."""
    root = write(tmp_path, {"allow.yaml": V1["a.yaml"], "deny/deny.yaml": V1["b.yaml"]})
    assert _load_unprivileged(root) == ["loaded"]  # the check can succeed
    (root / "deny").chmod(mode)
    (line,) = _load_unprivileged(root)
    assert line.startswith(str(root / "deny")) and "Permission denied" in line, line


def test_unreadable_policy_file_is_refused(tmp_path: Path) -> None:
    root = write(tmp_path, V1)
    (root / "b.yaml").chmod(0o000)
    assert _load_unprivileged(root) == [f"{root / 'b.yaml'}: cannot read: Permission denied"]
