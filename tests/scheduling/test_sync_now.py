"""Sync now: one request at a time per source, the pass run as a scheduled poll runs it (after any pass
already holding the source), and its outcome kept for the page, never raised."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import session_scope
from discharge_bridge.ingest.locks import source_lock
from discharge_bridge.scheduling import sync_now
from discharge_bridge.scheduling.sync_now import SyncNowState
from discharge_bridge.sources.models import SourceMode

pytestmark = pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)
DEMO = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "demo-hospital"


@pytest.fixture
def files(engine: Engine, tmp_path: Path) -> Iterator[str]:
    folder = tmp_path / "export"
    shutil.copytree(DEMO, folder)
    with session_scope(engine) as session:
        add_source(session, name="files", hospital="Files", base_url=str(folder), mode=SourceMode.file)
    sync_now.forget()
    yield "files"
    sync_now.forget()


def test_one_request_at_a_time_and_its_outcome_kept(files: str, settings: Settings) -> None:
    assert sync_now.status(files) is None
    assert sync_now.request(files, by="irina")
    assert not sync_now.request(files, by="ivan")  # one press is enough
    asked = sync_now.status(files)
    assert asked is not None and asked.state == SyncNowState.queued and asked.requested_by == "irina"
    ended = sync_now.run(files, settings)
    assert ended is not None and ended.state == SyncNowState.ok and ended.finished_at is not None
    assert ended.result is not None and ended.result.fetched > 200 and ended.result.assessed > 0
    assert ended.result.cases_opened > 0  # the assessment ran after the pass, as a scheduled poll's does
    assert sync_now.request(files, by="ivan")  # ended: a new request is taken


def test_a_request_waits_for_the_pass_holding_the_source(files: str, settings: Settings) -> None:
    assert sync_now.request(files, by="irina")
    lock = source_lock(files)
    lock.acquire()  # a scheduled poll is under way
    worker = threading.Thread(target=sync_now.run, args=(files, settings))
    try:
        worker.start()
        time.sleep(0.3)
        waiting = sync_now.status(files)
        assert waiting is not None and waiting.state == SyncNowState.queued and waiting.in_flight
    finally:
        lock.release()
    worker.join(timeout=120)
    done = sync_now.status(files)
    assert not worker.is_alive() and done is not None and done.state == SyncNowState.ok


def test_a_failure_around_the_pass_is_kept_not_raised(engine: Engine, settings: Settings) -> None:
    sync_now.forget()
    assert sync_now.request("gone", by="irina")  # a source removed after the button was pressed
    ended = sync_now.run("gone", settings)
    assert ended is not None and ended.state == SyncNowState.failed and not ended.in_flight
    assert ended.error is not None and "SourceNotFound" in ended.error and ended.result is None
    sync_now.forget()
