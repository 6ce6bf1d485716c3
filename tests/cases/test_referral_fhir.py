"""The referral's FHIR shape: ServiceRequest, Task and Consent valid against the R4B models, with
the Gravity pattern's links (Task.focus -> ServiceRequest, owner = the receiving Organization)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent as FhirConsent
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task as FhirTask
from sqlalchemy.engine import Engine

from discharge_bridge.cases.consent.service import record_consent, revoke_consent
from discharge_bridge.cases.referrals.fhir import ORGANISATION_SYSTEM, consent_resource, referral_bundle
from discharge_bridge.cases.referrals.models import ReferralStatus
from discharge_bridge.cases.referrals.service import create_referral, move_referral, service_of
from discharge_bridge.db import session_scope
from discharge_bridge.directory.models import ServiceCategory
from tests.cases.referral_support import make_service
from tests.support.factories import flagged_case, make_source

NOW = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)


def test_the_bundle_holds_a_valid_service_request_task_and_consent(engine: Engine) -> None:
    with time_machine.travel(NOW, tick=False), session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        service = make_service(session, "home-care", ServiceCategory.home_care, response_days=2)
        consent = record_consent(
            session,
            case,
            {
                "method": "guardian_signed",
                "given_by": "guardian",
                "given_by_name": "I. Ivanova",
                "form_reference": "form 12/2026",
                "organisation_ids": [service.organisation_id],
                "valid_until": NOW + timedelta(days=90),
            },
            actor="anna",
        )
        referral = create_referral(
            session, case, service_id=service.id or 0, needs=["daily_living"], reason="help at home", actor="anna"
        )
        move_referral(session, referral, ReferralStatus.rejected, actor="org", reason="outside our area")
        svc, organisation = service_of(session, referral)
        bundle = referral_bundle(referral, case, svc, organisation, consent)

        Bundle.model_validate(bundle)
        request, task, shared = (e["resource"] for e in bundle["entry"])
        ServiceRequest.model_validate(request)
        FhirTask.model_validate(task)
        FhirConsent.model_validate(shared)
        urls = {e["resource"]["resourceType"]: e["fullUrl"] for e in bundle["entry"]}

        assert request["status"] == "revoked" and request["intent"] == "order"
        assert request["subject"] == {"reference": "Patient/p1"} and request["encounter"] == {
            "reference": "Encounter/adm1"
        }
        assert request["code"]["coding"][0]["code"] == "home_care"
        assert request["category"][0]["coding"][0]["code"] == "410606002"
        assert request["performer"][0]["identifier"] == {"system": ORGANISATION_SYSTEM, "value": "org-home-care"}
        assert request["reasonCode"][0]["coding"][0]["code"] == "daily_living"
        assert request["supportingInfo"] == [{"reference": urls["Consent"]}]

        assert (task["status"], task["statusReason"]["text"]) == ("rejected", "outside our area")
        assert task["focus"] == {"reference": urls["ServiceRequest"]} and task["for"] == {"reference": "Patient/p1"}
        assert task["owner"]["identifier"]["value"] == "org-home-care"
        assert task["restriction"]["period"]["end"] == (NOW + timedelta(days=2)).isoformat()
        assert [i["type"]["coding"][0]["code"] for i in task["input"]] == ["passport", "snils"]

        assert (shared["status"], shared["scope"]["coding"][0]["code"]) == ("active", "patient-privacy")
        assert shared["patient"] == {"reference": "Patient/p1"} and shared["dateTime"] == NOW.isoformat()
        assert shared["performer"] == [{"display": "guardian: I. Ivanova"}]
        assert shared["sourceAttachment"] == {"title": "form 12/2026"}
        assert shared["provision"]["period"] == {
            "start": NOW.isoformat(),
            "end": (NOW + timedelta(days=90)).isoformat(),
        }
        assert shared["provision"]["actor"][0]["reference"]["identifier"]["value"] == "org-home-care"

        revoke_consent(session, consent, actor="anna", reason="the guardian withdrew it")
        revoked = consent_resource(consent)
        FhirConsent.model_validate(revoked)
        assert revoked["status"] == "inactive" and revoked["provision"]["period"]["end"] == NOW.isoformat()


def test_a_consent_by_category_names_the_categories_and_the_patient_as_performer(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        consent = record_consent(
            session, case, {"method": "signed_form", "categories": ["charity", "legal_aid"]}, actor="a"
        )
        resource = consent_resource(consent)
        FhirConsent.model_validate(resource)
        assert resource["performer"] == [{"reference": "Patient/p1"}]
        assert [c["coding"][0]["code"] for c in resource["provision"]["code"]] == ["charity", "legal_aid"]
        assert "actor" not in resource["provision"] and "sourceAttachment" not in resource
