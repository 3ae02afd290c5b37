"""CEL compiled to Python functions: the fast backend.

Each condition becomes one Python function, generated at policy load, that reads the
request's plain dicts and lists directly: ``bind`` returns the mapping it is given,
and an evaluation is a handful of dict lookups and comparisons rather than a walk
over cel-python's tree with its typed wrappers. Semantics are CEL's, not Python's
(see ``_compiler_runtime``); ``docs/cel-compiler.md`` lists where the result differs
from cel-python and why. A construct the generator does not handle is a
:class:`CelCompileError` at load, never a fallback.

Generated functions hold no state of their own (constants are immutable, results are
fresh objects), so a condition may be called from any number of threads at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from types import CodeType, FunctionType
from typing import Any, cast

import lark
from lark.exceptions import LarkError

from zerotrust._describe import quote
from zerotrust.cel import _compiler_runtime as rt
from zerotrust.cel._backend import VARIABLES, CelCompileError, Condition, ConditionError
from zerotrust.cel._codegen_base import INT_STANDIN
from zerotrust.cel._compiler_codegen import HELPERS, CelLiteralError, Program, generate
from zerotrust.cel._syntax import _SURROGATE, MAX_TREE_DEPTH, TOO_DEEP, _parser, parse, parse_fast
from zerotrust.cel.functions import (
    EXTRA_FUNCTIONS,
    LITERAL_CHECKS,
    SET_FUNCTIONS,
    Checks,
    Extras,
    SetFunction,
    function_tables,
)

__all__ = ["CelLiteralError", "CompiledBackend", "compile_expression"]

#: Every function name a condition may call (checked by ``_syntax.parse`` at load).
FUNCTIONS = frozenset(
    {"dyn", "size", "contains", "startsWith", "endsWith", "matches"}
    | set(rt.CONVERSIONS)
    | set(rt.ACCESSORS)
    | set(EXTRA_FUNCTIONS)
    | set(SET_FUNCTIONS)
    | set(rt.NETWORK_FUNCTIONS)
    | set(rt.NETWORK_METHODS)
    | set(rt.QUALIFIED_FUNCTIONS)
    | set(rt.QUALIFIED_TYPES)
)


def _error_message(exc: BaseException) -> str:
    if isinstance(exc, rt.CelError):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"no such key: {quote(exc.args[0])}" if exc.args else "no such key"
    if isinstance(exc, RecursionError):
        return "value nested too deeply to evaluate"
    if isinstance(exc, TypeError):
        return f"no such overload ({exc})"
    return f"{type(exc).__name__}: {exc}"


def _fail(exc: BaseException) -> ConditionError:
    return ConditionError(_error_message(exc))


def _not_boolean(value: Any) -> ConditionError:
    try:
        name = rt.kind_of(value).name
    except rt.CelError:
        name = type(value).__name__
    return ConditionError(f"condition gave {name}, not a boolean")


#: The globals of every generated function: the helpers and six builtins, nothing else.
#: One dict shared by all conditions (generated code only reads globals, never assigns).
_GLOBALS: dict[str, Any] = {
    **HELPERS,
    "__builtins__": {
        "len": len,
        "bool": bool,
        "dict": dict,
        "str": str,
        "int": int,
        "float": float,
    },
    "_fail": _fail,
    "_not_boolean": _not_boolean,
}

#: Distinct generated texts kept per backend (see ``CompiledBackend``); beyond this the
#: cache starts over, which only costs recompiling.
CODE_CACHE_SIZE = 1024


def _text(program: Program, *, condition: bool) -> str:
    """The generated module: ``_make(k0, k1, ...)`` returning the function ``cel(b)``."""
    params = ", ".join(f"k{i}" for i in range(len(program.constants)))
    lines = [f"def _make({params}):", "  def cel(b):"]
    if condition:
        lines.append("    try:")
        lines.extend("    " + line for line in program.body)
        lines.append(f"        r0 = {program.result}")
        lines.append("    except _Exception as x:")
        lines.append("        raise _fail(x) from None")
        lines.append("    if r0 is True or r0 is False:")
        lines.append("        return r0")
        lines.append("    raise _not_boolean(r0)")
    else:
        lines.extend(program.body)
        lines.append(f"    return {program.result}")
    lines.append("  return cel")
    return "\n".join(lines) + "\n"


def _maker_code(text: str) -> CodeType:
    """Python-compile a generated module; the code object of its ``_make``.

    The generator's limits (``MAX_NESTING``, ``MAX_BLOCKS``) keep Python's compiler
    within its own; should it still refuse, the diagnostic is about the condition,
    never the generated text (which the policy author never wrote).
    """
    try:
        module = compile(text, "<cel>", "exec")
    except (SyntaxError, RecursionError, MemoryError, ValueError, OverflowError):
        raise CelCompileError("condition too complex to compile: split it across rules") from None
    for const in module.co_consts:
        if isinstance(const, CodeType):
            return const
    raise CelCompileError("internal error: generated module has no function")  # unreachable


def _real(text: str, ints: list[int]) -> str:
    """Generated text with its integer stand-ins (:data:`INT_STANDIN`) replaced by the values.

    Every stand-in has the same number of digits, so none is part of another.
    """
    for i, value in enumerate(ints):
        text = text.replace(str(INT_STANDIN + i), repr(value))
    return text


def _with_ints(code: CodeType, text: str, ints: list[int]) -> CodeType | None:
    """``code`` compiled from stand-in ``text``, with the integers put in as its constants.

    The result is the code object ``compile()`` gives for the real text, made without
    compiling: CPython's bytecode for ``LOAD_CONST`` does not depend on the value loaded,
    and the compiler folds constants only in arithmetic, negation and subscripts of
    constants, which the generator never writes around a literal (it calls ``_neg``,
    ``_add``, ``_index``). Should a stand-in still be missing or folded into another value,
    None: the caller compiles the real text. (A literal the generator looked at but did
    not write, such as the members of a constant list, which are a closure constant, has
    no stand-in in the text.)
    """
    standins = {
        INT_STANDIN + i: value for i, value in enumerate(ints) if str(INT_STANDIN + i) in text
    }
    if not standins:
        return code
    found: set[int] = set()
    folded = False

    def swap(value: Any) -> Any:
        nonlocal folded
        kind = type(value)
        if kind is int or kind is float or kind is complex:
            if value in standins and kind is int:
                found.add(value)
                return standins[value]
            folded = folded or abs(value) >= INT_STANDIN // 2
            return value
        if kind is tuple:
            return tuple(swap(v) for v in value)
        if kind is frozenset:
            return frozenset(swap(v) for v in value)
        if kind is CodeType:
            return value.replace(co_consts=tuple(swap(c) for c in value.co_consts))
        return value

    swapped: CodeType = swap(code)
    if folded or len(found) != len(standins):
        return None
    return swapped


def _instantiate(code: CodeType, program: Program, source: str, name: str) -> Any:
    """A new function object for ``code``, closed over this program's constants."""
    maker = FunctionType(code, _GLOBALS)
    fn = maker(*program.constants)
    fn.__qualname__ = fn.__name__ = name
    fn.__doc__ = source
    return fn


