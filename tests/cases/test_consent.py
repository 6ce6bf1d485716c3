"""Consent before sharing: recording checks its rules, revoking keeps the row, and which consent
covers a referral (active, in its period, naming the organisation or the category)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from discharge_bridge.cases.consent.errors import ConsentAlreadyRevoked
from discharge_bridge.cases.consent.models import ConsentStatus
from discharge_bridge.cases.consent.service import consents_of, covering_consent, record_consent, revoke_consent
from discharge_bridge.cases.errors import InvalidInput
from discharge_bridge.cases.events import EventKind
from discharge_bridge.cases.models import CaseEvent
from discharge_bridge.db import session_scope
from discharge_bridge.directory.models import ServiceCategory
from tests.cases.referral_support import make_service
from tests.support.factories import flagged_case, make_source

NOW = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"method": "verbal_witnessed", "categories": ["home_care"]}, "witness"),
        ({"method": "guardian_signed", "categories": ["home_care"]}, "given_by_name"),
        ({"method": "signed_form", "given_by": "representative", "categories": ["home_care"]}, "given_by_name"),
        ({"method": "signed_form"}, "organisation_ids"),
        ({"categories": ["home_care"]}, "method"),
        (
            {"method": "signed_form", "categories": ["home_care"], "valid_from": NOW, "valid_until": NOW},
            "valid_until",
        ),
    ],
)
def test_recording_refuses_an_incomplete_consent_naming_the_field(
    engine: Engine, values: dict[str, object], field: str
) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        with pytest.raises(InvalidInput) as refused:
            record_consent(session, case, values, actor="anna")
        assert refused.value.loc == ("body", field)


@pytest.mark.clock
def test_a_consent_covers_its_organisations_and_categories_while_active(engine: Engine) -> None:
    with time_machine.travel(NOW, tick=False), session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        org = make_service(session, "lawyers", ServiceCategory.legal_aid).organisation_id
        consent = record_consent(
            session,
            case,
            {
                "method": "verbal_witnessed",
                "witness": "Nurse Petrova",
                "organisation_ids": [org],
                "categories": ["charity"],
                "valid_until": NOW + timedelta(days=30),
            },
            actor="anna",
        )
        assert (consent.status, consent.valid_from, consent.recorded_by) == (ConsentStatus.active, NOW, "anna")

        def cover(organisation_id: int, category: str, at: datetime) -> int | None:
            found = covering_consent(
                session,
                source_id=case.source_id,
                patient_fhir_id=case.patient_fhir_id,
                organisation_id=organisation_id,
                category=category,
                at=at,
            )
            return found.id if found else None

        assert cover(org, "home_care", NOW) == consent.id  # by organisation
        assert cover(99, "charity", NOW + timedelta(days=29)) == consent.id  # by category
        assert cover(99, "home_care", NOW) is None  # neither
        assert cover(org, "home_care", NOW - timedelta(seconds=1)) is None  # before it was given
        assert cover(org, "home_care", NOW + timedelta(days=30)) is None  # ended
        assert (
            covering_consent(
                session,
                source_id=case.source_id,
                patient_fhir_id="someone-else",
                organisation_id=org,
                category="charity",
                at=NOW,
            )
            is None
        )

        revoke_consent(session, consent, actor="boris", reason="the patient changed their mind")
        assert cover(org, "home_care", NOW) is None
        kept = consents_of(session, case.source_id, case.patient_fhir_id)
        assert [(c.id, c.status, c.revoked_by, c.revoked_at, c.revoke_reason) for c in kept] == [
            (consent.id, ConsentStatus.inactive, "boris", NOW, "the patient changed their mind")
        ]
        with pytest.raises(ConsentAlreadyRevoked):
            revoke_consent(session, consent, actor="boris", reason="again")
        events = session.exec(
            select(CaseEvent).where(col(CaseEvent.kind).in_(["consent_recorded", "consent_revoked"]))
        ).all()
        assert [(e.kind, e.actor) for e in events] == [
            (EventKind.consent_recorded, "anna"),
            (EventKind.consent_revoked, "boris"),
        ]
        recorded = events[0].data
        assert recorded["method"] == "verbal_witnessed" and recorded["categories"] == ["charity"]
        assert "Nurse Petrova" not in str([e.data for e in events])  # no names in the log


def test_revoking_needs_a_reason(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        consent = record_consent(session, case, {"method": "signed_form", "categories": ["legal_aid"]}, actor="anna")
        with pytest.raises(InvalidInput) as refused:
            revoke_consent(session, consent, actor="anna", reason="  ")
        assert refused.value.loc == ("body", "reason") and consent.status == ConsentStatus.active


def test_a_consent_names_only_organisations_of_the_directory(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        with pytest.raises(InvalidInput) as refused:
            record_consent(session, case, {"method": "signed_form", "organisation_ids": [9999]}, actor="anna")
        assert refused.value.loc == ("body", "organisation_ids") and "9999" in refused.value.message
