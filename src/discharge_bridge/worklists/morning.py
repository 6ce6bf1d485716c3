"""The morning worklist of each hospital: built by the scheduler, read by the worklist page and API.

``MorningList.items`` has this shape (FHIR ids and reasons; no names, birth dates or identifiers):

    {"new_flags": [{"case_id", "encounter", "patient", "priority", "score", "concepts", "reasons",
                    "ward", "bed", "coordinator", "flagged_at"}],
     "due_tasks": [{"task_id", "case_id", "encounter", "description", "kind", "priority", "due_at",
                    "overdue", "owner", "coordinator"}],
     "counts": {"new_flags", "due_today", "overdue"}}

``new_flags``: admissions first flagged (``RiskAssessment.first_flagged_at``, kept across rule-set
versions) after the previous list and still flagged and current under the active rule set; the
first list of a hospital takes every current flag. ``due_tasks``: active tasks due before the end
of the hospital's local day, ``overdue`` when due before the list was made. ``counts.due_today``
counts the tasks that are not overdue yet, so ``due_today + overdue == len(due_tasks)``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, and_
from sqlmodel import Session, col, select

from discharge_bridge.cases.models import Case, CaseStatus
from discharge_bridge.cases.repository import scoped
from discharge_bridge.cases.tasks.models import TASK_TRANSITIONS, Task, TaskStatus
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.ingest.store import insert_for
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.sources.models import Source
from discharge_bridge.worklists.models import MorningList
from discharge_bridge.worklists.people import identities

_TABLE: Table = MorningList.__table__  # type: ignore[attr-defined]


def latest_for(session: Session, source_ids: list[int] | None) -> list[MorningList]:
    """The newest morning list of each visible hospital (None = every hospital)."""
    query = select(MorningList).order_by(col(MorningList.source_id), col(MorningList.local_date).desc())
    if source_ids is not None:
        query = query.where(col(MorningList.source_id).in_(source_ids))
    newest: dict[int, MorningList] = {}
    for row in session.exec(query):
        newest.setdefault(row.source_id, row)
    return list(newest.values())


def local_day(source: Source, now: datetime) -> tuple[str, datetime]:
    """The hospital's local date at ``now`` and the end of that day as a UTC instant."""
    tz = ZoneInfo(source.timezone)
    today = now.astimezone(tz).date()
    end = datetime.combine(today + timedelta(days=1), time(0), tzinfo=tz)
    return today.isoformat(), end.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _concepts(reasons: list[dict[str, Any]]) -> list[str]:
    # Combination reasons are named "a+b": list each proved concept once, in the reasons' order.
    return list(dict.fromkeys(part for r in reasons for part in str(r.get("concept", "")).split("+") if part))


def _new_flags(
    session: Session, source_id: int, rules_version: str, since: datetime | None, now: datetime
) -> list[dict[str, Any]]:
    query = (
        select(RiskAssessment, EncounterSnapshot, Case)
        .join(
            EncounterSnapshot,
            and_(
                col(EncounterSnapshot.source_id) == RiskAssessment.source_id,
                col(EncounterSnapshot.fhir_id) == RiskAssessment.encounter_fhir_id,
            ),
        )
        .outerjoin(
            Case,
            and_(
                col(Case.source_id) == RiskAssessment.source_id,
                col(Case.encounter_fhir_id) == RiskAssessment.encounter_fhir_id,
            ),
        )
        .where(
            RiskAssessment.source_id == source_id,
            RiskAssessment.rules_version == rules_version,
            col(RiskAssessment.flagged).is_(True),
            col(RiskAssessment.current).is_(True),
            col(RiskAssessment.first_flagged_at) <= now,
        )
        .order_by(col(RiskAssessment.priority_rank).desc(), col(RiskAssessment.score).desc(), col(RiskAssessment.id))
    )
    if since is not None:
        query = query.where(col(RiskAssessment.first_flagged_at) > since)
    return [
        {
            "case_id": case.id if case else None,
            "encounter": risk.encounter_fhir_id,
            "patient": risk.patient_fhir_id,
            "priority": risk.priority,
            "score": risk.score,
            "concepts": _concepts(risk.reasons),
            "reasons": risk.reasons,
            "ward": enc.ward,
            "bed": enc.bed,
            "coordinator": case.coordinator if case else None,
            "flagged_at": _iso(risk.first_flagged_at),
        }
        for risk, enc, case in session.exec(query)
    ]


