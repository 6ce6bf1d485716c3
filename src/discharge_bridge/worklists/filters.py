"""What a reader may ask of the live worklist: search, filters, sort, the page after a cursor.

The same ``WorklistQuery`` serves the page and the API. Every value is checked here, so a bad one
is an ``InvalidFilter`` naming its parameter (a 422 on the API, the form's message on the page),
never a query that fails in the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from discharge_bridge.fhir.fields import search_key
from discharge_bridge.validation import unprintable

SEARCH_MAX = 100  # characters: a name and an MRN, with room
TERMS_MAX = 6  # words searched for (each must appear)


class Sort(StrEnum):
    priority = "priority"  # highest priority, then score, then longest in hospital
    admitted = "admitted"  # newest admission first
    stay = "stay"  # longest length of stay first
    due = "due"  # the case's next task due soonest (overdue first); admissions without one last
    name = "name"  # by name, A to Z; no name stored: last


class Due(StrEnum):
    overdue = "overdue"  # an active task of the case is past its due time
    today = "today"  # ... is due from now to the end of the hospital's local day
    week = "week"  # ... is due from now to the end of the hospital's local week (Sunday)


class CaseState(StrEnum):
    none = "none"  # flagged, no case opened yet
    open = "open"
    closed = "closed"
    cancelled = "cancelled"


PRIORITIES = ("high", "medium", "low")


class InvalidFilter(ValueError):
    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


@dataclass(frozen=True)
class WorklistQuery:
    """Filters combine with AND; ``None`` is "any". ``unassigned``: no case yet, or a case without a
    coordinator (it excludes ``coordinator``). ``after``: the cursor the previous page gave."""

    search: str | None = None
    ward: str | None = None
    rule: str | None = None
    priority: str | None = None
    min_priority: str | None = None
    coordinator: str | None = None
    unassigned: bool = False
    status: CaseState | None = None
    due: Due | None = None
    sort: Sort = Sort.priority
    after: str | None = None

    def __post_init__(self) -> None:
        for param, value in (
            ("q", self.search),
            ("ward", self.ward),
            ("rule", self.rule),
            ("coordinator", self.coordinator),
        ):
            problem = unprintable(value) if value is not None else None
            if problem is not None:  # PostgreSQL refuses a NUL in any text: a 500, were it sent on
                raise InvalidFilter(param, problem)
        if self.search is not None and len(self.search) > SEARCH_MAX:
            raise InvalidFilter("q", f"at most {SEARCH_MAX} characters")
        if self.search is not None and len(self.search.split()) > TERMS_MAX:
            raise InvalidFilter("q", f"at most {TERMS_MAX} words")
        for param, value in (("priority", self.priority), ("min_priority", self.min_priority)):
            if value is not None and value not in PRIORITIES:
                raise InvalidFilter(param, f"one of {', '.join(PRIORITIES)}, not {value!r}")
        if self.unassigned and self.coordinator:
            raise InvalidFilter("coordinator", "cannot be combined with unassigned")

    @property
    def terms(self) -> list[str]:
        """The search folded as stored (``fields.search_key``): each word must appear."""
        return search_key(self.search or "").split()

    def without(self, name: str) -> WorklistQuery:
        """This query with one filter dropped (for that filter's counts)."""
        cleared = {"coordinator": {"coordinator": None, "unassigned": False}}.get(name, {name: None})
        return WorklistQuery(**{**self.__dict__, **cleared, "after": None})
