"""The embedded behaviour store: per-subject windows in this process's memory.

Bounded whatever the traffic: at most ``max_subjects`` subjects (least recently used
evicted first, idle ones dropped after ``ttl``), and per subject a fixed number of
buckets per window and capped sets of resources and seen values. Peer groups are
tables of the subjects held (a subject that goes leaves them) and snapshots of those
tables kept for ``peer_refresh`` seconds. One lock guards it; a decision holds it for
a few microseconds.
"""

from __future__ import annotations

import datetime
import threading
from array import array
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, NamedTuple

from zerotrust.behavior._long import Days, Distinct
from zerotrust.behavior._windows import (
    EPOCH,
    Column,
    Hours,
    Recent,
    Seen,
    State,
    Window,
    bucket,
)
from zerotrust.behavior.config import BehaviorConfig, ConfiguredStore
from zerotrust.behavior.features import (
    Outcome,
    counted_records,
    outcome_of,
    subject_of,
    tracked_text,
)
from zerotrust.behavior.peers import (
    MAX_VALUE_CHARS,
    Figures,
    GroupStats,
    Snapshot,
    best_stats,
    group_keys,
    member_figures,
    peer_features,
)
from zerotrust.decision import Decision
from zerotrust.request import AccessRequest, validated_variables

__all__ = ["MemoryBehaviorStore"]

# Where each window's [horizon, base, totals...] start in a subject's ``meta``;
# _DAYS: [horizon, base, daily sums], _LONG: [hour, distinct 24 h / 7 d / 30 d].
_MINUTE, _HOUR, _DAY, _HOURS, _DAYS, _LONG = 0, 3, 9, 13, 18, 26
#: The long distinct counts, in hours (the current hour and the span - 1 before).
_LONG_SPANS = (24, 7 * 24, 30 * 24)
_NO_GROUPS: tuple[str, ...] = ()
_GROUP_MEMO = 4096  # property values whose group keys a store remembers


class _View(NamedTuple):
    """A read-only look at one of a subject's structures (tests, debugging)."""

    data: Column
    keys: Column


