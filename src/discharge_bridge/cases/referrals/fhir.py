"""A referral as FHIR R4: the ServiceRequest (what is asked, of whom, for whom), the Task that
follows it (the Gravity SDOH referral pattern: the receiver moves the Task, the ServiceRequest
stays the order) and the Consent that allowed sharing.

Pure functions of the rows: no database, no HTTP. Organisations are named by our identifier
(``Organisation.code``), since most receivers have no FHIR server of their own to reference; the
patient and the encounter by the hospital source's ids.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from discharge_bridge.cases.consent.models import Consent, ConsentGiver, ConsentMethod, ConsentStatus
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.referrals.models import Referral, ReferralStatus
from discharge_bridge.directory.models import DirectoryService, Organisation

SYSTEM = "urn:discharge-bridge"
REFERRAL_SYSTEM = f"{SYSTEM}:referral"
CONSENT_SYSTEM = f"{SYSTEM}:consent"
ORGANISATION_SYSTEM = f"{SYSTEM}:organisation"
CATEGORY_SYSTEM = f"{SYSTEM}:service-category"
NEED_SYSTEM = f"{SYSTEM}:need-domain"
SOCIAL_CARE = {
    # SNOMED CT 410606002 "Social service procedure": the Gravity SDOH IG's category for a social-care referral.
    "coding": [{"system": "http://snomed.info/sct", "code": "410606002", "display": "Social service procedure"}],
    "text": "Social care",
}

# The ServiceRequest is the order: active while the Task runs, then completed or revoked.
REQUEST_STATUS = {
    ReferralStatus.completed: "completed",
    ReferralStatus.rejected: "revoked",
    ReferralStatus.cancelled: "revoked",
}

BUSINESS_STATUS = {
    ReferralStatus.requested: "Sent, waiting for the receiver",
    ReferralStatus.received: "Received by the receiver",
    ReferralStatus.accepted: "Accepted by the receiver",
    ReferralStatus.in_progress: "Help under way",
    ReferralStatus.completed: "Help delivered",
    ReferralStatus.rejected: "Declined by the receiver",
    ReferralStatus.cancelled: "Cancelled",
}

CONSENT_METHOD = {
    ConsentMethod.signed_form: "signed form",
    ConsentMethod.verbal_witnessed: "verbal, with a witness",
    ConsentMethod.guardian_signed: "signed by the guardian",
}


def _instant(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _drop_none(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if v not in (None, [], {})}


def full_url(resource_type: str, resource_id: str) -> str:
    """A stable urn:uuid per resource, so the Bundle's references resolve inside it."""
    return f"urn:uuid:{uuid5(NAMESPACE_URL, f'{SYSTEM}/{resource_type}/{resource_id}')}"


def organisation_ref(organisation: Organisation) -> dict[str, Any]:
    return {
        "type": "Organization",
        "identifier": {"system": ORGANISATION_SYSTEM, "value": organisation.code},
        "display": organisation.name,
    }


def _patient(case: Case) -> dict[str, Any]:
    return {"reference": f"Patient/{case.patient_fhir_id}"}


def service_request(
    referral: Referral, case: Case, service: DirectoryService, organisation: Organisation, consent: Consent | None
) -> dict[str, Any]:
    status = ReferralStatus(referral.status)
    supporting = [{"reference": full_url("Consent", f"consent-{consent.id}")}] if consent else []
    return _drop_none(
        {
            "resourceType": "ServiceRequest",
            "id": f"referral-{referral.id}",
            "identifier": [{"system": REFERRAL_SYSTEM, "value": str(referral.id)}],
            "status": REQUEST_STATUS.get(status, "active"),
            "intent": "order",
            "category": [SOCIAL_CARE],
            "code": {"coding": [{"system": CATEGORY_SYSTEM, "code": str(service.category)}], "text": service.name},
            "subject": _patient(case),
            "encounter": {"reference": f"Encounter/{case.encounter_fhir_id}"},
            "authoredOn": _instant(referral.requested_at),
            "requester": {"display": referral.created_by},
            "performer": [organisation_ref(organisation)],
            "reasonCode": [{"coding": [{"system": NEED_SYSTEM, "code": need}]} for need in referral.needs],
            "note": [{"text": referral.reason}] if referral.reason else [],
            "supportingInfo": supporting,
        }
    )


