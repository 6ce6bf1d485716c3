"""The coordinator's pages through the app (TestClient with a real browser session cookie): each page
for its roles in English and Russian, the forms end to end, CSRF, scoping, stale versions, and a
Russian translation for every string the pages show."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_file
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.app import create_app
from discharge_bridge.cases.handoffs.models import Handoff
from discharge_bridge.cases.models import Case, CaseEvent
from discharge_bridge.cases.repository import get_assessment
from discharge_bridge.cases.tasks.models import Task
from discharge_bridge.cases.tasks.service import create_task
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import update_source
from discharge_bridge.db import session_scope, utcnow
from discharge_bridge.deps import SESSION_COOKIE
from discharge_bridge.risk import loading
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.sources.service import get_source
from discharge_bridge.ui import i18n
from discharge_bridge.users.service import get_user, start_session
from discharge_bridge.worklists.morning import build_morning_list, local_day
from tests.support.factories import api_client, flagged_case, make_source, make_user, put_encounter, put_risk

UI = Path(__file__).resolve().parents[2] / "src" / "discharge_bridge" / "ui"


class Browser:
    """A TestClient holding a signed-in session cookie, as a browser would, and the form's CSRF token."""

    def __init__(self, settings: Settings, engine: Engine, username: str, **user: Any) -> None:
        with session_scope(engine) as session:
            make_user(session, username, password=None, **user)
            token, row = start_session(session, get_user(session, username), lifetime=timedelta(hours=1))
            self.csrf = row.csrf_token
        self.client = TestClient(create_app(settings), follow_redirects=False)
        self.client.cookies.set(SESSION_COOKIE, token)

    def get(self, path: str) -> Any:
        return self.client.get(path)

    def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True) -> Any:
        form = {**(data or {}), **({"csrf_token": self.csrf} if csrf else {})}
        return self.client.post(path, data=form)


def _rules_version(settings: Settings) -> str:
    return loading.rule_set(settings.mappings_dir).version


def _hospital(engine: Engine, settings: Settings) -> dict[str, int]:
    """Source "city" (Moscow time) with two flagged admissions under the active rule set: adm1 (anna's
    case) and adm2 (bob's); source "north" with adm9; and adm3 in "city", flagged but without a case."""
    version = _rules_version(settings)
    with session_scope(engine) as session:
        city = make_source(session, "city").id or 0
        update_source(session, "city", {"timezone": "Europe/Moscow"})
        north = make_source(session, "north").id or 0
        mine = flagged_case(session, city, "adm1", "p1", rules_version=version, concepts=("lives_alone", "elderly"))
        theirs = flagged_case(session, city, "adm2", "p2", rules_version=version, priority="medium")
        foreign = flagged_case(session, north, "adm9", "p9", rules_version=version)
        put_encounter(session, city, "adm3", "p3")
        put_risk(session, city, "adm3", "p3", rules_version=version, priority="low", concepts=("no_contacts",))
        mine.coordinator, theirs.coordinator = "anna", "bob"
        session.add_all([mine, theirs])
    return {"mine": mine.id or 0, "theirs": theirs.id or 0, "foreign": foreign.id or 0}


def _morning(engine: Engine, settings: Settings, case_id: int) -> None:
    """Two tasks on anna's case (due later today, overdue by a day), then the city's morning list."""
    with session_scope(engine) as session:
        for risk in session.exec(select(RiskAssessment)):  # as the scorer stamps a first flag
            risk.first_flagged_at = utcnow() - timedelta(hours=2)
            session.add(risk)
        case = session.get(Case, case_id)
        assert case is not None
        create_task(session, case, actor="t", description="Call the daughter", domain="social")  # anna's, the case's
        due_soon = session.exec(select(Task).where(Task.description == "Call the daughter")).one()
        _, day_end = local_day(get_source(session, "city"), utcnow())
        due_soon.due_at = utcnow() + (day_end - utcnow()) / 2  # later today in the hospital's zone
        create_task(
            session,
            case,
            actor="t",
            description="Order a walker",
            domain="material",
            due_at=utcnow() - timedelta(days=1),
        )
        session.flush()
        built = build_morning_list(
            session, get_source(session, "city"), now=utcnow(), rules_version=_rules_version(settings)
        )
        assert built is not None


def _version(engine: Engine, model: type[Any], row_id: int) -> int:
    with session_scope(engine) as session:
        return int(session.get(model, row_id).version)  # type: ignore[union-attr]


