"""Files to a compiled :class:`PolicySet`, all or nothing.

Layout of a policy directory (searched recursively, in sorted path order):

* ``*.yaml`` / ``*.yml``: policies, one per YAML document, the set's action groups
  (a document holding only ``action_groups``, see :mod:`zerotrust.policy.action_groups`)
  and condition libraries (``library:`` documents, see :mod:`zerotrust.policy.libraries`);
* ``*_test.yaml`` / ``*_test.yml``: policy test suites, skipped here;
* ``*.data.yaml`` / ``*.data.yml`` / ``*.data.json``: policy data; each file is a
  mapping whose top-level keys become keys of the ``data`` variable;
* ``*.schema.yaml`` / ``*.schema.yml``: attribute schemas (see
  :mod:`zerotrust.policy.attr_schema`).

Names are matched with case, and a name that matches only without case (``Deny.YAML``)
is refused rather than skipped. A file that contributes nothing is refused too: a
policy file without a policy document, an empty document between policies, an empty
data file. Files are written in place by truncating them first (``cp``, ``>``, editors
that do not save by rename), and a reload in that instant must not load the set
without the policy being written.

Only :class:`PolicyError` leaves this module: a set that cannot be loaded for any
reason, even one we did not foresee, is refused whole with a diagnostic.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import PurePath
from typing import Any

import attrs

from zerotrust.cel import Backend
from zerotrust.errors import Diagnostic, PolicyError
from zerotrust.policy.action_groups import (
    DATA_KEY,
    ActionGroup,
    ActionGroups,
    condition_references,
    expand_specs,
    resolve_action_groups,
    undeclared_actions,
    unknown_group_message,
)
from zerotrust.policy.attr_check import compile_checker
from zerotrust.policy.attr_schema import SchemaFile, merge_schema_files, read_schema_file
from zerotrust.policy.compile import check_conditions, compile_policies, library_checker
from zerotrust.policy.groups import DATA_KEY as GROUPS_KEY
from zerotrust.policy.groups import Group, read_groups, resolve_groups
from zerotrust.policy.groups import located as _located
from zerotrust.policy.json_data import load_json
from zerotrust.policy.libraries import is_library, resolve_library_documents
from zerotrust.policy.located import AliasBudget, LNode, YamlProblem, load_documents
from zerotrust.policy.model import PolicySpec
from zerotrust.policy.policy_set import PolicySet
from zerotrust.policy.positions import file_position as _file_position
from zerotrust.policy.snapshot import MAX_FILE_BYTES, read_snapshot
from zerotrust.policy.typecheck import TypeChecker
from zerotrust.policy.validate import Condition, Validated, validate_policy

__all__ = [
    "is_data_file",
    "is_policy_file",
    "is_schema_file",
    "is_test_file",
    "load_path",
    "load_texts",
    "with_action_groups",
]

_TEST = ("_test.yaml", "_test.yml")
_DATA = (".data.yaml", ".data.yml", ".data.json")
_SCHEMA = (".schema.yaml", ".schema.yml")
_YAML = (".yaml", ".yml")
_log = logging.getLogger("zerotrust")

NO_POLICY = (
    "holds no policy document: an empty or comment-only policy file is refused (it may "
    "be one being written); delete the file to remove its policies"
)
EMPTY_DOCUMENT = (
    "empty YAML document: every document of a policy file must be a policy (remove the extra ---)"
)
EMPTY_DATA = "a data file must hold a mapping of names (write {} for none)"


def is_test_file(path: str | PurePath) -> bool:
    return PurePath(path).name.endswith(_TEST)


def is_data_file(path: str | PurePath) -> bool:
    return PurePath(path).name.endswith(_DATA)


def is_schema_file(path: str | PurePath) -> bool:
    return PurePath(path).name.endswith(_SCHEMA)


def is_policy_file(path: str | PurePath) -> bool:
    return (
        PurePath(path).suffix in _YAML
        and not is_test_file(path)
        and not is_data_file(path)
        and not is_schema_file(path)
    )


def _loaded(name: str) -> bool:
    return is_policy_file(name) or is_data_file(name) or is_schema_file(name)


def _suffix(name: str) -> str | None:
    """The suffix that decides what a file is (``.data.yaml``...), or None."""
    return next((s for s in (*_TEST, *_DATA, *_SCHEMA, *_YAML) if name.endswith(s)), None)


def _miscased(name: str) -> str | None:
    """The name ``name`` should have when it differs only by case from a name that is
    loaded or run (``Deny.YAML``, ``net.Data.json``, ``a_Test.yaml``), else None."""
    wanted = _suffix(name.lower())
    if wanted is None or _suffix(name) == wanted:
        return None
    return name[: len(name) - len(wanted)] + wanted


def _considered(name: str) -> bool:
    return _loaded(name) or _miscased(name) is not None


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
    snapshot = read_snapshot(path, _considered)
    problems = list(snapshot.problems)
    single_file = origin in snapshot.texts
    texts: dict[str, str] = {}
    for name, text in snapshot.texts.items():
        fixed = None if single_file else _miscased(PurePath(name).name)
        if fixed is None:
            texts[name] = text
            continue
        message = f"file names are matched with case: rename it to {fixed!r} to load it"
        if fixed.endswith(_TEST):
            message = f"file names are matched with case: rename it to {fixed!r} to run it"
        problems.append(Diagnostic(name, 0, 0, message))
    if not problems and not single_file and not any(is_policy_file(n) for n in texts):
        problems.append(Diagnostic(origin, 0, 0, "no policy files (*.yaml, *.yml) found"))
    return _load_texts(texts, backend, problems, origin)


def _load_texts(
    texts: Mapping[str, str], backend: Backend, diagnostics: list[Diagnostic], origin: str
) -> PolicySet:
    specs: list[PolicySpec] = []
    groups: list[ActionGroup] = []
    conditions: list[Condition] = []
    targets: list[tuple[str, str, LNode]] = []
    data: dict[str, Any] = {}
    data_origin: dict[str, str] = {}
    schema_files: list[SchemaFile] = []
    declared: list[tuple[Group, ...] | None] = []  # the data's groups, if it declares any
    unread = False  # a data file could not be read: it may be the one declaring groups
    unchecked: list[Condition] = []  # of documents that failed validation: checked below
    # Policies are validated once every library is read: they may import any of them.
    pending: list[tuple[str, LNode, set[tuple[int, int]], bool]] = []
    budget = AliasBudget()
    for name, text in texts.items():
        if is_test_file(name):
            continue
        if len(text) > MAX_FILE_BYTES or len(text.encode("utf-8", "surrogatepass")) > (
            MAX_FILE_BYTES
        ):
            diagnostics.append(Diagnostic(name, 0, 0, f"file larger than {MAX_FILE_BYTES} bytes"))
            continue
        if is_data_file(name):
            before = len(diagnostics)
            node = _load_data(name, text, data, data_origin, diagnostics, budget)
            unread = unread or len(diagnostics) > before
            if node is not None:
                found_groups, problems = read_groups(node, name)
                declared.append(found_groups)
                diagnostics.extend(problems)
            continue
        if is_schema_file(name):
            schema_files.extend(_load_schema(name, text, diagnostics, budget))
            continue
        values: list[YamlProblem] = []  # bad values, read as null so the rest is checked
        try:
            documents = load_documents(text, budget, problems=values)
        except YamlProblem as exc:
            diagnostics.append(Diagnostic(name, exc.line, exc.column, exc.message))
            continue
        diagnostics.extend(Diagnostic(name, v.line, v.column, v.message) for v in values)
        bad_at = {(v.line, v.column) for v in values}  # their follow-on errors are noise
        if not documents:
            diagnostics.append(Diagnostic(name, 1, 1, NO_POLICY))
        for doc in documents:
            if doc.value is None:
                message = NO_POLICY if len(documents) == 1 else EMPTY_DOCUMENT
                diagnostics.append(Diagnostic(name, doc.line, doc.column, message))
                continue
            pending.append((name, doc, bad_at, bool(values)))
    functions = None
    if declared or unread:  # (one at most: a second file's groups key is refused)
        index, problems = resolve_groups(declared[0] if declared else None)
        diagnostics.extend(problems)
        functions = index.functions()
    libraries, found = resolve_library_documents(
        ((name, doc) for name, doc, _, _ in pending), library_checker(backend, functions)
    )
    # A bad YAML value is reported once, not again as the null it is read as.
    bad = {(name, *at) for name, _, bad_at, _ in pending for at in bad_at}
    diagnostics.extend(d for d in found if (d.file, d.line, d.column) not in bad)
    for name, doc, bad_at, bad_values in pending:
        if is_library(doc):
            continue
        validated = validate_policy(doc, name, libraries)
        diagnostics.extend(d for d in validated.diagnostics if (d.line, d.column) not in bad_at)
        groups.extend(validated.groups)
        conditions.extend(validated.conditions)
        if validated.spec is not None and not bad_values:
            specs.append(validated.spec)
            targets.extend(_target_actions(doc, name, validated.spec.name))
        else:
            unchecked.extend(validated.conditions)
    if not specs and not diagnostics:
        diagnostics.append(Diagnostic(origin, 0, 0, "the policy set holds no policy"))
    resolved, problems = resolve_action_groups(groups, data_origin)
    diagnostics.extend(problems)
    diagnostics.extend(_group_references(conditions, resolved))
    if resolved.flat:
        data[DATA_KEY] = resolved.as_data()
    diagnostics.extend(check_conditions(unchecked, backend, functions))
    expanded = expand_specs(specs, resolved)
    schemas, clashes = merge_schema_files(schema_files)
    diagnostics.extend(clashes)
    if schemas.actions is not None:
        diagnostics.extend(undeclared_actions(targets, groups, schemas.actions))
    typing = TypeChecker(schemas, data, expanded) if schema_files and not clashes else None
    trees: dict[str, Any] = {}

    def type_check(spec: PolicySpec) -> None:
        if typing is not None:
            typing.check(spec, trees)
            trees.clear()  # (the checker keeps the few that repeat)

    compiled, found = compile_policies(
        expanded,
        data,
        backend,
        more_sources={g.file for g in groups} | libraries.files,
        functions=functions,
        trees=trees if typing is not None else None,
        after_policy=type_check,
    )
    diagnostics.extend(found)
    if compiled is not None and libraries.by_name:
        # What the libraries say is part of what the set means (the policies hold only names).
        meaning = json.dumps([compiled.revision, libraries.meaning()], sort_keys=True, default=str)
        revision = "sha256:" + hashlib.sha256(meaning.encode()).hexdigest()[:32]
        compiled = attrs.evolve(compiled, revision=revision)
    warnings: list[Diagnostic] = []
    if typing is not None:
        diagnostics.extend(typing.errors)
        warnings = typing.warnings
    if diagnostics or compiled is None:
        raise PolicyError(sorted(diagnostics, key=lambda d: (d.file, d.line, d.column)))
    if schema_files:
        # The schemas are part of what the set means: a changed schema is a new revision.
        mixed = f"{compiled.revision}\n{schemas!r}".encode()
        revision = "sha256:" + hashlib.sha256(mixed).hexdigest()[:32]
        sources = tuple(sorted({*compiled.sources, *schemas.files}))
        checker = compile_checker(schemas)
        return attrs.evolve(
            compiled,
            schemas=schemas,
            checker=checker,
            revision=revision,
            sources=sources,
            warnings=tuple(sorted(warnings, key=lambda d: (d.file, d.line, d.column))),
        )
    return compiled


def _load_schema(
    name: str, text: str, diagnostics: list[Diagnostic], budget: AliasBudget
) -> list[SchemaFile]:
    """One schema file (one YAML document holding a mapping), or its problems."""
    try:
        documents = load_documents(text, budget)
    except YamlProblem as exc:
        diagnostics.append(Diagnostic(name, exc.line, exc.column, exc.message))
        return []
    if len(documents) > 1:
        second = documents[1]
        message = "a schema file holds one document"
        diagnostics.append(Diagnostic(name, second.line, second.column, message))
        return []
    document = documents[0] if documents else LNode(None, 1, 1)
    found, problems = read_schema_file(name, document)
    diagnostics.extend(problems)
    return [found]


def with_action_groups(documents: Iterable[Validated]) -> list[PolicySpec]:
    """The policies of validated documents with action groups expanded in their targets,
    as the loaded set has them: for tools that read the documents again for positions
    (the set must have loaded, so the groups are known to resolve)."""
    documents = list(documents)
    groups = [group for document in documents for group in document.groups]
    resolved, _ = resolve_action_groups(groups, {})
    specs = [document.spec for document in documents if document.spec is not None]
    return expand_specs(specs, resolved)


def _target_actions(doc: LNode, file: str, policy: str) -> list[tuple[str, str, LNode]]:
    """The names of a valid policy document's ``target.actions``, where written."""
    target = doc.value.get("target")
    actions = target.value.get("actions") if target is not None and target.value else None
    if actions is None or not isinstance(actions.value, list):
        return []  # no target, or a single "*"
    return [(file, policy, item) for item in actions.value]


