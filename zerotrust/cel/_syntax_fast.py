"""Building the Lark parsers from celpy's grammar, and the fast driver for loading.

:func:`_build_parser` makes both of :mod:`._syntax`'s parsers from celpy's ``cel.lark``:
with positions (the exact path) or without, with plain ``str`` node names (the fast
path). :func:`_fast_parser` runs the latter through :class:`_Driver`, a tight loop over
Lark's own LALR tables, once it has checked that the driver builds Lark's trees.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import lark
from lark.exceptions import LarkError

from zerotrust.cel._grammar import GRAMMAR

__all__: list[str] = []

_BOOLEANS = frozenset({"true", "false"})


def _bool_literal(token: lark.Token) -> lark.Token:
    """``true``/``false`` lex as identifiers (so ``trueish`` stays one); retype them here."""
    if token.value in _BOOLEANS:
        return lark.Token.new_borrow_pos("BOOL_LIT", token.value, token)
    return token


def _build_parser(*, positions: bool) -> lark.Lark:
    if positions:
        return lark.Lark(
            GRAMMAR,
            parser="lalr",
            start="expr",
            g_regex_flags=re.M,
            lexer_callbacks={"IDENT": _bool_literal},
            propagate_positions=True,
            maybe_placeholders=False,
        )
    # Rule names arrive as lark Tokens; map each (by identity, filled in below before
    # any parse) to its plain str so the tree's ``data`` compares at C speed.
    names: dict[Any, str] = {}
    tree = lark.Tree

    def make_tree(data: Any, children: list[Any]) -> lark.Tree[Any]:
        return tree(names.get(data) or str(data), children)

    parser = lark.Lark(
        GRAMMAR,
        parser="lalr",
        start="expr",
        g_regex_flags=re.M,
        lexer_callbacks={"IDENT": _bool_literal},
        propagate_positions=False,
        maybe_placeholders=False,
        tree_class=make_tree,
    )
    for rule in parser.rules:
        for name in (rule.alias, rule.options.template_source, rule.origin.name):
            if name is not None:
                names[name] = str(name)
    return parser


@functools.cache
def _fast_parser() -> Callable[[str], lark.Tree[Any] | None]:
    """The same grammar without positions, for :func:`parse_fast`: tree, or None if invalid.

    Lark's own LALR loop spends most of its time on bookkeeping a load does not need
    (line counting, ``Token`` and ``Rule`` comparisons in Python, interactive-parser
    hooks); :class:`_Driver` runs the same parse table, the same per-state lexers and
    the same tree callbacks in a tight loop, in a bit over half the time. It is only
    used if this Lark version exposes what it needs and it builds the same trees as
    Lark on :data:`_SELF_TEST`; otherwise Lark's ``parse`` is used.
    """
    parser = _build_parser(positions=False)
    try:
        driver = _Driver(parser)
        if all(driver.parse(e) == parser.parse(e) for e in _SELF_TEST):
            return driver.parse
    except Exception:  # Lark's internals are not what the driver expects: use Lark
        pass

    def lark_parse(source: str) -> lark.Tree[Any] | None:
        try:
            return parser.parse(source)
        except (LarkError, RecursionError):
            return None

    return lark_parse


#: Expressions covering every rule of the grammar, parsed both ways when the driver is built.
_SELF_TEST = (
    "a.b == 1 && !c[0] || -d.e(f, 2u) < 3.5 ? g in [1, 'x'] : {'k': b\"v\", 1: null}",
    "x.all(i, i % 2 != 0) && y.exists_one(j, j <= 2) || z.map(k, k * 2, k / 1) >= []",
    'has(a.b) && .c.d(1) > e{f: 1}.g && r"x" + """y""" == true // comment',
    "size(a) - 1 >= 0 == false != (b) && type(c) == int && 0x1F < 1e3 && d.e[f].g()",
)


class _Driver:
    """Lark's LALR automaton and contextual lexer, run without Lark's per-token overhead."""

    def __init__(self, parser: lark.Lark) -> None:
        from lark.parsers.lalr_analysis import Shift  # internal: guarded by the caller

        frontend = parser.parser
        lalr = frontend.parser
        table = lalr._parse_table
        callbacks = lalr.parser.callbacks
        if any(isinstance(key, str) for key in callbacks):
            raise TypeError("terminal callbacks are not supported")
        self._states: dict[Any, dict[str, tuple[bool, Any]]] = {}
        for state, actions in table.states.items():
            row: dict[str, tuple[bool, Any]] = {}
            for key, (action, arg) in actions.items():
                if action is Shift:
                    row[str(key)] = (True, arg)
                else:
                    reduce = (len(arg.expansion), callbacks[arg], str(arg.origin.name))
                    row[str(key)] = (False, reduce)
            self._states[state] = row
        # Token's own __new__ only forwards to this (after checking for a deprecated
        # keyword): calling it directly saves a Python call per token.
        self._token: Callable[[str, str], lark.Token] = lark.Token._future_new
        self._start = table.start_states["expr"]
        self._end = table.end_states["expr"]
        self._lexers: dict[Any, tuple[tuple[Any, ...], frozenset[str], dict[str, Any]]] = {}
        for state, lexer in frontend.lexer.lexers.items():
            scanner = lexer.scanner  # built on first use; that also builds ``callback``
            if set(lexer.callback) & set(lexer.ignore_types):
                raise TypeError("callbacks on ignored terminals are not supported")
            self._lexers[state] = (tuple(scanner._mres), lexer.ignore_types, lexer.callback)

    def parse(self, text: str) -> lark.Tree[Any] | None:
        """Lark's tree for ``text``, or None where Lark would raise."""
        states = self._states
        lexers = self._lexers
        new_token = self._token
        state_stack = [self._start]
        value_stack: list[Any] = []
        end = self._end
        pos = 0
        length = len(text)
        while True:
            state = state_stack[-1]
            if pos < length:
                regexes, ignore, token_callbacks = lexers[state]
                for regex in regexes:
                    m = regex.match(text, pos)
                    if m:
                        break
                else:
                    return None
                value = m.group(0)
                kind = m.lastgroup
                pos += len(value)
                if kind in ignore:
                    continue
                token = new_token(kind, value)
                callback = token_callbacks.get(kind)
                if callback is not None:
                    token = callback(token)
                    kind = token.type
                at_end = False
            else:
                token = new_token("$END", "")
                kind = "$END"
                at_end = True
            while True:
                found = states[state].get(kind)
                if found is None:
                    return None
                shift, arg = found
                if shift:
                    if at_end:
                        return None
                    state_stack.append(arg)
                    value_stack.append(token)
                    break
                size, build, origin = arg
                if size:
                    children = value_stack[-size:]
                    del state_stack[-size:]
                    del value_stack[-size:]
                else:
                    children = []
                node = build(children)
                goto = states[state_stack[-1]].get(origin)
                if goto is None:
                    return None
                state = goto[1]
                state_stack.append(state)
                value_stack.append(node)
                if at_end and state == end:
                    tree: lark.Tree[Any] = value_stack[-1]
                    return tree
