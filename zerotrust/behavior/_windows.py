"""Bucketed sliding windows for the memory store, compact and O(1) amortised.

The structures here are *layouts*, built once per store and shared by every subject:
the per-subject state is only a few flat ``array``s held by a :class:`State`, so a
tracked subject costs a handful of allocations and no Python object per number.

* Each window keeps sparse buckets ``[id, v1..vk]`` in one array of the narrowest
  signed type that holds them (``'b'``, widened to ``'h'``, ``'i'``, ``'q'`` and
  finally a ``list`` the first time a number does not fit, so counts stay exact).
  Bucket ids are stored as offsets from a per-window base, rebased when an offset
  no longer fits.
* Horizons, bases and running totals of every window of a subject share one
  ``array('q')`` (``State.meta``; a ``list`` should a total ever leave 64 bits).
  Reading a window never sums it: a bucket's values are added to the totals once
  when written and subtracted once when it falls out.

Bucket ``b`` is inside a window of ``span`` buckets at horizon ``h`` (the newest
bucket seen) when ``h - span < b <= h``. Bucket numbers count from :data:`EPOCH`
(a midnight UTC), so hours and days stay aligned to UTC.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import TypeAlias

__all__ = [
    "EPOCH",
    "Column",
    "Hours",
    "Recent",
    "Seen",
    "State",
    "Window",
    "add_in_place",
    "bucket",
]

#: 2023-11-14T00:00:00Z: bucket numbers count from here.
EPOCH = 1_699_920_000
_MAX = 2**31 - 1
_SMALL = 48  # a Recent set larger than this switches from an array to a dict
#: Signed array types from narrowest to widest, with the bound of each.
_CODES = "bhiq"
_LIMIT = {"b": 2**7, "h": 2**15, "i": 2**31, "q": 2**63}

#: Numbers of one structure: an array widened on demand, or a list past 64 bits.
Column: TypeAlias = "array[int] | list[int]"


def bucket(t: float, granularity: int) -> int:
    """The bucket of POSIX time ``t`` for buckets of ``granularity`` seconds."""
    return int((t - EPOCH) // granularity)


def _fitting(numbers: Iterable[int], at_least: str = "b") -> Column:
    """An empty column of the narrowest type, no narrower than ``at_least``, that
    holds all of ``numbers``."""
    lo = hi = 0
    for n in numbers:
        lo, hi = min(lo, n), max(hi, n)
    for code in _CODES[_CODES.index(at_least) :]:
        if -_LIMIT[code] <= lo and hi < _LIMIT[code]:
            return array(code)
    return []


def _like(column: Column, numbers: Sequence[int]) -> Column:
    """``numbers`` as a column of the same kind as ``column`` (all or nothing)."""
    return array(column.typecode, numbers) if isinstance(column, array) else list(numbers)


def _insert(column: Column, pos: int, numbers: Sequence[int]) -> None:
    """Insert ``numbers`` at ``pos``, all or nothing (OverflowError if one does not fit)."""
    if isinstance(column, array):
        column[pos:pos] = array(column.typecode, numbers)
    else:
        column[pos:pos] = numbers


def add_in_place(data: Column, row: int, values: Sequence[int]) -> bool:
    """Add ``values`` to the columns after ``data[row]``, all or nothing: False (the
    row as it was) if one would not fit the array's type, for the caller's general way
    to widen it."""
    done = 0
    try:
        for c, value in enumerate(values, row + 1):
            if value:
                data[c] += value
            done += 1
    except OverflowError:
        for c in range(done):
            if values[c]:
                data[row + 1 + c] -= values[c]
        return False
    return True


def _add_totals(state: State, index: int, values: Sequence[int]) -> None:
    """Add ``values`` to ``state.meta`` from ``index`` on, widening it past 64 bits."""
    meta = state.meta
    for c, value in enumerate(values, index):
        if value:
            try:
                meta[c] += value
            except OverflowError:
                meta = _widen_meta(state)
                meta[c] += value


def _widen_meta(state: State) -> list[int]:
    """Turn ``state.meta`` into a list: a total no longer fits in 64 bits."""
    meta = state.meta = list(state.meta)
    return meta


class State:
    """Per-subject storage the layouts below work on (subclassed by the store)."""

    __slots__ = ("meta",)

    def __init__(self, meta: Column) -> None:
        self.meta = meta


class Window:
    """Sparse buckets ``[id - base, v1..vk]`` in ``getattr(state, name)``; horizon,
    base and totals of each column in ``state.meta[offset:offset + 2 + columns]``."""

    __slots__ = ("columns", "name", "offset", "span", "stride")

    def __init__(self, name: str, offset: int, columns: int, span: int) -> None:
        self.name = name
        self.offset = offset
        self.columns = columns
        self.span = span
        self.stride = columns + 1

    def initial(self) -> list[int]:
        """This window's part of a new subject's ``meta``."""
        return [-_MAX, 0, *(0 for _ in range(self.columns))]

    def advance(self, state: State, at: int) -> None:
        """Slide the window so bucket ``at`` is its newest; never slides back."""
        meta, o = state.meta, self.offset
        if at <= meta[o]:
            return
        meta[o] = at
        data: Column = getattr(state, self.name)
        cutoff = at - self.span - meta[o + 1]
        if not data or data[0] > cutoff:
            return
        stride = self.stride
        end, size = 0, len(data)
        if data[size - stride] <= cutoff:  # all of it expired: back to the narrowest type
            if isinstance(data, array) and data.typecode == "b":
                del data[:]
            else:
                setattr(state, self.name, array("b"))
            for c in range(o + 2, o + 1 + stride):
                meta[c] = 0
            return
        while end < size and data[end] <= cutoff:
            for c in range(1, stride):
                try:
                    meta[o + 1 + c] -= data[end + c]
                except OverflowError:
                    meta = _widen_meta(state)
                    meta[o + 1 + c] -= data[end + c]
            end += stride
        del data[:end]

    def _room(self, state: State, at: int, numbers: Sequence[int]) -> Column:
        """Rebase and/or widen the buckets so bucket ``at`` and ``numbers`` fit."""
        meta, o, stride = state.meta, self.offset, self.stride
        old: Column = getattr(state, self.name)
        base = meta[o + 1]
        new_base = min(at, old[0] + base) if old else at
        shift = base - new_base
        rows = list(old)
        for i in range(0, len(rows), stride):
            rows[i] += shift
        new: Column = (
            []
            if isinstance(old, list)
            else _fitting([*rows, *numbers, at - new_base], old.typecode)
        )
        new.extend(rows)
        meta[o + 1] = new_base
        setattr(state, self.name, new)
        return new

    def add(self, state: State, at: int, values: tuple[int, ...]) -> bool:
        """Add to bucket ``at``; False (nothing added) if it already left the window."""
        meta, o = state.meta, self.offset
        if at <= meta[o] - self.span:
            return False
        data: Column = getattr(state, self.name)
        last = len(data) - self.stride
        # The newest bucket, the usual case: added in place (or the general way, which
        # widens the array, when a number would not fit).
        if not (last >= 0 and data[last] == at - meta[o + 1] and add_in_place(data, last, values)):
            self._put(state, at, values)
        _add_totals(state, o + 2, values)
        return True

    def _put(self, state: State, at: int, values: tuple[int, ...]) -> int:
        """Add ``values`` to bucket ``at``'s columns (no totals); the bucket's position."""
        meta, o = state.meta, self.offset
        data: Column = getattr(state, self.name)
        stride = self.stride
        if not data:
            meta[o + 1] = at
        off = at - meta[o + 1]
        last = len(data) - stride
        if last < 0 or data[last] < off:
            try:
                data.extend(_like(data, (off, *values)))
            except OverflowError:
                data = self._room(state, at, values)
                data.extend((at - meta[o + 1], *values))
            return len(data) - stride
        if data[last] == off:
            pos = last
        else:  # an earlier bucket: rare (clock skew between threads, late corrections)
            ids = data[::stride]
            i = bisect_left(ids, off)
            pos = i * stride
            if ids[i] != off:
                row = (off, *(0 for _ in values))
                try:
                    _insert(data, pos, row)
                except OverflowError:
                    data = self._room(state, at, ())
                    i = bisect_left(data[::stride], at - meta[o + 1])
                    pos = i * stride
                    _insert(data, pos, (at - meta[o + 1], *row[1:]))
        row_at = pos
        for value in values:
            pos += 1
            if value:
                new = data[pos] + value
                try:
                    data[pos] = new
                except OverflowError:
                    data = self._room(state, at, (new,))
                    data[pos] = new
        return row_at

    def value(self, state: State, at: int, column: int) -> int:
        """Column ``column`` of bucket ``at`` (0 if not stored)."""
        data: Column = getattr(state, self.name)
        if not data:
            return 0
        stride = self.stride
        off = at - state.meta[self.offset + 1]
        last = len(data) - stride
        if data[last] == off:
            return data[last + 1 + column]
        if data[last] < off:
            return 0
        ids = data[::stride]
        i = bisect_left(ids, off)
        return data[i * stride + 1 + column] if i < len(ids) and ids[i] == off else 0


class Hours(Window):
    """Hourly ``[id, records, requests]`` buckets that also count active hours (kept
    in ``meta`` after the totals)."""

    __slots__ = ()

    def __init__(self, name: str, offset: int, span: int) -> None:
        super().__init__(name, offset, 2, span)

    def initial(self) -> list[int]:
        return [*super().initial(), 0]

    def advance(self, state: State, at: int) -> None:
        meta, o = state.meta, self.offset
        if at <= meta[o]:
            return
        cutoff = at - self.span - meta[o + 1]
        data: Column = getattr(state, self.name)
        for pos in range(0, len(data), 3):
            if data[pos] > cutoff:
                break
            if data[pos + 2] > 0:
                meta[o + 4] -= 1
        super().advance(state, at)

    def add(self, state: State, at: int, values: tuple[int, ...]) -> bool:
        fresh = values[1] > 0 and self.value(state, at, 1) == 0
        added = super().add(state, at, values)
        if added and fresh:
            state.meta[self.offset + 4] += 1
        return added

    def count(self, state: State, at: int, records: int) -> float:
        """Add one request of ``records`` in hour ``at`` (the newest); return the
        :meth:`baseline` before it. The usual case, an hour that already has a
        request, is read and written in place; anything else goes :meth:`add`."""
        meta, o = state.meta, self.offset
        data: Column = getattr(state, self.name)
        last = len(data) - 3
        if last >= 0 and data[last] == at - meta[o + 1] and data[last + 2] > 0:
            hours = meta[o + 4] - 1  # this hour is active already
            baseline = (meta[o + 2] - data[last + 1]) / hours if hours > 0 else 0.0
            if add_in_place(data, last, (records, 1)):
                _add_totals(state, o + 2, (records, 1))
                return baseline
        baseline = self.baseline(state, at)
        self.add(state, at, (records, 1))
        return baseline

    def baseline(self, state: State, current: int) -> float:
        """Records per active hour over the stored hours before ``current``."""
        meta, o = state.meta, self.offset
        records = meta[o + 2] - self.value(state, current, 0)
        hours = meta[o + 4] - (1 if self.value(state, current, 1) > 0 else 0)
        return records / hours if hours > 0 else 0.0


class Recent:
    """Keys (hashes) with the bucket each was last seen in, oldest first, capped, in
    ``getattr(state, name)``.

    Small sets are one array of ``[key, bucket]`` pairs scanned in C; larger ones
    switch to a dict. Either way the oldest key is at the front, so expiry and the cap
    pop from there.
    """

    __slots__ = ("cap", "name", "span")

    def __init__(self, name: str, span: int, cap: int) -> None:
        self.name = name
        self.span = span
        self.cap = cap

    def count(self, state: State) -> int:
        kept: array[int] | dict[int, int] = getattr(state, self.name)
        return len(kept) if isinstance(kept, dict) else len(kept) // 2

    def see(self, state: State, key: int, at: int) -> int:
        """:meth:`expire` to bucket ``at``, then :meth:`touch` ``key`` in it; how many
        keys are kept. The usual case, ``key`` the newest, in place."""
        kept: array[int] | dict[int, int] = getattr(state, self.name)
        size = len(kept)
        if (
            size
            and type(kept) is array
            and kept[size - 2] == key
            and kept[size - 1] == at
            and kept[1] > at - self.span
        ):
            return size // 2
        self.expire(state, at)
        self.touch(state, key, at)
        return self.count(state)

    def expire(self, state: State, horizon: int) -> None:
        cutoff = horizon - self.span
        kept: array[int] | dict[int, int] = getattr(state, self.name)
        if isinstance(kept, dict):
            while kept:
                key = next(iter(kept))
                if kept[key] > cutoff:
                    break
                del kept[key]
            return
        if not kept or kept[1] > cutoff:
            return
        end, size = 2, len(kept)
        while end < size and kept[end + 1] <= cutoff:
            end += 2
        del kept[:end]

    def touch(self, state: State, key: int, at: int) -> None:
        """Mark ``key`` seen in bucket ``at`` (kept in last-seen order)."""
        kept: array[int] | dict[int, int] = getattr(state, self.name)
        if isinstance(kept, dict):
            old = kept.pop(key, None)
            kept[key] = at if old is None or old < at else old
            while len(kept) > self.cap:
                del kept[next(iter(kept))]
            return
        size = len(kept)
        if size and kept[size - 2] == key:
            kept[size - 1] = max(kept[size - 1], at)
            return
        keys = kept[::2]
        if key in keys:
            i = 2 * keys.index(key)
            at = max(at, kept[i + 1])
            del kept[i : i + 2]
            size -= 2
        i = size
        while i and kept[i - 1] > at:  # a late touch keeps the order by bucket
            i -= 2
        if i == size:
            kept.append(key)
            kept.append(at)
        else:
            kept[i:i] = array("q", (key, at))
        n = size // 2 + 1
        if n > self.cap:
            del kept[:2]
        elif n > _SMALL:
            setattr(state, self.name, dict(zip(kept[::2], kept[1::2], strict=True)))


class Seen:
    """Values of a few kinds (device, IP, country) with the hour each was last seen:
    ``[key, hour, kind]`` triples, oldest hour first, in ``getattr(state, name)``."""

    __slots__ = ("cap", "name", "span")

    def __init__(self, name: str, span: int, cap: int) -> None:
        self.name = name
        self.span = span
        self.cap = cap

    def check(self, state: State, kind: int, key: int, hour: int) -> bool:
        """Whether ``key`` is new for ``kind`` (the kind has history, this key not); then
        remember it as seen in ``hour``."""
        kept: array[int] = getattr(state, self.name)
        # The usual case: seen this hour already. Entries are in hour order, so those
        # of ``hour`` or later are at the end; finding ``key`` among them answers as
        # the full walk below would (expiry only matters to keys it inserts).
        i = len(kept) - 3
        while i >= 0 and kept[i + 1] >= hour:
            if kept[i] == key:
                return False
            i -= 3
        cutoff = hour - self.span
        end = 0
        while end < len(kept) and kept[end + 1] <= cutoff:
            end += 3
        if end:
            del kept[:end]
        keys = kept[::3]
        if key in keys:
            i = 3 * keys.index(key)
            if kept[i + 1] >= hour:
                return False
            del kept[i : i + 3]
            new = False
        else:
            kinds = kept[2::3]
            new = kind in kinds
            if kinds.count(kind) >= self.cap:
                i = 3 * kinds.index(kind)
                del kept[i : i + 3]
        i = len(kept)
        while i and kept[i - 2] > hour:
            i -= 3
        kept[i:i] = array("q", (key, hour, kind))
        return new
