"""One report from one log: read, rank, collect the detailed subjects, draw, write."""

from __future__ import annotations

import datetime
import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import attrs

from zerotrust.report.charts import subject_chart
from zerotrust.report.load import DecisionRow, LogFigures, read_decisions, read_log
from zerotrust.report.options import ReportOptions
from zerotrust.report.rank import Population, Ranked, rank

__all__ = ["Detail", "Report", "build_report", "write_report"]


@attrs.frozen
class Detail:
    """A subject shown in detail: its rank, its decisions kept, its chart (SVG text)."""

    ranked: Ranked
    rank: int  # 1 = highest score
    rows: tuple[DecisionRow, ...]
    not_listed: int  # decisions of the subject not in ``rows``
    chart: str


@attrs.frozen
class Report:
    """Everything the page shows."""

    figures: LogFigures
    population: Population
    ranked: tuple[Ranked, ...]
    details: tuple[Detail, ...]
    generated: datetime.datetime
    options: ReportOptions

    @property
    def flagged(self) -> int:
        return len(self.details)


def build_report(
    log: str | Path,
    options: ReportOptions | None = None,
    *,
    now: datetime.datetime | None = None,
) -> Report:
    """Read ``log`` twice (figures, then the decisions of the subjects shown in detail)
    and draw their charts. Raises ``OSError`` if the log cannot be read and
    ``ImportError`` without matplotlib (the ``report`` extra) when a chart is needed."""
    options = options or ReportOptions()
    figures = read_log(log, options)
    everyone, ranked = rank(figures, options)
    flagged = [(place, r) for place, r in enumerate(ranked, 1) if r.flagged]
    wanted = {r.key: _notable(r) for _, r in flagged}
    found = read_decisions(log, wanted, options, lines=figures.lines) if wanted else {}
    details = tuple(
        Detail(
            ranked=r,
            rank=place,
            rows=found[r.key][0],
            not_listed=found[r.key][1],
            chart=subject_chart(r, everyone, place, options.max_days),
        )
        for place, r in flagged
    )
    return Report(
        figures=figures,
        population=everyone,
        ranked=ranked,
        details=details,
        generated=now or datetime.datetime.now(datetime.UTC),
        options=options,
    )


def _notable(ranked: Ranked) -> Callable[[DecisionRow, int], bool]:
    """Refused, stepped up, from something new, or on a day that stood out."""
    hot = {(day - datetime.date(1970, 1, 1)).days for day in ranked.hot_days}

    def notable(row: DecisionRow, day: int) -> bool:
        return row.effect != "allow" or bool(row.notes) or day in hot

    return notable


def write_report(
    log: str | Path,
    out: str | Path,
    options: ReportOptions | None = None,
    *,
    title: str | None = None,
) -> Report:
    """Build the report of ``log`` and write it to ``out`` as one HTML file, whole or
    not at all (written beside it, then renamed over it). Raises ``OSError`` naming the
    file when the log cannot be read or ``out`` written (checked first, before the log
    is read)."""
    from zerotrust.report.render import render_html

    target = Path(out)
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
    # mkstemp creates it readable by its owner only: the page quotes the log.
    try:
        fd, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
        )
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror, str(target)) from exc
    try:
        with os.fdopen(fd, "wb") as file:
            report = build_report(log, options)
            file.write(render_html(report, title=title).encode("utf-8"))
        try:
            os.replace(temporary, target)
        except OSError as exc:
            raise type(exc)(exc.errno, exc.strerror, str(target)) from exc
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return report
