"""The SQL of the live worklist: its rows, each filter as a condition, and each sort as keyset keys.

A row is a flagged, current assessment under the active rule set, with its stored admission, its
hospital, its case (if opened) and its patient (for the name and the search text). Filters are
kept apart by name so each filter's counts can be taken with every *other* filter applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, false, func, literal, or_, true
from sqlmodel import col, select

from discharge_bridge.cases.models import Case
from discharge_bridge.cases.tasks.models import TASK_TRANSITIONS, Task
from discharge_bridge.ingest.models import EncounterSnapshot, PatientSnapshot
from discharge_bridge.keyset import Key
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.worklists.filters import CaseState, Due, Sort, WorklistQuery

PRIORITY_RANK = {"high": 3, "medium": 2, "low": 1}
FILTERS = ("search", "ward", "rule", "priority", "coordinator", "status", "due")
_ACTIVE = sorted(TASK_TRANSITIONS.active)


def joined(query: Any, *, admission: bool = True) -> Any:
    """``query`` over the assessment, its admission, its case and its patient (no raw resource read).
    ``admission=False``: without the admission, for a caller that checks it otherwise."""
    query = query.select_from(RiskAssessment)
    if admission:
        query = query.join(
            EncounterSnapshot,
            and_(
                col(EncounterSnapshot.source_id) == RiskAssessment.source_id,
                col(EncounterSnapshot.fhir_id) == RiskAssessment.encounter_fhir_id,
            ),
        )
    return query.outerjoin(
        Case,
        and_(
            col(Case.source_id) == RiskAssessment.source_id,
            col(Case.encounter_fhir_id) == RiskAssessment.encounter_fhir_id,
        ),
    ).outerjoin(
        PatientSnapshot,
        and_(
            col(PatientSnapshot.source_id) == RiskAssessment.source_id,
            col(PatientSnapshot.fhir_id) == RiskAssessment.patient_fhir_id,
        ),
    )


@dataclass(frozen=True)
class Windows:
    """The end of the local day and of the local week (next Monday 00:00) per hospital, as UTC instants."""

    now: datetime
    day_end: dict[int, datetime]
    week_end: dict[int, datetime]


def windows(timezones: dict[int, str], now: datetime) -> Windows:
    day_end: dict[int, datetime] = {}
    week_end: dict[int, datetime] = {}
    for source_id, name in timezones.items():
        zone = ZoneInfo(name)
        today = now.astimezone(zone).date()
        day_end[source_id] = datetime.combine(today + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
        monday = today + timedelta(days=7 - today.weekday())
        week_end[source_id] = datetime.combine(monday, time(0), tzinfo=zone).astimezone(UTC)
    return Windows(now, day_end, week_end)


def _before_local(column: Any, ends: dict[int, datetime]) -> ColumnElement[bool]:
    """``column`` before each hospital's own end instant (hospitals sharing an instant share a branch)."""
    by_end: dict[datetime, list[int]] = {}
    for source_id, end in ends.items():
        by_end.setdefault(end, []).append(source_id)
    branches = [
        and_(col(RiskAssessment.source_id).in_(sorted(ids)), column < end) for end, ids in sorted(by_end.items())
    ]
    return or_(*branches) if branches else false()


def _tasks_due(when: ColumnElement[bool]) -> ColumnElement[bool]:
    return (
        select(literal(1))
        .select_from(Task)
        .where(col(Task.case_id) == Case.id, col(Task.status).in_(_ACTIVE), col(Task.due_at).is_not(None), when)
        .exists()
    )


def due_condition(due: Due, win: Windows) -> ColumnElement[bool]:
    at = col(Task.due_at)
    if due == Due.overdue:
        return _tasks_due(at < win.now)
    ends = win.day_end if due == Due.today else win.week_end
    return _tasks_due(and_(at >= win.now, _before_local(at, ends)))


