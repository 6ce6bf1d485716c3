"""How many rows each filter value would give, with every other filter kept (the counts beside the
worklist's filters). One grouped query per filter, never one per value."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, case, func, or_, true
from sqlmodel import Session, col, select

from discharge_bridge.cases.models import Case
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.worklists.conditions import Windows, all_of, due_condition, joined, reason_rules
from discharge_bridge.worklists.filters import CaseState, Due
from discharge_bridge.worklists.schemas import Count, WorklistCounts

_PRIORITY_ORDER = {"high": 0, "medium": 1, "low": 2}


def _grouped(session: Session, key: Any, where: ColumnElement[bool]) -> list[tuple[Any, int]]:
    stmt = joined(select(key, func.count())).where(where).group_by(key)
    return [(value, int(n)) for value, n in session.execute(stmt)]


def count_filters(
    session: Session, found: dict[str, ColumnElement[bool]], *, win: Windows, dialect: str
) -> WorklistCounts:
    """Counts per value of each filter in ``found`` (``conditions.conditions``), that filter left out."""
    wards = _grouped(session, EncounterSnapshot.ward, all_of(found, but="ward"))
    priorities = _grouped(session, RiskAssessment.priority, all_of(found, but="priority"))
    coordinators = _grouped(session, Case.coordinator, all_of(found, but="coordinator"))
    state = case((col(Case.id).is_(None), CaseState.none.value), else_=col(Case.status))
    statuses = dict(_grouped(session, state, all_of(found, but="status")))
    return WorklistCounts(
        ward=[Count(value=w, count=n) for w, n in sorted(wards, key=lambda p: (p[0] is None, p[0] or ""))],
        rule=_rules(session, found, dialect),
        priority=[
            Count(value=p, count=n) for p, n in sorted(priorities, key=lambda p: _PRIORITY_ORDER.get(p[0] or "", 3))
        ],
        coordinator=[
            Count(value=c, count=n) for c, n in sorted(coordinators, key=lambda p: (p[0] is None, p[0] or ""))
        ],
        status=[Count(value=s.value, count=statuses.get(s.value, 0)) for s in CaseState],
        due=_due(session, found, win),
        unassigned=_unassigned(session, found),
    )


def _rules(session: Session, found: dict[str, ColumnElement[bool]], dialect: str) -> list[Count]:
    """Rows per rule among their reasons (a row with three reasons counts once under each)."""
    elements, rule_of, concept_of = reason_rules(dialect)
    stmt = (
        joined(select(rule_of, func.min(concept_of), func.count(func.distinct(RiskAssessment.id))))
        .join(elements, true())  # a lateral table of each row's reasons
        .where(all_of(found, but="rule"))
        .group_by(rule_of)
    )
    rows = [(str(rule), str(concept or rule), int(n)) for rule, concept, n in session.execute(stmt) if rule]
    return [Count(value=rule, count=n, label=concept) for rule, concept, n in sorted(rows, key=lambda r: (-r[2], r[0]))]


def _due(session: Session, found: dict[str, ColumnElement[bool]], win: Windows) -> list[Count]:
    others = all_of(found, but="due")
    counts = []
    for due in Due:
        stmt = joined(select(func.count())).where(others, due_condition(due, win))
        counts.append(Count(value=due.value, count=int(session.execute(stmt).scalar_one())))
    return counts


def _unassigned(session: Session, found: dict[str, ColumnElement[bool]]) -> int:
    nobody = or_(col(Case.id).is_(None), col(Case.coordinator).is_(None))
    stmt = joined(select(func.count())).where(all_of(found, but="coordinator"), nobody)
    return int(session.execute(stmt).scalar_one())
