"""Drain the assessment queue (ingest/changes.py) in batches.

Each batch is one transaction: claim up to ``assessment_batch_size`` patients of one source (on
PostgreSQL ``FOR UPDATE SKIP LOCKED``, so several workers share the queue without taking the same
entries), score them, open / follow their cases, delete the entries at the generation read. A
process killed at any instant rolls back the batch in hand and leaves its entries for the next
drain; scoring is idempotent (``score_patients`` skips unchanged inputs, cases are unique per
admission), so the next drain reaches the state an uninterrupted one would have.

A batch that fails is retried patient by patient; a patient that fails alone keeps its entry with
``attempts`` and ``last_error`` and, after ``MAX_ATTEMPTS``, waits for a person (it is counted in
the queue depth hospital IT sees). A broken mapping or rule file stops the drain of that source
and is recorded on it: the entries stay queued until the file is fixed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Table, and_, bindparam, delete, select, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from discharge_bridge import collection
from discharge_bridge.assessment.pool import scoring_pool
from discharge_bridge.cases.jobs import FollowUp, follow_patients
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope, utcnow
from discharge_bridge.ingest.changes import QUEUE
from discharge_bridge.logs import safe_exception_text
from discharge_bridge.risk import MappingError, RuleSetError
from discharge_bridge.sources.models import Source

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
_Q: Table = QUEUE


@dataclass
class AssessmentStats:
    batches: int = 0
    patients: int = 0  # queue entries done
    assessed: int = 0
    flagged: int = 0
    cases_opened: int = 0
    discharged: int = 0
    failed: int = 0  # entries that failed alone this drain (kept, with their error)
    error: str | None = None  # a broken mapping or rule file stopped the drain

    def add(self, follow: FollowUp) -> None:
        self.assessed += follow.scores.assessed
        self.flagged += follow.scores.flagged
        self.cases_opened += follow.cases.opened
        self.discharged += follow.cases.discharged


@dataclass(frozen=True)
class _Entry:
    id: int
    patient: str
    generation: int


def _oldest_source(session: Session, skip: set[int], failed: set[int]) -> int | None:
    query = select(_Q.c.source_id).where(_Q.c.attempts < MAX_ATTEMPTS).order_by(_Q.c.id).limit(1)
    if skip:
        query = query.where(_Q.c.source_id.not_in(sorted(skip)))
    if failed:
        query = query.where(_Q.c.id.not_in(sorted(failed)))
    return session.execute(query).scalar()


def _claim(session: Session, source_id: int, size: int, failed: set[int] | None = None) -> list[_Entry]:
    """Up to ``size`` entries of the source, oldest first; those that failed in this drain wait for the next."""
    query = (
        select(_Q.c.id, _Q.c.patient_fhir_id, _Q.c.generation)
        .where(_Q.c.source_id == source_id, _Q.c.attempts < MAX_ATTEMPTS)
        .order_by(_Q.c.id)
        .limit(size)
    )
    if failed:
        query = query.where(_Q.c.id.not_in(sorted(failed)))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [_Entry(*row) for row in session.execute(query)]


def _done(session: Session, entries: list[_Entry]) -> None:
    """Delete the entries at the generation read; one queued again meanwhile stays for the next drain."""
    stmt = delete(_Q).where(and_(_Q.c.id == bindparam("e_id"), _Q.c.generation == bindparam("e_gen")))
    session.execute(stmt, [{"e_id": e.id, "e_gen": e.generation} for e in entries])


def _assess(session: Session, source_id: int, entries: list[_Entry], settings: Settings) -> FollowUp | None:
    source = session.get(Source, source_id)
    if source is None:  # removed meanwhile: its entries went with it (ON DELETE CASCADE)
        return None
    follow = follow_patients(session, source, settings, [e.patient for e in entries], offload=scoring_pool(settings))
    _done(session, entries)
    return follow


def _record_block(engine: Engine, source_id: int, error: str) -> None:
    with session_scope(engine) as session:
        source = session.get(Source, source_id)
        if source is not None:
            source.last_error, source.last_error_at = error, utcnow()


def _one_by_one(
    engine: Engine, source_id: int, entries: list[_Entry], settings: Settings, stats: AssessmentStats, failed: set[int]
) -> None:
    """After a failed batch: each entry alone, so one bad patient does not hold back the rest."""
    for entry in entries:
        try:
            with session_scope(engine) as session:
                follow = _assess(session, source_id, [entry], settings)
            if follow is not None:
                stats.add(follow)
            stats.patients += 1
        except (MappingError, RuleSetError):
            raise
        except Exception as exc:
            stats.failed += 1
            failed.add(entry.id)
            reason = safe_exception_text(exc)
            log.error("assessment of one queued patient of source %s failed: %s", source_id, reason)
            with session_scope(engine) as session:
                session.execute(
                    update(_Q).where(_Q.c.id == entry.id).values(attempts=_Q.c.attempts + 1, last_error=reason[:2000])
                )


def drain(
    engine: Engine,
    settings: Settings,
    *,
    source_id: int | None = None,
    batch_size: int | None = None,
    max_batches: int | None = None,
) -> AssessmentStats:
    """Assess queued patients until the queue (of ``source_id``, or of every source) is empty.

    Young-generation collections are spaced out as in the ingest pass, and off while a batch is
    assessed (``collection``): a batch decodes tens of thousands of JSON dicts without cycles, and
    at the default threshold the collector ran over them again and again."""
    with collection.fewer_young_collections():
        return _drain(engine, settings, source_id, batch_size, max_batches)


# The tables a batch reads by key and writes to. A first sync fills them within minutes, faster than
# autovacuum's first ANALYZE: planning with the statistics of an empty table, PostgreSQL joined cases
# to assessments with a nested loop over every assessment of the source (seen in EXPLAIN ANALYZE), and
# each batch grew slower than the last, three quarters of the stage's time at 13k patients. SQLite
# never analyses by itself: without statistics it looked a batch's flagged admissions up through the
# worklist's index, a scan of every flagged admission, and a 1M-resource backfill's drain slowed from
# 0.6 to 1.1 s per 1,000 patients.
_PLANNED_TABLES = (
    "patient_snapshot",
    "encounter_snapshot",
    "clinical_snapshot",
    "patient_alias",
    "risk_assessment",
    "coordination_case",
    "case_event",
    "case_task",
)
_STALE = text(
    "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
    " WHERE s.schemaname = current_schema() AND s.relname = ANY(:names)"
    " AND s.n_live_tup >= :floor AND s.n_live_tup > 2 * GREATEST(c.reltuples, 0)"
)
STATISTICS_FLOOR = 1000  # rows: below it any plan is fast
# SQLite's ANALYZE reads every index entry (analysis_limit=0): 0.3 s for the eight tables of a 1M
# backfill, a table at a time as it doubles. A 1,000-row sample (analysis_limit=1000) guessed about
# 1,000 rows for any key prefix, and SQLite then read a batch's 500 cases among the hospital's
# 91,000 open ones through (source, status): 48 ms a batch instead of 4.
SQLITE_ANALYSIS_LIMIT = 0


def refresh_statistics(engine: Engine) -> list[str]:
    """ANALYZE those of the stage's tables that hold more than twice the rows their statistics say
    (so a table growing from empty is analysed a handful of times, at 1k, 2k, 4k... rows); return
    their names. PostgreSQL: ``SKIP_LOCKED``, a table another worker or autovacuum is analysing is
    left to it rather than waited for. SQLite: statistics from every row (``SQLITE_ANALYSIS_LIMIT``)."""
    if engine.dialect.name == "sqlite":
        return _refresh_sqlite_statistics(engine)
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as connection:
        stale = list(connection.execute(_STALE, {"names": list(_PLANNED_TABLES), "floor": STATISTICS_FLOOR}).scalars())
        for name in stale:
            if name in _PLANNED_TABLES:  # one of ours, never input
                connection.exec_driver_sql(f"ANALYZE (SKIP_LOCKED) {name}")
        connection.commit()
    return stale


_NEWEST = [f"(SELECT max(rowid) FROM {name})" for name in _PLANNED_TABLES]  # noqa: S608 - our own table names
_SQLITE_ROWS = "SELECT " + ", ".join(_NEWEST)


def _refresh_sqlite_statistics(engine: Engine) -> list[str]:
    """SQLite keeps no live row count: ``max(rowid)``, one index probe, stands in for it (rows ever
    added, an upper bound), against the largest count ``sqlite_stat1`` holds for the table."""
    with engine.connect() as connection:
        known: dict[str, int] = {}
        if connection.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first():
            for table, stat in connection.exec_driver_sql("SELECT tbl, stat FROM sqlite_stat1"):
                known[table] = max(known.get(table, 0), int(str(stat).split()[0]))
        newest = connection.exec_driver_sql(_SQLITE_ROWS).one()
        stale = [
            name
            for name, rows in zip(_PLANNED_TABLES, newest, strict=True)
            if (rows or 0) >= STATISTICS_FLOOR and (rows or 0) > 2 * known.get(name, 0)
        ]
        if stale:
            connection.exec_driver_sql(f"PRAGMA analysis_limit={SQLITE_ANALYSIS_LIMIT}")
            for name in stale:
                connection.exec_driver_sql(f"ANALYZE {name}")
            connection.commit()
    return stale


def _drain(
    engine: Engine, settings: Settings, source_id: int | None, batch_size: int | None, max_batches: int | None
) -> AssessmentStats:
    size = batch_size or settings.assessment_batch_size
    stats = AssessmentStats()
    blocked: set[int] = set()
    failed: set[int] = set()  # entries that failed alone in this drain: retried by the next one
    while max_batches is None or stats.batches < max_batches:
        entries: list[_Entry] = []
        sid: int | None = None
        try:
            with collection.paused(), session_scope(engine) as session:
                sid = source_id if source_id is not None else _oldest_source(session, blocked, failed)
                if sid is None or sid in blocked:
                    break
                entries = _claim(session, sid, size, failed)
                if not entries:
                    break
                follow = _assess(session, sid, entries, settings)
            stats.batches += 1
            stats.patients += len(entries)
            if follow is not None:
                stats.add(follow)
            refresh_statistics(engine)
        except (MappingError, RuleSetError) as exc:
            assert sid is not None
            stats.error = f"data stored, but risk scoring stopped: {exc}"
            _record_block(engine, sid, stats.error)
            blocked.add(sid)
        except Exception:
            if not entries or sid is None:
                raise
            stats.batches += 1
            try:
                _one_by_one(engine, sid, entries, settings, stats, failed)
            except (MappingError, RuleSetError) as exc:
                stats.error = f"data stored, but risk scoring stopped: {exc}"
                _record_block(engine, sid, stats.error)
                blocked.add(sid)
    return stats