def _due_tasks(session: Session, source_id: int, day_end: datetime, now: datetime) -> list[dict[str, Any]]:
    query = (
        select(Task, Case)
        .join(Case, col(Case.id) == Task.case_id)
        .where(
            Case.source_id == source_id,
            Case.status == CaseStatus.open,
            col(Task.status).in_(TASK_TRANSITIONS.active),
            col(Task.due_at).is_not(None),
            col(Task.due_at) < day_end,
        )
        .order_by(col(Task.due_at), col(Task.id))
    )
    return [
        {
            "task_id": task.id,
            "case_id": case.id,
            "encounter": case.encounter_fhir_id,
            "description": task.description,
            "kind": str(task.kind),
            "priority": str(task.priority),
            "due_at": _iso(task.due_at),
            "overdue": task.due_at is not None and task.due_at < now,
            "owner": task.owner,
            "coordinator": case.coordinator,
        }
        for task, case in session.exec(query)
    ]


def _counts(flags: list[dict[str, Any]], tasks: list[dict[str, Any]]) -> dict[str, int]:
    overdue = sum(1 for t in tasks if t["overdue"])
    return {"new_flags": len(flags), "due_today": len(tasks) - overdue, "overdue": overdue}


def build_morning_list(
    session: Session, source: Source, *, now: datetime, rules_version: str, generated_by: str = "scheduler"
) -> MorningList | None:
    """Write the hospital's list for its local date at ``now``; None when that date has one already.

    INSERT ... ON CONFLICT DO NOTHING on (source, local date): of two builders racing, exactly one
    writes, the other gets None, so a second run of the morning job changes nothing.
    """
    assert source.id is not None
    local_date, day_end = local_day(source, now)
    exists = session.exec(
        select(MorningList.id).where(MorningList.source_id == source.id, MorningList.local_date == local_date)
    ).first()
    if exists is not None:
        return None
    previous = session.exec(
        select(MorningList)
        .where(MorningList.source_id == source.id, col(MorningList.local_date) < local_date)
        .order_by(col(MorningList.local_date).desc())
    ).first()
    since = previous.generated_at if previous else None
    flags = _new_flags(session, source.id, rules_version, since, now)
    tasks = _due_tasks(session, source.id, day_end, now)
    values = {
        "source_id": source.id,
        "local_date": local_date,
        "generated_at": now,
        "since": since,
        "generated_by": generated_by[:200],
        "items": {"new_flags": flags, "due_tasks": tasks, "counts": _counts(flags, tasks)},
    }
    stmt = (
        insert_for(session, _TABLE)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["source_id", "local_date"])
        .returning(_TABLE.c.id)
    )
    new_id = session.execute(stmt).scalar_one_or_none()
    return session.get(MorningList, new_id) if new_id is not None else None


def for_coordinator(items: dict[str, Any], username: str) -> dict[str, Any]:
    """One coordinator's part of a list: flags of their cases, tasks of their cases or owned by them."""
    flags = [f for f in items.get("new_flags", []) if f.get("coordinator") == username]
    tasks = [t for t in items.get("due_tasks", []) if username in (t.get("owner"), t.get("coordinator"))]
    return {"new_flags": flags, "due_tasks": tasks, "counts": _counts(flags, tasks)}


def unassigned_part(items: dict[str, Any]) -> dict[str, Any]:
    """What nobody has taken yet: flags without a coordinator, tasks of such cases that nobody owns."""
    flags = [f for f in items.get("new_flags", []) if not f.get("coordinator")]
    tasks = [t for t in items.get("due_tasks", []) if not t.get("coordinator") and not t.get("owner")]
    return {"new_flags": flags, "due_tasks": tasks, "counts": _counts(flags, tasks)}


