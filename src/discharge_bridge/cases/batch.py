"""Cases for a batch of admissions in a few statements: the assessment stage's path.

Opening, assigning and re-prioritising the cases of a batch writes exactly the rows the per-row
services (``open_case`` + ``assign``, ``update_priority``, ``apply_ehr_dates``) write for one case
at a time, the same events in the same order per case and the same row versions, but with Core
statements over the whole batch: the existing rows are read in one query, the changes computed in
Python, then written with ``INSERT ... ON CONFLICT`` / one ``UPDATE`` executemany / one event
executemany. tests/assessment/test_bulk_equivalence.py holds the two paths to the same result.

An UPDATE names the version it read (like the ORM's version counter), so a person's edit that
lands meanwhile fails the batch with ``StaleDataError`` rather than being overwritten. Case rows
the session holds are expired after a bulk change, so a later read in the same transaction sees it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, cast

import orjson
from sqlalchemy import Select, Table, and_, bindparam, exists, select, update
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session

from discharge_bridge.cases.assignment import CoordinatorPicker
from discharge_bridge.cases.contacts.plan import FIND_RELATIVES_TEXT
from discharge_bridge.cases.events import EventKind, plain
from discharge_bridge.cases.models import PRIORITY_RANK, Case, CaseEvent, CaseStatus, Priority
from discharge_bridge.cases.tasks.models import Task, TaskDomain, TaskKind, TaskPriority, TaskStatus
from discharge_bridge.db import utcnow
from discharge_bridge.ingest.store import utc_text
from discharge_bridge.risk.models import RiskAssessment

FIRST_VISIT_DUE = timedelta(days=1)
FIND_GUARDIAN_DUE = timedelta(hours=4)  # a child alone in a ward: the same shift, not tomorrow
FIND_RELATIVES_DUE = timedelta(days=2)  # an adult with no one on file: before the discharge is planned

CASES: Table = Case.__table__  # type: ignore[attr-defined]
EVENTS: Table = CaseEvent.__table__  # type: ignore[attr-defined]
TASKS: Table = Task.__table__  # type: ignore[attr-defined]
RISKS: Table = RiskAssessment.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class TaskTemplate:
    kind: TaskKind
    domain: TaskDomain
    priority: TaskPriority
    description: str
    due: timedelta


FIRST_VISIT = TaskTemplate(
    TaskKind.first_visit,
    TaskDomain.social,
    TaskPriority.routine,
    "First visit: meet the patient, confirm the living situation, start the needs assessment",
    FIRST_VISIT_DUE,
)
FIND_GUARDIAN = TaskTemplate(
    TaskKind.find_guardian,
    TaskDomain.legal,
    TaskPriority.urgent,
    "Find the child's parent or legal guardian",
    FIND_GUARDIAN_DUE,
)
FIND_RELATIVES = TaskTemplate(
    TaskKind.find_relatives, TaskDomain.social, TaskPriority.routine, FIND_RELATIVES_TEXT, FIND_RELATIVES_DUE
)


def concepts_of(reasons_concepts: Iterable[str]) -> set[str]:
    # Combination reasons are named "a+b": each part is a concept that was proved.
    return {part for concept in reasons_concepts for part in concept.split("+")}


def first_tasks(reasons_concepts: Iterable[str]) -> list[TaskTemplate]:
    """The plan a new case starts with: a first visit, and an urgent search for a child's guardian
    or, for an adult with no one on file, a search for relatives."""
    concepts = concepts_of(reasons_concepts)
    if "no_guardian" in concepts:
        return [FIRST_VISIT, FIND_GUARDIAN]
    if "no_contacts" in concepts:
        return [FIRST_VISIT, FIND_RELATIVES]
    return [FIRST_VISIT]


def withdrawal_change(
    withdrawn_at: datetime | None, *, flagged: bool, reasons: list[Any], now: datetime
) -> tuple[datetime | None, EventKind, dict[str, Any]] | None:
    """A case whose flag was withdrawn is marked (it never disappears silently), and unmarked when
    flagged again: the new ``flag_withdrawn_at`` and its event, or None when nothing changes."""
    if not flagged and withdrawn_at is None:
        return now, EventKind.flag_withdrawn, {}
    if flagged and withdrawn_at is not None:
        concepts = [str(r.get("concept")) for r in reasons if isinstance(r, dict)]
        return None, EventKind.flag_restored, {"flags": concepts}
    return None


def event_row(case_id: int, kind: EventKind, data: dict[str, Any], *, actor: str, at: datetime) -> dict[str, Any]:
    return {"case_id": case_id, "at": at, "actor": actor, "kind": kind.value, "data": plain(data)}


def write_events(session: Session, rows: list[dict[str, Any]]) -> None:
    """The events of a batch in one executemany, in the order given (ids follow it).

    Straight through the driver, the values converted as the column types would (the JSON text of
    ``data``, SQLite's naive UTC text for ``at``): SQLAlchemy's per-row parameter processing cost
    more than the insert itself (bench/scale.py)."""
    if not rows:
        return
    connection = session.connection()
    qmark = connection.dialect.paramstyle == "qmark"
    sql = _events_sql(connection.dialect.name, qmark)
    stamps: dict[datetime, Any] = {}  # a batch's events share a handful of instants
    params: list[Any] = []
    for row in rows:
        at = row["at"]
        stamp = stamps.get(at)
        if stamp is None:
            stamp = stamps[at] = utc_text(at) if connection.dialect.name == "sqlite" else at
        cells = (row["case_id"], stamp, row["actor"], row["kind"], orjson.dumps(row["data"]).decode())
        params.append(cells if qmark else dict(zip(_EVENT_COLUMNS, cells, strict=True)))
    connection.exec_driver_sql(sql, params)


_EVENT_COLUMNS = ("case_id", "at", "actor", "kind", "data")
_ROWS_PER_INSERT = 500
_HASHABLE = (datetime, str, int, bool)


def insert_returning(
    session: Session,
    table: Table,
    rows: list[dict[str, Any]],
    returning: tuple[str, ...],
    skip_conflicts_on: tuple[str, ...] | None = None,
) -> list[tuple[Any, ...]]:
    """INSERT ``rows`` (dicts of the same columns) in multi-row statements with RETURNING, as
    SQLAlchemy's "insertmanyvalues" does, ids in the order given; with ``skip_conflicts_on`` a row
    that conflicts on those columns is left out and not returned (ON CONFLICT DO NOTHING).

    The values go through the column types' own bind processors, each distinct value once (a batch's
    rows share a few instants and statuses), and one SQL text per chunk size is reused: the per-value
    processing and the per-statement SQL rendering (and, on PostgreSQL, psycopg parsing each new
    text again) cost more than the inserts (bench/scale.py)."""
    if not rows:
        return []
    connection = session.connection()
    dialect = connection.dialect
    columns = tuple(rows[0])
    processors = [table.c[c].type._cached_bind_processor(dialect) for c in columns]
    memos: list[dict[Any, Any]] = [{} for _ in columns]
    plan = list(zip(columns, processors, memos, strict=True))
    out: list[tuple[Any, ...]] = []
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        params: list[Any] = []
        for row in chunk:
            for name, process, memo in plan:
                value = row[name]
                if process is not None:
                    if value is None or type(value) in _HASHABLE:
                        if value in memo:
                            value = memo[value]
                        else:
                            value = memo[value] = process(value)
                    else:
                        value = process(value)
                params.append(value)
        qmark = dialect.paramstyle == "qmark"
        sql = _insert_sql(table.name, columns, returning, skip_conflicts_on, len(chunk), qmark)
        out += [tuple(r) for r in connection.exec_driver_sql(sql, tuple(params))]
    return out


@lru_cache(maxsize=32)
def _insert_sql(
    table: str,
    columns: tuple[str, ...],
    returning: tuple[str, ...],
    conflict: tuple[str, ...] | None,
    n: int,
    qmark: bool,
) -> str:
    mark = "?" if qmark else "%s"
    one = "(" + ", ".join([mark] * len(columns)) + ")"
    values = ", ".join([one] * n)
    skip = f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING" if conflict else ""
    # the names are our tables' and columns', never input
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}{skip} RETURNING {', '.join(returning)}"  # noqa: S608


@lru_cache(maxsize=4)
def _events_sql(dialect: str, qmark: bool) -> str:
    marks = ", ".join("?" if qmark else f"%({c})s" for c in _EVENT_COLUMNS)
    return f"INSERT INTO {EVENTS.name} ({', '.join(_EVENT_COLUMNS)}) VALUES ({marks})"  # noqa: S608


def update_cases(session: Session, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """UPDATE each case to ``columns`` where it still has the version read (``_id``, ``_version``), to
    version ``_new`` (default: one more; the per-row path takes one per change it flushes); a row
    changed meanwhile raises StaleDataError, as the ORM would."""
    if not rows:
        return
    stmt = (
        update(CASES)
        .where(and_(CASES.c.id == bindparam("_id"), CASES.c.version == bindparam("_version")))
        .values({c: bindparam(c) for c in (*columns, "version")})
    )
    params = [
        {
            **{c: r[c] for c in columns},
            "_id": r["_id"],
            "_version": r["_version"],
            "version": r.get("_new", r["_version"] + 1),
        }
        for r in rows
    ]
    result = session.execute(stmt, params)
    dialect = session.get_bind().dialect
    if dialect.supports_sane_multi_rowcount and result.rowcount != len(params):  # type: ignore[attr-defined]
        raise StaleDataError(f"{len(params) - result.rowcount} case(s) changed while the batch was written")  # type: ignore[attr-defined]
    expire_cases(session, {r["_id"] for r in rows})


def expire_cases(session: Session, ids: set[int]) -> None:
    """Let the session re-read the cases a Core statement changed."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Case) and obj.id in ids:
            session.expire(obj)


