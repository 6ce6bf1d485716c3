"""Bulk Data backfill through the ingest path: same result as polling, resumable, cursor, faults.

Fast tests run on the stub EHR (tests/subscriptions/stub_ehr.py, SQLite and PostgreSQL); the slow
ones export a few thousand resources from the EHR simulator, also under SMART Backend Services.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from discharge_bridge.assessment import assess_source, sync_and_assess
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import session_scope
from discharge_bridge.fhir import FhirClient, RetryPolicy
from discharge_bridge.ingest import backfill as backfill_module
from discharge_bridge.ingest.backfill import backfill_source
from discharge_bridge.ingest.models import (
    BulkExport,
    BulkExportStatus,
    ClinicalSnapshot,
    DeadLetter,
    EncounterSnapshot,
    PatientSnapshot,
)
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.sources.models import Source, SyncStatus
from tests.subscriptions.stub_ehr import StubEhr
from tests.support.fakefhir import BASE, condition, encounter, patient

CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def observation(oid: str, pid: str, category: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "63512-8"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "valueQuantity": {"value": 1},
    }


def related(rid: str, pid: str) -> dict[str, Any]:
    return {"resourceType": "RelatedPerson", "id": rid, "patient": {"reference": f"Patient/{pid}"}}


def hospital(ehr: StubEhr, n: int = 8) -> None:
    """Inpatients with their record, plus what a poll leaves out: outpatients, other categories."""
    for i in range(n):
        pid = f"p{i}"
        ehr.put(patient(pid, birthDate=f"19{35 + i}-01-01"))
        ehr.put(condition(f"c{i}", pid, code="F03.90" if i % 2 else "I10"))
        ehr.put(observation(f"o{i}", pid, "social-history"))
        ehr.put(observation(f"lab{i}", pid, "laboratory"))  # not a polled category
        if i % 3 == 0:
            ehr.put(related(f"rp{i}", pid))
        ehr.put(encounter(f"e{i}", pid, cls="IMP" if i % 4 else "ACUTE"))
    ehr.put(encounter("earlier-amb", "p0", status="finished", cls="AMB"))  # an earlier stay: kept
    ehr.put(encounter("visit-amb", "p0", status="in-progress", cls="AMB"))  # outpatient now: not kept
    ehr.put(patient("out1"))  # outpatient only: nothing of them is kept
    ehr.put(encounter("out-visit", "out1", status="finished", cls="AMB"))
    ehr.put(condition("out-c", "out1"))
    orphan = encounter("no-subject", "x")
    del orphan["subject"]
    ehr.put(orphan)  # an inpatient stay without a patient: a dead letter either way


def _client(ehr: StubEhr) -> FhirClient:
    return FhirClient(BASE, transport=ehr.transport(), retry=RetryPolicy(max_attempts=3, sleep=lambda s: None))


def _add(engine: Engine, name: str) -> int:
    with session_scope(engine) as session:
        source = add_source(session, name=name, hospital=name.title(), base_url=BASE)
        assert source.id is not None
        return source.id


def _state(engine: Engine, source_id: int) -> dict[str, Any]:
    with Session(engine) as session:

        def versions(model: Any) -> set[tuple[str, str | None]]:
            return set(session.exec(select(model.fhir_id, model.version_id).where(model.source_id == source_id)).all())

        flagged = session.exec(
            select(RiskAssessment.encounter_fhir_id, RiskAssessment.priority).where(
                RiskAssessment.source_id == source_id, col(RiskAssessment.flagged).is_(True)
            )
        ).all()
        letters = session.exec(select(DeadLetter.error).where(DeadLetter.source_id == source_id)).all()
        return {
            "patients": versions(PatientSnapshot),
            "encounters": versions(EncounterSnapshot),
            "clinical": versions(ClinicalSnapshot),
            "flagged": set(flagged),
            "dead_letters": sorted(letters),
        }


def backfill(name: str, *, engine: Engine, settings: Settings, **kwargs: Any) -> Any:
    """A backfill and the assessment of what it queued, as `discharge-bridge backfill` runs them."""
    outcome = backfill_source(name, engine=engine, settings=settings, **kwargs)
    assess_source(outcome.sync, name, engine=engine, settings=settings)
    return outcome


def _backfill(engine: Engine, settings: Settings, ehr: StubEhr, name: str = "bulk", **kwargs: Any) -> Any:
    return backfill(name, engine=engine, settings=settings, client=_client(ehr), sleep=lambda s: None, **kwargs)


def _kick_offs(ehr: StubEhr) -> list[httpx.Request]:
    return [r for r in ehr.requests if r.url.path.endswith("$export")]


def test_a_backfill_keeps_exactly_what_polling_keeps(engine: Engine, settings: Settings) -> None:
    ehr = StubEhr()
    hospital(ehr)
    polled, bulk = _add(engine, "polled"), _add(engine, "bulk")
    assert sync_and_assess("polled", engine=engine, settings=settings, client=_client(ehr)).status == SyncStatus.ok

    outcome = _backfill(engine, settings, ehr)

    assert outcome.sync.status == SyncStatus.ok, outcome.sync.error
    expected, got = _state(engine, polled), _state(engine, bulk)
    assert got == expected
    assert ("earlier-amb", "1") in got["encounters"] and ("visit-amb", "1") not in got["encounters"]
    assert got["flagged"] and got["dead_letters"] == ["Encounter has no subject reference to a Patient"]
    (kick_off,) = _kick_offs(ehr)
    assert kick_off.url.path.endswith("/Patient/$export")
    assert kick_off.url.params["_type"] == "Patient,Encounter,Condition,Observation,RelatedPerson"
    assert "_since" not in kick_off.url.params
    assert outcome.skipped > 0 and not outcome.resumed


def test_transaction_time_becomes_the_poll_cursor_and_the_next_backfill_asks_since(
    engine: Engine, settings: Settings
) -> None:
    ehr = StubEhr()
    hospital(ehr, 3)
    _add(engine, "bulk")
    first = _backfill(engine, settings, ehr)
    cursor = ehr.clock.isoformat().replace("+00:00", ".000Z")  # the server's time, in the poll's format
    assert first.transaction_time == cursor
    with Session(engine) as session:
        source = session.exec(select(Source)).one()
    assert source.cursors == {t: cursor for t in ("Encounter", "Condition", "Observation", "RelatedPerson")}

    ehr.put(encounter("e1", "p1", status="onleave"), advance=60)
    second = _backfill(engine, settings, ehr)
    assert second.since == cursor
    assert _kick_offs(ehr)[-1].url.params["_since"] == cursor
    assert second.sync.updated == 1 and second.sync.created == 0
    ehr.requests.clear()
    sync_and_assess("bulk", engine=engine, settings=settings, client=_client(ehr))
    assert "_lastUpdated=gt" in str(ehr.requests[0].url)  # the poll goes on from the export


def test_an_interrupted_backfill_resumes_where_it_stopped(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backfill_module, "BATCH_LINES", 2)
    ehr = StubEhr()
    ehr.lines_per_file = 3
    hospital(ehr)
    polled, bulk = _add(engine, "polled"), _add(engine, "bulk")
    sync_and_assess("polled", engine=engine, settings=settings, client=_client(ehr))

    cut = _backfill(engine, settings, ehr, stop_after_batches=9)
    assert cut.sync.status == SyncStatus.failed and "stopped after 9 batches" in (cut.sync.error or "")
    with Session(engine) as session:
        export = session.exec(select(BulkExport)).one()
    assert export.status == BulkExportStatus.running and export.files_done and export.manifest

    resumed = _backfill(engine, settings, ehr)

    assert resumed.sync.status == SyncStatus.ok and resumed.resumed
    assert len(_kick_offs(ehr)) == 1  # the same export, not a new one
    assert _state(engine, bulk) == _state(engine, polled)
    _add(engine, "whole")
    whole = _backfill(engine, settings, ehr, name="whole")
    assert cut.read + resumed.read == whole.read  # no line was read twice


def test_a_group_export_reads_only_the_group(engine: Engine, settings: Settings) -> None:
    ehr = StubEhr()
    hospital(ehr, 4)
    ehr.put(
        {
            "resourceType": "Group",
            "id": "ward3",
            "type": "person",
            "actual": True,
            "member": [{"entity": {"reference": "Patient/p1"}}, {"entity": {"reference": "Patient/p2"}}],
        }
    )
    bulk = _add(engine, "bulk")
    outcome = _backfill(engine, settings, ehr, group_id="ward3")
    assert outcome.sync.status == SyncStatus.ok, outcome.sync.error
    assert _kick_offs(ehr)[0].url.path.endswith("/Group/ward3/$export")
    assert {fid for fid, _ in _state(engine, bulk)["patients"]} == {"p1", "p2"}


def test_export_429s_are_waited_out_and_a_failed_job_is_reported(engine: Engine, settings: Settings) -> None:
    ehr = StubEhr()
    hospital(ehr, 2)
    _add(engine, "bulk")
    waits: list[float] = []
    ehr.kickoff_faults = [httpx.Response(429, headers={"Retry-After": "4"})]
    ehr.status_faults = [
        httpx.Response(429, headers={"Retry-After": "6"}),
        httpx.Response(
            500,
            json={
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "exception", "diagnostics": "job died"}],
            },
        ),
    ]
    client = FhirClient(BASE, transport=ehr.transport(), retry=RetryPolicy(sleep=waits.append))
    failed = backfill("bulk", engine=engine, settings=settings, client=client, sleep=waits.append)

    assert waits[:2] == [4.0, 6.0]
    assert failed.sync.status == SyncStatus.failed and "job died" in (failed.sync.error or "")
    with Session(engine) as session:
        export = session.exec(select(BulkExport)).one()
        source = session.exec(select(Source)).one()
    assert export.status == BulkExportStatus.failed and "job died" in (export.error or "")
    assert source.last_error is not None and "job died" in source.last_error

    again = backfill("bulk", engine=engine, settings=settings, client=client, sleep=waits.append)
    assert again.sync.status == SyncStatus.ok and len(_kick_offs(ehr)) == 3  # a fresh export


def test_an_expired_export_starts_again(engine: Engine, settings: Settings) -> None:
    ehr = StubEhr()
    hospital(ehr, 2)
    _add(engine, "bulk")
    expire_once = [True]

    def expire(request: httpx.Request) -> httpx.Response | None:
        if "/bulk-files/" in request.url.path and expire_once[0]:
            expire_once[0] = False
            return httpx.Response(404)
        return None

    ehr.fail = expire
    outcome = _backfill(engine, settings, ehr)
    assert outcome.sync.status == SyncStatus.ok, outcome.sync.error
    assert len(_kick_offs(ehr)) == 2


def test_missing_bulk_scopes_are_explained(engine: Engine, settings: Settings) -> None:
    ehr = StubEhr()
    _add(engine, "bulk")
    ehr.status_faults = [httpx.Response(403)]
    outcome = _backfill(engine, settings, ehr)
    assert outcome.sync.status == SyncStatus.failed
    assert "system/*.rs" in (outcome.sync.error or "")
    with Session(engine) as session:
        export = session.exec(select(BulkExport)).one()
    assert export.status == BulkExportStatus.running  # fix the scopes, run again: it resumes


# -- against the EHR simulator ------------------------------------------------------------------


def _load_simulator(server: Any, admissions: int) -> None:
    """Admissions (Patient, Encounter, Condition, Observation each); a tenth of the patients with an
    earlier outpatient visit (kept), and as many outpatients who were never admitted (not kept)."""
    from tests.ingest.test_sekmet_sync import admission_bundle

    for start in range(0, admissions, 100):
        server.transaction(admission_bundle(min(100, admissions - start), start=start))
    entries = []
    for i in range(0, admissions, 10):
        for resource in (
            encounter(f"amb{i}", f"ap{i}", status="finished", cls="AMB"),
            patient(f"op{i}"),
            encounter(f"out{i}", f"op{i}", status="finished", cls="AMB"),
            condition(f"oc{i}", f"op{i}"),
        ):
            url = f"{resource['resourceType']}/{resource['id']}"
            entries.append({"resource": resource, "request": {"method": "PUT", "url": url}})
    server.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries})


@pytest.mark.slow
def test_an_export_from_the_simulator_ingests_like_polling(
    sekmet: Any, engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 880 resources, read in batches of 100 lines (every export file spans several batches, as a
    # census's files do at the production size of 1,000) and polled in pages of 50.
    monkeypatch.setattr(backfill_module, "BATCH_LINES", 100)
    settings = settings.model_copy(update={"sync_page_size": 50})
    _load_simulator(sekmet, 200)
    polled, bulk = (_add_at(engine, name, sekmet.base_url) for name in ("polled", "bulk"))
    assert sync_and_assess("polled", engine=engine, settings=settings).status == SyncStatus.ok

    outcome = backfill("bulk", engine=engine, settings=settings)

    assert outcome.sync.status == SyncStatus.ok, outcome.sync.error
    assert outcome.read >= 200 * 4 + 20 * 4
    expected, got = _state(engine, polled), _state(engine, bulk)
    assert (len(got["encounters"]), len(got["patients"]), len(got["clinical"])) == (220, 200, 400)
    assert outcome.skipped == 20 * 3
    assert got == expected
    with Session(engine) as session:
        cursor = session.exec(select(Source.cursors).where(Source.id == bulk)).one()["Encounter"]
    assert cursor == outcome.transaction_time


@pytest.mark.slow
def test_backfill_under_smart_backend_services_needs_system_scopes(
    sekmet_factory: Any, engine: Engine, settings: Settings
) -> None:
    server = sekmet_factory(auth="smart")
    _load_simulator(server, 20)
    auth = {
        "type": "smart",
        "client_id": server.smart_client_id,
        "private_key_file": str(server.smart_private_key_path),
        "kid": server.smart_kid,
    }
    with session_scope(engine) as session:
        add_source(session, name="narrow", hospital="Narrow", base_url=server.base_url, auth=auth)
        add_source(
            session, name="wide", hospital="Wide", base_url=server.base_url, auth=auth | {"scope": "system/*.rs"}
        )

    narrow = backfill("narrow", engine=engine, settings=settings)  # per-type scopes: status URL refused
    assert narrow.sync.status == SyncStatus.failed and "system/*.rs" in (narrow.sync.error or "")

    wide = backfill("wide", engine=engine, settings=settings)
    assert wide.sync.status == SyncStatus.ok, wide.sync.error
    assert wide.sync.fetched == 20 * 4 + 2  # and the earlier visits of patients 0 and 10
    server.stop()


def _add_at(engine: Engine, name: str, base_url: str) -> int:
    with session_scope(engine) as session:
        source = add_source(session, name=name, hospital=name.title(), base_url=base_url)
        assert source.id is not None
        return source.id
