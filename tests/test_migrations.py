"""The Alembic migrations build exactly the tables the models describe (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import discharge_bridge.models  # noqa: F401  (registers every table)
from discharge_bridge.config import Settings
from discharge_bridge.db import get_engine, migrating, upgrade


def test_the_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_identity_of_patients_stored_before_0009_is_filled_from_their_raw_resource(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    upgrade(settings, "0008")
    raw = {
        "resourceType": "Patient",
        "id": "p1",
        "name": [{"family": "Orlova", "given": ["Vera"]}],
        "identifier": [{"system": "http://h.example/mrn", "value": "MRN-5"}],
    }
    engine = get_engine(settings)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO source (name, hospital, base_url, auth, mode, poll_interval_seconds, timezone, mapping,"
                " inpatient_classes, enabled, cursors, created_at)"
                " VALUES ('city', 'City', 'http://x.example', '{}', 'poll', 300, 'UTC', 'default', '[]', true, '{}',"
                " '2026-11-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO patient_snapshot (source_id, fhir_id, active, deceased, raw, ingested_at)"
                " VALUES (1, 'p1', true, false, :raw, '2026-11-01 00:00:00')"
            ),
            {"raw": json.dumps(raw)},
        )
    upgrade(settings)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT name, identifiers, search_text FROM patient_snapshot")).one()
    assert (row[0], json.loads(row[1]), row[2]) == (
        "Orlova Vera",
        [{"system": "http://h.example/mrn", "value": "MRN-5", "type": ""}],
        "orlova vera mrn-5",
    )


def test_a_migration_that_copies_a_parent_table_on_sqlite_keeps_the_rows_below_it(tmp_path: Path) -> None:
    """SQLite alters ``source`` by copying it and dropping the original: with foreign keys on, the
    drop would delete every snapshot of the hospital. Leaving 0017 drops three of its columns so."""
    settings = Settings(data_dir=tmp_path / "data")
    upgrade(settings)
    engine = get_engine(settings)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO source (name, hospital, base_url, auth, mode, poll_interval_seconds, timezone, mapping,"
                " inpatient_classes, enabled, cursors, assignment, writeback, cds_hooks, smart_launch, created_at)"
                " VALUES ('city', 'City', 'http://x.example', '{}', 'poll', 300, 'UTC', 'default', '[]', true, '{}',"
                " '{}', '{}', '{}', '{}', '2026-11-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO patient_snapshot (source_id, fhir_id, active, deceased, raw, identifiers, ingested_at)"
                " VALUES (1, 'p1', true, false, '{}', '[]', '2026-11-01 00:00:00')"
            )
        )
    with migrating(settings) as cfg:
        command.downgrade(cfg, "0016")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM patient_snapshot")).scalar_one() == 1
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1  # on again for the app
    upgrade(settings)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT writeback FROM source")).scalar_one() == "{}"