def _flagged_without_case_query(
    source_id: int, rules_version: str, encounter_fhir_ids: Sequence[str] | None
) -> Select[Any]:
    has_case = exists().where(
        CASES.c.source_id == RISKS.c.source_id, CASES.c.encounter_fhir_id == RISKS.c.encounter_fhir_id
    )
    query = (
        select(RISKS.c.encounter_fhir_id, RISKS.c.patient_fhir_id, RISKS.c.priority, RISKS.c.reasons)
        .where(
            RISKS.c.source_id == source_id,
            RISKS.c.rules_version == rules_version,
            RISKS.c.flagged.is_(True),
            RISKS.c.current.is_(True),
            ~has_case,
        )
        .order_by(RISKS.c.id)
    )
    if encounter_fhir_ids is not None:
        query = query.where(RISKS.c.encounter_fhir_id.in_(list(encounter_fhir_ids)))
    return query


def _flagged_without_case(
    session: Session, source_id: int, rules_version: str, encounter_fhir_ids: Sequence[str] | None
) -> list[tuple[str, str, str | None, list[Any]]]:
    query = _flagged_without_case_query(source_id, rules_version, encounter_fhir_ids)
    return [tuple(row) for row in session.execute(query)]  # type: ignore[misc]


def open_cases_for_flags(
    session: Session,
    source_id: int,
    *,
    rules_version: str,
    actor: str = "system",
    encounter_fhir_ids: Sequence[str] | None = None,
    now: datetime | None = None,
) -> int:
    """Open a case for every flagged, current admission of this rule set that has none (only among
    ``encounter_fhir_ids`` when given), with its first tasks, assigned in turn (cases/assignment.py);
    return how many were opened. A case another writer opened meanwhile is left to it."""
    now = now or utcnow()
    session.flush()  # Core reads do not autoflush: let them see what the caller changed through the ORM
    wanted = _flagged_without_case(session, source_id, rules_version, encounter_fhir_ids)
    if not wanted:
        return 0
    drafts = []
    for eid, pid, priority, _reasons in wanted:
        level = Priority(priority) if priority else None
        drafts.append(
            {
                "source_id": source_id,
                "encounter_fhir_id": eid,
                "patient_fhir_id": pid,
                "status": CaseStatus.open.value,
                "outcome": None,
                "priority": level.value if level else None,
                "priority_rank": PRIORITY_RANK[level],
                "coordinator": None,
                "opened_at": now,
                "opened_by": actor,
                "opened_by_hand": False,
                "closed_at": None,
                "expected_discharge_at": None,
                "expected_discharge_source": None,
                "expected_discharge_set_by": None,
                "medically_ready_at": None,
                "medically_ready_source": None,
                "medically_ready_set_by": None,
                "flag_withdrawn_at": None,
                "actual_discharge_at": None,
                "discharge_disposition": None,
                "discharge_destination": None,
                "updated_at": now,
                "version": 1,
            }
        )
    # Multi-row INSERTs with RETURNING; a row another writer inserted meanwhile is skipped and not returned.
    returned = insert_returning(session, CASES, drafts, ("id", "encounter_fhir_id"), ("source_id", "encounter_fhir_id"))
    created = {eid: case_id for case_id, eid in returned}
    new = sorted((created[eid], eid, reasons, priority) for eid, _, priority, reasons in wanted if eid in created)
    coordinators = _assign(session, source_id, [(case_id, eid) for case_id, eid, _, _ in new])
    assigned = [
        {"_id": case_id, "_version": 1, "coordinator": coordinators[case_id], "updated_at": now}
        for case_id, *_ in new
        if coordinators[case_id] is not None
    ]
    update_cases(session, assigned, ("coordinator", "updated_at"))
    tasks = []
    for case_id, _, reasons, _ in new:
        owner = coordinators[case_id]
        for template in first_tasks(str(r.get("concept")) for r in reasons):
            tasks.append(
                {
                    "case_id": case_id,
                    "kind": template.kind.value,
                    "priority": template.priority.value,
                    "domain": template.domain.value,
                    "description": template.description,
                    "owner": owner,
                    "due_at": now + template.due,
                    "status": TaskStatus.requested.value,
                    "status_reason": None,
                    "status_changed_at": now,
                    "created_at": now,
                    "created_by": actor,
                    "updated_at": now,
                    "escalated_at": None,
                    # The per-row path creates the task unowned, then hands it to the coordinator.
                    "version": 2 if owner is not None else 1,
                }
            )
    returned = insert_returning(session, TASKS, tasks, ("id", "case_id", "kind"))
    task_ids = {(case_id, kind): task_id for task_id, case_id, kind in returned}
    events = []
    for case_id, _, reasons, priority in new:
        concepts = [str(r.get("concept")) for r in reasons]
        level = Priority(priority) if priority else None
        data: dict[str, Any] = {"priority": level, "flags": sorted(concepts), "by_hand": False}
        events.append(event_row(case_id, EventKind.opened, data, actor=actor, at=now))
        mine = []
        for template in first_tasks(concepts):
            task_id = task_ids[(case_id, template.kind.value)]
            mine.append(task_id)
            data = {
                "task_id": task_id,
                "kind": template.kind,
                "priority": template.priority,
                "domain": template.domain,
                "description": template.description,
                "owner": None,
                "due_at": now + template.due,
            }
            events.append(event_row(case_id, EventKind.task_created, data, actor=actor, at=now))
        if coordinators[case_id] is not None:
            data = {"coordinator": [None, coordinators[case_id]], "tasks_reassigned": mine}
            events.append(event_row(case_id, EventKind.assigned, data, actor=actor, at=now))
    write_events(session, events)
    return len(new)


