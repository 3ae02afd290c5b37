"""Read a policy directory as one consistent snapshot, or report why not.

Policies are replaced while services run: a release symlink swapped to a new
directory (``ln -sfn v2 current``), files renamed over, editors saving by rename,
Kubernetes ConfigMap volumes (``..data -> ..2026_11_30_...``, every file a symlink
``x.yaml -> ..data/x.yaml``). A reader that walks paths can read half of each
version, and a deny rule that moved between files is then in neither half. So:

* the root is opened once and everything is read relative to open directory
  descriptors (``openat``), so a swap of the root cannot mix versions (and the root
  must still lead to the same directory when the reading is done: publishers delete
  the old version after the switch);
* symlinks inside the tree are resolved here, each at most once per attempt, so every
  file read through ``..data`` comes from the same target;
* after reading, every directory listed, symlink followed and file read is checked
  again; if anything changed the attempt is discarded and repeated, a few times, and
  then the load fails. A snapshot that passes was, at the moment of the check, exactly
  what is on disk.

Nothing is skipped silently: an entry that cannot be read, a broken symlink or a
symlink loop is a problem naming it. Entries whose names start with ``.`` (``.git``,
``..data``) are never walked, though symlinks may lead through them.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from zerotrust.errors import Diagnostic

__all__ = ["ATTEMPTS", "MAX_DIRECTORIES", "MAX_FILE_BYTES", "Snapshot", "read_snapshot"]

MAX_FILE_BYTES = 10 * 1024 * 1024
#: Directories are held open while a snapshot is read: this bounds the descriptors used.
MAX_DIRECTORIES = 500
MAX_DEPTH = 32
#: Symlinks followed to resolve one entry (Linux allows 40).
MAX_LINKS = 40
ATTEMPTS = 5

# The link Kubernetes' atomic writer switches to publish a new version of a volume.
_ATOMIC = "..data"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO named like a policy must not hang the load.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


@attrs.frozen
class Snapshot:
    """The files read, ``{path: text}`` in load order (sorted by path components), and
    the problems found (unreadable entries, broken links, files too large...)."""

    texts: dict[str, str]
    problems: tuple[Diagnostic, ...]


def read_snapshot(path: str | os.PathLike[str], wanted: Callable[[str], bool]) -> Snapshot:
    """Read ``path`` (a file, or a directory searched recursively for the file names
    ``wanted`` accepts) from one consistent state of the file system.

    File names in the result and in problems are ``path`` joined with the names as
    walked (through symlinks, not their targets). Never raises for file-system
    reasons: every failure is a problem.
    """
    root = Path(path)
    for attempt in range(ATTEMPTS):
        reader = _Attempt(root, wanted)
        try:
            reader.read()
            if reader.unchanged():
                ordered = sorted(reader.texts, key=lambda item: item[0])
                return Snapshot({name: text for _, name, text in ordered}, tuple(reader.problems))
        finally:
            reader.close()
        if attempt + 1 < ATTEMPTS:
            time.sleep(0.002 * 2**attempt)
    message = (
        f"changed on every one of {ATTEMPTS} attempts to read it: update policies by "
        "switching whole directories (rename one, or swap a symlink), not file by file"
    )
    return Snapshot({}, (Diagnostic(str(root), 0, 0, message),))


class _Broken(Exception):
    """An entry that cannot be resolved (a broken link, a loop); the message says why."""


@attrs.frozen
class _Entry:
    """``name`` in directory ``parent`` was this object (and, for a link, pointed here)."""

    parent: int
    name: str
    identity: tuple[int, ...]
    target: str | None = None

    def holds(self) -> bool:
        try:
            found = os.stat(self.name, dir_fd=self.parent, follow_symlinks=False)
            if _identity(found) != self.identity:
                return False
            return self.target is None or os.readlink(self.name, dir_fd=self.parent) == (
                self.target
            )
        except OSError:
            return False


@attrs.frozen
class _Listing:
    """Directory ``fd`` held exactly these visible entries."""

    fd: int
    entries: frozenset[tuple[str, int]]

    def holds(self) -> bool:
        try:
            return _visible(self.fd) == self.entries
        except OSError:
            return False


@attrs.frozen
class _Root:
    """``path`` still leads to what was read, and it is unchanged.

    A publisher deletes the old version after switching to the new one: while the
    root still leads here, what was read is not being torn down.
    """

    path: Path
    fd: int
    identity: tuple[int, ...]

    def holds(self) -> bool:
        try:
            now = _identity(os.fstat(self.fd))
            return now == self.identity == _identity(os.stat(self.path))
        except OSError:
            return False


def _identity(st: os.stat_result) -> tuple[int, ...]:
    """What changes when an entry is replaced, or a file written to."""
    if stat.S_ISREG(st.st_mode):
        return (st.st_dev, st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return (st.st_dev, st.st_ino, st.st_mode)


def _visible(fd: int) -> frozenset[tuple[str, int]]:
    with os.scandir(fd) as entries:
        return frozenset((e.name, e.inode()) for e in entries if not e.name.startswith("."))


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


class _Attempt:
    """One try at reading the tree: everything it read, and what must still hold."""

    def __init__(self, root: Path, wanted: Callable[[str], bool]) -> None:
        self.root = root
        self.wanted = wanted
        self.texts: list[tuple[tuple[str, ...], str, str]] = []
        self.problems: list[Diagnostic] = []
        self.checks: list[_Entry | _Listing | _Root] = []
        self.changed = False
        self.fds: list[int] = []
        self.dirs: dict[tuple[int, int], int] = {}  # (st_dev, st_ino) -> open descriptor
        self.keys: dict[int, tuple[int, int]] = {}  # and back
        self.links: dict[tuple[int, int, str], tuple[int, str, os.stat_result]] = {}
        self.resolving: set[tuple[int, int, str]] = set()
        self.walked: dict[tuple[int, int], str] = {}

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()

    def unchanged(self) -> bool:
        return not self.changed and all(check.holds() for check in self.checks)

    def problem(self, parts: tuple[str, ...], message: str) -> None:
        self.problems.append(Diagnostic(self.name(parts), 0, 0, message))

    def name(self, parts: tuple[str, ...]) -> str:
        return str(self.root.joinpath(*parts))

    def read(self) -> None:
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            self.problem((), "no such file or directory")
            return
        except OSError as exc:
            self.problem((), f"cannot open: {_reason(exc)}")
            return
        self.fds.append(fd)
        st = os.fstat(fd)
        self.checks.append(_Root(self.root, fd, _identity(st)))
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            self.dirs[key], self.keys[fd], self.walked[key] = fd, key, self.name(())
            self.walk(fd, (), {key})
        elif stat.S_ISREG(st.st_mode):
            self.load(fd, st, ())
        else:
            self.problem((), "not a regular file or directory")

    def walk(self, fd: int, parts: tuple[str, ...], above: set[tuple[int, int]]) -> None:
        try:
            with os.scandir(fd) as listing:
                everything = list(listing)
            if any(e.name == _ATOMIC and e.is_symlink() for e in everything):
                self.walk_atomic(fd, parts, above)
                return
        except _Broken as exc:
            self.problem((*parts, _ATOMIC), str(exc))
            return
        except OSError as exc:
            self.problem(parts, f"cannot read directory: {_reason(exc)}")
            return
        entries = sorted(
            (e for e in everything if not e.name.startswith(".")), key=lambda e: e.name
        )
        self.checks.append(_Listing(fd, frozenset((e.name, e.inode()) for e in entries)))
        for entry in entries:
            here = (*parts, entry.name)
            try:
                if not (
                    entry.is_symlink()
                    or entry.is_dir(follow_symlinks=False)
                    or self.wanted(entry.name)
                ):
                    continue  # a README or an example request: never opened
                parent, name, st = self.lookup(fd, entry.name, 0)
                if stat.S_ISDIR(st.st_mode):
                    self.descend(parent, name, st, here, above)
                elif not self.wanted(entry.name):
                    continue
                elif stat.S_ISREG(st.st_mode):
                    self.read_file(parent, name, st, here)
                else:
                    self.problem(here, "not a regular file")
            except _Broken as exc:
                self.problem(here, str(exc))
            except OSError as exc:
                self.problem(here, f"cannot read: {_reason(exc)}")

    def walk_atomic(self, fd: int, parts: tuple[str, ...], above: set[tuple[int, int]]) -> None:
        """A Kubernetes volume (ConfigMap, Secret, projected): the ``..data`` link names
        the current version, a directory holding every file; the visible entries are
        links into it, created and removed one by one after it is switched. Reading
        the ``..data`` target sees the version whole."""
        parent, name, st = self.lookup(fd, _ATOMIC, 0)
        if not stat.S_ISDIR(st.st_mode):
            raise _Broken("must be a symlink to a directory")
        self.descend(parent, name, st, parts, above)

    def descend(
        self,
        parent: int,
        name: str,
        st: os.stat_result,
        parts: tuple[str, ...],
        above: set[tuple[int, int]],
    ) -> None:
        key = (st.st_dev, st.st_ino)
        if key in above:
            raise _Broken("symlink loop: leads back to a directory that contains it")
        if key in self.walked:
            raise _Broken(f"the same directory as {self.walked[key]} (loaded once only)")
        if len(parts) > MAX_DEPTH:
            raise _Broken(f"directories nested deeper than {MAX_DEPTH} levels")
        fd = self.open_dir(parent, name, st)
        self.walked[key] = self.name(parts)
        self.walk(fd, parts, above | {key})

    def lookup(self, fd: int, name: str, hops: int) -> tuple[int, str, os.stat_result]:
        """The directory and name that ``name`` in ``fd`` finally is (symlinks followed)."""
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            return fd, name, st
        key = (*self.keys[fd], name)
        known = self.links.get(key)
        if known is not None:
            return known
        if key in self.resolving or hops >= MAX_LINKS:
            raise _Broken("symlink loop: the link leads back to itself")
        self.resolving.add(key)
        try:
            resolved = self.follow(fd, name, st, hops)
        finally:
            self.resolving.discard(key)
        self.links[key] = resolved
        return resolved

    def follow(
        self, fd: int, name: str, st: os.stat_result, hops: int
    ) -> tuple[int, str, os.stat_result]:
        target = os.readlink(name, dir_fd=fd)
        self.checks.append(_Entry(fd, name, _identity(st), target))
        steps = [s for s in target.split("/") if s not in ("", ".")] or ["."]
        try:
            where = self.open_dir_path("/") if target.startswith("/") else fd
            for step in steps[:-1]:
                parent, child, found = self.lookup(where, step, hops + 1)
                if not stat.S_ISDIR(found.st_mode):
                    raise _Broken(f"broken symlink to {target}: {step} is not a directory")
                where = self.open_dir(parent, child, found)
            return self.lookup(where, steps[-1], hops + 1)
        except FileNotFoundError:
            raise _Broken(f"broken symlink: {target} does not exist") from None

    def open_dir(self, parent: int, name: str, st: os.stat_result) -> int:
        self.checks.append(_Entry(parent, name, _identity(st)))
        key = (st.st_dev, st.st_ino)
        fd = self.dirs.get(key)
        if fd is not None:
            return fd
        if len(self.dirs) >= MAX_DIRECTORIES:
            raise _Broken(f"more than {MAX_DIRECTORIES} directories")
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        self.fds.append(fd)
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != key:
            self.changed = True  # replaced between stat and open
        self.dirs[key], self.keys[fd] = fd, key
        return fd

    def open_dir_path(self, path: str) -> int:
        fd = os.open(path, _DIR_FLAGS)
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        known = self.dirs.get(key)
        if known is not None:
            os.close(fd)
            return known
        self.fds.append(fd)
        self.dirs[key], self.keys[fd] = fd, key
        return fd

    def read_file(self, parent: int, name: str, st: os.stat_result, parts: tuple[str, ...]) -> None:
        fd = os.open(name, _FILE_FLAGS, dir_fd=parent)
        try:
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
                self.changed = True  # replaced between stat and open
            self.checks.append(_Entry(parent, name, _identity(opened)))
            self.load(fd, opened, parts)
        finally:
            os.close(fd)

    def load(self, fd: int, st: os.stat_result, parts: tuple[str, ...]) -> None:
        if not stat.S_ISREG(st.st_mode):
            self.problem(parts, "not a regular file")
            return
        if st.st_size > MAX_FILE_BYTES:
            self.problem(parts, f"file larger than {MAX_FILE_BYTES} bytes")
            return
        chunks = []
        size = 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
        if len(data) > MAX_FILE_BYTES:
            self.problem(parts, f"file larger than {MAX_FILE_BYTES} bytes")
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            self.problems.append(
                Diagnostic(
                    self.name(parts),
                    line,
                    exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1,
                    f"not UTF-8 text: {exc.reason}",
                )
            )
            return
        self.texts.append((parts, self.name(parts), text))
