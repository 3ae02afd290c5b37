"""The embedded behaviour store: per-subject windows in this process's memory.

Bounded whatever the traffic: at most ``max_subjects`` subjects (least recently used
evicted first, idle ones dropped after ``ttl``), and per subject a fixed number of
buckets per window and capped sets of resources and seen values. One lock guards it;
a decision holds it for a few microseconds.
"""

from __future__ import annotations

import datetime
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from zerotrust.behavior._windows import Hours, Recent, Seen, Window, bucket
from zerotrust.behavior.config import BehaviorConfig, StoreErrorMode
from zerotrust.behavior.features import Outcome, counted_records, outcome_of
from zerotrust.decision import Decision, StepUp
from zerotrust.request import AccessRequest

__all__ = ["MemoryBehaviorStore"]


class _Subject:
    __slots__ = ("day", "hour", "hours", "last", "minute", "res", "seen")

    def __init__(self, config: BehaviorConfig, now: float) -> None:
        span = config.buckets
        self.minute = Window(1, span)  # requests
        self.hour = Window(4, span)  # requests, records, denied, step-ups
        self.day = Window(2, span)  # requests, records
        self.hours = Hours(config.baseline_hours + 1)  # records, requests
        self.res = Recent(span, config.max_resources)
        self.seen = Seen(config.seen_hours, config.max_seen)
        self.last = now


def _hash(kind: int, value: Any) -> int:
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True)
    return hash((kind, value))


def _key(request: AccessRequest) -> tuple[str, str]:
    return (request.subject.type, request.subject.id)


class MemoryBehaviorStore:
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
        self._lock = threading.Lock()
        self._subjects: OrderedDict[tuple[str, str], _Subject] = OrderedDict()

    @property
    def config(self) -> BehaviorConfig:
        return self._config

    @property
    def on_store_error(self) -> StoreErrorMode:
        return self._config.on_store_error

    @property
    def store_error_step_up(self) -> StepUp:
        return StepUp(self._config.store_error_acr_values, self._config.store_error_max_age)

    def __len__(self) -> int:
        """Subjects currently tracked."""
        return len(self._subjects)

    def features(self, request: AccessRequest, now: datetime.datetime) -> Mapping[str, Any]:
        """Record the request and return its subject's features, counting it."""
        context, device = request.context, request.device
        return self.observe(
            _key(request),
            now.timestamp(),
            counted_records(context),
            hash((request.resource.type, request.resource.id)),
            (device.get("id"), context.get("ip"), context.get("country")),
        )

    def record(self, request: AccessRequest, decision: Decision) -> None:
        """Apply a decision's outcome (denials, step-ups; records taken back)."""
        outcome = outcome_of(request, decision)
        if outcome is not None:
            self.apply(_key(request), outcome)

    def record_access(self, request: AccessRequest, at: datetime.datetime, records: int) -> None:
        """Add ``records`` (negative: a correction) to the subject's counts at ``at``."""
        self.apply(_key(request), Outcome(at.timestamp(), records, 0, 0), create=True)

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
        """
        hour_id = bucket(t, 3600)
        b_hour = bucket(t, self._g_hour)
        with self._lock:
            s = self._subject(subject, t)
            minute = s.minute
            b = bucket(t, self._g_minute)
            minute.advance(b)
            minute.add(b, (1,))
            hour = s.hour
            hour.advance(b_hour)
            hour.add(b_hour, (1, records, 0, 0))
            day = s.day
            b = bucket(t, self._g_day)
            day.advance(b)
            day.add(b, (1, records))
            hours = s.hours
            hours.advance(hour_id)
            baseline = hours.baseline(hour_id)
            hours.add(hour_id, (records, 1))
            res = s.res
            res.expire(b_hour)
            res.touch(resource, b_hour)
            new = [
                value is not None and s.seen.check(kind, _hash(kind, value), hour_id)
                for kind, value in enumerate(seen)
            ]
            htot, dtot = hour.totals, day.totals
            return {
                "requests_1m": minute.totals[0],
                "requests_1h": htot[0],
                "requests_24h": dtot[0],
                "records_1h": htot[1],
                "records_24h": dtot[1],
                "distinct_resources_1h": len(res),
                "denied_1h": htot[2],
                "step_ups_1h": htot[3],
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
            s.hour.add(
                bucket(t, self._g_hour), (0, outcome.records, outcome.denied, outcome.step_ups)
            )
            if outcome.records:
                s.day.add(bucket(t, self._g_day), (0, outcome.records))
                s.hours.add(bucket(t, 3600), (outcome.records, 0))

    def _subject(self, key: tuple[str, str], t: float) -> _Subject:
        subjects = self._subjects
        s = subjects.get(key)
        if s is None or s.last < t - self._ttl:
            s = _Subject(self._config, t)
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