@dataclass(frozen=True, slots=True)
class _NewCase:
    """What the picker reads of a new case (building Case objects cost more than the rest of opening)."""

    id: int
    encounter_fhir_id: str


def _assign(session: Session, source_id: int, new: list[tuple[int, str]]) -> dict[int, str | None]:
    """Coordinators for the new cases, in the order they were opened (round robin counts ids)."""
    pick = CoordinatorPicker(session, source_id)
    return {case_id: pick(cast(Case, _NewCase(case_id, eid))) for case_id, eid in new}


def _priorities_query(source_id: int, rules_version: str, encounter_fhir_ids: Sequence[str] | None) -> Select[Any]:
    """Open cases of the source (of these admissions) with their admission's current assessment."""
    query = (
        select(
            CASES.c.id,
            CASES.c.version,
            CASES.c.priority,
            CASES.c.opened_by_hand,
            CASES.c.flag_withdrawn_at,
            CASES.c.updated_at,
            RISKS.c.priority,
            RISKS.c.flagged,
            RISKS.c.reasons,
        )
        .join(
            RISKS,
            and_(RISKS.c.source_id == CASES.c.source_id, RISKS.c.encounter_fhir_id == CASES.c.encounter_fhir_id),
        )
        .where(
            CASES.c.source_id == source_id,
            CASES.c.status == CaseStatus.open.value,
            RISKS.c.rules_version == rules_version,
            RISKS.c.current.is_(True),
        )
        .order_by(CASES.c.id)
    )
    if encounter_fhir_ids is not None:
        query = query.where(CASES.c.encounter_fhir_id.in_(list(encounter_fhir_ids)))
    return query


