"""The directory's pages through the app (a signed-in session cookie): the list with filters in English
and Russian, admins' forms (add, change, refused with the field marked, import), readers who may not
edit, the nav link, and the "Suggested services" part of the case page with its Refer button."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.access.models import AccessLogEntry
from discharge_bridge.cases.assessment import put_assessment
from discharge_bridge.config import PROJECT_ROOT, Settings
from discharge_bridge.db import session_scope
from discharge_bridge.directory.models import DirectoryService
from tests.support.factories import api_client, flagged_case, make_source
from tests.ui.test_pages import Browser

pytestmark = pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)
DEMO = (PROJECT_ROOT / "mappings" / "directory_demo.csv").read_bytes()


def services_listed(html: str) -> int:
    return len(re.findall(r'href="/directory/services/\d+"', html))


def load_demo(settings: Settings) -> None:
    response = api_client(settings).post("/api/v1/directory.csv", content=DEMO, headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text


def test_the_list_filters_and_speaks_russian(settings: Settings, engine: Engine) -> None:
    load_demo(settings)
    with session_scope(engine) as session:
        make_source(session, "city")
    anna = Browser(settings, engine, "anna")
    page = anna.get("/directory")
    assert page.status_code == 200
    assert services_listed(page.text) == 15
    assert '<a href="/directory"' in page.text  # the nav link
    assert "Add a service" not in page.text and 'action="/directory/import"' not in page.text  # no admin forms
    hospice = anna.get("/directory?category=hospice").text
    assert services_listed(hospice) == 1 and "Хоспис" in hospice
    assert services_listed(anna.get("/directory?q=сиделк").text) == 1
    dmitry = Browser(settings, engine, "dmitry", locale="ru")
    russian = dmitry.get("/directory").text
    assert "Справочник услуг" in russian and "Вид помощи" in russian
    boris = Browser(settings, engine, "boris", role="bed_manager")
    assert boris.get("/directory").status_code == 403
    assert '<a href="/directory"' not in boris.get("/board").text


def test_a_service_page_shows_who_may_get_it_and_the_documents(settings: Settings, engine: Engine) -> None:
    load_demo(settings)
    with session_scope(engine) as session:
        make_source(session, "city")
        service_id = session.exec(
            select(DirectoryService.id).where(DirectoryService.code == "home-care-tverskoy")
        ).one()
    anna = Browser(settings, engine, "anna")
    page = anna.get(f"/directory/services/{service_id}").text
    assert "Справки о доходах родственников" in page and "Тверской, Мещанский" in page  # noqa: RUF001
    assert "uses the portal" in page and 'id="service-form"' not in page
    refused = anna.post(f"/directory/services/{service_id}", {"name": "x", "category": "home_care"})
    assert refused.status_code == 403
    assert anna.get("/directory/services/99999").status_code == 404


def test_admins_add_change_and_are_refused_with_the_field_marked(settings: Settings, engine: Engine) -> None:
    admin = Browser(settings, engine, "olga", role="admin")
    added = admin.post(
        "/directory/organisations/new", {"code": "csso-9", "name": "TCSO 9", "kind": "city", "active": "on"}
    )
    assert added.status_code == 303, added.text
    organisation_url = added.headers["location"].split("?")[0]
    organisation_id = organisation_url.rsplit("/", 1)[1]
    form = {
        "code": "home-9",
        "organisation_id": organisation_id,
        "name": "Home care 9",
        "category": "home_care",
        "area": "Arbat; Presnya",
        "need_social": "on",
        "documents": "passport=Passport\napplication=Application",
        "min_age": "60",
        "max_age": "50",
        "response_days": "3",
        "capacity": "yes",
        "active": "on",
        "requires_consent": "on",
    }
    refused = admin.post("/directory/services/new", form)
    assert refused.status_code == 422
    assert "min_age is above max_age" in refused.text
    assert 'value="Arbat; Presnya"' in refused.text  # as typed
    bad_age = admin.post("/directory/services/new", {**form, "max_age": "", "min_age": "-3"})
    assert bad_age.status_code == 422
    assert re.search(r'<input id="f-min_age" name="min_age"[^>]*aria-invalid="true"', bad_age.text)
    saved = admin.post("/directory/services/new", {**form, "max_age": ""})
    assert saved.status_code == 303, saved.text
    service_url = saved.headers["location"].split("?")[0]
    page = admin.get(saved.headers["location"]).text
    assert "Saved." in page and "Arbat, Presnya" in page and "Application" in page
    changed = admin.post(service_url, {**form, "max_age": "", "capacity": "waitlist", "waiting_days": "20"})
    assert changed.status_code == 303
    assert "Waiting list" in admin.get(service_url).text
    taken = admin.post("/directory/organisations/new", {"code": "csso-9", "name": "Again", "kind": "city"})
    assert taken.status_code == 422 and re.search(r'name="code"[^>]*aria-invalid="true"', taken.text)
    assert admin.post(service_url, {**form, "csrf_token": "wrong"}, csrf=False).status_code == 403
    with session_scope(engine) as session:
        stored = session.exec(select(DirectoryService).where(DirectoryService.code == "home-9")).one()
        assert stored.area == ["Arbat", "Presnya"] and stored.waiting_days == 20 and stored.needs == ["social"]


def test_admins_import_a_file_all_or_nothing(settings: Settings, engine: Engine) -> None:
    admin = Browser(settings, engine, "olga", role="admin")
    bad = DEMO.decode().replace(",home_care,", ",spa,", 1).encode()
    refused = admin.client.post(
        "/directory/import", data={"csrf_token": admin.csrf}, files={"file": ("d.csv", bad, "text/csv")}
    )
    assert refused.status_code == 422 and "<code>category</code>" in refused.text
    assert re.search(r'<td class="num">2</td><td><code>category</code></td>', refused.text)
    assert services_listed(admin.get("/directory").text) == 0
    done = admin.client.post(
        "/directory/import", data={"csrf_token": admin.csrf}, files={"file": ("d.csv", DEMO, "text/csv")}
    )
    assert done.status_code == 303 and done.headers["location"] == "/directory?done=imported"
    page = admin.get(done.headers["location"]).text
    assert "The directory was imported." in page and services_listed(page) == 15


def test_the_case_page_suggests_services_with_reasons_and_a_refer_button(settings: Settings, engine: Engine) -> None:
    load_demo(settings)
    with session_scope(engine) as session:
        source_id = make_source(session, "city").id or 0
        case = flagged_case(session, source_id, concepts=("lives_alone", "dementia"))
        put_assessment(
            session,
            case,
            actor="anna",
            domains={"social": {"findings": "", "needs": ["help at home"]}},
            daily_living={"cook": "dependent", "wash": "needs_help"},
            living_situation={},
            expected_version=None,
        )
        other = flagged_case(session, make_source(session, "other").id or 0, "adm9", "p9")
        case_id, other_id = case.id, other.id
    anna = Browser(settings, engine, "anna")
    case_page = anna.get(f"/cases/{case_id}").text
    assert f'hx-get="/cases/{case_id}/suggestions"' in case_page and "Suggested services" in case_page
    part = anna.client.get(f"/cases/{case_id}/suggestions", headers={"HX-Request": "true"})
    assert part.status_code == 200 and "<html" not in part.text
    assert "lives alone + cannot cook + cannot wash → Home care" in part.text
    assert "dementia → Gerontology centre" in part.text and "waiting list: 30 days" in part.text
    assert f'action="/cases/{case_id}/referrals"' in part.text and 'name="service_id"' in part.text
    assert "Паспорт" in part.text  # the documents needed
    page = anna.get(f"/cases/{case_id}/suggestions")
    assert "<html" in page.text and "Why it fits" in page.text
    assert anna.get(f"/cases/{other_id}/suggestions").status_code == 404
    dmitry = Browser(settings, engine, "dmitry", locale="ru")
    russian = dmitry.client.get(f"/cases/{case_id}/suggestions", headers={"HX-Request": "true"}).text
    assert "Почему подходит" in russian and "живёт один + не может готовить" in russian
    with session_scope(engine) as session:
        routes = {e.route for e in session.exec(select(AccessLogEntry).where(AccessLogEntry.username == "anna"))}
    assert "page.case_suggestions" in routes
