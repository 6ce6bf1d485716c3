"""The coordinator's morning in a real browser (Debian's Chromium at a tablet's 1024x768): the morning
list, a flagged case worked through assessment, task and a handoff to a gerontology centre until it
completes, each step on the timeline; another hospital's coordinator cannot open the case; Russian.

The harness's server runs no scheduler, so the morning list is built before the tests by the real
builder (``worklists.morning.build_morning_list``) on the server's SQLite file, as the morning job
would, after two tasks are given due times (the demo's own list of today, made before them, is
replaced). Screenshots of each page go to /tmp/discharge_bridge_ui_*.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

import pytest
from sqlmodel import select

from discharge_bridge.cases.models import Case
from discharge_bridge.cases.tasks.models import Task, TaskKind
from discharge_bridge.cases.tasks.service import create_task
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import get_engine, session_scope, utcnow
from discharge_bridge.risk import loading
from discharge_bridge.sources.service import get_source
from discharge_bridge.users.roles import Role
from discharge_bridge.users.service import add_user
from discharge_bridge.worklists.morning import build_morning_list, latest_for, local_day
from tests.ui.conftest import LiveServer, sign_in

pytestmark = pytest.mark.slow
SHOTS = "/tmp/discharge_bridge_ui_{}.png"


@dataclass
class Morning:
    case_id: int  # one of anna's flagged cases, with a task due today and one overdue
    dmitry_case_id: int


@pytest.fixture(scope="module")
def morning(live_server: LiveServer) -> Iterator[Morning]:
    """Tasks due on one of anna's cases, the demo hospital's morning list, and a second hospital
    ("north") with its own coordinator olga, written to the live server's database."""
    settings = Settings(data_dir=live_server.data_dir)
    engine = get_engine(settings)
    with session_scope(engine) as session:
        cases = session.exec(select(Case).where(Case.priority == "high").order_by(Case.id)).all()  # type: ignore[arg-type]
        guardians = set(session.exec(select(Task.case_id).where(Task.kind == TaskKind.find_guardian)))
        anna = next(c for c in cases if c.coordinator == "anna" and c.id not in guardians)  # an adult's case
        dmitry = next(c for c in cases if c.coordinator == "dmitry")
        now = utcnow()
        _, day_end = local_day(get_source(session, "demo"), now)
        later_today = now + (day_end - now) / 2  # due today in the hospital's zone, whenever the test runs
        create_task(
            session,
            anna,
            actor="anna",
            description="Call the daughter",
            domain="social",
            due_at=later_today,
        )
        create_task(
            session, anna, actor="anna", description="Order a walker", domain="material", due_at=now - timedelta(days=1)
        )
        rules = loading.rule_set(settings.mappings_dir)
        demo = get_source(session, "demo")
        for made_before_the_tasks in latest_for(session, [demo.id or 0]):  # the demo's own list of today
            session.delete(made_before_the_tasks)
        session.flush()
        built = build_morning_list(session, demo, now=now, rules_version=rules.version, generated_by="test")
        assert built is not None
        on_annas_case = {(t["description"], t["overdue"]) for t in built.items["due_tasks"] if t["case_id"] == anna.id}
        assert on_annas_case == {("Call the daughter", False), ("Order a walker", True)}
        # At LIVE_CLOCK (09:00 in Moscow) the demo's three "find parent or guardian" tasks, due four
        # hours after their cases opened at load, are due later today as well.
        assert built.items["counts"]["due_today"] == 4 and built.items["counts"]["overdue"] == 1
        add_source(
            session,
            name="north",
            hospital="North Hospital",
            base_url="https://ehr.north.example/fhir/r4",
            timezone="Europe/Moscow",
        )
        add_user(
            session,
            username="olga",
            display_name="Olga N.",
            role=Role.coordinator,
            sources=["north"],
            password=live_server.password,
        )
        ids = Morning(anna.id or 0, dmitry.id or 0)
    yield ids


def _open(page: Any, section: str) -> Any:
    """A collapsible part of the case page, opened as a person would (a click on its heading)."""
    part = page.locator(f"#{section}")
    if part.get_attribute("open") is None:
        part.locator("summary").first.click()
    return part


def _submit(page: Any, button: str, done: str) -> None:
    """Press a form's button and wait for the page it redirects to, with its message."""
    page.get_by_role("button", name=button, exact=True).click()
    page.wait_for_load_state()
    assert page.get_by_role("status").inner_text() == done, page.url


