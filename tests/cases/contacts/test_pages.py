"""The contacts section of the case page through the app (a signed-in browser session): contacts
with click-to-call numbers, the forms end to end, a refused form shown again with what was typed
and the message by its field, another hospital's case, and a Russian word for every string."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from babel.messages.extract import extract_from_file
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.app import create_app
from discharge_bridge.cases.contacts.models import CaseContact, ContactLogEntry
from discharge_bridge.cases.events import timeline
from discharge_bridge.cases.tasks.models import Task, TaskDomain, TaskKind, TaskStatus
from discharge_bridge.cases.tasks.service import create_task
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import update_source
from discharge_bridge.db import session_scope
from discharge_bridge.deps import SESSION_COOKIE
from discharge_bridge.ui import i18n
from discharge_bridge.ui.contacts_view import tel_href
from discharge_bridge.users.service import get_user, start_session
from tests.cases.contacts.factories import case_with_family
from tests.support.factories import make_source, make_user

SRC = Path(__file__).resolve().parents[3] / "src" / "discharge_bridge"
NOW = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
pytestmark = pytest.mark.clock


@pytest.fixture(autouse=True)
def _frozen() -> object:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


class Browser:
    """A TestClient holding a signed-in session cookie, and the session's CSRF token for forms."""

    def __init__(self, settings: Settings, engine: Engine, username: str, **user: Any) -> None:
        with session_scope(engine) as session:
            make_user(session, username, password=None, **user)
            token, row = start_session(session, get_user(session, username), lifetime=timedelta(hours=1))
            self.csrf = row.csrf_token
        self.client = TestClient(create_app(settings), follow_redirects=False)
        self.client.cookies.set(SESSION_COOKIE, token)

    def post(self, path: str, data: dict[str, Any]) -> Any:
        return self.client.post(path, data={**data, "csrf_token": self.csrf})


def _cases(engine: Engine) -> dict[str, int]:
    with session_scope(engine) as session:
        mine = case_with_family(session, make_source(session, "city").id or 0)
        update_source(session, "city", {"timezone": "Europe/Moscow"})
        foreign = case_with_family(session, make_source(session, "north").id or 0, eid="adm9", pid="p9")
        task = create_task(
            session, mine, actor="t", kind=TaskKind.find_relatives, domain=TaskDomain.social, description="Find"
        )
        return {"mine": mine.id or 0, "foreign": foreign.id or 0, "task": task.id or 0}


def _section(html: str) -> str:
    start = html.index('id="contacts"')
    return (
        html[start : html.index("</details>\n<details", start)]
        if "</details>\n<details" in html[start:]
        else html[start:]
    )


def test_the_case_page_shows_the_contacts_with_click_to_call_numbers(engine: Engine, settings: Settings) -> None:
    ids = _cases(engine)
    anna = Browser(settings, engine, "anna")
    page = anna.client.get(f"/cases/{ids['mine']}")
    assert page.status_code == 200
    section = _section(page.text)
    assert "Relatives and contacts" in section
    assert '<a href="tel:+79005551291">+7 900 555-12-91</a>' in section
    assert "Kulikova Anna Ivanovna" in section and "Daughter" in section and "Nephew · Next of kin" in section
    assert f'action="/cases/{ids["mine"]}/contacts/log"' in section
    assert "A search for relatives or a guardian is open" in section  # the find task is open
    assert tel_href("8 (495) 123-45-67") == "tel:84951234567" and tel_href("+7 900 555-12-91") == "tel:+79005551291"


def test_a_coordinator_adds_a_contact_and_logs_a_call_through_the_forms(engine: Engine, settings: Settings) -> None:
    ids = _cases(engine)
    anna = Browser(settings, engine, "anna")
    base = f"/cases/{ids['mine']}/contacts"
    added = anna.post(
        base, {"name": "Petrova Olga", "relationship": "NBOR", "phones": "+7 900 111-22-33; 8 800 000-00-01"}
    )
    assert added.status_code == 303 and added.headers["location"] == f"/cases/{ids['mine']}?done=contact_added#contacts"
    with session_scope(engine) as session:
        row = session.exec(select(CaseContact)).one()
        assert row.phones == ["+7 900 111-22-33", "8 800 000-00-01"] and row.added_by == "anna"
    edited = anna.post(
        f"{base}/{row.id}", {"name": "Petrova Olga", "relationship": "NBOR", "phones": "", "version": "1"}
    )
    assert edited.headers["location"].endswith("?done=contact_saved#contacts")
    logged = anna.post(
        f"{base}/log",
        {"contact": "RelatedPerson/p1-rp1", "kind": "call", "outcome": "agreed_to_care", "at": "2026-11-03T11:30"},
    )
    assert logged.status_code == 303 and "done=contact_logged_found" in logged.headers["location"]
    with session_scope(engine) as session:
        entry = session.exec(select(ContactLogEntry)).one()
        assert entry.at == datetime(2026, 11, 3, 8, 30, tzinfo=UTC)  # typed in Moscow time
        assert session.get(Task, ids["task"]).status == TaskStatus.completed  # type: ignore[union-attr]
        kinds = [e.kind for e in timeline(session, ids["mine"])]
    assert kinds.count("contact_added") == 1 and kinds.count("contact_updated") == 1 and "contact_logged" in kinds
    page = anna.client.get(f"/cases/{ids['mine']}?done=contact_logged_found")
    assert "the search it answers is complete" in page.text
    event = re.search(r'<tr class="event-contact_logged">.*?</tr>', page.text, re.S)
    assert (
        event is not None
        and "Agreed to care" in event.group(0)
        and "Kulikova Anna Ivanovna (Daughter)" in event.group(0)
    )
    none = anna.post(f"{base}/none-found", {"note": "nobody else"})
    assert none.headers["location"].endswith("?done=contact_none_found#contacts")
    again = anna.post(f"{base}/none-found", {})
    assert again.headers["location"].endswith("?done=contact_none_found_again#contacts")
    ended = re.search(
        r'<tr class="event-no_relatives_found">.*?</tr>', anna.client.get(f"/cases/{ids['mine']}").text, re.S
    )
    assert ended is not None and "Request to social protection" in ended.group(0) and "nobody else" in ended.group(0)


