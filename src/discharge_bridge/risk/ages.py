"""Age at admission from a FHIR birthDate, partial dates included.

Choice: the age is the one that is *certain*. A partial birth date is read as its latest
possible day (`1938` -> 1938-12-31, `1938-05` -> 1938-05-31), so the age is never overstated:
a patient born "1938" is counted 80 only once they are 80 whatever their real birthday. The
cost is that such a patient may reach an age band up to a year late, which errs on the side
of the chart a coordinator can check. A 29 February birthday counts from 1 March in other years.
"""

from __future__ import annotations

import calendar
import re
from datetime import date

_BIRTH_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


def latest_birthday(birth_date: str) -> date | None:
    """The latest calendar day a (possibly partial) FHIR birthDate can mean; None if unreadable."""
    if not isinstance(birth_date, str):
        return None
    match = _BIRTH_DATE.match(birth_date.strip())
    if not match:
        return None
    year = int(match.group(1))
    month = int(match.group(2)) if match.group(2) else 12
    if not 1 <= month <= 12 or year < 1:
        return None
    last_day = calendar.monthrange(year, month)[1]
    day = int(match.group(3)) if match.group(3) else last_day
    if not 1 <= day <= last_day:
        return None
    return date(year, month, day)


def age_at(birth_date: str, on: date) -> int | None:
    """Completed years on `on`, never overstated for partial dates; None when unreadable or unborn."""
    born = latest_birthday(birth_date)
    if born is None or born > on:
        return None
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))
