"""The receiver portal's API: a receiver sees only the referrals sent to their organisation and covered
by a consent, with the minimum data; answers through the referral's states; every read in the access log."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.access.models import AccessLogEntry, AccessLogPatient
from discharge_bridge.cases.consent.models import Consent
from discharge_bridge.cases.consent.service import revoke_consent
from discharge_bridge.cases.delivered.models import ServiceDelivered
from discharge_bridge.cases.referrals.models import Referral
from discharge_bridge.cases.referrals.portal import portal_referral, portal_referrals
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.directory.models import ServiceCategory
from discharge_bridge.users.service import get_user
from tests.support.factories import api_client, flagged_case, make_source, put_encounter, user_client
from tests.support.network import directory_service, refer

NOW = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)
PERSON = {
    "name": [{"text": "Olga Smirnova"}],
    "birthDate": "1941-03-02",
    "gender": "female",
    "telecom": [{"system": "phone", "value": "+7 916 111-22-33"}],
    "address": [{"text": "Moscow, Tverskaya 1"}],
    "identifier": [{"system": "urn:mrn", "value": "MRN-777"}],
}


def _world(engine: Engine) -> dict[str, int]:
    """Two organisations; Olga referred to legal aid (consent), Ivan to legal aid, Petr to the other's charity."""
    with session_scope(engine) as session:
        source_id = make_source(session).id or 0
        olga = flagged_case(session, source_id, "adm1", "p1")
        put_encounter(session, source_id, "adm1", "p1", person=PERSON)
        ivan = flagged_case(session, source_id, "adm2", "p2")
        petr = flagged_case(session, source_id, "adm3", "p3")
        legal = directory_service(session, "legal", ServiceCategory.legal_aid, organisation="org-legal")
        charity = directory_service(session, "fund", ServiceCategory.charity, organisation="org-fund")
        first = refer(session, olga, legal, reason="a power of attorney for the pension")
        second = refer(session, ivan, legal)
        third = refer(session, petr, charity)
        assert first.id and second.id and third.id
        return {
            "source": source_id,
            "legal": legal.organisation_id,
            "fund": charity.organisation_id,
            "olga": first.id,
            "ivan": second.id,
            "petr": third.id,
            "olga_case": olga.id or 0,
        }


@pytest.mark.clock
def test_a_receiver_sees_only_their_organisations_referrals_with_the_minimum(
    engine: Engine, settings: Settings
) -> None:
    with time_machine.travel(NOW, tick=False):
        ids = _world(engine)
        rita = user_client(settings, engine, "rita", role="receiver", organisation_id=ids["legal"])
        fedor = user_client(settings, engine, "fedor", role="receiver", organisation_id=ids["fund"])
        listed = rita.get("/api/v1/portal/referrals")
        assert listed.status_code == 200
        items = listed.json()["items"]
        assert [i["id"] for i in items] == [ids["olga"], ids["ivan"]]
        olga = items[0]
        assert (olga["name"], olga["age"], olga["sex"], olga["reason"], olga["status"], olga["group"]) == (
            "Olga Smirnova",
            85,
            "female",
            "a power of attorney for the pension",
            "requested",
            "new",
        )
        assert olga["phone"] == "+7 916 111-22-33"  # the consent names this organisation
        assert olga["documents"] == [{"code": "passport", "label": "Passport", "done": False}]
        for secret in ("1941", "MRN-777", "Tverskaya", "p1", "adm1"):
            assert secret not in listed.text
        assert [i["id"] for i in fedor.get("/api/v1/portal/referrals").json()["items"]] == [ids["petr"]]
        assert fedor.get(f"/api/v1/portal/referrals/{ids['olga']}").status_code == 404
        patched = fedor.patch(f"/api/v1/portal/referrals/{ids['olga']}", json={"status": "accepted", "version": 1})
        assert patched.status_code == 404
        assert rita.get(f"/api/v1/portal/referrals/{ids['petr']}").status_code == 404
        one = rita.get(f"/api/v1/portal/referrals/{ids['olga']}")
        assert one.status_code == 200 and one.headers["ETag"] == '"1"'
        page = rita.get("/api/v1/portal/referrals", params={"limit": 1}).json()
        assert [i["id"] for i in page["items"]] == [ids["olga"]] and page["next_after"] == ids["olga"]
        rest = rita.get("/api/v1/portal/referrals", params={"after": page["next_after"]}).json()
        assert [i["id"] for i in rest["items"]] == [ids["ivan"]]
        # Nothing else of the service is theirs: the case, the worklist, the directory's editing.
        assert rita.get(f"/api/v1/cases/{ids['olga_case']}").status_code == 403
        assert rita.get("/api/v1/worklist").status_code in (403, 404)
    with session_scope(engine) as session:
        entries = session.exec(select(AccessLogEntry).where(AccessLogEntry.username == "rita")).all()
        assert [e.route for e in entries] == [
            "api.portal.referrals",
            "api.portal.referral",
            "api.portal.referrals",
            "api.portal.referrals",
        ]
        first = session.exec(select(AccessLogPatient).where(AccessLogPatient.entry_id == entries[0].id)).all()
        assert sorted(p.patient_fhir_id for p in first) == ["p1", "p2"]


