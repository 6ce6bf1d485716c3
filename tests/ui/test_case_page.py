"""The case page around the person (TestClient with a browser's session cookie, the clock fixed): who the
patient is first and every view in the access log; sections opened by what needs attention; tasks and
handoffs edited in place with the API's 409 on a stale version; a handoff that cannot complete with
documents missing unless overridden with a reason; the printable plan; refused forms that keep what
was typed, with the message next to the field, in English and Russian."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from discharge_bridge.access import AccessQuery, search_access
from discharge_bridge.app import create_app
from discharge_bridge.cases.handoffs.models import DestinationType, Handoff, HandoffStatus
from discharge_bridge.cases.handoffs.service import create_handoff, update_handoff
from discharge_bridge.cases.models import Case, CaseEvent
from discharge_bridge.cases.repository import get_assessment
from discharge_bridge.cases.tasks.models import Task, TaskDomain
from discharge_bridge.cases.tasks.service import create_task
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import update_source
from discharge_bridge.db import session_scope
from discharge_bridge.deps import SESSION_COOKIE
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.users.service import get_user, start_session
from tests.support.factories import api_client, flagged_case, make_source, make_user, put_encounter

pytestmark = pytest.mark.clock
NOW = datetime(2026, 11, 13, 9, 0, tzinfo=UTC)  # 12:00 in Moscow; admitted 1 Nov 09:30 Moscow time
PERSON = {
    "name": [{"use": "official", "family": "Ivanova", "given": ["Maria", "Petrovna"]}],
    "gender": "female",
    "birthDate": "1938-05-14",
    "identifier": [
        {
            "system": "urn:oid:1.2.643.5.1.13",
            "value": "MRN-40021",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
        }
    ],
    "telecom": [{"system": "phone", "value": "+7 900 555 12 34", "use": "home"}],
    "address": [{"line": ["Lenina 5, kv. 12"], "city": "Moscow"}],
}


class Browser:
    """A TestClient holding a signed-in session cookie and the CSRF token of its forms."""

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
def case_id(engine: Engine, clock: None) -> int:
    """Source "city" (Moscow) with one flagged admission of Maria Ivanova on ward 3, bed 12: anna's case."""
    with session_scope(engine) as session:
        city = make_source(session, "city").id or 0
        update_source(session, "city", {"timezone": "Europe/Moscow"})
        case = flagged_case(session, city, "adm1", "p1", concepts=("lives_alone", "elderly"))
        put_encounter(session, city, "adm1", "p1", person=PERSON)  # the same stay, now with who she is
        stay = session.exec(select(EncounterSnapshot).where(EncounterSnapshot.fhir_id == "adm1")).one()
        stay.ward, stay.bed = "Ward 3", "12"
        case.coordinator = "anna"
        session.add_all([stay, case])
        session.flush()
        return case.id or 0


@pytest.fixture
def anna(settings: Settings, engine: Engine, clock: None) -> Browser:
    return Browser(settings, engine, "anna", sources=("city",))


def _task(engine: Engine, case_id: int, description: str, **values: Any) -> Task:
    with session_scope(engine) as session:
        case = session.get(Case, case_id)
        assert case is not None
        return create_task(session, case, actor="anna", description=description, domain=TaskDomain.social, **values)


def _scheduled_handoff(engine: Engine, case_id: int, settings: Settings, *, documents: bool = False) -> Handoff:
    """A handoff to the relatives moved to scheduled; its documents ticked when ``documents``."""
    with session_scope(engine) as session:
        case = session.get(Case, case_id)
        assert case is not None
        handoff = create_handoff(
            session,
            case,
            actor="anna",
            destination_type=DestinationType.relatives,
            mappings_dir=settings.mappings_dir,
            organisation="The daughter, Olga",
        )
        for status in (HandoffStatus.referred, HandoffStatus.accepted, HandoffStatus.scheduled):
            update_handoff(session, case, handoff, actor="anna", expected_version=handoff.version, status=status)
            session.flush()
        if documents:
            ticks = {str(d["code"]): True for d in handoff.documents}
            update_handoff(session, case, handoff, actor="anna", expected_version=handoff.version, documents=ticks)
            session.flush()
        return handoff


