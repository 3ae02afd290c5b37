"""Type-checking a policy set's conditions against its attribute schemas, at load.

Runs only when the set has schema files. Each rule and signal condition is checked as
it is compiled, with the policy's variables inlined, against the types of the request
(``resource.properties`` from the schemas of the resource types the policy targets),
of the loaded ``data``, ``risk``, ``behavior`` and ``now``. What can fail on a request
that conforms to the schemas is refused with its position: a field the schema does not
declare, an operator or function with no overload for its operands, a condition that
is not a bool. An optional field read without a ``has()`` guard is an error under
``validation: strict`` (the default) and a warning under ``permissive``. The check
never refuses what cannot fail: where a type is not known it is ``dyn``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from lark.exceptions import LarkError

from zerotrust.cel._backend import CelCompileError
from zerotrust.cel._syntax import MAX_TREE_DEPTH, _parser
from zerotrust.cel._syntax_fast import _fast_parser
from zerotrust.errors import Diagnostic
from zerotrust.policy.attr_schema import AttributeSchemas
from zerotrust.policy.compile import _locate
from zerotrust.policy.model import CelSource, PolicySpec
from zerotrust.policy.positions import file_position, offset_position
from zerotrust.policy.typecheck_types import (
    Prim,
    Type,
    request_types,
    resource_properties,
    resource_type,
)
from zerotrust.policy.typecheck_walk import Problem, Walk

__all__ = ["TypeChecker", "check_text", "typecheck_policies"]


def check_text(
    text: str, roots: Mapping[str, Type], trees: dict[str, Any] | None = None
) -> list[Problem] | None:
    """The problems of one condition text, or None when it does not parse (the
    compiler reports that). ``trees`` keeps each text's fast parse for the next
    check of the same text (a policy set repeats a condition across targets).

    Walks the tree of the compiler's fast parser (no positions: a tenth of the cost);
    only a text with problems is parsed again with positions, and walked again, to say
    where they are.
    """
    trees = {} if trees is None else trees
    if text in trees:
        fast = trees[text]
    else:
        try:
            fast = _fast_parser()(text)  # (names are the compiler's to check, not ours)
        except (LarkError, RecursionError):
            fast = None
        trees[text] = fast
    if fast is None:
        return None
    found = _walk(fast, roots)
    if not found:
        return found
    try:
        tree = _parser().parse(text)
    except (LarkError, CelCompileError, RecursionError):
        return None
    return _walk(tree, roots)


def _too_deep(tree: Any) -> bool:
    """Deeper than the compiler takes (it refuses the text and says so), measured
    without recursion: the walk recurses, so it never sees such a tree."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            return True
        stack.extend((c, depth + 1) for c in getattr(node, "children", ()) if hasattr(c, "data"))
    return False


def _walk(tree: Any, roots: Mapping[str, Type]) -> list[Problem] | None:
    if _too_deep(tree):
        return None
    walk = Walk(roots)
    try:
        found = walk.run(tree)
    except RecursionError:  # (a tree near the limit, on a deep stack: the check gives up)
        return None
    if not (isinstance(found, Prim) and found.name in ("bool", "dyn")):
        never = "|" not in str(found)
        said = "never a bool" if never else "not always a bool"
        walk.problems.append(Problem(0, f"the condition is of type {found}, {said}"))
    return walk.problems


class TypeChecker:
    """Type-checks policies one at a time against a set's schemas, collecting the
    errors and the warnings (optional reads, when ``validation`` is permissive).

    :meth:`check` is called with each policy as soon as it is compiled, with the
    syntax trees the compiler made of its conditions (``trees``, text -> tree): they
    are walked, not parsed again, and the caller drops them once checked. Only the
    trees of texts repeated across policies are kept (at most ``KEPT_TREES``): a
    large set holding every tree, or cycling through them, would make the garbage
    collector's passes over the live objects cost more than the parse they save
    (measured: twice the load time for 10,000 distinct conditions).
    """

    KEPT_TREES = 256

    def __init__(
        self, schemas: AttributeSchemas, data: Mapping[str, Any], specs: Iterable[PolicySpec]
    ) -> None:
        self._schemas = schemas
        counts = Counter(
            c.compiled_text
            for spec in specs
            for c in (*(s.when for s in spec.signals), *(r.when for r in spec.rules))
            if c is not None
        )
        self._repeated = frozenset(text for text, n in counts.items() if n > 1)
        self._strict = schemas.validation != "permissive"
        full = request_types(schemas, data, rules=True)  # (data typed once: it may be large)
        self._bases = {True: full, False: {k: v for k, v in full.items() if k != "risk"}}
        self._memo: dict[tuple[str, frozenset[str] | None, bool], list[Problem] | None] = {}
        self._seen: set[Diagnostic] = set()
        self._kept: dict[str, Any] = {}
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []

    def check(self, spec: PolicySpec, trees: dict[str, Any]) -> None:
        """Check one policy's signals and rules; ``trees`` may hold their syntax trees."""
        targeted = spec.target.resources
        resource = resource_type(resource_properties(self._schemas, targeted))
        checks = [(s.when, s.name, False) for s in spec.signals]
        checks += [(r.when, r.id, True) for r in spec.rules]
        texts = {c[0].compiled_text for c in checks if c[0] is not None}
        for text in texts:
            if text not in trees and text in self._kept:
                trees[text] = self._kept[text]
        for source, owner, rules in checks:
            if source is None:
                continue
            key = (source.compiled_text, targeted, rules)
            if key not in self._memo:
                roots = {**self._bases[rules], "resource": resource}
                self._memo[key] = check_text(source.compiled_text, roots, trees)
            for problem in self._memo[key] or ():
                out = self.warnings if problem.optional and not self._strict else self.errors
                for made in _diagnostics(source, problem, spec.name, owner):
                    if made not in self._seen:
                        self._seen.add(made)
                        out.append(made)
        for text in texts & self._repeated & trees.keys():
            if len(self._kept) < self.KEPT_TREES:
                self._kept[text] = trees[text]


def typecheck_policies(
    specs: Iterable[PolicySpec], schemas: AttributeSchemas, data: Mapping[str, Any]
) -> tuple[list[Diagnostic], list[Diagnostic]]:
    """Every condition's type errors, and its warnings (optional reads, when permissive)."""
    specs = list(specs)
    checker = TypeChecker(schemas, data, specs)
    trees: dict[str, Any] = {}
    for spec in specs:
        checker.check(spec, trees)
    return checker.errors, checker.warnings


def _diagnostics(source: CelSource, problem: Problem, policy: str, owner: str) -> list[Diagnostic]:
    """Where the problem is: at the condition, and, when it is inside a variable inlined
    there, also where that variable is defined."""
    piece = None if source.inlined is None else source.inlined.origin(problem.offset)
    if piece is not None and not piece.verbatim and piece.end - piece.start > 1:
        return []  # (in text inlined around what the author wrote: a role's parent test)
    found = _locate(source, problem.offset, None, frozenset())
    if found is None:
        return []
    line, column, where = found
    message = f"type: {problem.message}"
    made = [Diagnostic(source.file, line, column, message + where, policy, owner)]
    if piece is not None and piece.variable is not None and piece.verbatim:
        at = piece.offset + problem.offset - piece.start
        defined = piece.source
        line, column = file_position(defined, *offset_position(defined.text, at))
        said = f"{message} (in variable {piece.variable!r})"
        made.append(Diagnostic(defined.file, line, column, said, policy))
    return made
