"""The checker's walk over one condition's syntax tree: a type for every node, guards
for optional reads, and each problem at the offset of the sub-expression it is about.

Guards are taken left to right, in the order the backends evaluate: ``has(p) && e`` checks
``e`` knowing ``p`` is present, ``!has(p) || e`` too, ``has(p) ? a : b`` checks ``a``
with it; what a guard establishes reaches into macro bodies, which run after it. A path
is a chain of field selections (and string-literal indexes) from a variable or a macro
variable; a macro variable's root is unique to its binding, so shadowing cannot make a
guard on one variable cover another.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

import attrs
import lark

from zerotrust.cel._codegen_base import literal_value
from zerotrust.cel._runtime_net import QUALIFIED_FUNCTIONS
from zerotrust.cel._runtime_values import QUALIFIED_TYPES
from zerotrust.cel._syntax import _MACROS, _TYPE_NAMES
from zerotrust.obligations import did_you_mean
from zerotrust.policy.typecheck_calls import (
    arithmetic,
    call,
    compare,
    format_problem,
    negate,
    shown,
)
from zerotrust.policy.typecheck_nodes import BY as _BY
from zerotrust.policy.typecheck_nodes import Path as _Path
from zerotrust.policy.typecheck_nodes import at as _at
from zerotrust.policy.typecheck_nodes import cel as _cel
from zerotrust.policy.typecheck_nodes import exprs as _exprs
from zerotrust.policy.typecheck_nodes import guard as _guard
from zerotrust.policy.typecheck_nodes import identifier as _identifier
from zerotrust.policy.typecheck_nodes import is_null as _is_null
from zerotrust.policy.typecheck_nodes import literal as _literal
from zerotrust.policy.typecheck_nodes import string_literal as _string_literal
from zerotrust.policy.typecheck_nodes import text as _text
from zerotrust.policy.typecheck_nodes import unwrap as _unwrap
from zerotrust.policy.typecheck_types import DYN, ListT, MapT, ObjT, Prim, Type, join

__all__ = ["Problem", "Walk"]

_BOOL = Prim("bool")
#: What may be looked up in a map: any other type is an error, not absent.
_MAP_KEYS = ("string", "int", "uint", "double", "number", "bool")
_MAYBE_NULL = Prim("string|null")
_NOT_NULL = "\0not null"  # a path's last step in the facts: the value is not null
_A_LIST = "\0a list"  # a path's last step in the facts: the value is a list
_NONE: frozenset[_Path] = frozenset()
_Facts = tuple[frozenset[_Path], frozenset[_Path]]  # known present when true / when false
_QUALIFIED_TYPES = frozenset(QUALIFIED_TYPES)
_LITERALS = {
    "INT_LIT": "int",
    "UINT_LIT": "uint",
    "FLOAT_LIT": "double",
    "STRING_LIT": "string",
    "BYTES_LIT": "bytes",
    "BOOL_LIT": "bool",
    "NULL_LIT": "null",
}
#: Which literals an enum of each type is compared with (numbers by value).
_ENUM_LITERALS = {
    "string": ("STRING_LIT",),
    "int": ("INT_LIT", "FLOAT_LIT"),
    "number": ("INT_LIT", "FLOAT_LIT"),
    "bool": ("BOOL_LIT",),
}
_BINARY = {
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_in": "in",
    "addition_add": "+",
    "addition_sub": "-",
    "multiplication_mul": "*",
    "multiplication_div": "/",
    "multiplication_mod": "%",
}


@attrs.frozen
class Problem:
    """One finding: where (an offset in the checked text), what, and whether it is a
    certain error or an optional read (an error only under strict validation)."""

    offset: int
    message: str
    optional: bool = False


@attrs.frozen
class _Scope:
    names: Mapping[str, tuple[Type, str]]  # macro variable -> (element type, path root)
    guards: frozenset[_Path]

    def knowing(self, more: frozenset[_Path]) -> _Scope:
        return self if not more else _Scope(self.names, self.guards | more)


class Walk:
    """Checks one text against the variables' types (``roots``)."""

    def __init__(self, roots: Mapping[str, Type]) -> None:
        self.roots = roots
        self.problems: list[Problem] = []
        self._bound = 0

    def run(self, tree: lark.Tree[Any]) -> Type:
        return self.check(tree, _Scope({}, _NONE))[0]

    def fail(self, node: Any, message: str, *, optional: bool = False) -> Type:
        self.problems.append(Problem(_at(node), message, optional))
        return DYN

    def boolean(self, node: Any, scope: _Scope, what: str) -> _Facts:
        found, when_true, when_false = self.check(node, scope)
        if not _is(found, "bool"):
            self.fail(node, f"{what} must be a bool, not {found}")
        return when_true, when_false

    def check(self, node: Any, scope: _Scope) -> tuple[Type, frozenset[_Path], frozenset[_Path]]:
        """The node's type and the paths known present when it is true / when false."""
        node = _unwrap(node)
        if isinstance(node, lark.Token):
            return DYN, _NONE, _NONE
        kind = node.data
        kids = node.children
        if kind == "unary":  # ! or -
            if kids[0].data == "unary_not":
                when_true, when_false = self.boolean(kids[1], scope, "the operand of !")
                return _BOOL, when_false, when_true
            found = self.check(kids[1], scope)[0]
            made = negate(found)
            return (made or self.fail(node, f"no such overload: -_({found})")), _NONE, _NONE
        if kind == "conditionaland":
            left_true, left_false = self.boolean(kids[0], scope, "an operand of &&")
            right_true, right_false = self.boolean(
                kids[1], scope.knowing(left_true), "an operand of &&"
            )
            return _BOOL, left_true | right_true, left_false & right_false
        if kind == "conditionalor":
            left_true, left_false = self.boolean(kids[0], scope, "an operand of ||")
            right_true, right_false = self.boolean(
                kids[1], scope.knowing(left_false), "an operand of ||"
            )
            return _BOOL, left_true & right_true, left_false | right_false
        if kind == "expr":  # c ? a : b
            when_true, when_false = self.boolean(kids[0], scope, "the condition of ?:")
            yes = self.check(kids[1], scope.knowing(when_true))
            no = self.check(kids[2], scope.knowing(when_false))
            return join(yes[0], no[0]), yes[1] & no[1], yes[2] & no[2]
        if kind in ("relation", "addition", "multiplication"):
            made = self.binary(node, kids[0], kids[1], scope)
            return made, *self.key_test(kids[0], kids[1], scope)
        return self.member(node, scope)

    def enum(self, declared: Type, other: Any) -> None:
        """A literal compared with a field that lists its values must be one of them:
        otherwise the comparison has the same answer on every request (a misspelling)."""
        if not isinstance(declared, Prim) or declared.enum is None:
            return
        node = _unwrap(other)
        if not (isinstance(node, lark.Tree) and node.data == "literal"):
            return
        token = node.children[0]
        kinds = _ENUM_LITERALS.get(declared.name, ())
        if not isinstance(token, lark.Token) or token.type not in kinds:
            return
        value = literal_value(token)
        if any((value == v and type(v) is not bool) or value is v for v in declared.enum):
            return
        shown = ", ".join(_cel(v) for v in declared.enum)
        hint = did_you_mean(value, declared.enum) if isinstance(value, str) else ""
        if hint:  # (the closest value, as CEL spells it)
            close = ast.literal_eval(hint.removeprefix(": did you mean ").removesuffix("?"))
            hint = f": did you mean {_cel(close)}?"
        said = f"{_cel(value)} is not one of the values the schema allows ({shown}){hint}"
        self.fail(node, said)

    def key_test(self, op_node: Any, right: Any, scope: _Scope) -> _Facts:
        """``'k' in p``: where ``p.k`` (``p['k']``) is known present; else :meth:`null_test`."""
        if op_node.data != "relation_in":
            return self.null_test(op_node, right, scope)
        key = _string_literal(op_node.children[0])
        path = self.path(right, scope) if key is not None else None
        if path is None or key is None:
            return _NONE, _NONE
        return frozenset({(*path, key)}), _NONE

    def null_test(self, op_node: Any, right: Any, scope: _Scope) -> _Facts:
        """``p != null`` / ``p == null``: where ``p`` is known not to be null;
        ``type(p) == list``: where it is known to be a list."""
        if op_node.data not in ("relation_eq", "relation_ne"):
            return _NONE, _NONE
        left = op_node.children[0]
        listed = self.list_test(left, right, scope) or self.list_test(right, left, scope)
        if listed is not None:
            known = frozenset({(*listed, _A_LIST)})
            return (known, _NONE) if op_node.data == "relation_eq" else (_NONE, known)
        path = self.path(right if _is_null(left) else left, scope)
        if path is None or not (_is_null(left) or _is_null(right)):
            return _NONE, _NONE
        known = frozenset({(*path, _NOT_NULL)})
        return (known, _NONE) if op_node.data == "relation_ne" else (_NONE, known)

    def list_test(self, call_node: Any, other: Any, scope: _Scope) -> _Path | None:
        """The path ``p`` where ``call_node`` is ``type(p)`` and ``other`` is ``list``."""
        inner, named = _unwrap(call_node), _unwrap(other)
        if not (isinstance(inner, lark.Tree) and inner.data == "ident_arg"):
            return None
        if str(inner.children[0]) != "type" or _identifier(named) != "list":
            return None
        args = _exprs(inner.children[1]) if len(inner.children) > 1 else []
        return self.path(args[0], scope) if len(args) == 1 else None

    def binary(self, node: Any, op_node: Any, right_node: Any, scope: _Scope) -> Type:
        op = _BINARY[op_node.data]
        left = self.check(op_node.children[0], scope)[0]
        right = self.check(right_node, scope)[0]
        if op in ("==", "!="):
            self.enum(left, right_node)
            self.enum(right, op_node.children[0])
            return _BOOL  # any two values: unlike types are unequal, never an error
        if op == "in":
            list_node = _unwrap(right_node)
            if isinstance(list_node, lark.Tree) and list_node.data == "list_lit":
                items = _exprs(list_node.children[0] if list_node.children else None)
                if all(_literal(item) for item in items):  # (else not the same every time)
                    for item in items:
                        self.enum(left, item)
            if isinstance(right, ListT) or right == DYN:
                return _BOOL
            if isinstance(right, MapT | ObjT) and _is(left, *_MAP_KEYS):
                return _BOOL  # (a key of another type than the map's is simply not in it)
            return self.fail(node, f"no such overload: @in({left}, {right})")
        made = compare(left, right) if op in ("<", "<=", ">", ">=") else arithmetic(op, left, right)
        if made is not None:
            return made
        hint = ""
        if "number" in (str(left), str(right)) and op in "+-*/%":
            hint = " (a number may be an int or a double at run time: convert it with double())"
        return self.fail(node, f"no such overload: _{op}_({left}, {right}){hint}")

    def member(self, node: Any, scope: _Scope) -> tuple[Type, frozenset[_Path], frozenset[_Path]]:
        kind = node.data
        kids = node.children
        if kind == "literal":
            token = kids[0]
            return Prim(_LITERALS.get(token.type, "dyn")), _NONE, _NONE
        if kind in ("ident", "dot_ident"):
            return self.name(node, str(kids[0]), scope, kind == "dot_ident"), _NONE, _NONE
        if kind == "member_dot":
            qualified = self.qualified(kids[0], str(kids[1]), scope)
            if qualified in _QUALIFIED_TYPES:
                return Prim("type"), _NONE, _NONE
            target = self.check(kids[0], scope)[0]
            found = self.select(kids[1], target, str(kids[1]), node, scope)
            if found == _MAYBE_NULL:
                path = self.path(node, scope)
                if path is not None and (*path, _NOT_NULL) in scope.guards:
                    found = Prim("string")
            elif not isinstance(found, ListT) and scope.guards:
                path = self.path(node, scope)
                if path is not None and (*path, _A_LIST) in scope.guards:
                    found = ListT(DYN)  # (type(p) == list holds)
            return found, _NONE, _NONE
        if kind == "member_index":
            return self.index(node, scope), _NONE, _NONE
        if kind in ("ident_arg", "dot_ident_arg"):
            name = str(kids[0])
            args = _exprs(kids[1]) if len(kids) > 1 else []
            if name == "has" and len(args) == 1:
                return self.has(node, args[0], scope)
            types = [self.check(a, scope)[0] for a in args]
            return self.called(node, name, types, method=False), _NONE, _NONE
        if kind == "member_dot_arg":
            return self.method(node, scope), _NONE, _NONE
        if kind == "list_lit":
            items = [self.check(e, scope)[0] for e in _exprs(kids[0] if kids else None)]
            return ListT(_joined(items)), _NONE, _NONE
        if kind == "map_lit":
            entries = [self.check(e, scope)[0] for e in _exprs(kids[0] if kids else None)]
            return MapT(_joined(entries[0::2]), _joined(entries[1::2])), _NONE, _NONE
        return DYN, _NONE, _NONE  # member_object: a message type, not in this language

    def name(self, node: Any, name: str, scope: _Scope, top: bool) -> Type:
        if not top and name in scope.names:
            return scope.names[name][0]
        if name in self.roots:
            return self.roots[name]
        if name in _TYPE_NAMES:
            return Prim("type")
        return DYN  # (a variable this check has no type for: risk in a signal, refused apart)

    def qualified(self, target: Any, field: str, scope: _Scope) -> str | None:
        inner = _unwrap(target)
        if isinstance(inner, lark.Tree) and inner.data == "ident":
            name = str(inner.children[0])
            if name not in scope.names and name not in self.roots:
                return f"{name}.{field}"
        return None

    def path(self, node: Any, scope: _Scope) -> _Path | None:
        """``node`` as a guardable path, or None."""
        node = _unwrap(node)
        if not isinstance(node, lark.Tree):
            return None
        kids = node.children
        if node.data == "ident":
            name = str(kids[0])
            return (scope.names[name][1],) if name in scope.names else (name,)
        if node.data == "dot_ident":
            return (str(kids[0]),)
        if node.data == "member_dot":
            base = self.path(kids[0], scope)
            return None if base is None else (*base, str(kids[1]))
        if node.data == "member_index":
            key = _string_literal(kids[1])
            if key is None:  # a key read from a path: one value in one evaluation
                by = self.path(kids[1], scope)
                key = None if by is None else _BY + ".".join(by)
            base = self.path(kids[0], scope) if key is not None else None
            return None if base is None or key is None else (*base, key)
        return None

    def select(self, at: Any, target: Type, field: str, node: Any, scope: _Scope) -> Type:
        """``target.field`` (or ``target["field"]``: ``node``), reported at ``at``."""
        if isinstance(target, ObjT):
            found = target.field(field)
            if found is not None and found[1]:
                return found[0]  # required: the common case, no path needed
            path = self.path(node, scope)
            guarded = path is not None and path in scope.guards
            if found is not None:
                if not guarded:
                    shown_path = _text(path, field)
                    self.fail(
                        at,
                        f"{shown_path} is optional in {target.what}: read it "
                        f"only under {_guard(path, field)}",
                        optional=True,
                    )
                return found[0]
            if target.rest is not None and guarded:
                return target.rest
            hint = did_you_mean(field, [n for n, _, _ in target.fields])
            more = (
                ""
                if target.rest is None
                else " (the schema is open: an undeclared field may be read under has())"
            )
            shown_path = _text(path, field)
            return self.fail(at, f"{shown_path} is not declared in {target.what}{hint}{more}")
        if isinstance(target, MapT):
            path = self.path(node, scope)
            if path is None or path not in scope.guards:
                shown_path = _text(path, field)
                self.fail(
                    at,
                    f"{shown_path} may be absent (a key of a map): read it only under "
                    f"{_guard(path, field)}",
                    optional=True,
                )
            return target.value
        if target == DYN:
            return DYN
        return self.fail(at, f"type {target} has no fields (reading {field!r})")

    def index(self, node: Any, scope: _Scope) -> Type:
        target_node, key_node = node.children
        target = self.check(target_node, scope)[0]
        key = self.check(key_node, scope)[0]
        literal = _string_literal(key_node)
        if isinstance(target, ObjT | MapT) and literal is not None:
            return self.select(key_node, target, literal, node, scope)
        if isinstance(target, ObjT | MapT):
            if not _is(key, "string", "string|null"):  # (null: fails closed, as an absent key)
                return self.fail(key_node, f"no such overload: _[_]({target}, {key})")
            if isinstance(target, MapT):
                return target.value
            # Through a key only known at run time: a declared field, or an undeclared
            # key's value, which is dyn where the object is open (and not checked).
            values = [t for _, t, _ in target.fields]
            values += [target.rest] if target.rest is not None and target.rest != DYN else []
            return _joined(values) if values else DYN
        if isinstance(target, ListT):
            if not _is(key, "int", "uint"):  # (a double index fails unless it is whole)
                return self.fail(key_node, f"no such overload: _[_]({target}, {key})")
            return target.elem
        if target == DYN:
            return DYN
        return self.fail(node, f"no such overload: _[_]({target}, {key})")

    def has(
        self, node: Any, arg: Any, scope: _Scope
    ) -> tuple[Type, frozenset[_Path], frozenset[_Path]]:
        inner = _unwrap(arg)
        if not isinstance(inner, lark.Tree) or inner.data != "member_dot":
            return DYN, _NONE, _NONE  # (refused by the compiler)
        target = self.check(inner.children[0], scope)[0]
        if not (isinstance(target, ObjT | MapT) or target == DYN):
            self.fail(inner, f"has() needs a map or an object, not {target}")
        path = self.path(inner, scope)
        field = str(inner.children[1])
        if isinstance(target, ObjT) and target.rest is None and target.field(field) is None:
            hint = did_you_mean(field, [n for n, _, _ in target.fields])
            shown_path = _text(path, field)
            self.fail(
                inner.children[1],
                f"{shown_path} is not declared in {target.what}{hint} (has() of it is "
                "always false)",
            )
        return _BOOL, (frozenset({path}) if path else _NONE), _NONE

    def method(self, node: Any, scope: _Scope) -> Type:
        target_node, name_token = node.children[0], node.children[1]
        name = str(name_token)
        args = _exprs(node.children[2]) if len(node.children) > 2 else []
        qualified = self.qualified(target_node, name, scope)
        if qualified is not None and qualified in QUALIFIED_FUNCTIONS:  # (else int.size())
            types = [self.check(a, scope)[0] for a in args]
            return self.called(name_token, qualified, types, method=False)
        target = self.check(target_node, scope)[0]
        if name in _MACROS and args:
            return self.macro(name_token, name, target, args, scope)
        types = [target, *(self.check(a, scope)[0] for a in args)]
        return self.called(name_token, name, types, method=True)

    def macro(self, at: Any, name: str, target: Type, args: list[Any], scope: _Scope) -> Type:
        if isinstance(target, ListT):
            elem = target.elem
        elif isinstance(target, MapT):
            elem = target.key
        elif isinstance(target, ObjT):
            elem = Prim("string")
        elif target == DYN:
            elem = DYN
        else:
            return self.fail(at, f"{name}() needs a list or a map, not {target}")
        variable = _identifier(args[0])
        if variable is None:
            return DYN
        self._bound += 1
        names = dict(scope.names)
        names[variable] = (elem, f"{variable}#{self._bound}")
        inner = _Scope(names, scope.guards)
        if name in ("all", "exists", "exists_one"):
            self.boolean(args[1], inner, f"the predicate of {name}()")
            return _BOOL
        if name == "filter":
            self.boolean(args[1], inner, "the predicate of filter()")
            return ListT(elem)
        if len(args) == 3:
            when_true, _ = self.boolean(args[1], inner, "the filter of map()")
            return ListT(self.check(args[2], inner.knowing(when_true))[0])
        return ListT(self.check(args[1], inner)[0])

    def called(self, at: Any, name: str, types: list[Type], *, method: bool) -> Type:
        wrong = format_problem(name, types, method)
        if wrong is not None:
            return self.fail(at, wrong)
        made = call(name, types, method)
        if made is not None:
            return made
        if method:
            return self.fail(at, f"no such overload: {types[0]}.{name}({shown(types[1:])})")
        return self.fail(at, f"no such overload: {name}({shown(types)})")


def _is(t: Type, *names: str) -> bool:
    return isinstance(t, Prim) and t.name in ("dyn", *names)


def _joined(types: list[Type]) -> Type:
    if not types:
        return DYN
    made = types[0]
    for t in types[1:]:
        made = join(made, t)
    return made