def _row(engine: Engine, model: type[Any], row_id: int) -> Any:
    with session_scope(engine) as session:
        return session.get(model, row_id)


def _events(engine: Engine, case_id: int) -> list[CaseEvent]:
    with session_scope(engine) as session:
        return list(session.exec(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(col(CaseEvent.id))))


def _part(page: str, section: str) -> str:
    """The HTML of one collapsible section (``<details id=...>``)."""
    return page.split(f'id="{section}"', 1)[1].split("</details>\n", 1)[0]


def _opened(page: str) -> set[str]:
    return set(re.findall(r'<details class="card part" id="([a-z]+)" open>', page))


def _form(page: str, action: str) -> str:
    """The HTML of the form posting to ``action`` (the first, when several do)."""
    found = re.search(rf'<form method="post" action="{re.escape(action)}"[^>]*>.*?</form>', page, flags=re.S)
    assert found is not None, action
    return found.group(0)


# -- who, first; and who looked ---------------------------------------------------------------------------


def test_the_page_leads_with_the_person_and_each_view_is_in_the_access_log(
    engine: Engine, settings: Settings, case_id: int, anna: Browser
) -> None:
    page = anna.get(f"/cases/{case_id}").text
    header = page.split('id="header"', 1)[1].split("</section>", 1)[0]
    assert '<h1 id="case-heading">Ivanova Maria Petrovna</h1>' in header
    for shown in ("88 years", "female", "MRN-40021", "Ward 3", "12", "1 Nov 2026", "12 days in hospital"):
        assert shown in header, shown
    assert '<a href="tel:+79005551234">+7 900 555 12 34</a>' in header
    assert "Lenina 5, kv. 12" in unescape(header) and "Moscow" in header
    assert "<title>Case #" in page and "Ivanova" not in page.split("</title>")[0]  # not in the tab or history
    # why flagged, readiness, barriers and destination before the plan; the plan before the other parts
    order = [page.index(f'id="{part}"') for part in ("header", "flags", "readiness", "plan", "assessment")]
    assert order == sorted(order)
    assert "Condition/lives_alone" in page.split('id="flags"', 1)[1].split("</section>", 1)[0]
    anna.get(f"/cases/{case_id}/plan/print")
    with session_scope(engine) as session:
        case = session.get(Case, case_id)
        assert case is not None
        views = search_access(session, AccessQuery(username="anna"))
    assert [(v.route, v.patients) for v in views] == [
        ("ui.case.plan_print", ((case.source_id, "p1"),)),
        ("ui.case", ((case.source_id, "p1"),)),
    ]


def test_the_page_speaks_russian_to_a_russian_coordinator(
    settings: Settings, engine: Engine, case_id: int, clock: None
) -> None:
    dmitry = Browser(settings, engine, "dmitry", sources=("city",), locale="ru")
    page = dmitry.get(f"/cases/{case_id}").text
    header = page.split('id="header"', 1)[1].split("</section>", 1)[0]
    for shown in ("88 лет", "женщина", "Отделение", "12 дней в больнице", "Телефон", "Адрес"):
        assert shown in header, shown
    headings = re.findall(r'<h2 id="[a-z]+-heading">([^<]+)</h2>', page)
    assert headings[:4] == ["Причины флага", "Готовность к выписке", "План действий", "Оценка потребностей"]


def test_sections_open_by_what_needs_attention(engine: Engine, settings: Settings, case_id: int, anna: Browser) -> None:
    page = anna.get(f"/cases/{case_id}").text
    # the first visit is due later (no due time): the plan is closed; nobody has assessed: assessment open
    assert _opened(page) == {"assessment"}
    assert '<span class="part-note">not assessed yet</span>' in page
    _task(engine, case_id, "Order a walker", due_at=NOW - timedelta(days=1))
    _scheduled_handoff(engine, case_id, settings)
    page = anna.get(f"/cases/{case_id}").text
    assert _opened(page) == {"assessment", "plan", "handoffs"}
    assert '<span class="part-note">1 overdue</span>' in _part(page, "plan").split("</summary>")[0]
    next_task = page.split('class="next-task', 1)[1].split("</p>", 1)[0]
    assert "Order a walker" in next_task and "overdue" in next_task
    assert "documents missing" in _part(page, "handoffs").split("</summary>")[0]
    # after a change the part the person worked in is open again
    again = anna.get(f"/cases/{case_id}?done=barrier_added").text
    assert "barriers" in _opened(again)


