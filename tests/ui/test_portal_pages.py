"""The receiver portal's pages, the psychologist's pages and the case page's "Services delivered"
section: who sees what, the answers and records they make, in English and Russian."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.access.models import AccessLogEntry
from discharge_bridge.cases.delivered.models import ServiceDelivered
from discharge_bridge.cases.referrals.models import Referral
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.directory.models import ServiceCategory
from tests.support.factories import flagged_case, make_source, put_encounter, user_client
from tests.support.network import directory_service, refer

NOW = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)
OLGA = {"name": [{"text": "Olga Smirnova"}], "birthDate": "1941-03-02", "gender": "female"}
PETR = {"name": [{"text": "Petr Volkov"}], "birthDate": "1950-01-01", "gender": "male"}


def _world(engine: Engine) -> dict[str, int]:
    with session_scope(engine) as session:
        source_id = make_source(session).id or 0
        olga = flagged_case(session, source_id, "adm1", "p1")
        put_encounter(session, source_id, "adm1", "p1", person=OLGA)
        petr = flagged_case(session, source_id, "adm2", "p2")
        put_encounter(session, source_id, "adm2", "p2", person=PETR)
        legal = directory_service(session, "legal", ServiceCategory.legal_aid, organisation="org-legal")
        psych = directory_service(session, "psy", ServiceCategory.psychologist, organisation="org-psy")
        first = refer(session, olga, legal, reason="a power of attorney")
        second = refer(session, petr, psych, reason="low mood after a stroke")
        assert first.id and second.id and olga.id and petr.id
        return {
            "legal": legal.organisation_id,
            "psy": psych.organisation_id,
            "olga": first.id,
            "petr": second.id,
            "olga_case": olga.id,
            "petr_case": petr.id,
        }


def _version(page: str) -> str:
    found = re.search(r'name="version" value="(\d+)"', page)
    assert found is not None
    return found.group(1)


@pytest.mark.clock
def test_a_receiver_answers_on_the_portal_and_sees_only_their_referrals(engine: Engine, settings: Settings) -> None:
    with time_machine.travel(NOW, tick=False):
        ids = _world(engine)
        rita = user_client(settings, engine, "rita", role="receiver", organisation_id=ids["legal"])
        listed = rita.get("/portal")
        assert listed.status_code == 200
        assert "Olga Smirnova" in listed.text and "Petr Volkov" not in listed.text
        assert f'href="/portal/referrals/{ids["olga"]}"' in listed.text and 'href="/portal"' in listed.text
        assert "1941" not in listed.text
        url = f"/portal/referrals/{ids['olga']}"
        page = rita.get(url)
        assert page.status_code == 200 and "a power of attorney" in page.text and "woman" in page.text
        assert rita.get(f"/portal/referrals/{ids['petr']}").status_code == 404
        assert rita.get("/worklist").status_code == 403
        assert rita.get(f"/cases/{ids['olga_case']}").status_code == 403
        declined = rita.post(url, data={"status": "rejected", "version": _version(page.text)})
        assert declined.status_code == 422
        accepted = rita.post(url, data={"status": "accepted", "version": _version(page.text)}, follow_redirects=False)
        assert accepted.status_code == 303 and accepted.headers["location"] == f"{url}?done=accepted"
        page = rita.get(accepted.headers["location"])
        assert "Accepted: the hospital sees it now." in page.text
        stale = rita.post(url, data={"status": "completed", "version": "1"})
        assert stale.status_code == 409
        dated = rita.post(url, data={"status": "", "proposed_date": "2026-11-10", "version": _version(page.text)})
        assert dated.status_code == 200 and "Proposed date saved." in dated.text
        delivered = rita.post(url, data={"status": "completed", "note": "signed", "version": _version(dated.text)})
        assert delivered.status_code == 200 and "Marked as delivered." in delivered.text
    with session_scope(engine) as session:
        referral = session.get(Referral, ids["olga"])
        assert referral is not None and (referral.status, str(referral.proposed_date)) == ("completed", "2026-11-10")
        rows = session.exec(select(ServiceDelivered)).all()
        assert [(r.kind, r.delivered_by, r.note) for r in rows] == [("legal_consultation", "rita", "signed")]
        routes = session.exec(select(AccessLogEntry.route).where(AccessLogEntry.username == "rita")).all()
        assert routes[:2] == ["ui.portal", "ui.portal.referral"]


@pytest.mark.clock
def test_the_portal_speaks_russian(engine: Engine, settings: Settings) -> None:
    with time_machine.travel(NOW, tick=False):
        ids = _world(engine)
        rita = user_client(settings, engine, "rita", role="receiver", organisation_id=ids["legal"], locale="ru")
        listed = rita.get("/portal").text
        assert "Направления в вашу организацию" in listed
        assert 'title="Принимающая организация"' in listed  # the role, named in the reader's language
        page = rita.get(f"/portal/referrals/{ids['olga']}").text
        assert "Принять" in page and "Отказать" in page and "женщина" in page


@pytest.mark.clock
def test_the_psychologist_sees_only_referred_cases_and_records_sessions(engine: Engine, settings: Settings) -> None:
    with time_machine.travel(NOW, tick=False):
        ids = _world(engine)
        pavel = user_client(settings, engine, "pavel", role="psychologist")
        listed = pavel.get("/psychology")
        assert listed.status_code == 200
        assert "Petr Volkov" in listed.text and "Olga Smirnova" not in listed.text
        assert "low mood after a stroke" in listed.text
        assert pavel.get(f"/psychology/cases/{ids['olga_case']}").status_code == 404
        assert pavel.get(f"/cases/{ids['petr_case']}").status_code == 403  # not the coordinator's page
        url = f"/psychology/cases/{ids['petr_case']}"
        page = pavel.get(url)
        assert page.status_code == 200 and "Services delivered" in page.text and "Psychologist session" in page.text
        assert "Relatives found" not in page.text  # a coordinator's kind
        made = pavel.post(f"{url}/services", data={"kind": "psychologist_session", "note": "first session"})
        assert made.status_code == 200 and "Service recorded." in made.text and "first session" in made.text
        refused = pavel.post(f"{url}/services", data={"kind": "relatives_found"})
        assert refused.status_code == 422
        assert (
            pavel.post(f"/psychology/cases/{ids['olga_case']}/services", data={"kind": "consultation"}).status_code
            == 404
        )
        with session_scope(engine) as session:
            row = session.exec(select(ServiceDelivered)).one()
        struck = pavel.post(f"{url}/services/{row.id}/strike")
        assert struck.status_code == 200 and "Service struck out." in struck.text


@pytest.mark.clock
def test_the_case_page_shows_and_records_services_delivered(engine: Engine, settings: Settings) -> None:
    with time_machine.travel(NOW, tick=False):
        ids = _world(engine)
        anna = user_client(settings, engine, "anna", role="coordinator")
        url = f"/cases/{ids['olga_case']}"
        page = anna.get(url)
        assert (
            page.status_code == 200 and "Services delivered" in page.text and "No services recorded yet." in page.text
        )
        made = anna.post(
            f"{url}/services", data={"kind": "my_documents_application", "delivered_at": "2026-11-05T07:30"}
        )
        assert made.status_code == 200 and "Application to My Documents" in made.text
        assert "Service recorded." in made.text  # the case page says what the submit did
        assert re.search(r'<details class="card part" id="services" open', made.text)
        refused = anna.post(f"{url}/services", data={"kind": "psychologist_session"})
        assert refused.status_code == 422 and 'aria-invalid="true"' in refused.text
        with session_scope(engine) as session:
            row = session.exec(select(ServiceDelivered)).one()
            assert row.delivered_at == datetime(2026, 11, 5, 7, 30, tzinfo=UTC)  # read in the hospital's zone (UTC)
        struck = anna.post(f"{url}/services/{row.id}/strike")
        assert struck.status_code == 200 and "Service struck out." in struck.text
        boris = user_client(settings, engine, "boris", role="bed_manager")
        assert boris.post(f"{url}/services", data={"kind": "consultation"}).status_code == 403
