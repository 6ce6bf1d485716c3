"""Receivers with a FHIR server: the referral goes to the SEKMET simulator as a ServiceRequest and a
Task (conditional create: never twice), and the receiver's answers on the Task come back as moves
made by ``fhir:<organisation code>``."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from discharge_bridge.cases.consent.service import record_consent
from discharge_bridge.cases.events import EventKind
from discharge_bridge.cases.models import CaseEvent
from discharge_bridge.cases.referrals.models import Referral, ReferralStatus
from discharge_bridge.cases.referrals.remote import sync_remote_referrals
from discharge_bridge.cases.referrals.service import create_referral, move_referral
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.directory.models import Organisation, ServiceCategory
from discharge_bridge.scheduling.jobs import escalation_job
from tests.cases.referral_support import make_service
from tests.support.factories import flagged_case, make_source
from tests.support.sekmet import SekmetServer

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)]


def _referral(engine: Engine) -> Referral:
    with session_scope(engine) as session:
        return session.exec(select(Referral)).one()


def test_a_referral_is_sent_to_the_receivers_fhir_server_and_its_answers_come_back(
    engine: Engine, settings: Settings, sekmet: SekmetServer
) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        service = make_service(session, "lawyers", ServiceCategory.legal_aid)
        organisation = session.get(Organisation, service.organisation_id)
        assert organisation is not None
        organisation.fhir_base_url = sekmet.base_url
        record_consent(session, case, {"method": "signed_form", "categories": ["legal_aid"]}, actor="anna")
        create_referral(session, case, service_id=service.id or 0, needs=["legal"], reason="pension", actor="anna")

    assert sync_remote_referrals(settings).sent == 1
    referral = _referral(engine)
    assert referral.remote_service_request_id and referral.remote_task_id
    remote_task = sekmet.get(f"Task/{referral.remote_task_id}")
    assert remote_task["status"] == "requested"
    assert remote_task["focus"] == {"reference": f"ServiceRequest/{referral.remote_service_request_id}"}
    assert remote_task["owner"]["identifier"]["value"] == "org-lawyers"
    remote_request = sekmet.get(f"ServiceRequest/{referral.remote_service_request_id}")
    assert remote_request["code"]["coding"][0]["code"] == "legal_aid" and remote_request["subject"] == {
        "reference": "Patient/p1"
    }

    # Sent once: a run with nothing new sends and changes nothing, and a lost commit would find the same ids.
    again = sync_remote_referrals(settings)
    assert (again.sent, again.updated, again.failed) == (0, 0, 0)
    found = sekmet.get("ServiceRequest", identifier=f"urn:discharge-bridge:referral|{referral.id}")
    assert found["total"] == 1

    def answer(status: str, **extra: Any) -> None:
        current = sekmet.get(f"Task/{referral.remote_task_id}")
        sekmet.put({**current, "status": status, **extra})

    # The receiver starts straight away: requested -> accepted -> in-progress, with its proposed date.
    answer("in-progress", executionPeriod={"start": "2026-11-20"})
    assert sync_remote_referrals(settings).updated == 1
    referral = _referral(engine)
    assert referral.status == ReferralStatus.in_progress and str(referral.proposed_date) == "2026-11-20"
    assert referral.accepted_at is not None

    answer("completed")
    escalation_job(settings)  # the scheduler's job runs the exchange
    assert _referral(engine).status == ReferralStatus.completed
    with session_scope(engine) as session:
        moves = session.exec(
            select(CaseEvent).where(CaseEvent.kind == EventKind.referral_updated).order_by(col(CaseEvent.id))
        ).all()
    assert [(e.actor, e.data["status"]) for e in moves] == [
        ("fhir:org-lawyers", ["requested", "accepted"]),
        ("fhir:org-lawyers", ["accepted", "in-progress"]),
        ("fhir:org-lawyers", ["in-progress", "completed"]),
    ]
    # A completed referral is no longer read back.
    assert sync_remote_referrals(settings).updated == 0


def test_a_receiver_server_that_is_down_is_retried_and_holds_up_nothing_else(
    engine: Engine, settings: Settings
) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        service = make_service(session, "fund", ServiceCategory.charity, requires_consent=False)
        organisation = session.get(Organisation, service.organisation_id)
        assert organisation is not None
        organisation.fhir_base_url = "http://127.0.0.1:9/fhir"  # nothing listens on the discard port
        create_referral(session, case, service_id=service.id or 0, needs=[], reason=None, actor="anna")
    result = sync_remote_referrals(settings)
    assert (result.sent, result.failed) == (0, 1)
    assert _referral(engine).remote_task_id is None  # tried again next time


def test_a_referral_cancelled_here_is_cancelled_on_the_receivers_server(
    engine: Engine, settings: Settings, sekmet: SekmetServer
) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        service = make_service(session, "fund", ServiceCategory.charity, requires_consent=False)
        organisation = session.get(Organisation, service.organisation_id)
        assert organisation is not None
        organisation.fhir_base_url = sekmet.base_url
        create_referral(session, case, service_id=service.id or 0, needs=[], reason=None, actor="anna")
    sync_remote_referrals(settings)
    with session_scope(engine) as session:
        referral = session.exec(select(Referral)).one()
        move_referral(session, referral, ReferralStatus.cancelled, actor="anna", reason="the family pays")
    assert sync_remote_referrals(settings).updated == 1
    remote = sekmet.get(f"Task/{_referral(engine).remote_task_id}")
    assert (remote["status"], remote["statusReason"]["text"]) == ("cancelled", "the family pays")
    assert sync_remote_referrals(settings).updated == 0  # told once