def shown_lists(
    session: Session,
    sources: dict[int, Source],
    *,
    source_ids: list[int] | None,
    coordinator: str | None = None,
    unassigned: bool = False,
) -> list[dict[str, Any]]:
    """The newest list of each hospital in ``sources``, by hospital name, as the worklist page shows it:
    ``coordinator``'s part only when given (or the ``unassigned`` part); each flag with the patient's
    age, the admission time and whether it is still flagged, each task with its status now (work done
    since the morning is not chased twice)."""
    shown = []
    for row in sorted(
        latest_for(session, source_ids), key=lambda r: sources[r.source_id].hospital if r.source_id in sources else ""
    ):
        source = sources.get(row.source_id)
        if source is None:
            continue
        if unassigned:
            items = unassigned_part(row.items)
        else:
            items = for_coordinator(row.items, coordinator) if coordinator is not None else row.items
        tasks = items.get("due_tasks", [])
        statuses = _task_statuses(session, [int(t.get("task_id") or 0) for t in tasks], source_ids)
        shown.append(
            {
                "source": source,
                "local_date": date.fromisoformat(row.local_date),
                "generated_at": row.generated_at,
                "counts": items.get("counts", {}),
                "flags": _flags_now(session, row.source_id, items.get("new_flags", [])),
                "tasks": [_task_now(t, statuses) for t in tasks],
            }
        )
    return shown


def _flags_now(session: Session, source_id: int, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each flag with the patient's age, the admission time and whether it is still flagged: two
    queries for the whole list, not two per flag."""
    ids = sorted({str(item.get("encounter")) for item in items})
    if not ids:
        return []
    starts: dict[str, datetime | None] = {
        encounter_id: start
        for encounter_id, start in session.execute(
            select(EncounterSnapshot.fhir_id, EncounterSnapshot.period_start).where(
                EncounterSnapshot.source_id == source_id, col(EncounterSnapshot.fhir_id).in_(ids)
            )
        )
    }
    latest: dict[str, tuple[int | None, bool, bool]] = {}
    newest_first = (
        select(RiskAssessment.encounter_fhir_id, RiskAssessment.age, RiskAssessment.flagged, RiskAssessment.current)
        .where(RiskAssessment.source_id == source_id, col(RiskAssessment.encounter_fhir_id).in_(ids))
        .order_by(col(RiskAssessment.assessed_at).desc(), col(RiskAssessment.id).desc())
    )
    for encounter_id, age, flagged, current in session.execute(newest_first):
        latest.setdefault(encounter_id, (age, flagged, current))
    shown = []
    for item in items:
        age, flagged, current = latest.get(str(item.get("encounter")), (None, False, False))
        shown.append(
            {
                **item,
                "age": age,
                "admitted_at": starts.get(str(item.get("encounter"))),
                "still_flagged": bool(flagged and current),
            }
        )
    return shown


def _task_statuses(session: Session, task_ids: list[int], source_ids: list[int] | None) -> dict[int, TaskStatus]:
    """The status now of each task still in a visible hospital (a task since deleted is left out)."""
    if not task_ids:
        return {}
    query = select(Task.id, Task.status).join(Case, col(Case.id) == Task.case_id).where(col(Task.id).in_(task_ids))
    return {task_id: TaskStatus(status) for task_id, status in session.exec(scoped(query, source_ids)) if task_id}


def _task_now(item: dict[str, Any], statuses: dict[int, TaskStatus]) -> dict[str, Any]:
    status = statuses.get(int(item.get("task_id") or 0))
    due = item.get("due_at")
    return {
        **item,
        "due_at": datetime.fromisoformat(due) if isinstance(due, str) else None,  # the list stores ISO text
        "status_now": status,
        "done": status is not None and status not in TASK_TRANSITIONS.active,
    }


def with_people(
    session: Session, shown: list[dict[str, Any]], *, now: datetime, mappings_dir: Path
) -> list[tuple[int, str]]:
    """Put each flag's and task's patient identity (``person``) on ``shown`` (``shown_lists``), one
    query per hospital; the (source_id, patient) pairs now on the page, for the access log."""
    keys = [
        (hospital["source"].id, str(item.get("encounter")))
        for hospital in shown
        for item in (*hospital["flags"], *hospital["tasks"])
    ]
    people = identities(session, keys, now, mappings_dir)
    patients: list[tuple[int, str]] = []
    for hospital in shown:
        for item in (*hospital["flags"], *hospital["tasks"]):
            person = people.get((hospital["source"].id, str(item.get("encounter"))))
            item["person"] = person
            if person is not None:
                patients.append((person.source_id, person.patient_fhir_id))
    return patients
