"""The hospital IT page through the app (TestClient, signed in by session cookie): sync now, adding and
changing a source with the connection check, dead-letter details, the favicon.

Sync now runs a real pass: a file source reading a copy of the demo hospital's export (the pass
runs after the answer, which the TestClient waits for), and a poll source whose EHR (respx) refuses.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import respx
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from discharge_bridge.app import create_app
from discharge_bridge.audit import AuditQuery, search_audit
from discharge_bridge.cases.models import Case
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import session_scope
from discharge_bridge.deps import SESSION_COOKIE
from discharge_bridge.ingest.changes import enqueue_patients
from discharge_bridge.ingest.models import AssessmentQueueEntry, DeadLetter
from discharge_bridge.ingest.store import record_dead_letter
from discharge_bridge.scheduling import sync_now
from discharge_bridge.sources.models import Source, SourceMode, SyncRun
from discharge_bridge.users.models import UserSource
from discharge_bridge.users.service import get_user, start_session
from tests.support.factories import make_source, make_user

pytestmark = pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)
DEMO = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "demo-hospital"
EHR = "http://ehr.test/fhir"
SECRET = "s3cret-value-never-shown"  # a test's stand-in for a token


@dataclass
class Site:
    app: object
    engine: Engine
    folder: Path  # the file source's export

    def client(self, username: str) -> tuple[TestClient, str]:
        with session_scope(self.engine) as session:
            token, row = start_session(session, get_user(session, username), lifetime=timedelta(hours=1))
            csrf = row.csrf_token
        client = TestClient(self.app, follow_redirects=False)  # type: ignore[arg-type]
        client.cookies.set(SESSION_COOKIE, token)
        return client, csrf


@pytest.fixture
def site(settings: Settings, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("CITY_TOKEN", SECRET)
    folder = tmp_path / "export"
    shutil.copytree(DEMO, folder)
    with session_scope(engine) as session:
        add_source(
            session,
            name="city",
            hospital="City Hospital",
            base_url=EHR,
            auth={"type": "bearer", "token_env": "CITY_TOKEN"},
        )
        add_source(session, name="files", hospital="File Hospital", base_url=str(folder), mode=SourceMode.file)
        make_source(session, "other")
        make_user(session, "irina", "it_admin", ("city", "files"))
        make_user(session, "ivan", "it_admin", ("city", "files"), locale="ru")
        make_user(session, "anna", "coordinator", ("city", "files"))
        make_user(session, "root", "admin")
    sync_now.forget()
    yield Site(create_app(settings), engine, folder)
    sync_now.forget()


def _runs(engine: Engine, name: str) -> list[SyncRun]:
    with Session(engine) as session:
        source = session.exec(select(Source).where(Source.name == name)).one()
        return list(session.exec(select(SyncRun).where(SyncRun.source_id == source.id).order_by(col(SyncRun.id))))


# -- sync now ------------------------------------------------------------------------------------------


def test_sync_now_runs_a_pass_and_the_assessment_and_the_card_shows_it(site: Site) -> None:
    client, csrf = site.client("irina")
    asked = client.post("/it/sources/files/sync", data={"csrf_token": csrf}, headers={"HX-Request": "true"})
    # The answer comes before the pass: the card says it was asked for and asks for itself again.
    assert asked.status_code == 202
    card = asked.text
    assert card.lstrip().startswith('<section class="card source" id="source-files"')
    assert 'data-sync-state="queued"' in card and "Asked by irina" in card
    assert 'hx-get="/it/sources/files"' in card and 'hx-trigger="every 2s"' in card
    # The TestClient ran the pass before returning: a real one, and the assessment after it.
    [run] = _runs(site.engine, "files")
    assert run.status == "ok" and run.fetched > 200 and run.created > 200 and run.dead_letters == 2
    with Session(site.engine) as session:
        assert session.exec(select(Case)).first() is not None  # the assessment opened cases
    ended = client.get("/it/sources/files", headers={"HX-Request": "true"})
    assert ended.status_code == 200
    assert 'data-sync-state="ok"' in ended.text and "hx-trigger" not in ended.text  # no more asking
    found = re.search(r"(\d+) fetched, (\d+) new, 0 updated, 2 dead letters; (\d+) assessed", ended.text)
    assert found and int(found.group(1)) == run.fetched and int(found.group(3)) > 0
    assert "Sync succeeded" in ended.text and "Dead letters: 2" in ended.text
    with Session(site.engine) as session:
        [asked_by] = search_audit(session, AuditQuery(action="source.sync_now"))
    assert (asked_by.actor, asked_by.target_name) == ("irina", "files")


def test_sync_now_in_russian_and_without_javascript(site: Site) -> None:
    client, csrf = site.client("ivan")
    page = client.post("/it/sources/files/sync", data={"csrf_token": csrf})
    assert page.status_code == 202 and "<html" in page.text  # the whole page, with the card inside
    assert "Синхронизация запрошена: она выполняется" in page.text
    after = client.get("/it").text
    assert 'data-sync-state="ok"' in after and "Успешно" in after
    assert "Запросил(а) ivan" in after and "завершено в" in after and "открыто случаев" in after  # noqa: RUF001


def test_a_failed_pass_shows_its_reason_and_a_second_press_waits_for_the_first(site: Site) -> None:
    client, csrf = site.client("irina")
    with respx.mock(assert_all_called=False) as ehr:
        ehr.get(url__startswith=EHR).respond(401, json={"resourceType": "OperationOutcome", "issue": []})
        answer = client.post("/it/sources/city/sync", data={"csrf_token": csrf}, headers={"HX-Request": "true"})
    assert answer.status_code == 202
    [run] = _runs(site.engine, "city")
    assert run.status == "failed" and "401" in (run.error or "")
    card = client.get("/it/sources/city", headers={"HX-Request": "true"}).text
    assert 'data-sync-state="failed"' in card and "rejected the credentials" in card and SECRET not in card

    assert sync_now.request("city", by="someone")  # a pass asked for and not ended yet
    again = client.post("/it/sources/city/sync", data={"csrf_token": csrf}, headers={"HX-Request": "true"})
    assert again.status_code == 202 and "already waiting or running" in again.text
    assert len(_runs(site.engine, "city")) == 1  # no second pass
    assert 'data-sync-state="queued"' in again.text and "hx-trigger" in again.text


def test_sync_now_is_for_hospital_it_of_that_hospital_with_the_forms_token(site: Site) -> None:
    coordinator, csrf = site.client("anna")
    refused = coordinator.post("/it/sources/files/sync", data={"csrf_token": csrf})
    assert refused.status_code == 403 and "manage_sources" in refused.text
    irina, csrf = site.client("irina")
    assert irina.post("/it/sources/other/sync", data={"csrf_token": csrf}).status_code == 404
    assert irina.post("/it/sources/files/sync").status_code == 403  # no CSRF token
    assert irina.get("/it/sources/other").status_code == 404
    assert _runs(site.engine, "files") == [] and _runs(site.engine, "other") == []
    admin, csrf = site.client("root")
    assert admin.post("/it/sources/other/sync", data={"csrf_token": csrf}).status_code == 202


# -- adding and changing a source ----------------------------------------------------------------------


def _capability() -> dict[str, object]:
    resources = [
        {
            "type": t,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [{"name": n} for n in ("patient", "class", "category", "_lastUpdated")],
            **({"searchInclude": ["Encounter:subject"]} if t == "Encounter" else {}),
        }
        for t in ("Patient", "Encounter", "Condition", "Observation", "RelatedPerson")
    ]
    return {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "rest": [{"mode": "server", "resource": resources}],
    }


NEW = {
    "name": "north",
    "hospital": "North Hospital",
    "mode": "poll",
    "base_url": "https://ehr.north.example/fhir/r4",
    "auth_type": "bearer",
    "token_env": "CITY_TOKEN",
    "poll_interval_seconds": "120",
    "timezone": "Europe/Moscow",
    "mapping": "default",
}


def _sources(engine: Engine) -> dict[str, Source]:
    with Session(engine) as session:
        return {s.name: s for s in session.exec(select(Source))}


def test_the_check_runs_on_what_was_typed_without_saving_it(site: Site) -> None:
    client, csrf = site.client("irina")
    blank = client.get("/it/add-source")
    assert blank.status_code == 200 and 'class="field-error' not in blank.text and "Add a source" in blank.text
    with respx.mock(assert_all_called=True) as ehr:
        ehr.get("https://ehr.north.example/fhir/r4/metadata").respond(200, json=_capability())
        search = ehr.get("https://ehr.north.example/fhir/r4/Encounter").respond(
            200, json={"resourceType": "Bundle", "type": "searchset", "total": 34}
        )
        checked = client.post("/it/add-source", data={**NEW, "action": "check", "csrf_token": csrf})
    assert checked.status_code == 200
    assert search.calls.last.request.headers["authorization"] == f"Bearer {SECRET}"
    assert 'id="form-check"' in checked.text and "34 encounters on the server" in checked.text
    assert 'value="North Hospital"' in checked.text and 'value="CITY_TOKEN"' in checked.text  # the form as typed
    assert SECRET not in checked.text
    assert "north" not in _sources(site.engine)  # nothing saved


def test_saving_a_new_source_checks_it_and_gives_it_to_the_it_admin(site: Site) -> None:
    client, csrf = site.client("irina")
    with respx.mock(assert_all_called=False) as ehr:
        ehr.get("https://ehr.north.example/fhir/r4/metadata").mock(side_effect=httpx.ConnectError("refused"))
        saved = client.post("/it/add-source", data={**NEW, "action": "save", "csrf_token": csrf})
    assert saved.status_code == 200
    html = saved.text
    assert "Source north added." in html and 'id="source-north"' in html
    assert "Connection check" in html and "Check the base URL" in html  # the check after saving, in the card
    assert SECRET not in html
    north = _sources(site.engine)["north"]
    assert north.auth == {"type": "bearer", "token_env": "CITY_TOKEN", "alg": "RS384", "scope": north.auth["scope"]}
    assert (north.mode, north.poll_interval_seconds, north.timezone) == (SourceMode.poll, 120, "Europe/Moscow")
    with Session(site.engine) as session:
        irina = get_user(session, "irina")
        assert session.get(UserSource, (irina.id, north.id)) is not None
    assert 'id="source-north"' in client.get("/it").text  # hers from now on
    assert 'id="source-north"' not in site.client("ivan")[0].get("/it").text  # nobody else's


def test_a_file_source_is_added_with_the_folder_check(site: Site) -> None:
    client, csrf = site.client("irina")
    form = {**NEW, "name": "copy", "mode": "file", "base_url": str(site.folder), "auth_type": "bearer"}
    saved = client.post("/it/add-source", data={**form, "action": "save", "csrf_token": csrf})
    assert (
        saved.status_code == 200
        and "not a FHIR server" in saved.text
        and "Encounter.broken.ndjson line 2" in saved.text
    )
    copy = _sources(site.engine)["copy"]
    assert copy.mode == SourceMode.file and copy.auth == {"type": "none", "alg": "RS384", "scope": copy.auth["scope"]}


@pytest.mark.parametrize(
    ("field", "typed", "message"),
    [
        ("token_env", "Bearer eyJhbGciOi.secret token", "the NAME of an environment variable"),
        ("token_file", "eyJhbGciOiJSUzM4NCJ9.payload", "the full path of a file on this host"),
        ("base_url", "https://svc:Pa55word@ehr.north.example/fhir", "the URL holds a user name or password"),
    ],
)
def test_what_may_be_a_secret_is_refused_and_never_shown_again(
    site: Site, field: str, typed: str, message: str
) -> None:
    client, csrf = site.client("irina")
    refused = client.post("/it/add-source", data={**NEW, field: typed, "action": "save", "csrf_token": csrf})
    assert refused.status_code == 422
    assert typed not in refused.text and "Pa55word" not in refused.text and "eyJhbGciOi" not in refused.text
    error = re.search(rf'<p class="field-error error" id="{field}-error">([^<]*)</p>', refused.text)
    assert error and message in error.group(1)
    assert f'aria-describedby="{field}-error' in refused.text
    assert 'value="North Hospital"' in refused.text  # the rest is kept as typed
    assert "north" not in _sources(site.engine)


def test_a_refused_form_says_what_is_wrong_next_to_each_field_in_russian(site: Site) -> None:
    client, csrf = site.client("ivan")
    form = {**NEW, "name": "city", "hospital": "", "timezone": "Mars/Olympus", "poll_interval_seconds": "5"}
    refused = client.post("/it/add-source", data={**form, "action": "check", "csrf_token": csrf})
    assert refused.status_code == 422
    html = refused.text
    assert "источник с именем city уже есть" in html  # noqa: RUF001
    assert "укажите название больницы" in html and "неизвестный часовой пояс" in html
    assert "целое число секунд, от 10 до 604800" in html and 'value="Mars/Olympus"' in html


def test_changing_a_source_keeps_its_data_and_refuses_a_stale_form(site: Site) -> None:
    client, csrf = site.client("irina")
    opened = client.get("/it/sources/city/edit")
    assert opened.status_code == 200
    version = re.search(r'name="version" value="([0-9a-f]+)"', opened.text)
    assert version and 'value="City Hospital"' in opened.text and 'value="CITY_TOKEN"' in opened.text
    assert SECRET not in opened.text
    change = {
        **NEW,
        "name": "ignored",
        "hospital": "City Hospital No. 1",
        "base_url": EHR,
        "poll_interval_seconds": "600",
    }
    with respx.mock(assert_all_called=False) as ehr:
        ehr.get(f"{EHR}/metadata").respond(200, json=_capability())
        ehr.get(f"{EHR}/Encounter").respond(200, json={"resourceType": "Bundle", "type": "searchset", "total": 3})
        saved = client.post(
            "/it/sources/city/edit", data={**change, "version": version.group(1), "action": "save", "csrf_token": csrf}
        )
    assert (
        saved.status_code == 200 and "Source city saved." in saved.text and "3 encounters on the server" in saved.text
    )
    city = _sources(site.engine)["city"]
    assert (city.name, city.hospital, city.poll_interval_seconds) == ("city", "City Hospital No. 1", 600)

    stale = client.post(
        "/it/sources/city/edit",
        data={
            **change,
            "hospital": "Typed meanwhile",
            "version": version.group(1),
            "action": "save",
            "csrf_token": csrf,
        },
    )
    assert stale.status_code == 409
    assert "someone else changed this source since this form was opened" in stale.text
    assert 'value="Typed meanwhile"' in stale.text  # what was typed is kept
    assert _sources(site.engine)["city"].hospital == "City Hospital No. 1"  # and not written


def test_only_hospital_it_may_add_or_change_sources(site: Site) -> None:
    coordinator, csrf = site.client("anna")
    assert coordinator.get("/it/add-source").status_code == 403
    assert coordinator.post("/it/add-source", data={**NEW, "csrf_token": csrf}).status_code == 403
    assert coordinator.get("/it/sources/city/edit").status_code == 403
    irina, csrf = site.client("irina")
    assert irina.get("/it/sources/other/edit").status_code == 404
    assert irina.post("/it/sources/other/edit", data={**NEW, "csrf_token": csrf}).status_code == 404
    assert irina.post("/it/add-source", data=NEW).status_code == 403  # no CSRF token
    assert "north" not in _sources(site.engine)


# -- dead letters ----------------------------------------------------------------------------------------


PATIENT = {
    "resourceType": "Patient",
    "id": "pat-77",
    "birthDate": "1950-13-45",
    "name": [{"family": "Ivanova", "given": ["Maria"]}],
    "identifier": [{"system": "http://city.example/mrn", "value": "MRN-555"}],
    "telecom": [{"system": "phone", "value": "+7 900 123 45 67"}],
    "address": [{"line": ["Lenina 1"], "city": "Moscow"}],
    "gender": "female",
}


BROKEN = '{"resourceType": "Patient", "name": "Petrov'


def _letters(engine: Engine) -> dict[str, int]:
    with session_scope(engine) as session:
        city = session.exec(select(Source).where(Source.name == "city")).one()
        other = session.exec(select(Source).where(Source.name == "other")).one()
        assert city.id is not None and other.id is not None
        record_dead_letter(session, city.id, PATIENT, "Patient.birthDate: '1950-13-45' is not a valid FHIR date")
        record_dead_letter(session, city.id, BROKEN, "Patient.ndjson line 7: not JSON")
        record_dead_letter(session, other.id, {"resourceType": "Encounter", "id": "e"}, "Encounter has no status")
        rows = session.exec(select(DeadLetter)).all()
        kind = {r.id: "json" if r.fhir_id == "pat-77" else "text" if r.source_id == city.id else "other" for r in rows}
        return {name: letter_id for letter_id, name in kind.items() if letter_id is not None}


def test_dead_letters_list_the_resource_and_the_field_at_fault(site: Site) -> None:
    letters = _letters(site.engine)
    html = site.client("irina")[0].get("/it").text
    row = re.search(rf'<tr id="letter-{letters["json"]}">(.*?)</tr>', html, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    assert cells[0].strip() == "Patient" and "pat-77" in cells[1] and "<code>Patient.birthDate</code>" in cells[2]
    assert f'href="/it/deadletters/{letters["json"]}"' in row.group(1)
    text_row = re.search(rf'<tr id="letter-{letters["text"]}">(.*?)</tr>', html, re.S)
    assert text_row is not None and "Patient.ndjson, line 7" in text_row.group(1)


def test_a_dead_letters_details_withhold_who_it_is_about(site: Site) -> None:
    letters = _letters(site.engine)
    client, _ = site.client("irina")
    page = client.get(f"/it/deadletters/{letters['json']}")
    assert page.status_code == 200
    html = page.text
    assert "<code>Patient.birthDate</code>" in html and "pat-77" in html and "City Hospital" in html
    assert "is not a valid FHIR date" in html  # the reason, as stored
    for personal in ("Ivanova", "Maria", "MRN-555", "+7 900 123 45 67", "Lenina", "Moscow"):
        assert personal not in html, personal
    assert "http://city.example/mrn" in html and "&#34;gender&#34;: &#34;female&#34;" in html  # the record's shape
    assert html.count("•••") >= 5

    text = client.get(f"/it/deadletters/{letters['text']}").text
    assert (
        "Petrov" not in text and f"is not JSON ({len(BROKEN)} characters)" in text and "Patient.ndjson, line 7" in text
    )


def test_a_dead_letters_details_are_for_its_hospitals_it(site: Site) -> None:
    letters = _letters(site.engine)
    irina, _ = site.client("irina")
    assert irina.get(f"/it/deadletters/{letters['other']}").status_code == 404
    assert irina.get("/it/deadletters/999999").status_code == 404
    assert site.client("anna")[0].get(f"/it/deadletters/{letters['json']}").status_code == 403
    russian = site.client("ivan")[0].get(f"/it/deadletters/{letters['json']}").text
    assert "Поле с ошибкой" in russian and "Запись в том виде, как получена" in russian  # noqa: RUF001


def test_the_queue_shows_how_many_wait_and_how_many_failed(site: Site) -> None:
    client, _ = site.client("irina")
    with session_scope(site.engine) as session:
        files = session.exec(select(Source).where(Source.name == "files")).one()
        assert files.id is not None
        enqueue_patients(session, files.id, ["p1", "p2", "p3"])
        session.flush()
        failed = session.exec(select(AssessmentQueueEntry).where(AssessmentQueueEntry.patient_fhir_id == "p2")).one()
        failed.attempts, failed.last_error = 2, "KeyError at stage.py:120"
        session.add(failed)
    card = client.get("/it/sources/files", headers={"HX-Request": "true"}).text
    assert 'data-queue="3"' in card and "1 failed and is retried at each drain" in card and "the oldest since" in card


# -- the favicon -----------------------------------------------------------------------------------------


def test_the_favicon_is_served_to_anyone_and_named_by_every_page(site: Site) -> None:
    anonymous = TestClient(site.app)  # type: ignore[arg-type]
    icon = anonymous.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00" and b"PNG" in icon.content[:200]
    svg = anonymous.get("/static/favicon.svg")
    assert svg.status_code == 200 and svg.text.lstrip().startswith("<svg")
    login = anonymous.get("/login").text
    assert '<link rel="icon" href="/favicon.ico"' in login and 'href="/static/favicon.svg' in login
    assert '<link rel="icon" href="/favicon.ico"' in site.client("irina")[0].get("/it").text


def test_the_connection_check_speaks_the_readers_language(site: Site) -> None:
    client, csrf = site.client("ivan")
    html = client.post("/it/sources/files/check", data={"csrf_token": csrf}, headers={"HX-Request": "true"}).text
    assert "Проверка подключения" in html and "пройдена" in html
    assert "этот источник читает FHIR NDJSON или Bundle из папки на этом сервере" in html
    assert "не JSON: 1 (Encounter.broken.ndjson line 2); они станут ошибочными записями" in html  # the value as read
    assert "not a FHIR server" not in html
    with respx.mock(assert_all_called=False) as ehr:
        ehr.get(f"{EHR}/metadata").respond(200, json=_capability())
        ehr.get(f"{EHR}/Encounter").respond(403, json={"resourceType": "OperationOutcome", "issue": []})
        refused = client.post("/it/sources/city/check", data={"csrf_token": csrf}, headers={"HX-Request": "true"}).text
    assert "сервер ответил 403: доступ запрещён; проверьте области доступа" in refused and "не пройдена" in refused
