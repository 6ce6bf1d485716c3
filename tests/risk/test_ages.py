from __future__ import annotations

import calendar
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from discharge_bridge.risk import age_at
from discharge_bridge.risk.ages import latest_birthday

births = st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 12, 31))
days = st.dates(min_value=date(1900, 1, 1), max_value=date(2040, 12, 31))


def exact_age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def test_full_dates() -> None:
    assert age_at("1940-06-15", date(2024, 6, 14)) == 83
    assert age_at("1940-06-15", date(2024, 6, 15)) == 84


def test_partial_dates_take_the_latest_possible_birthday() -> None:
    assert age_at("1938", date(2024, 3, 10)) == 85  # could be 85 or 86: 85 is certain
    assert age_at("1938", date(2024, 12, 31)) == 86
    assert age_at("1938-05", date(2024, 5, 30)) == 85
    assert age_at("1938-05", date(2024, 5, 31)) == 86


def test_leap_day_birthday_counts_from_first_of_march() -> None:
    assert age_at("2000-02-29", date(2018, 2, 28)) == 17
    assert age_at("2000-02-29", date(2018, 3, 1)) == 18


def test_unreadable_and_unborn() -> None:
    for bad in ["", "  ", "abc", "19-05", "1938-13", "1938-02-30", "0000"]:
        assert age_at(bad, date(2024, 1, 1)) is None
    assert age_at("2030-01-01", date(2024, 1, 1)) is None
    assert age_at("1938-05-12T00:00:00Z", date(2024, 6, 1)) == 86


@given(births, days)
def test_full_date_matches_exact_age(born: date, on: date) -> None:
    result = age_at(born.isoformat(), on)
    if born > on:
        assert result is None
    else:
        assert result == exact_age(born, on)


@given(births, days)
def test_year_only_is_the_age_that_is_certain(born: date, on: date) -> None:
    result = age_at(str(born.year), on)
    if result is None:
        return
    candidates = [
        exact_age(date(born.year, 1, 1) + timedelta(d), on)
        for d in range(366 if calendar.isleap(born.year) else 365)
        if date(born.year, 1, 1) + timedelta(d) <= on
    ]
    assert result == min(candidates)  # never overstated, and the best such lower bound
    assert result <= exact_age(born, on)


@given(births, days)
def test_year_month_never_overstates(born: date, on: date) -> None:
    result = age_at(f"{born.year:04d}-{born.month:02d}", on)
    if born > on:
        assert result is None or result <= 0
    elif result is not None:
        assert 0 <= exact_age(born, on) - result <= 1


@given(births, days, st.integers(min_value=0, max_value=4000))
def test_age_never_falls_with_time(born: date, on: date, later: int) -> None:
    first = age_at(born.isoformat(), on)
    then = age_at(born.isoformat(), on + timedelta(days=later)) if on.year < 2040 else first
    if first is not None and then is not None:
        assert then >= first


@given(births)
def test_latest_birthday_is_inside_the_partial_date(born: date) -> None:
    year_only = latest_birthday(str(born.year))
    assert year_only == date(born.year, 12, 31)
    month = latest_birthday(f"{born.year:04d}-{born.month:02d}")
    assert month is not None and month.month == born.month and month >= born
