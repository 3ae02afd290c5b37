"""Bucketed sliding windows for the memory store, compact and O(1) amortised.

Each structure keeps its buckets in flat ``array``s (4 bytes a number rather than a
Python object each) with running totals, so reading a window never sums it: a
bucket's values are added once when written and subtracted once when it falls out.
Bucket ``b`` is inside a window of ``span`` buckets at horizon ``h`` (the newest
bucket seen) when ``h - span < b <= h``. Bucket numbers count from :data:`EPOCH`
(a midnight UTC), so they fit in 32 bits and hours and days stay aligned to UTC.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left

__all__ = ["EPOCH", "Hours", "Recent", "Seen", "Window", "bucket"]

#: 2023-11-14T00:00:00Z: bucket numbers count from here.
EPOCH = 1_699_920_000
_MAX = 2**31 - 1
_SMALL = 48  # a Recent set larger than this switches from arrays to a dict


def bucket(t: float, granularity: int) -> int:
    """The bucket of POSIX time ``t`` for buckets of ``granularity`` seconds."""
    return int((t - EPOCH) // granularity)


class Window:
    """Sparse buckets ``[id, v1..vk]`` with running totals of each column."""

    __slots__ = ("data", "horizon", "span", "stride", "totals")

    def __init__(self, columns: int, span: int) -> None:
        self.data = array("i")
        self.totals = [0] * columns
        self.span = span
        self.stride = columns + 1
        self.horizon = -_MAX

    def advance(self, at: int) -> None:
        """Slide the window so bucket ``at`` is its newest; never slides back."""
        if at <= self.horizon:
            return
        self.horizon = at
        data = self.data
        if not data or data[0] > at - self.span:
            return
        cutoff, stride, totals = at - self.span, self.stride, self.totals
        end, size = 0, len(data)
        if data[size - stride] <= cutoff:  # all of it expired
            data[:] = array("i")
            for c in range(stride - 1):
                totals[c] = 0
            return
        while end < size and data[end] <= cutoff:
            for c in range(1, stride):
                totals[c - 1] -= data[end + c]
            end += stride
        del data[:end]

    def add(self, at: int, values: tuple[int, ...]) -> bool:
        """Add to bucket ``at``; False (nothing added) if it already left the window."""
        if at <= self.horizon - self.span:
            return False
        data, stride = self.data, self.stride
        last = len(data) - stride
        if last < 0 or data[last] < at:
            data.append(at)
            data.extend(array("i", [min(v, _MAX) for v in values]))
        else:
            if data[last] == at:
                pos = last
            else:  # an earlier bucket: rare (clock skew between threads, late corrections)
                ids = data[::stride]
                i = bisect_left(ids, at)
                pos = i * stride
                if ids[i] != at:
                    data[pos:pos] = array("i", (at, *(0 for _ in values)))
            for value in values:
                pos += 1
                if value:
                    try:
                        data[pos] += value
                    except OverflowError:
                        data[pos] = _MAX
        totals = self.totals
        for c, value in enumerate(values):
            if value:
                totals[c] += value
        return True

    def value(self, at: int, column: int) -> int:
        """Column ``column`` of bucket ``at`` (0 if not stored)."""
        data, stride = self.data, self.stride
        if not data:
            return 0
        last = len(data) - stride
        if data[last] == at:
            return data[last + 1 + column]
        if data[last] < at:
            return 0
        ids = data[::stride]
        i = bisect_left(ids, at)
        return data[i * stride + 1 + column] if i < len(ids) and ids[i] == at else 0


class Hours(Window):
    """Hourly ``[id, records, requests]`` buckets that also count active hours."""

    __slots__ = ("active",)

    def __init__(self, span: int) -> None:
        super().__init__(2, span)
        self.active = 0

    def advance(self, at: int) -> None:
        if at <= self.horizon:
            return
        cutoff = at - self.span
        data = self.data
        for pos in range(0, len(data), 3):
            if data[pos] > cutoff:
                break
            if data[pos + 2] > 0:
                self.active -= 1
        super().advance(at)

    def add(self, at: int, values: tuple[int, ...]) -> bool:
        fresh = values[1] > 0 and self.value(at, 1) == 0
        added = super().add(at, values)
        if added and fresh:
            self.active += 1
        return added

    def baseline(self, current: int) -> float:
        """Records per active hour over the stored hours before ``current``."""
        records = self.totals[0] - self.value(current, 0)
        hours = self.active - (1 if self.value(current, 1) > 0 else 0)
        return records / hours if hours > 0 else 0.0


class Recent:
    """Keys (hashes) with the bucket each was last seen in, oldest first, capped.

    Small sets are two arrays scanned in C; larger ones switch to a dict. Either way
    the oldest key is at the front, so expiry and the cap pop from there.
    """

    __slots__ = ("buckets", "cap", "keys", "map", "span")

    def __init__(self, span: int, cap: int) -> None:
        self.span = span
        self.cap = cap
        self.keys = array("q")
        self.buckets = array("i")
        self.map: dict[int, int] | None = None

    def __len__(self) -> int:
        return len(self.map) if self.map is not None else len(self.keys)

    def expire(self, horizon: int) -> None:
        cutoff = horizon - self.span
        table = self.map
        if table is not None:
            while table:
                key = next(iter(table))
                if table[key] > cutoff:
                    break
                del table[key]
            return
        buckets = self.buckets
        if not buckets or buckets[0] > cutoff:
            return
        end = 1
        while end < len(buckets) and buckets[end] <= cutoff:
            end += 1
        del self.keys[:end]
        del buckets[:end]

    def touch(self, key: int, at: int) -> None:
        """Mark ``key`` seen in bucket ``at`` (kept in last-seen order)."""
        table = self.map
        if table is not None:
            old = table.pop(key, None)
            table[key] = at if old is None or old < at else old
            while len(table) > self.cap:
                del table[next(iter(table))]
            return
        keys, buckets = self.keys, self.buckets
        n = len(keys)
        if n and keys[n - 1] == key:
            buckets[n - 1] = max(buckets[n - 1], at)
            return
        if key in keys:
            i = keys.index(key)
            at = max(at, buckets[i])
            del keys[i]
            del buckets[i]
            n -= 1
        i = n
        while i and buckets[i - 1] > at:  # a late touch keeps the order by bucket
            i -= 1
        if i == n:
            keys.append(key)
            buckets.append(at)
        else:
            keys.insert(i, key)
            buckets.insert(i, at)
        if n + 1 > self.cap:
            del keys[0]
            del buckets[0]
        elif n + 1 > _SMALL:
            self.map = dict(zip(keys, buckets, strict=True))
            self.keys = array("q")
            self.buckets = array("i")


class Seen:
    """Values of a few kinds (device, IP, country) with the hour each was last seen."""

    __slots__ = ("cap", "hours", "keys", "kinds", "span")

    def __init__(self, span: int, cap: int) -> None:
        self.span = span
        self.cap = cap
        self.keys = array("q")
        self.hours = array("i")
        self.kinds = array("b")

    def check(self, kind: int, key: int, hour: int) -> bool:
        """Whether ``key`` is new for ``kind`` (the kind has history, this key not); then
        remember it as seen in ``hour``."""
        keys, hours, kinds = self.keys, self.hours, self.kinds
        cutoff = hour - self.span
        while hours and hours[0] <= cutoff:
            del keys[0]
            del hours[0]
            del kinds[0]
        if key in keys:
            i = keys.index(key)
            if hours[i] >= hour:
                return False
            del keys[i]
            del hours[i]
            del kinds[i]
            new = False
        else:
            new = kind in kinds
            if kinds.count(kind) >= self.cap:
                i = kinds.index(kind)
                del keys[i]
                del hours[i]
                del kinds[i]
        i = len(hours)
        while i and hours[i - 1] > hour:
            i -= 1
        keys.insert(i, key)
        hours.insert(i, hour)
        kinds.insert(i, kind)
        return new
