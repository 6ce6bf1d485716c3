"""The case page in a real browser (Debian's Chromium at 1024x768), in English and in Russian: a handoff
blocked by a missing document until the coordinator says why it goes ahead, and refused forms that
keep what was typed (a stale assessment from a second tab, a task without a description).

Each journey works a different demo case of its coordinator (anna reads English, dmitry Russian).
Screenshots of the pages are kept under the run's pytest folder (artifacts/), never in the repository.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from discharge_bridge.cases.models import Case, CaseStatus
from discharge_bridge.config import Settings
from discharge_bridge.db import get_engine, session_scope
from tests.ui.conftest import LiveServer, sign_in

pytestmark = pytest.mark.slow

# What the pages say, per language: the journeys find buttons and fields by them, as a person would.
WORDS = {
    "en": {
        "user": "anna",
        "handoffs": "Handoffs",
        "destination": "Destination",
        "organisation": "Receiving organisation",
        "propose": "Propose the handoff",
        "proposed": "Handoff proposed.",
        "moves": ("Refer", "Receiver accepted", "Schedule"),
        "moved": "Handoff status changed.",
        "passport": "Passport or other identity document",
        "save_checklist": "Save the checklist",
        "saved_checklist": "Documents checklist saved.",
        "complete": "Handover completed",
        "reason": "Completing without them? Say why",
        "missing": ("Written consent of the receiving relatives", "Medical report for social services (form 027/u)"),
        "not_saved": "Not saved",
        "scheduled": "Scheduled",
        "completed": "Completed",
        "overridden": "Completed without every document",
        "timeline": "Timeline",
        "completed_without": "Completed without: Written consent of the receiving relatives",
        "save_assessment": "Save the assessment",
        "assessment_saved": "Needs assessment saved.",
        "stale": "Someone else changed this while you were editing it",
        "what": "What is to be done",
        "domain": "Domain",
        "owner": "Owner",
        "add_task": "Add the task",
        "fill": "Fill this in.",
        "task_added": "Task added.",
    },
    "ru": {
        "user": "dmitry",
        "handoffs": "Передача",
        "destination": "Направление",
        "organisation": "Принимающая организация",
        "propose": "Предложить передачу",
        "proposed": "Передача предложена.",
        "moves": ("Направить", "Учреждение согласилось", "Назначить дату"),
        "moved": "Статус передачи изменён.",
        "passport": "Паспорт или иной документ, удостоверяющий личность",
        "save_checklist": "Сохранить перечень",
        "saved_checklist": "Перечень документов сохранён.",
        "complete": "Передача состоялась",
        "reason": "Завершить без них? Укажите причину",
        "missing": (
            "Письменное согласие принимающих родственников",
            "Выписка из медицинской карты для органов соцзащиты (форма 027/у)",  # noqa: RUF001
        ),
        "not_saved": "Не сохранено",  # noqa: RUF001
        "scheduled": "Дата назначена",
        "completed": "Завершено",
        "overridden": "Завершено не со всеми документами",  # noqa: RUF001
        "timeline": "Хронология",
        "completed_without": "Завершено без: Письменное согласие принимающих родственников",
        "save_assessment": "Сохранить оценку",
        "assessment_saved": "Оценка потребностей сохранена.",
        "stale": "Пока вы редактировали, это изменил кто-то другой",
        "what": "Что нужно сделать",
        "domain": "Сфера",
        "owner": "Ответственный",
        "add_task": "Добавить задачу",
        "fill": "Заполните это поле.",
        "task_added": "Задача добавлена.",
    },
}


@dataclass
class Cases:
    handoff: dict[str, int]  # per language: an open case of its coordinator, for the handoff journey
    forms: dict[str, int]  # per language: another one, for the refused forms
    shots: Path


@pytest.fixture(scope="module")
def cases(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cases]:
    engine = get_engine(Settings(data_dir=live_server.data_dir))
    with session_scope(engine) as session:
        mine = {
            language: [
                c.id or 0
                for c in session.exec(
                    select(Case)
                    .where(Case.coordinator == words["user"], Case.status == CaseStatus.open)
                    .order_by(col(Case.id))
                )
            ]
            for language, words in WORDS.items()
        }
    yield Cases(
        handoff={language: ids[-1] for language, ids in mine.items()},
        forms={language: ids[-2] for language, ids in mine.items()},
        shots=tmp_path_factory.mktemp("artifacts"),
    )


def _open(page: Any, section: str) -> Any:
    """A collapsible part of the case page, opened as a person would (a click on its heading)."""
    part = page.locator(f"#{section}")
    if part.get_attribute("open") is None:
        part.locator("summary").first.click()
    return part


def _press(page: Any, scope: Any, button: str, said: str) -> None:
    """Press a button and wait for the page it redirects to, with its message."""
    scope.get_by_role("button", name=button, exact=True).click()
    page.wait_for_load_state()
    assert page.get_by_role("status").first.inner_text() == said, page.url


@pytest.mark.parametrize("language", ["en", "ru"])
def test_a_handoff_blocked_by_a_missing_document(
    live_server: LiveServer, cases: Cases, page: Any, language: str
) -> None:
    words = WORDS[language]
    case_id = cases.handoff[language]
    sign_in(page, live_server, str(words["user"]))
    page.goto(f"{live_server.base_url}/cases/{case_id}")
    assert page.get_by_role("heading", level=1).inner_text()  # the person's name leads the page
    section = _open(page, "handoffs")
    propose = section.locator(f'form[action="/cases/{case_id}/handoffs"]')
    propose.get_by_label(str(words["destination"]), exact=True).select_option("relatives")
    propose.get_by_label(str(words["organisation"]), exact=True).fill("Olga, the daughter")
    _press(page, propose, str(words["propose"]), str(words["proposed"]))
    handoff = page.locator("article.handoff").first
    for move in words["moves"]:
        _press(page, page.locator("article.handoff").first, move, str(words["moved"]))
    handoff.get_by_label(str(words["passport"]), exact=True).check()
    _press(page, handoff, str(words["save_checklist"]), str(words["saved_checklist"]))

    # completing now is refused: two documents are missing, and no reason was given
    handoff.get_by_role("button", name=str(words["complete"]), exact=True).click()
    page.wait_for_load_state()
    reason = page.get_by_label(str(words["reason"]), exact=True)
    assert reason.get_attribute("aria-invalid") == "true" and reason.evaluate("e => e === document.activeElement")
    message = page.locator(f"#{reason.get_attribute('aria-describedby')}").inner_text()
    for document in words["missing"]:
        assert document in message, document
    assert str(words["not_saved"]) in page.locator(".refused-notice").inner_text()
    handoff = page.locator("article.handoff").first
    assert str(words["scheduled"]) in handoff.get_by_role("heading", level=3).inner_text()
    page.screenshot(path=cases.shots / f"case-handoff-blocked-{language}.png", full_page=False)

    # with the reason it completes, and the override is on the handoff and in the timeline
    reason.fill("The daughter brings the consent and the report on Monday")
    _press(page, handoff, str(words["complete"]), str(words["moved"]))
    handoff = page.locator("article.handoff").first
    assert str(words["completed"]) in handoff.get_by_role("heading", level=3).inner_text()
    override = handoff.locator(".override").inner_text()
    assert str(words["overridden"]) in override and "The daughter brings the consent" in override
    timeline = _open(page, "timeline").locator("tbody").inner_text()
    assert str(words["completed_without"]) in timeline and "The daughter brings the consent" in timeline
    with live_server.api() as api:
        stored = api.get(f"/api/v1/cases/{case_id}/handoffs").json()
    assert [h["status"] for h in stored] == ["completed"]
    assert stored[0]["documents_override"]["by"] == words["user"]
    assert stored[0]["documents_override"]["missing"] == ["consent_relatives", "medical_report"]
    page.goto(f"{live_server.base_url}/cases/{case_id}")
    page.screenshot(path=cases.shots / f"case-{language}-1024x768.png", full_page=False)


@pytest.mark.parametrize("language", ["en", "ru"])
def test_a_refused_form_keeps_its_input(
    live_server: LiveServer, cases: Cases, page: Any, browser: Any, language: str
) -> None:
    words = WORDS[language]
    case_id = cases.forms[language]
    url = f"{live_server.base_url}/cases/{case_id}"
    sign_in(page, live_server, str(words["user"]))
    page.goto(url)
    other = browser.new_context(viewport={"width": 1024, "height": 768}).new_page()  # a second tablet
    sign_in(other, live_server, str(words["user"]))
    other.goto(url)

    # both open the needs assessment; the other saves first, so this one's save is stale
    mine = "Lives with a cat; the neighbour has the keys"
    _open(page, "assessment").locator("#social_findings").fill(mine)
    _open(other, "assessment").locator("#social_findings").fill("Daughter visits daily")
    _press(other, other.locator("#assessment"), str(words["save_assessment"]), str(words["assessment_saved"]))
    other.context.close()
    page.locator("#assessment").get_by_role("button", name=str(words["save_assessment"]), exact=True).click()
    page.wait_for_load_state()
    assert str(words["stale"]) in page.locator(".refused-notice").inner_text()
    assert page.locator("#social_findings").input_value() == mine  # kept, not lost
    assert str(words["stale"]) in page.locator("#assessment form.refused").inner_text()  # said by the form
    page.screenshot(path=cases.shots / f"case-stale-kept-{language}.png", full_page=False)
    _press(page, page.locator("#assessment"), str(words["save_assessment"]), str(words["assessment_saved"]))
    assert page.locator("#social_findings").input_value() == mine  # saved on purpose, over the other one

    # a task without a description: refused, with the owner, domain and due time as typed
    plan = _open(page, "plan")
    add = plan.locator(f'form[action="/cases/{case_id}/tasks"]')
    add.get_by_label(str(words["what"]), exact=True).fill("   ")
    add.get_by_label(str(words["domain"]), exact=True).select_option("legal")
    add.get_by_label(str(words["owner"]), exact=True).fill("dmitry")  # a coordinator of the hospital
    add.locator('input[name="due_at"]').fill("2026-03-12T10:00")
    add.get_by_role("button", name=str(words["add_task"]), exact=True).click()
    page.wait_for_load_state()
    add = page.locator("#plan form.refused")
    what = add.get_by_label(str(words["what"]), exact=True)
    assert what.get_attribute("aria-invalid") == "true"
    assert page.locator(f"#{what.get_attribute('aria-describedby')}").inner_text() == words["fill"]
    assert add.get_by_label(str(words["owner"]), exact=True).input_value() == "dmitry"
    assert add.get_by_label(str(words["domain"]), exact=True).input_value() == "legal"
    assert add.locator('input[name="due_at"]').input_value() == "2026-03-12T10:00"
    page.screenshot(path=cases.shots / f"case-refused-kept-{language}.png", full_page=False)
    what.fill("Ask the court about the guardianship")
    _press(page, add, str(words["add_task"]), str(words["task_added"]))
    assert "Ask the court about the guardianship" in page.locator("#plan").inner_text()
