"""The "from / to" days of the admin log pages (access log, audit trail) as UTC instants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@dataclass(frozen=True)
class DayRange:
    """Whole days in UTC, ``until`` inclusive; a day that does not parse is left out and named in ``bad``."""

    since: datetime | None
    until: datetime | None
    bad: list[str]

    @classmethod
    def read(cls, since: str, until: str) -> DayRange:
        first, last = _day(since), _day(until)
        bad = [name for name, raw, day in (("since", since, first), ("until", until, last)) if raw and day is None]
        return cls(
            datetime.combine(first, time(), UTC) if first else None,
            datetime.combine(last + timedelta(days=1), time(), UTC) if last else None,
            bad,
        )

    def api_params(self) -> dict[str, str]:
        """The range as the API's ``since`` / ``until`` instants (with their zone)."""
        return {k: v.isoformat() for k, v in (("since", self.since), ("until", self.until)) if v is not None}
