"""The embedded behaviour store: per-subject windows in this process's memory.

Bounded whatever the traffic: at most ``max_subjects`` subjects (least recently used
evicted first, idle ones dropped after ``ttl``), and per subject a fixed number of
buckets per window and capped sets of resources and seen values. One lock guards it;
a decision holds it for a few microseconds.
"""

from __future__ import annotations

import datetime
import threading
from array import array
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, NamedTuple

from zerotrust.behavior._windows import Column, Hours, Recent, Seen, State, Window, bucket
from zerotrust.behavior.config import BehaviorConfig, ConfiguredStore
from zerotrust.behavior.features import (
    Outcome,
    counted_records,
    outcome_of,
    subject_of,
    tracked_text,
)
from zerotrust.decision import Decision
from zerotrust.request import AccessRequest

__all__ = ["MemoryBehaviorStore"]

# Where each window's [horizon, base, totals...] start in a subject's ``meta``.
_MINUTE, _HOUR, _DAY, _HOURS = 0, 3, 9, 13


class _View(NamedTuple):
    """A read-only look at one of a subject's structures (tests, debugging)."""

    data: Column
    keys: Column


class _Subject(State):
    """All of a subject's state: one ``meta`` array (horizons, bases, totals), one
    array per window and one each for recent resources and seen values."""

    __slots__ = ("d", "h", "hh", "last", "m", "r", "s")

    def __init__(self, meta: Column, now: float) -> None:
        super().__init__(meta)
        self.m: Column = array("b")  # minute: [id, requests]
        self.h: Column = array("b")  # hour: [id, requests, records, denied, step-ups]
        self.d: Column = array("b")  # day: [id, requests, records]
        self.hh: Column = array("b")  # hourly baseline: [id, records, requests]
        self.r: array[int] | dict[int, int] = array("q")  # recent resources
        self.s: array[int] = array("q")  # seen values
        self.last = now

    @property
    def minute(self) -> _View:
        return _View(self.m, self.m[::2])

    @property
    def hour(self) -> _View:
        return _View(self.h, self.h[::5])

    @property
    def day(self) -> _View:
        return _View(self.d, self.d[::3])

    @property
    def res(self) -> list[int]:
        """The resource hashes kept."""
        return list(self.r) if isinstance(self.r, dict) else list(self.r[::2])

    @property
    def seen(self) -> _View:
        return _View(self.s, self.s[::3])


_SEEN_FIELDS = ("device.id", "context.ip", "context.country")


def _hash(kind: int, value: Any, field: str) -> int | None:
    """A tracked value's hash (None when absent), taken over its text as Redis keeps
    it, so both stores tell the same values apart (and ``hash(-1) == hash(-2)`` never
    merges two devices); raises ``BehaviorStoreError`` naming ``field`` for a value
    that cannot be tracked, before the store is touched."""
    text = tracked_text(value, field)
    return None if text is None else hash((kind, text))


