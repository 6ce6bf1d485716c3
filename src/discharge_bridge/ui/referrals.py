"""The consent and referral forms of the case page: record or revoke a consent, send a referral
(``service_id``: the suggestions section posts here too), move one, tick its documents.

Each POST calls the same service as the API through the API's input schemas, then redirects back
to the case page (PRG). A refused submit (422, 409: a referral needing a consent there is not, a
move the table forbids, a stale version) shows the case page again with what was typed and the
message (``ui.case.CaseFormRoute``), never a 500.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import RedirectResponse

from discharge_bridge.cases.consent.errors import ConsentNotFound
from discharge_bridge.cases.consent.models import Consent
from discharge_bridge.cases.consent.schemas import ConsentIn, ConsentRevoke
from discharge_bridge.cases.consent.service import get_consent, record_consent, revoke_consent
from discharge_bridge.cases.errors import check_version
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.referrals.errors import ReferralNotFound
from discharge_bridge.cases.referrals.models import Referral
from discharge_bridge.cases.referrals.repository import get_referral
from discharge_bridge.cases.referrals.schemas import ReferralIn, ReferralPatch
from discharge_bridge.cases.referrals.service import create_referral, move_referral, tick_referral_document
from discharge_bridge.deps import SessionDep, require
from discharge_bridge.sources.service import list_sources
from discharge_bridge.ui.case import CaseFormRoute
from discharge_bridge.ui.case_common import Form, PageCase, back_to_case, local_datetime, text, validated, version_of
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Id

router = APIRouter(route_class=CaseFormRoute, include_in_schema=False)
Referrer = Annotated[Principal, Depends(require(Permission.refer))]
REFERRALS = "referrals"
CONSENT = "consent"


def _referral(session: SessionDep, case: Case, referral_id: int, principal: Principal) -> Referral:
    referral = get_referral(session, referral_id, source_ids=principal.scope)
    if referral is None or referral.case_id != case.id:
        raise ReferralNotFound(referral_id)
    return referral


def _consent(session: SessionDep, case: Case, consent_id: int, principal: Principal) -> Consent:
    consent = get_consent(session, consent_id, source_ids=principal.scope)
    if consent is None or (consent.source_id, consent.patient_fhir_id) != (case.source_id, case.patient_fhir_id):
        raise ConsentNotFound(consent_id)
    return consent


@router.post("/cases/{case_id}/referrals")
def referral_send(case: PageCase, session: SessionDep, principal: Referrer, form: Form) -> RedirectResponse:
    """Send a referral to the chosen service (a 409 page when the service needs a consent there is not)."""
    assert case.id is not None
    needs = [v for v in form.getlist("needs") if isinstance(v, str) and v]
    body = validated(
        ReferralIn, {"service_id": text(form, "service_id"), "needs": needs, "reason": text(form, "reason") or None}
    )
    create_referral(
        session, case, service_id=body.service_id, needs=list(body.needs), reason=body.reason, actor=principal.username
    )
    return back_to_case(case.id, "referral_sent", REFERRALS)


@router.post("/cases/{case_id}/referrals/{referral_id}/status")
def referral_move(
    case: PageCase, referral_id: Annotated[Id, Path()], session: SessionDep, principal: Referrer, form: Form
) -> RedirectResponse:
    assert case.id is not None
    referral = _referral(session, case, referral_id, principal)
    body = validated(
        ReferralPatch,
        {
            "status": text(form, "status"),
            "reason": text(form, "reason") or None,
            "proposed_date": text(form, "proposed_date") or None,
            "override_reason": text(form, "override_reason") or None,
            "version": version_of(form),
        },
    )
    move_referral(
        session,
        referral,
        body.status,
        actor=principal.username,
        reason=body.reason,
        proposed_date=body.proposed_date,
        expected_version=body.version,
        override_reason=body.override_reason,
    )
    return back_to_case(case.id, "referral_moved", REFERRALS)


@router.post("/cases/{case_id}/referrals/{referral_id}/documents")
def referral_documents(
    case: PageCase, referral_id: Annotated[Id, Path()], session: SessionDep, principal: Referrer, form: Form
) -> RedirectResponse:
    """The checklist as ticked on the page: each document ticked or not, for the version shown."""
    assert case.id is not None
    referral = _referral(session, case, referral_id, principal)
    check_version(f"referral {referral.id}", referral.version, version_of(form))
    ticked = {v for v in form.getlist("documents") if isinstance(v, str)}
    for code in [str(d["code"]) for d in referral.documents]:
        tick_referral_document(session, referral, code, code in ticked, actor=principal.username)
    return back_to_case(case.id, "referral_documents", REFERRALS)


@router.post("/cases/{case_id}/consents")
def consent_record(case: PageCase, session: SessionDep, principal: Referrer, form: Form) -> RedirectResponse:
    """Record a consent; "until" is a day in the hospital's zone, the consent running to its end."""
    assert case.id is not None
    timezone = list_sources(session, source_ids=[case.source_id])[0].timezone
    until = local_datetime(text(form, "valid_until"), timezone, "valid_until")
    values: dict[str, Any] = {
        "given_by": text(form, "given_by") or "patient",
        "given_by_name": text(form, "given_by_name") or None,
        "method": text(form, "method"),
        "witness": text(form, "witness") or None,
        "form_reference": text(form, "form_reference") or None,
        "organisation_ids": [v for v in form.getlist("organisation_ids") if isinstance(v, str) and v],
        "categories": [v for v in form.getlist("categories") if isinstance(v, str) and v],
        "valid_until": until + timedelta(days=1) if until is not None else None,
    }
    body = validated(ConsentIn, values)
    record_consent(session, case, body.model_dump(exclude_unset=True), actor=principal.username)
    return back_to_case(case.id, "consent_recorded", CONSENT)


@router.post("/cases/{case_id}/consents/{consent_id}/revoke")
def consent_revoke(
    case: PageCase, consent_id: Annotated[Id, Path()], session: SessionDep, principal: Referrer, form: Form
) -> RedirectResponse:
    assert case.id is not None
    consent = _consent(session, case, consent_id, principal)
    body = validated(ConsentRevoke, {"reason": text(form, "reason")})
    revoke_consent(session, consent, actor=principal.username, reason=body.reason)
    return back_to_case(case.id, "consent_revoked", CONSENT)