def _events(engine: Engine, case_id: int) -> list[str]:
    with session_scope(engine) as session:
        return [e.kind for e in session.exec(select(CaseEvent).where(CaseEvent.case_id == case_id))]


def _no_tokens(html: str) -> str:
    """The page without its random tokens (CSRF, nonces), which may spell any short id by chance."""
    return re.sub(r"[A-Za-z0-9_-]{20,}", "", html)


def test_signed_out_pages_send_to_sign_in(settings: Settings) -> None:
    client = TestClient(create_app(settings), follow_redirects=False)
    response = client.get("/worklist?view=all")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/worklist%3Fview%3Dall"
    assert client.get("/cases/1").headers["location"] == "/login?next=/cases/1"


def test_the_worklist_shows_the_morning_list_mine_by_default_and_all_on_request(
    engine: Engine, settings: Settings
) -> None:
    ids = _hospital(engine, settings)
    _morning(engine, settings, ids["mine"])
    anna = Browser(settings, engine, "anna", sources=("city",))
    page = anna.get("/worklist").text
    assert '<a href="/worklist?view=mine" aria-current="page">' in page  # she has cases: hers first
    morning = page.split('id="live-heading"')[0]
    assert '<code class="patient">p1</code>' in morning and '<code class="patient">p2</code>' not in morning
    assert "Lives alone" in morning and "Condition/lives_alone" in morning  # the reason and its evidence
    assert "Call the daughter" in morning and "Order a walker" in morning
    overdue = re.search(r'<td class="overdue">[^<]*<br>overdue</td>\s*<td>Order a walker', morning)
    assert overdue, "the overdue task is highlighted"
    assert f'href="/cases/{ids["mine"]}"' in morning
    everyone = anna.get("/worklist?view=all").text.split('id="live-heading"')[0]
    assert '<code class="patient">p2</code>' in everyone
    live = page.split('id="live-heading"')[1]
    assert "3 flagged admissions" in live  # the live list: the city's three, never north's
    assert "p9" not in _no_tokens(page) and "north" not in _no_tokens(page).lower()


def test_without_own_cases_the_default_is_every_hospital_and_other_roles_have_no_toggle(
    engine: Engine, settings: Settings
) -> None:
    _hospital(engine, settings)
    carl = Browser(settings, engine, "carl", sources=("city",))
    assert '<a href="/worklist?view=all" aria-current="page">' in carl.get("/worklist").text
    beds = Browser(settings, engine, "boris", role="bed_manager", sources=("city",))
    page = beds.get("/worklist")
    assert page.status_code == 200 and "view=mine" not in page.text
    assert "Open a case" not in page.text  # opening needs the coordinate permission
    admin = Browser(settings, engine, "root", role="admin")
    assert "p9" in admin.get("/worklist").text
    it = Browser(settings, engine, "ivan", role="it_admin", sources=("city",))
    assert it.get("/worklist").status_code == 403


def test_pages_speak_russian_for_a_russian_user(engine: Engine, settings: Settings) -> None:
    ids = _hospital(engine, settings)
    _morning(engine, settings, ids["mine"])
    dmitry = Browser(settings, engine, "dmitry", sources=("city",), locale="ru")
    page = dmitry.get("/worklist?view=all").text
    assert '<html lang="ru">' in page
    russian = ("<h1>Рабочий список</h1>", "Утренний список", "Живёт один", "Высокий", "3 госпитализации с флагом")  # noqa: RUF001
    for text in russian:
        assert text in page
    case = dmitry.get(f"/cases/{ids['mine']}").text
    headings = re.findall(r"<h2 id=\"[a-z]+-heading\">([^<]+)</h2>", case)
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
    assert f"Случай №{ids['mine']}" in case and "Координатор" in case
    assert "Первый визит: познакомиться с пациентом" in case  # noqa: RUF001 (the service's own task, translated)


