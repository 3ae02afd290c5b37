"""CEL conditions to z3 formulas, over-approximating: what cannot be encoded is unknown.

A boolean is encoded as a pair ``(t, f)``: ``t`` when it certainly evaluates to true,
``f`` when it certainly evaluates to false, and an evaluation error when neither holds.
That is CEL's own logic: ``a && b`` is false when either side is false even if the other
errors, ``a || b`` true when either is true. Errors matter because the engine fails
closed (an erroring deny matches), so the analyses ask about ``t``, ``f`` and errors
separately.

Soundness rests on one rule: every real request must be one assignment of the formulas'
variables. So each attribute path is a family of variables (present? which type? its value
at each type), a comparison is exact only when its operands certainly have the types it
is encoded at, and everything else (a function, a macro, ``data``, a value of another
type, an int mixed with a double) is a fresh unknown that may be true, false or an error.
Unknowns are named by their canonical text: a condition is pure, so the same text gives
the same result within one request.
"""

from __future__ import annotations

from typing import Any

import lark
import z3  # type: ignore[import-untyped, import-not-found, unused-ignore]

from zerotrust.cel._codegen_base import literal_value
from zerotrust.lint._values import (
    DOUBLE,
    FALSE,
    INT_MAX,
    INT_MIN,
    TRUE,
    ListValue,
    Path,
    Tri,
    Val,
    bool_literal,
    is_literal,
    kind_of,
    literal_text,
    real_of,
    relation,
    string_val,
    text_key,
)

__all__ = ["Encoder"]

#: The largest code point a string literal may hold to be encoded (else it is unknown).
#: z3's characters stop at U+2FFFF; literals within the BMP leave the characters above
#: them room for every character a real string holds above U+FFFF, in order.
_LITERAL_MAX_CHAR = 0xFFFF
_RNE = z3.RNE()
_KINDS = ("int", "double", "string", "bool")
_ORDERED = ("int", "double", "string")
#: What a validated request always holds (an AccessRequest's variables): the flag set,
#: or "" for present (``resource.id`` is a string or null). ``behavior`` is a map too.
_SHAPE: dict[tuple[str, ...], str] = {
    **{(name,): "map" for name in ("subject", "action", "resource", "device", "context")},
    **{(name, "properties"): "map" for name in ("subject", "action", "resource")},
    ("subject", "type"): "is_string",
    ("subject", "id"): "is_string",
    ("action", "name"): "is_string",
    ("resource", "type"): "is_string",
    ("resource", "id"): "",
    ("behavior",): "map",
}
#: The variables made from the validated request.
_VALIDATED = frozenset({"subject", "action", "resource", "device", "context"})
_REQUEST_VARIABLES = frozenset({"subject", "action", "resource", "device", "context", "behavior"})


