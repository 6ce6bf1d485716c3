"""A `sync --once` process killed (SIGKILL) while it assesses what it stored loses nothing: the next
pass reaches exactly the risk assessments, cases and tasks of a run never interrupted.

Before the assessment queue, scoring ran after the pass on the set of changed patients the process
kept in memory: a kill there lost the cases for good (the rows were stored, so the next pass saw
nothing new). Real processes, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.config import Settings
from discharge_bridge.db import make_engine
from discharge_bridge.sources.models import SyncRun
from tests.assessment.crash import add_file_source, count_assessments, outcome, run_sync, start_sync, write_hospital
from tests.support.db import migrated_sqlite
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.slow

RESOURCES = 1500  # about 200 admissions to assess: 40 batches of 5, one transaction each


def _settings(request: pytest.FixtureRequest, folder: Path) -> Settings:
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return Settings(data_dir=folder, database_url=server.url(server.create_database(migrated=True)))
    return migrated_sqlite(folder)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Settings, Settings]]:
    """The database of the run that is killed, and one for the run that is not."""
    yield _settings(request, tmp_path / "killed"), _settings(request, tmp_path / "clean")


def _ingest_finished(engine: Engine) -> bool:
    with Session(engine) as session:
        return any(run.finished_at is not None for run in session.exec(select(SyncRun)))


def test_a_process_killed_while_assessing_loses_no_case(
    two_databases: tuple[Settings, Settings], tmp_path: Path
) -> None:
    killed, clean = two_databases
    folder = tmp_path / "ehr"
    write_hospital(folder, RESOURCES)
    engines = [make_engine(s.sqlalchemy_url) for s in (killed, clean)]
    for engine in engines:
        add_file_source(engine, folder)
    engine, clean_engine = engines

    run_sync(clean)
    expected = outcome(clean_engine)
    assert expected["cases"] and expected["tasks"] and not expected["duplicated_cases"] and expected["queued"] == 0

    proc = start_sync(killed, DISCHARGE_BRIDGE_ASSESSMENT_BATCH_SIZE="5")
    deadline = time.monotonic() + 300
    # The pass is stored and a first batch is assessed: what runs now is the assessment.
    while not (_ingest_finished(engine) and count_assessments(engine) > 0):
        assert proc.poll() is None, "the sync ended before it could be killed"
        assert time.monotonic() < deadline, "the pass did not finish in time"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assessed = count_assessments(engine)
    assert assessed < len(expected["risks"]), "the kill must land while the assessment runs"

    run_sync(killed)  # the next pass: nothing new to fetch, but what was stored is assessed
    assert outcome(engine) == expected
    for e in engines:
        e.dispose()