def test_the_case_page_shows_every_part_with_labels_for_every_input(engine: Engine, settings: Settings) -> None:
    ids = _hospital(engine, settings)
    anna = Browser(settings, engine, "anna", sources=("city",))
    page = anna.get(f"/cases/{ids['mine']}").text
    for heading in ("Why flagged", "Discharge readiness", "Needs assessment", "Action plan", "Handoffs", "Timeline"):
        assert f">{heading}</h2>" in page
    assert "Condition/lives_alone" in page.split('id="flags-heading"')[1].split("</section>")[0]
    # every visible input, select and textarea has a <label for> naming its id
    ids_labelled = set(re.findall(r'<label for="([^"]+)"', page))
    controls = re.findall(r'<(?:input|select|textarea)(?![^>]*type="hidden")[^>]*\bid="([^"]+)"', page)
    assert controls and set(controls) <= ids_labelled
    assert '<th scope="col">' in page
    for form in re.findall(r'<form method="post".*?</form>', page, flags=re.S):
        assert f'name="csrf_token" value="{anna.csrf}"' in form
    beds = Browser(settings, engine, "boris", role="bed_manager", sources=("city",))
    read_only = beds.get(f"/cases/{ids['mine']}").text
    assert "Save the assessment" not in read_only and "Add the task" not in read_only
    assert "Record the barrier" in read_only  # bed managers record delays
    assert 'fieldset class="plain" disabled' in read_only


def test_a_case_of_another_hospital_is_not_found_and_cannot_be_changed(engine: Engine, settings: Settings) -> None:
    ids = _hospital(engine, settings)
    anna = Browser(settings, engine, "anna", sources=("city",))
    page = anna.get(f"/cases/{ids['foreign']}")
    assert page.status_code == 404 and "Not found" in page.text and "p9" not in _no_tokens(page.text)
    refused = anna.post(f"/cases/{ids['foreign']}/tasks", {"description": "x", "domain": "social"})
    assert refused.status_code == 404
    assert anna.get("/cases/999999").status_code == 404
    with session_scope(engine) as session:
        assert not session.exec(select(Task).where(Task.description == "x")).all()


def test_a_post_without_the_csrf_token_is_refused(engine: Engine, settings: Settings) -> None:
    ids = _hospital(engine, settings)
    anna = Browser(settings, engine, "anna", sources=("city",))
    response = anna.post(f"/cases/{ids['mine']}/tasks", {"description": "x", "domain": "social"}, csrf=False)
    assert response.status_code == 403 and "CSRF" in response.text
    wrong = anna.client.post(
        f"/cases/{ids['mine']}/tasks", data={"description": "x", "domain": "social", "csrf_token": "forged"}
    )
    assert wrong.status_code == 403
    assert _events(engine, ids["mine"]).count("task_created") == 1  # the first visit only