# -- in-place edits ---------------------------------------------------------------------------------------


def test_a_task_is_edited_in_place_and_a_stale_edit_is_the_apis_409(
    engine: Engine, settings: Settings, case_id: int, anna: Browser
) -> None:
    task = _task(engine, case_id, "Call the daughter")
    with session_scope(engine) as session:
        make_user(session, "boris", password=None)  # a task goes to a coordinator of the hospital
    action = f"/cases/{case_id}/tasks/{task.id}"
    page = anna.get(f"/cases/{case_id}").text
    assert f'name="version" value="{task.version}"' in _form(page, action)
    saved = anna.post(
        action,
        {"version": task.version, "owner": "boris", "due_at": "2026-11-14T10:00", "status_reason": "after 17:00"},
    )
    assert saved.status_code == 303 and saved.headers["location"] == f"/cases/{case_id}?done=task_saved#task-{task.id}"
    stored = _row(engine, Task, task.id or 0)
    assert (stored.owner, stored.status_reason) == ("boris", "after 17:00")
    assert stored.due_at == datetime(2026, 11, 14, 7, 0, tzinfo=UTC)  # 10:00 in Moscow
    same = anna.post(
        action,
        {"version": stored.version, "owner": "boris", "due_at": "2026-11-14T10:00", "status_reason": "after 17:00"},
    )
    assert same.headers["location"].startswith(f"/cases/{case_id}?done=task_unchanged")
    # another tab still holds the first version: refused as the API refuses it, nothing written
    before = len(_events(engine, case_id))
    stale = anna.post(action, {"version": task.version, "owner": "carol", "due_at": "", "status_reason": "my note"})
    assert stale.status_code == 409
    api = api_client(settings).patch(f"/api/v1/tasks/{task.id}", json={"owner": "carol", "version": task.version})
    assert api.status_code == 409 and api.json()["current_version"] == stored.version
    assert len(_events(engine, case_id)) == before and _row(engine, Task, task.id or 0).owner == "boris"
    # the page comes back with what was typed, the current version, and says why
    form = _form(stale.text, action)
    assert 'value="carol"' in form and 'value="my note"' in form
    assert f'name="version" value="{stored.version}"' in form
    assert "Someone else changed this while you were editing it" in form
    assert '<details class="edit" open>' in stale.text.split(f'id="task-{task.id}"', 1)[1].split("</article>")[0]


def test_a_handoff_is_edited_in_place_and_a_stale_edit_is_refused(
    engine: Engine, settings: Settings, case_id: int, anna: Browser
) -> None:
    handoff = _scheduled_handoff(engine, case_id, settings)
    action = f"/cases/{case_id}/handoffs/{handoff.id}"
    edit = {"organisation": "Olga Ivanova (daughter)", "scheduled_for": "2026-11-15T11:30", "note": "by taxi"}
    saved = anna.post(action, {"version": handoff.version, **edit})
    assert saved.status_code == 303 and "done=handoff_saved" in saved.headers["location"]
    stored = _row(engine, Handoff, handoff.id or 0)
    assert (stored.organisation, stored.note) == ("Olga Ivanova (daughter)", "by taxi")
    assert stored.scheduled_for == datetime(2026, 11, 15, 8, 30, tzinfo=UTC)
    stale = anna.post(action, {"version": handoff.version, **edit, "note": "by ambulance"})
    assert stale.status_code == 409 and 'value="by ambulance"' in _form(stale.text, action)
    assert _row(engine, Handoff, handoff.id or 0).note == "by taxi"
    bad = anna.post(action, {"version": stored.version, **edit, "scheduled_for": "next week"})
    assert bad.status_code == 422
    form = _form(bad.text, action)
    assert 'aria-invalid="true"' in form.split('name="scheduled_for"')[1].split(">")[0]
    assert "Not a date and time" in form and 'value="Olga Ivanova (daughter)"' in form


# -- documents before the handover ------------------------------------------------------------------------


