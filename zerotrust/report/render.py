"""The report as one self-contained HTML page.

Everything read from the log is attacker-influenced (subject and resource ids, rule
reasons quoting requests), so every such text goes through :func:`text`: characters
that do not print (controls, bidirectional overrides, zero-width and lone surrogates)
are shown as escapes and the rest is HTML-escaped, quotes included (long texts were
cut when read: ``load.shorten``). Nothing from the log becomes markup, an attribute
name, an id or a URL: anchors are our own numbers. The page loads nothing (no script,
no external style, font or image) and says so to the browser with a
Content-Security-Policy that allows only its inline styles.
"""

from __future__ import annotations

import datetime
import html

from zerotrust.report.build import Detail, Report
from zerotrust.report.load import DecisionRow
from zerotrust.report.rank import HOT, Ranked

__all__ = ["render_html", "text"]

_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
_LIMIT = 400  # characters shown of one text (logged ones are at most ~250: load.KEPT)
_RULES = 20  # rules listed per subject

_STYLE = """
:root { color-scheme: light; --ink: #1d2330; --mute: #5b6473; --line: #d9dde3;
  --deny: #b42318; --step: #a15c07; --allow: #067647; --hot: #c44e52; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 8px; }
h3 { font-size: 14px; margin: 18px 0 6px; color: var(--mute); text-transform: uppercase;
  letter-spacing: .04em; }
section, .box { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 16px 18px; margin: 16px 0; }
.meta { color: var(--mute); margin: 0; }
.facts { display: flex; flex-wrap: wrap; gap: 8px 22px; margin: 8px 0 0; padding: 0;
  list-style: none; }
.facts b { font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { color: var(--mute); font-weight: 600; background: #fafbfc; position: sticky; top: 0; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.id, code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12px; overflow-wrap: anywhere; }
.effect { display: inline-block; padding: 0 6px; border-radius: 4px; font-size: 12px;
  font-weight: 600; color: #fff; }
.effect.deny { background: var(--deny); } .effect.step_up { background: var(--step); }
.effect.allow { background: var(--allow); } .effect.other { background: var(--mute); }
.score { font-weight: 700; }
.why { color: var(--mute); }
tr.flagged td:first-child { box-shadow: inset 3px 0 0 var(--hot); }
.warn { border-color: #f1c27d; background: #fffaf0; }
figure { margin: 8px 0 0; }
figure svg { width: 100%; height: auto; max-width: 1000px; display: block; }
figcaption { color: var(--mute); font-size: 12px; }
.scroll { max-height: 560px; overflow: auto; border: 1px solid var(--line); border-radius: 6px; }
footer { color: var(--mute); font-size: 12px; margin-top: 24px; }
"""


def text(value: object, limit: int = _LIMIT) -> str:
    """A logged value as safe HTML text: non-printing characters escaped (``\\u202e``),
    cut after ``limit`` characters (saying how long it was), then HTML-escaped."""
    raw = value if type(value) is str else str(value)
    shown = raw if raw.isprintable() else "".join(_char(c) for c in raw)
    if len(shown) > limit:
        shown = f"{shown[:limit]}\u2026 ({len(raw):,} characters)"
    return html.escape(shown, quote=True)


def _char(c: str) -> str:
    if c.isprintable():
        return c
    code = ord(c)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def render_html(report: Report, *, title: str | None = None) -> str:
    """The page (UTF-8 text; every logged value escaped by :func:`text`)."""
    heading = text(title or "Decision log report", 200)
    figures = report.figures
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{heading}</title><style>{_STYLE}</style></head><body><main>",
        f"<header><h1>{heading}</h1>",
        f'<p class="meta">Log <code>{text(figures.path, 300)}</code>: {_span(report)}</p>',
        '<ul class="facts">',
        f"<li><b>{figures.decisions:,}</b> decisions</li>",
        f"<li><b>{len(figures.subjects):,}</b> subjects</li>",
        f"<li><b>{report.flagged:,}</b> shown in detail</li>",
        f"<li><b>{figures.skipped_lines:,}</b> lines skipped</li>",
        "</ul></header>",
        _skipped(report),
        _method(report),
        _ranking(report),
        *(_detail(detail) for detail in report.details),
        f"<footer>Generated {report.generated:%Y-%m-%d %H:%M:%S} UTC by zerotrust report. "
        "Times are UTC; days are UTC days.</footer>",
        "</main></body></html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


def _span(report: Report) -> str:
    first, last = report.figures.first, report.figures.last
    if first is None or last is None:
        return "no decision records"
    return f"{_time(first)} to {_time(last)} UTC"


def _time(at: datetime.datetime) -> str:
    return at.isoformat(sep=" ", timespec="seconds")[:19]  # (strftime drops a year's zeros)


