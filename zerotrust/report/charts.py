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
        from matplotlib import ticker
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            f"the report's charts need matplotlib ({exc}): pip install 'zerotrust[report]'"
        ) from exc
    return matplotlib, ticker, FigureCanvasAgg, Figure


def subject_chart(ranked: Ranked, everyone: Population, number: int, span: int = 400) -> str:
    """Daily records and daily distinct resources of one subject against its peer
    group's median and p95 (as logged each day), or all subjects' when no peer figures
    were logged; days standing out in red. ``number`` makes the SVG ids unique; the
    chart covers at most ``span`` days, the last ones (a log's times are not to be
    trusted to lie close together)."""
    matplotlib, ticker, canvas, figure_class = _matplotlib()
    subject = ranked.subject
    days = _every_day(subject, span)
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
            top,
            days,
            ranked,
            "records",
            "peers_records",
            everyone.records,
            "records a day (allowed requests)",
        )
        _panel(
            bottom,
            days,
            ranked,
            "distinct",
            "peers_distinct",
            everyone.distinct,
            "distinct resources a day",
        )
        # Days are numbered from the first (matplotlib's own dates stop short of year
        # 9999, and a log's times are whatever it says); the ticks name them.
        bottom.xaxis.set_major_locator(ticker.MaxNLocator(nbins=10, integer=True))
        bottom.xaxis.set_major_formatter(ticker.FuncFormatter(_day_label(days)))
        if days:
            bottom.set_xlabel(f"UTC days, {days[0][0].isoformat()} to {days[-1][0].isoformat()}")
        for index, artist in enumerate(figure.findobj()):
            artist.set_gid(f"zt{number}-{index}")
        out = io.StringIO()
        figure.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    return text[text.index("<svg") :]  # the XML prolog and DOCTYPE have no place in HTML


def _every_day(subject: SubjectFigures, span: int) -> list[tuple[datetime.date, DayFigures | None]]:
    """The subject's last ``span`` days up to its last, the days without decisions as None."""
    if not subject.days:
        return []
    known = {day.day: day for day in subject.days}
    last = subject.days[-1].day.toordinal()
    first = max(subject.days[0].day.toordinal(), last - span + 1)  # (no date arithmetic:
    every = [datetime.date.fromordinal(n) for n in range(first, last + 1)]  # year 1 is near)
    return [(day, known.get(day)) for day in every]


def _day_label(days: list[tuple[datetime.date, DayFigures | None]]) -> Any:
    def label(value: float, _: int) -> str:
        index = round(value)
        if abs(value - index) > 1e-6 or not 0 <= index < len(days):
            return ""
        return f"{days[index][0]:%b %d}"

    return label


def _panel(
    axes: Any,
    days: list[tuple[datetime.date, DayFigures | None]],
    ranked: Ranked,
    count: str,
    logged: str,
    fixed: tuple[float, float] | None,
    title: str,
) -> None:
    x = list(range(len(days)))
    values = [getattr(figures, count) if figures is not None else 0 for _, figures in days]
    colours = [_HOT if day in ranked.hot_days else _BAR for day, _ in days]
    axes.bar(x, values, width=0.8, color=colours, label="this subject", zorder=2)
    if ranked.basis == "peers":  # each day's figures across its own bar, as logged that day
        known = [
            (at, getattr(figures, logged))
            for at, (_, figures) in enumerate(days)
            if figures is not None and getattr(figures, logged) is not None
        ]
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
    axes.set_xlim(-0.6, max(len(days), 7) - 0.4)  # a day or two stay bars, not slabs
    axes.set_title(title, loc="left", fontsize=9)
    axes.margins(y=0.18)  # room for the legend above the highest bar
    axes.set_ylim(bottom=0)
    axes.grid(axis="y", color="#dddddd", lw=0.6, zorder=0)
    axes.legend(loc="upper left", fontsize=7.5, frameon=False, ncols=3)