def test_a_coordinator_works_a_case_through_the_forms(engine: Engine, settings: Settings) -> None:
    ids = _hospital(engine, settings)
    case_id = ids["mine"]
    anna = Browser(settings, engine, "anna", sources=("city",))
    base = f"/cases/{case_id}"
    # the assessment: domains, daily living, a bedside finding that contradicts "lives alone"
    form = {"version": "0", "social_findings": "Daughter visits daily", "social_needs": "home care\n\nmeals"}
    form |= {"cook": "needs_help", "wash": "dependent", "lives_alone": "no", "housing": "own_home"}
    saved = anna.post(f"{base}/assessment", form)
    assert saved.status_code == 303 and saved.headers["location"] == f"{base}?done=assessment#assessment"
    with session_scope(engine) as session:
        assessment = get_assessment(session, case_id)
        assert assessment is not None
        assert assessment.domains["social"] == {"findings": "Daughter visits daily", "needs": ["home care", "meals"]}
        assert assessment.daily_living["cook"] == "needs_help" and assessment.daily_living["go_outside"] is None
        assert [(c["concept"], c["correct"]) for c in assessment.flag_corrections] == [("lives_alone", False)]
    again = anna.post(f"{base}/assessment", {**form, "version": assessment.version})
    assert again.headers["location"].startswith(f"{base}?done=assessment_unchanged")
    # a task, due tomorrow 10:00 hospital time (Moscow, UTC+3)
    added = anna.post(
        f"{base}/tasks",
        {"description": "Apply for a care home place", "domain": "social", "due_at": "2026-12-02T10:00"},
    )
    assert added.status_code == 303
    with session_scope(engine) as session:
        task = session.exec(select(Task).where(Task.description == "Apply for a care home place")).one()
        assert task.due_at is not None and task.due_at.isoformat() == "2026-12-02T07:00:00+00:00"
        assert task.owner == "anna"  # the case's coordinator by default
        task_id = task.id or 0
    moved = anna.post(f"{base}/tasks/{task_id}/status", {"status": "in-progress", "version": "1"})
    assert moved.status_code == 303
    # the handoff to a gerontology centre, through to completed, with its documents
    anna.post(f"{base}/handoffs", {"destination_type": "gerontology_centre", "organisation": "City Gerontology Centre"})
    with session_scope(engine) as session:
        handoff = session.exec(select(Handoff).where(Handoff.case_id == case_id)).one()
        handoff_id, codes = handoff.id or 0, [d["code"] for d in handoff.documents]
    assert "medical_commission" in codes
    ticked = anna.client.post(
        f"{base}/handoffs/{handoff_id}/documents",
        data={"documents": ["passport", "application"], "version": "1", "csrf_token": anna.csrf},
    )
    assert ticked.status_code == 303
    for status in ("referred", "accepted", "scheduled", "completed"):
        version = _version(engine, Handoff, handoff_id)
        move = {"status": status, "version": version}
        if status == "completed":  # four of the six documents are missing: the coordinator says why
            move["override_reason"] = "The centre takes the rest at admission"
        assert anna.post(f"{base}/handoffs/{handoff_id}/status", move).status_code == 303
    # a barrier, then ended; the dates as a person
    anna.post(f"{base}/barriers", {"code": "awaiting_placement", "owner": "social services"})
    page = anna.get(f"{base}?done=barrier_added").text
    barrier_id = int(re.search(r'action="/cases/\d+/barriers/(\d+)/end"', page).group(1))  # type: ignore[union-attr]
    anna.post(f"{base}/barriers/{barrier_id}/end", {"version": "1"})
    dates = {
        "expected_discharge_at": "2026-12-05T12:00",
        "medically_ready_at": "",
        "version": _version(engine, Case, case_id),
    }
    assert anna.post(f"{base}/dates", dates).headers["location"].startswith(f"{base}?done=dates#")
    unchanged = anna.post(f"{base}/dates", {**dates, "version": _version(engine, Case, case_id)})
    assert "dates_unchanged" in unchanged.headers["location"]
    with session_scope(engine) as session:
        case = session.get(Case, case_id)
        assert case is not None and case.expected_discharge_at is not None
        assert case.expected_discharge_at.isoformat() == "2026-12-05T09:00:00+00:00"
        assert case.expected_discharge_source == "person"
        handoff = session.get(Handoff, handoff_id)
        assert handoff is not None and handoff.status == "completed"
        assert {d["code"] for d in handoff.documents if d["done"]} == {"passport", "application"}
    kinds = _events(engine, case_id)
    for kind in ("assessment_updated", "flag_corrected", "task_created", "task_updated", "handoff_created"):
        assert kind in kinds
    assert kinds.count("handoff_updated") == 5 and "barrier_updated" in kinds and "dates_changed" in kinds
    # the page tells it all, newest first
    page = anna.get(f"{base}?done=dates").text
    assert '<p class="notice" role="status">Discharge dates saved.</p>' in page
    timeline = page.split('id="timeline-heading"')[1]
    for title in ("Needs assessment updated", "Flag checked at the bedside", "Task added", "Handoff proposed"):
        assert title in timeline
    assert "Proposed → Referred" in timeline and "Scheduled → Completed" in timeline
    assert "Requested → In progress" in timeline
    assert "Documents ready: Passport or other identity document" in timeline
    assert timeline.index("Discharge dates changed") < timeline.index("Case opened")


def test_a_stale_form_is_refused_and_writes_nothing(engine: Engine, settings: Settings) -> None:
    ids = _hospital(engine, settings)
    base = f"/cases/{ids['mine']}"
    anna = Browser(settings, engine, "anna", sources=("city",))
    dmitry = Browser(settings, engine, "dmitry", sources=("city",), locale="ru")
    with session_scope(engine) as session:
        task_id = session.exec(select(Task).where(Task.case_id == ids["mine"])).one().id or 0
    assert anna.post(f"{base}/tasks/{task_id}/status", {"status": "accepted", "version": "1"}).status_code == 303
    before = _events(engine, ids["mine"])
    stale = dmitry.post(f"{base}/tasks/{task_id}/status", {"status": "cancelled", "version": "1"})
    assert stale.status_code == 409 and "Ничего не сохранено" in stale.text
    assert f'href="/cases/{ids["mine"]}"' in stale.text
    english = anna.post(f"{base}/assessment", {"version": "3"})
    assert english.status_code == 409 and "changed this while you were editing" in english.text
    with session_scope(engine) as session:
        task = session.get(Task, task_id)
        assert task is not None and task.status == "accepted"
        assert get_assessment(session, ids["mine"]) is None
    assert _events(engine, ids["mine"]) == before
    # a move the status table forbids is refused in words, too
    refused = anna.post(f"{base}/tasks/{task_id}/status", {"status": "completed", "version": "2"})
    assert refused.status_code == 409 and "not possible from the current status" in refused.text