def refresh_priorities(
    session: Session,
    source_id: int,
    *,
    rules_version: str,
    actor: str = "system",
    encounter_fhir_ids: Sequence[str] | None = None,
    now: datetime | None = None,
) -> int:
    """Give open cases (of ``encounter_fhir_ids`` when given) the priority of their admission's current
    assessment, and mark or unmark a withdrawn flag (not on a case opened by hand); return how many
    priorities changed. An admission no longer flagged keeps its case (a coordinator decides) but
    loses its priority."""
    now = now or utcnow()
    query = _priorities_query(source_id, rules_version, encounter_fhir_ids)
    session.flush()  # Core reads do not autoflush
    changed = 0
    updates: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for case_id, version, old, by_hand, withdrawn_at, updated_at, priority, flagged, reasons in session.execute(query):
        new = Priority(priority) if priority and flagged else None
        old = Priority(old) if old else None
        row = {
            "_id": case_id,
            "_version": version,
            "_new": version,
            "priority": old,
            "priority_rank": PRIORITY_RANK[old],
        }
        row |= {"flag_withdrawn_at": withdrawn_at, "updated_at": updated_at}
        if new != old:  # each change is its own flush in the per-row path: its own version
            row.update(priority=new, priority_rank=PRIORITY_RANK[new], updated_at=now)
            row["_new"] += 1
            events.append(event_row(case_id, EventKind.priority_changed, {"priority": [old, new]}, actor=actor, at=now))
            changed += 1
        step = None if by_hand else withdrawal_change(withdrawn_at, flagged=bool(flagged), reasons=reasons, now=now)
        if step is not None:
            row["flag_withdrawn_at"], kind, data = step
            row["_new"] += 1
            events.append(event_row(case_id, kind, data, actor=actor, at=now))
        if row["_new"] != version:
            updates.append(row)
    update_cases(session, updates, ("priority", "priority_rank", "flag_withdrawn_at", "updated_at"))
    write_events(session, events)
    return changed
