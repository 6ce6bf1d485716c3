"""The directory and a case's suggested services in a real browser (Debian's Chromium at 1024x768), on
the demo: a coordinator filters the directory, opens a service, then sees on a case page the services
that fit the case, with why they fit and a Refer button."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from discharge_bridge.cases.models import Case
from discharge_bridge.cases.referrals.suggestions import suggestions_for_case
from discharge_bridge.config import Settings
from discharge_bridge.db import get_engine, session_scope
from tests.ui.conftest import LiveServer, sign_in

pytestmark = pytest.mark.slow


def _case_with_a_gerontology_suggestion(server: LiveServer) -> int:
    settings = Settings(data_dir=server.data_dir)
    with session_scope(get_engine(settings)) as session:
        for case in session.exec(select(Case).order_by(col(Case.id))):
            if any(s.service.category == "gerontology_centre" for s in suggestions_for_case(session, case)):
                return case.id or 0
    raise AssertionError("no demo case is suggested a gerontology centre")


def test_a_coordinator_finds_services_and_sees_the_suggestions_of_a_case(live_server: LiveServer, page: object) -> None:
    p = page
    sign_in(p, live_server, "anna")
    p.get_by_role("link", name="Directory").click()  # type: ignore[attr-defined]
    p.wait_for_load_state()  # type: ignore[attr-defined]
    assert p.locator("table tbody tr").count() == 15  # type: ignore[attr-defined]
    p.get_by_label("Kind of help").select_option("hospice")  # type: ignore[attr-defined]
    p.get_by_role("button", name="Show").click()  # type: ignore[attr-defined]
    p.wait_for_load_state()  # type: ignore[attr-defined]
    assert p.locator("table tbody tr").count() == 1  # type: ignore[attr-defined]
    p.get_by_role("link", name="Паллиативная помощь в хосписе").click()  # type: ignore[attr-defined]
    p.wait_for_load_state()  # type: ignore[attr-defined]
    assert p.get_by_role("heading", name="Documents required").is_visible()  # type: ignore[attr-defined]

    case_id = _case_with_a_gerontology_suggestion(live_server)
    p.goto(f"{live_server.base_url}/cases/{case_id}")  # type: ignore[attr-defined]
    section = p.locator("#suggestions")  # type: ignore[attr-defined]
    section.locator("summary").click()
    section.get_by_text("Why it fits").first.wait_for()
    assert section.get_by_text("→ Gerontology centre").count() >= 1
    assert section.get_by_role("button", name="Refer").count() >= 1