def test_the_page_refuses_to_complete_a_handoff_with_documents_missing_unless_a_reason_is_given(
    engine: Engine, settings: Settings, case_id: int, anna: Browser
) -> None:
    handoff = _scheduled_handoff(engine, case_id, settings)
    action = f"/cases/{case_id}/handoffs/{handoff.id}/status"
    page = anna.get(f"/cases/{case_id}").text
    complete = _form(page, action).split("</form>")[0]
    assert "Still missing" in complete and "Written consent of the receiving relatives" in complete
    before = len(_events(engine, case_id))
    refused = anna.post(action, {"version": handoff.version, "status": "completed", "override_reason": ""})
    assert refused.status_code == 409
    forms = re.findall(rf'<form method="post" action="{action}"[^>]*>.*?</form>', refused.text, flags=re.S)
    form = next(f for f in forms if 'value="completed"' in f)
    message = form.split('id="handoff-' + str(handoff.id) + '-override-error"', 1)[1].split("</p>")[0]
    for document in ("Passport or other identity document", "Written consent of the receiving relatives"):
        assert document in message
    assert len(_events(engine, case_id)) == before and _row(engine, Handoff, handoff.id or 0).status == "scheduled"
    done = anna.post(action, {"version": handoff.version, "status": "completed", "override_reason": "Consent by phone"})
    assert done.status_code == 303
    stored = _row(engine, Handoff, handoff.id or 0)
    assert stored.status == "completed" and stored.documents_override["by"] == "anna"
    assert stored.documents_override["reason"] == "Consent by phone"
    page = anna.get(f"/cases/{case_id}").text
    shown = page.split(f'id="handoff-{handoff.id}"', 1)[1].split("</article>")[0]
    assert "Completed without every document" in shown and "Consent by phone" in shown
    assert "Medical report for social services" in shown and "Recorded by anna" in shown
    timeline = _part(page, "timeline")
    assert "Completed without: Passport or other identity document" in timeline and "Consent by phone" in timeline


def test_a_handoff_with_every_document_completes_without_a_reason(
    engine: Engine, settings: Settings, case_id: int, anna: Browser
) -> None:
    handoff = _scheduled_handoff(engine, case_id, settings, documents=True)
    page = anna.get(f"/cases/{case_id}").text
    assert "Still missing" not in page and "handoffs" not in _opened(page)
    done = anna.post(
        f"/cases/{case_id}/handoffs/{handoff.id}/status", {"version": handoff.version, "status": "completed"}
    )
    assert done.status_code == 303 and _row(engine, Handoff, handoff.id or 0).documents_override is None


# -- the plan on paper ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "words"),
    [
        (
            "en",
            (
                "Action plan: Ivanova Maria Petrovna",
                "Planned destination",
                "Relatives: The daughter, Olga",
                "Whom to call",
            ),
        ),
        (
            "ru",
            (
                "План действий: Ivanova Maria Petrovna",
                "Куда выписка",
                "К родственникам: The daughter, Olga",  # noqa: RUF001
                "Кому звонить",
            ),
        ),
    ],
)
def test_the_printable_plan_in_the_readers_language(
    engine: Engine, settings: Settings, case_id: int, clock: None, locale: str, words: tuple[str, ...]
) -> None:
    _task(engine, case_id, "Order a walker", due_at=NOW + timedelta(days=1))  # anna's, the case's
    _scheduled_handoff(engine, case_id, settings)
    reader = Browser(settings, engine, f"reader_{locale}", sources=("city",), locale=locale)
    page = reader.get(f"/cases/{case_id}/plan/print")
    assert page.status_code == 200
    assert f'<html lang="{locale}">' in page.text and 'media="print"' not in page.text  # the sheet is for paper
    assert "/static/print.css" in page.text and "<form" not in page.text
    text = re.sub(r"<[^>]+>", "", page.text)
    for word in words:
        assert word in text, word
    assert "Order a walker" in page.text and "+7 900 555 12 34" in page.text and "MRN-40021" in page.text
    with session_scope(engine) as session:
        make_source(session, f"north_{locale}")
    other = Browser(settings, engine, f"olga_{locale}", sources=(f"north_{locale}",))  # another hospital
    assert other.get(f"/cases/{case_id}/plan/print").status_code == 404