class MemoryBehaviorStore(ConfiguredStore):
    """Recent behaviour kept in memory: thread-safe, bounded, O(1) amortised per decision.

    History is per process and lost on restart; use :class:`RedisBehaviorStore` to
    share it between replicas.
    """

    def __init__(self, config: BehaviorConfig | None = None) -> None:
        self._config = config or BehaviorConfig()
        c = self._config
        self._g_minute = c.granularity(c.minute_window)
        self._g_hour = c.granularity(c.hour_window)
        self._g_day = c.granularity(c.day_window)
        self._ttl = c.effective_ttl
        span = c.buckets
        self._minute = Window("m", _MINUTE, 1, span)  # requests
        self._hour = Window("h", _HOUR, 4, span)  # requests, records, denied, step-ups
        self._day = Window("d", _DAY, 2, span)  # requests, records
        self._hours = Hours("hh", _HOURS, c.baseline_hours + 1)  # records, requests
        self._res = Recent("r", span, c.max_resources)
        self._seen = Seen("s", c.seen_hours, c.max_seen)
        windows = (self._minute, self._hour, self._day, self._hours)
        self._meta = array("q", [n for w in windows for n in w.initial()])
        self._lock = threading.Lock()
        self._subjects: OrderedDict[tuple[str, str], _Subject] = OrderedDict()

    def __len__(self) -> int:
        """Subjects currently tracked."""
        return len(self._subjects)

    def features(self, request: AccessRequest, now: datetime.datetime) -> Mapping[str, Any]:
        """Record the request and return its subject's features, counting it."""
        context, device = request.context, request.device
        return self.observe(
            subject_of(request),
            now.timestamp(),
            counted_records(context),
            hash((request.resource.type, request.resource.id)),
            (device.get("id"), context.get("ip"), context.get("country")),
        )

    def record(self, request: AccessRequest, decision: Decision) -> None:
        """Apply a decision's outcome (denials, step-ups; records taken back)."""
        outcome = outcome_of(request, decision)
        if outcome is not None:
            self.apply(subject_of(request), outcome)

    def record_access(self, request: AccessRequest, at: datetime.datetime, records: int) -> None:
        """Add ``records`` (negative: a correction) to the subject's counts at ``at``."""
        self.apply(subject_of(request), Outcome(at.timestamp(), records, 0, 0), create=True)

    def observe(
        self,
        subject: tuple[str, str],
        t: float,
        records: int,
        resource: int,
        seen: tuple[Any, Any, Any],
    ) -> dict[str, Any]:
        """The features of one request at POSIX time ``t``, the request counted.

        ``resource`` is a hash of (type, id); ``seen`` the device id, IP and country.
        Everything that can fail for this request's values fails before the lock is
        taken, so a bad value never leaves a subject half updated or others waiting.
        """
        hashes = [_hash(kind, value, _SEEN_FIELDS[kind]) for kind, value in enumerate(seen)]
        hour_id = bucket(t, 3600)
        b_hour = bucket(t, self._g_hour)
        with self._lock:
            s = self._subject(subject, t)
            minute = self._minute
            b = bucket(t, self._g_minute)
            minute.advance(s, b)
            minute.add(s, b, (1,))
            hour = self._hour
            hour.advance(s, b_hour)
            hour.add(s, b_hour, (1, records, 0, 0))
            day = self._day
            b = bucket(t, self._g_day)
            day.advance(s, b)
            day.add(s, b, (1, records))
            hours = self._hours
            hours.advance(s, hour_id)
            baseline = hours.baseline(s, hour_id)
            hours.add(s, hour_id, (records, 1))
            res = self._res
            res.expire(s, b_hour)
            res.touch(s, resource, b_hour)
            seen_ = self._seen
            new = [
                h is not None and seen_.check(s, kind, h, hour_id) for kind, h in enumerate(hashes)
            ]
            meta = s.meta
            return {
                "requests_1m": meta[_MINUTE + 2],
                "requests_1h": meta[_HOUR + 2],
                "requests_24h": meta[_DAY + 2],
                "records_1h": meta[_HOUR + 3],
                "records_24h": meta[_DAY + 3],
                "distinct_resources_1h": res.count(s),
                "denied_1h": meta[_HOUR + 4],
                "step_ups_1h": meta[_HOUR + 5],
                "new_device": new[0],
                "new_ip": new[1],
                "new_country": new[2],
                "baseline_records_per_hour": baseline,
                "available": True,
            }

    def apply(self, subject: tuple[str, str], outcome: Outcome, *, create: bool = False) -> None:
        """Apply a correction to a subject's counters (ignored once it left the windows)."""
        t = outcome.at
        with self._lock:
            s = self._subjects.get(subject)
            if s is None:
                if not create:
                    return
                s = self._subject(subject, t)
            self._hour.add(
                s, bucket(t, self._g_hour), (0, outcome.records, outcome.denied, outcome.step_ups)
            )
            if outcome.records:
                self._day.add(s, bucket(t, self._g_day), (0, outcome.records))
                self._hours.add(s, bucket(t, 3600), (outcome.records, 0))

    def _subject(self, key: tuple[str, str], t: float) -> _Subject:
        subjects = self._subjects
        s = subjects.get(key)
        if s is None or s.last < t - self._ttl:
            s = _Subject(self._meta[:], t)
            subjects[key] = s
        subjects.move_to_end(key)
        s.last = max(s.last, t)
        while len(subjects) > self._config.max_subjects:
            subjects.popitem(last=False)
        for _ in range(2):  # idle subjects at the LRU end go, a couple per call
            oldest = next(iter(subjects.values()))
            if oldest is s or oldest.last >= t - self._ttl:
                break
            subjects.popitem(last=False)
        return s
