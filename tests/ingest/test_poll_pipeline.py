"""A pass page by page: each page is parsed, then written with its cursor, before the next is read."""

from __future__ import annotations

import gc
import weakref
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
from discharge_bridge.ingest import writer
from discharge_bridge.ingest.models import ClinicalSnapshot, EncounterSnapshot, PatientSnapshot
from discharge_bridge.sources.models import Source, SyncStatus
from tests.support.fakefhir import BASE, FakeFhir, condition, encounter, patient


@pytest.fixture
def ehr() -> FakeFhir:
    return FakeFhir(page_size_cap=3)


def _sync(engine: Engine, settings: Settings, ehr: FakeFhir, **kwargs: Any) -> Any:
    client = FhirClient(BASE, transport=ehr.transport(), retry=RetryPolicy(sleep=lambda s: None))
    return sync_and_assess("city", engine=engine, settings=settings, client=client, **kwargs)


def _source(engine: Engine) -> None:
    with session_scope(engine) as session:
        add_source(session, name="city", hospital="City Hospital", base_url=BASE, timezone="Europe/Moscow")


def _count(engine: Engine, model: Any) -> int:
    with Session(engine) as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


def _admit(ehr: FakeFhir, n: int) -> None:
    for i in range(n):
        ehr.put(patient(f"p{i}"))
        ehr.put(condition(f"c{i}", f"p{i}"))
        ehr.put(encounter(f"e{i}", f"p{i}"))


def test_a_patient_on_two_pages_has_its_facts_fetched_once(engine: Engine, settings: Settings, ehr: FakeFhir) -> None:
    """A patient already written by an earlier page of the same pass is known, not new again."""
    _source(engine)
    _admit(ehr, 7)
    ehr.put(encounter("e0-transfer", "p0"))  # p0's second current stay, three pages after the first

    result = _sync(engine, settings, ehr)

    assert result.status == SyncStatus.ok, result.error
    asked = [r for r in ehr.requests if r.url.path.endswith("/Condition") and "p0" in r.url.params.get("patient", "")]
    assert len(asked) == 1
    assert (_count(engine, EncounterSnapshot), _count(engine, ClinicalSnapshot)) == (8, 7)


def test_a_failure_mid_pass_keeps_the_pages_written_before_it(
    engine: Engine, settings: Settings, ehr: FakeFhir
) -> None:
    _source(engine)
    _admit(ehr, 10)
    condition_searches: list[httpx.Request] = []

    def third_page_facts_fail(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/Condition"):
            condition_searches.append(request)
            if len({r.url.params["patient"] for r in condition_searches}) >= 3:
                return httpx.Response(503)
        return None

    ehr.fail = third_page_facts_fail
    failed = _sync(engine, settings, ehr)

    assert failed.status == SyncStatus.failed and "503" in (failed.error or "")
    # pages 1 and 2 (e0-e2, then e2-e4: each page after the first is re-issued from the last stamp)
    assert (failed.pages, _count(engine, PatientSnapshot), _count(engine, ClinicalSnapshot)) == (2, 5, 5)
    with Session(engine) as session:
        cursor = session.exec(select(Source)).one().cursors["Encounter"]
    assert cursor == ehr.store[("Encounter", "e4")]["meta"]["lastUpdated"].replace("Z", ".000Z")

    ehr.fail = None
    resumed = _sync(engine, settings, ehr)
    assert resumed.status == SyncStatus.ok, resumed.error
    assert (_count(engine, PatientSnapshot), _count(engine, EncounterSnapshot), _count(engine, ClinicalSnapshot)) == (
        10,
        10,
        10,
    )


def test_dead_responses_do_not_pile_up_between_collections(
    engine: Engine, settings: Settings, ehr: FakeFhir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An httpx Response is a reference cycle holding its body; the pass collects them as it goes."""
    monkeypatch.setattr(writer, "GC_EVERY_BYTES", 1)  # collect after every page
    _source(engine)
    _admit(ehr, 30)
    gc.collect()
    # Every Response made from here on, until it is freed (a dead cycle stays in the set until a
    # collection frees it): as counting them in gc.get_objects(), without walking the whole heap of
    # the test process at every page.
    responses: weakref.WeakSet[httpx.Response] = weakref.WeakSet()
    made = httpx.Response.__init__

    def tracked(self: httpx.Response, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        responses.add(self)

    monkeypatch.setattr(httpx.Response, "__init__", tracked)
    alive: list[int] = []

    def count_responses(stage: str, fetched: int) -> None:
        alive.append(len(responses))

    result = _sync(engine, settings, ehr, progress=count_responses)

    assert result.status == SyncStatus.ok, result.error
    assert len(ehr.requests) > 40
    # Without the collections every response of the pass is still there at the end (about 90
    # here). With them: those of the last page or two, plus the odd one a collection found alive
    # and moved to the old generation.
    assert max(alive) <= 24, alive