@pytest.mark.parametrize(
    ("path", "form", "field"),
    [
        ("tasks", {"description": "  ", "domain": "social"}, "description"),
        ("tasks", {"description": "x", "domain": "cooking"}, "domain"),
        ("tasks", {"description": "x", "domain": "social", "due_at": "tomorrow"}, "due_at"),
        ("handoffs", {"destination_type": "moon"}, "destination_type"),
        ("barriers", {"code": "weather"}, "code"),
        ("assessment", {"version": "0", "cook": "sometimes"}, "daily_living.cook"),
        ("assessment", {"cook": "independent"}, "version"),
        ("assessment/corrections", {"version": "0", "concept": "lives_alone", "note": "x"}, "correct"),
    ],
)
def test_forms_are_validated_by_the_api_schemas(
    engine: Engine, settings: Settings, path: str, form: dict[str, str], field: str
) -> None:
    ids = _hospital(engine, settings)
    anna = Browser(settings, engine, "anna", sources=("city",))
    before = _events(engine, ids["mine"])
    response = anna.post(f"/cases/{ids['mine']}/{path}", form)
    assert response.status_code == 422 and "Please check the form" in response.text
    name = field.split(".")[-1]  # the form's control the refused value came from, marked beside it
    if name in form:
        assert re.search(rf'name="{name}"[^>]*aria-invalid="true"', response.text), name
    else:  # a value the form did not send: said by the refused form's buttons
        assert 'class="refused"' in response.text and 'class="field-error"' in response.text
    assert _events(engine, ids["mine"]) == before


def test_opening_a_case_from_the_live_worklist(engine: Engine, settings: Settings) -> None:
    _hospital(engine, settings)
    anna = Browser(settings, engine, "anna", sources=("city",))
    live = anna.get("/worklist?view=all").text.split('id="live-heading"')[1]
    assert 'name="encounter" value="adm3"' in live
    assert anna.post("/worklist/open", {"source": "city", "encounter": "adm3"}, csrf=False).status_code == 403
    opened = anna.post("/worklist/open", {"source": "city", "encounter": "adm3"})
    assert opened.status_code == 303
    case_id = int(opened.headers["location"].split("/cases/")[1].split("?")[0])
    with session_scope(engine) as session:
        case = session.get(Case, case_id)
        assert case is not None and case.coordinator == "anna" and case.opened_by_hand
    assert anna.post("/worklist/open", {"source": "north", "encounter": "adm9"}).status_code == 404
    again = anna.post("/worklist/open", {"source": "city", "encounter": "adm3"})
    assert again.headers["location"].startswith(f"/cases/{case_id}?")  # idempotent: the same case


def test_reassigning_and_closing_from_the_header(engine: Engine, settings: Settings) -> None:
    ids = _hospital(engine, settings)
    base = f"/cases/{ids['mine']}"
    with session_scope(engine) as session:
        make_user(session, "bob", password=None)
    anna = Browser(settings, engine, "anna", sources=("city",))
    assert anna.post(f"{base}/assign", {"coordinator": "mallory", "version": "2"}).status_code == 422
    assert (
        anna.post(f"{base}/assign", {"coordinator": "bob", "version": _version(engine, Case, ids["mine"])}).status_code
        == 303
    )
    closed = anna.post(
        f"{base}/status", {"status": "closed", "outcome": "not_needed", "version": _version(engine, Case, ids["mine"])}
    )
    assert closed.status_code == 303
    page = anna.get(base).text
    assert "Reopen the case" in page and "Add the task" not in page
    refused = anna.post(f"{base}/tasks", {"description": "x", "domain": "social"})
    assert refused.status_code == 409 and "The case is closed" in refused.text


