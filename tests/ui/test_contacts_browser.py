"""A coordinator calls a daughter and logs the outcome, in a real browser (Debian's Chromium at
1024x768), in English and in Russian: the daughter's number is a click-to-call link, the outcome is
in the contact log and on the timeline, and the case's "find relatives" task is completed by it.

The demo's patients demo-pat-001 and demo-pat-008 each have a daughter in the EHR (a RelatedPerson
with a phone). Before the journeys, each of their cases gets a "find relatives" task, as an action
plan would give it. Screenshots of each page are kept under the run's pytest folder (artifacts/).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from discharge_bridge.cases.contacts.plan import FIND_RELATIVES_TEXT
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.tasks.models import TaskDomain, TaskKind, TaskStatus
from discharge_bridge.cases.tasks.service import create_task
from discharge_bridge.config import Settings
from discharge_bridge.db import get_engine, session_scope
from tests.ui.conftest import LiveServer, sign_in

pytestmark = pytest.mark.slow


@dataclass
class Journey:
    case_id: int
    task_id: int  # the case's "find relatives" task
    daughter: str  # her name, as the EHR has it
    phone: str


@dataclass
class Demo:
    english: Journey  # demo-pat-001, worked by anna
    russian: Journey  # demo-pat-008, worked by dmitry
    shots: Path


def _journey(session: Any, patient: str) -> Journey:
    case = session.exec(select(Case).where(Case.patient_fhir_id == patient)).one()
    task = create_task(
        session,
        case,
        actor="planner",
        kind=TaskKind.find_relatives,
        domain=TaskDomain.social,
        description=FIND_RELATIVES_TEXT,
    )
    return Journey(case.id or 0, task.id or 0, daughter="", phone="")  # the daughter: read through the API


@pytest.fixture(scope="module")
def demo(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    engine = get_engine(Settings(data_dir=live_server.data_dir))
    with session_scope(engine) as session:
        english, russian = _journey(session, "demo-pat-001"), _journey(session, "demo-pat-008")
    with live_server.api() as api:
        for journey in (english, russian):
            contacts = api.get(f"/api/v1/cases/{journey.case_id}/contacts").json()
            daughter = next(c for c in contacts if c["relationship_code"] == "DAU")
            journey.daughter, journey.phone = daughter["name"], daughter["phones"][0]
    yield Demo(english, russian, tmp_path_factory.mktemp("artifacts"))


def _log_a_call(page: Any, journey: Journey, labels: dict[str, str], outcome: str, note: str) -> None:
    section = page.locator("#contacts")
    if section.get_attribute("open") is None:
        section.locator("summary").first.click()
    link = section.get_by_role("link", name=journey.phone, exact=True)
    assert link.get_attribute("href") == "tel:" + re.sub(r"[^0-9+]", "", journey.phone)
    form = page.locator("#contact-log-form")
    form.get_by_label(labels["contact"], exact=True).select_option(label=f"{journey.daughter} ({labels['daughter']})")
    form.get_by_label(labels["outcome"], exact=True).select_option(outcome)
    form.get_by_label(labels["note"], exact=True).fill(note)
    form.get_by_role("button", name=labels["record"], exact=True).click()
    page.wait_for_load_state()


def _timeline(page: Any) -> str:
    section = page.locator("#timeline")
    if section.get_attribute("open") is None:
        section.locator("summary").first.click()
    return str(section.locator("tr.event-contact_logged").first.inner_text())


def _task_on_the_page(page: Any, task_id: int) -> str:
    """A finished task as the plan shows it (its section and the finished tasks opened, as a person would)."""
    for part in (page.locator("#plan"), page.locator("#plan details.finished")):  # finished tasks fold away
        if part.get_attribute("open") is None:
            part.locator("summary").first.click()
    return str(page.locator(f"#task-{task_id}").inner_text())


def _task_status(live_server: LiveServer, task_id: int) -> str:
    with live_server.api() as api:
        return str(api.get(f"/api/v1/tasks/{task_id}").json()["status"])


def test_a_coordinator_calls_a_daughter_and_logs_the_outcome(live_server: LiveServer, demo: Demo, page: Any) -> None:
    journey = demo.english
    sign_in(page, live_server, "anna")
    page.goto(f"{live_server.base_url}/cases/{journey.case_id}")
    assert page.locator("#contacts").get_attribute("open") is not None  # a search is open: shown open
    page.locator("#contacts").scroll_into_view_if_needed()
    page.screenshot(path=demo.shots / "contacts-en.png", full_page=False)
    labels = {
        "contact": "Contact",
        "daughter": "Daughter",
        "outcome": "Result",
        "note": "Note",
        "record": "Record the attempt",
    }
    _log_a_call(page, journey, labels, "agreed_to_care", "Will take her mother home on Friday")

    assert page.get_by_role("status").inner_text() == "Contact attempt recorded; the search it answers is complete."
    log = page.locator("#contacts table").last.inner_text()
    assert journey.daughter in log and "Agreed to care" in log and "Will take her mother home on Friday" in log
    event = _timeline(page)
    assert "Contact attempt" in event and f"Call: {journey.daughter} (Daughter)" in event
    assert "Agreed to care" in event and "anna" in event
    assert _task_status(live_server, journey.task_id) == TaskStatus.completed
    assert "Completed" in _task_on_the_page(page, journey.task_id)
    page.locator("#timeline").scroll_into_view_if_needed()
    page.screenshot(path=demo.shots / "contacts-timeline-en.png", full_page=False)


def test_a_russian_coordinator_calls_a_daughter_and_logs_the_outcome(
    live_server: LiveServer, demo: Demo, page: Any
) -> None:
    journey = demo.russian
    sign_in(page, live_server, "dmitry")
    page.goto(f"{live_server.base_url}/cases/{journey.case_id}")
    section = page.locator("#contacts")
    assert section.get_by_role("heading", level=2).inner_text() == "Родственники и контакты"
    assert "Дочь" in section.locator("table").first.inner_text()
    page.screenshot(path=demo.shots / "contacts-ru.png", full_page=False)
    labels = {
        "contact": "Контакт",
        "daughter": "Дочь",
        "outcome": "Результат",
        "note": "Примечание",
        "record": "Записать попытку",
    }
    _log_a_call(page, journey, labels, "reached", "Перезвонит вечером")

    flash = page.get_by_role("status").inner_text()
    assert flash == "Попытка связаться записана; поиск, на который она отвечает, завершён."
    event = _timeline(page)
    assert "Попытка связаться" in event and f"Звонок: {journey.daughter} (Дочь)" in event and "Дозвонились" in event
    assert _task_status(live_server, journey.task_id) == TaskStatus.completed
    assert "Завершено" in _task_on_the_page(page, journey.task_id)
    with live_server.api() as api:
        log = api.get(f"/api/v1/cases/{journey.case_id}/contact-log").json()
    assert [(e["contact_name"], e["outcome"], e["actor"]) for e in log] == [(journey.daughter, "reached", "dmitry")]
    page.screenshot(path=demo.shots / "contacts-timeline-ru.png", full_page=False)