def task(referral: Referral, case: Case, organisation: Organisation) -> dict[str, Any]:
    status = ReferralStatus(referral.status)
    documents = [
        {
            "type": {"coding": [{"system": f"{SYSTEM}:document", "code": str(d["code"])}], "text": str(d["label"])},
            "valueBoolean": bool(d.get("done")),
        }
        for d in referral.documents
    ]
    return _drop_none(
        {
            "resourceType": "Task",
            "id": f"referral-task-{referral.id}",
            "identifier": [{"system": f"{REFERRAL_SYSTEM}-task", "value": str(referral.id)}],
            "basedOn": [{"reference": full_url("ServiceRequest", f"referral-{referral.id}")}],
            "status": status.value,  # our statuses are FHIR Task status codes
            "businessStatus": {"text": BUSINESS_STATUS[status]},
            "statusReason": {"text": referral.status_reason} if referral.status_reason else None,
            "intent": "order",
            "code": {
                "coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}],
            },
            "focus": {"reference": full_url("ServiceRequest", f"referral-{referral.id}")},
            "for": _patient(case),
            "encounter": {"reference": f"Encounter/{case.encounter_fhir_id}"},
            "authoredOn": _instant(referral.requested_at),
            "lastModified": _instant(referral.updated_at),
            "owner": organisation_ref(organisation),
            "restriction": {"period": {"end": _instant(referral.answer_due_at)}} if referral.answer_due_at else None,
            "input": documents,
        }
    )


def consent_resource(consent: Consent, organisations: dict[int, Organisation] | None = None) -> dict[str, Any]:
    """The Consent (R4): who agreed (the patient, or the guardian / representative as performer),
    to share with which organisations (provision.actor) or kinds of service (provision.code), when."""
    organisations = organisations or {}
    actors = [
        {
            "role": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]
            },
            "reference": organisation_ref(organisations[i])
            if i in organisations
            else {"identifier": {"system": f"{ORGANISATION_SYSTEM}-id", "value": str(i)}},
        }
        for i in consent.organisation_ids
    ]
    patient = {"reference": f"Patient/{consent.patient_fhir_id}"}
    performer = (
        patient
        if ConsentGiver(consent.given_by) == ConsentGiver.patient and not consent.given_by_name
        else {"display": f"{consent.given_by}: {consent.given_by_name or ''}".strip(": ")}
    )
    return _drop_none(
        {
            "resourceType": "Consent",
            "id": f"consent-{consent.id}",
            "identifier": [{"system": CONSENT_SYSTEM, "value": str(consent.id)}],
            "status": "active" if ConsentStatus(consent.status) == ConsentStatus.active else "inactive",
            "scope": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]
            },
            "category": [
                {"coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}]},
                {"text": CONSENT_METHOD[ConsentMethod(consent.method)]},
            ],
            "patient": patient,
            "dateTime": _instant(consent.recorded_at),
            "performer": [performer],
            "sourceAttachment": {"title": consent.form_reference} if consent.form_reference else None,
            "provision": _drop_none(
                {
                    "type": "permit",
                    "period": _drop_none(
                        {
                            "start": _instant(consent.valid_from),
                            "end": _instant(consent.revoked_at or consent.valid_until),
                        }
                    ),
                    "actor": actors,
                    "code": [{"coding": [{"system": CATEGORY_SYSTEM, "code": c}]} for c in consent.categories],
                }
            ),
        }
    )


def referral_bundle(
    referral: Referral,
    case: Case,
    service: DirectoryService,
    organisation: Organisation,
    consent: Consent | None,
) -> dict[str, Any]:
    """A collection Bundle: the ServiceRequest, its Task and (when stored) the covering Consent."""
    resources = [service_request(referral, case, service, organisation, consent), task(referral, case, organisation)]
    if consent is not None:
        consent_orgs = {organisation.id: organisation} if organisation.id is not None else {}
        resources.append(consent_resource(consent, consent_orgs))
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": full_url(r["resourceType"], r["id"]), "resource": r} for r in resources],
    }
