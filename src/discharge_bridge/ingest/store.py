"""Idempotent writes of snapshots, dead letters and conformance problems.

Callers own the transaction: these functions flush through the session's connection and never
commit, so a page of rows and the cursor that covers it land together or not at all.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import JSON, Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlmodel import Session, SQLModel

from discharge_bridge.db import UTCDateTime, utcnow
from discharge_bridge.ingest.models import (
    ClinicalSnapshot,
    ConformanceIssue,
    DeadLetter,
    EncounterSnapshot,
    PatientSnapshot,
)
from discharge_bridge.ingest.normalise import Normalised, is_newer

_TABLES: dict[str, Table] = {
    "Patient": PatientSnapshot.__table__,  # type: ignore[attr-defined]
    "Encounter": EncounterSnapshot.__table__,  # type: ignore[attr-defined]
    "Condition": ClinicalSnapshot.__table__,  # type: ignore[attr-defined]
    "Observation": ClinicalSnapshot.__table__,  # type: ignore[attr-defined]
    "RelatedPerson": ClinicalSnapshot.__table__,  # type: ignore[attr-defined]
}
_CHUNK = 500  # rows per statement: below SQLite's variable limit, large enough to amortise round trips


@dataclass
class UpsertStats:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    changed_keys: set[tuple[str, str]] = field(default_factory=set)  # (resource_type, fhir_id)

    def add(self, other: UpsertStats) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.changed_keys |= other.changed_keys


def insert_for(session: Session, table: Table) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {dialect}")


def _dedupe(rows: Iterable[Normalised]) -> list[Normalised]:
    """Keep the newest copy of each resource within one batch (a page can repeat an include)."""
    best: dict[tuple[str, str], Normalised] = {}
    for row in rows:
        key = (row.resource_type, row.fhir_id)
        seen = best.get(key)
        if seen is None or is_newer((row.version_id, row.last_updated), (seen.version_id, seen.last_updated)):
            best[key] = row
    return list(best.values())


def upsert_snapshots(session: Session, source_id: int, rows: Iterable[Normalised]) -> UpsertStats:
    """Insert new resources, replace older versions, ignore versions already stored."""
    stats = UpsertStats()
    by_table: dict[str, list[Normalised]] = defaultdict(list)
    for row in _dedupe(rows):
        by_table[_TABLES[row.resource_type].name].append(row)
    for table_name, table_rows in by_table.items():
        table = _TABLES[table_rows[0].resource_type]
        for start in range(0, len(table_rows), _CHUNK):
            stats.add(_upsert_chunk(session, source_id, table, table_rows[start : start + _CHUNK]))
        del table_name
    return stats


def _upsert_chunk(session: Session, source_id: int, table: Table, rows: Sequence[Normalised]) -> UpsertStats:
    clinical = "resource_type" in table.c
    key_cols = [table.c.resource_type, table.c.fhir_id] if clinical else [table.c.fhir_id]
    keys = [(r.resource_type, r.fhir_id) if clinical else (r.fhir_id,) for r in rows]
    stored: dict[tuple[str, ...], tuple[str | None, Any]] = {}
    # One `fhir_id IN (...)` per resource type: SQLite cannot use the unique index for a
    # row-value IN, and scanning the source's rows per chunk made ingest slower as data grew.
    by_type: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        by_type[row.resource_type].append(row.fhir_id)
    for resource_type, ids in by_type.items():
        query = select(table.c.fhir_id, table.c.version_id, table.c.last_updated).where(
            table.c.source_id == source_id, table.c.fhir_id.in_(ids)
        )
        if clinical:
            query = query.where(table.c.resource_type == resource_type)
        for fhir_id, version_id, last_updated in session.execute(query):
            stored[(resource_type, fhir_id) if clinical else (fhir_id,)] = (version_id, last_updated)
    stats = UpsertStats()
    now = utcnow()
    values: list[dict[str, Any]] = []
    for row, key in zip(rows, keys, strict=True):
        previous = stored.get(key)
        if previous is not None and not is_newer((row.version_id, row.last_updated), previous):
            stats.unchanged += 1
            continue
        if previous is None:
            stats.created += 1
        else:
            stats.updated += 1
        stats.changed_keys.add((row.resource_type, row.fhir_id))
        values.append(
            {
                "source_id": source_id,
                "fhir_id": row.fhir_id,
                "version_id": row.version_id,
                "last_updated": row.last_updated,
                "raw": row.raw,
                "ingested_at": now,
                **row.columns,
            }
        )
    if values:
        conflict = ("source_id", *(c.name for c in key_cols))
        execute_upsert(session, table, conflict, values)
    return stats


def _utc_text(value: datetime | None) -> str | None:
    """The text form SQLAlchemy's SQLite DATETIME stores and reads back (naive UTC)."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


