"""Which rules and signals the cases exercised both ways (``zerotrust test --coverage``).

A condition is covered when some case saw it true and some case saw it false: a test
that only ever sees one outcome cannot tell the condition from ``true`` (or ``false``).
Read from each decision's trace, so only the rules and signals of policies whose target
applied to a case are seen; the rest count as not covered.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from zerotrust.policy.loader import is_policy_file
from zerotrust.policy.located import LNode, YamlProblem, load_documents
from zerotrust.policy.policy_set import PolicySet
from zerotrust.testing._run import SuiteReport

__all__ = ["Coverage", "FileCoverage", "ItemCoverage", "coverage_of"]


@attrs.frozen
class ItemCoverage:
    """One rule or signal: in how many cases it matched, did not match, or raised."""

    ref: str
    kind: str  # "rule", "report-only" or "signal"
    line: int  # where it is written (0: not known, a set loaded from texts)
    column: int
    unconditional: bool  # no ``when``: it can only match
    matched: int = 0
    not_matched: int = 0
    errors: int = 0

    @property
    def covered(self) -> bool:
        if self.unconditional:
            return self.matched > 0
        return self.matched > 0 and self.not_matched > 0

    def gap(self) -> str:
        """What is missing, in words (empty when covered)."""
        if self.covered:
            return ""
        if not (self.matched or self.not_matched or self.errors):
            return "never applied (no case's request is in its policy's target)"
        if self.matched:
            return "never unmatched (its condition was only seen true)"
        if self.not_matched:
            return "never matched (its condition was only seen false)"
        return "only raised errors"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "kind": self.kind,
            "line": self.line,
            "column": self.column,
            "unconditional": self.unconditional,
            "matched": self.matched,
            "not_matched": self.not_matched,
            "errors": self.errors,
            "covered": self.covered,
        }


def _percent(items: Iterable[ItemCoverage]) -> tuple[int, int, float]:
    listed = list(items)
    covered = sum(1 for i in listed if i.covered)
    return covered, len(listed), round(100 * covered / len(listed), 1) if listed else 100.0


@attrs.frozen
class FileCoverage:
    file: str
    items: tuple[ItemCoverage, ...]

    @property
    def covered(self) -> int:
        return _percent(self.items)[0]

    @property
    def percent(self) -> float:
        return _percent(self.items)[2]

    def to_dict(self) -> dict[str, Any]:
        covered, total, percent = _percent(self.items)
        return {
            "file": self.file,
            "covered": covered,
            "total": total,
            "percent": percent,
            "items": [i.to_dict() for i in self.items],
        }


@attrs.frozen
class Coverage:
    """Per policy file, every rule and signal with what the cases saw of it."""

    files: tuple[FileCoverage, ...]

    @property
    def percent(self) -> float:
        return _percent(i for f in self.files for i in f.items)[2]

    def to_dict(self) -> dict[str, Any]:
        covered, total, percent = _percent(i for f in self.files for i in f.items)
        return {
            "covered": covered,
            "total": total,
            "percent": percent,
            "files": [f.to_dict() for f in self.files],
        }

    def lines(self) -> tuple[str, ...]:
        """The text form: a total, then each file with what it lacks."""
        covered, total, percent = _percent(i for f in self.files for i in f.items)
        out = [f"coverage: {covered} of {total} rules and signals covered ({percent}%)"]
        for file in self.files:
            done, count, share = _percent(file.items)
            out.append(f"  {file.file}: {done} of {count} ({share}%)")
            for item in file.items:
                if not item.covered:
                    where = f"{file.file}:{item.line}:{item.column}" if item.line else file.file
                    out.append(f"    {where} {item.kind} {item.ref}: {item.gap()}")
        return tuple(out)


def coverage_of(report: SuiteReport, policies: PolicySet | None = None) -> Coverage:
    """Coverage of the policy set a report ran against (or ``policies``) by its cases."""
    policies = policies if policies is not None else report.policies
    if policies is None:
        raise TypeError("coverage_of needs the policy set: this report does not carry one")
    counts: dict[str, list[int]] = {}
    for result in report.results:
        decision = result.decision
        for entry in (decision.trace if decision is not None else None) or ():
            seen = counts.setdefault(entry.rule, [0, 0, 0])
            seen[("matched", "not_matched", "error").index(entry.outcome)] += 1
    places = _places(policies.sources)
    by_file: dict[str, list[ItemCoverage]] = {}
    for policy in policies.policies:
        file, lines = places.get(policy.name, ("(policies loaded from text)", {}))
        items = by_file.setdefault(file, [])
        named = [
            *(("signal", s.ref, s.name, s.condition is None) for s in policy.signals),
            *(
                ("report-only" if r.report_only else "rule", r.ref, r.ref.split("/", 1)[1],
                 r.condition is None)
                for r in policy.rules
            ),
        ]  # fmt: skip
        for kind, ref, name, unconditional in named:
            matched, not_matched, errors = counts.get(ref, (0, 0, 0))
            line, column = lines.get((kind == "signal", name), (0, 0))
            items.append(
                ItemCoverage(ref, kind, line, column, unconditional, matched, not_matched, errors)
            )
    return Coverage(tuple(FileCoverage(f, tuple(i)) for f, i in sorted(by_file.items())))


def _places(
    sources: Iterable[str],
) -> dict[str, tuple[str, dict[tuple[bool, str], tuple[int, int]]]]:
    """Policy name -> (its file, line of each (is signal, name)), read from the sources
    again: the compiled set keeps what decides, not where it was written."""
    places: dict[str, tuple[str, dict[tuple[bool, str], tuple[int, int]]]] = {}
    for source in sources:
        if not is_policy_file(source):
            continue
        try:
            documents = load_documents(Path(source).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, YamlProblem):
            continue
        for doc in documents:
            if not isinstance(doc.value, dict) or "policy" not in doc.value:
                continue
            lines: dict[tuple[bool, str], tuple[int, int]] = {}
            for key, is_signal, name_key in (("signals", True, "name"), ("rules", False, "id")):
                for item in _items(doc.value.get(key)):
                    name = item.value.get(name_key) if isinstance(item.value, dict) else None
                    if name is not None:
                        lines[(is_signal, str(name.value))] = (item.line, item.column)
            places[str(doc.value["policy"].value)] = (source, lines)
    return places


def _items(node: LNode | None) -> list[LNode]:
    return node.value if node is not None and isinstance(node.value, list) else []
