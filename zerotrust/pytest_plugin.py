"""pytest plugin: the ``*_test.yaml`` policy suites of a directory as pytest items.

pytest loads it through the ``pytest11`` entry point in every run of every project where
zerotrust is installed, so it stays inert (no collection, nothing imported beyond pytest)
until the ``zerotrust_policies`` ini option or ``--zerotrust-policies`` names a policy
directory. Only then does it import the engine, load each set once and run its suites.
It imports only what a pytest run has loaded already, and has no asserts for pytest to
rewrite: PYTEST_DONT_REWRITE (no warning when it was imported before pytest registers it).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from zerotrust.cel import Backend
    from zerotrust.errors import PolicyError
    from zerotrust.policy.policy_set import PolicySet
    from zerotrust.testing import CaseResult

__all__ = [
    "PolicyCase",
    "PolicySuite",
    "pytest_addoption",
    "pytest_collect_file",
    "pytest_configure",
]

_INI = "zerotrust_policies"


@dataclasses.dataclass
class _Loaded:
    """One policy directory, loaded once per session (or the error, reported once)."""

    policies: PolicySet | None = None
    backend: Backend | None = None
    error: PolicyError | None = None
    error_reported: bool = False


@dataclasses.dataclass
class _State:
    """The configured directories; lives in ``config.stash``, so nothing is global."""

    roots: tuple[Path, ...]
    loaded: dict[Path, _Loaded] = dataclasses.field(default_factory=dict)

    def root_of(self, path: Path) -> Path | None:
        """The innermost configured directory holding ``path``, as pytest walked to it
        or, through symbolic links, where it really is."""
        for where in (_absolute(path), path.resolve()):
            holding = [r for r in self.roots if {r, r.resolve()} & set(where.parents)]
            if holding:
                return max(holding, key=lambda root: len(root.parts))
        return None

    def load(self, root: Path, shown: str) -> _Loaded:
        if root not in self.loaded:
            from zerotrust.cel import default_backend
            from zerotrust.errors import PolicyError
            from zerotrust.policy.loader import load_path

            backend = default_backend()
            try:
                self.loaded[root] = _Loaded(load_path(shown, backend), backend)
            except PolicyError as exc:
                self.loaded[root] = _Loaded(error=exc)
        return self.loaded[root]


_STATE = pytest.StashKey[_State]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("zerotrust", "zerotrust policy test suites")
    group.addoption(
        "--zerotrust-policies",
        action="append",
        metavar="DIR",
        dest="zerotrust_policies",
        help=f"policy directory whose *_test.yaml suites run as tests (overrides {_INI})",
    )
    parser.addini(
        _INI,
        type="args",
        default=[],
        help="policy directories (relative to rootdir) whose *_test.yaml suites run as tests",
    )


def pytest_configure(config: pytest.Config) -> None:
    given: list[str] | None = config.getoption("zerotrust_policies", None)
    if given:
        base = config.invocation_params.dir
    else:
        given = list(config.getini(_INI))
        base = config.rootpath
    if not given:
        return
    roots = tuple(dict.fromkeys(_absolute(base / p) for p in given))
    missing = [str(root) for root in roots if not root.is_dir()]
    if missing:
        raise pytest.UsageError(f"{_INI}: not a directory: {', '.join(missing)}")
    config.stash[_STATE] = _State(roots)
    _add_to_testpaths_run(config, roots)


def _add_to_testpaths_run(config: pytest.Config, roots: Iterable[Path]) -> None:
    """A bare ``pytest`` (arguments from ``testpaths``) runs the policy suites too;
    explicit arguments, or a run from a subdirectory, choose for themselves.

    The suite files are added, not their directory: a directory argument would
    collect any Python tests under it as well, past ``testpaths``. Hidden files and
    directories are skipped, as the policy loader and pytest's walk skip them.
    """
    if config.args_source is not pytest.Config.ArgsSource.TESTPATHS or config.option.pyargs:
        return
    from zerotrust.policy.loader import is_test_file

    covered = [_absolute(config.invocation_params.dir / arg) for arg in config.args]
    for root in roots:
        for suite in sorted(root.rglob("*")):
            hidden = any(part.startswith(".") for part in suite.relative_to(root).parts)
            if hidden or not suite.is_file() or not is_test_file(suite):
                continue
            if not any(suite == path or path in suite.parents for path in covered):
                config.args.append(str(suite))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> PolicySuite | None:
    state = parent.config.stash.get(_STATE, None)
    if state is None:
        return None
    from zerotrust.policy.loader import is_test_file

    if not is_test_file(file_path):
        return None
    if state.root_of(file_path) is None:
        return None
    suite: PolicySuite = PolicySuite.from_parent(parent, path=file_path)
    return suite


class PolicySuite(pytest.File):
    """One ``*_test.yaml`` file: decides its cases (microseconds each) while collected,
    since their names come from the file; each item then reports its case."""

    def collect(self) -> Iterator[PolicyCase]:
        from zerotrust.errors import PolicyError
        from zerotrust.testing import run_suite_file

        state = self.config.stash[_STATE]
        root = state.root_of(self.path)
        if root is None:  # pragma: no cover - pytest_collect_file checked it
            return
        loaded = state.load(root, _shown(root, self.config))
        if loaded.error is not None:
            if loaded.error_reported:  # the set's one error is on an earlier suite
                return
            loaded.error_reported = True
            raise self.CollectError(f"{_shown(root, self.config)}: {loaded.error}")
        if loaded.policies is None or loaded.backend is None:  # pragma: no cover
            return
        try:
            results = run_suite_file(
                Path(_shown(self.path, self.config)), loaded.policies, loaded.backend
            )
        except PolicyError as exc:
            raise self.CollectError(str(exc)) from None
        names = unique_names([r.name for r in results])
        for name, result in zip(names, results, strict=True):
            yield PolicyCase.from_parent(self, name=name, result=result)


class PolicyCase(pytest.Item):
    """One case of a suite; its failure shows what ``zerotrust test`` prints."""

    def __init__(self, *, result: CaseResult, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.result = result
        if result.suite:  # -k can select a suite by its ``suite:`` name too
            self.extra_keyword_matches.add(result.suite)

    def runtest(self) -> None:
        result = self.result
        if result.passed:
            return
        where = f"{result.file}:{result.line} {result.suite} :: {result.name}"
        lines = [f"    {line}" for line in result.explanation()]
        if self.config.get_verbosity() > 0:  # as ``zerotrust test -v``
            lines += [f"    trace: {line}" for line in result.trace()]
        pytest.fail("\n".join([where, *lines]), pytrace=False)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.result.line - 1, f"{self.result.suite} :: {self.result.name}"


def unique_names(names: list[str]) -> list[str]:
    """Item names, one per case: pytest addresses an item by name, so a repeated case
    name gets its ordinal (``name #2``); ``::`` would split a node id, so it is spaced."""
    used: set[str] = set()
    out: list[str] = []
    for raw in names:
        base = raw.replace("::", ": :") or "case"
        name, count = base, 1
        while name in used:
            count += 1
            name = f"{base} #{count}"
        used.add(name)
        out.append(name)
    return out


def _absolute(path: Path) -> Path:
    """``path`` made absolute with ``..`` removed, symbolic links kept (as pytest walks)."""
    return Path(os.path.normpath(path.absolute()))


def _shown(path: Path, config: pytest.Config) -> str:
    """``path`` as diagnostics should show it: relative to where pytest was started."""
    start = config.invocation_params.dir
    try:
        return os.path.relpath(path, start) if Path.cwd() == start else str(path)
    except ValueError:  # another drive (Windows)
        return str(path)