def test_a_coordinator_works_a_flagged_case_from_the_morning_list(
    live_server: LiveServer, morning: Morning, page: Any
) -> None:
    sign_in(page, live_server, "anna")
    assert urlparse(page.url).path == "/worklist"
    assert page.get_by_role("heading", level=1).inner_text() == "Worklist"
    page.screenshot(path=SHOTS.format("worklist"), full_page=False)
    card = page.locator("article.morning")
    assert "Demo City Hospital No. 1" in card.get_by_role("heading", level=3).inner_text()
    assert card.locator("td.overdue").first.inner_text().endswith("overdue")  # Order a walker, due yesterday
    assert "Call the daughter" in card.inner_text() and "Condition/" in card.inner_text()
    case_link = card.get_by_role("link", name=f"Case #{morning.case_id}", exact=True).first
    case_link.click()
    page.wait_for_load_state()
    assert urlparse(page.url).path == f"/cases/{morning.case_id}"
    assert page.locator(".case-no").inner_text() == f"Case #{morning.case_id}"
    assert page.get_by_role("heading", level=1).inner_text()  # the patient's name leads the page
    page.screenshot(path=SHOTS.format("case"), full_page=False)

    # the needs assessment: a domain, daily living, and the bedside living situation
    page.locator("#social_findings").fill("Lives in a third-floor flat without a lift")
    page.locator("#social_needs").fill("home care\nshopping help")
    page.get_by_label("Cook", exact=True).select_option("needs_help")
    page.get_by_label("Go outside", exact=True).select_option("dependent")
    page.get_by_label("Housing", exact=True).select_option("own_home")
    _submit(page, "Save the assessment", "Needs assessment saved.")
    assert page.locator("#social_needs").input_value() == "home care\nshopping help"

    # a task of the action plan
    page.get_by_label("What is to be done").fill("Apply for a place at the gerontology centre")
    page.get_by_label("Domain", exact=True).select_option("social")
    _submit(page, "Add the task", "Task added.")
    row = page.locator("#plan article.task", has_text="Apply for a place at the gerontology centre")
    row.get_by_role("button", name=re.compile("^Start")).click()
    page.wait_for_load_state()
    assert page.locator("#plan article.task", has_text="Apply for a place").get_by_text("In progress").is_visible()

    # the handoff to a gerontology centre, its documents, through to completed
    _open(page, "handoffs")
    page.get_by_label("Destination").select_option("gerontology_centre")
    page.get_by_label("Receiving organisation").fill("City Gerontology Centre")
    _submit(page, "Propose the handoff", "Handoff proposed.")
    page.screenshot(path=SHOTS.format("case-handoff"), full_page=False)
    documents = page.locator("article.handoff input[name=documents]")
    assert documents.count() == 6
    for n in range(documents.count()):  # the handover needs every one of them (or a reason to go without)
        documents.nth(n).check()
    _submit(page, "Save the checklist", "Documents checklist saved.")
    assert page.get_by_label("Passport or other identity document").is_checked()
    for move in ("Refer", "Receiver accepted", "Schedule", "Handover completed"):
        _submit(page, move, "Handoff status changed.")
    handoff = page.locator("article.handoff")
    assert "Gerontology centre: City Gerontology Centre" in handoff.get_by_role("heading", level=3).inner_text()
    assert "Completed" in handoff.get_by_role("heading", level=3).inner_text()
    assert handoff.get_by_role("button").count() == 1  # completed is final: only the checklist's save

    timeline = _open(page, "timeline").locator("tbody").inner_text()
    for step in (
        "Needs assessment updated",
        "Task added\nApply for a place at the gerontology centre",
        "Requested → In progress",
        "Handoff proposed\nGerontology centre",
        "Documents ready: Passport or other identity document",
        "Proposed → Referred",
        "Scheduled → Completed",
    ):
        assert step in timeline, step
    assert timeline.count("anna") >= 8
    page.locator("#timeline").scroll_into_view_if_needed()
    page.screenshot(path=SHOTS.format("case-timeline"), full_page=False)
    with live_server.api() as api:
        stored = api.get(f"/api/v1/cases/{morning.case_id}/handoffs").json()
    assert [(h["destination_type"], h["status"]) for h in stored] == [("gerontology_centre", "completed")]


def test_a_coordinator_of_another_hospital_can_neither_see_nor_open_the_case(
    live_server: LiveServer, morning: Morning, page: Any
) -> None:
    sign_in(page, live_server, "olga")
    assert urlparse(page.url).path == "/worklist"
    text = page.locator("main").inner_text()
    assert "demo-pat-" not in text and "0 flagged admissions" in text
    response = page.goto(f"{live_server.base_url}/cases/{morning.case_id}")
    assert response.status == 404
    assert page.get_by_role("heading", level=1).inner_text() == "Not found"
    assert "demo-pat-" not in page.content()
    page.screenshot(path=SHOTS.format("not-found"), full_page=False)


def test_a_stale_form_says_someone_else_changed_it(live_server: LiveServer, morning: Morning, browser: Any) -> None:
    first, second = (browser.new_context(viewport={"width": 1024, "height": 768}).new_page() for _ in range(2))
    for tab in (first, second):
        sign_in(tab, live_server, "dmitry")
        tab.goto(f"{live_server.base_url}/cases/{morning.dmitry_case_id}#plan")
    _open(first, "plan").locator("article.task").first.locator("div.actions").get_by_role("button").first.click()
    first.wait_for_load_state()
    _open(second, "plan").locator("article.task").first.locator("div.actions").get_by_role("button").last.click()
    second.wait_for_load_state()
    assert second.locator(".refused-notice").inner_text().startswith("Изменено другим")
    assert "Пока вы редактировали" in second.locator("#plan form.refused").inner_text()
    second.screenshot(path=SHOTS.format("stale-ru"), full_page=False)
    for tab in (first, second):
        tab.context.close()


def test_the_pages_speak_russian_to_a_russian_coordinator(live_server: LiveServer, morning: Morning, page: Any) -> None:
    sign_in(page, live_server, "dmitry")
    assert page.get_by_role("heading", level=1).inner_text() == "Рабочий список"
    assert page.get_by_role("heading", name="Утренний список").is_visible()
    page.screenshot(path=SHOTS.format("worklist-ru"), full_page=False)
    page.get_by_role("link", name=f"Случай №{morning.dmitry_case_id}", exact=True).first.click()
    page.wait_for_load_state()
    headings = page.get_by_role("heading", level=2).all_inner_texts()
    assert headings == [
        "Причины флага",
        "Готовность к выписке",
        "План действий",
        "Оценка потребностей",
        "Передача",
        "Подходящие услуги",
        "Согласие на передачу данных",
        "Направления",
        "Барьеры выписки",
        "Родственники и контакты",
        "Оказанные услуги",
        "Скрининг (BRASS, ISAR)",
        "Хронология",
    ]
    page.get_by_text("Передать или закрыть случай", exact=True).click()
    assert page.get_by_label("Координатор", exact=True).is_visible()
    page.screenshot(path=SHOTS.format("case-ru"), full_page=False)
