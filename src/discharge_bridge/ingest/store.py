"""Idempotent writes of snapshots, dead letters and conformance problems.

Callers own the transaction: these functions flush through the session's connection and never
commit, so a page of rows and the cursor that covers it land together or not at all.
"""

from __future__ import annotations

import hashlib
import operator
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import JSON, Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect
from sqlmodel import Session, SQLModel

from discharge_bridge.db import UTCDateTime, insert_for, utcnow
from discharge_bridge.ingest.aliases import record_links
from discharge_bridge.ingest.changes import enqueue_patients
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
    # Grouped by table and by the set of columns the rows fill, so each group is one statement shape.
    groups: dict[tuple[str, tuple[str, ...]], list[Normalised]] = defaultdict(list)
    for row in _dedupe(rows):
        groups[(_TABLES[row.resource_type].name, tuple(row.columns))].append(row)
    patients: set[str] = set()
    for (table_name, _shape), table_rows in groups.items():
        table = SQLModel.metadata.tables[table_name]
        for start in range(0, len(table_rows), _CHUNK):
            chunk = table_rows[start : start + _CHUNK]
            changed = _upsert_chunk(session, source_id, table, chunk)
            stats.add(changed)
            patients |= patients_of(chunk, changed.changed_keys)
            if table_name == "patient_snapshot":  # Patient.link: records of one person re-assess together
                patients |= record_links(
                    session, source_id, (r for r in chunk if (r.resource_type, r.fhir_id) in changed.changed_keys)
                )
    # What changed, in the same transaction as the rows (and the caller's cursor): the outbox.
    enqueue_patients(session, source_id, patients)
    return stats


def patients_of(rows: Iterable[Normalised], changed: set[tuple[str, str]]) -> set[str]:
    """The patients whose data these changed rows are (a Patient itself, or the subject of the rest)."""
    found = set()
    for row in rows:
        if (row.resource_type, row.fhir_id) not in changed:
            continue
        if row.resource_type == "Patient":
            found.add(row.fhir_id)
        elif (pid := row.columns.get("patient_fhir_id")) is not None:
            found.add(pid)
    return found


def padded(ids: Sequence[str]) -> list[str]:
    """``ids`` with the last one repeated up to a power of two (at least 16), for ``IN (...)``.

    Every distinct list length is a distinct SQL text, so the driver prepared (and kept, up to its
    cache of 128) a new statement of hundreds of parameters for almost every page: memory that
    grew with the pass, and a prepare per query. Padded, a pass uses a handful of statements.
    """
    if not ids:
        return []
    size = max(16, 1 << (len(ids) - 1).bit_length())
    return [*ids, *[ids[-1]] * (size - len(ids))]


def _upsert_chunk(session: Session, source_id: int, table: Table, rows: Sequence[Normalised]) -> UpsertStats:
    clinical = "resource_type" in table.c
    stored: dict[tuple[str, str], tuple[str | None, datetime | None]] = {}
    by_type: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        by_type[row.resource_type].append(row.fhir_id)
    for resource_type, ids in by_type.items():
        for fhir_id, version in stored_versions(session, source_id, resource_type, ids).items():
            stored[(resource_type, fhir_id)] = version
    stats = UpsertStats()
    fresh: list[Normalised] = []
    for row in rows:
        previous = stored.get((row.resource_type, row.fhir_id))
        if previous is not None and not is_newer((row.version_id, row.last_updated), previous):
            stats.unchanged += 1
            continue
        if previous is None:
            stats.created += 1
        else:
            stats.updated += 1
        stats.changed_keys.add((row.resource_type, row.fhir_id))
        fresh.append(row)
    if fresh:
        conflict = ("source_id", "resource_type", "fhir_id") if clinical else ("source_id", "fhir_id")
        _write_snapshots(session, source_id, table, conflict, fresh)
    return stats


