"""The Alembic migrations build exactly the tables the models describe (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Index, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

import discharge_bridge.models  # noqa: F401  (registers every table)
from discharge_bridge.config import Settings
from discharge_bridge.db import get_engine, migrating, upgrade


def test_the_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        differences = compare_metadata(context, SQLModel.metadata)
    assert _without_directions(differences) == []


def _without_directions(differences: list[Any]) -> list[Any]:
    """Differences but an index that orders a column descending (``text("score DESC")``): SQLite
    reflects such an index's columns without their direction, so Alembic sees a removed index and
    an added one of the same name. They are the same index when their columns are."""

    def columns(index: Index) -> list[str]:
        return [str(getattr(e, "name", None) or e).removesuffix(" DESC") for e in index.expressions]

    changed = {(kind, d.name): d for kind, d in ((d[0], d[1]) for d in differences if isinstance(d, tuple))}
    same = {
        name
        for (kind, name), index in changed.items()
        if kind == "remove_index"
        and ("add_index", name) in changed
        and columns(index) == columns(changed[("add_index", name)])
    }
    return [
        d
        for d in differences
        if not (isinstance(d, tuple) and d[0] in {"add_index", "remove_index"} and d[1].name in same)
    ]


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
        _add_source(conn)
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


def test_assessments_stored_before_0019_get_their_admission_start(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    upgrade(settings, "0018")
    engine = get_engine(settings)
    with engine.begin() as conn:
        _add_source(conn)
        for eid, start in (("adm1", "'2026-11-01 06:30:00.000000'"), ("adm2", "NULL")):
            conn.execute(
                text(
                    "INSERT INTO encounter_snapshot (source_id, fhir_id, patient_fhir_id, status, period_start, raw,"
                    f" ingested_at) VALUES (1, '{eid}', 'p1', 'in-progress', {start}, '{{}}', '2026-11-01 00:00:00')"
                )
            )
        for eid in ("adm1", "adm2", "gone"):
            conn.execute(
                text(
                    "INSERT INTO risk_assessment (source_id, encounter_fhir_id, patient_fhir_id, rules_version, score,"
                    " priority_rank, flagged, current, reasons, facts, inputs_digest, assessed_at)"
                    f" VALUES (1, '{eid}', 'p1', 'r1', 3, 3, true, true, '[]', '[]', 'x', '2026-11-02 00:00:00')"
                )
            )
    upgrade(settings)
    with engine.connect() as conn:
        found = dict(conn.execute(text("SELECT encounter_fhir_id, admitted_at FROM risk_assessment")).all())
    assert found == {"adm1": "2026-11-01 06:30:00.000000", "adm2": None, "gone": None}


def _add_source(conn: Connection) -> None:
    """A hospital as the schema since 0017 stores it, with id 1."""
    conn.execute(
        text(
            "INSERT INTO source (name, hospital, base_url, auth, mode, poll_interval_seconds, timezone, mapping,"
            " inpatient_classes, enabled, cursors, assignment, writeback, cds_hooks, smart_launch, created_at)"
            " VALUES ('city', 'City', 'http://x.example', '{}', 'poll', 300, 'UTC', 'default', '[]', true, '{}',"
            " '{}', '{}', '{}', '{}', '2026-11-01 00:00:00')"
        )
    )