@pytest.mark.clock
def test_answers_move_the_referral_and_delivery_records_a_service(engine: Engine, settings: Settings) -> None:
    with time_machine.travel(NOW, tick=False):
        ids = _world(engine)
        rita = user_client(settings, engine, "rita", role="receiver", organisation_id=ids["legal"])
        url = f"/api/v1/portal/referrals/{ids['olga']}"
        assert rita.patch(url, json={"status": "accepted"}).status_code == 428
        declined = rita.patch(url, json={"status": "rejected", "version": 1})
        assert declined.status_code == 422 and declined.json()["detail"][0]["loc"] == ["body", "reason"]
        sent_back = rita.patch(url, json={"status": "requested", "version": 1})
        assert sent_back.status_code == 422 and sent_back.json()["detail"][0]["loc"] == ["body", "status"]
        accepted = rita.patch(url, json={"status": "accepted", "version": 1})
        assert accepted.status_code == 200, accepted.text
        assert (accepted.json()["status"], accepted.json()["group"]) == ("accepted", "in_progress")
        stale = rita.patch(url, json={"proposed_date": "2026-11-09", "version": 1})
        assert stale.status_code == 409
        dated = rita.patch(url, json={"proposed_date": "2026-11-09"}, headers={"If-Match": accepted.headers["ETag"]})
        assert dated.status_code == 200 and dated.json()["proposed_date"] == "2026-11-09"
        done = rita.patch(
            url, json={"status": "completed", "note": "power of attorney signed", "version": dated.json()["version"]}
        )
        assert done.status_code == 200 and done.json()["group"] == "done"
        assert done.json()["status_dates"]["completed"] is not None
    with session_scope(engine) as session:
        referral = session.get(Referral, ids["olga"])
        assert referral is not None and referral.status == "completed"
        delivered = session.exec(select(ServiceDelivered)).all()
        assert [(d.kind, d.delivered_by, d.role, d.referral_id, d.note) for d in delivered] == [
            ("legal_consultation", "rita", "receiver", ids["olga"], "power of attorney signed")
        ]


@pytest.mark.clock
def test_a_revoked_consent_hides_the_referral_and_a_service_without_consent_shows_no_phone(
    engine: Engine, settings: Settings
) -> None:
    with time_machine.travel(NOW, tick=False):
        ids = _world(engine)
        with session_scope(engine) as session:
            case = flagged_case(session, ids["source"], "adm4", "p4")
            put_encounter(session, ids["source"], "adm4", "p4", person=PERSON)
            clinic = directory_service(
                session, "clinic", ServiceCategory.legal_aid, organisation="org-legal", requires_consent=False
            )
            free = refer(session, case, clinic, consent=False)
            free_id = free.id
            consent = session.exec(select(Consent).where(Consent.patient_fhir_id == "p1")).one()
            revoke_consent(session, consent, actor="anna", reason="the patient changed their mind")
            assert portal_referral(session, ids["legal"], ids["olga"]) is None
            assert [r.id for r in portal_referrals(session, ids["legal"])] == [ids["ivan"], free_id]
        rita = user_client(settings, engine, "rita", role="receiver", organisation_id=ids["legal"])
        assert rita.get(f"/api/v1/portal/referrals/{ids['olga']}").status_code == 404
        patched = rita.patch(f"/api/v1/portal/referrals/{ids['olga']}", json={"status": "accepted", "version": 1})
        assert patched.status_code == 404
        shown = rita.get(f"/api/v1/portal/referrals/{free_id}").json()
        assert (shown["name"], shown["phone"]) == ("Olga Smirnova", None)


def test_a_receiver_whose_organisation_is_gone_sees_nothing_and_other_roles_are_refused(
    engine: Engine, settings: Settings
) -> None:
    ids = _world(engine)
    rita = user_client(settings, engine, "rita", role="receiver", organisation_id=ids["legal"])
    with session_scope(engine) as session:
        user = get_user(session, "rita")
        user.organisation_id = None  # as the foreign key leaves it when the organisation's row is removed
        session.add(user)
    listed = rita.get("/api/v1/portal/referrals")
    assert listed.status_code == 200 and listed.json()["items"] == []
    assert rita.get(f"/api/v1/portal/referrals/{ids['olga']}").status_code == 404
    pavel = user_client(settings, engine, "pavel", role="psychologist")
    assert pavel.get("/api/v1/portal/referrals").status_code == 403
    assert pavel.get(f"/api/v1/portal/referrals/{ids['olga']}").status_code == 403


def test_the_openapi_document_covers_the_portal_services_delivered_and_psychology(settings: Settings) -> None:
    from_api = api_client(settings).get("/openapi.json").json()["paths"]
    for path, methods in {
        "/api/v1/portal/referrals": {"get"},
        "/api/v1/portal/referrals/{referral_id}": {"get", "patch"},
        "/api/v1/cases/{case_id}/services": {"get", "post"},
        "/api/v1/services-delivered": {"get"},
        "/api/v1/services-delivered/{delivered_id}/strike": {"post"},
        "/api/v1/services-delivered/catalogue": {"get"},
        "/api/v1/psychology/cases": {"get"},
    }.items():
        assert methods <= set(from_api[path]), path
    patch = from_api["/api/v1/portal/referrals/{referral_id}"]["patch"]
    assert {"409", "428"} <= set(patch["responses"])
