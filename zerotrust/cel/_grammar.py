"""The CEL grammar, in Lark's notation, that both of :mod:`._syntax`'s parsers are built from.

Derived from cel-python's ``cel.lark`` (Apache-2.0, Capital One Services, LLC), itself a
translation of the cel-spec grammar (``doc/langdef.md``). The rules, and so the tree
shapes cel-python's evaluator and our code generator walk, are cel-python's; what
differs follows the spec:

* String and bytes literals are lexed by regexes in which every character has exactly
  one way to match (an escape is a backslash and one character, anything else is one
  character), so lexing is linear: cel-python's let a backslash match either way and
  took exponential time on an unterminated literal full of escapes. Raw strings treat
  a backslash as an ordinary character, as the spec says. A single-quoted literal never
  spans a line break, escaped or not. Which escapes are valid is checked when the
  literal is decoded (``_codegen_base.decode_string``), for a precise message.
* ``FLOAT_LIT`` needs a digit after the point (``1.`` is not a literal; ``.5`` is).
* List and map literals accept one trailing comma (``[1, 2,]``); calls do not.
* Triple-quoted strings are ``STRING_LIT`` too (there is no ``MLSTRING_LIT``), and
  terminals have explicit priorities instead of relying on the length of their regexes.
"""

from __future__ import annotations

__all__ = ["GRAMMAR"]

# Possessive repeats (``*+``): once a character is consumed the regex never gives it
# back, which is what makes a failing match linear rather than merely usually fast.
_SINGLE = r"""(?:"(?:[^"\\\r\n]|\\[^\r\n])*+"|'(?:[^'\\\r\n]|\\[^\r\n])*+')"""
_TRIPLE = r'''(?:"""(?:[^"\\]|\\[\s\S]|"(?!""))*+"""|\'\'\'(?:[^'\\]|\\[\s\S]|'(?!''))*+\'\'\')'''
_RAW_SINGLE = r"""(?:"[^"\r\n]*+"|'[^'\r\n]*+')"""
_RAW_TRIPLE = r'''(?:"""(?:[^"]|"(?!""))*+"""|\'\'\'(?:[^']|'(?!''))*+\'\'\')'''
_STRING = rf"(?:[rR](?:{_RAW_TRIPLE}|{_RAW_SINGLE})|{_TRIPLE}|{_SINGLE})"

GRAMMAR = (
    r"""
expr           : conditionalor ["?" conditionalor ":" expr]

conditionalor  : [conditionalor "||"] conditionaland

conditionaland : [conditionaland "&&"] relation

relation       : [relation_lt | relation_le | relation_ge | relation_gt
                  | relation_eq | relation_ne | relation_in] addition
relation_lt    : relation "<"
relation_le    : relation "<="
relation_gt    : relation ">"
relation_ge    : relation ">="
relation_eq    : relation "=="
relation_ne    : relation "!="
relation_in    : relation "in"

addition       : [addition_add | addition_sub] multiplication
addition_add   : addition "+"
addition_sub   : addition "-"

multiplication : [multiplication_mul | multiplication_div | multiplication_mod] unary
multiplication_mul : multiplication "*"
multiplication_div : multiplication "/"
multiplication_mod : multiplication "%"

unary          : member
               | unary_not unary
               | unary_neg unary

unary_not      : "!"
unary_neg      : "-"

member         : member_dot | member_dot_arg | member_index | member_object | primary
member_dot     : member "." IDENT
member_dot_arg : member "." IDENT "(" [exprlist] ")"
member_index   : member "[" expr "]"
member_object  : member "{" [fieldinits] "}"

primary        : literal | dot_ident_arg | dot_ident | ident_arg
               | paren_expr | list_lit | map_lit | ident
dot_ident_arg  : "." IDENT "(" [exprlist] ")"
dot_ident      : "." IDENT
ident_arg      : IDENT "(" [exprlist] ")"
ident          : IDENT
paren_expr     : "(" expr ")"
list_lit       : "[" [listinits] "]"
map_lit        : "{" [mapinits] "}"

exprlist       : expr ("," expr)*
// The trailing comma is taken inside the rule (an LALR parser could not tell it from a
// separator after reducing ``exprlist``); the alias keeps the tree cel-python's.
listinits      : expr ("," expr)* [","] -> exprlist

fieldinits     : IDENT ":" expr ("," IDENT ":" expr)*

mapinits       : expr ":" expr ("," expr ":" expr)* [","]

literal        : UINT_LIT | FLOAT_LIT | INT_LIT | STRING_LIT | BYTES_LIT | BOOL_LIT | NULL_LIT

// Signs are part of numeric literals (cel-spec issue 126), so that -9223372036854775808
// is an int; only where an operand may start, so ``a-1`` is still a subtraction.
INT_LIT.2      : /-?(?:0x[0-9a-fA-F]+|[0-9]+)/
UINT_LIT.3     : /-?(?:0x[0-9a-fA-F]+|[0-9]+)[uU]/
FLOAT_LIT.3    : /-?(?:[0-9]*\.[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)/

STRING_LIT.4   : /"""
    + _STRING
    + r"""/
BYTES_LIT.4    : /[bB]"""
    + _STRING
    + r"""/
BOOL_LIT       : "true" | "false"
NULL_LIT       : "null"
IDENT          : /[_a-zA-Z][_a-zA-Z0-9]*/

WHITESPACE     : /[\t\n\f\r ]+/
COMMENT        : /\/\/[^\n]*/

%ignore WHITESPACE
%ignore COMMENT
"""
)
