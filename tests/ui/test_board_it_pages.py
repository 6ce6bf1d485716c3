"""The bed board and the hospital IT page through the app (TestClient, signed in by session cookie).

Rendering in English and Russian, filters, the CSV, roles (403), other hospitals' objects (404),
CSRF, the connection check against a mocked EHR and a file folder, and dead-letter replay.
"""

from __future__ import annotations

import ast
import csv
import io
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import respx
from fastapi.testclient import TestClient
from jinja2.ext import babel_extract
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

import discharge_bridge.ui
from discharge_bridge.app import create_app
from discharge_bridge.audit import AuditQuery, search_audit
from discharge_bridge.cases.barriers import add_barrier
from discharge_bridge.cases.handoffs.models import DestinationType
from discharge_bridge.cases.handoffs.service import create_handoff
from discharge_bridge.cases.models import BarrierCode
from discharge_bridge.cases.readiness import set_dates_by_person
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import session_scope, utcnow
from discharge_bridge.deps import SESSION_COOKIE
from discharge_bridge.ingest.models import ConformanceIssue, DeadLetter, EncounterSnapshot
from discharge_bridge.ingest.store import record_dead_letter
from discharge_bridge.sources.models import Source, SourceMode
from discharge_bridge.ui import board as board_page_module
from discharge_bridge.ui import i18n
from discharge_bridge.ui.charts import Series, chart, nice_ceiling
from discharge_bridge.users.service import get_user, start_session
from tests.support.factories import flagged_case, make_source, make_user

# SQLite only: fast; the board's and the IT page's SQL runs on both databases in tests/worklists.
sqlite_only = pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)
EHR = "http://ehr.test/fhir"


@dataclass
class Site:
    app: object
    engine: Engine
    ready_case: int
    letters: dict[str, int]  # "city-json", "city-text", "other"

    def client(self, username: str) -> tuple[TestClient, str]:
        """A browser-like client with a session cookie, and the session's CSRF token."""
        with session_scope(self.engine) as session:
            token, row = start_session(session, get_user(session, username), lifetime=timedelta(hours=1))
            csrf = row.csrf_token
        client = TestClient(self.app, follow_redirects=False)  # type: ignore[arg-type]
        client.cookies.set(SESSION_COOKIE, token)
        return client, csrf


def _in_ward(session: Session, source_id: int, eid: str, ward: str, bed: str) -> None:
    enc = session.exec(
        select(EncounterSnapshot).where(EncounterSnapshot.source_id == source_id, EncounterSnapshot.fhir_id == eid)
    ).one()
    enc.ward, enc.bed = ward, bed
    session.add(enc)


def _letter(session: Session, source_id: int, payload: object, error: str) -> int:
    record_dead_letter(session, source_id, payload, error)
    return max(d.id or 0 for d in session.exec(select(DeadLetter).where(DeadLetter.source_id == source_id)))


