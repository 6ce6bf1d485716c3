"""SQL pieces of the city's figures: local calendars as UTC windows, ISO weeks, durations, percentiles.

Every figure is computed in the database (100,000+ cases): these helpers turn each hospital's
local calendar (``Source.timezone``) into plain comparisons of stored UTC instants, so neither
SQLite nor PostgreSQL needs time-zone support, and rank durations with window functions so a
median and a 90th percentile are one grouped query on both.

Percentiles are the nearest-rank kind (PostgreSQL's ``percentile_disc``): of ``n`` durations
sorted ascending, the median is the ``ceil(n/2)``-th and the p90 the ``ceil(9n/10)``-th, so each
is a duration that really happened.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, false, func, literal, or_, select, union_all
from sqlmodel import Session

from discharge_bridge.validation import YEAR_MAX, YEAR_MIN

MAX_DAYS = 366  # the longest period asked in one go: a year, a leap day included


class InvalidPeriod(ValueError):
    """The period cannot be computed; ``param`` names the query parameter at fault."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


@dataclass(frozen=True)
class Period:
    """Local days ``start`` .. ``end`` (both included), read in each hospital's own time zone."""

    start: date
    end: date

    def check(self) -> Period:
        for param, day in (("from", self.start), ("to", self.end)):
            if not YEAR_MIN <= day.year <= YEAR_MAX:
                raise InvalidPeriod(param, f"a date between {YEAR_MIN} and {YEAR_MAX}")
        if self.end < self.start:
            raise InvalidPeriod("to", "the end of the period is before its start")
        if (self.end - self.start).days + 1 > MAX_DAYS:
            raise InvalidPeriod("to", f"a period of at most {MAX_DAYS} days")
        return self


DEFAULT_DAYS = 28  # four weeks up to today when no period is given


def period_of(start: date | None, end: date | None, today: date) -> Period:
    """The period asked for, the missing ends filled: up to ``today``, four weeks long."""
    end = end or today
    return Period(start or end - timedelta(days=DEFAULT_DAYS - 1), end)


def local_midnight(day: date, zone: str) -> datetime:
    """00:00 of ``day`` in ``zone``, as a UTC instant."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(zone)).astimezone(UTC)


@dataclass(frozen=True)
class Calendars:
    """The hospitals a figure covers, grouped by time zone: ``{zone: (source ids)}``."""

    zones: dict[str, tuple[int, ...]]

    @classmethod
    def of(cls, sources: Iterable[tuple[int, str]]) -> Calendars:
        zones: dict[str, list[int]] = {}
        for source_id, zone in sources:
            zones.setdefault(zone or "UTC", []).append(source_id)
        return cls({zone: tuple(sorted(ids)) for zone, ids in sorted(zones.items())})

    def within(self, period: Period, at: Any, source: Any) -> ColumnElement[bool]:
        """``at`` falls on one of the period's local days of the row's hospital (``source``: its id column)."""
        branches = [
            and_(
                source.in_(ids),
                at >= local_midnight(period.start, zone),
                at < local_midnight(period.end + timedelta(days=1), zone),
            )
            for zone, ids in self.zones.items()
        ]
        return or_(false(), *branches)

    def week(self, period: Period, at: Any, source: Any) -> Any:
        """The ISO week (``2026-W49``) ``at`` falls in, on the row's hospital's local calendar."""
        whens: list[tuple[ColumnElement[bool], str]] = []
        first = period.start - timedelta(days=period.start.weekday())
        for zone, ids in self.zones.items():
            monday = first
            while monday <= period.end:
                following = monday + timedelta(days=7)
                year, week, _ = monday.isocalendar()
                whens.append(
                    (
                        and_(
                            source.in_(ids),
                            at >= local_midnight(monday, zone),
                            at < local_midnight(following, zone),
                        ),
                        f"{year}-W{week:02d}",
                    )
                )
                monday = following
        return case(*whens, else_=None) if whens else literal(None)


def seconds_between(start: Any, end: Any, dialect: str) -> Any:
    """``end - start`` in seconds (negative if ``end`` comes first; NULL if either is)."""
    if dialect == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def not_negative(seconds: Any) -> Any:
    return case((seconds > 0, seconds), else_=0.0)


@dataclass(frozen=True)
class Spread:
    """One group of a duration figure, in seconds: ``cohort`` rows, ``count`` of them with a
    duration, its nearest-rank median and p90, and the sum (for bed-days)."""

    cohort: int
    count: int
    median: float | None
    p90: float | None
    total: float


def spreads(session: Session, figures: dict[str, Any]) -> dict[tuple[str, Any], Spread]:
    """``{(figure, group): Spread}`` in one statement. Each select of ``figures`` gives ``grp`` and
    ``seconds`` (NULL: not reached yet), one row per item of that figure's cohort; the rows of all of
    them are ranked per figure and group, and the median and the p90 picked by rank. Selects that read
    one CTE share it: the database computes it once for the statement."""
    rows = union_all(
        *(select(literal(name).label("figure"), q.c.grp, q.c.seconds) for name, q in _subqueries(figures))
    ).subquery()
    missing = case((rows.c.seconds.is_(None), 1), else_=0)
    ranked = select(
        rows.c.figure,
        rows.c.grp,
        rows.c.seconds,
        func.row_number().over(partition_by=[rows.c.figure, rows.c.grp, missing], order_by=rows.c.seconds).label("rn"),
        func.count(rows.c.seconds).over(partition_by=[rows.c.figure, rows.c.grp]).label("n"),
    ).subquery()
    reached = ranked.c.seconds.is_not(None)

    def at_rank(rank: Any) -> Any:
        return func.max(case((and_(reached, ranked.c.rn == rank), ranked.c.seconds), else_=None))

    query = select(
        ranked.c.figure,
        ranked.c.grp,
        func.count(),
        func.max(ranked.c.n),
        at_rank((ranked.c.n + 1) // 2),
        at_rank((9 * ranked.c.n + 9) // 10),
        func.sum(ranked.c.seconds),
    ).group_by(ranked.c.figure, ranked.c.grp)
    return {
        (figure, key): Spread(
            int(cohort),
            int(n or 0),
            None if median is None else float(median),
            None if p90 is None else float(p90),
            float(total or 0.0),
        )
        for figure, key, cohort, n, median, p90, total in session.execute(query)
    }


def _subqueries(figures: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(name, q.subquery()) for name, q in figures.items()]