def _group_references(conditions: list[Condition], groups: ActionGroups) -> list[Diagnostic]:
    """Conditions that read a group that is not declared, at the name they read."""
    found = []
    for condition in conditions:
        source = condition.source
        for name, line, column in condition_references(source):
            message = unknown_group_message(name, groups.names)
            if message is not None:
                at = _file_position(source, line, column)
                found.append(
                    Diagnostic(source.file, *at, message, condition.policy, condition.owner)
                )
    return found


def _load_data(
    name: str,
    text: str,
    data: dict[str, Any],
    origin: dict[str, str],
    diagnostics: list[Diagnostic],
    budget: AliasBudget,
) -> LNode | None:
    """Merge one data file's top-level keys into ``data``; YAML and JSON obey the same
    limits (see :mod:`zerotrust.policy.located`). The file's ``groups``, when it is the
    one that declares them (see :mod:`zerotrust.policy.groups`)."""
    positions: dict[str, tuple[int, int]] = {}
    nodes: dict[str, LNode] = {}
    try:
        if name.endswith(".json"):
            value, positions = load_json(text)
            start = len(text) - len(text.lstrip(" \t\r\n"))
            at = (text.count("\n", 0, start) + 1, start - text.rfind("\n", 0, start))
        else:
            documents = load_documents(text, budget)
            if len(documents) > 1:
                second = documents[1]
                diagnostics.append(
                    Diagnostic(name, second.line, second.column, "a data file holds one document")
                )
                return None
            document = documents[0] if documents else LNode(None, 1, 1)
            value, at = document.plain(), (document.line, document.column)
            positions = {k: (n.line, n.column) for k, n in (document.keys or {}).items()}
            nodes = document.value if isinstance(document.value, dict) else {}
    except YamlProblem as exc:
        diagnostics.append(Diagnostic(name, exc.line, exc.column, exc.message))
        return None
    if not isinstance(value, dict):
        diagnostics.append(Diagnostic(name, *at, EMPTY_DATA))
        return None
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
    if origin.get(GROUPS_KEY) != name:
        return None
    if GROUPS_KEY in nodes:
        return nodes[GROUPS_KEY]
    return _located(value[GROUPS_KEY], *positions.get(GROUPS_KEY, at))
