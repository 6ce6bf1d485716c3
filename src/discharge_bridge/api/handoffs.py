"""Handoffs of a case: list and propose; read and change one (If-Match required)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from discharge_bridge.cases.errors import NotFound
from discharge_bridge.cases.handoffs.models import HANDOFF_TRANSITIONS, Handoff
from discharge_bridge.cases.handoffs.repository import list_handoffs
from discharge_bridge.cases.handoffs.schemas import HandoffIn, HandoffOut, HandoffPatch
from discharge_bridge.cases.handoffs.service import create_handoff, documents_complete, status_dates, update_handoff
from discharge_bridge.cases.repository import get_child
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
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Id

router = APIRouter(
    prefix="/api/v1",
    tags=["handoffs"],
    dependencies=[Depends(require_by_method(Permission.read_cases, Permission.coordinate))],
)


def get_handoff_or_404(handoff_id: Annotated[Id, Path()], session: SessionDep, scope: SourceScope) -> Handoff:
    handoff = get_child(session, Handoff, handoff_id, source_ids=scope)
    if handoff is None:
        raise NotFound("handoff", handoff_id)
    return handoff


CurrentHandoff = Annotated[Handoff, Depends(get_handoff_or_404)]


def _view(session: SessionDep, handoff: Handoff, response: Response | None = None) -> HandoffOut:
    session.flush()
    assert handoff.id is not None
    if response is not None:
        set_etag(response, handoff.version)
    return HandoffOut(
        id=handoff.id,
        case_id=handoff.case_id,
        destination_type=handoff.destination_type,
        organisation=handoff.organisation,
        status=handoff.status,
        allowed_transitions=HANDOFF_TRANSITIONS.allowed(handoff.status),
        scheduled_for=handoff.scheduled_for,
        note=handoff.note,
        documents=handoff.documents,  # type: ignore[arg-type]
        documents_complete=documents_complete(handoff),
        documents_override=handoff.documents_override,  # type: ignore[arg-type]
        status_dates=status_dates(handoff),
        created_by=handoff.created_by,
        updated_at=handoff.updated_at,
        version=handoff.version,
    )


@router.get("/cases/{case_id}/handoffs", response_model=list[HandoffOut])
def handoffs_index(case: CurrentCase, session: SessionDep) -> list[HandoffOut]:
    assert case.id is not None
    return [_view(session, h) for h in list_handoffs(session, case.id)]


@router.post("/cases/{case_id}/handoffs", response_model=HandoffOut, status_code=201)
def handoffs_add(
    case: CurrentCase, body: HandoffIn, session: SessionDep, settings: SettingsDep, response: Response, actor: Actor
) -> HandoffOut:
    """Propose a destination; its documents checklist comes from mappings/handoff_documents.yaml."""
    handoff = create_handoff(
        session,
        case,
        actor=actor,
        destination_type=body.destination_type,
        mappings_dir=settings.mappings_dir,
        organisation=body.organisation,
        scheduled_for=body.scheduled_for,
        note=body.note,
    )
    return _view(session, handoff, response)


@router.get("/handoffs/{handoff_id}", response_model=HandoffOut)
def handoff_get(handoff: CurrentHandoff, session: SessionDep, response: Response) -> HandoffOut:
    return _view(session, handoff, response)


@router.patch(
    "/handoffs/{handoff_id}",
    response_model=HandoffOut,
    responses={
        409: {
            "description": "Stale version (`current_version`), forbidden transition (`allowed`), closed case, "
            "completion with documents missing and no `override_reason` (`missing`)."
        },
        428: {"description": "Neither If-Match nor `version` was sent."},
    },
)
def handoff_patch(
    handoff: CurrentHandoff,
    body: HandoffPatch,
    session: SessionDep,
    response: Response,
    actor: Actor,
    if_match: IfMatch,
) -> HandoffOut:
    """Move the status (stamping when), set organisation / time / note, tick documents by code.

    Completing needs every document of the checklist ticked, or `override_reason` (else 409 with
    `missing`). Completing the handoff of a patient already discharged closes the case.
    """
    expected = expected_version(f"handoff {handoff.id}", if_match, body.version, required=True)
    values = {f: getattr(body, f) for f in body.model_fields_set - {"version", "documents"}}
    update_handoff(
        session,
        case_of(session, handoff.case_id),
        handoff,
        actor=actor,
        expected_version=expected,
        documents=body.documents,
        **values,
    )
    return _view(session, handoff, response)