# -- refused forms keep what was typed --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "form", "field", "kept", "message"),
    [
        (
            "tasks",
            {"description": "Ring the clinic", "domain": "social", "due_at": "tomorrow"},
            "due_at",
            'value="Ring the clinic"',
            "Not a date and time",
        ),
        (
            "tasks",
            {"description": "   ", "domain": "legal", "owner": "boris"},
            "description",
            'value="boris"',
            "Fill this in.",
        ),
        (
            "handoffs",
            {"destination_type": "moon", "organisation": "Moon base", "note": "far"},
            "destination_type",
            'value="Moon base"',
            "Choose one of the options.",
        ),
        (
            "barriers",
            {"code": "weather", "owner": "social services", "note": "snow"},
            "code",
            'value="social services"',
            "Choose one of the options.",
        ),
        (
            "assessment",
            {"version": "0", "social_findings": "Lives on the 5th floor", "cook": "sometimes"},
            "cook",
            "Lives on the 5th floor</textarea>",
            "Choose one of the options.",
        ),
        (
            "dates",
            {"version": "1", "expected_discharge_at": "soon", "medically_ready_at": "2026-11-12T10:00"},
            "expected_discharge_at",
            'value="2026-11-12T10:00"',
            "Not a date and time",
        ),
        (
            "assign",
            {"version": "1", "coordinator": "mallory"},
            "coordinator",
            "",
            "is not an enabled coordinator of this hospital",
        ),
    ],
)
def test_a_refused_form_comes_back_with_what_was_typed_and_the_message_by_its_field(
    engine: Engine, case_id: int, anna: Browser, path: str, form: dict[str, str], field: str, kept: str, message: str
) -> None:
    action = f"/cases/{case_id}/{path}"
    version = _row(engine, Case, case_id).version
    form = {k: (str(version) if k == "version" and path in ("dates", "assign") else v) for k, v in form.items()}
    before = len(_events(engine, case_id))
    refused = anna.post(action, form)
    assert refused.status_code == 422
    shown = _form(refused.text, action)
    assert kept in unescape(shown)
    control = re.search(rf'<(?:input|select|textarea) id="([^"]+)" name="{field}"[^>]*>', shown)
    assert control is not None and 'aria-invalid="true"' in control.group(0)
    error = shown.split(f'id="{control.group(1)}-error">', 1)[1].split("</p>")[0]
    assert message in error
    assert 'role="alert"' in refused.text.split('id="header"')[0]  # said at the top too
    assert len(_events(engine, case_id)) == before


def test_a_refused_form_speaks_russian_and_keeps_the_choice_of_a_select(
    settings: Settings, engine: Engine, case_id: int, clock: None
) -> None:
    dmitry = Browser(settings, engine, "dmitry", sources=("city",), locale="ru")
    action = f"/cases/{case_id}/tasks"
    refused = dmitry.post(
        action, {"description": "Позвонить дочери", "domain": "legal", "priority": "urgent", "due_at": "завтра"}
    )
    assert refused.status_code == 422
    shown = _form(refused.text, action)
    assert 'value="Позвонить дочери"' in shown
    assert '<option value="legal" selected>' in shown and '<option value="urgent" selected>' in shown
    assert "Не дата и время" in shown and "Не сохранено" in refused.text  # noqa: RUF001


def test_a_stale_assessment_keeps_the_typed_findings(engine: Engine, case_id: int, anna: Browser) -> None:
    form = {"version": "0", "social_findings": "Daughter visits daily", "cook": "needs_help"}
    assert anna.post(f"/cases/{case_id}/assessment", form).status_code == 303
    stale = anna.post(f"/cases/{case_id}/assessment", {**form, "social_findings": "Nobody visits", "cook": "dependent"})
    assert stale.status_code == 409
    shown = _form(stale.text, f"/cases/{case_id}/assessment")
    assert "Nobody visits</textarea>" in shown and '<option value="dependent" selected>' in shown
    with session_scope(engine) as session:
        saved = get_assessment(session, case_id)
        assert saved is not None and saved.domains["social"]["findings"] == "Daughter visits daily"
    assert f'name="version" value="{saved.version}"' in shown  # the current one: saving again is deliberate
