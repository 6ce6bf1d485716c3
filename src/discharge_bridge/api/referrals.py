"""Referrals of a case: list and send; read one, move it (If-Match required), tick its documents;
its FHIR shape (ServiceRequest, Task and Consent in a Bundle)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from discharge_bridge.cases.consent.models import Consent
from discharge_bridge.cases.referrals.errors import ReferralNotFound
from discharge_bridge.cases.referrals.fhir import referral_bundle
from discharge_bridge.cases.referrals.models import REFERRAL_TRANSITIONS, Referral
from discharge_bridge.cases.referrals.repository import get_referral
from discharge_bridge.cases.referrals.schemas import DocumentTick, ReferralIn, ReferralOut, ReferralPatch
from discharge_bridge.cases.referrals.service import (
    create_referral,
    move_referral,
    referrals_of_case,
    service_of,
    status_dates,
    tick_referral_document,
)
from discharge_bridge.deps import (
    Actor,
    CurrentCase,
    CurrentPrincipal,
    IfMatch,
    SessionDep,
    SourceScope,
    case_of,
    expected_version,
    log_view,
    require_by_method,
    set_etag,
)
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Id, Key

router = APIRouter(
    prefix="/api/v1",
    tags=["referrals"],
    dependencies=[Depends(require_by_method(Permission.read_cases, Permission.refer))],
)

CONFLICTS: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "Stale version (`current_version`), forbidden move (`allowed`), closed case, no consent "
        "covering the receiver (`consent_required`), a destination referral completed with its documents "
        "missing and no `override_reason` (`missing`)."
    },
}


def get_referral_or_404(referral_id: Annotated[Id, Path()], session: SessionDep, scope: SourceScope) -> Referral:
    referral = get_referral(session, referral_id, source_ids=scope)
    if referral is None:
        raise ReferralNotFound(referral_id)
    return referral


CurrentReferral = Annotated[Referral, Depends(get_referral_or_404)]


def referral_out(session: SessionDep, referral: Referral, response: Response | None = None) -> ReferralOut:
    session.flush()
    assert referral.id is not None
    if response is not None:
        set_etag(response, referral.version)
    service, organisation = service_of(session, referral)
    return ReferralOut(
        id=referral.id,
        case_id=referral.case_id,
        service_id=referral.service_id,
        service_name=service.name,
        category=str(service.category),
        organisation_id=referral.organisation_id,
        organisation_name=organisation.name,
        status=referral.status,
        allowed_transitions=REFERRAL_TRANSITIONS.allowed(referral.status),
        status_reason=referral.status_reason,
        reason=referral.reason,
        needs=referral.needs,
        documents=referral.documents,  # type: ignore[arg-type]
        consent_id=referral.consent_id,
        handoff_id=referral.handoff_id,
        proposed_date=referral.proposed_date,
        status_dates=status_dates(referral),
        answer_due_at=referral.answer_due_at,
        reminder_task_id=referral.reminder_task_id,
        created_by=referral.created_by,
        updated_at=referral.updated_at,
        version=referral.version,
    )


@router.get("/cases/{case_id}/referrals", response_model=list[ReferralOut])
def referrals_index(case: CurrentCase, session: SessionDep) -> list[ReferralOut]:
    assert case.id is not None
    return [referral_out(session, r) for r in referrals_of_case(session, case.id)]


@router.post("/cases/{case_id}/referrals", response_model=ReferralOut, status_code=201, responses=CONFLICTS)
def referrals_add(
    case: CurrentCase, body: ReferralIn, session: SessionDep, response: Response, actor: Actor
) -> ReferralOut:
    """Refer the patient to a directory service: its documents checklist is copied, an answer is due
    after the service's response days. A service that requires consent needs a recorded consent
    naming its organisation or category (409 with `consent_required` otherwise). A discharge
    destination's referral opens the case's handoff at `referred`."""
    referral = create_referral(
        session, case, service_id=body.service_id, needs=list(body.needs), reason=body.reason, actor=actor
    )
    return referral_out(session, referral, response)


@router.get("/referrals/{referral_id}", response_model=ReferralOut)
def referral_get(referral: CurrentReferral, session: SessionDep, response: Response) -> ReferralOut:
    return referral_out(session, referral, response)


@router.patch(
    "/referrals/{referral_id}",
    response_model=ReferralOut,
    responses={**CONFLICTS, 428: {"description": "Neither If-Match nor `version` was sent."}},
)
def referral_patch(
    referral: CurrentReferral,
    body: ReferralPatch,
    session: SessionDep,
    response: Response,
    actor: Actor,
    if_match: IfMatch,
) -> ReferralOut:
    """Move the status (stamping when; `reason` required for rejected and cancelled), or keep it and
    set the `proposed_date`. A destination referral moves its handoff; completing it frees the bed."""
    expected = expected_version(f"referral {referral.id}", if_match, body.version, required=True)
    move_referral(
        session,
        referral,
        body.status,
        actor=actor,
        reason=body.reason,
        proposed_date=body.proposed_date,
        expected_version=expected,
        override_reason=body.override_reason,
    )
    return referral_out(session, referral, response)


@router.post("/referrals/{referral_id}/documents/{code}", response_model=ReferralOut)
def referral_document(
    referral: CurrentReferral,
    code: Annotated[Key, Path(description="The document's code in the referral's checklist.")],
    session: SessionDep,
    response: Response,
    actor: Actor,
    body: DocumentTick | None = None,
) -> ReferralOut:
    """Tick (`{"done": true}`, the default) or untick a document of the checklist; unknown codes are a 422."""
    tick_referral_document(session, referral, code, body.done if body else True, actor=actor)
    return referral_out(session, referral, response)


@router.get("/referrals/{referral_id}/fhir", response_model=dict[str, Any])
def referral_fhir(referral: CurrentReferral, session: SessionDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """The referral as FHIR R4: a collection Bundle of its ServiceRequest, its Task and (when one
    covered it) the Consent. It names the patient: the view is written to the access log."""
    case = case_of(session, referral.case_id)
    service, organisation = service_of(session, referral)
    consent = session.get(Consent, referral.consent_id) if referral.consent_id else None
    log_view(session, principal, "api.referral_fhir", [(case.source_id, case.patient_fhir_id)])
    return referral_bundle(referral, case, service, organisation, consent)
