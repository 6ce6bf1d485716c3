"""The figures page through the app (TestClient with a session cookie), on the city of
tests/worklists/city_fixture.py: the charts with their numbers in tables, the grouping and period
filters, the CSV links, one hospital's situation report, the scope, refusals, Russian, the nav link."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from discharge_bridge.access import AccessQuery, search_access
from discharge_bridge.app import create_app
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.deps import SESSION_COOKIE
from discharge_bridge.users.service import get_user, start_session
from tests.support.factories import make_user
from tests.worklists.city_fixture import seed_city

pytestmark = [pytest.mark.clock, pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)]
PERIOD = {"from": "2026-11-23", "to": "2026-12-06"}


@pytest.fixture
def client_of(settings: Settings, engine: Engine) -> Any:
    seed_city(engine)
    app = create_app(settings)

    def make(username: str, **user: Any) -> TestClient:
        with session_scope(engine) as session:
            make_user(session, username, password=None, **user)
            token, _ = start_session(session, get_user(session, username), lifetime=timedelta(hours=1))
        client = TestClient(app, follow_redirects=False)
        client.cookies.set(SESSION_COOKIE, token)
        return client

    return make


def _cells(html: str, heading: str) -> list[str]:
    """The cells of the table row whose heading cell is ``heading`` (the first such row)."""
    row = re.search(rf"<th scope=\"row\">{re.escape(heading)}</th>(.*?)</tr>", html, re.S)
    assert row, heading
    return re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)


def test_the_page_shows_charts_and_their_tables(client_of: Any) -> None:
    page = client_of("anna", role="coordinator", sources=("city", "north")).get("/figures", params=PERIOD)
    assert page.status_code == 200
    html = page.text
    assert html.count('<svg class="chart"') == 8  # four times, bed-days, referrals, responses, services
    assert "Flag to first visit" in html and "Medically ready to discharge" in html
    # Hospitals by their names; the numbers of tests/worklists/test_city_figures.py.
    assert _cells(html, "City Hospital")[:4] == ["3", "2", "2.0", "4.0"]
    assert _cells(html, "North Hospital")[:4] == ["1", "1", "8.0", "8.0"]
    assert _cells(html, "All")[:4] == ["4", "3", "4.0", "8.0"]
    assert _cells(html, "Helping Hand Fund") == ["2", "1", "24.0", "24.0"]
    assert "People who got at least one service: 3." in html
    assert 'href="/api/v1/figures.csv?from=2026-11-23&amp;to=2026-12-06&amp;group=hospital"' in html
    assert "Choose one hospital above for its daily situation report." in html
    assert '<a href="/figures"' in html  # the nav link


def test_grouping_by_week(client_of: Any) -> None:
    html = (
        client_of("anna", role="coordinator", sources=("city", "north"))
        .get("/figures", params={**PERIOD, "group": "week"})
        .text
    )
    assert _cells(html, "2026-W48")[:4] == ["1", "1", "2.0", "2.0"]
    assert '<option value="week" selected>' in html


def test_one_hospital_and_its_situation_report(client_of: Any) -> None:
    client = client_of("anna", role="coordinator", sources=("city", "north"))
    page = client.get("/figures", params={**PERIOD, "hospital": "city", "date": "2026-11-27"})
    html = page.text
    assert '<th scope="row">North Hospital</th>' not in html and _cells(html, "City Hospital")[0] == "3"
    assert _cells(html, "Medically ready, not discharged") == ["1"]
    assert _cells(html, "Of them, waiting 7 days or more") == ["0"]
    assert _cells(html, "Home with home care") == ["1"]
    assert 'href="/api/v1/sitrep.csv?source=city&amp;date=2026-11-27"' in html


def test_a_coordinator_sees_only_their_hospitals(client_of: Any) -> None:
    client = client_of("olga", role="coordinator", sources=("north",))
    html = client.get("/figures", params=PERIOD).text
    assert "City Hospital" not in html
    assert _cells(html, "All")[:4] == ["1", "1", "8.0", "8.0"]
    assert client.get("/figures", params={**PERIOD, "hospital": "city"}).status_code == 404


def test_refusals_name_the_field(client_of: Any) -> None:
    client = client_of("anna", role="coordinator", sources=("city",))
    assert client.get("/figures", params={**PERIOD, "group": "month"}).status_code == 422
    backwards = client.get("/figures", params={"from": "2026-12-06", "to": "2026-11-23"})
    assert backwards.status_code == 422 and "to" in backwards.text
    assert client.get("/figures", params={"from": "someday"}).status_code == 422


def test_roles_without_figures(client_of: Any, engine: Engine) -> None:
    it = client_of("ivan", role="it_admin", sources=("city",))
    assert it.get("/figures").status_code == 403
    assert '<a href="/figures"' not in it.get("/it").text


def test_in_russian_and_nothing_logged(client_of: Any, engine: Engine) -> None:
    client = client_of("anya", role="bed_manager", sources=("city",), locale="ru")
    html = client.get("/figures", params={**PERIOD, "hospital": "city", "date": "2026-11-27"}).text
    assert "От флага до первого визита" in html
    assert "Ежедневный отчёт о ситуации" in html  # noqa: RUF001 (Russian text)
    with session_scope(engine) as session:
        assert search_access(session, AccessQuery(username="anya")) == []  # counts only: no patient viewed
