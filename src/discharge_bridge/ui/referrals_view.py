"""The consent and referrals sections of the case page: the patient's consents to share with
organisations, and each referral with its status, dates, receiver, documents and the moves a
coordinator may make. ``referrals_section`` builds what ``templates/case/consent.html`` and
``templates/case/referrals.html`` need; the case page passes it as ``network``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from discharge_bridge.cases.consent.models import Consent, ConsentGiver, ConsentMethod, ConsentStatus
from discharge_bridge.cases.consent.service import consents_of
from discharge_bridge.cases.models import Case, CaseStatus
from discharge_bridge.cases.referrals.models import REFERRAL_TRANSITIONS, Referral, ReferralStatus
from discharge_bridge.cases.referrals.service import (
    NEEDS_REASON,
    documents_missing_for_completion,
    referrals_of_case,
    service_of,
    status_dates,
)
from discharge_bridge.deps import SessionDep
from discharge_bridge.directory.models import ServiceCategory
from discharge_bridge.directory.service import list_organisations, list_services
from discharge_bridge.sources.service import list_sources
from discharge_bridge.ui.referral_labels import network_label
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission


def _consent_row(consent: Consent, organisations: dict[int, str]) -> dict[str, Any]:
    return {
        "id": consent.id,
        "active": ConsentStatus(consent.status) == ConsentStatus.active,
        "status": network_label("consent_status", consent.status),
        "given_by": network_label("consent_giver", consent.given_by),
        "given_by_name": consent.given_by_name,
        "method": network_label("consent_method", consent.method),
        "witness": consent.witness,
        "form_reference": consent.form_reference,
        "organisations": [organisations.get(i, f"#{i}") for i in consent.organisation_ids],
        "categories": [network_label("category", c) for c in consent.categories],
        "valid_from": consent.valid_from,
        "valid_until": consent.valid_until,
        "recorded_by": consent.recorded_by,
        "recorded_at": consent.recorded_at,
        "revoked_by": consent.revoked_by,
        "revoked_at": consent.revoked_at,
        "revoke_reason": consent.revoke_reason,
    }


def _referral_row(session: SessionDep, referral: Referral) -> dict[str, Any]:
    service, organisation = service_of(session, referral)
    status = ReferralStatus(referral.status)
    needs_override = ReferralStatus.completed in REFERRAL_TRANSITIONS.moves(status) and bool(
        documents_missing_for_completion(session, referral)
    )
    return {
        "row": referral,
        "service": service.name,
        "organisation": organisation.name,
        "category": network_label("category", service.category),
        "status": status.value,
        "status_text": network_label("referral_status", status),
        "final": status in REFERRAL_TRANSITIONS.final,
        "dates": [(s, at) for s, at in status_dates(referral).items() if at is not None],
        "moves": [
            {"status": m.value, "text": network_label("referral_move", m), "reason": m in NEEDS_REASON}
            for m in REFERRAL_TRANSITIONS.moves(status)
        ],
        "needs_override": needs_override,
        "missing": [str(d["label"]) for d in referral.documents if not d.get("done")],
        "overdue": referral.answer_due_at is not None
        and status in (ReferralStatus.requested, ReferralStatus.received)
        and referral.reminder_task_id is not None,
    }


def referrals_section(session: SessionDep, case: Case, principal: Principal, now: datetime) -> dict[str, Any]:
    """Everything the two sections show, in the reader's language (set it first)."""
    assert case.id is not None
    timezone = list_sources(session, source_ids=[case.source_id])[0].timezone
    organisations = {o.id or 0: o.name for o in list_organisations(session)}
    consents = consents_of(session, case.source_id, case.patient_fhir_id)
    referrals = [_referral_row(session, r) for r in referrals_of_case(session, case.id)]
    can_refer = principal.can(Permission.refer)
    return {
        "case_id": case.id,
        "timezone": timezone,
        "consents": [_consent_row(c, organisations) for c in consents],
        "referrals": referrals,
        "open_count": sum(1 for r in referrals if not r["final"]),
        "can_consent": can_refer,
        "can_refer": can_refer and case.status == CaseStatus.open,
        "choices": {
            "organisations": sorted(
                ((o.id, o.name) for o in list_organisations(session, active_only=True)), key=lambda o: o[1]
            ),
            "services": [
                (s.id, f"{s.name} ({organisations.get(s.organisation_id, '')})") for s in list_services(session)
            ],
            "categories": [(c.value, network_label("category", c)) for c in ServiceCategory],
            "methods": [(m.value, network_label("consent_method", m)) for m in ConsentMethod],
            "givers": [(g.value, network_label("consent_giver", g)) for g in ConsentGiver],
        },
        "label": network_label,
        "now": now,
    }
