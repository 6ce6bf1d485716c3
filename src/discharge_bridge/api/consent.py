"""Consents of a case's patient: list and record; revoke one (the row stays, inactive)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from discharge_bridge.cases.consent.errors import ConsentNotFound
from discharge_bridge.cases.consent.models import Consent
from discharge_bridge.cases.consent.schemas import ConsentIn, ConsentOut, ConsentRevoke
from discharge_bridge.cases.consent.service import consents_of, get_consent, record_consent, revoke_consent
from discharge_bridge.deps import (
    Actor,
    CurrentCase,
    CurrentPrincipal,
    SessionDep,
    SourceScope,
    log_view,
    require_by_method,
)
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Id

router = APIRouter(
    prefix="/api/v1",
    tags=["consent"],
    dependencies=[Depends(require_by_method(Permission.read_cases, Permission.refer))],
)


def get_consent_or_404(consent_id: Annotated[Id, Path()], session: SessionDep, scope: SourceScope) -> Consent:
    consent = get_consent(session, consent_id, source_ids=scope)
    if consent is None:
        raise ConsentNotFound(consent_id)
    return consent


CurrentConsent = Annotated[Consent, Depends(get_consent_or_404)]
LIST_ROUTE = "api.consents"


def consent_out(session: SessionDep, consent: Consent) -> ConsentOut:
    session.flush()
    return ConsentOut.model_validate(consent, from_attributes=True)


@router.get("/cases/{case_id}/consents", response_model=list[ConsentOut])
def consents_index(case: CurrentCase, session: SessionDep, principal: CurrentPrincipal) -> list[ConsentOut]:
    """Every consent of the case's patient (from this and earlier admissions), newest first, revoked
    ones too. They name the guardian or witness: the view is written to the access log."""
    consents = consents_of(session, case.source_id, case.patient_fhir_id)
    if consents:
        log_view(session, principal, LIST_ROUTE, [(case.source_id, case.patient_fhir_id)])
    return [consent_out(session, c) for c in consents]


@router.post("/cases/{case_id}/consents", response_model=ConsentOut, status_code=201)
def consents_add(case: CurrentCase, body: ConsentIn, session: SessionDep, actor: Actor) -> ConsentOut:
    """Record who agreed to share the patient's data with which organisations or kinds of service,
    how, and until when. Verbal consent needs a `witness`; a guardian or representative needs
    `given_by_name`; at least one of `organisation_ids` and `categories` (422 naming the field)."""
    consent = record_consent(session, case, body.model_dump(exclude_unset=True), actor=actor)
    return consent_out(session, consent)


@router.post(
    "/consents/{consent_id}/revoke",
    response_model=ConsentOut,
    responses={409: {"description": "Already revoked."}},
)
def consent_revoke(consent: CurrentConsent, body: ConsentRevoke, session: SessionDep, actor: Actor) -> ConsentOut:
    """Revoke from now on: referrals not yet sent need another consent, and the receivers' portal
    stops showing the referrals it covered."""
    return consent_out(session, revoke_consent(session, consent, actor=actor, reason=body.reason))
