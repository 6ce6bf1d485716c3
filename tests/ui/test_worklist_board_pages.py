"""The worklist and the bed board pages through the app (TestClient with a session cookie), on the
hospitals of tests/worklists/test_worklist.py at its fixed clock: search by name and MRN, filters
with their counts, sorting, keyset pages, the unassigned view, the morning list first, a refused
filter kept in the form with its message, the board's unflagged inpatients and totals, the CSV's
identity columns, English and Russian, and one access-log entry per page with the patients shown.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from discharge_bridge.access import AccessQuery, search_access
from discharge_bridge.app import create_app
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.deps import SESSION_COOKIE
from discharge_bridge.risk import loading
from discharge_bridge.sources.service import get_source
from discharge_bridge.ui import worklist as worklist_page
from discharge_bridge.users.service import get_user, start_session
from discharge_bridge.worklists.morning import build_morning_list
from tests.support.factories import make_user
from tests.worklists.test_worklist import NOW, seed

pytestmark = [pytest.mark.clock, pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)]


class Site:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.version = loading.rule_set(settings.mappings_dir).version
        self.ids = seed(engine, self.version)
        self.engine = engine
        self.app = create_app(settings)

    def client(self, username: str, **user: Any) -> TestClient:
        with session_scope(self.engine) as session:
            make_user(session, username, password=None, **user)
            token, _ = start_session(session, get_user(session, username), lifetime=timedelta(hours=1))
        client = TestClient(self.app, follow_redirects=False)
        client.cookies.set(SESSION_COOKIE, token)
        return client

    def log(self, route: str) -> list[Any]:
        with session_scope(self.engine) as session:
            return search_access(session, AccessQuery(route=route))


@pytest.fixture
def site(settings: Settings, engine: Engine) -> Iterator[Site]:
    made = Site(settings, engine)
    with time_machine.travel(NOW, tick=False):
        yield made


def live(html: str) -> str:
    return html.split('id="live-heading"')[1]


def names(html: str) -> list[str]:
    """The patients' names in the live list, in order."""
    return re.findall(r'<strong class="person-name">([^<]+)</strong>', live(html))


def test_finding_a_patient_by_name_or_mrn(site: Site) -> None:
    anna = site.client("anna", sources=("city",))
    html = anna.get("/worklist", params={"view": "all", "q": "ivanova"}).text
    assert names(html) == ["Ivanova Maria Petrovna"]
    row = live(html)
    for shown in (
        "MR-1001",
        "Female · 86 years",
        "24 days in hospital",
        "Therapy 3 · bed-adm1",
        "1 flagged admission matches",
    ):
        assert shown in row, shown
    assert "Ivanova Elena" not in html and "Ivanova Olga" not in html  # another hospital's; not flagged
    assert 'id="f-q" name="q" type="search" value="ivanova"' in html  # the search stays in its box
    assert names(anna.get("/worklist", params={"view": "all", "q": "mr-2002"}).text) == ["Petrov Ivan Ilyich"]
    nameless = live(anna.get("/worklist", params={"view": "all", "q": "MR-5005"}).text)
    assert "Name not recorded" in nameless and "MR-5005" in nameless


def test_filters_show_their_counts_and_sorting_orders_the_list(site: Site) -> None:
    anna = site.client("anna", sources=("city",))
    html = anna.get("/worklist", params={"view": "all", "ward": "Surgery 2"}).text
    assert names(html) == ["Kuznetsov Oleg", "Petrov Ivan Ilyich"]
    assert '<option value="Surgery 2" selected>Surgery 2 (2)</option>' in html
    assert '<option value="Therapy 3">Therapy 3 (3)</option>' in html  # its own filter left out of its counts
    assert '<option value="high">High (1)</option>' in html and '<option value="medium">Medium (1)</option>' in html
    assert '<option value="dementia">Dementia (1)</option>' in html
    assert '<option value="today">Tasks due today (1)</option>' in html
    assert '<option value="none">No case yet (0)</option>' in html
    by_stay = names(anna.get("/worklist", params={"view": "all", "sort": "stay"}).text)
    assert by_stay == ["Ivanova Maria Petrovna", "Petrov Ivan Ilyich", "Kuznetsov Oleg", "Сидорова Анна Ёсифовна"]
    overdue = anna.get("/worklist", params={"view": "all", "due": "overdue"}).text
    assert names(overdue) == ["Ivanova Maria Petrovna"] and "1 flagged admission matches" in overdue


def test_the_unassigned_view(site: Site) -> None:
    anna = site.client("anna", sources=("city",))
    html = anna.get("/worklist", params={"view": "unassigned"}).text
    assert '<a href="/worklist?view=unassigned" aria-current="page">Unassigned <span class="count">2</span></a>' in html
    assert names(html) == ["Kuznetsov Oleg", "Сидорова Анна Ёсифовна"]
    assert 'id="f-coordinator"' not in html  # nobody's, by definition
    boris = site.client("boris", role="bed_manager", sources=("city",))
    assert names(boris.get("/worklist", params={"view": "unassigned"}).text) == names(html)
    assert "view=mine" not in boris.get("/worklist").text


def test_keyset_pages_keep_the_filters(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worklist_page, "PER_PAGE", 2)
    anna = site.client("anna", sources=("city",))
    first = anna.get("/worklist", params={"view": "all", "sort": "stay"}).text
    seen = names(first)
    url = re.search(r'<a href="([^"]+)" rel="next">', first)
    while url:
        page = anna.get(url.group(1).replace("&amp;", "&")).text
        assert 'rel="first"' in page and "sort=stay" in url.group(1)
        seen += names(page)
        url = re.search(r'<a href="([^"]+)" rel="next">', page)
    assert seen == ["Ivanova Maria Petrovna", "Petrov Ivan Ilyich", "Kuznetsov Oleg", "Сидорова Анна Ёсифовна"]


