"""PostgreSQL estimates the bed board's stay filter from statistics, not a guess.

The board keeps the stays whose ``upper(class_code)`` is an inpatient class. Without statistics on
that expression PostgreSQL guesses a fraction of a percent: at 100,000 stays it expected 844, then
joined the cases by merge on the hospital alone and filtered 50 million pairs (9.7 s). The index
on the expression (migration 0018) gives ANALYZE something to measure.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from discharge_bridge.config import Settings
from discharge_bridge.db import make_engine, session_scope
from discharge_bridge.ingest.models import EncounterSnapshot
from tests.support.factories import make_source
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.postgres
STAYS = 2000


@pytest.fixture
def pg_engine(postgres_server: PostgresServer, tmp_path: Path) -> Iterator[Engine]:
    url = postgres_server.url(postgres_server.create_database(migrated=True))
    engine = make_engine(Settings(data_dir=tmp_path, database_url=url).sqlalchemy_url)
    at = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    with session_scope(engine) as session:
        source = make_source(session).id
    with engine.begin() as conn:
        rows = [
            {
                "source_id": source,
                "fhir_id": f"e{n}",
                "patient_fhir_id": f"p{n}",
                "status": "in-progress",
                "class_code": "IMP" if n % 10 else "AMB",  # 90% inpatient
                "raw": {"resourceType": "Encounter", "id": f"e{n}"},
                "ingested_at": at,
            }
            for n in range(STAYS)
        ]
        conn.execute(EncounterSnapshot.__table__.insert(), rows)  # type: ignore[attr-defined]
        conn.execute(text("ANALYZE encounter_snapshot"))
    yield engine
    engine.dispose()


def test_the_stay_class_filter_is_estimated_from_statistics(pg_engine: Engine) -> None:
    query = "SELECT id FROM encounter_snapshot WHERE upper(class_code) IN ('ACUTE', 'IMP', 'NONAC')"
    with pg_engine.connect() as conn:
        plan = conn.execute(text(f"EXPLAIN (FORMAT JSON) {query}")).scalar_one()
    plan = plan if isinstance(plan, list) else json.loads(plan)
    estimated = plan[0]["Plan"]["Plan Rows"]
    assert 0.8 * 0.9 * STAYS <= estimated <= 1.2 * 0.9 * STAYS, estimated  # without the index: about 30
