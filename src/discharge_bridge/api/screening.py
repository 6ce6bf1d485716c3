"""BRASS and ISAR screenings of a case: start (pre-filled), read, answer and complete (If-Match), FHIR."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from discharge_bridge.cases.screening.fhir import questionnaire_response, screening_view
from discharge_bridge.cases.screening.models import ScreeningResponse
from discharge_bridge.cases.screening.schemas import ScreeningOut, ScreeningPatch, ScreeningStart
from discharge_bridge.cases.screening.service import get_screening, list_screenings, start_screening, update_screening
from discharge_bridge.deps import (
    Actor,
    CurrentCase,
    IfMatch,
    SessionDep,
    SettingsDep,
    SourceScope,
    case_of,
    expected_version,
    require_by_method,
    set_etag,
)
from discharge_bridge.risk.screening import definition
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Id

router = APIRouter(
    prefix="/api/v1",
    tags=["screenings"],
    dependencies=[Depends(require_by_method(Permission.read_cases, Permission.coordinate))],
)


def _screening_or_404(
    screening_id: Annotated[Id, Path()], session: SessionDep, scope: SourceScope
) -> ScreeningResponse:
    return get_screening(session, screening_id, source_ids=scope)


CurrentScreening = Annotated[ScreeningResponse, Depends(_screening_or_404)]


@router.get("/cases/{case_id}/screenings", response_model=list[ScreeningOut])
def screenings_index(case: CurrentCase, session: SessionDep, settings: SettingsDep) -> list[ScreeningOut]:
    """The case's BRASS and ISAR screenings, oldest first."""
    assert case.id is not None
    return [screening_view(r, definition(r.tool, settings.mappings_dir)) for r in list_screenings(session, case.id)]


@router.post("/cases/{case_id}/screenings", response_model=ScreeningOut, status_code=201)
def screenings_start(
    case: CurrentCase,
    body: ScreeningStart,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    actor: Actor,
) -> ScreeningOut:
    """Start a screening, pre-filled from the data (each suggestion with its evidence); 409 if one of
    the same tool is in progress."""
    created = start_screening(session, case, body.tool, actor=actor, mappings_dir=settings.mappings_dir)
    set_etag(response, created.version)
    return screening_view(created, definition(created.tool, settings.mappings_dir))


@router.get("/screenings/{screening_id}", response_model=ScreeningOut)
def screening_get(screening: CurrentScreening, settings: SettingsDep, response: Response) -> ScreeningOut:
    set_etag(response, screening.version)
    return screening_view(screening, definition(screening.tool, settings.mappings_dir))


@router.patch("/screenings/{screening_id}", response_model=ScreeningOut)
def screening_patch(
    screening: CurrentScreening,
    body: ScreeningPatch,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    actor: Actor,
    if_match: IfMatch,
) -> ScreeningOut:
    """Answer items and/or complete; a completed screening edited becomes amended. If-Match (or
    ``version``) required: 428 without, 409 when stale; 422 names the item (``body.answers.<linkId>``)."""
    expected = expected_version("screening", if_match, body.version, required=True)
    update_screening(
        session,
        case_of(session, screening.case_id),
        screening,
        actor=actor,
        mappings_dir=settings.mappings_dir,
        answers=dict(body.answers),
        complete=body.complete,
        expected_version=expected,
    )
    session.flush()
    set_etag(response, screening.version)
    return screening_view(screening, definition(screening.tool, settings.mappings_dir))


@router.get("/screenings/{screening_id}/fhir")
def screening_fhir(screening: CurrentScreening, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """The screening as a FHIR R4 QuestionnaireResponse."""
    case = case_of(session, screening.case_id)
    return questionnaire_response(
        screening,
        definition(screening.tool, settings.mappings_dir),
        patient_ref=f"Patient/{case.patient_fhir_id}",
        encounter_ref=f"Encounter/{case.encounter_fhir_id}",
    )
