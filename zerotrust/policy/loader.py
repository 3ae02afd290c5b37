"""Files to a compiled :class:`PolicySet`, all or nothing.

Layout of a policy directory (searched recursively, in sorted path order):

* ``*.yaml`` / ``*.yml``: policies, one per YAML document;
* ``*_test.yaml`` / ``*_test.yml``: policy test suites, skipped here;
* ``*.data.yaml`` / ``*.data.yml`` / ``*.data.json``: policy data; each file is a
  mapping whose top-level keys become keys of the ``data`` variable.

Only :class:`PolicyError` leaves this module: a set that cannot be loaded for any
reason, even one we did not foresee, is refused whole with a diagnostic.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any

from zerotrust.cel import Backend
from zerotrust.errors import Diagnostic, PolicyError
from zerotrust.policy.compile import PolicySet, check_conditions, compile_policies
from zerotrust.policy.located import YamlProblem, load_documents, load_json
from zerotrust.policy.model import PolicySpec
from zerotrust.policy.snapshot import MAX_FILE_BYTES, read_snapshot
from zerotrust.policy.validate import validate_policy

__all__ = ["is_data_file", "is_policy_file", "is_test_file", "load_path", "load_texts"]

_YAML = (".yaml", ".yml")
_log = logging.getLogger("zerotrust")


def is_test_file(path: str | PurePath) -> bool:
    return PurePath(path).name.endswith(("_test.yaml", "_test.yml"))


def is_data_file(path: str | PurePath) -> bool:
    return PurePath(path).name.endswith((".data.yaml", ".data.yml", ".data.json"))


def is_policy_file(path: str | PurePath) -> bool:
    return PurePath(path).suffix in _YAML and not is_test_file(path) and not is_data_file(path)


def _loaded(name: str) -> bool:
    return is_policy_file(name) or is_data_file(name)


def load_path(path: str | os.PathLike[str], backend: Backend) -> PolicySet:
    """Load a policy file or a directory of them, read from one consistent state of
    the file system (see :mod:`zerotrust.policy.snapshot`).

    Raises :class:`PolicyError` listing every problem: unreadable or vanishing
    entries, broken symlinks and symlink loops included.
    """
    origin = str(PurePath(path))
    return _only_policy_errors(origin, lambda: _load_path(path, origin, backend))


def load_texts(
    texts: Mapping[str, str],
    backend: Backend,
    *,
    problems: list[Diagnostic] | None = None,
    origin: str = "<policies>",
) -> PolicySet:
    """Load policies from ``{file name: text}``; data files are recognised by name."""
    found = list(problems or [])
    return _only_policy_errors(origin, lambda: _load_texts(texts, backend, found, origin))


def _only_policy_errors(origin: str, load: Callable[[], PolicySet]) -> PolicySet:
    try:
        return load()
    except PolicyError:
        raise
    except Exception as exc:
        # Every failure we know of is a diagnostic; this one is not, so it is a bug.
        # The set is still refused whole, and the details go to the log, not the user.
        _log.exception("loading the policy set failed unexpectedly")
        message = f"the policy set could not be loaded (internal error: {type(exc).__name__})"
        raise PolicyError([Diagnostic(origin, 0, 0, message)]) from exc


def _load_path(path: str | os.PathLike[str], origin: str, backend: Backend) -> PolicySet:
    snapshot = read_snapshot(path, _loaded)
    problems = list(snapshot.problems)
    texts = snapshot.texts
    single_file = origin in texts
    if not problems and not single_file and not any(is_policy_file(n) for n in texts):
        problems.append(Diagnostic(origin, 0, 0, "no policy files (*.yaml, *.yml) found"))
    return _load_texts(texts, backend, problems, origin)


def _load_texts(
    texts: Mapping[str, str], backend: Backend, diagnostics: list[Diagnostic], origin: str
) -> PolicySet:
    specs: list[PolicySpec] = []
    data: dict[str, Any] = {}
    data_origin: dict[str, str] = {}
    for name, text in texts.items():
        if is_test_file(name):
            continue
        if len(text) > MAX_FILE_BYTES or len(text.encode("utf-8", "surrogatepass")) > (
            MAX_FILE_BYTES
        ):
            diagnostics.append(Diagnostic(name, 0, 0, f"file larger than {MAX_FILE_BYTES} bytes"))
            continue
        if is_data_file(name):
            _load_data(name, text, data, data_origin, diagnostics)
            continue
        try:
            documents = load_documents(text)
        except YamlProblem as exc:
            diagnostics.append(Diagnostic(name, exc.line, exc.column, exc.message))
            continue
        for doc in documents:
            if doc is None:
                continue
            validated = validate_policy(doc, name)
            diagnostics.extend(validated.diagnostics)
            if validated.spec is not None:
                specs.append(validated.spec)
            else:
                diagnostics.extend(check_conditions(validated.conditions, backend))
    if not specs and not diagnostics:
        diagnostics.append(Diagnostic(origin, 0, 0, "the policy set holds no policy"))
    compiled, found = compile_policies(specs, data, backend)
    diagnostics.extend(found)
    if diagnostics or compiled is None:
        raise PolicyError(sorted(diagnostics, key=lambda d: (d.file, d.line, d.column)))
    return compiled


def _load_data(
    name: str,
    text: str,
    data: dict[str, Any],
    origin: dict[str, str],
    diagnostics: list[Diagnostic],
) -> None:
    """Merge one data file's top-level keys into ``data``; YAML and JSON obey the same
    limits (see :mod:`zerotrust.policy.located`)."""
    positions: dict[str, tuple[int, int]] = {}
    try:
        if name.endswith(".json"):
            value, positions = load_json(text)
            start = len(text) - len(text.lstrip(" \t\r\n"))
            at = (text.count("\n", 0, start) + 1, start - text.rfind("\n", 0, start))
        else:
            documents = [d for d in load_documents(text) if d is not None]
            if len(documents) > 1:
                second = documents[1]
                diagnostics.append(
                    Diagnostic(name, second.line, second.column, "a data file holds one document")
                )
                return
            value = documents[0].plain() if documents else {}
            at = (documents[0].line, documents[0].column) if documents else (1, 1)
            if documents and documents[0].keys:
                positions = {k: (n.line, n.column) for k, n in documents[0].keys.items()}
    except YamlProblem as exc:
        diagnostics.append(Diagnostic(name, exc.line, exc.column, exc.message))
        return
    if not isinstance(value, dict):
        diagnostics.append(Diagnostic(name, *at, "a data file must hold a mapping of names"))
        return
    for key, item in value.items():
        if key in origin:
            diagnostics.append(
                Diagnostic(
                    name,
                    *positions.get(key, at),
                    f"data key {key!r} is also defined in {origin[key]}",
                )
            )
            continue
        origin[key] = name
        data[key] = item
