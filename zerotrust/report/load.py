"""Reading a decision log: a stream of lines in, per-subject daily figures out.

The log is attacker-influenced (subject and resource ids, reasons quoted from requests)
and may be huge, torn or not a decision log at all. So it is read one line at a time,
a line longer than the bound is skipped unread, anything that is not a decision record
is counted (by why) and skipped, and what is kept is bounded: per subject and UTC day a
few counters (:class:`DayFigures`), per subject a few more, and the decisions of the
subjects shown in detail only (a second pass, :func:`read_decisions`). Nothing here
formats text for a page: that is ``render``'s job, which escapes everything.
"""

from __future__ import annotations

import collections
import datetime
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from zerotrust.audit.logfile import log_lines, open_log, parse_entry
from zerotrust.behavior.features import MAX_RECORDS, counted_records
from zerotrust.report.options import ReportOptions

__all__ = [
    "DAY",
    "EFFECTS",
    "DayFigures",
    "DecisionRow",
    "LogFigures",
    "SubjectFigures",
    "read_decisions",
    "read_log",
    "shorten",
]

DAY = 86_400
EFFECTS = ("allow", "deny", "step_up")
#: Why a line was skipped, in the order the report lists them.
SKIP_REASONS = (
    "blank",
    "too long",
    "not UTF-8",
    "not JSON",
    "not a decision record",
    "beyond the subject limit",
)
#: Characters of one logged text kept; a longer one is kept cut, with its length and a
#: digest (two long texts stay two), so a line of a megabyte costs no megabyte kept.
KEPT = 200
_SHOWN_LINES = 5  # line numbers remembered per skip reason
_MAX_RULES = 50  # distinct (rule, effect, reason) counted per subject; the rest as one
_OTHER = ("(other rules)", "", "")


@attrs.frozen
class DayFigures:
    """One subject's UTC day. ``records``: records read by allowed requests (what the
    behaviour store counts); ``distinct``: distinct resources requested, any effect
    (``distinct_capped``: at least that many). ``peers_records`` / ``peers_distinct``:
    the peer group's (median, p95) per day as last logged that day, when logged;
    ``records_vs_peers``: the highest ``records_24h_vs_peers`` logged that day."""

    day: datetime.date
    decisions: int
    allows: int
    denies: int
    step_ups: int
    records: int
    distinct: int
    distinct_capped: bool
    new_devices: int
    new_countries: int
    new_ips: int
    peers_records: tuple[float, float] | None
    peers_distinct: tuple[float, float] | None
    records_vs_peers: float | None
    distinct_vs_peers: float | None


@attrs.frozen
class RuleCount:
    """A rule in the decisions' ``reasons``: how often it was among them."""

    rule: str
    effect: str
    reason: str
    count: int


@attrs.frozen
class SubjectFigures:
    """Everything kept about one subject, days in order."""

    type: str
    id: str
    days: tuple[DayFigures, ...]
    decisions: int
    group: str | None  # the peer group last logged
    members: int | None  # its members then
    rules: tuple[RuleCount, ...]  # most frequent first
    signals: tuple[tuple[str, int], ...]  # risk signals, most frequent first
    decisions_dropped: int  # of older days, past ``max_days``: in no figure

    def total(self, name: str) -> int:
        """The sum of one :class:`DayFigures` counter over the days kept."""
        return sum(getattr(day, name) for day in self.days)


@attrs.frozen
class LogFigures:
    """What one pass over the log found."""

    path: str
    lines: int  # lines read (each counted or skipped)
    decisions: int  # decision records aggregated
    skipped: tuple[tuple[str, int, tuple[int, ...]], ...]  # reason, count, first line numbers
    subjects: tuple[SubjectFigures, ...]
    first: datetime.datetime | None
    last: datetime.datetime | None

    @property
    def skipped_lines(self) -> int:
        return sum(count for _, count, _ in self.skipped)