def _page_messages() -> set[str]:
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    found: set[str] = set()
    for name in ("case_labels.py", "case_common.py", "case_timeline.py", "case.py", "case_forms.py", "worklist.py"):
        found |= {m if isinstance(m, str) else m[0] for _, m, _, _ in extract_from_file("python", UI / name, keywords)}
    options = {"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true"}
    for template in [
        UI / "templates/worklist.html",
        UI / "templates/case.html",
        *(UI / "templates/case").glob("*.html"),
    ]:
        messages = extract_from_file("jinja2.ext:babel_extract", template, keywords, options=options)
        found |= {m if isinstance(m, str) else m[0] for _, m, _, _ in messages}
    return found


def test_every_string_of_the_pages_has_a_russian_translation() -> None:
    messages = _page_messages()
    assert len(messages) > 200
    catalog = i18n.translations("ru")
    missing = sorted(m for m in messages if catalog.gettext(m) == m)
    assert missing == []


def test_a_refused_submit_rolls_back_what_it_had_written(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a service flushed before refusing is not committed: the error page comes after the rollback."""
    from discharge_bridge.cases.errors import CaseClosed
    from discharge_bridge.ui import case_forms

    real = case_forms.create_task

    def writes_then_refuses(session: Any, case: Any, **kwargs: Any) -> Any:
        real(session, case, **kwargs)  # the task and its event are flushed
        raise CaseClosed(case.id, "closed")

    monkeypatch.setattr(case_forms, "create_task", writes_then_refuses)
    ids = _hospital(engine, settings)
    anna = Browser(settings, engine, "anna", sources=("city",))
    refused = anna.post(f"/cases/{ids['mine']}/tasks", {"description": "half-written", "domain": "social"})
    assert refused.status_code == 409 and "The case is closed" in refused.text
    with session_scope(engine) as session:
        assert not session.exec(select(Task).where(Task.description == "half-written")).all()
    assert _events(engine, ids["mine"]).count("task_created") == 1


def test_a_withdrawn_flag_is_marked_and_the_coordinator_keeps_the_case_with_a_reason(
    engine: Engine, settings: Settings
) -> None:
    """When the EHR withdraws every reason behind a flag, the case is marked (never left high, never
    gone); the coordinator keeps it with a reason (page and API) or closes it. Hand-opened cases are left be."""
    from discharge_bridge.cases.batch import refresh_priorities

    ids = _hospital(engine, settings)
    version = _rules_version(settings)
    with session_scope(engine) as session:
        for row in session.exec(select(RiskAssessment).where(RiskAssessment.encounter_fhir_id.in_(["adm1", "adm2"]))):
            row.flagged, row.priority, row.reasons = False, None, []
            session.add(row)
        theirs = session.get(Case, ids["theirs"])
        assert theirs is not None
        theirs.opened_by_hand = True
        session.add(theirs)
        session.flush()
        refresh_priorities(session, session.get(Case, ids["mine"]).source_id, rules_version=version)  # type: ignore[union-attr]
    with session_scope(engine) as session:
        mine, theirs = session.get(Case, ids["mine"]), session.get(Case, ids["theirs"])
        assert mine is not None and theirs is not None
        assert mine.flag_withdrawn_at is not None and mine.priority is None and mine.status == "open"
        assert theirs.flag_withdrawn_at is None  # opened by hand: a person decided, not the flag
    assert _events(engine, ids["mine"])[-1] == "flag_withdrawn"

    anna = Browser(settings, engine, "anna", sources=("city",))
    page = anna.get(f"/cases/{ids['mine']}").text
    assert "Flag withdrawn" in page and 'action="/cases/' + str(ids["mine"]) + '/keep"' in page
    empty = anna.post(
        f"/cases/{ids['mine']}/keep", {"keep_reason": " ", "version": _version(engine, Case, ids["mine"])}
    )
    assert empty.status_code == 422 and "say why" in empty.text
    kept = anna.post(
        f"/cases/{ids['mine']}/keep",
        {"keep_reason": "the daughter says she cannot care for her", "version": _version(engine, Case, ids["mine"])},
    )
    assert kept.status_code == 303
    page = anna.get(f"/cases/{ids['mine']}").text
    assert "Kept open after the flag was withdrawn" in page and "the daughter says she cannot care for her" in page
    assert 'action="/cases/' + str(ids["mine"]) + '/keep"' not in page

    api = api_client(settings)  # the service token
    again = api.patch(f"/api/v1/cases/{ids['mine']}", json={"keep_reason": "again"})
    assert again.status_code == 422 and "keep_reason" in again.text  # no longer withdrawn: nothing to keep
    assert api.get(f"/api/v1/cases/{ids['mine']}").json()["flag_withdrawn_at"] is None