@pytest.fixture
def site(settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Site:
    monkeypatch.setenv("CITY_TOKEN", "s3cret-value-never-shown")
    with session_scope(engine) as session:
        city = add_source(
            session,
            name="city",
            hospital="City Hospital",
            base_url=EHR,
            auth={"type": "bearer", "token_env": "CITY_TOKEN"},
        )
        other = make_source(session, "other")
        assert city.id is not None and other.id is not None
        ready = flagged_case(session, city.id, "enc-ready", "pat-ready")
        _in_ward(session, city.id, "enc-ready", "Therapy 3", "12")
        waiting = flagged_case(session, city.id, "enc-wait", "pat-wait")
        _in_ward(session, city.id, "enc-wait", "Surgery 2", "4")
        set_dates_by_person(session, ready, {"medically_ready_at": utcnow() - timedelta(days=3)}, actor="ward")
        set_dates_by_person(session, waiting, {"expected_discharge_at": utcnow() + timedelta(days=2)}, actor="ward")
        add_barrier(session, ready, actor="boris", code=BarrierCode.housing, owner="Social services")
        create_handoff(
            session,
            ready,
            actor="anna",
            destination_type=DestinationType.social_home,
            mappings_dir=settings.mappings_dir,
        )
        foreign = flagged_case(session, other.id, "enc-foreign", "pat-foreign")
        set_dates_by_person(session, foreign, {"medically_ready_at": utcnow() - timedelta(days=1)}, actor="ward")
        letters = {
            "city-json": _letter(
                session, city.id, {"resourceType": "Encounter", "id": "bad-enc"}, "Encounter has no status"
            ),
            "city-text": _letter(session, city.id, "{not json", "Encounter.ndjson line 7: not JSON"),
            "other": _letter(session, other.id, {"resourceType": "Patient", "id": "x"}, "Patient without id"),
        }
        session.add(
            ConformanceIssue(
                source_id=city.id,
                resource_type="Encounter",
                path="period.start",
                problem="value_error: DateTime value string does not match spec regex.",
                count=7,
                example_id="enc-ready",
            )
        )
        make_user(session, "boris", "bed_manager", ("city",))
        make_user(session, "vera", "bed_manager", ("city",), locale="ru")
        make_user(session, "olga", "bed_manager", ("city", "other"))
        make_user(session, "irina", "it_admin", ("city",))
        make_user(session, "ivan", "it_admin", ("city",), locale="ru")
        assert ready.id is not None
        ready_id = ready.id
    return Site(create_app(settings), engine, ready_id, letters)


# -- the board -----------------------------------------------------------------------------------


@sqlite_only
def test_the_board_shows_the_pending_discharge_with_its_delay(site: Site) -> None:
    client, _ = site.client("boris")
    page = client.get("/board")
    assert page.status_code == 200, page.text
    html = page.text
    assert html.index("pat-ready") < html.index("pat-wait")  # medically ready first
    assert 'data-days-delayed="3.0"' in html and "Days delayed" in html
    assert "Housing" in html and "Social services" in html and "Social home" in html
    assert f'href="/cases/{site.ready_case}"' in html
    assert "pat-foreign" not in html and "Other Hospital" not in html  # another hospital's patient
    assert 'id="hospital"' not in html  # one hospital: no hospital filter
    for option in ("Therapy 3", "Surgery 2"):
        assert f'<option value="{option}"' in html
    # The totals and both charts, each with an accessible name and its numbers in a table.
    assert '<span class="stat-value">1</span>' in html and '<span class="stat-value">3.0</span>' in html
    assert html.count('role="img"') == 2 and "<title>Ready-to-discharge delay per week</title>" in html
    assert 'aria-label="Handoffs by destination per week"' in html and html.count("<summary>The numbers") == 2


@sqlite_only
def test_the_board_speaks_russian_for_a_russian_user(site: Site) -> None:
    client, _ = site.client("vera")
    html = client.get("/board").text
    assert '<html lang="ru">' in html
    for text in ("Коечный фонд", "Готов к выписке", "Дней задержки", "Потеряно койко-дней", "Барьеры", "Направление"):
        assert text in html, text
    assert "Bed-days lost" not in html and "Days delayed" not in html


@sqlite_only
def test_filters_by_ward_and_hospital(site: Site) -> None:
    client, _ = site.client("boris")
    surgery = client.get("/board", params={"ward": "Surgery 2"}).text
    assert "pat-wait" in surgery and "pat-ready" not in surgery
    assert '<option value="Surgery 2" selected>' in surgery
    assert client.get("/board", params={"hospital": "other"}).status_code == 404  # not one of boris's

    both, _ = site.client("olga")
    html = both.get("/board").text
    assert 'id="hospital"' in html and "pat-foreign" in html and "pat-ready" in html
    only_other = both.get("/board", params={"hospital": "other"}).text
    assert "pat-foreign" in only_other and "pat-ready" not in only_other


@sqlite_only
def test_the_csv_has_a_bom_a_header_and_the_filtered_rows(site: Site) -> None:
    client, _ = site.client("boris")
    response = client.get("/board.csv", params={"ward": "Therapy 3"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    body = response.content
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][:4] == ["Hospital", "Ward", "Bed", "Patient (FHIR id)"] and "Days delayed" in rows[0]
    assert len(rows) == 2
    line = dict(zip(rows[0], rows[1], strict=True))
    assert line["Patient (FHIR id)"] == "pat-ready" and line["Ward"] == "Therapy 3" and line["Bed"] == "12"
    assert line["Days delayed"] == "3.0" and line["Destination"] == "Social home"
    assert line["Open barriers"].startswith("Housing (Social services, ")
    assert "1940-03-02" not in body.decode("utf-8-sig")  # the birth date the store holds is not exported

    russian, _ = site.client("vera")
    header = russian.get("/board.csv").content.decode("utf-8-sig").splitlines()[0]
    assert header.startswith("Больница,Отделение,Койка")


@sqlite_only
def test_roles_that_may_not_see_a_page_get_403(site: Site) -> None:
    boris, csrf = site.client("boris")
    irina, _ = site.client("irina")
    assert irina.get("/board").status_code == 403 and irina.get("/board.csv").status_code == 403
    assert boris.get("/it").status_code == 403
    refused = boris.post("/it/sources/city/check", data={"csrf_token": csrf})
    assert refused.status_code == 403 and "Not allowed" in refused.text
    anonymous = TestClient(site.app).get("/it", follow_redirects=False)  # type: ignore[arg-type]
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login?next=/it"


# -- the IT page -----------------------------------------------------------------------------------


@sqlite_only
def test_the_it_page_shows_status_letters_and_conformance_without_secrets(site: Site) -> None:
    client, _ = site.client("irina")
    page = client.get("/it")
    assert page.status_code == 200
    html = page.text
    assert "City Hospital" in html and EHR in html and "Bearer token" in html and "CITY_TOKEN" in html
    assert "s3cret-value-never-shown" not in html
    assert "Encounter has no status" in html and "Encounter.ndjson line 7: not JSON" in html
    assert "Dead letters: 2" in html and "Patient without id" not in html  # the other hospital's letter
    assert f'action="/it/deadletters/{site.letters["city-json"]}/replay"' in html and "Replay all" in html
    assert "Encounter.period.start" in html and ">7<" in html and "Encounter/enc-ready" in html
    assert "never run" in html and "Other Hospital" not in html


@sqlite_only
def test_the_it_page_in_russian(site: Site) -> None:
    client, _ = site.client("ivan")
    html = client.get("/it").text
    for text in ("Источник", "Последняя синхронизация", "Отставание", "Ошибочные записи", "Проверить подключение"):
        assert text in html, text


@sqlite_only
def test_foreign_sources_and_dead_letters_are_not_found(site: Site) -> None:
    client, csrf = site.client("irina")
    assert client.post(f"/it/deadletters/{site.letters['other']}/replay", data={"csrf_token": csrf}).status_code == 404
    assert client.post("/it/sources/other/check", data={"csrf_token": csrf}).status_code == 404
    assert client.post("/it/sources/other/replay", data={"csrf_token": csrf}).status_code == 404
    assert client.post("/it/sources/nowhere/check", data={"csrf_token": csrf}).status_code == 404


@sqlite_only
def test_a_post_without_the_csrf_token_is_refused(site: Site) -> None:
    client, _ = site.client("irina")
    for path in ("/it/sources/city/check", f"/it/deadletters/{site.letters['city-json']}/replay"):
        response = client.post(path)
        assert response.status_code == 403 and "CSRF" in response.text
        assert client.post(path, data={"csrf_token": "wrong"}).status_code == 403


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


@sqlite_only
def test_check_connection_against_the_ehr(site: Site) -> None:
    client, csrf = site.client("irina")
    with respx.mock(assert_all_called=False) as ehr:
        metadata = ehr.get(f"{EHR}/metadata").respond(200, json=_capability())
        search = ehr.get(f"{EHR}/Encounter").respond(
            200, json={"resourceType": "Bundle", "type": "searchset", "total": 34}
        )
        response = client.post("/it/sources/city/check", data={"csrf_token": csrf})
    assert response.status_code == 200 and metadata.called and search.called
    assert search.calls.last.request.headers["authorization"] == "Bearer s3cret-value-never-shown"
    html = response.text
    assert "Connection check" in html and "passed" in html and "34 encounters on the server" in html
    assert "s3cret-value-never-shown" not in html

    with respx.mock(assert_all_called=False) as ehr:
        ehr.get(f"{EHR}/metadata").mock(side_effect=httpx.ConnectError("connection refused"))
        refused = client.post("/it/sources/city/check", data={"csrf_token": csrf}, headers={"HX-Request": "true"})
    assert refused.status_code == 200 and refused.text.lstrip().startswith(
        '<section class="card source" id="source-city"'
    )
    assert "failed" in refused.text and "Check the base URL" in refused.text


@sqlite_only
def test_check_connection_of_a_file_source_reads_the_folder(site: Site, tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "Encounter.ndjson").write_text('{"resourceType":"Encounter","id":"e1"}\n{broken\n')
    (folder / "Patient.ndjson").write_text('{"resourceType":"Patient","id":"p1"}\n')
    with session_scope(site.engine) as session:
        add_source(session, name="files", hospital="File Hospital", base_url=str(folder), mode=SourceMode.file)
        make_user(session, "fiona", "it_admin", ("files",))
    client, csrf = site.client("fiona")
    html = client.post("/it/sources/files/check", data={"csrf_token": csrf}).text
    assert "not a FHIR server" in html and "3 records" in html
    assert "1 not valid JSON (Encounter.ndjson line 2)" in html
    assert "<strong>Patient</strong>: 1 resource<" in html and "no Condition resources" in html


@sqlite_only
def test_replay_resolves_what_the_ehr_now_serves_and_keeps_what_stays_broken(site: Site, engine: Engine) -> None:
    client, csrf = site.client("irina")
    json_letter, text_letter = site.letters["city-json"], site.letters["city-text"]
    fixed = {
        "resourceType": "Encounter",
        "id": "bad-enc",
        "meta": {"versionId": "2"},
        "status": "in-progress",
        "class": {"code": "IMP"},
        "subject": {"reference": "Patient/pat-ready"},
    }
    with respx.mock(assert_all_called=True) as ehr:
        ehr.get(f"{EHR}/Encounter/bad-enc").respond(200, json=fixed)
        response = client.post(f"/it/deadletters/{json_letter}/replay", data={"csrf_token": csrf})
    assert response.status_code == 200
    assert f"Dead letter {json_letter} resolved: ingested" in response.text
    with respx.mock(assert_all_called=False):  # nothing to re-read: the stored text is parsed again
        again = client.post("/it/sources/city/replay", data={"csrf_token": csrf}, headers={"HX-Request": "true"})
    assert f"Dead letter {text_letter} is still a dead letter: still not JSON" in again.text
    assert "<html" not in again.text  # htmx gets the source's card only
    with session_scope(engine) as session:
        letters = {d.id: d for d in session.exec(select(DeadLetter))}
        source = session.exec(select(Source).where(Source.name == "city")).one()
        snapshot = session.exec(
            select(EncounterSnapshot).where(
                EncounterSnapshot.source_id == source.id, EncounterSnapshot.fhir_id == "bad-enc"
            )
        ).one()
    assert letters[json_letter].resolved_at is not None and snapshot.status == "in-progress"
    assert letters[text_letter].resolved_at is None and letters[site.letters["other"]].resolved_at is None
    with session_scope(engine) as session:  # both presses are in the audit trail, without payloads
        audit = search_audit(session, AuditQuery(action="deadletter.replay"))
    assert [(e.actor, e.target_name, e.details["resolved"]) for e in audit] == [
        ("irina", "city", 0),
        ("irina", "city", 1),
    ]
    assert audit[1].details["dead_letters"] == [json_letter]


# -- translations ----------------------------------------------------------------------------------

UI = Path(discharge_bridge.ui.__file__).parent
TEMPLATES = [
    "board.html",
    "board/table.html",
    "board/totals.html",
    "board/charts.html",
    "it.html",
    "it/source.html",
    "it/check.html",
]
MODULES = ["board.py", "it.py"]
SAME_IN_RUSSIAN = {"OK", "CapabilityStatement", "SMART Backend Services"}


def _messages() -> set[str]:
    """Every message id of these pages: ``_()`` in the templates, gettext / N_ / CSV_HEADER in the modules."""
    found: set[str] = set()
    for name in TEMPLATES:
        with (UI / "templates" / name).open("rb") as fh:
            for _, _, message, _ in babel_extract(fh, ["_", "gettext"], [], {}):
                found.update([message] if isinstance(message, str) else [m for m in message if m])
    for name in MODULES:
        tree = ast.parse((UI / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                called = getattr(node.func, "id", getattr(node.func, "attr", None))
                if called in ("N_", "gettext") and isinstance(node.args[0].value, str):
                    found.add(node.args[0].value)
    found.update(board_page_module.CSV_HEADER)
    return found


def test_every_message_of_these_pages_has_a_russian_translation() -> None:
    messages = _messages()
    assert len(messages) > 100  # the extraction sees the pages
    russian = i18n.translations("ru")
    missing = sorted(m for m in messages - SAME_IN_RUSSIAN if russian.gettext(m) == m)
    assert not missing, missing


def test_charts_escape_their_text_and_end_axes_on_round_numbers() -> None:
    svg = str(
        chart(
            title='Delay <script>"x"</script>',
            summary="a & b",
            labels=["1 Nov", "8 Nov"],
            bars=[Series("waiting", [3.0, None])],
            lines=[Series("median", [1.5, 2.5])],
            bar_unit="patients",
            line_unit="days",
        )
    )
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a &amp; b" in svg
    assert svg.startswith('<svg class="chart"') and 'role="img"' in svg and svg.count("<rect") == 1
    assert svg.count("<circle") == 2 and ">5</text>" in svg  # the bars' axis ends at 5, the lines' too
    assert [nice_ceiling(v) for v in (0, 0.4, 3, 7, 12, 180)] == [1.0, 0.5, 5.0, 10.0, 20.0, 200.0]
