"""Policy variables: named CEL expressions a policy's conditions read as ``variables.<name>``.

They are inlined when the policy is read: each reference becomes ``(<expression>)``, so
a decision pays nothing for them and every tool sees the condition that really runs.
Each inlined text keeps a map of where its characters were written, so a CEL error is
reported in the variable or the condition it is in (see :class:`Inlined`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

from zerotrust.cel import MAX_SOURCE_CHARS, NAMESPACE, CelCompileError, variable_references
from zerotrust.cel import VariableReference as Reference
from zerotrust.errors import Diagnostic
from zerotrust.obligations import did_you_mean
from zerotrust.policy.action_groups import _CEL_WORDS as CEL_WORDS
from zerotrust.policy.located import LNode
from zerotrust.policy.model import CelSource, Inlined, InlinedPiece, VariableSpec
from zerotrust.policy.positions import file_position, offset_position, text_offset

__all__ = [
    "DOCUMENT_KEY",
    "ROLES",
    "VARIABLE_NAME",
    "PolicyVariables",
    "described",
    "read_variables",
    "written",
]

DOCUMENT_KEY = "variables"
#: The name conditions read an imported library's derived roles through; a derived role
#: is known here as ``derived_roles.<name>`` (a variable's name has no dot).
ROLES = "derived_roles"
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
TOO_LONG = (
    f"with its variables inlined this expression is longer than {MAX_SOURCE_CHARS} "
    "characters: use fewer or shorter variables"
)


def read_variables(
    node: LNode | None, file: str, policy: str | None
) -> tuple[dict[str, VariableSpec], list[Diagnostic]]:
    """The ``variables:`` mapping of a policy document, and what is wrong with it."""
    problems: list[Diagnostic] = []
    found: dict[str, VariableSpec] = {}
    if node is None or node.value is None:
        return found, problems
    if not isinstance(node.value, dict):
        message = "variables must be a mapping of names to CEL expressions"
        problems.append(Diagnostic(file, node.line, node.column, message, policy))
        return found, problems
    keys = node.keys or {}
    for name, value in node.value.items():
        key = keys.get(name) or value
        if not isinstance(name, str) or not VARIABLE_NAME.match(name) or name in CEL_WORDS:
            message = (
                f"variable name {name!r} must be a CEL identifier ([A-Za-z_][A-Za-z0-9_]*, "
                f"not a reserved word): it is read as {NAMESPACE}.<name>"
            )
            problems.append(Diagnostic(file, key.line, key.column, message, policy))
            continue
        if not isinstance(value.value, str):
            hint = ' (quote it: "true")' if isinstance(value.value, bool) else ""
            message = f"variable {name!r} must be a CEL expression string{hint}"
            problems.append(Diagnostic(file, value.line, value.column, message, policy))
            continue
        source = CelSource(value.value, file, value.line, value.column, value.style, value.raw)
        found[name] = VariableSpec(name, source, key.line, key.column)
    return found, problems


def written(name: str) -> str:
    """How a condition reads variable or derived role ``name``."""
    return name if name.startswith(ROLES + ".") else f"{NAMESPACE}.{name}"


def described(name: str, library: str | None) -> str:
    """``name`` in a message: ``variable 'x'`` or ``derived role 'y' of library 'z'``."""
    if name.startswith(ROLES + "."):
        what = f"derived role {name[len(ROLES) + 1 :]!r}"
    else:
        what = f"variable {name!r}"
    return what if library is None else f"{what} of library {library!r}"


class PolicyVariables:
    """One policy's variables, resolved: unknown names, cycles and misuse are diagnostics,
    and :meth:`inline` gives a condition with the variables it reads inlined.

    ``imported`` are the variables and derived roles of the libraries the policy imports,
    already inlined (None: refused in its library, where that is reported);
    ``elsewhere`` the names other libraries declare, with their library, for hints;
    ``incomplete`` when an import is unknown or refused, so unknown names are not
    reported again. A library's own variables are resolved here too, ``library`` its name.
    """

    def __init__(
        self,
        specs: dict[str, VariableSpec],
        policy: str | None,
        *,
        imported: Mapping[str, Inlined | None] | None = None,
        elsewhere: Mapping[str, str] | None = None,
        library: str | None = None,
        incomplete: bool = False,
    ) -> None:
        self.specs = specs
        #: An import could not be read (reported there): an unknown name may be in it.
        self.incomplete = incomplete
        self.policy = policy
        self.imported = imported or {}
        self.elsewhere = elsewhere or {}
        self.library = library
        self.diagnostics: list[Diagnostic] = []
        #: A condition read an import that was refused in its library (not reported here).
        self.failed = False
        self._refs: dict[str, tuple[Reference, ...] | None] = {
            name: self._references(spec.when, None) for name, spec in specs.items()
        }
        # None: cannot be inlined (a problem already reported, here or in a variable it reads)
        self._inlined: dict[str, Inlined | None] = {}
        self._report_cycles()
        for name in specs:
            self._variable(name, ())

    def resolved(self) -> tuple[VariableSpec, ...]:
        """The variables, each with its own variables inlined where that was possible."""
        return tuple(
            attrs.evolve(spec, when=attrs.evolve(spec.when, inlined=inlined))
            if (inlined := self._inlined.get(name)) is not None and inlined.variables
            else spec
            for name, spec in self.specs.items()
        )

    def inline(self, source: CelSource, owner: str | None) -> CelSource | None:
        """``source`` with its variables inlined (unchanged when it reads none), or None
        when that cannot be done: the problem is then in :attr:`diagnostics`."""
        refs = self._references(source, owner)
        if refs is None:
            return None
        if not refs:
            return source
        inlined = self._build(source, refs, None, owner)
        return None if inlined is None else attrs.evolve(source, inlined=inlined)

    def inline_as(self, source: CelSource, name: str) -> Inlined | None:
        """``source`` inlined as the text of ``name`` (a derived role): every piece of it
        is ``name``'s, even when it reads no variable."""
        refs = self._references(source, None)
        return None if refs is None else self._build(source, refs, name, None)

    def inlined(self, name: str) -> Inlined | None:
        """Variable ``name`` inlined (also when it reads no variable), or None when its
        problem is reported."""
        return self._inlined.get(name)

    def inlinable(self, name: str) -> bool:
        """Whether variable ``name`` could be inlined (else its problem is reported)."""
        return self._inlined.get(name) is not None

    def _add(self, source: CelSource, offset: int, message: str, owner: str | None) -> None:
        line, column = file_position(source, *offset_position(source.text, offset))
        self.diagnostics.append(Diagnostic(source.file, line, column, message, self.policy, owner))

    def _references(self, source: CelSource, owner: str | None) -> tuple[Reference, ...] | None:
        """The references of ``source``, each checked; None when one cannot be inlined."""
        try:
            refs = [*variable_references(source.text)]
            roles = variable_references(source.text, ROLES, "a derived role")
        except CelCompileError as exc:
            offset = text_offset(source.text, exc.line, exc.column)
            self._add(source, offset, f"CEL: {exc.message}", owner)
            return None
        refs.extend(attrs.evolve(ref, name=f"{ROLES}.{ref.name}") for ref in roles)
        refs.sort(key=lambda ref: ref.start)
        ok = True
        for ref in refs:
            message = self._unknown(ref.name)
            if message is not None:
                if self.incomplete:
                    self.failed = True
                else:
                    self._add(source, ref.start, message, owner)
                ok = False
        return tuple(refs) if ok else None

    def _unknown(self, name: str) -> str | None:
        """Why ``name`` cannot be read here, or None when it can."""
        if name in self.specs or name in self.imported:
            return None
        role = name.startswith(ROLES + ".")
        short = name[len(ROLES) + 1 :] if role else name
        what = "derived role" if role else "variable"
        if role and self.library is not None:
            return (
                f"a library cannot read derived roles ({name}): a derived role's when "
                f"reads the library's variables ({NAMESPACE}.<name>)"
            )
        library = self.elsewhere.get(name)
        if self.library is not None:
            return self._unknown_in_library(name, library)
        if library is not None:
            return (
                f"unknown {what} {short!r}: it is in library {library!r}, which this "
                f"policy does not import (add imports: [{library}])"
            )
        known = [n for n in (*self.specs, *self.imported) if n.startswith(ROLES + ".") == role]
        if known:
            shorts = [n[len(ROLES) + 1 :] if role else n for n in known]
            return f"unknown {what} {short!r}{did_you_mean(short, shorts)}"
        if role:
            return f"unknown derived role {short!r}: this policy imports no derived roles"
        return f"unknown variable {name!r}: this policy declares no variables"

    def _unknown_in_library(self, name: str, other: str | None) -> str:
        """Why a library's ``name`` is unknown: it reads only its own variables."""
        own = f"library {self.library!r} reads only its own variables"
        if other is not None:
            return (
                f"unknown variable {name!r}: {own}, and {name!r} is in library {other!r} "
                "(declare it here too, or read both in the policy that imports them)"
            )
        if self.specs:
            return f"unknown variable {name!r}{did_you_mean(name, self.specs)} ({own})"
        return f"unknown variable {name!r}: {own}, and it declares none"

    def _report_cycles(self) -> None:
        """Each cycle once, at the reference that closes it, named in full."""
        reported: set[frozenset[str]] = set()
        done: set[str] = set()

        def visit(name: str, path: list[str]) -> None:
            if name in done:
                return
            for ref in self._refs.get(name) or ():
                if ref.name not in self.specs:
                    continue
                if ref.name in path:
                    cycle = [*path[path.index(ref.name) :], name, ref.name]
                    if frozenset(cycle) not in reported:
                        reported.add(frozenset(cycle))
                        message = f"variable cycle: {' -> '.join(cycle)}"
                        self._add(self.specs[name].when, ref.start, message, None)
                    continue
                if ref.name != name:
                    visit(ref.name, [*path, name])
                else:
                    message = f"variable cycle: {name} -> {name}"
                    self._add(self.specs[name].when, ref.start, message, None)
            done.add(name)

        for name in self.specs:
            visit(name, [])

    def _variable(self, name: str, stack: tuple[str, ...]) -> Inlined | None:
        if name in self.imported:
            found = self.imported[name]
            self.failed = self.failed or found is None
            return found
        if name in self._inlined:
            return self._inlined[name]
        if name in stack:
            return None  # a cycle, reported by _report_cycles
        refs = self._refs[name]
        spec = self.specs[name]
        result = None
        if refs is not None:
            result = self._build(spec.when, refs, name, None, (*stack, name))
        self._inlined[name] = result
        return result

    def _build(
        self,
        source: CelSource,
        refs: tuple[Reference, ...],
        variable: str | None,
        owner: str | None,
        stack: tuple[str, ...] = (),
    ) -> Inlined | None:
        text = source.text
        parts: list[str] = []
        pieces: list[InlinedPiece] = []
        names: set[str] = set()
        values: list[tuple[str, str]] = []
        at = 0  # in text
        library = self.library
        size = 0  # of the inlined text so far

        def put(chunk: str, piece: InlinedPiece) -> None:
            nonlocal size
            parts.append(chunk)
            pieces.append(piece)
            size += len(chunk)

        for ref in refs:
            inner = self._variable(ref.name, stack) if ref.name not in stack else None
            if inner is None:
                return None
            clash = sorted(ref.rebound & _words(inner.text))
            if clash:
                message = (
                    f"{written(ref.name)} reads {clash[0]!r}, which a macro around it "
                    "binds as its loop variable: rename the loop variable"
                )
                self._add(source, ref.start, message, owner)
                return None
            if ref.start > at:
                chunk = text[at : ref.start]
                piece = InlinedPiece(
                    size, size + len(chunk), source, at, True, variable, None, library
                )
                put(chunk, piece)
            bracket = InlinedPiece(
                size, size + 1, source, ref.start, False, variable, ref.start, library
            )
            put("(", bracket)
            for piece in inner.pieces:
                shifted = attrs.evolve(
                    piece, start=piece.start + size, end=piece.end + size, anchor=ref.start
                )
                pieces.append(shifted)
            parts.append(inner.text)
            size += len(inner.text)
            put(")", attrs.evolve(bracket, start=size, end=size + 1))
            names.add(ref.name)
            names.update(inner.variables)
            values.append((written(ref.name), inner.text))
            values.extend(inner.values)
            at = ref.end
            if size > MAX_SOURCE_CHARS:
                self._add(source, 0, TOO_LONG, owner)
                return None
        if at < len(text):
            rest = InlinedPiece(
                size, size + len(text) - at, source, at, True, variable, None, library
            )
            put(text[at:], rest)
        unique = tuple(dict.fromkeys(values))
        return Inlined("".join(parts), tuple(pieces), frozenset(names), unique)


def _words(text: str) -> frozenset[str]:
    """Every identifier-like word of ``text``: a superset of the top-level names it reads."""
    return frozenset(re.findall(r"[A-Za-z_]\w*", text))