def next_due() -> Any:
    """The soonest due time of the case's active tasks (None without a case or a due task)."""
    return (
        select(func.min(Task.due_at))
        .where(col(Task.case_id) == Case.id, col(Task.status).in_(_ACTIVE))
        .correlate(Case)
        .scalar_subquery()
    )


def reason_rules(dialect: str) -> tuple[Any, Any, Any]:
    """(table of the reasons' elements, the rule of an element, its concept), for the dialect's JSON."""
    if dialect == "postgresql":
        elements = func.json_array_elements(RiskAssessment.reasons).table_valued("value").alias("reason")
        return elements, elements.c.value.op("->>")("rule"), elements.c.value.op("->>")("concept")
    elements = func.json_each(RiskAssessment.reasons).table_valued("value").alias("reason")
    return elements, func.json_extract(elements.c.value, "$.rule"), func.json_extract(elements.c.value, "$.concept")


def _has_rule(rule: str, dialect: str) -> ColumnElement[bool]:
    elements, rule_of, _ = reason_rules(dialect)
    return select(literal(1)).select_from(elements).where(rule_of == rule).exists()


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def conditions(
    query: WorklistQuery, *, rules_version: str, source_ids: list[int] | None, win: Windows, dialect: str
) -> dict[str, ColumnElement[bool]]:
    """The base ("base") and each filter by name; an unused filter is TRUE."""
    base = [
        col(RiskAssessment.rules_version) == rules_version,
        col(RiskAssessment.flagged).is_(True),
        col(RiskAssessment.current).is_(True),
    ]
    if source_ids is not None:
        base.append(col(RiskAssessment.source_id).in_(source_ids))
    if query.min_priority:
        base.append(col(RiskAssessment.priority_rank) >= PRIORITY_RANK[query.min_priority])
    found: dict[str, ColumnElement[bool]] = dict.fromkeys(FILTERS, true())
    found["base"] = and_(*base)
    if query.terms:
        found["search"] = and_(*(col(PatientSnapshot.search_text).like(_like(t), escape="\\") for t in query.terms))
    if query.ward:
        found["ward"] = col(EncounterSnapshot.ward) == query.ward
    if query.rule:
        found["rule"] = _has_rule(query.rule, dialect)
    if query.priority:
        found["priority"] = col(RiskAssessment.priority) == query.priority
    if query.unassigned:
        found["coordinator"] = or_(col(Case.id).is_(None), col(Case.coordinator).is_(None))
    elif query.coordinator:
        found["coordinator"] = col(Case.coordinator) == query.coordinator
    if query.status == CaseState.none:
        found["status"] = col(Case.id).is_(None)
    elif query.status is not None:
        found["status"] = col(Case.status) == query.status.value
    if query.due is not None:
        found["due"] = due_condition(query.due, win)
    return found


def all_of(found: dict[str, ColumnElement[bool]], *, but: str | None = None) -> ColumnElement[bool]:
    return and_(*(condition for name, condition in found.items() if name != but))


def sort_keys(sort: Sort) -> list[Key]:
    """The keys of each sort; the last is the assessment's id, so every row has its own place."""
    rank = Key(col(RiskAssessment.priority_rank), descending=True, nullable=False)
    start = col(EncounterSnapshot.period_start)
    row_id = col(RiskAssessment.id)
    if sort == Sort.admitted:
        return [Key(start, descending=True), Key(row_id, descending=True, nullable=False)]
    if sort == Sort.stay:
        return [Key(start), Key(row_id, nullable=False)]
    if sort == Sort.due:
        return [Key(next_due()), rank, Key(row_id, nullable=False)]
    if sort == Sort.name:
        return [Key(col(PatientSnapshot.name)), Key(row_id, nullable=False)]
    score = Key(col(RiskAssessment.score), descending=True, nullable=False)
    # The admission's start as copied onto its assessment: the whole order is then one index's
    # (ix_risk_assessment_worklist), not a join and a sort of every row tied on priority and score.
    return [rank, score, Key(col(RiskAssessment.admitted_at)), Key(row_id, nullable=False)]
