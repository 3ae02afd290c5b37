"""The daily and long windows of the memory store: UTC-day sums for the 7- and 30-day
features and the per-day baselines (:class:`Days`), and resources by the hour they
were last requested, for the 24-hour, 7-day and 30-day distinct counts
(:class:`Distinct`). Layouts in the manner of :mod:`zerotrust.behavior._windows`:
built once per store, the per-subject numbers in flat arrays of a :class:`State`.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right

from zerotrust.behavior._windows import _MAX, Column, State, Window, _widen_meta, add_in_place

__all__ = ["Days", "Distinct"]


def _bump(state: State, index: int, value: int) -> None:
    """``state.meta[index] += value``, widening ``meta`` past 64 bits."""
    try:
        state.meta[index] += value
    except OverflowError:
        _widen_meta(state)[index] += value


def _set(state: State, index: int, value: int) -> None:
    """``state.meta[index] = value``, widening ``meta`` past 64 bits."""
    try:
        state.meta[index] = value
    except OverflowError:
        _widen_meta(state)[index] = value


#: The daily sums :class:`Days` keeps: records of the last 7 and 30 days, active days
#: of the last 30, and records, active days and daily distinct counts of the past days.
_R7, _R30, _A30, _RP, _AP, _DP = range(2, 8)


class Days(Window):
    """UTC days ``[id, records, requests, distinct]`` (``distinct``: resources first
    requested that day, see :class:`Distinct`) over ``max(30, past + 1)`` days, and in
    ``meta`` after horizon and base not the window's totals but the sums the long
    features read:

    * records of the days after ``horizon - 7`` and after ``horizon - 30`` (today and,
      as in every window, a correction for a later day included);
    * days after ``horizon - 30`` with a request (an *active* day);
    * records, active days and distinct counts of the ``past`` days before the
      horizon (today excluded): the per-day baselines and a member's figures.

    An add updates the sums its day is in; a new day recounts them from the buckets
    (at most ``span``, C-level slices), once per subject per day.
    """

    __slots__ = ("past",)

    def __init__(self, name: str, offset: int, past: int) -> None:
        super().__init__(name, offset, 3, max(30, past + 1))
        self.past = past

    def initial(self) -> list[int]:
        return [-_MAX, 0, 0, 0, 0, 0, 0, 0]

    def advance(self, state: State, at: int) -> None:
        meta, o = state.meta, self.offset
        if at <= meta[o]:
            return
        meta[o] = at
        data: Column = getattr(state, self.name)
        base = meta[o + 1]
        cutoff = at - self.span - base
        if data and data[0] <= cutoff:
            end = bisect_right(data[::4], cutoff) * 4
            if end == len(data):
                setattr(state, self.name, array("b"))
            else:
                del data[:end]
        self._recount(state, at)

    def _recount(self, state: State, at: int) -> None:
        data: Column = getattr(state, self.name)
        o = self.offset
        base = state.meta[o + 1]
        ids, records, requests = data[::4], data[1::4], data[2::4]
        i7 = bisect_right(ids, at - 7 - base)
        i30 = bisect_right(ids, at - 30 - base)
        ip = bisect_left(ids, at - self.past - base)
        it = bisect_left(ids, at - base)
        active30, past = requests[i30:], requests[ip:it]
        sums = (
            sum(records[i7:]),
            sum(records[i30:]),
            len(active30) - active30.count(0),
            sum(records[ip:it]),
            len(past) - past.count(0),
            sum(data[3::4][ip:it]),
        )
        for index, value in enumerate(sums, o + _R7):
            _set(state, index, value)

    def add(self, state: State, at: int, values: tuple[int, ...]) -> bool:
        meta, o = state.meta, self.offset
        records, requests, distinct = values
        if at == meta[o]:  # today, the usual case: a day already active, added in place
            data: Column = getattr(state, self.name)
            last = len(data) - 4
            if (
                last >= 0
                and data[last] == at - meta[o + 1]
                and data[last + 2] > 0
                and add_in_place(data, last, values)
            ):
                if records:
                    _bump(state, o + _R7, records)
                    _bump(state, o + _R30, records)
                return True
        back = meta[o] - at  # days before the horizon
        if back >= self.span:
            return False
        pos = self._put(state, at, values)
        fresh = requests > 0 and getattr(state, self.name)[pos + 2] == requests
        if back < 30:  # the usual case: today
            if records:
                if back < 7:
                    try:
                        meta[o + _R7] += records
                    except OverflowError:
                        meta = _widen_meta(state)
                        meta[o + _R7] += records
                try:
                    meta[o + _R30] += records
                except OverflowError:
                    meta = _widen_meta(state)
                    meta[o + _R30] += records
            if fresh:
                meta[o + _A30] += 1  # at most 30: fits
        if 0 < back <= self.past:
            if records:
                _bump(state, o + _RP, records)
            if fresh:
                state.meta[o + _AP] += 1
            if distinct:
                _bump(state, o + _DP, distinct)
        return True

    def sums(self, state: State) -> tuple[int, int, int, int, int, int]:
        """Records in 7 and 30 days, active days in 30; records, active days and
        distinct counts of the past days."""
        meta, o = state.meta, self.offset
        return (
            meta[o + _R7],
            meta[o + _R30],
            meta[o + _A30],
            meta[o + _RP],
            meta[o + _AP],
            meta[o + _DP],
        )


class Distinct:
    """Resources with the UTC hour each was last requested, counted over several
    spans of hours (the current hour and the ``span - 1`` before), capped at ``cap``
    (the oldest last seen forgotten first; the counts saturate there).

    Per subject, in attributes ``<name>k``, ``<name>h``, ``<name>x``, ``<name>n``: the
    resource hashes sorted (``array('q')``) with their last-seen hours beside them
    (``array('i')``), and a histogram of last-seen hours (hours and counts). In
    ``meta[offset:]``: the hour the counts are for, then one count per span. A lookup
    bisects; a new hour recounts from the histogram (once per subject per hour);
    entries older than every span (and a day of slack for late requests) are dropped
    in batches of at least a quarter.
    """

    __slots__ = (
        "cap",
        "counts_at",
        "hist_counts",
        "hist_hours",
        "hours",
        "keys",
        "offset",
        "spans",
    )

    def __init__(self, name: str, offset: int, spans: tuple[int, ...], cap: int) -> None:
        self.keys, self.hours = name + "k", name + "h"
        self.hist_hours, self.hist_counts = name + "x", name + "n"
        self.offset = offset
        self.spans = spans
        self.counts_at = range(offset + 1, offset + 1 + len(spans))
        self.cap = cap

    def initial(self) -> list[int]:
        return [-_MAX, *(0 for _ in self.spans)]

    def counts(self, state: State) -> tuple[int, ...]:
        o = self.offset
        return tuple(state.meta[o + 1 : o + 1 + len(self.spans)])

    def touch(self, state: State, key: int, hour: int) -> bool:
        """Mark ``key`` seen in ``hour``; whether that is its first request on the
        UTC day of ``hour`` (it was not remembered, or last seen on an earlier day)."""
        meta, o = state.meta, self.offset
        if meta[o] != hour:
            self._recount(state, hour)
        keys: array[int] = getattr(state, self.keys)
        hours: array[int] = getattr(state, self.hours)
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            old = hours[i]
            if old >= hour:
                return False
            hours[i] = hour
            self._forget(state, old)
            self._remember(state, hour)
            for index, span in enumerate(self.spans, o + 1):
                if old <= hour - span:  # back inside this window
                    meta[index] += 1
            return old // 24 < hour // 24
        keys.insert(i, key)
        hours.insert(i, hour)
        ns: array[int] = getattr(state, self.hist_counts)
        if ns and getattr(state, self.hist_hours)[-1] == hour:
            ns[-1] += 1
        else:
            self._remember(state, hour)
        for index in self.counts_at:
            meta[index] += 1
        if len(keys) > self.cap:
            self._evict(state)
        return True

    def _recount(self, state: State, hour: int) -> None:
        meta, o = state.meta, self.offset
        meta[o] = hour
        xs: array[int] = getattr(state, self.hist_hours)
        ns: array[int] = getattr(state, self.hist_counts)
        for index, span in enumerate(self.spans, o + 1):
            meta[index] = sum(ns[bisect_right(xs, hour - span) :])
        cutoff = hour - max(self.spans) - 24
        end = bisect_right(xs, cutoff)
        if end:
            old = sum(ns[:end])
            if old >= 16 and 4 * old >= len(getattr(state, self.keys)):
                self._expire(state, cutoff, end)

    def _expire(self, state: State, cutoff: int, end: int) -> None:
        keys: array[int] = getattr(state, self.keys)
        hours: array[int] = getattr(state, self.hours)
        kept = [i for i, h in enumerate(hours) if h > cutoff]
        setattr(state, self.keys, array("q", [keys[i] for i in kept]))
        setattr(state, self.hours, array("i", [hours[i] for i in kept]))
        del getattr(state, self.hist_hours)[:end]
        del getattr(state, self.hist_counts)[:end]

    def _evict(self, state: State) -> None:
        """Forget a resource of the oldest last-seen hour."""
        meta, o = state.meta, self.offset
        hours: array[int] = getattr(state, self.hours)
        oldest = getattr(state, self.hist_hours)[0]
        i = hours.index(oldest)
        del getattr(state, self.keys)[i]
        del hours[i]
        self._forget(state, oldest)
        for index, span in enumerate(self.spans, o + 1):
            if oldest > meta[o] - span:
                meta[index] -= 1

    def _remember(self, state: State, hour: int) -> None:
        xs: array[int] = getattr(state, self.hist_hours)
        ns: array[int] = getattr(state, self.hist_counts)
        if xs and xs[-1] >= hour:
            i = len(xs) - 1 if xs[-1] == hour else bisect_left(xs, hour)
            if xs[i] == hour:
                ns[i] += 1
                return
            xs.insert(i, hour)
            ns.insert(i, 1)
            return
        xs.append(hour)
        ns.append(1)

    def _forget(self, state: State, hour: int) -> None:
        xs: array[int] = getattr(state, self.hist_hours)
        ns: array[int] = getattr(state, self.hist_counts)
        i = bisect_left(xs, hour)
        if ns[i] == 1:
            del xs[i]
            del ns[i]
        else:
            ns[i] -= 1