class Encoder:
    """Encodes conditions into formulas over one shared set of variables.

    ``axioms`` hold what is true of every request (a path of one type only, a present
    field has a present parent, ``risk.score`` is an int 0..100); add them to every query.
    """

    def __init__(self) -> None:
        self.axioms: list[Any] = []
        self._paths: dict[tuple[str, ...], dict[str, Any]] = {}
        self._unknowns: dict[str, Tri] = {}
        self._risk_known = True
        #: What the last condition encoded read: paths and unknowns (by key).
        self.read: set[Any] = set()
        self._scope = "rule "

    # -- entry point ------------------------------------------------------------------

    def condition(self, tree: lark.Tree[Any], *, risk_known: bool = True) -> Tri:
        """The condition ``tree`` (from :func:`zerotrust.cel._syntax.parse`) as a Tri.

        ``risk_known``: the ``risk`` variable is bound (rules), not yet (signals).
        """
        self._risk_known = risk_known
        self._scope = "rule " if risk_known else "signal "
        self.read = set()
        return self._as_bool(self._expr(tree), tree)

    # -- variables ----------------------------------------------------------------------

    def path_vars(self, parts: tuple[str, ...]) -> dict[str, Any]:
        self.read.update(parts[:i] for i in range(1, len(parts) + 1))
        found = self._paths.get(parts)
        if found is not None:
            return found
        name = repr(parts)  # not dotted: context["a.b"] is not context.a.b
        v: dict[str, Any] = {
            "has": z3.Bool(f"has {name}"),
            "map": z3.Bool(f"map {name}"),
            "is_int": z3.Bool(f"is_int {name}"),
            "is_double": z3.Bool(f"is_double {name}"),
            "is_string": z3.Bool(f"is_string {name}"),
            "is_bool": z3.Bool(f"is_bool {name}"),
            "int": z3.Int(f"int {name}"),
            "double": z3.FP(f"double {name}", DOUBLE),
            "string": z3.String(f"string {name}"),
            "bool": z3.Bool(f"bool {name}"),
        }
        self._paths[parts] = v
        kinds = [v["map"]] + [v[f"is_{k}"] for k in _KINDS]
        self.axioms.append(z3.AtMost(*kinds, 1))
        self.axioms.extend(z3.Implies(k, v["has"]) for k in kinds)
        self.axioms.append(
            z3.Implies(v["is_int"], z3.And(v["int"] >= INT_MIN, v["int"] <= INT_MAX))
        )
        if len(parts) > 1:
            parent = self.path_vars(parts[:-1])
            self.axioms.append(z3.Implies(v["has"], z3.And(parent["has"], parent["map"])))
        if parts[0] in _VALIDATED:  # requests hold no NaN or infinity (I-JSON)
            finite = z3.Not(z3.Or(z3.fpIsNaN(v["double"]), z3.fpIsInf(v["double"])))
            self.axioms.append(z3.Implies(v["is_double"], finite))
        shape = _SHAPE.get(parts)
        if shape is not None:  # what every validated request has
            self.axioms.append(z3.And(v["has"], v[shape]) if shape else v["has"])
        if parts == ("risk", "score"):
            known = z3.And(v["has"], v["is_int"], v["int"] >= 0, v["int"] <= 100)
            self.axioms.append(known)
        return v

    def paths(self) -> dict[tuple[str, ...], dict[str, Any]]:
        return self._paths

    def _unknown(self, key: str) -> Tri:
        key = self._scope + key  # risk is bound for rules, not for signals
        self.read.add(key)
        found = self._unknowns.get(key)
        if found is None:
            n = len(self._unknowns)
            t, f = z3.Bool(f"unknown {n} t"), z3.Bool(f"unknown {n} f")
            found = Tri(t, z3.And(z3.Not(t), f))
            self._unknowns[key] = found
        return found

    def _guarded(self, ok: Any, exact: Any, key: str, err: Any = None) -> Tri:
        """``exact`` where ``ok``, an error where ``err``, elsewhere an unknown (true,
        false or an error). ``ok`` and ``err`` never both hold."""
        u = self._unknown(key)
        other = z3.Not(ok) if err is None else z3.And(z3.Not(ok), z3.Not(err))
        return Tri(
            z3.Or(z3.And(ok, exact), z3.And(other, u.t)),
            z3.Or(z3.And(ok, z3.Not(exact)), z3.And(other, u.f)),
        )

    # -- expressions --------------------------------------------------------------------

    def _expr(self, node: Any) -> Any:
        """The encoding of ``node``: a Tri, Val, Path, ListValue, or None (unknown)."""
        if not isinstance(node, lark.Tree):
            return None
        data = node.data
        kids = node.children
        if data == "expr":
            if len(kids) == 1 or kids[1] is None:
                return self._expr(kids[0])
            return self._ternary(node)
        if data in ("conditionalor", "conditionaland"):
            if len(kids) == 1 or kids[0] is None:
                return self._expr(kids[-1])
            left = self._as_bool(self._expr(kids[0]), kids[0])
            right = self._as_bool(self._expr(kids[1]), kids[1])
            if data == "conditionalor":
                return Tri(z3.Or(left.t, right.t), z3.And(left.f, right.f))
            return Tri(z3.And(left.t, right.t), z3.Or(left.f, right.f))
        if data in ("relation", "addition", "multiplication"):
            if len(kids) == 1 or kids[0] is None:
                return self._expr(kids[-1])
            op_node = kids[0]
            left_node = op_node.children[0]
            return self._binary(
                op_node.data, self._expr(left_node), self._expr(kids[1]), text_key(node)
            )
        if data == "unary":
            if len(kids) == 1:
                return self._expr(kids[0])
            inner = self._expr(kids[1])
            if kids[0].data == "unary_not":
                b = self._as_bool(inner, kids[1])
                return Tri(b.f, b.t)
            return self._negate(inner)
        if data in ("member", "primary", "paren_expr"):
            return self._expr(kids[0])
        if data == "literal":
            return self._literal(kids[0])
        if data == "ident":
            name = str(kids[0])
            return Path((name,)) if self._readable(name) else None
        if data == "member_dot":
            target = self._expr(kids[0])
            if isinstance(target, Path):
                return Path((*target.parts, str(kids[1])))
            return None
        if data == "member_index":
            target = self._expr(kids[0])
            index = self._expr(kids[1])
            if isinstance(target, Path) and isinstance(index, Val) and index.kind == "string":
                text = literal_text(kids[1])
                if text is not None:
                    return Path((*target.parts, text))
            return None
        if data == "list_lit":
            if not kids or kids[0] is None:
                return ListValue(())
            return ListValue(tuple(self._expr(e) for e in kids[0].children))
        if data == "ident_arg" and str(kids[0]) == "has":
            return self._has(kids[1] if len(kids) > 1 else None, node)
        if data == "member_dot_arg":
            return self._method(node)
        return None

    def _readable(self, name: str) -> bool:
        if name in _REQUEST_VARIABLES:
            return True
        return name == "risk" and self._risk_known  # data, now: unknowns

    def _as_bool(self, value: Any, node: Any) -> Tri:
        if isinstance(value, Tri):
            return value
        if isinstance(value, Path):
            v = self.path_vars(value.parts)
            # anything but a bool errors in a logical operator (CEL has no truthiness)
            return Tri(z3.And(v["is_bool"], v["bool"]), z3.And(v["is_bool"], z3.Not(v["bool"])))
        return self._unknown("bool " + text_key(node))

    def _literal(self, token: Any) -> Any:
        try:
            value = literal_value(token)
        except Exception:  # the loader has checked it; be safe anyway
            return None
        if isinstance(value, bool):
            return TRUE if value else FALSE
        if isinstance(value, int) and token.type == "INT_LIT":
            return Val("int", z3.IntVal(value), z3.BoolVal(True))
        if isinstance(value, float):
            return Val("double", z3.FPVal(value, DOUBLE), z3.BoolVal(True))
        if isinstance(value, str) and all(ord(c) <= _LITERAL_MAX_CHAR for c in value):
            return Val("string", string_val(value), z3.BoolVal(True))
        return None  # null, bytes, uint: not encoded

    def _ternary(self, node: lark.Tree[Any]) -> Any:
        cond_node, then_node, else_node = node.children
        cond = self._as_bool(self._expr(cond_node), cond_node)
        then, other = self._expr(then_node), self._expr(else_node)
        if not isinstance(then, Tri) or not isinstance(other, Tri):
            return None  # a value ternary: not encoded
        return Tri(
            z3.Or(z3.And(cond.t, then.t), z3.And(cond.f, other.t)),
            z3.Or(z3.And(cond.t, then.f), z3.And(cond.f, other.f)),
        )

    def _negate(self, value: Any) -> Any:
        if isinstance(value, Val) and value.kind == "int":
            result = -value.expr
            overflow = z3.And(value.ok, result > INT_MAX)
            return Val(
                "int", result, z3.And(value.ok, result <= INT_MAX), z3.Or(value.err, overflow)
            )
        if isinstance(value, Val) and value.kind == "double":
            return Val("double", z3.fpNeg(value.expr), value.ok, value.err)
        return None

    def _typed(self, value: Any, kind: str, *, strict: bool = False) -> Val | None:
        """``value`` as a value of ``kind``: a path is read at that type. ``strict``:
        where a value of another type errors (arithmetic, a method's receiver)."""
        if isinstance(value, Path):
            v = self.path_vars(value.parts)
            err = z3.Not(v[f"is_{kind}"]) if strict else z3.Not(v["has"])
            return Val(kind, v[kind], v[f"is_{kind}"], err)
        if isinstance(value, Val) and value.kind == kind:
            return value
        return None

    def _binary(self, op: str, left: Any, right: Any, key: str) -> Any:
        if op in ("addition_add", "addition_sub", "multiplication_mul", "multiplication_div"):
            return self._arithmetic(op, left, right)
        if op in ("multiplication_mod",):
            return None
        if op == "relation_in":
            return self._in(left, right, key)
        return self._compare(op, left, right, key)

    def _arithmetic(self, op: str, left: Any, right: Any) -> Any:
        kind = kind_of(left, right)
        if kind is None or kind == "bool":
            return None
        a, b = self._typed(left, kind, strict=True), self._typed(right, kind, strict=True)
        if a is None or b is None:
            return None
        ok, err = z3.And(a.ok, b.ok), z3.Or(a.err, b.err)
        if kind == "string":
            if op != "addition_add":
                return None
            return Val("string", z3.Concat(a.expr, b.expr), ok, err)
        if kind == "int":
            if op == "multiplication_div":
                return None  # truncating division and its errors: not encoded
            result = {"addition_add": a.expr + b.expr, "addition_sub": a.expr - b.expr}.get(
                op, a.expr * b.expr
            )
            in_range = z3.And(result >= INT_MIN, result <= INT_MAX)  # else: overflow error
            overflow = z3.And(ok, z3.Not(in_range))  # an error, as CEL says
            return Val("int", result, z3.And(ok, in_range), z3.Or(err, overflow))
        fp = {
            "addition_add": z3.fpAdd,
            "addition_sub": z3.fpSub,
            "multiplication_mul": z3.fpMul,
            "multiplication_div": z3.fpDiv,
        }[op]
        return Val("double", fp(_RNE, a.expr, b.expr), ok, err)

    def _compare(self, op: str, left: Any, right: Any, key: str) -> Tri:
        if op == "relation_ne":  # CEL's != is exactly the negation of ==, errors alike
            equal = self._compare("relation_eq", left, right, key)
            return Tri(equal.f, equal.t)
        if isinstance(left, Path) or isinstance(right, Path):
            left, right = bool_literal(left), bool_literal(right)
        if op != "relation_eq" and any(
            isinstance(x, Tri) or (isinstance(x, Val) and x.kind == "bool") for x in (left, right)
        ):
            return self._unknown(key)  # bools are ordered too (false < true): not encoded
        if isinstance(left, Tri) and isinstance(right, Tri) and op == "relation_eq":
            same = z3.Or(z3.And(left.t, right.t), z3.And(left.f, right.f))
            differ = z3.Or(z3.And(left.t, right.f), z3.And(left.f, right.t))
            return Tri(same, differ)
        if isinstance(left, Path) and isinstance(right, Val):
            return self._path_value(op, left, right, key, path_left=True)
        if isinstance(right, Path) and isinstance(left, Val):
            return self._path_value(op, right, left, key, path_left=False)
        if isinstance(left, Path) and isinstance(right, Path):
            return self._path_pair(op, left, right, key)
        if isinstance(left, Val) and isinstance(right, Val) and left.kind == right.kind:
            ok, err = z3.And(left.ok, right.ok), z3.Or(left.err, right.err)
            return self._guarded(ok, relation(op, left.kind, left.expr, right.expr), key, err)
        return self._unknown(key)

    def _path_value(self, op: str, path: Path, value: Val, key: str, *, path_left: bool) -> Tri:
        """``path op value``: exact at the value's kind, across int and double for a
        literal, false for == with a value of another kind (CEL's heterogeneous equality)."""
        v = self.path_vars(path.parts)
        kind = value.kind

        def rel(k: str, a: Any, b: Any) -> Any:
            return relation(op, k, a, b) if path_left else relation(op, k, b, a)

        oks = [z3.And(v[f"is_{kind}"], value.ok)]
        trues = [z3.And(oks[0], rel(kind, v[kind], value.expr))]
        cross = {"int": "double", "double": "int"}.get(kind)
        literal = z3.simplify(value.expr)
        if kind == "int" and z3.is_int_value(literal) and abs(literal.as_long()) <= 2**53:
            as_double = z3.FPVal(float(literal.as_long()), DOUBLE)
            oks.append(v["is_double"])
            trues.append(z3.And(v["is_double"], rel("double", v["double"], as_double)))
        elif kind == "double" and z3.is_fp_value(literal):
            exact = real_of(literal)
            if exact is not None:
                small = _exactly_double(v["int"])
                oks.append(z3.And(v["is_int"], small))
                trues.append(z3.And(v["is_int"], small, rel("real", z3.ToReal(v["int"]), exact)))
        if op == "relation_eq":
            other = [v["has"], z3.Not(v[f"is_{kind}"]), value.ok]
            if cross is not None:
                other.append(z3.Not(v[f"is_{cross}"]))
            oks.append(z3.And(*other))  # of another kind: false, never an error
        err = z3.Or(z3.Not(v["has"]), value.err)
        if op != "relation_eq":  # ordering another type errors (numbers: int or double)
            same = [v[f"is_{kind}"]] if cross is None else [v["is_int"], v["is_double"]]
            err = z3.Or(err, z3.Not(z3.Or(*same)))
        return self._guarded(z3.Or(*oks), z3.Or(*trues), key, err)

    def _path_pair(self, op: str, left: Path, right: Path, key: str) -> Tri:
        if op == "relation_eq":  # symmetric: a == b and b == a share their unknown
            key = "== " + " ".join(sorted(repr(p.parts) for p in (left, right)))
        a, b = self.path_vars(left.parts), self.path_vars(right.parts)
        kinds = _KINDS if op == "relation_eq" else _ORDERED
        oks, trues = [], []
        for k in kinds:
            ok = z3.And(a[f"is_{k}"], b[f"is_{k}"])
            oks.append(ok)
            trues.append(z3.And(ok, relation(op, k, a[k], b[k])))
        if op == "relation_eq":
            flags = ("is_int", "is_double", "is_string", "is_bool", "map")
            numeric = {"is_int", "is_double"}
            for fa in flags:
                for fb in flags:
                    if fa != fb and not {fa, fb} <= numeric:
                        oks.append(z3.And(a[fa], b[fb]))  # different kinds: false
            for i, d in ((a, b), (b, a)):  # an int and a double: compared as numbers
                finite = z3.Not(z3.Or(z3.fpIsNaN(d["double"]), z3.fpIsInf(d["double"])))
                small = _exactly_double(i["int"])
                oks.append(z3.And(i["is_int"], small, d["is_double"]))
                trues.append(
                    z3.And(
                        i["is_int"],
                        small,
                        d["is_double"],
                        finite,
                        z3.ToReal(i["int"]) == z3.fpToReal(d["double"]),
                    )
                )
        err = z3.Or(z3.Not(a["has"]), z3.Not(b["has"]))
        if op != "relation_eq":  # ordering errors but for two numbers, strings or bools
            numbers = [z3.Or(x["is_int"], x["is_double"]) for x in (a, b)]
            comparable = z3.Or(
                z3.And(*numbers),
                z3.And(a["is_string"], b["is_string"]),
                z3.And(a["is_bool"], b["is_bool"]),
            )
            err = z3.Or(err, z3.Not(comparable))
        return self._guarded(z3.Or(*oks), z3.Or(*trues), key, err)

    def _in(self, left: Any, right: Any, key: str) -> Tri:
        if not isinstance(right, ListValue):
            return self._unknown(key)
        if not right.items:
            return self._guarded(_defined(self, left), z3.BoolVal(False), key)  # x in []
        kinds = {item.kind for item in right.items if isinstance(item, Val)}
        if len(kinds) != 1 or not all(is_literal(i) for i in right.items):
            return self._unknown(key)  # only a list of literals of one type is encoded
        (kind,) = kinds
        value = self._typed(left, kind)
        if value is None:
            return self._unknown(key)
        hits = [relation("relation_eq", kind, value.expr, item.expr) for item in right.items]
        ok = value.ok
        if isinstance(left, Path):
            v = self.path_vars(left.parts)  # another kind is in no list of these: false
            same = [v["is_int"], v["is_double"]] if kind in ("int", "double") else [v[f"is_{kind}"]]
            ok = z3.Or(ok, z3.And(v["has"], z3.Not(z3.Or(*same))))
            hits = [z3.And(value.ok, h) for h in hits]
        return self._guarded(ok, z3.Or(*hits), key, value.err)

    def _has(self, args: Any, node: lark.Tree[Any]) -> Tri:
        key = text_key(node)
        exprs = args.children if isinstance(args, lark.Tree) else []
        if len(exprs) != 1:
            return self._unknown(key)
        target = self._expr(exprs[0])
        if not isinstance(target, Path) or len(target.parts) < 2:
            return self._unknown(key)
        v = self.path_vars(target.parts)
        parent = self.path_vars(target.parts[:-1])
        # has() on a parent that is missing or no map errors
        return Tri(z3.And(parent["map"], v["has"]), z3.And(parent["map"], z3.Not(v["has"])))

    def _method(self, node: lark.Tree[Any]) -> Any:
        key = text_key(node)
        name = str(node.children[1])
        args = node.children[2] if len(node.children) > 2 else None
        exprs = args.children if isinstance(args, lark.Tree) else []
        if name not in ("startsWith", "endsWith", "contains") or len(exprs) != 1:
            return None
        receiver = self._typed(self._expr(node.children[0]), "string", strict=True)
        arg = self._typed(self._expr(exprs[0]), "string", strict=True)
        if receiver is None or arg is None:
            return self._unknown(key)
        exact = {
            "startsWith": z3.PrefixOf(arg.expr, receiver.expr),
            "endsWith": z3.SuffixOf(arg.expr, receiver.expr),
            "contains": z3.Contains(receiver.expr, arg.expr),
        }[name]
        ok, err = z3.And(receiver.ok, arg.ok), z3.Or(receiver.err, arg.err)
        return self._guarded(ok, exact, key, err)


def _exactly_double(integer: Any) -> Any:
    """The int is one a double holds exactly (|i| <= 2**53). The engine compares an int
    with a double as two doubles, so past that the int is rounded first: such a
    comparison is left unknown rather than judged as exact arithmetic would."""
    return z3.And(integer >= -(2**53), integer <= 2**53)


def _defined(encoder: Encoder, value: Any) -> Any:
    """When evaluating ``value`` certainly does not error (for ``x in []``)."""
    if isinstance(value, Val):
        return value.ok
    if isinstance(value, Path):
        return encoder.path_vars(value.parts)["has"]
    return z3.BoolVal(False)
