"""The consent and referrals sections of the case page (TestClient with a browser's session): record a
consent, send a referral (refused with the message on the page, not a 500, when no consent covers
it), move it with reasons, tick its documents, revoke the consent; in English and Russian."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.app import create_app
from discharge_bridge.cases.consent.models import Consent, ConsentStatus
from discharge_bridge.cases.referrals.models import Referral, ReferralStatus
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import update_source
from discharge_bridge.db import session_scope
from discharge_bridge.deps import SESSION_COOKIE
from discharge_bridge.directory.models import ServiceCategory
from discharge_bridge.users.service import get_user, start_session
from tests.cases.referral_support import make_service
from tests.support.factories import flagged_case, make_source, make_user

pytestmark = pytest.mark.clock
NOW = datetime(2026, 11, 13, 9, 0, tzinfo=UTC)


class Browser:
    def __init__(self, settings: Settings, engine: Engine, username: str, **user: Any) -> None:
        with session_scope(engine) as session:
            make_user(session, username, password=None, **user)
            token, row = start_session(session, get_user(session, username), lifetime=timedelta(hours=8))
            self.csrf = row.csrf_token
        self.client = TestClient(create_app(settings), follow_redirects=False)
        self.client.cookies.set(SESSION_COOKIE, token)

    def get(self, path: str) -> Any:
        return self.client.get(path)

    def post(self, path: str, data: dict[str, Any] | None = None) -> Any:
        return self.client.post(path, data={**(data or {}), "csrf_token": self.csrf})


@pytest.fixture
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def setup(engine: Engine, clock: None) -> dict[str, int]:
    with session_scope(engine) as session:
        city = make_source(session, "city").id or 0
        update_source(session, "city", {"timezone": "Europe/Moscow"})
        case = flagged_case(session, city, "adm1", "p1")
        charity = make_service(session, "fund", ServiceCategory.charity)
        home = make_service(session, "home", ServiceCategory.home_care)
        return {
            "case": case.id or 0,
            "charity": charity.id or 0,
            "charity_org": charity.organisation_id,
            "home": home.id or 0,
        }


def _referral(engine: Engine) -> Referral:
    with session_scope(engine) as session:
        return session.exec(select(Referral)).one()


def test_a_referral_without_consent_shows_the_refusal_then_consent_lets_it_through(
    settings: Settings, engine: Engine, setup: dict[str, int]
) -> None:
    anna = Browser(settings, engine, "anna", sources=("city",))
    case = f"/cases/{setup['case']}"
    page = anna.get(case)
    assert page.status_code == 200
    html = unescape(page.text)
    assert 'id="consent"' in html and 'id="referrals"' in html
    assert "No consent recorded" in html and "Service fund (Organisation fund)" in html

    refused = anna.post(f"{case}/referrals", {"service_id": str(setup["charity"]), "reason": "a wheelchair"})
    assert refused.status_code == 409
    assert "needs the patient's consent" in unescape(refused.text) and 'id="referral-form"' in refused.text
    assert 'value="a wheelchair"' in refused.text  # what was typed is kept

    no_witness = anna.post(f"{case}/consents", {"method": "verbal_witnessed", "categories": "charity"})
    assert no_witness.status_code == 422 and "witness" in no_witness.text

    recorded = anna.post(
        f"{case}/consents",
        {"method": "signed_form", "organisation_ids": str(setup["charity_org"]), "valid_until": "2026-12-31"},
    )
    assert recorded.status_code == 303 and recorded.headers["location"].endswith("#consent")
    with session_scope(engine) as session:
        consent = session.exec(select(Consent)).one()
        # Until the end of 31 December in Moscow.
        assert consent.valid_until == datetime(2026, 12, 31, 21, 0, tzinfo=UTC)
        assert consent.organisation_ids == [setup["charity_org"]]

    sent = anna.post(f"{case}/referrals", {"service_id": str(setup["charity"]), "reason": "a wheelchair"})
    assert sent.status_code == 303
    page = unescape(anna.get(sent.headers["location"]).text)
    assert "Referral sent." in page and "Mark accepted" in page and "Cancel the referral" in page

    referral = _referral(engine)
    base = f"{case}/referrals/{referral.id}"
    no_reason = anna.post(f"{base}/status", {"status": "rejected", "version": str(referral.version)})
    assert no_reason.status_code == 422
    moved = anna.post(
        f"{base}/status", {"status": "accepted", "proposed_date": "2026-11-20", "version": str(referral.version)}
    )
    assert moved.status_code == 303
    stale = anna.post(f"{base}/status", {"status": "completed", "version": str(referral.version)})
    assert stale.status_code == 409
    referral = _referral(engine)
    assert (referral.status, str(referral.proposed_date)) == (ReferralStatus.accepted, "2026-11-20")

    ticked = anna.post(f"{base}/documents", {"documents": "passport", "version": str(referral.version)})
    assert ticked.status_code == 303
    referral = _referral(engine)
    assert [d["done"] for d in referral.documents] == [True, False]

    revoked = anna.post(f"{case}/consents/{consent.id}/revoke", {"reason": "the patient changed their mind"})
    assert revoked.status_code == 303
    with session_scope(engine) as session:
        assert session.exec(select(Consent)).one().status == ConsentStatus.inactive
    page = unescape(anna.get(case).text)
    assert "Revoked by anna" in page and "the patient changed their mind" in page
    # The timeline tells the story without names: the referral's moves, the document, the consent.
    for line in (
        "Consent recorded",
        "Referral sent",
        "Sent → Accepted",
        "Proposed date: 2026-11-20",
        "Consent revoked",
    ):
        assert line in page, line
    assert "Document ready: passport" in page


def test_the_sections_in_russian_and_read_only_without_refer(
    settings: Settings, engine: Engine, setup: dict[str, int]
) -> None:
    olga = Browser(settings, engine, "olga", sources=("city",), locale="ru")
    page = unescape(olga.get(f"/cases/{setup['case']}").text)
    assert "Согласие на передачу данных" in page and "Направления" in page and "Записать согласие" in page
    bella = Browser(settings, engine, "bella", role="bed_manager", sources=("city",))
    page = unescape(bella.get(f"/cases/{setup['case']}").text)
    assert 'id="referrals"' in page and "Send the referral" not in page and "Record the consent" not in page
    denied = bella.post(f"/cases/{setup['case']}/referrals", {"service_id": str(setup["home"])})
    assert denied.status_code == 403


def test_a_referral_of_another_case_is_not_found(settings: Settings, engine: Engine, setup: dict[str, int]) -> None:
    anna = Browser(settings, engine, "anna", sources=("city",))
    with session_scope(engine) as session:
        other = flagged_case(session, 1, "adm2", "p2")
    anna.post(f"/cases/{setup['case']}/consents", {"method": "signed_form", "categories": "home_care"})
    anna.post(f"/cases/{setup['case']}/referrals", {"service_id": str(setup["home"])})
    referral = _referral(engine)
    wrong = anna.post(
        f"/cases/{other.id}/referrals/{referral.id}/status", {"status": "cancelled", "reason": "x", "version": "1"}
    )
    assert wrong.status_code == 404