class _Subject(State):
    """All of a subject's state: one ``meta`` array (horizons, bases, totals), one
    array per window and one each for recent resources and seen values."""

    __slots__ = (
        "d",
        "dd",
        "groups",
        "h",
        "hh",
        "last",
        "lh",
        "lk",
        "ln",
        "lx",
        "m",
        "r",
        "s",
    )

    def __init__(self, meta: Column, now: float) -> None:
        super().__init__(meta)
        self.m: Column = array("b")  # minute: [id, requests]
        self.h: Column = array("b")  # hour: [id, requests, records, denied, step-ups]
        self.d: Column = array("b")  # day: [id, requests, records]
        self.hh: Column = array("b")  # hourly baseline: [id, records, requests]
        self.dd: Column = array("b")  # UTC days: [id, records, requests, distinct]
        self.r: array[int] | dict[int, int] = array("q")  # recent resources
        self.lk: array[int] = array("q")  # resources of the last 30 days, sorted
        self.lh: array[int] = array("i")  # ... the hour each was last requested
        self.lx: array[int] = array("i")  # last-seen hours, ascending
        self.ln: array[int] = array("i")  # ... how many resources each
        self.s: array[int] = array("q")  # seen values
        self.groups = _NO_GROUPS  # the group tables holding this subject's figures
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

    @property
    def days(self) -> _View:
        return _View(self.dd, self.dd[::4])

    @property
    def long(self) -> _View:
        return _View(self.lh, self.lk)


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
    share it between replicas. ``peer_refreshes`` counts the group snapshots taken.
    """

    def __init__(self, config: BehaviorConfig | None = None) -> None:
        self._config = config or BehaviorConfig()
        c = self._config
        self._g_minute = c.granularity(c.minute_window)
        self._g_hour = c.granularity(c.hour_window)
        self._g_day = c.granularity(c.day_window)
        self._ttl = c.effective_ttl
        self._max_subjects = c.max_subjects
        span = c.buckets
        self._minute = Window("m", _MINUTE, 1, span)  # requests
        self._hour = Window("h", _HOUR, 4, span)  # requests, records, denied, step-ups
        self._day = Window("d", _DAY, 2, span)  # requests, records
        self._hours = Hours("hh", _HOURS, c.baseline_hours + 1)  # records, requests
        self._days = Days("dd", _DAYS, c.peer_days)  # records, requests, distinct
        self._long = Distinct("l", _LONG, _LONG_SPANS, c.max_distinct)
        self._res = Recent("r", span, c.max_resources)
        self._seen = Seen("s", c.seen_hours, c.max_seen)
        layouts = (self._minute, self._hour, self._day, self._hours, self._days, self._long)
        self._meta = array("q", [n for w in layouts for n in w.initial()])
        self._lock = threading.Lock()
        self._subjects: OrderedDict[tuple[str, str], _Subject] = OrderedDict()
        self._groupings = c.peer_groups
        self._group_names = tuple(dict.fromkeys(n for names in c.peer_groups for n in names))
        # one grouping property: its value (str or None); several: their tuple
        self._group_memo: dict[object, tuple[str, ...]] = {}
        self._peer_days = c.peer_days
        self._refresh = c.peer_refresh
        self._min_peers = c.min_peers
        # group -> member -> figures; only subjects held here, so bounded with them
        self._tables: dict[str, dict[tuple[str, str], Figures]] = {}
        # group -> its snapshot, oldest first; only those younger than peer_refresh
        self._snapshots: OrderedDict[str, Snapshot] = OrderedDict()
        self._max_snapshots = 16 * c.max_subjects
        self.peer_refreshes = 0

    def __len__(self) -> int:
        """Subjects currently tracked."""
        return len(self._subjects)

    def features(self, request: AccessRequest, now: datetime.datetime) -> Mapping[str, Any]:
        """Record the request and return its subject's features, counting it."""
        variables = validated_variables(request)
        if variables is None:  # built by hand: read through its fields
            context, device = request.context, request.device
            subject, resource = subject_of(request), request.resource
            properties = request.subject.properties
            resource_key = hash((resource.type, resource.id))
        else:  # the request's own plain data (nothing to build for its read-only fields)
            context, device = variables["context"], variables["device"]
            part = variables["subject"]
            subject, properties = (part["type"], part["id"]), part["properties"]
            part = variables["resource"]
            resource_key = hash((part["type"], part["id"]))
        return self.observe(
            subject,
            now.timestamp(),
            counted_records(context),
            resource_key,
            (device.get("id"), context.get("ip"), context.get("country")),
            self._groups_of(properties) if self._groupings else _NO_GROUPS,
        )

    def _groups_of(self, properties: Mapping[str, Any]) -> tuple[str, ...]:
        """``group_keys`` of the subject's properties, remembered for the usual case:
        every grouping property a short string (or absent). Bounded in entries and in
        the length of what it keeps; the texts are pure functions of those values, so a
        remembered answer is the computed one."""
        names = self._group_names
        if len(names) == 1:
            key: object = properties.get(names[0])
            if key is not None and (type(key) is not str or len(key) > MAX_VALUE_CHARS):
                return group_keys(properties, self._groupings)  # a list, or long: computed
        else:
            key = tuple(map(properties.get, names))
            for value in key:
                if value is not None and (type(value) is not str or len(value) > MAX_VALUE_CHARS):
                    return group_keys(properties, self._groupings)
        memo = self._group_memo
        groups = memo.get(key)
        if groups is None:
            groups = group_keys(properties, self._groupings)
            if len(memo) >= _GROUP_MEMO:
                memo.clear()
            memo[key] = groups
        return groups

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
        groups: tuple[str, ...] = _NO_GROUPS,
    ) -> dict[str, Any]:
        """The features of one request at POSIX time ``t``, the request counted.

        ``resource`` is a hash of (type, id); ``seen`` the device id, IP and country;
        ``groups`` the key texts of the subject's peer groups (``peers.group_keys``).
        Everything that can fail for this request's values fails before the lock is
        taken, so a bad value never leaves a subject half updated or others waiting.
        """
        device, ip, country = seen
        # Hashed before the lock (a value that cannot be tracked raises here).
        h_device = hash((0, device)) if type(device) is str else _hash(0, device, _SEEN_FIELDS[0])
        h_ip = hash((1, ip)) if type(ip) is str else _hash(1, ip, _SEEN_FIELDS[1])
        h_country = (
            hash((2, country)) if type(country) is str else _hash(2, country, _SEEN_FIELDS[2])
        )
        since = t - EPOCH
        hour_id = int(since // 3600)
        day_id = hour_id // 24  # EPOCH is a midnight: the UTC day
        b_minute = int(since // self._g_minute)
        b_hour = int(since // self._g_hour)
        b_day = int(since // self._g_day)
        with self._lock:
            s = self._subject(subject, t)
            meta = s.meta
            # Each window slides only when its newest bucket changes (checked here:
            # a call saved per window on most requests).
            if b_minute > meta[_MINUTE]:
                self._minute.advance(s, b_minute)
            self._minute.add(s, b_minute, (1,))
            if b_hour > meta[_HOUR]:
                self._hour.advance(s, b_hour)
            self._hour.add(s, b_hour, (1, records, 0, 0))
            if b_day > meta[_DAY]:
                self._day.advance(s, b_day)
            self._day.add(s, b_day, (1, records))
            hours = self._hours
            if hour_id > meta[_HOURS]:
                hours.advance(s, hour_id)
            baseline = hours.count(s, hour_id, records)
            res = self._res
            distinct_1h = res.see(s, resource, b_hour)
            days = self._days
            first_today = day_id > meta[_DAYS]  # the newest day of its requests
            if first_today:
                days.advance(s, day_id)
            fresh = self._long.touch(s, resource, hour_id)
            days.add(s, day_id, (records, 1, 1 if fresh else 0))
            check = self._seen.check
            new_device = h_device is not None and check(s, 0, h_device, hour_id)
            new_ip = h_ip is not None and check(s, 1, h_ip, hour_id)
            new_country = h_country is not None and check(s, 2, h_country, hour_id)
            if first_today and (groups or s.groups):
                self._publish(subject, s, groups, day_id)
            meta = s.meta  # (a total past 64 bits turns it into a list)
            active = meta[_DAYS + 6]
            features = {
                "requests_1m": meta[_MINUTE + 2],
                "requests_1h": meta[_HOUR + 2],
                "requests_24h": meta[_DAY + 2],
                "records_1h": meta[_HOUR + 3],
                "records_24h": meta[_DAY + 3],
                "distinct_resources_1h": distinct_1h,
                "denied_1h": meta[_HOUR + 4],
                "step_ups_1h": meta[_HOUR + 5],
                "new_device": new_device,
                "new_ip": new_ip,
                "new_country": new_country,
                "baseline_records_per_hour": baseline,
                "records_7d": meta[_DAYS + 2],
                "records_30d": meta[_DAYS + 3],
                "distinct_resources_24h": meta[_LONG + 1],
                "distinct_resources_7d": meta[_LONG + 2],
                "distinct_resources_30d": meta[_LONG + 3],
                "active_days_30d": meta[_DAYS + 4],
                "baseline_records_per_day": meta[_DAYS + 5] / active if active > 0 else 0.0,
                "baseline_distinct_per_day": meta[_DAYS + 7] / active if active > 0 else 0.0,
            }
            if groups:
                stats = self._stats(subject, groups, t, day_id)
                peer_features(features, stats, meta[_DAY + 3], meta[_LONG + 1])
            features["available"] = True
            return features

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
                hour_id = bucket(t, 3600)
                self._hours.add(s, hour_id, (outcome.records, 0))
                self._days.add(s, hour_id // 24, (outcome.records, 0, 0))

    # -- peer groups (under the lock) -------------------------------------------------

    def _publish(
        self, key: tuple[str, str], s: _Subject, groups: tuple[str, ...], day: int
    ) -> None:
        """The subject's first request of a UTC day: its figures into each of its
        groups' tables (or out of them, without an active day in the past days)."""
        tables = self._tables
        _, _, _, records, active, distinct = self._days.sums(s)
        figures = member_figures(records, distinct, active)
        oldest = day - self._peer_days
        held: list[str] = []
        for group in s.groups:  # earlier groups: kept while the entry can still count
            table = tables.get(group)
            entry = None if table is None else table.get(key)
            if entry is None or group in groups:
                continue
            if entry[2] < oldest:  # no snapshot would keep it: drop it now
                self._leave(key, group)
            else:
                held.append(group)
        if figures is None:
            for group in groups:
                self._leave(key, group)
        else:
            entry = (figures[0], figures[1], day)
            for group in groups:
                tables.setdefault(group, {})[key] = entry
            held.extend(groups)
        s.groups = tuple(held) if held else _NO_GROUPS

    def _leave(self, key: tuple[str, str], group: str) -> None:
        table = self._tables.get(group)
        if table is not None and table.pop(key, None) is not None and not table:
            del self._tables[group]

    def _stats(
        self, key: tuple[str, str], groups: tuple[str, ...], t: float, day: int
    ) -> GroupStats | None:
        """The statistics of the subject's groups from their snapshots (taken again
        after ``peer_refresh`` seconds), the subject left out; the group with the
        largest records median."""
        snapshots = self._snapshots
        while snapshots:  # the oldest snapshots that nobody will read again
            oldest = next(iter(snapshots.values()))
            if t < oldest.taken + self._refresh and len(snapshots) <= self._max_snapshots:
                break
            snapshots.popitem(last=False)
        candidates: list[GroupStats | None] = []
        for group in groups:
            snapshot = snapshots.get(group)
            if snapshot is None or t >= snapshot.taken + self._refresh:
                snapshot = self._snapshot(group, t, day)
            candidates.append(snapshot.stats(key, self._min_peers))
        return best_stats(candidates)

    def _snapshot(self, group: str, t: float, day: int) -> Snapshot:
        table = self._tables.get(group)
        oldest = day - self._peer_days
        if table:
            stale = [member for member, entry in table.items() if entry[2] < oldest]
            for member in stale:
                del table[member]
            if not table:
                del self._tables[group]
        snapshot = Snapshot(
            group,
            table.items() if table else (),
            day=day,
            peer_days=self._peer_days,
            taken=t,
        )
        self.peer_refreshes += 1
        self._snapshots[group] = snapshot
        self._snapshots.move_to_end(group)
        return snapshot

    # -- subjects -----------------------------------------------------------------------

    def _subject(self, key: tuple[str, str], t: float) -> _Subject:
        subjects = self._subjects
        idle = t - self._ttl
        s = subjects.get(key)
        if s is None or s.last < idle:
            if s is not None:
                self._forget(key, s)
            s = _Subject(self._meta[:], t)
            subjects[key] = s
        subjects.move_to_end(key)
        s.last = max(s.last, t)
        while len(subjects) > self._max_subjects:
            self._forget(*subjects.popitem(last=False))
        for _ in range(2):  # idle subjects at the LRU end go, a couple per call
            oldest_key = next(iter(subjects))
            oldest = subjects[oldest_key]
            if oldest is s or oldest.last >= idle:
                break
            del subjects[oldest_key]
            self._forget(oldest_key, oldest)
        return s

    def _forget(self, key: tuple[str, str], s: _Subject) -> None:
        """A subject that goes leaves its groups' tables."""
        for group in s.groups:
            self._leave(key, group)
