"""Files to a compiled :class:`PolicySet`, all or nothing.

Layout of a policy directory (searched recursively, in sorted path order):

* ``*.yaml`` / ``*.yml``: policies, one per YAML document;
* ``*_test.yaml`` / ``*_test.yml``: policy test suites, skipped here;
* ``*.data.yaml`` / ``*.data.yml`` / ``*.data.json``: policy data; each file is a
  mapping whose top-level keys become keys of the ``data`` variable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zerotrust.cel import Backend
from zerotrust.errors import Diagnostic, PolicyError
from zerotrust.policy.compile import PolicySet, check_conditions, compile_policies
from zerotrust.policy.located import YamlProblem, load_documents
from zerotrust.policy.model import PolicySpec
from zerotrust.policy.validate import validate_policy
from zerotrust.request import INT64_MAX, INT64_MIN

__all__ = ["is_data_file", "is_policy_file", "is_test_file", "load_path", "load_texts"]

_YAML = (".yaml", ".yml")
MAX_FILE_BYTES = 10 * 1024 * 1024


def is_test_file(path: Path) -> bool:
    return path.name.endswith(("_test.yaml", "_test.yml"))


def is_data_file(path: Path) -> bool:
    return path.name.endswith((".data.yaml", ".data.yml", ".data.json"))


def is_policy_file(path: Path) -> bool:
    return path.suffix in _YAML and not is_test_file(path) and not is_data_file(path)


def load_path(path: str | Path, backend: Backend) -> PolicySet:
    """Load a policy file or a directory of them; raise :class:`PolicyError` on any problem."""
    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file() and not _hidden(p, root))
        files = [p for p in files if is_policy_file(p) or is_data_file(p)]
    elif root.is_file():
        files = [root]
    else:
        raise PolicyError([Diagnostic(str(root), 0, 0, "no such file or directory")])
    texts: dict[str, str] = {}
    problems: list[Diagnostic] = []
    for file in files:
        name = str(file)
        try:
            if file.stat().st_size > MAX_FILE_BYTES:
                problems.append(Diagnostic(name, 0, 0, f"file larger than {MAX_FILE_BYTES} bytes"))
                continue
            texts[name] = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            problems.append(Diagnostic(name, 0, 0, f"not UTF-8 text: {exc.reason}"))
        except OSError as exc:
            problems.append(Diagnostic(name, 0, 0, f"cannot read: {exc.strerror or exc}"))
    if not any(is_policy_file(Path(n)) or root.is_file() for n in texts) and not problems:
        problems.append(Diagnostic(str(root), 0, 0, "no policy files (*.yaml, *.yml) found"))
    return load_texts(texts, backend, problems=problems, origin=str(root))


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def load_texts(
    texts: Mapping[str, str],
    backend: Backend,
    *,
    problems: list[Diagnostic] | None = None,
    origin: str = "<policies>",
) -> PolicySet:
    """Load policies from ``{file name: text}``; data files are recognised by name."""
    diagnostics = list(problems or [])
    specs: list[PolicySpec] = []
    data: dict[str, Any] = {}
    data_origin: dict[str, str] = {}
    for name, text in texts.items():
        if is_test_file(Path(name)):
            continue
        if is_data_file(Path(name)):
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
    try:
        if name.endswith(".json"):
            value = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
            line = 1
        else:
            documents = [d for d in load_documents(text) if d is not None]
            if len(documents) > 1:
                diagnostics.append(Diagnostic(name, 0, 0, "a data file holds one YAML document"))
                return
            value = documents[0].plain() if documents else {}
            line = documents[0].line if documents else 1
    except YamlProblem as exc:
        diagnostics.append(Diagnostic(name, exc.line, exc.column, exc.message))
        return
    except ValueError as exc:
        pos = (exc.lineno, exc.colno) if isinstance(exc, json.JSONDecodeError) else (0, 0)
        diagnostics.append(Diagnostic(name, pos[0], pos[1], f"invalid JSON: {exc}"))
        return
    if not isinstance(value, dict):
        diagnostics.append(Diagnostic(name, line, 1, "a data file must hold a mapping of names"))
        return
    for key, item in value.items():
        if key in origin:
            diagnostics.append(
                Diagnostic(name, line, 1, f"data key {key!r} is also defined in {origin[key]}")
            )
            continue
        origin[key] = name
        data[key] = item


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        _check_int(value)
        out[key] = value
    return out


def _check_int(value: Any) -> None:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, int) and not INT64_MIN <= item <= INT64_MAX:
            raise ValueError("integer outside the 64-bit range")
        if isinstance(item, list):
            _check_int(item)


def _no_constant(token: str) -> Any:
    raise ValueError(f"{token} is not valid JSON")
