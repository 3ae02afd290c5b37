"""What a report may hold: the bounds that keep a huge or hostile log in fixed memory."""

from __future__ import annotations

from typing import Any

import attrs

from zerotrust.errors import ReportError

__all__ = ["ReportOptions"]


def _whole(low: int, high: int) -> Any:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if type(value) is not int or not low <= value <= high:
            raise ReportError(
                f"ReportOptions.{attribute.name} must be a whole number from {low:,} to "
                f"{high:,}, not {value!r}"
            )

    return check


def _score(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if type(value) not in (int, float) or not 0 <= value <= 1000:
        raise ReportError(
            f"ReportOptions.{attribute.name} must be a number from 0 to 1000, not {value!r}"
        )


@attrs.frozen
class ReportOptions:
    """How many subjects a report details and the bounds of what it keeps while reading.

    ``top``: subjects shown in detail (chart, rules, decisions), the highest scores
    first, only those scoring at least ``min_score``. ``ranked``: rows of the ranking
    table. The rest bound memory whatever the log holds: ``max_subjects`` subjects are
    aggregated (lines of later subjects are counted as skipped), ``max_days`` UTC days
    per subject (the newest kept), ``max_distinct`` distinct resources per subject and
    day (past it the day's count shows as at least that many), ``max_decisions``
    decisions kept per detailed subject, and ``max_line_bytes`` per line (a longer line
    is skipped unread). Raises :class:`ReportError` naming a field out of range.
    """

    top: int = attrs.field(default=10, validator=_whole(0, 1000))
    min_score: float = attrs.field(default=20.0, validator=_score)
    ranked: int = attrs.field(default=100, validator=_whole(1, 100_000))
    max_subjects: int = attrs.field(default=100_000, validator=_whole(1, 10_000_000))
    max_days: int = attrs.field(default=400, validator=_whole(1, 10_000))
    max_distinct: int = attrs.field(default=10_000, validator=_whole(1, 1_000_000))
    max_decisions: int = attrs.field(default=200, validator=_whole(1, 100_000))
    max_line_bytes: int = attrs.field(default=1 << 20, validator=_whole(1024, 1 << 30))