@lru_cache(maxsize=64)
def _upsert_plan(
    dialect: Dialect, table_name: str, columns: tuple[str, ...], conflict: tuple[str, ...]
) -> tuple[str, tuple[str, ...], tuple[Callable[[Any], Any] | None, ...]]:
    """SQL, parameter order and per-column converters for one upsert shape, built once."""
    table = SQLModel.metadata.tables[table_name]
    stmt = (postgresql.insert if dialect.name == "postgresql" else sqlite.insert)(table)
    stmt = stmt.values({c: bindparam(c) for c in columns})
    stmt = stmt.on_conflict_do_update(
        index_elements=list(conflict), set_={c: stmt.excluded[c] for c in columns if c not in conflict}
    )
    compiled = stmt.compile(dialect=dialect)
    order = tuple(compiled.positiontup or columns)
    converters: list[Callable[[Any], Any] | None] = []
    for name in order:
        column_type = table.c[name].type
        if isinstance(column_type, JSON):
            converters.append(_json_text)
        elif isinstance(column_type, UTCDateTime) and dialect.name == "sqlite":
            converters.append(_utc_text)
        else:
            converters.append(None)
    return str(compiled), order, tuple(converters)


def execute_upsert(session: Session, table: Table, conflict: tuple[str, ...], values: list[dict[str, Any]]) -> None:
    """An INSERT ... ON CONFLICT DO UPDATE of many rows straight through the driver.

    Ingest writes tens of thousands of rows a minute; SQLAlchemy's per-row parameter processing
    was a third of a pass's CPU time (bench/ingest.py). The statement is compiled once per shape;
    values are converted here the way the column types would (JSON text, UTC datetimes).
    """
    connection = session.connection()
    sql, order, converters = _upsert_plan(connection.dialect, table.name, tuple(values[0]), conflict)
    plan = list(zip(order, converters, strict=True))
    rows = [tuple(conv(row[c]) if conv else row[c] for c, conv in plan) for row in values]
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(sql, rows)
    else:
        connection.exec_driver_sql(sql, [dict(zip(order, row, strict=True)) for row in rows])


def fingerprint(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8", "replace")).hexdigest()


def payload_text(payload: Any) -> str:
    if isinstance(payload, str):
        return payload
    if isinstance(payload, bytes):
        return payload.decode("utf-8", "replace")
    return orjson.dumps(payload).decode()


def record_dead_letter(
    session: Session,
    source_id: int,
    payload: Any,
    error: str,
    *,
    resource_type: str | None = None,
    fhir_id: str | None = None,
) -> None:
    """Keep an unusable resource verbatim; the same payload seen again only bumps its count."""
    text = payload_text(payload)
    if isinstance(payload, dict):
        declared = payload.get("resourceType")
        resource_type = resource_type or (declared if isinstance(declared, str) else None)
        rid = payload.get("id")
        fhir_id = fhir_id or (rid[:64] if isinstance(rid, str) and rid else None)
    table: Table = DeadLetter.__table__  # type: ignore[attr-defined]
    now = utcnow()
    stmt = insert_for(session, table).values(
        source_id=source_id,
        resource_type=(resource_type or None) and resource_type[:64],
        fhir_id=fhir_id,
        fingerprint=fingerprint(text),
        payload=text,
        error=error,
        count=1,
        first_seen=now,
        last_seen=now,
        resolved_at=None,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["source_id", "fingerprint"],
        set_={"count": table.c.count + 1, "last_seen": now, "error": error, "resolved_at": None},
    )
    session.execute(stmt)


def record_conformance(session: Session, source_id: int, problems: Iterable[tuple[str, str, str, str | None]]) -> None:
    """Count (resource_type, path, problem, example id) departures from the R4 models."""
    table: Table = ConformanceIssue.__table__  # type: ignore[attr-defined]
    now = utcnow()
    counted: dict[tuple[str, str, str], tuple[int, str | None]] = {}
    for resource_type, path, problem, example in problems:
        key = (resource_type, path[:300], problem[:300])
        count, first_example = counted.get(key, (0, example))
        counted[key] = (count + 1, first_example)
    for (resource_type, path, problem), (count, example) in counted.items():
        stmt = insert_for(session, table).values(
            source_id=source_id,
            resource_type=resource_type,
            path=path,
            problem=problem,
            count=count,
            example_id=example,
            first_seen=now,
            last_seen=now,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["source_id", "resource_type", "path", "problem"],
            set_={"count": table.c.count + count, "last_seen": now, "example_id": example},
        )
        session.execute(stmt)