def _skipped(report: Report) -> str:
    figures = report.figures
    if not figures.skipped:
        return ""
    rows = "".join(
        f"<tr><td>{text(reason)}</td><td class='n'>{count:,}</td>"
        f"<td>{_numbers(lines, count)}</td></tr>"
        for reason, count, lines in figures.skipped
    )
    return (
        '<div class="box warn"><h2>Lines skipped</h2>'
        f"<p class='meta'>{figures.skipped_lines:,} of {figures.lines:,} lines are not in "
        "the figures below: they are not decision records as the decision log writes "
        "them (or exceed the report's bounds).</p>"
        "<table><thead><tr><th>why</th><th class='n'>lines</th><th>first line numbers</th>"
        f"</tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _numbers(lines: tuple[int, ...], count: int) -> str:
    listed = ", ".join(f"{n:,}" for n in lines)
    return listed + (", \u2026" if count > len(lines) else "")


def _method(report: Report) -> str:
    everyone = report.population
    typical = (
        f"{everyone.records[0]:,.1f} records (p95 {everyone.records[1]:,.1f})"
        if everyone.records is not None
        else "none (no records counted)"
    )
    return (
        "<details class='box'><summary><b>How subjects are ranked</b></summary>"
        "<p>Points, added up: <b>volume</b>, the highest day's records against the "
        "subject's peer group's median as the decision point logged it "
        "(<code>behavior.records_24h_vs_peers</code> and <code>behavior.peers</code>), or, "
        "without logged peer figures, against the median of all subjects' typical day "
        "(each subject's median day): 0 points at 2x, 20 more for each doubling, at most 40; "
        "<b>distinct resources</b> a day likewise, 10 per doubling, at most 20; "
        "<b>denials</b> beyond the median subject's count 5 each (at most 25); "
        "<b>step-ups</b> beyond the median subject's 2 each (at most 10); "
        "first requests from a <b>new device</b> or a <b>new country</b> 5 each (at most 10 "
        f"each). Subjects scoring {report.options.min_score:g} or more are shown in detail "
        f"(the highest {report.options.top}). Days at {HOT:g}x the median or more are red "
        "in the charts.</p>"
        f"<p>All subjects' typical day: {typical}; the median subject was refused "
        f"{everyone.denies:g} times and asked to step up {everyone.step_ups:g} times. "
        "Records are those of allowed requests "
        "(a refused request read nothing), distinct resources count every request.</p>"
        "</details>"
    )


def _ranking(report: Report) -> str:
    shown = report.ranked[: report.options.ranked]
    places = {detail.ranked.key: detail.rank for detail in report.details}
    rows = []
    for place, ranked in enumerate(shown, 1):
        subject = ranked.subject
        anchor = places.get(ranked.key)
        name = _subject(ranked)
        if anchor is not None:
            name = f'<a href="#subject-{anchor}">{name}</a>'
        why = ", ".join(f"{what} {points:g}" for what, points in ranked.parts) or "\u2013"
        rows.append(
            f"<tr{' class=flagged' if anchor is not None else ''}>"
            f"<td class='n'>{place}</td><td>{name}</td>"
            f"<td class='n score'>{ranked.score:g}</td><td class='why'>{why}</td>"
            f"<td class='n'>{_ratio(ranked.volume)}</td>"
            f"<td class='n'>{_ratio(ranked.distinct)}</td>"
            f"<td>{text(ranked.basis)}</td>"
            f"<td class='n'>{subject.total('denies'):,}</td>"
            f"<td class='n'>{subject.total('step_ups'):,}</td>"
            f"<td class='n'>{subject.total('new_devices'):,}</td>"
            f"<td class='n'>{subject.total('new_countries'):,}</td>"
            f"<td class='n'>{subject.decisions:,}</td>"
            f"<td class='n'>{len(subject.days):,}</td></tr>"
        )
    more = len(report.ranked) - len(shown)
    note = f"<p class='meta'>{more:,} more subjects, lower scores, not listed.</p>" if more else ""
    return (
        "<section><h2>Subjects by anomaly</h2><div class='scroll'><table><thead><tr>"
        "<th class='n'>#</th><th>subject</th><th class='n'>score</th><th>points</th>"
        "<th class='n' title='highest day against the median'>records</th>"
        "<th class='n'>distinct</th><th>compared with</th><th class='n'>denied</th>"
        "<th class='n'>step-ups</th><th class='n'>new devices</th>"
        "<th class='n'>new countries</th><th class='n'>decisions</th><th class='n'>days</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>{note}</section>"
    )


def _subject(ranked: Ranked) -> str:
    subject = ranked.subject
    kind = text(subject.type)
    return f"<span class='id'>{text(subject.id)}</span> <span class='why'>({kind})</span>"


def _ratio(value: float | None) -> str:
    return "\u2013" if value is None else f"{value:,.1f}x"


def _detail(detail: Detail) -> str:
    ranked = detail.ranked
    subject = ranked.subject
    group = (
        f"peer group <code>{text(subject.group)}</code>"
        + (f" ({subject.members:,} members)" if subject.members is not None else "")
        if subject.group is not None
        else "no peer group logged: compared with all subjects"
    )
    facts = [
        f"score <b>{ranked.score:g}</b>",
        f"highest day <b>{_ratio(ranked.volume)}</b> the median records",
        f"<b>{_ratio(ranked.distinct)}</b> the median distinct resources",
        f"<b>{subject.total('denies'):,}</b> denied",
        _count(subject.total("step_ups"), "step-up"),
        _count(subject.total("new_devices"), "new device"),
        _count(subject.total("new_countries"), "new country", "new countries"),
        f"{_count(subject.decisions, 'decision')} on {_count(len(subject.days), 'day')}",
    ]
    dropped = (
        f"<p class='meta'>{subject.decisions_dropped:,} decisions of older days are past the "
        "report's day limit and in no figure.</p>"
        if subject.decisions_dropped
        else ""
    )
    capped = any(day.distinct_capped for day in subject.days)
    cap_note = (
        " Some days reached the report's cap on distinct resources: their bars are lower bounds."
        if capped
        else ""
    )
    against = "the peer group" if ranked.basis == "peers" else "all subjects"
    return (
        f"<section id='subject-{detail.rank}'><h2>#{detail.rank} {_subject(ranked)}</h2>"
        f"<p class='meta'>{group}</p>"
        f"<ul class='facts'>{''.join(f'<li>{fact}</li>' for fact in facts)}</ul>{dropped}"
        f"<figure>{detail.chart}<figcaption>Daily records and distinct resources (bars; "
        f"red: {HOT:g}x the median or more) against {against} "
        f"(lines: median, dashed p95).{cap_note}</figcaption></figure>"
        f"{_rules(detail)}{_signals(detail)}{_decisions(detail)}</section>"
    )


def _rules(detail: Detail) -> str:
    rules = detail.ranked.subject.rules
    if not rules:
        return ""
    rows = "".join(
        f"<tr><td><code>{text(rule.rule)}</code></td><td>{_effect(rule.effect)}</td>"
        f"<td>{text(rule.reason)}</td><td class='n'>{rule.count:,}</td></tr>"
        for rule in rules[:_RULES]
    )
    more = len(rules) - _RULES
    note = f"<p class='meta'>{more:,} more rules.</p>" if more > 0 else ""
    return (
        "<h3>Rules that fired</h3><table><thead><tr><th>rule</th><th>effect</th>"
        f"<th>reason</th><th class='n'>decisions</th></tr></thead><tbody>{rows}</tbody>"
        f"</table>{note}"
    )


def _signals(detail: Detail) -> str:
    signals = detail.ranked.subject.signals
    if not signals:
        return ""
    listed = ", ".join(f"<code>{text(name)}</code> \u00d7{n:,}" for name, n in signals[:_RULES])
    return f"<h3>Risk signals</h3><p>{listed}</p>"


def _effect(effect: str) -> str:
    known = effect in ("allow", "deny", "step_up")
    label = text(effect, 20) if effect else "\u2013"
    return f"<span class='effect {effect if known else 'other'}'>{label}</span>"


def _decisions(detail: Detail) -> str:
    rows = "".join(_row(row) for row in reversed(detail.rows))
    note = (
        f"<p class='meta'>{detail.not_listed:,} more decisions of this subject are not "
        "listed: those kept are the latest refused, stepped-up, new-device or new-country "
        "ones and those of the days standing out, then the latest others.</p>"
        if detail.not_listed
        else ""
    )
    return (
        f"<h3>Decisions ({len(detail.rows):,} listed, newest first)</h3><div class='scroll'>"
        "<table><thead><tr><th>time (UTC)</th><th>action</th><th>resource</th>"
        "<th>effect</th><th>reasons</th><th>notes</th><th class='n'>risk</th>"
        "<th>decision id</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>{note}"
    )


def _row(row: DecisionRow) -> str:
    reasons = "<br>".join(_reason(rule, effect, reason) for rule, effect, reason in row.reasons)
    return (
        f"<tr><td class='id'>{_time(row.time)}</td><td>{text(row.action)}</td>"
        f"<td class='id'>{text(row.resource)}</td><td>{_effect(row.effect)}</td>"
        f"<td>{reasons}</td><td>{text(', '.join(row.notes))}</td>"
        f"<td class='n'>{'' if row.risk is None else row.risk}</td>"
        f"<td class='id'>{text(row.decision_id)}</td></tr>"
    )


def _reason(rule: str, effect: str, reason: str) -> str:
    shown = f"<code>{text(rule)}</code>"
    if effect:
        shown += f" ({text(effect, 20)})"
    if reason:
        shown += f": {text(reason)}"
    return shown


def _count(n: int, one: str, many: str | None = None) -> str:
    """``n`` in bold with its noun, singular for 1 ("1 step-up", "2 step-ups")."""
    return f"<b>{n:,}</b> {one if n == 1 else (many or one + 's')}"
