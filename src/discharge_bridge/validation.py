"""What the API and the pages accept, in one place: ids, pages and versions a database column holds,
instants in a sensible range, text that can be stored and shown, a size for everything.

Every input schema and every Query / Path / Header parameter builds on these types, so a value out of
bounds is a 422 naming the field (FastAPI's ``detail[].loc``) and never reaches the database, where it
was a 500: PostgreSQL's INTEGER columns hold 32 bits (SQLite's 64), PostgreSQL keeps no NUL in a text,
and a date in year 1 with a time zone underflows on its way to UTC. The bounds are part of the OpenAPI
document too (``maximum``, ``maxLength``, ``pattern``...), so clients and fuzzers see them.

Rules that need the stored state (a readiness date not before the admission) belong to the services,
which raise ``InvalidInput`` with the field; the limits they apply live here. This module sits on the
lowest floor: it imports nothing of the project and reads no clock (a rule about "now" is given one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from annotated_types import Interval
from pydantic import (
    AfterValidator,
    AwareDatetime,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

# -- numbers -------------------------------------------------------------------------------------

INT_MAX = 2**31 - 1  # an INTEGER column of PostgreSQL: 4 bytes (SQLite's hold 8)
ID_MAX = INT_MAX  # every table's id is an INTEGER column; a larger one in a query is a DataError there
VERSION_MAX = INT_MAX
OFFSET_MAX = 1_000_000  # lists page by keyset; an offset is for the first pages of a short list
PAGE_MAX = 5_000  # the longest page of any list (the bed board's); each route sets its own, lower

Id = Annotated[int, Interval(ge=1, le=ID_MAX)]
Offset = Annotated[int, Interval(ge=0, le=OFFSET_MAX)]
PageSize = Annotated[int, Interval(ge=1, le=PAGE_MAX)]
Version = Annotated[int, Interval(ge=0, le=VERSION_MAX)]


def is_id(value: object) -> bool:
    """Whether ``value`` is an int a row id can be (for ids read from a cursor or a form)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= ID_MAX


def digits(text: str) -> int | None:
    """``text`` as a whole number if it is ASCII digits only (``"²".isdigit()`` is true, ``int("²")`` fails)."""
    return int(text) if text.isascii() and text.isdigit() else None


# -- text ----------------------------------------------------------------------------------------

# C0 controls, DEL and C1 controls: invisible, they break logs, CSV files and terminals, and PostgreSQL
# refuses NUL. Multi-line text keeps tab, LF and CR. (JSON Schema patterns, for the OpenAPI document.)
_ONE_LINE_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*$"
_LINES_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
_LINE_BREAKS = "\t\n\r"


@dataclass(frozen=True)
class Printable:
    """A ``str`` annotation: no control character (tab and line breaks only when ``lines``). The OpenAPI
    schema carries it as a ``pattern``. (A lone surrogate, which has no UTF-8, pydantic refuses itself.)"""

    lines: bool = False

    @property
    def pattern(self) -> str:
        return _LINES_PATTERN if self.lines else _ONE_LINE_PATTERN

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        found = handler(schema)
        found["pattern"] = self.pattern
        return found

    def check(self, value: str) -> str:
        problem = unprintable(value, lines=self.lines)
        if problem is not None:
            raise PydanticCustomError("unprintable", problem)
        return value


def unprintable(value: str, *, lines: bool = False) -> str | None:
    """Why ``value`` cannot be stored and shown as text (its first control character), or None."""
    for index, char in enumerate(value):
        code = ord(char)
        if (code < 0x20 or 0x7F <= code <= 0x9F) and not (lines and char in _LINE_BREAKS):
            what = "a line break or tab" if char in _LINE_BREAKS else f"the control character U+{code:04X}"
            return f"{what} is not allowed here (at position {index + 1})"
    return None


ONE_LINE = Printable(lines=False)
LINES = Printable(lines=True)

# A person's or a user's name, an owner, a coordinator: one line, trimmed.
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), ONE_LINE]
# A source's name, a FHIR id or type, a rule or a code: short, one line.
Key = Annotated[str, StringConstraints(min_length=1, max_length=64), ONE_LINE]
# One line of free text: a filter's words, a ward, a header.
Line = Annotated[str, StringConstraints(max_length=200), ONE_LINE]
# A reason or a note: line breaks kept, trimmed.
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), LINES]
# Findings and longer notes: line breaks kept.
LongText = Annotated[str, StringConstraints(max_length=4000), LINES]

# FHIR R4's own rules for a logical id and a resource type's name (fhir.fields reads them the same way).
FhirId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-.]{1,64}$")]
ResourceType = Annotated[str, StringConstraints(min_length=2, max_length=64, pattern=r"^[A-Z][A-Za-z]{1,63}$")]

ITEMS_MAX = 50  # entries of a list or map in a body (needs of a domain, documents of a checklist)


# -- instants ------------------------------------------------------------------------------------

YEAR_MIN, YEAR_MAX = 1900, 2100


def out_of_years(value: datetime) -> str | None:
    """Why ``value`` is refused by the year range (read in its own zone), or None."""
    if not YEAR_MIN <= value.year <= YEAR_MAX:
        return f"a date between {YEAR_MIN} and {YEAR_MAX}"
    return None


@dataclass(frozen=True)
class _Years:
    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    @staticmethod
    def check(value: datetime) -> datetime:
        problem = out_of_years(value)
        if problem is not None:
            raise PydanticCustomError("date_out_of_range", "Input should be " + problem)
        return value


# An instant with its time zone (ISO 8601 with Z or an offset), within YEAR_MIN..YEAR_MAX.
Instant = Annotated[AwareDatetime, _Years()]


def _within_years(value: date) -> date:
    if not YEAR_MIN <= value.year <= YEAR_MAX:
        raise PydanticCustomError("date_out_of_range", f"Input should be a date between {YEAR_MIN} and {YEAR_MAX}")
    return value


# A calendar day (YYYY-MM-DD) within the years every date of the API keeps to; bounded in the OpenAPI document.
Day = Annotated[
    date,
    AfterValidator(_within_years),
    WithJsonSchema({"type": "string", "format": "date", "maxLength": 10, "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}),
]


@dataclass(frozen=True)
class Within:
    """An ``Instant`` annotation: at most ``before`` earlier and ``after`` later than ``now()``.

    ``now`` is the caller's clock (``clock.utcnow``): this module reads none of its own."""

    now: Callable[[], datetime]
    before: timedelta
    after: timedelta

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def check(self, value: datetime) -> datetime:
        problem = too_far(value, self.now(), before=self.before, after=self.after)
        if problem is not None:
            raise PydanticCustomError("date_out_of_range", "Input should be " + problem)
        return value


def too_far(value: datetime, now: datetime, *, before: timedelta | None, after: timedelta) -> str | None:
    """Why ``value`` is refused for lying more than ``before`` (None: any time) before ``now`` or ``after``
    after it, or None."""
    instant = value.astimezone(UTC)
    if before is not None and instant < now - before:
        return f"no earlier than {_span(before)} before now"
    if instant > now + after:
        return f"no later than {_span(after)} from now"
    return None


def _span(delta: timedelta) -> str:
    years, days = divmod(delta.days, 365)
    if years and not days:
        return "a year" if years == 1 else f"{years} years"
    return f"{delta.days} days"


# A task's due time: a year back (an overdue task entered late), two years ahead.
DUE_BEFORE = timedelta(days=365)
DUE_AFTER = timedelta(days=2 * 365)
# Readiness and the expected discharge: from the day of admission to a year ahead.
READY_AFTER = timedelta(days=365)
