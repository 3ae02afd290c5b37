"""The report's charts: matplotlib figures written as SVG text (the only module that
imports matplotlib, the ``report`` extra).

No text from the log goes into a chart: titles, labels and legends are ours, and the
page around the chart names the subject (escaped). Each chart is drawn on its own
``Figure`` with an Agg canvas (no pyplot, no global backend switch); text stays text
(``svg.fonttype: none``, so it needs no embedded glyphs and the page stays small and
searchable), mathtext is off, and every SVG id carries the chart's number, so several
charts share one HTML page without id clashes.
"""

from __future__ import annotations

import datetime
import io
from typing import Any

from zerotrust.report.load import DayFigures, SubjectFigures
from zerotrust.report.rank import Population, Ranked

__all__ = ["subject_chart"]

_BAR = "#4c72b0"
_HOT = "#c44e52"
_MEDIAN = "#222222"
_P95 = "#dd8452"


def _matplotlib() -> Any:
    """matplotlib's pieces, or ImportError naming the extra to install."""
    try:
        import matplotlib
        from matplotlib import dates
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            f"the report's charts need matplotlib ({exc}): pip install 'zerotrust[report]'"
        ) from exc
    return matplotlib, dates, FigureCanvasAgg, Figure


def subject_chart(ranked: Ranked, everyone: Population, number: int) -> str:
    """Daily records and daily distinct resources of one subject against its peer
    group's median and p95 (as logged each day), or all subjects' when no peer figures
    were logged; days standing out in red. ``number`` makes the SVG ids unique."""
    matplotlib, dates, canvas, figure_class = _matplotlib()
    subject = ranked.subject
    days = _every_day(subject)
    style = {
        "svg.fonttype": "none",
        "svg.hashsalt": f"zerotrust-report-{number}",
        "text.parse_math": False,
        "font.family": "sans-serif",
        "font.size": 8.5,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
    with matplotlib.rc_context(style):
        figure = figure_class(figsize=(9.0, 4.6), layout="constrained")
        canvas(figure)
        top, bottom = figure.subplots(2, 1, sharex=True)
        _panel(
            dates,
            top,
            days,
            ranked,
            "records",
            "peers_records",
            everyone.records,
            "records a day (allowed requests)",
        )
        _panel(
            dates,
            bottom,
            days,
            ranked,
            "distinct",
            "peers_distinct",
            everyone.distinct,
            "distinct resources a day",
        )
        locator = dates.AutoDateLocator(minticks=3, maxticks=10)
        bottom.xaxis.set_major_locator(locator)
        bottom.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator))
        for index, artist in enumerate(figure.findobj()):
            artist.set_gid(f"zt{number}-{index}")
        out = io.StringIO()
        figure.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    return text[text.index("<svg") :]  # the XML prolog and DOCTYPE have no place in HTML


def _every_day(subject: SubjectFigures) -> list[tuple[datetime.date, DayFigures | None]]:
    """The subject's days from first to last, the days without decisions as None."""
    if not subject.days:
        return []
    known = {day.day: day for day in subject.days}
    first, last = subject.days[0].day, subject.days[-1].day
    span = (last - first).days + 1
    return [
        (first + datetime.timedelta(days=n), known.get(first + datetime.timedelta(days=n)))
        for n in range(span)
    ]


def _panel(
    dates: Any,
    axes: Any,
    days: list[tuple[datetime.date, DayFigures | None]],
    ranked: Ranked,
    count: str,
    logged: str,
    fixed: tuple[float, float] | None,
    title: str,
) -> None:
    x = [day for day, _ in days]
    values = [getattr(figures, count) if figures is not None else 0 for _, figures in days]
    colours = [_HOT if day in ranked.hot_days else _BAR for day in x]
    axes.bar(x, values, width=0.8, color=colours, label="this subject", zorder=2)
    if ranked.basis == "peers":  # each day's figures across its own bar, as logged that day
        logged_days = [(day, getattr(f, logged)) for day, f in days if f is not None]
        known = [(dates.date2num(day), pair) for day, pair in logged_days if pair is not None]
        starts = [at - 0.5 for at, _ in known]
        ends = [at + 0.5 for at, _ in known]
        medians = [pair[0] for _, pair in known]
        p95s = [pair[1] for _, pair in known]
        axes.hlines(
            medians, starts, ends, color=_MEDIAN, lw=1.6, label="peer group median", zorder=3
        )
        axes.hlines(
            p95s, starts, ends, color=_P95, lw=1.6, ls="--", label="peer group p95", zorder=3
        )
    elif fixed is not None:
        who = "all subjects"
        axes.axhline(fixed[0], color=_MEDIAN, lw=1.2, label=f"{who}: median day", zorder=3)
        axes.axhline(fixed[1], color=_P95, lw=1.2, ls="--", label=f"{who}: p95", zorder=3)
    axes.set_title(title, loc="left", fontsize=9)
    axes.margins(y=0.18)  # room for the legend above the highest bar
    axes.set_ylim(bottom=0)
    axes.grid(axis="y", color="#dddddd", lw=0.6, zorder=0)
    axes.legend(loc="upper left", fontsize=7.5, frameon=False, ncols=3)
