"""A referral followed to delivery in a real browser (Debian's Chromium): a coordinator sees a suggested
service on a demo case, records the patient's consent and sends the referral from the suggestion; a
receiver of that organisation signs in to the portal, sees only that referral, accepts it and marks the
help delivered; the case page shows it completed with a service delivered, and the city's list of
services delivered counts it. A receiver of another organisation sees nothing, and once the consent is
revoked the portal shows nothing either. Screenshots are kept under the run's pytest folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from discharge_bridge.config import Settings
from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.directory.models import Organisation
from discharge_bridge.users.roles import Role
from discharge_bridge.users.service import add_user
from tests.ui.conftest import LiveServer, sign_in

pytestmark = pytest.mark.slow

# A referral to one of these frees no bed: the help is delivered without a handoff's documents rule.
NOT_DESTINATIONS = {"psychologist", "legal_aid", "guardianship", "social_protection", "charity", "other"}


@dataclass
class Journey:
    case_id: int
    service_id: int
    service_name: str
    category: str
    organisation_code: str
    receiver: str  # of the service's organisation
    stranger: str  # a receiver of another organisation
    shots: Path


def _pick(live_server: LiveServer) -> tuple[int, dict[str, Any]]:
    """An open case of anna's with a suggested service, reached through the portal, that is not a destination."""
    with live_server.api() as api:
        cases = api.get("/api/v1/cases", params={"coordinator": "anna", "status": "open", "limit": 50}).json()
        for case in cases["items"]:
            for s in api.get(f"/api/v1/cases/{case['id']}/suggestions").json():
                if s["uses_portal"] and s["requires_consent"] and s["category"] in NOT_DESTINATIONS:
                    return case["id"], s
    raise AssertionError("no demo case of anna's has a suggested service outside the destinations")


@pytest.fixture(scope="module")
def journey(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journey]:
    case_id, suggestion = _pick(live_server)
    engine = get_engine(Settings(data_dir=live_server.data_dir))
    with session_scope(engine) as session:
        mine = session.get(Organisation, suggestion["organisation_id"])
        other = session.exec(select(Organisation).where(Organisation.id != suggestion["organisation_id"])).first()
        assert mine is not None and other is not None
        for username, organisation in (("rita", mine), ("fedor", other)):
            add_user(
                session,
                username=username,
                role=Role.receiver,
                sources=[],
                password=live_server.password,
                organisation_id=organisation.id,
            )
        code = mine.code
    yield Journey(
        case_id,
        suggestion["service_id"],
        suggestion["service_name"],
        suggestion["category"],
        code,
        "rita",
        "fedor",
        tmp_path_factory.mktemp("artifacts"),
    )


def _open(page: Any, section: str) -> Any:
    part = page.locator(f"#{section}")
    if part.evaluate("e => e.tagName") == "DETAILS" and part.get_attribute("open") is None:
        part.locator("summary").first.click()
    return part


def test_a_referral_followed_to_delivery_through_the_portal(
    live_server: LiveServer, journey: Journey, browser: Any
) -> None:
    coordinator = browser.new_context(viewport={"width": 1024, "height": 768}, locale="en-GB")
    page = coordinator.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, live_server, "anna")
    page.goto(f"{live_server.base_url}/cases/{journey.case_id}")
    suggestions = _open(page, "suggestions")
    suggestion = suggestions.locator("li.suggestion", has_text=journey.service_name).first
    suggestion.wait_for()  # loaded by htmx after the page
    page.screenshot(path=str(journey.shots / "1-suggested.png"), full_page=True)

    # The consent first: the patient agrees to share with services of this kind.
    consent = page.locator("#consent-form")
    if not consent.is_visible():
        page.locator("#consent details.add-consent summary").click()
    consent.locator(f"#consent-category-{journey.category}").check()
    consent.get_by_role("button", name="Record the consent").click()
    page.wait_for_load_state()
    assert page.locator("#consent article.consent").count() >= 1

    # Then the referral, from the suggestion.
    suggestions = _open(page, "suggestions")
    suggestion = suggestions.locator("li.suggestion", has_text=journey.service_name).first
    suggestion.get_by_role("button", name="Refer").click()
    page.wait_for_load_state()
    referral = page.locator("#referrals article.referral", has_text=journey.service_name).first
    referral.wait_for()
    referral_id = int((referral.get_attribute("id") or "").removeprefix("referral-"))
    page.screenshot(path=str(journey.shots / "2-referred.png"), full_page=True)

    # The receiver of that organisation: signs in to the portal and sees this referral alone.
    receiver = browser.new_context(viewport={"width": 1024, "height": 768}, locale="en-GB")
    portal = receiver.new_page()
    portal.set_default_timeout(15_000)
    sign_in(portal, live_server, journey.receiver)
    assert portal.url.endswith("/portal")
    rows = portal.locator("tr[id^='referral-']")
    assert rows.count() == 1 and rows.first.get_attribute("id") == f"referral-{referral_id}"
    portal.get_by_role("link", name=f"Referral #{referral_id}").click()
    portal.wait_for_load_state()
    portal.get_by_role("button", name="Accept").click()
    portal.wait_for_load_state()
    assert "Accepted: the hospital sees it now." in portal.content()
    deliver = portal.locator("#deliver-form")
    deliver.get_by_label("What was delivered (optional)").fill("first visit made")
    deliver.get_by_role("button", name="Mark the help delivered").click()
    portal.wait_for_load_state()
    assert "Marked as delivered. Thank you." in portal.content()
    portal.screenshot(path=str(journey.shots / "3-delivered.png"), full_page=True)

    # The case shows it completed, with a service delivered counted for the city.
    page.goto(f"{live_server.base_url}/cases/{journey.case_id}")
    referral = page.locator(f"#referral-{referral_id}")
    assert "Help delivered" in (referral.locator(".referral-status").text_content() or "")
    services = _open(page, "services")
    assert "first visit made" in (services.text_content() or "")
    page.screenshot(path=str(journey.shots / "4-case.png"), full_page=True)
    with live_server.api() as api:
        delivered = api.get("/api/v1/services-delivered", params={"limit": 500}).json()["items"]
        ours = [d for d in delivered if d["referral_id"] == referral_id]
        assert [(d["case_id"], d["delivered_by"], d["role"]) for d in ours] == [(journey.case_id, "rita", "receiver")]

    # A receiver of another organisation sees nothing of it.
    stranger = browser.new_context(viewport={"width": 1024, "height": 768}, locale="en-GB")
    other = stranger.new_page()
    sign_in(other, live_server, journey.stranger)
    assert other.locator(f"#referral-{referral_id}").count() == 0
    other.goto(f"{live_server.base_url}/portal/referrals/{referral_id}")
    assert other.locator("h1").first.text_content() == "Not found"

    # The consent revoked: the portal shows nothing of the person any more.
    page.goto(f"{live_server.base_url}/cases/{journey.case_id}")
    revoke = page.locator("#consent details.revoke-consent").first
    revoke.locator("summary").click()
    revoke.get_by_label("Why is it revoked?").fill("the patient changed their mind")
    revoke.get_by_role("button", name="Revoke the consent").click()
    page.wait_for_load_state()
    portal.goto(f"{live_server.base_url}/portal")
    assert portal.locator("tr[id^='referral-']").count() == 0
    portal.screenshot(path=str(journey.shots / "5-revoked.png"), full_page=True)
    for context in (coordinator, receiver, stranger):
        context.close()