def stored_versions(
    session: Session, source_id: int, resource_type: str, ids: Sequence[str]
) -> dict[str, tuple[str | None, datetime | None]]:
    """fhir_id -> (versionId, lastUpdated) of the snapshots already stored among ``ids``.

    Plain driver SQL: the same select built through SQLAlchemy (expanding ``IN``, result
    processing) took a tenth of a pass's time holding the GIL, for a first pass that finds nothing.
    One ``fhir_id IN (...)`` per resource type: SQLite cannot use the unique index for a row-value
    IN, and scanning the source's rows per chunk made ingest slower as data grew.
    """
    table = _TABLES[resource_type]
    clinical = "resource_type" in table.c
    connection = session.connection()
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    found: dict[str, tuple[str | None, datetime | None]] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = padded(ids[start : start + _CHUNK])
        sql = _lookup_sql(table.name, clinical, len(chunk), mark)
        params = (source_id, resource_type, *chunk) if clinical else (source_id, *chunk)
        for fhir_id, version_id, last_updated in connection.exec_driver_sql(sql, params):
            found[fhir_id] = (version_id, _stored_instant(last_updated))
    return found


@lru_cache(maxsize=64)
def _lookup_sql(table_name: str, clinical: bool, size: int, mark: str) -> str:
    where = f"source_id = {mark}" + (f" AND resource_type = {mark}" if clinical else "")
    marks = ", ".join([mark] * size)
    # table_name is one of ours (_TABLES), never input
    return f"SELECT fhir_id, version_id, last_updated FROM {table_name} WHERE {where} AND fhir_id IN ({marks})"  # noqa: S608


def _stored_instant(value: datetime | str | None) -> datetime | None:
    """A stored UTC datetime as the driver returns it (text on SQLite) -> aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_SNAPSHOT_COLUMNS = ("source_id", "fhir_id", "version_id", "last_updated", "raw", "ingested_at")


def _write_snapshots(
    session: Session, source_id: int, table: Table, conflict: tuple[str, ...], rows: Sequence[Normalised]
) -> None:
    """``execute_upsert`` for snapshot rows of one shape, building the driver's parameters directly.

    In the generic path the dict per row, the per-cell converter loop and the JSON encoding were a
    sixth of a pass's CPU time (bench/ingest.py). Here a row's cells come from one itemgetter,
    only the datetime columns are converted, another itemgetter puts them in the statement's
    order, and a row normalised with ``encode=True`` brings its JSON text along.
    """
    connection = session.connection()
    extra = tuple(rows[0].columns)
    columns = _SNAPSHOT_COLUMNS + extra
    sql, order, converters = _upsert_plan(connection.dialect, table.name, columns, conflict)
    by_name = dict(zip(order, converters, strict=True))
    stamp = by_name["last_updated"]  # text on SQLite, the datetime itself elsewhere
    now = utcnow()
    now_value = stamp(now) if stamp else now
    pick = operator.itemgetter(*extra)
    convert = [(i, conv) for i, name in enumerate(extra) if (conv := by_name[name]) is not None]
    arrange = operator.itemgetter(*(columns.index(name) for name in order))
    params: list[tuple[Any, ...]] = []
    for row in rows:
        picked = pick(row.columns)
        cells = [picked] if len(extra) == 1 else list(picked)
        for i, conv in convert:
            cells[i] = conv(cells[i])
        updated = stamp(row.last_updated) if stamp else row.last_updated
        raw = row.raw_json if row.raw_json is not None else json_text(row.raw)
        params.append(arrange([source_id, row.fhir_id, row.version_id, updated, raw, now_value, *cells]))
    send_rows(connection, sql, order, params)


def utc_text(value: datetime | None) -> str | None:
    """The text form SQLAlchemy's SQLite DATETIME stores and reads back (naive UTC)."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]  # without the "+00:00" (cheaper than replace())


def json_text(value: Any) -> str | None:
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
    return str(compiled), order, driver_converters(table, order, dialect)


