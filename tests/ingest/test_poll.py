"""Polling pass logic on the in-memory endpoint, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.assessment import sync_and_assess
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import session_scope
from discharge_bridge.fhir import FhirClient, RetryPolicy
from discharge_bridge.ingest.models import ClinicalSnapshot, DeadLetter, EncounterSnapshot, PatientSnapshot
from discharge_bridge.sources.models import Source, SyncRun, SyncStatus
from tests.support.fakefhir import BASE, FakeFhir, condition, encounter, patient


@pytest.fixture
def ehr() -> FakeFhir:
    return FakeFhir(page_size_cap=3)


def _client(ehr: FakeFhir) -> FhirClient:
    return FhirClient(BASE, transport=ehr.transport(), retry=RetryPolicy(sleep=lambda s: None))


def _source(engine: Engine, **kwargs: Any) -> None:
    with session_scope(engine) as session:
        add_source(session, name="city", hospital="City Hospital", base_url=BASE, timezone="Europe/Moscow", **kwargs)


def _sync(engine: Engine, settings: Settings, ehr: FakeFhir, **kwargs: Any) -> Any:
    return sync_and_assess("city", engine=engine, settings=settings, client=_client(ehr), **kwargs)


def _count(engine: Engine, model: Any) -> int:
    with Session(engine) as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


def _admit(ehr: FakeFhir, n: int) -> None:
    for i in range(n):
        ehr.put(patient(f"p{i}"))
        ehr.put(condition(f"c{i}", f"p{i}"))
        ehr.put(encounter(f"e{i}", f"p{i}"))


def test_first_pass_stores_encounters_patients_and_facts(engine: Engine, settings: Settings, ehr: FakeFhir) -> None:
    _source(engine)
    _admit(ehr, 7)
    ehr.put(encounter("amb", "p0", cls="AMB"))  # outpatient visits are not polled

    result = _sync(engine, settings, ehr)

    assert result.status == SyncStatus.ok, result.error
    assert (_count(engine, PatientSnapshot), _count(engine, ClinicalSnapshot)) == (7, 7)
    # the AMB visit arrives only as an "earlier stay" of a new patient; never through the poll filter
    with Session(engine) as session:
        classes = dict(session.execute(select(EncounterSnapshot.fhir_id, EncounterSnapshot.class_code)).all())
    assert {k for k, v in classes.items() if v == "IMP"} == {f"e{i}" for i in range(7)}
    assert result.created == _count(engine, PatientSnapshot) + _count(engine, ClinicalSnapshot) + len(classes)
    # paging followed the server's foreign next links back to the configured base
    assert all(str(r.url).startswith(BASE) for r in ehr.requests)
    with Session(engine) as session:
        src = session.exec(select(Source)).one()
        enc = session.exec(select(EncounterSnapshot).where(EncounterSnapshot.fhir_id == "e0")).one()
    assert src.cursors["Encounter"] == ehr.store[("Encounter", "e6")]["meta"]["lastUpdated"].replace("Z", ".000Z")
    assert set(src.cursors) == {"Encounter", "Condition", "Observation", "RelatedPerson"}
    assert enc.period_start.isoformat() == "2026-11-01T06:30:00+00:00"


def test_second_pass_reads_only_changes_and_never_duplicates(engine: Engine, settings: Settings, ehr: FakeFhir) -> None:
    _source(engine)
    _admit(ehr, 5)
    _sync(engine, settings, ehr)
    before = (_count(engine, PatientSnapshot), _count(engine, EncounterSnapshot), _count(engine, ClinicalSnapshot))

    ehr.put(encounter("e1", "p1", status="onleave"), advance=400)
    ehr.put(
        encounter(
            "e2", "p2", status="finished", period={"start": "2026-11-01T09:30:00Z", "end": "2026-11-05T12:00:00Z"}
        )
    )
    ehr.put(encounter("e3", "p3", status="entered-in-error"))
    ehr.put(condition("c-new", "p4", code="Z59.0"))
    ehr.put(condition("stranger", "nobody"))  # a patient we do not follow
    again = _sync(engine, settings, ehr)

    assert again.status == SyncStatus.ok, again.error
    after = (_count(engine, PatientSnapshot), _count(engine, EncounterSnapshot), _count(engine, ClinicalSnapshot))
    assert after == (before[0], before[1], before[2] + 1)
    assert again.updated == 3 and again.created == 1
    with Session(engine) as session:
        statuses = dict(session.execute(select(EncounterSnapshot.fhir_id, EncounterSnapshot.status)).all())
        end = session.execute(
            select(EncounterSnapshot.period_end).where(EncounterSnapshot.fhir_id == "e2")
        ).scalar_one()
    assert (statuses["e1"], statuses["e2"], statuses["e3"]) == ("onleave", "finished", "entered-in-error")
    assert end.isoformat() == "2026-11-05T12:00:00+00:00"
    # the poll asked only for what changed since the cursor (minus the overlap window)
    assert any("_lastUpdated=gt" in str(r.url) for r in ehr.requests[-10:])

    third = _sync(engine, settings, ehr)
    assert (third.created, third.updated) == (0, 0)  # the overlap re-read changes nothing


def test_unusable_resources_become_dead_letters_and_the_sync_goes_on(
    engine: Engine, settings: Settings, ehr: FakeFhir
) -> None:
    _source(engine)
    _admit(ehr, 2)
    no_subject = encounter("bad1", "x")
    del no_subject["subject"]
    ehr.put(no_subject)
    messy = encounter("messy", "p0", vendorField="x", period={"start": "2026-11-02T10:00:00"}, priority={"text": ""})
    ehr.put(messy)

    result = _sync(engine, settings, ehr)

    assert result.status == SyncStatus.ok
    assert result.dead_letters == 1
    with Session(engine) as session:
        letter = session.exec(select(DeadLetter)).one()
        stored = session.execute(
            select(EncounterSnapshot.period_start).where(EncounterSnapshot.fhir_id == "messy")
        ).scalar_one()
        problems = {row[0] for row in session.execute(select(ConformanceIssueTable.c.path))}
    assert (letter.resource_type, letter.fhir_id, letter.error) == (
        "Encounter",
        "bad1",
        "Encounter has no subject reference to a Patient",
    )
    # a time without a zone is read in the hospital's zone (Moscow, UTC+3)
    assert stored.isoformat() == "2026-11-02T07:00:00+00:00"
    assert "vendorField" in problems

    _sync(engine, settings, ehr)  # the same bad payload again only bumps its count
    with Session(engine) as session:
        letter = session.exec(select(DeadLetter)).one()
    assert letter.count == 2  # the overlap window re-read it
    assert _count(engine, DeadLetter) == 1


from discharge_bridge.ingest.models import ConformanceIssue  # noqa: E402

ConformanceIssueTable = ConformanceIssue.__table__  # type: ignore[attr-defined]


def test_pass_aborted_after_n_pages_resumes_to_the_same_state(
    engine: Engine, settings: Settings, ehr: FakeFhir
) -> None:
    _source(engine)
    _admit(ehr, 10)
    aborted = _sync(engine, settings, ehr, stop_after_pages=2)
    assert aborted.status == SyncStatus.failed and "stopped after 2 pages" in (aborted.error or "")
    with Session(engine) as session:
        cursor = session.exec(select(Source)).one().cursors.get("Encounter")
    assert cursor is not None  # sorted pages advanced the cursor with the rows they covered

    resumed = _sync(engine, settings, ehr)
    assert resumed.status == SyncStatus.ok
    assert (_count(engine, PatientSnapshot), _count(engine, ClinicalSnapshot)) == (10, 10)
    with Session(engine) as session:
        runs = [r.status for r in session.exec(select(SyncRun).order_by(SyncRun.id))]
    assert runs == [SyncStatus.failed, SyncStatus.ok]


def test_server_that_ignores_sort_only_moves_cursor_at_the_end(engine: Engine, settings: Settings) -> None:
    ehr = FakeFhir(page_size_cap=3, honour_sort=False)
    _source(engine)
    _admit(ehr, 10)
    _sync(engine, settings, ehr, stop_after_pages=2)
    with Session(engine) as session:
        assert session.exec(select(Source)).one().cursors.get("Encounter") is None
    assert _sync(engine, settings, ehr).status == SyncStatus.ok
    assert _count(engine, PatientSnapshot) == 10


def test_server_failure_marks_the_source_and_keeps_the_cursor(
    engine: Engine, settings: Settings, ehr: FakeFhir
) -> None:
    _source(engine)
    _admit(ehr, 2)
    ehr.fail = lambda request: httpx.Response(503)
    result = _sync(engine, settings, ehr)
    assert result.status == SyncStatus.failed
    with Session(engine) as session:
        src = session.exec(select(Source)).one()
    assert src.last_error and "503" in src.last_error
    assert src.cursors == {}


def test_an_update_during_the_pass_cannot_make_offset_paging_skip_a_resource(
    engine: Engine, settings: Settings, ehr: FakeFhir
) -> None:
    """Offset paging shifts when a resource moves to the end mid-pass; re-issued searches do not."""
    _source(engine)
    _admit(ehr, 9)
    encounter_searches = []

    def update_e0_after_first_page(request: httpx.Request) -> None:
        if request.url.path.endswith("/Encounter") and "class" in request.url.params:
            encounter_searches.append(request)
            if len(encounter_searches) == 2:
                ehr.put(encounter("e0", "p0", status="onleave"))

    ehr.before_request = update_e0_after_first_page
    result = _sync(engine, settings, ehr)

    assert result.status == SyncStatus.ok
    with Session(engine) as session:
        statuses = dict(session.exec(select(EncounterSnapshot.fhir_id, EncounterSnapshot.status)).all())
    assert {f"e{i}" for i in range(9)} <= set(statuses)
    assert statuses["e0"] == "onleave"
    # every page after the first was a fresh search from the last stamp, not an offset next link
    assert all("_offset" not in str(r.url) for r in encounter_searches)
    assert all("_lastUpdated=ge" in str(r.url) for r in encounter_searches[1:])


def test_replay_reads_the_fixed_resource_from_the_ehr(engine: Engine, settings: Settings, ehr: FakeFhir) -> None:
    from discharge_bridge.ingest.deadletters import list_dead_letters, replay
    from discharge_bridge.sources.service import get_source

    _source(engine)
    _admit(ehr, 1)
    broken = encounter("bad1", "p0")
    del broken["subject"]
    ehr.put(broken)
    _sync(engine, settings, ehr)
    ehr.put(encounter("bad1", "p0"))  # the hospital fixed it in the EHR

    with session_scope(engine) as session:
        letter = list_dead_letters(session)[0]
        outcome = replay(session, letter, get_source(session, "city"), _client(ehr))
    assert outcome.resolved and outcome.detail == "ingested"
    with Session(engine) as session:
        assert list_dead_letters(session) == []
        stored = session.exec(select(EncounterSnapshot).where(EncounterSnapshot.fhir_id == "bad1")).one()
    assert stored.patient_fhir_id == "p0" and stored.version_id == "2"