def test_the_morning_list_comes_first_and_names_its_patients(site: Site, engine: Engine) -> None:
    with session_scope(engine) as session:
        built = build_morning_list(session, get_source(session, "city"), now=NOW, rules_version=site.version)
        assert built is not None
    anna = site.client("anna", sources=("city",))
    html = anna.get("/worklist").text
    assert '<a href="/worklist?view=mine" aria-current="page">' in html  # she has cases: hers first
    assert html.index('id="morning-heading"') < html.index('id="live-heading"')  # the morning list first
    morning = html.split('id="live-heading"')[0]
    assert "Ivanova Maria Petrovna" in morning and "Petrov Ivan Ilyich" not in morning  # bob's
    entries = site.log("ui.worklist")
    assert len(entries) == 1  # one entry for the whole page: the morning list and the live list
    shown = set(entries[0].patients)
    assert shown == {(site.ids["city"], p) for p in ("p1", "p2", "p3", "p4", "p5")}


def test_a_refused_filter_keeps_the_form_and_says_why(site: Site) -> None:
    anna = site.client("anna", sources=("city",))
    words = "one two three four five six seven"
    response = anna.get("/worklist", params={"view": "all", "q": words, "ward": "Surgery 2"})
    assert response.status_code == 422
    html = response.text
    assert f'value="{words}"' in html and 'aria-invalid="true" aria-describedby="f-q-error"' in html
    assert 'id="f-q-error">Search for at most 6 words and 100 characters' in html
    assert '<option value="Surgery 2" selected>' in html  # the other choices stay as chosen
    assert "Morning list" in html  # the rest of the page is there
    status = anna.get("/worklist", params={"view": "all", "status": "done"})
    assert status.status_code == 422 and 'id="f-status-error">Choose one of the listed values.' in status.text
    stale = anna.get("/worklist", params={"view": "all", "after": "garbage"})
    assert stale.status_code == 422 and "That page link is out of date" in stale.text


def test_the_worklist_in_russian(site: Site) -> None:
    dmitry = site.client("dmitry", sources=("city",), locale="ru")
    html = dmitry.get("/worklist", params={"view": "all", "q": "MR-1001"}).text
    for text in ("ФИО или номер карты", "Найдена 1 госпитализация с флагом", "Женщина · 86 лет", "24 дня в больнице"):  # noqa: RUF001
        assert text in html, text
    assert "Без координатора" in html and "Сортировка" in html


# -- the bed board -----------------------------------------------------------------------------------


def test_the_board_lists_unflagged_inpatients_with_totals(site: Site) -> None:
    boris = site.client("boris", role="bed_manager", sources=("city",))
    html = boris.get("/board").text
    assert "Ivanova Olga" in html and "no case" in html  # never flagged: in a bed all the same
    assert "Ivanova Vera" not in html and "Ivanova Elena" not in html  # her stay ended; another hospital
    by_ward = html.split('class="totals-table by-ward')[1].split("</table>")[0]
    cells = re.findall(r'<th scope="row">([^<]+)</th>\s*<td class="num">(\d+)</td>', by_ward)
    assert cells == [("Surgery 2", "2"), ("Therapy 3", "4"), ("All", "6")]
    assert '<span class="stat-value">6</span>' in html
    entries = site.log("ui.board")
    assert len(entries) == 1 and len(entries[0].patients) == 6
    only = boris.get("/board", params={"ward": "Surgery 2", "destination": "none", "status": "undated"}).text
    assert "Kuznetsov Oleg" in only and "Petrov Ivan Ilyich" in only and "Ivanova Olga" not in only
    assert boris.get("/board", params={"status": "soon"}).status_code == 422
    assert boris.get("/board", params={"destination": "moon"}).status_code == 422


def test_the_csv_has_identity_columns_and_is_logged(site: Site) -> None:
    boris = site.client("boris", role="bed_manager", sources=("city",))
    body = boris.get("/board.csv", params={"ward": "Therapy 3"}).content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [r["Name"] for r in rows] == ["Ivanova Maria Petrovna", "Сидорова Анна Ёсифовна", "", "Ivanova Olga"]
    first = rows[0]
    assert (first["MRN"], first["Sex"], first["Age"], first["Days in hospital"]) == ("MR-1001", "Female", "86", "24")
    assert first["Readiness"] == "No date yet" and "1940-03-02" not in body  # the age, never the birth date
    entries = site.log("ui.board.csv")
    assert len(entries) == 1 and {p for _, p in entries[0].patients} == {"p1", "p3", "p5", "p6"}
    russian = site.client("vera", role="bed_manager", sources=("city",), locale="ru")
    header = russian.get("/board.csv").content.decode("utf-8-sig").splitlines()[0]
    assert header.startswith("Больница,Отделение,Койка,Пациент (FHIR id),ФИО,Карта №,Пол,Возраст")


def test_the_board_in_russian(site: Site) -> None:
    vera = site.client("vera", role="bed_manager", sources=("city",), locale="ru")
    html = vera.get("/board").text
    for text in ("Итоги по отделениям и направлениям", "По отделениям", "Передачи ещё нет", "Даты ещё нет", "Женщина"):
        assert text in html, text
