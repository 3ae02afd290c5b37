"""The validated policy models of a path, with the positions the findings need.

The compiled set keeps no source positions, so after loading it as the engine does (which
refuses an invalid set with every diagnostic) the policy files are read once more into
their models.
"""

from __future__ import annotations

from pathlib import PurePath

from zerotrust.cel import default_backend
from zerotrust.errors import Diagnostic, PolicyError
from zerotrust.policy.libraries import is_library, resolve_library_documents
from zerotrust.policy.loader import is_policy_file, load_path, with_action_groups
from zerotrust.policy.located import LNode, YamlProblem, load_documents
from zerotrust.policy.model import PolicySpec
from zerotrust.policy.snapshot import read_snapshot
from zerotrust.policy.validate import Validated, validate_policy

__all__ = ["policy_specs"]


def policy_specs(path: PurePath) -> list[PolicySpec]:
    """The policies at ``path`` in load order; :class:`PolicyError` if the set is invalid."""
    load_path(path, default_backend())
    snapshot = read_snapshot(path, lambda name: name.endswith((".yaml", ".yml")))
    validated: list[Validated] = []
    problems: list[Diagnostic] = list(snapshot.problems)
    found: list[tuple[str, LNode]] = []
    for name, text in snapshot.texts.items():
        if not is_policy_file(name):  # suites, data and schemas hold no policies
            continue
        try:
            documents = load_documents(text)
        except YamlProblem as exc:  # changed since it loaded
            problems.append(Diagnostic(name, exc.line, exc.column, exc.message))
            continue
        found.extend((name, document) for document in documents if document.value is not None)
    libraries, more = resolve_library_documents(found)  # (checked when the set loaded)
    problems.extend(more)
    for name, document in found:
        if not is_library(document):
            one = validate_policy(document, name, libraries)
            problems.extend(one.diagnostics)
            validated.append(one)
    if problems:
        raise PolicyError(problems)
    return with_action_groups(validated)  # targets as the loaded set has them
