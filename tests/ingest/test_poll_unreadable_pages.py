"""A poll pass that meets a page it cannot read: the pages before stay stored, the cursor stays at
the last good page, and hospital IT sees which URL failed and why (CLI and IT page)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from discharge_bridge.app import create_app
from discharge_bridge.cli import app as cli_app
from discharge_bridge.config import Settings, get_settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.connections.status import source_statuses
from discharge_bridge.db import session_scope, utcnow
from discharge_bridge.deps import SESSION_COOKIE
from discharge_bridge.fhir import FhirClient, RetryPolicy
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.ingest.poll import sync_source
from discharge_bridge.sources.models import Source, SyncRun, SyncStatus
from discharge_bridge.users.service import get_user, start_session
from tests.support.factories import make_user
from tests.support.fakefhir import BASE, FakeFhir, condition, encounter, patient

TRUNCATED = b'{"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {"resourceType": "Enc'
HTML = b"<html><title>Gateway</title><body>Bearer s3cr3t-t0ken</body></html>"


def _setup(engine: Engine, ehr: FakeFhir, admissions: int) -> None:
    with session_scope(engine) as session:
        add_source(session, name="city", hospital="City Hospital", base_url=BASE, timezone="Europe/Moscow")
    for i in range(admissions):
        ehr.put(patient(f"p{i}"))
        ehr.put(condition(f"c{i}", f"p{i}"))
        ehr.put(encounter(f"e{i}", f"p{i}"))


def _fail_encounter_search(ehr: FakeFhir, number: int, response: httpx.Response) -> list[httpx.Request]:
    """Every attempt at the `number`-th Encounter poll search gets `response`; returns those requests."""
    searches: list[str] = []
    failed: list[httpx.Request] = []

    def fail(request: httpx.Request) -> httpx.Response | None:
        if not (request.url.path.endswith("/Encounter") and "class" in request.url.params):
            return None  # the fact searches of each page's new patients
        if str(request.url) not in searches:
            searches.append(str(request.url))
        if searches.index(str(request.url)) + 1 != number:
            return None
        failed.append(request)
        return response

    ehr.fail = fail
    return failed


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        pytest.param(httpx.Response(200, content=TRUNCATED), "not valid JSON", id="truncated"),
        pytest.param(httpx.Response(200, content=HTML, headers={"content-type": "text/html"}), "HTML", id="html-200"),
        pytest.param(httpx.Response(200, json={"resourceType": "Encounter"}), "an Encounter where", id="not-a-bundle"),
    ],
)
def test_unreadable_fourth_page_keeps_three_pages_and_names_the_url(
    engine: Engine, settings: Settings, response: httpx.Response, reason: str
) -> None:
    ehr = FakeFhir(page_size_cap=3)
    _setup(engine, ehr, 12)
    failed = _fail_encounter_search(ehr, 4, response)
    sleeps: list[float] = []
    client = FhirClient(BASE, transport=ehr.transport(), retry=RetryPolicy(sleep=sleeps.append))

    result = sync_source("city", engine=engine, settings=settings, client=client)

    # bounded: five attempts at the bad page, four backoff waits, then the pass ends
    assert len(failed) == 5 and len(sleeps) == 4
    assert len({str(r.url) for r in failed}) == 1
    url = str(failed[0].url)  # class, _include, _count, _sort, _lastUpdated: nothing to mask
    assert result.status == SyncStatus.failed
    error = result.error or ""
    assert error.startswith("unreadable FHIR page (") and reason in error[:80]
    assert url in error and "gave up after 5 attempts" in error
    assert "s3cr3t" not in error

    # pages 1-3 stored (e0..e6: each re-issued page starts at the previous page's newest stamp)
    with Session(engine) as session:
        stored = set(session.exec(select(EncounterSnapshot.fhir_id)))
        src = session.exec(select(Source)).one()
        run = session.exec(select(SyncRun)).one()
    assert stored == {f"e{i}" for i in range(7)}
    assert result.pages == 3
    assert src.cursors["Encounter"] == ehr.store[("Encounter", "e6")]["meta"]["lastUpdated"].replace("Z", ".000Z")
    assert src.last_error == run.error == error
    assert run.status == SyncStatus.failed and run.pages == 3

    # the next pass starts at page 3's stamp and reads the rest
    ehr.fail = None
    again = sync_source("city", engine=engine, settings=settings, client=_client(ehr))
    assert again.status == SyncStatus.ok, again.error
    with Session(engine) as session:
        assert set(session.exec(select(EncounterSnapshot.fhir_id))) == {f"e{i}" for i in range(12)}
        assert session.exec(select(Source)).one().last_error is None


def _client(ehr: FakeFhir) -> FhirClient:
    return FhirClient(BASE, transport=ehr.transport(), retry=RetryPolicy(sleep=lambda s: None))


@pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)
def test_it_sees_the_page_problem_in_sources_list_and_on_the_it_page(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ehr = FakeFhir(page_size_cap=3)
    _setup(engine, ehr, 5)
    _fail_encounter_search(ehr, 2, httpx.Response(200, content=TRUNCATED))
    result = sync_source("city", engine=engine, settings=settings, client=_client(ehr))
    error = result.error or ""
    assert "unreadable FHIR page (not valid JSON" in error and f"GET {BASE}/Encounter?" in error

    # what `source_statuses` gives the IT page
    with session_scope(engine) as session:
        (status,) = source_statuses(session, source_ids=None, now=utcnow())
        make_user(session, "irina", "it_admin", ("city",))
    assert status.public.last_error == error

    # the IT page, signed in as hospital IT
    with session_scope(engine) as session:
        token, _ = start_session(session, get_user(session, "irina"), lifetime=timedelta(hours=1))
    web = TestClient(create_app(settings), follow_redirects=False)
    web.cookies.set(SESSION_COOKIE, token)
    page = web.get("/it")
    assert page.status_code == 200
    assert str(escape(error)) in page.text

    # `discharge-bridge sources list`
    monkeypatch.setenv("DISCHARGE_BRIDGE_DATA_DIR", str(settings.data_dir))
    monkeypatch.delenv("DISCHARGE_BRIDGE_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        as_json = runner.invoke(cli_app, ["sources", "list", "--format", "json"]).output
        listed: list[dict[str, Any]] = json.loads(as_json)
        table = runner.invoke(cli_app, ["sources", "list"], env={"COLUMNS": "400"}).output
    finally:
        get_settings.cache_clear()
    assert listed[0]["last_error"] == error
    assert "unreadable FHIR page (not valid JSON" in table  # the table shows the first 80 characters
