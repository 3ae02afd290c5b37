"""Policy versions and the ways people publish them, for the snapshot tests.

Kept apart from the tests (and from zerotrust) so a publishing process starts fast.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

ALLOW = """\
policy: {name}
rules:
  - id: allow-reads
    effect: allow
    when: "true"
"""
DENY = """\
policy: {name}
rules:
  - id: deny-contractors
    effect: deny
    when: "subject.properties.role == 'contractor'"
"""
# Both versions deny contractors, from different files: a mix of them allows. Files
# between the two widen the window in which a torn read can happen.
FILLER = {f"m/{n:02d}.yaml": ALLOW.format(name=f"filler-{n:02d}") for n in range(12)}
V1 = {"a.yaml": ALLOW.format(name="first"), **FILLER, "b.yaml": DENY.format(name="second")}
V2 = {"a.yaml": DENY.format(name="first"), **FILLER, "b.yaml": ALLOW.format(name="second")}
# A version may also add and drop files.
V3 = {"a.yaml": DENY.format(name="first"), "c/d.yaml": ALLOW.format(name="third")}
VERSIONS = (V1, V2, V3)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


class Publisher:
    """Publishes versions at ``self.root`` in one of the ways people do.

    By default each publication writes a new release and deletes the previous one once
    it is switched out. With ``keep`` every version is written once and kept, so the
    switches follow each other as fast as they can (the harshest race for a reader).
    """

    def __init__(self, base: Path, *, keep: bool = False) -> None:
        self.base = base
        self.keep = keep
        self.count = 0

    @property
    def root(self) -> Path:
        raise NotImplementedError

    def publish(self, files: dict[str, str]) -> None:
        raise NotImplementedError

    def release(self, files: dict[str, str], where: Path | None = None, prefix: str = "") -> Path:
        """A directory holding ``files`` (in ``where``, default the base)."""
        self.count += 1
        number = VERSIONS.index(files) if self.keep else self.count
        path = (where or self.base) / f"{prefix}release-{number}"
        return path if path.exists() else write(path, files)

    def retire(self, old: Path) -> None:
        if not self.keep:
            shutil.rmtree(old)


class SymlinkSwap(Publisher):
    """``current -> release-N``, swapped atomically (a new link renamed over)."""

    @property
    def root(self) -> Path:
        return self.base / "current"

    def publish(self, files: dict[str, str]) -> None:
        old = self.root.resolve() if self.root.is_symlink() else None
        release = self.release(files)
        (self.base / "next").symlink_to(release.name)
        (self.base / "next").replace(self.root)
        if old is not None and old != release:
            self.retire(old)


class LnSfn(SymlinkSwap):
    """``ln -sfn``: the old link removed, then the new one made (a gap between)."""

    def publish(self, files: dict[str, str]) -> None:
        old = self.root.resolve() if self.root.is_symlink() else None
        release = self.release(files)
        with contextlib.suppress(FileNotFoundError):
            self.root.unlink()
        self.root.symlink_to(release.name)
        if old is not None and old != release:
            self.retire(old)


class DirectoryRename(Publisher):
    """``mv policies policies.old && mv policies.new policies`` (a gap between)."""

    @property
    def root(self) -> Path:
        return self.base / "policies"

    def publish(self, files: dict[str, str]) -> None:
        if not self.keep:
            release = self.release(files)
            if self.root.exists():
                self.root.rename(self.base / "old")
            release.rename(self.root)
            shutil.rmtree(self.base / "old", ignore_errors=True)
            return
        # Kept versions wait as spare-<n> while another one is in place.
        number = VERSIONS.index(files)
        in_place = self.base / "in-place"
        if in_place.exists():
            current = int(in_place.read_text())
            if current == number:
                return
            self.root.rename(self.base / f"spare-{current}")
        spare = self.base / f"spare-{number}"
        if not spare.exists():
            write(spare, files)
        spare.rename(self.root)
        in_place.write_text(str(number))


class ConfigMap(Publisher):
    """Kubernetes' atomic writer: ``..data -> ..<version>``, visible links into it
    added after the switch and stale ones removed, then the old version deleted."""

    @property
    def root(self) -> Path:
        return self.base / "volume"

    def publish(self, files: dict[str, str]) -> None:
        self.root.mkdir(exist_ok=True)
        version = self.release(files, self.root, prefix="..")
        data = self.root / "..data"
        old = self.root / os.readlink(data) if data.is_symlink() else None
        (self.root / "..data_tmp").symlink_to(version.name)
        (self.root / "..data_tmp").replace(data)
        tops = {name.split("/")[0] for name in files}
        for top in sorted(tops):
            link = self.root / top
            if not link.is_symlink():
                link.symlink_to(f"..data/{top}")
        for link in self.root.iterdir():
            visible = not link.name.startswith(".") and link.is_symlink()
            if visible and link.name not in tops:
                link.unlink()
        if old is not None and old != version:
            self.retire(old)


class SaveByRename(Publisher):
    """An editor saving every file: backup, hidden temporary file renamed over the old
    one. Each file is replaced atomically, not the set: versions live in one file."""

    @property
    def root(self) -> Path:
        return self.base / "edited"

    def publish(self, files: dict[str, str]) -> None:
        self.root.mkdir(exist_ok=True)
        text = "---\n".join(files[name] for name in sorted(files))
        target = self.root / "policies.yaml"
        if target.exists():
            shutil.copyfile(target, self.root / "policies.yaml~")
        temp = self.root / ".policies.yaml.swp"
        temp.write_text(text, encoding="utf-8")
        temp.replace(target)


PUBLISHERS = [SymlinkSwap, LnSfn, DirectoryRename, ConfigMap, SaveByRename]


def publish_until_stopped(
    publisher: type[Publisher], base: Path, keep: bool, stop: Any, published: Any
) -> None:
    pub = publisher(base, keep=keep)
    pub.count = 1000  # after the releases the test process made
    while not stop.is_set():
        for files in VERSIONS:
            pub.publish(files)
            with published.get_lock():
                published.value += 1
            time.sleep(random.random() / 500)