def _build(program: Program, source: str, *, condition: bool) -> Callable[[Any], Any]:
    """Compile the generated source and close it over the program's constants."""
    code = _maker_code(_real(_text(program, condition=condition), program.ints))
    name = "cel_condition" if condition else "cel_expression"
    result: Callable[[Any], Any] = _instantiate(code, program, source, name)
    return result


def _generate(
    tree: lark.Tree[Any],
    variables: frozenset[str],
    extras: Extras = EXTRA_FUNCTIONS,
    checks: Checks = LITERAL_CHECKS,
) -> Program:
    try:
        return generate(tree, variables, extras, checks)
    except RecursionError:
        raise CelCompileError(TOO_DEEP) from None


def _listing(program: Program) -> str:
    return _real("\n".join([*program.body, f"    return {program.result}"]), program.ints)


class CompiledBackend:
    """CEL compiled to Python at load; ``bind`` hands the request's values through as-is.

    Load cost is kept low three ways: :func:`parse_fast` (no positions; the exact
    parser runs only to report a problem), one shared globals dict, and a cache of
    Python code objects keyed by the generated text. Constants (strings, doubles,
    regexes, ...) are closure variables, not text, so rules that differ only in such
    constants share one code object and skip Python's ``compile()``; each still gets
    its own function object and closure. The cache is per backend instance, bounded
    (:data:`CODE_CACHE_SIZE`) and holds only immutable code objects, so sharing it
    between threads or loads cannot change an answer: at worst two threads compile
    the same text twice.
    """

    name = "compiled"

    def __init__(self) -> None:
        # generated text (integer stand-ins in it) -> its compiled code
        self._templates: dict[str, CodeType] = {}
        # generated text and integers -> code with the integers in it, and its listing
        self._code: dict[tuple[str, tuple[int, ...]], tuple[CodeType, str]] = {}

    def compile(
        self,
        source: str,
        *,
        functions: Mapping[str, SetFunction] | None = None,
        trees: dict[str, Any] | None = None,
    ) -> Condition:
        """The generated function itself is the condition: no wrapper call per evaluation.

        It carries ``source``, ``variables`` and, for debugging, ``python_source``;
        ``functions`` are the policy set's own (``in_group``), closure constants like
        any other; ``trees``, when given, receives the syntax tree (the fast parser's,
        without positions) of ``source``, for the type checker to walk rather than parse
        the text again. Raises :class:`CelCompileError` and nothing else: a failure the
        checks above did not foresee is still a diagnostic (and a bug to report),
        never a crash of the loader.
        """
        try:
            return self._compile(source, *function_tables(functions), trees)
        except CelCompileError:
            raise
        except Exception as exc:
            raise CelCompileError("condition could not be compiled") from exc

    def _compile(
        self, source: str, extras: Extras, checks: Checks, trees: dict[str, Any] | None
    ) -> Condition:
        parsed = parse_fast(source, FUNCTIONS)
        if parsed is not None and trees is not None:
            trees[source] = parsed.tree
        program = None
        if parsed is not None:
            with contextlib.suppress(CelCompileError, RecursionError):
                program = generate(parsed.tree, VARIABLES, extras, checks)
        if parsed is None or program is None:
            # A problem (or a refusal by the fast path): the exact path, with positions,
            # raises the diagnostic, or (never seen) accepts and its result is used.
            parsed = parse(source, FUNCTIONS)
            program = _generate(parsed.tree, VARIABLES, extras, checks)
        text = _text(program, condition=True)
        key = (text, tuple(program.ints))
        cached = self._code.get(key)
        if cached is None:
            cached = (self._maker(text, program.ints), _listing(program))
            if len(self._code) >= CODE_CACHE_SIZE:
                self._code.clear()
            self._code[key] = cached
        code, listing = cached
        fn = _instantiate(code, program, source, "cel_condition")
        fn.source = source
        fn.variables = parsed.variables
        fn.python_source = listing
        return cast(Condition, fn)

    def _maker(self, text: str, ints: list[int]) -> CodeType:
        """The code of ``text``'s ``_make`` with ``ints`` in it: one ``compile()`` per text."""
        template = self._templates.get(text)
        if template is None:
            template = _maker_code(text)
            if len(self._templates) >= CODE_CACHE_SIZE:
                self._templates.clear()
            self._templates[text] = template
        if not ints:
            return template
        code = _with_ints(template, text, ints)
        return code if code is not None else _maker_code(_real(text, ints))

    def bind(self, variables: Mapping[str, Any]) -> Mapping[str, Any]:
        return variables

    def extend(self, bindings: Any, variables: Mapping[str, Any]) -> dict[str, Any]:
        return {**bindings, **variables}


def compile_expression(
    source: str,
    variables: frozenset[str],
    functions: Mapping[str, SetFunction] | None = None,
) -> Callable[[Any], Any]:
    """Any CEL expression (not only conditions) over ``variables``, for tests and tools;
    ``functions`` are a policy set's own (``in_group``).

    The function returns the CEL value, or raises: :class:`rt.CelError` or a builtin
    lookup/type error for a CEL evaluation error.
    """
    if not isinstance(source, str) or not source.strip():
        raise CelCompileError("empty expression")
    if _SURROGATE.search(source):
        raise CelCompileError("an unpaired surrogate is not text")
    try:
        tree = _parser().parse(source)
    except LarkError as exc:
        raise CelCompileError(f"syntax error: {exc}") from None
    except RecursionError:
        raise CelCompileError(TOO_DEEP) from None
    _check_depth(tree)
    program = _generate(tree, variables, *function_tables(functions))
    return _build(program, source, condition=False)


def _check_depth(tree: lark.Tree[Any]) -> None:
    stack: list[tuple[lark.Tree[Any], int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            raise CelCompileError(TOO_DEEP)
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, lark.Tree))
