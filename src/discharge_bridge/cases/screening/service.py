"""BRASS and ISAR screenings of a case: start (pre-filled), answer, complete, amend; FHIR output.

A screening is a QuestionnaireResponse kept as ``answers`` (see models). Completing it needs every
item answered; the total and band follow the published thresholds (risk/screening.py), and the
patient is queued for re-assessment, so a BRASS or ISAR result reaches the risk reasons through
the same path as new EHR data. Editing a completed screening makes it ``amended``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from discharge_bridge.cases.errors import CoordinationError, InvalidInput, NotFound, check_version, ensure_open
from discharge_bridge.cases.events import EventKind, record_event
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.repository import get_assessment, get_encounter, latest_risk, scoped
from discharge_bridge.cases.screening.models import ResponseStatus, ScreeningResponse, ScreeningTool
from discharge_bridge.cases.screening.prefill import prefill
from discharge_bridge.db import utcnow
from discharge_bridge.fhir.fields import period
from discharge_bridge.ingest.changes import enqueue_patients
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.risk.screening import Definition, band, definition, total, unanswered


class ScreeningInProgress(CoordinationError):
    status_code = 409

    def __init__(self, response_id: int | None, tool: str) -> None:
        super().__init__(f"a {tool} screening ({response_id}) is already in progress", screening_id=response_id)


class IncompleteScreening(InvalidInput):
    def __init__(self, missing: list[str]) -> None:
        super().__init__(("body", "answers", missing[0]), f"unanswered items: {', '.join(missing)}")
        self.missing = missing

    def body(self) -> dict[str, Any]:
        return {
            "detail": [
                {"type": "missing", "loc": ["body", "answers", link], "msg": "this item needs an answer"}
                for link in self.missing
            ]
        }


def get_screening(session: Session, screening_id: int, *, source_ids: list[int] | None = None) -> ScreeningResponse:
    """The screening, if its case is in scope; NotFound otherwise."""
    query = select(ScreeningResponse).join(Case, col(Case.id) == ScreeningResponse.case_id)
    found = session.exec(scoped(query.where(ScreeningResponse.id == screening_id), source_ids)).first()
    if found is None:
        raise NotFound("screening", screening_id)
    return found


def list_screenings(session: Session, case_id: int) -> list[ScreeningResponse]:
    query = select(ScreeningResponse).where(ScreeningResponse.case_id == case_id).order_by(col(ScreeningResponse.id))
    return list(session.exec(query))


def _other_encounters(session: Session, case: Case) -> list[dict[str, Any]]:
    query = select(EncounterSnapshot.fhir_id, EncounterSnapshot.raw).where(
        EncounterSnapshot.source_id == case.source_id,
        EncounterSnapshot.patient_fhir_id == case.patient_fhir_id,
        EncounterSnapshot.fhir_id != case.encounter_fhir_id,
    )
    return [dict(raw) for _, raw in session.exec(query)]


def start_screening(
    session: Session, case: Case, tool: ScreeningTool, *, actor: str, mappings_dir: Path
) -> ScreeningResponse:
    """A new in-progress screening, pre-filled from the stored data; one in progress per tool."""
    ensure_open(case)
    assert case.id is not None
    busy = session.exec(
        select(ScreeningResponse).where(
            ScreeningResponse.case_id == case.id,
            ScreeningResponse.tool == tool,
            ScreeningResponse.status == ResponseStatus.in_progress,
        )
    ).first()
    if busy is not None:
        raise ScreeningInProgress(busy.id, tool.value)
    definition(tool.value, mappings_dir)  # a broken file fails here, before anything is written
    risk = latest_risk(session, case)
    assessment = get_assessment(session, case.id)
    encounter = get_encounter(session, case.source_id, case.encounter_fhir_id)
    answers = prefill(
        tool.value,
        age=risk.age if risk else None,
        facts=list(risk.facts) if risk else [],
        other_encounters=_other_encounters(session, case),
        admitted_at=period(dict(encounter.raw))[0] if encounter is not None else None,
        daily_living=dict(assessment.daily_living) if assessment else {},
        living_situation=dict(assessment.living_situation) if assessment else {},
    )
    response = ScreeningResponse(case_id=case.id, tool=tool, answers=answers, created_by=actor)
    session.add(response)
    session.flush()
    record_event(
        session,
        case,
        actor=actor,
        kind=EventKind.screening_started,
        data={"screening_id": response.id, "tool": tool, "prefilled": sorted(answers)},
    )
    return response


def _checked(defn: Definition, given: dict[str, str | None]) -> None:
    for link, code in given.items():
        options = defn.points.get(link)
        if options is None:
            raise InvalidInput(("body", "answers", link), f"{defn.tool} has no item {link!r}")
        if code is not None and code not in options:
            allowed = ", ".join(options)
            raise InvalidInput(("body", "answers", link), f"{code!r} is not an answer to {link}; one of: {allowed}")


def update_screening(
    session: Session,
    case: Case,
    response: ScreeningResponse,
    *,
    actor: str,
    mappings_dir: Path,
    answers: dict[str, str | None] | None = None,
    complete: bool = False,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> bool:
    """Answer items (None clears one) and, with ``complete``, complete the screening.

    A completed screening that is edited becomes ``amended`` and is re-scored at once (it stays
    complete: clearing an item of it is refused). Completing or amending queues the patient for
    re-assessment. Returns whether anything changed."""
    ensure_open(case)
    check_version(f"screening {response.id}", response.version, expected_version)
    defn = definition(response.tool, mappings_dir)
    given = dict(answers or {})
    _checked(defn, given)
    merged = dict(response.answers)
    changed_items = []
    for link, code in given.items():
        old = merged.get(link) or {}
        if code is None:
            if link in merged:
                merged.pop(link)
                changed_items.append(link)
        elif old.get("value") != code or old.get("source") != "person":
            merged[link] = {"value": code, "source": "person", "evidence": None}
            changed_items.append(link)
    finished = response.status != ResponseStatus.in_progress
    if not changed_items and not (complete and not finished):
        return False
    if complete or finished:
        missing = unanswered(defn, merged)
        if missing:
            raise IncompleteScreening(missing)
    now = now or utcnow()
    response.answers = merged
    response.updated_at = now
    kind = EventKind.screening_updated
    if complete or finished:
        response.total = total(defn, merged)
        response.band = band(defn.tool, response.total)
        if finished:
            response.status = ResponseStatus.amended
        else:
            response.status = ResponseStatus.completed
            response.completed_by, response.completed_at = actor, now
            kind = EventKind.screening_completed
    session.add(response)
    session.flush()
    data: dict[str, Any] = {"screening_id": response.id, "tool": response.tool, "items": changed_items}
    if response.total is not None:
        data.update(status=response.status, total=response.total, band=response.band)
    record_event(session, case, actor=actor, kind=kind, data=data, at=now)
    if response.status != ResponseStatus.in_progress:
        enqueue_patients(session, case.source_id, [case.patient_fhir_id])
    return True


def completed_screenings(
    session: Session, source_id: int, encounter_fhir_ids: Iterable[str]
) -> dict[str, list[dict[str, Any]]]:
    """Completed or amended screenings per admission, as the risk core reads them (PatientRecord.screenings)."""
    ids = sorted(set(encounter_fhir_ids))
    if not ids:
        return {}
    query = (
        select(Case.encounter_fhir_id, ScreeningResponse)
        .join(Case, col(Case.id) == ScreeningResponse.case_id)
        .where(
            Case.source_id == source_id,
            col(Case.encounter_fhir_id).in_(ids),
            col(ScreeningResponse.status).in_([ResponseStatus.completed, ResponseStatus.amended]),
        )
        .order_by(col(ScreeningResponse.id))
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for encounter_id, response in session.exec(query):
        out.setdefault(encounter_id, []).append(
            {
                "id": response.id,
                "tool": str(response.tool),
                "total": response.total,
                "band": response.band,
                "evidence": f"QuestionnaireResponse/{response.id}",
                "version": response.version,
                "completed_at": response.completed_at.isoformat() if response.completed_at else None,
            }
        )
    return out