def test_a_refused_form_comes_back_with_what_was_typed_and_writes_nothing(engine: Engine, settings: Settings) -> None:
    ids = _cases(engine)
    anna = Browser(settings, engine, "anna")
    base = f"/cases/{ids['mine']}/contacts"
    refused = anna.post(
        f"{base}/log", {"contact": "Patient/p1/contact/0", "kind": "visit", "outcome": "", "note": "typed"}
    )
    assert refused.status_code == 422
    form = re.search(rf'<form[^>]*action="{base}/log".*?</form>', refused.text, re.S)
    assert form is not None
    assert 'value="Patient/p1/contact/0" selected' in form.group(0) and 'value="visit" selected' in form.group(0)
    assert 'name="note" maxlength="2000" value="typed"' in form.group(0)
    assert re.search(r'id="log-outcome"[^>]*aria-invalid="true"', form.group(0))
    bad_phone = anna.post(base, {"name": "Petrova Olga", "relationship": "NBOR", "phones": "ask the neighbour"})
    assert bad_phone.status_code == 422
    add = re.search(rf'<form[^>]*action="{base}"[^>]*>.*?</form>', bad_phone.text, re.S)
    assert add is not None and 'value="Petrova Olga"' in add.group(0)
    assert re.search(r'id="contact-phones"[^>]*aria-invalid="true"', add.group(0))
    with session_scope(engine) as session:
        assert session.exec(select(ContactLogEntry)).all() == [] and session.exec(select(CaseContact)).all() == []
        row = CaseContact(case_id=ids["mine"], name="Vera", relationship="SIS", added_by="t", updated_by="t")
        session.add(row)
        session.flush()
        contact_id = row.id
    first = anna.post(f"{base}/{contact_id}", {"name": "Vera I.", "relationship": "SIS", "version": "1"})
    assert first.status_code == 303
    stale = anna.post(f"{base}/{contact_id}", {"name": "Vera from an old tab", "relationship": "SIS", "version": "1"})
    assert stale.status_code == 409 and 'value="Vera from an old tab"' in stale.text
    with session_scope(engine) as session:
        assert session.get(CaseContact, contact_id).name == "Vera I."  # type: ignore[union-attr]


def test_another_hospitals_case_is_not_found_and_a_bed_manager_cannot_log(engine: Engine, settings: Settings) -> None:
    ids = _cases(engine)
    anna = Browser(settings, engine, "anna", sources=("city",))
    form = {"contact": "RelatedPerson/p9-rp1", "kind": "call", "outcome": "reached"}
    assert anna.post(f"/cases/{ids['foreign']}/contacts/log", form).status_code == 404
    assert anna.post(f"/cases/{ids['foreign']}/contacts", {"name": "X", "relationship": "SON"}).status_code == 404
    boris = Browser(settings, engine, "boris", role="bed_manager")
    page = boris.client.get(f"/cases/{ids['mine']}")
    assert "Kulikova Anna Ivanovna" in page.text and f'action="/cases/{ids["mine"]}/contacts/log"' not in page.text
    assert (
        boris.post(f"/cases/{ids['mine']}/contacts/log", {**form, "contact": "RelatedPerson/p1-rp1"}).status_code == 403
    )


def test_the_section_speaks_russian(engine: Engine, settings: Settings) -> None:
    ids = _cases(engine)
    dmitry = Browser(settings, engine, "dmitry", locale="ru")
    section = _section(dmitry.client.get(f"/cases/{ids['mine']}").text)
    for word in ("Родственники и контакты", "Дочь", "Племянник · Ближайший родственник", "Записать попытку"):
        assert word in section


def _messages() -> set[str]:
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
    found: set[str] = set()
    for path in [
        SRC / "ui/contact_labels.py",
        SRC / "ui/contacts_view.py",
        SRC / "ui/contacts.py",
        SRC / "cases/contacts/relationships.py",
    ]:
        found |= {m if isinstance(m, str) else m[0] for _, m, _, _ in extract_from_file("python", path, keywords)}
    options = {"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true"}
    template = SRC / "ui/templates/case/contacts.html"
    messages = extract_from_file("jinja2.ext:babel_extract", template, keywords, options=options)
    return found | {m if isinstance(m, str) else m[0] for _, m, _, _ in messages}


def test_every_string_of_the_contacts_section_has_a_russian_translation() -> None:
    messages = _messages()
    assert len(messages) > 80
    catalog = i18n.translations("ru")
    assert sorted(m for m in messages if catalog.gettext(m) == m) == []
