"""Caller data as plain JSON: checked copies, read-only views, strict parsing.

What every request (and the decision log's ``extra``) goes through before anything
trusts it: a copy into exact ``dict``/``list``/``str``/``int``/``float``/``bool``/
``None`` that never runs a caller's overridden methods, the read-only containers a
validated request shows its data in, and the I-JSON reading of a request document.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from typing import Any, NoReturn

from zerotrust._describe import describe, quote
from zerotrust.errors import RequestError

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MAX_DEPTH",
    "MAX_VALUES",
    "NotPlain",
    "parse_json_object",
    "plain_copy",
    "plain_json",
    "plain_mapping",
    "plain_object",
    "raised",
    "shown",
]

MAX_DEPTH = 32
MAX_VALUES = 10_000
# CEL integers are 64-bit: larger ones would overflow in conditions, so refuse them here.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_kind = describe


def parse_json_object(data: bytes, field: str = "request") -> dict[str, Any]:
    """Decode a request document: one JSON object in I-JSON's rules (RFC 7493 §2):
    UTF-8, no duplicate keys, no ``NaN``/``Infinity``.

    Raises :class:`RequestError` (``field``, and one line saying what is wrong) for
    empty input, bytes that are not UTF-8, a byte order mark, malformed JSON, a
    duplicate key, a bare constant, a number outside 64-bit integers or doubles,
    nesting too deep for the parser, or a document that is not an object. The values
    are then checked as any request's are, by :meth:`AccessRequest.from_mapping`.
    """
    if not data.strip():
        raise RequestError(field, "is empty (expected a JSON object)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(field, f"is not UTF-8 (invalid byte at offset {exc.start})") from exc
    if text.startswith("\ufeff"):
        raise RequestError(field, "starts with a byte order mark (JSON text has none)")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_no_constant,
            parse_int=_integer,
            parse_float=_double,
        )
    except RecursionError as exc:
        raise RequestError(field, "is not valid JSON: nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, or refused by a hook below
        raise RequestError(field, f"is not valid JSON: {_one_line(str(exc))}") from exc
    if type(value) is not dict:
        raise RequestError(field, f"must be a JSON object, not {_kind(value)}")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {quote(key)}")
        out[key] = value
    return out


def _no_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


def _double(text: str) -> float:
    number = float(text)
    if number - number != 0.0:  # 1e400 reads as infinity
        raise ValueError(f"number {quote(text)} is too large for a double")
    return number


def _integer(text: str) -> int:
    """An integer literal; one of more than 20 digits is refused unread (it is outside
    64 bits, and Python would refuse, slowly, to convert one of 4,300)."""
    if len(text) > 20:
        raise ValueError(f"integer of {len(text.lstrip('-'))} digits is outside the 64-bit range")
    return int(text)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def plain_mapping(data: Any) -> dict[str, Any]:
    """A caller's request mapping copied into plain JSON data, with every value check of
    :meth:`AccessRequest.from_mapping` but none of its shape checks.

    For code that must read a caller's mapping before it becomes a request (identity
    resolution reads ``subject.token``): it never runs the caller's code twice, and
    raises only :class:`RequestError`.
    """
    return _plain(data, "request", surrogates=False)


def plain_json(data: Any, field: str) -> dict[str, Any]:
    """A caller's mapping that is not a request (the decision log's ``extra``) copied
    into plain JSON data by the same rules, except that a lone surrogate is kept (the
    decision log writes it as a ``\\uXXXX`` escape).

    Raises :class:`RequestError` whose ``field`` starts with ``field`` (``extra.http``)
    for anything JSON cannot carry exactly: a key that is not a string (``1``,
    ``True``: never coerced to ``"1"``, ``"true"``), two keys with the same text, an
    object, NaN, an integer outside 64 bits, too deep or too many values.
    """
    return _plain(data, field, surrogates=True)


def _plain(data: Any, root: str, *, surrogates: bool) -> dict[str, Any]:
    if type(data) is dict:
        try:
            return _fast_object(data, 0, [MAX_VALUES - 1])
        except Exception:  # NotPlain, or a dict changed by another thread meanwhile
            pass  # something is off (or merely unusual): the slow walk names it
    if not issubclass(type(data), Mapping):
        raise RequestError(root, f"must be an object, not {_kind(data)}")
    return _copy_slow(data, _Walk(root, surrogates=surrogates))  # type: ignore[no-any-return]


class _Walk:
    """One slow walk: where it started, how many values it met, whether lone
    surrogates are refused (requests) or kept (the decision log's ``extra``)."""

    __slots__ = ("n", "root", "surrogates")

    def __init__(self, root: str, *, surrogates: bool) -> None:
        self.n = 0
        self.root = root
        self.surrogates = surrogates


def _refuse(*_: Any, **__: Any) -> NoReturn:
    raise TypeError(
        "a validated AccessRequest is read-only: build another one with "
        "AccessRequest.from_mapping (or to_dict() for a copy to change)"
    )


class _ReadOnlyDict(dict[str, Any]):
    """A validated request's object: reads as a ``dict`` (so ``==``, ``isinstance``
    and ``json.dumps`` work), refuses every change, and copies as itself. Made only by
    :func:`_dict_view` (``__init__``, which would refill it, is refused too)."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_dict_view, (dict(self),))


class _ReadOnlyList(list[Any]):
    """A validated request's array: reads as a ``list``, refuses every change. Made only
    by :func:`_list_view`."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_list_view, (list(self),))


for _name in ("__init__", "__setitem__", "__delitem__", "__ior__", "clear", "pop", "popitem"):
    setattr(_ReadOnlyDict, _name, _refuse)
for _name in ("setdefault", "update"):
    setattr(_ReadOnlyDict, _name, _refuse)
for _name in ("__init__", "__setitem__", "__delitem__", "__iadd__", "__imul__", "append"):
    setattr(_ReadOnlyList, _name, _refuse)
for _name in ("extend", "insert", "pop", "remove", "clear", "sort", "reverse"):
    setattr(_ReadOnlyList, _name, _refuse)
del _name

_new_dict = dict.__new__
_new_list = list.__new__
_update = dict.update
_extend = list.extend


def _dict_view(plain: dict[str, Any]) -> _ReadOnlyDict:
    view: _ReadOnlyDict = _new_dict(_ReadOnlyDict)
    _update(view, plain)
    return view


def _list_view(plain: list[Any]) -> _ReadOnlyList:
    view: _ReadOnlyList = _new_list(_ReadOnlyList)
    _extend(view, plain)
    return view


_EMPTY = _dict_view({})  # immutable, so one is shared by every request
_set_index = list.__setitem__


def plain_copy(value: Any) -> Any:
    """A copy of a request's data that is the caller's to change: its read-only (or
    plain) containers copied as plain ones. Anything else is left as it is, unread: a
    request built by hand is checked (and a raising Mapping of yours named) only on
    its way into the PDP."""
    kind = type(value)
    if kind is dict or kind is _ReadOnlyDict:
        return {key: plain_copy(item) for key, item in value.items()}
    if kind is list or kind is _ReadOnlyList:
        return [plain_copy(item) for item in value]
    return value


class NotPlain(Exception):
    """Internal: the fast copy met something it does not vouch for (the slow walk decides)."""


def plain_object(value: Any, depth: int, budget: list[int]) -> dict[str, Any]:
    """An object of exact plain data copied: the plain copy the conditions see.

    ``value`` is a ``dict`` (or a validated request's read-only one) at ``depth``, or
    ``None`` for an object left out (the empty one); ``budget`` is how many more
    values the request may hold, and is spent. Raises :class:`NotPlain` (or another
    exception: a lone surrogate's ``UnicodeEncodeError``, a dict changed meanwhile)
    for anything the slow walk must decide or name.
    """
    kind = type(value)
    if kind is dict or kind is _ReadOnlyDict:
        return _fast_object(value, depth, budget)
    if value is None:
        return {}
    raise NotPlain


def shown(plain: dict[str, Any]) -> _ReadOnlyDict:
    """The read-only copy of checked plain data, all the way down (what a validated
    request shows its callers; the plain data stays private)."""
    if not plain:
        return _EMPTY
    view = _dict_view(plain)
    for key, item in plain.items():
        kind = type(item)
        if kind is dict:
            dict.__setitem__(view, key, shown(item))
        elif kind is list:
            dict.__setitem__(view, key, _shown_list(item))
    return view


def _shown_list(plain: list[Any]) -> _ReadOnlyList:
    view = _list_view(plain)
    for i, item in enumerate(plain):
        kind = type(item)
        if kind is dict:
            _set_index(view, i, shown(item))
        elif kind is list:
            _set_index(view, i, _shown_list(item))
    return view


# The fast copy. It accepts only what _copy_json accepts and returns the same copy;
# anything else, including what is merely unusual (a subclass, a lone surrogate),
# raises so the slow walk decides. Scalars are checked inline, not by a call each:
# this is the request path. A lone surrogate is found by encoding the rare string
# that is not ASCII (isascii is O(1)): UnicodeEncodeError is the refusal.


def _fast_object(value: Any, depth: int, budget: list[int]) -> dict[str, Any]:
    if not value:
        return {}
    if depth >= MAX_DEPTH:  # its items would be deeper than allowed
        raise NotPlain
    plain: dict[str, Any] = dict(value)  # one copy in C (so another thread cannot change it)
    budget[0] -= len(plain)
    if budget[0] < 0:
        raise NotPlain
    for key, item in plain.items():  # (replacing a key's value below keeps its size)
        if type(key) is not str:
            raise NotPlain
        if not key.isascii():
            key.encode()
        kind = type(item)
        if kind is str:
            if not item.isascii():
                item.encode()
        elif kind is int:
            if not INT64_MIN <= item <= INT64_MAX:
                raise NotPlain
        elif kind is bool or item is None:
            pass
        elif kind is float:
            if item - item != 0.0:  # NaN or infinity
                raise NotPlain
        elif kind is dict or kind is _ReadOnlyDict:
            plain[key] = _fast_object(item, depth + 1, budget)
        elif kind is list or kind is tuple or kind is _ReadOnlyList:
            plain[key] = _fast_array(item, depth + 1, budget)
        else:
            raise NotPlain
    return plain


def _fast_array(value: Any, depth: int, budget: list[int]) -> list[Any]:
    if not value:
        return []
    if depth >= MAX_DEPTH:
        raise NotPlain
    plain = list(value)
    budget[0] -= len(plain)  # the copy's length: the caller's may change meanwhile
    if budget[0] < 0:
        raise NotPlain
    for i, item in enumerate(plain):
        kind = type(item)
        if kind is str:
            if not item.isascii():
                item.encode()
        elif kind is int:
            if not INT64_MIN <= item <= INT64_MAX:
                raise NotPlain
        elif kind is bool or item is None:
            pass
        elif kind is float:
            if item - item != 0.0:
                raise NotPlain
        elif kind is dict or kind is _ReadOnlyDict:
            plain[i] = _fast_object(item, depth + 1, budget)
        elif kind is list or kind is tuple or kind is _ReadOnlyList:
            plain[i] = _fast_array(item, depth + 1, budget)
        else:
            raise NotPlain
    return plain


def _copy_slow(data: Any, walk: _Walk) -> Any:
    """:func:`_copy_json` from the top; whatever the caller's own code raises while
    being read becomes a :class:`RequestError`, never a bare exception."""
    try:
        return _copy_json(data, walk.root, 0, walk)
    except RequestError:
        raise
    except Exception as exc:
        raise RequestError(walk.root, f"could not be read ({raised(exc)})") from exc


def _copy_json(value: Any, path: str, depth: int, counter: _Walk) -> Any:
    """Deep-copy a JSON value into exact builtin types, refusing anything JSON cannot carry.

    Types are told by ``type()``, never ``isinstance`` (which believes a faked
    ``__class__``), and subclasses are read through the base type's own slots
    (``str.__str__``, ``int.__int__``, ``float.__float__``, ``dict.items``,
    ``list.copy``): an override is never called. Values nested deeper than
    ``MAX_DEPTH`` are refused.
    """
    counter.n += 1
    if counter.n > MAX_VALUES:
        raise RequestError(path, f"request holds more than {MAX_VALUES} values")
    if depth > MAX_DEPTH:
        raise RequestError(path, f"nested deeper than {MAX_DEPTH} levels")
    kind = type(value)
    if value is None or kind is bool:
        return value
    if issubclass(kind, str):
        return _text(str.__str__(value), path, counter)
    if issubclass(kind, int):  # bool cannot be subclassed, so this is a number
        number = int.__int__(value)
        if not INT64_MIN <= number <= INT64_MAX:
            raise RequestError(path, "integer outside the 64-bit range")
        return number
    if issubclass(kind, float):
        real = float.__float__(value)
        if real - real != 0.0:
            raise RequestError(path, "not a JSON number (NaN or infinity)")
        return real
    if issubclass(kind, dict):
        return _copy_object(dict.items(value), path, depth, counter)
    if issubclass(kind, list):
        return _copy_array(list.copy(value), path, depth, counter)
    if issubclass(kind, tuple):
        return _copy_array(list(tuple.__iter__(value)), path, depth, counter)
    if issubclass(kind, Mapping):
        # Someone else's Mapping: its own code runs here, so bound it and name it.
        try:
            pairs = [
                (key, item)
                for key, item in itertools.islice(value.items(), MAX_VALUES - counter.n + 1)
            ]
        except Exception as exc:
            raise RequestError(path, f"could not be read ({raised(exc)})") from exc
        return _copy_object(pairs, path, depth, counter)
    raise RequestError(path, f"not a JSON value ({_kind(value)})")


def _copy_object(pairs: Any, path: str, depth: int, counter: _Walk) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for raw, item in pairs:
        if not issubclass(type(raw), str):
            raise RequestError(path, f"object keys must be strings, found {_kind(raw)}")
        key = _text(str.__str__(raw), path, counter, key=True)
        inner = f"{path}.{key}" if path != "request" else key
        if key in out:
            raise RequestError(inner, "duplicate key (two keys with the same text)")
        out[key] = _copy_json(item, inner, depth + 1, counter)
    return out


def _copy_array(items: list[Any], path: str, depth: int, counter: _Walk) -> list[Any]:
    return [_copy_json(item, f"{path}[{i}]", depth + 1, counter) for i, item in enumerate(items)]


def _text(text: str, path: str, walk: _Walk, *, key: bool = False) -> str:
    """``text`` if it is valid Unicode; a string with a lone surrogate (U+D800..U+DFFF)
    cannot be encoded as UTF-8, so it could not be logged, stored or compared."""
    if text.isascii() or walk.surrogates:
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        where = f"lone surrogate at index {exc.start}"
        if key:
            shown = text.encode("utf-8", "backslashreplace").decode("utf-8")
            raise RequestError(path, f"key '{shown}' is not valid Unicode: {where}") from exc
        raise RequestError(path, f"not valid Unicode: {where}") from exc
    return text


def raised(exc: BaseException) -> str:
    """``"RuntimeError raised"``: which exception, never its text (the caller's code wrote it)."""
    return f"{str.__str__(type(exc).__name__)} raised"