@attrs.frozen
class DecisionRow:
    """One decision of a subject shown in detail (text as logged; the page escapes it)."""

    time: datetime.datetime
    decision_id: str
    action: str
    resource: str
    effect: str
    reasons: tuple[tuple[str, str, str], ...]  # rule, effect, reason
    risk: int | None
    notes: tuple[str, ...]  # why it is notable: "new device", "3.2x peers"...


class _Record:
    """The fields of one valid decision record the report reads."""

    __slots__ = ("at", "data", "day", "effect", "subject")

    def __init__(self, data: dict[str, Any], subject: tuple[str, str], at: datetime.datetime):
        self.data = data
        self.subject = subject
        self.at = at
        self.day = int(at.timestamp() // DAY)
        self.effect: str = data["effect"]


class _Day:
    """A subject's day while the log is read (mutable; frozen into DayFigures)."""

    __slots__ = (
        "allows",
        "capped",
        "decisions",
        "denies",
        "distinct",
        "distinct_vs",
        "new_countries",
        "new_devices",
        "new_ips",
        "peers_distinct",
        "peers_records",
        "records",
        "records_vs",
        "seen",
        "step_ups",
    )

    def __init__(self) -> None:
        self.decisions = self.allows = self.denies = self.step_ups = 0
        self.records = self.distinct = 0
        self.new_devices = self.new_countries = self.new_ips = 0
        self.capped = False
        self.seen: set[int] | None = set()
        self.peers_records: tuple[float, float] | None = None
        self.peers_distinct: tuple[float, float] | None = None
        self.records_vs: float | None = None
        self.distinct_vs: float | None = None


class _Subject:
    __slots__ = ("days", "decisions", "dropped", "group", "latest", "members", "rules", "signals")

    def __init__(self) -> None:
        self.days: dict[int, _Day] = {}
        self.decisions = 0
        self.dropped = 0
        self.latest = -(2**62)
        self.group: str | None = None
        self.members: int | None = None
        self.rules: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self.signals: collections.Counter[str] = collections.Counter()


class _Skips:
    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.lines: dict[str, list[int]] = collections.defaultdict(list)

    def add(self, reason: str, number: int) -> None:
        self.counts[reason] += 1
        if len(self.lines[reason]) < _SHOWN_LINES:
            self.lines[reason].append(number)

    def result(self) -> tuple[tuple[str, int, tuple[int, ...]], ...]:
        return tuple(
            (reason, self.counts[reason], tuple(self.lines[reason]))
            for reason in SKIP_REASONS
            if self.counts[reason]
        )


def read_log(path: str | Path, options: ReportOptions | None = None) -> LogFigures:
    """Read the log once and aggregate it per subject and UTC day.

    ``path`` is a JSON-lines decision log (``.gz`` read as gzip). Raises ``OSError``
    when it cannot be opened or read; never for what a line holds.
    """
    options = options or ReportOptions()
    skips = _Skips()
    subjects: dict[tuple[str, str], _Subject] = {}
    lines = decisions = 0
    first: datetime.datetime | None = None
    last: datetime.datetime | None = None
    for number, record in _records(path, options, skips):
        lines = number
        if record is None:
            continue
        state = subjects.get(record.subject)
        if state is None:
            if len(subjects) >= options.max_subjects:
                skips.add("beyond the subject limit", number)
                continue
            state = subjects[record.subject] = _Subject()
        _add(state, record, options)
        decisions += 1
        if first is None or record.at < first:
            first = record.at
        if last is None or record.at > last:
            last = record.at
    return LogFigures(
        path=str(path),
        lines=lines,
        decisions=decisions,
        skipped=skips.result(),
        # Each subject's working state is let go as its figures are made (half the peak).
        subjects=tuple(_figures(key, subjects.pop(key)) for key in list(subjects)),
        first=first,
        last=last,
    )


def read_decisions(
    path: str | Path,
    wanted: Mapping[tuple[str, str], Callable[[DecisionRow, int], bool]],
    options: ReportOptions | None = None,
    *,
    lines: int | None = None,
) -> dict[tuple[str, str], tuple[tuple[DecisionRow, ...], int]]:
    """The decisions of the ``wanted`` subjects (a second pass over the first ``lines``
    lines, so a log appended to meanwhile gives the figures of the first pass).

    ``wanted[subject](row, day)`` says whether a decision is notable. Per subject, at
    most ``max_decisions`` rows are kept: the latest notable ones, then the latest
    others to fill up; returned in time order with the number of decisions not kept.
    """
    options = options or ReportOptions()
    keep = options.max_decisions
    notable: dict[tuple[str, str], collections.deque[DecisionRow]] = {}
    plain: dict[tuple[str, str], collections.deque[DecisionRow]] = {}
    seen: collections.Counter[tuple[str, str]] = collections.Counter()
    for number, record in _records(path, options, _Skips()):
        if lines is not None and number > lines:
            break
        if record is None or record.subject not in wanted:
            continue
        key = record.subject
        seen[key] += 1
        row = _row(record)
        if wanted[key](row, record.day):
            notable.setdefault(key, collections.deque(maxlen=keep)).append(row)
        else:
            plain.setdefault(key, collections.deque(maxlen=keep)).append(row)
    out: dict[tuple[str, str], tuple[tuple[DecisionRow, ...], int]] = {}
    for key in wanted:
        rows = list(notable.get(key, ()))
        rest = list(plain.get(key, ()))
        if len(rows) < keep and rest:
            rows.extend(rest[len(rows) - keep :])
        rows.sort(key=lambda r: r.time)
        out[key] = (tuple(rows), seen[key] - len(rows))
    return out


def _records(
    path: str | Path, options: ReportOptions, skips: _Skips
) -> Iterator[tuple[int, _Record | None]]:
    """Every line as (number, record), None for a skipped line (counted in ``skips``)."""
    for number, data in _lines(path, options.max_line_bytes):
        if data is None:
            skips.add("too long", number)
            yield number, None
            continue
        if not data or data.isspace():
            skips.add("blank", number)
            yield number, None
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            skips.add("not UTF-8", number)
            yield number, None
            continue
        try:
            value = parse_entry(data, _json_loads)
        except (ValueError, RecursionError):
            skips.add("not JSON", number)
            yield number, None
            continue
        record = _record(value)
        if record is None:
            skips.add("not a decision record", number)
        yield number, record


def _lines(path: str | Path, limit: int) -> Iterator[tuple[int, bytes | None]]:
    with open_log(path) as file:
        yield from log_lines(file, limit, str(path))


def shorten(text: str) -> str:
    """``text``, or if longer than :data:`KEPT` characters its beginning, its length and
    the start of its SHA-256 (so two long ids that begin alike stay two subjects)."""
    if len(text) <= KEPT:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{text[:KEPT]}\u2026 ({len(text):,} characters, sha256 {digest})"


def _json_loads(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"), parse_constant=_no_constant)


def _no_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def _record(value: Any) -> _Record | None:
    """A decision record as the decision log writes it, or None.

    Required: ``decision_id`` (text), ``time`` (ISO 8601 with an offset), ``subject``
    (``type`` and ``id`` as text: a redacted one reads ``[REDACTED]``) and ``effect``
    (allow, deny or step_up). Everything else is read only when it has the logged type.
    """
    if type(value) is not dict:
        return None
    subject, when = value.get("subject"), value.get("time")
    if (
        type(value.get("decision_id")) is not str
        or value.get("effect") not in EFFECTS
        or type(subject) is not dict
        or type(subject.get("type")) is not str
        or type(subject.get("id")) is not str
        or type(when) is not str
        or len(when) > 64
    ):
        return None
    try:
        at = datetime.datetime.fromisoformat(when)
    except ValueError:
        return None
    if at.tzinfo is None:
        return None
    try:
        at = at.astimezone(datetime.UTC)
    except OverflowError:  # year 1 at +01:00
        return None
    return _Record(value, (shorten(subject["type"]), shorten(subject["id"])), at)


def _dict(value: Any, key: str) -> dict[str, Any]:
    found = value.get(key) if type(value) is dict else None
    return found if type(found) is dict else {}


def _number(value: Any) -> float | None:
    """A finite number as a float (bools are not numbers here)."""
    if type(value) is int:
        return float(value)
    if type(value) is float and value - value == 0.0:
        return value
    return None


def _figure(value: Any) -> float | None:
    """A logged peer figure or ratio, if a store could have computed it: a number from
    0 to the most records one request counts (so a forged line cannot put 1e308 into a
    score or a chart)."""
    number = _number(value)
    return number if number is not None and 0.0 <= number <= MAX_RECORDS else None


def _pair(figures: Any) -> tuple[float, float] | None:
    """A peer group's ``{"median": m, "p95": p}`` as (m, p)."""
    if type(figures) is not dict:
        return None
    median, p95 = _figure(figures.get("median")), _figure(figures.get("p95"))
    if median is None or p95 is None:
        return None
    return median, p95


def _add(state: _Subject, record: _Record, options: ReportOptions) -> None:
    data, day_id, effect = record.data, record.day, record.effect
    if day_id > state.latest:
        state.latest = day_id
        for old, figures in state.days.items():  # a day two behind is closed: keep its count
            if old < day_id - 1 and figures.seen is not None:
                figures.seen = None
    day = state.days.get(day_id)
    if day is None:
        if len(state.days) >= options.max_days:
            oldest = min(state.days)
            if oldest > day_id:
                state.dropped += 1
                return
            state.dropped += state.days.pop(oldest).decisions
        day = state.days[day_id] = _Day()
        if day_id < state.latest - 1:
            day.seen = None  # already closed: a late day keeps no set open
    state.decisions += 1
    day.decisions += 1
    request = _dict(data, "request")
    if effect == "allow":
        day.allows += 1
        day.records += counted_records(_dict(request, "context"))
    elif effect == "deny":
        day.denies += 1
    else:
        day.step_ups += 1
    _touch(day, data.get("resource"), options.max_distinct)
    behavior = data.get("behavior")
    if type(behavior) is dict:
        _behavior(state, day, behavior)
    _reasons(state, data)
    risk = _dict(data, "risk").get("signals")
    if type(risk) is list:
        for signal in risk[:_MAX_RULES]:
            if type(signal) is str:
                name = shorten(signal)
                if name in state.signals or len(state.signals) < _MAX_RULES:
                    state.signals[name] += 1


def _touch(day: _Day, resource: Any, cap: int) -> None:
    """Count the resource once per day. A day two or more behind the subject's newest
    is closed (its set dropped): a decision logged that late counts as a new resource."""
    key = hash(_resource_text(resource))
    seen = day.seen
    if seen is None:
        if not day.capped:
            day.distinct += 1
            day.capped = day.distinct >= cap
        return
    if key in seen or day.capped:
        return
    seen.add(key)
    day.distinct = len(seen)
    if day.distinct >= cap:
        day.capped = True
        day.seen = None


def _behavior(state: _Subject, day: _Day, behavior: dict[str, Any]) -> None:
    if behavior.get("new_device") is True:
        day.new_devices += 1
    if behavior.get("new_country") is True:
        day.new_countries += 1
    if behavior.get("new_ip") is True:
        day.new_ips += 1
    peers = behavior.get("peers")
    if type(peers) is dict:
        records, distinct = (
            _pair(peers.get("records_per_day")),
            _pair(peers.get("distinct_per_day")),
        )
        if records is not None:
            day.peers_records = records
        if distinct is not None:
            day.peers_distinct = distinct
        if type(peers.get("group")) is str:
            state.group = shorten(peers["group"])
        members = peers.get("members")
        if type(members) is int and 0 <= members <= MAX_RECORDS:
            state.members = members
    for key, slot in (
        ("records_24h_vs_peers", "records_vs"),
        ("distinct_resources_24h_vs_peers", "distinct_vs"),
    ):
        ratio = _figure(behavior.get(key))
        if ratio is not None:
            old = getattr(day, slot)
            setattr(day, slot, ratio if old is None else max(old, ratio))


def _reasons(state: _Subject, data: dict[str, Any]) -> None:
    for key in _reason_list(data):
        if key in state.rules or len(state.rules) < _MAX_RULES:
            state.rules[key] += 1
        else:
            state.rules[_OTHER] += 1


def _reason_list(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The record's rules: ``reasons`` (rule, effect, reason), else ``matched_rules``
    (an entry written before reasons were logged), at most ``_MAX_RULES``."""
    reasons = data.get("reasons")
    if type(reasons) is not list:
        matched = data.get("matched_rules")
        if type(matched) is not list:
            return []
        return [(shorten(rule), "", "") for rule in matched[:_MAX_RULES] if type(rule) is str]
    found = []
    for item in reasons[:_MAX_RULES]:
        if type(item) is dict and type(item.get("rule")) is str:
            effect, reason = item.get("effect"), item.get("reason")
            found.append(
                (
                    shorten(item["rule"]),
                    shorten(effect) if type(effect) is str else "",
                    shorten(reason) if type(reason) is str else "",
                )
            )
    return found


def _resource_text(resource: Any) -> str:
    """``type/id`` of a logged resource summary (an id may be any JSON value)."""
    if type(resource) is not dict:
        return _json_text(resource)
    kind, ident = resource.get("type"), resource.get("id")
    return f"{_json_text(kind)}/{_json_text(ident)}"


def _json_text(value: Any) -> str:
    if type(value) is str:
        return value
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):  # pragma: no cover - parsed JSON
        return "?"


def _figures(key: tuple[str, str], state: _Subject) -> SubjectFigures:
    rules = tuple(
        RuleCount(rule, effect, reason, count)
        for (rule, effect, reason), count in sorted(
            state.rules.items(), key=lambda item: (-item[1], item[0])
        )
    )
    return SubjectFigures(
        type=key[0],
        id=key[1],
        days=tuple(_day(day_id, state.days[day_id]) for day_id in sorted(state.days)),
        decisions=state.decisions,
        group=state.group,
        members=state.members,
        rules=rules,
        signals=tuple(sorted(state.signals.items(), key=lambda item: (-item[1], item[0]))),
        decisions_dropped=state.dropped,
    )


def _day(day_id: int, day: _Day) -> DayFigures:
    return DayFigures(
        day=datetime.date(1970, 1, 1) + datetime.timedelta(days=day_id),
        decisions=day.decisions,
        allows=day.allows,
        denies=day.denies,
        step_ups=day.step_ups,
        records=day.records,
        distinct=day.distinct,
        distinct_capped=day.capped,
        new_devices=day.new_devices,
        new_countries=day.new_countries,
        new_ips=day.new_ips,
        peers_records=day.peers_records,
        peers_distinct=day.peers_distinct,
        records_vs_peers=day.records_vs,
        distinct_vs_peers=day.distinct_vs,
    )


def _row(record: _Record) -> DecisionRow:
    data = record.data
    action = data.get("action")
    score = _dict(data, "risk").get("score")
    return DecisionRow(
        time=record.at,
        decision_id=shorten(data["decision_id"]),
        action=shorten(action if type(action) is str else _json_text(action)),
        resource=shorten(_resource_text(data.get("resource"))),
        effect=record.effect,
        reasons=tuple(_reason_list(data)),
        risk=score if type(score) is int else None,
        notes=_notes(_dict(data, "behavior")),
    )


def _notes(behavior: dict[str, Any]) -> tuple[str, ...]:
    notes = [
        label
        for key, label in (
            ("new_device", "new device"),
            ("new_country", "new country"),
            ("new_ip", "new IP"),
        )
        if behavior.get(key) is True
    ]
    ratio = _figure(behavior.get("records_24h_vs_peers"))
    if ratio is not None:
        notes.append(f"records {ratio:.1f}x peers")
    if behavior.get("available") is False:
        notes.append("behaviour unavailable")
    return tuple(notes)