def driver_converters(
    table: Table, order: tuple[str, ...], dialect: Dialect
) -> tuple[Callable[[Any], Any] | None, ...]:
    """Per parameter, what its column type would do to a value before the driver sees it (JSON text;
    naive UTC text for SQLite's datetimes), or None: for statements sent through the driver."""
    converters: list[Callable[[Any], Any] | None] = []
    for name in order:
        column_type = table.c[name].type
        if isinstance(column_type, JSON):
            converters.append(json_text)
        elif isinstance(column_type, UTCDateTime) and dialect.name == "sqlite":
            converters.append(utc_text)
        else:
            converters.append(None)
    return tuple(converters)


def execute_upsert(session: Session, table: Table, conflict: tuple[str, ...], values: list[dict[str, Any]]) -> None:
    """An INSERT ... ON CONFLICT DO UPDATE of many rows straight through the driver.

    Ingest writes tens of thousands of rows a minute; SQLAlchemy's per-row parameter processing
    was a third of a pass's CPU time (bench/ingest.py). The statement is compiled once per shape;
    values are converted here the way the column types would (JSON text, UTC datetimes).
    """
    connection = session.connection()
    sql, order, converters = _upsert_plan(connection.dialect, table.name, tuple(values[0]), conflict)
    execute_prepared(connection, sql, order, converters, values)


def execute_prepared(
    connection: Connection,
    sql: str,
    order: tuple[str, ...],
    converters: tuple[Callable[[Any], Any] | None, ...],
    values: list[dict[str, Any]],
) -> None:
    """Send rows to a statement compiled once, each value converted as its column type would
    (``driver_converters``), in the driver's parameter style: positional for SQLite, named else."""
    plan = list(zip(order, converters, strict=True))
    send_rows(connection, sql, order, [tuple(conv(row[c]) if conv else row[c] for c, conv in plan) for row in values])


def send_rows(connection: Connection, sql: str, order: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Rows already in the statement's parameter order, in the driver's style: positional for
    SQLite, named for psycopg."""
    if connection.dialect.paramstyle == "qmark":
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
    _upsert_dead_letters(session, [_dead_letter_values(source_id, payload, error, resource_type, fhir_id)])


def record_dead_letters(session: Session, source_id: int, letters: Iterable[tuple[Any, str]]) -> None:
    """``record_dead_letter`` for many (payload, error) pairs in one statement."""
    _upsert_dead_letters(session, [_dead_letter_values(source_id, payload, error) for payload, error in letters])


def _dead_letter_values(
    source_id: int, payload: Any, error: str, resource_type: str | None = None, fhir_id: str | None = None
) -> dict[str, Any]:
    text = payload_text(payload)
    if isinstance(payload, dict):
        declared = payload.get("resourceType")
        resource_type = resource_type or (declared if isinstance(declared, str) else None)
        rid = payload.get("id")
        fhir_id = fhir_id or (rid[:64] if isinstance(rid, str) and rid else None)
    now = utcnow()
    return {
        "source_id": source_id,
        "resource_type": (resource_type or None) and resource_type[:64],
        "fhir_id": fhir_id,
        "fingerprint": fingerprint(text),
        "payload": text,
        "error": error,
        "count": 1,
        "first_seen": now,
        "last_seen": now,
        "resolved_at": None,
    }


def _upsert_dead_letters(session: Session, letters: list[dict[str, Any]]) -> None:
    # The same payload twice in one statement would hit its own row twice (PostgreSQL refuses
    # that): fold repeats into one row carrying their count, as if executed one by one.
    folded: dict[tuple[int, str], dict[str, Any]] = {}
    for letter in letters:
        key = (letter["source_id"], letter["fingerprint"])
        if key in folded:
            letter = {**letter, "count": folded[key]["count"] + letter["count"]}
        folded[key] = letter
    if not folded:
        return
    table: Table = DeadLetter.__table__  # type: ignore[attr-defined]
    stmt = insert_for(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["source_id", "fingerprint"],
        set_={
            "count": table.c.count + stmt.excluded.count,
            "last_seen": stmt.excluded.last_seen,
            "error": stmt.excluded.error,
            "resolved_at": None,
        },
    )
    session.execute(stmt, list(folded.values()))


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
