"""Scoring admissions from stored snapshots, and keeping one assessment per admission and rule set.

Runs after each sync for the patients whose data changed, and over everything on
``discharge-bridge rescore`` (a rule or mapping change, or the daily refresh of length of stay).
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import orjson
from sqlalchemy import Table, bindparam, func, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlmodel import Session, col, select

from discharge_bridge.config import Settings
from discharge_bridge.db import utcnow
from discharge_bridge.fhir.fields import obj
from discharge_bridge.ingest.aliases import records_of, survivors
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.ingest.store import driver_converters, execute_prepared, padded
from discharge_bridge.risk import (
    Mapping,
    PatientRecord,
    RuleSet,
    assess,
    compute_hospital,
    compute_lace,
    extract_facts,
    is_flaggable,
    loading,
)
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.risk.rules import PRIORITY_ORDER
from discharge_bridge.risk.stays import group_stays, is_deceased, stay_of
from discharge_bridge.sources.models import Source

log = logging.getLogger(__name__)

BATCH = 200  # patients per round trip


@dataclass(frozen=True)
class ScoringContext:
    mapping: Mapping
    rules: RuleSet
    digest: str  # of the mapping and rule files' contents: a change re-scores everything


@dataclass
class ScoreStats:
    assessed: int = 0
    flagged: int = 0
    unchanged: int = 0

    def add(self, other: ScoreStats) -> None:
        self.assessed += other.assessed
        self.flagged += other.flagged
        self.unchanged += other.unchanged


def _files_digest(paths: Iterable[str]) -> str:
    sha = hashlib.sha256()
    for path in sorted(paths):
        sha.update(Path(path).read_bytes())
    return sha.hexdigest()


def scoring_context(source: Source, settings: Settings) -> ScoringContext:
    """The source's mapping and the rule set, reloaded whenever one of their files changes."""
    folder = settings.mappings_dir

    def load() -> tuple[ScoringContext, tuple[str, ...]]:
        mapping = loading.mapping(source.mapping, folder)
        rules = loading.rule_set(folder)
        files = (*mapping.files, rules.file)
        return ScoringContext(mapping, rules, _files_digest(files)), files

    return loading.cached(("scoring", source.mapping, str(folder)), load)


def _inputs_digest(ctx: ScoringContext, record: PatientRecord, day: str, standing: str) -> str:
    """``standing``: whether and why the admission stands for a current stay (its legs, the current leg,
    death): a leg that stops standing for its stay must be re-assessed even if its own data did not change."""
    sha = hashlib.sha256(ctx.digest.encode())
    sha.update(ctx.rules.version.encode())
    sha.update(day.encode())  # LACE's length of stay grows daily for a current stay
    sha.update(standing.encode())
    for res in (
        record.patient,
        record.encounter,
        *record.conditions,
        *record.observations,
        *record.related_persons,
        *record.other_encounters,
        *record.procedures,
    ):
        meta = obj(res.get("meta"))
        key = f"{res.get('resourceType')}/{res.get('id')}/{meta.get('versionId')}/{meta.get('lastUpdated')}|"
        sha.update(key.encode())
    for done in record.screenings:  # a completed or amended bedside screening re-scores the admission
        sha.update(f"{done.get('evidence')}/{done.get('version')}/{done.get('total')}|".encode())
    return sha.hexdigest()


@dataclass(frozen=True, slots=True)
class _Stay:
    fhir_id: str
    raw: dict[str, Any]
    started: datetime | None  # period_start as ingest stored it: the worklist's order (RiskAssessment.admitted_at)


_Loaded = tuple[dict[str, dict[str, Any]], dict[str, list[_Stay]], dict[str, dict[str, list[dict[str, Any]]]]]


def _load(session: Session, source_id: int, patient_ids: Sequence[str]) -> _Loaded:
    """Patients, their encounters and their clinical facts, as raw FHIR, in three queries.

    Plain driver SQL, the raw JSON decoded here: through SQLAlchemy, the expanding ``IN`` and the
    per-row result processing cost a third as much as decoding the JSON itself (bench/scale.py)."""
    patients: dict[str, dict[str, Any]] = {}
    encounters: dict[str, list[_Stay]] = defaultdict(list)
    clinical: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    if not patient_ids:
        return patients, encounters, clinical
    connection = session.connection()
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    ids = padded(patient_ids)
    params = (source_id, *ids)
    sqls = _load_sql(len(ids), mark)
    for fid, raw in connection.exec_driver_sql(sqls[0], params):
        patients[fid] = _decoded(raw)
    for fid, pid, raw, started in connection.exec_driver_sql(sqls[1], params):
        encounters[pid].append(_Stay(fid, _decoded(raw), _instant(started)))
    for pid, rtype, raw in connection.exec_driver_sql(sqls[2], params):
        clinical[pid][rtype].append(_decoded(raw))
    return patients, encounters, clinical


def _instant(value: datetime | str | None) -> datetime | None:
    """A stored UTC instant read through the driver: SQLite's naive UTC text; psycopg's datetime."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _decoded(raw: str | bytes | dict[str, Any]) -> dict[str, Any]:
    """A stored raw resource: JSON text on SQLite; psycopg decodes it already (with orjson, db.make_engine)."""
    return raw if isinstance(raw, dict) else orjson.loads(raw)  # type: ignore[no-any-return]


@lru_cache(maxsize=32)
def _load_sql(size: int, mark: str) -> tuple[str, str, str]:
    """The three queries of ``_load`` for ``size`` patient ids, in the order SQLAlchemy's ORM issued
    them (no ORDER BY, as before: rows come in the index's order, and the risk core sorts what it needs)."""
    marks = ", ".join([mark] * size)
    where = f"source_id = {mark} AND {{column}} IN ({marks})"
    return (
        f"SELECT fhir_id, raw FROM patient_snapshot WHERE {where.format(column='fhir_id')}",  # noqa: S608
        "SELECT fhir_id, patient_fhir_id, raw, period_start FROM encounter_snapshot"  # noqa: S608
        f" WHERE {where.format(column='patient_fhir_id')}",
        "SELECT patient_fhir_id, resource_type, raw FROM clinical_snapshot"  # noqa: S608
        f" WHERE {where.format(column='patient_fhir_id')}",
    )


@dataclass(frozen=True, slots=True)
class _Previous:
    id: int
    rules_version: str
    inputs_digest: str
    first_flagged_at: datetime | None


_TABLE: Table = RiskAssessment.__table__  # type: ignore[attr-defined]


def _previous(session: Session, source_id: int, patient_ids: Sequence[str]) -> dict[tuple[str, str], _Previous]:
    query = sa_select(
        _TABLE.c.encounter_fhir_id,
        _TABLE.c.id,
        _TABLE.c.rules_version,
        _TABLE.c.inputs_digest,
        _TABLE.c.first_flagged_at,
    ).where(_TABLE.c.source_id == source_id, _TABLE.c.patient_fhir_id.in_(patient_ids))
    return {
        (enc_id, version): _Previous(row_id, version, digest, flagged_at)
        for enc_id, row_id, version, digest, flagged_at in session.execute(query)
    }


@dataclass
class Scored:
    """What scoring some patients found, not yet written: the rows ``_write`` takes, and the counts."""

    upserts: list[dict[str, Any]]
    ended: list[dict[str, Any]]
    stats: ScoreStats


Screenings = Callable[[list[str]], dict[str, list[dict[str, Any]]]]


class Offload(Protocol):
    """Hands shares of a batch to other processes (assessment/pool.py): each share's ids (survivors,
    a contiguous run of ``ids``) and its future ``Scored``; ``[]`` keeps the whole batch here."""

    def __call__(
        self, source_id: int, ids: list[str], *, now: datetime, force: bool, digest: str
    ) -> list[tuple[list[str], Future[Scored]]]: ...


def score_patients(
    session: Session,
    source: Source,
    patient_ids: Iterable[str],
    ctx: ScoringContext,
    *,
    now: datetime | None = None,
    force: bool = False,
    screenings: Screenings | None = None,
    offload: Offload | None = None,
) -> ScoreStats:
    """(Re)assess every current admission of these patients; mark ended ones as no longer current.

    A finished, cancelled or outpatient encounter never gets a new flag: it is only assessed if it
    was assessed while current, and then just loses ``current``. Rows are written with Core
    upserts: building ORM objects cost more than the scoring itself. ``screenings`` (from the layer
    above, which owns them) gives the completed bedside screenings per encounter id of a batch.
    ``offload``: the later shares of the patients are scored by other processes meanwhile; their
    rows are written here, after this process's own, in the same order as without them. A share
    whose process fails is scored here.
    """
    assert source.id is not None
    now = now or utcnow()
    # A merged record (Patient.link) is assessed as its survivor, with every record of the person.
    ids = sorted(set(survivors(session, source.id, set(patient_ids)).values()))
    shares = offload(source.id, ids, now=now, force=force, digest=ctx.digest) if offload is not None and ids else []
    handed = {pid for part, _ in shares for pid in part}
    stats = ScoreStats()
    own = [pid for pid in ids if pid not in handed]
    for start in range(0, len(own), BATCH):
        scored = _score_chunk(session, source.id, own[start : start + BATCH], ctx, now, force, screenings)
        _write(session, scored.upserts, scored.ended)
        stats.add(scored.stats)
    for part, future in shares:
        try:
            scored = future.result()
        except Exception as exc:  # a process killed or failing: its share is scored here instead
            log.warning("a scoring process failed (%s): its %d patients are scored here", type(exc).__name__, len(part))
            scored = compute_scores(session, source.id, part, ctx, now=now, force=force, screenings=screenings)
        _write(session, scored.upserts, scored.ended)
        stats.add(scored.stats)
    session.flush()
    return stats


def compute_scores(
    session: Session,
    source_id: int,
    ids: Sequence[str],
    ctx: ScoringContext,
    *,
    now: datetime,
    force: bool = False,
    screenings: Screenings | None = None,
) -> Scored:
    """``score_patients`` for survivor ids without writing: what a scoring process hands back."""
    total = Scored([], [], ScoreStats())
    for start in range(0, len(ids), BATCH):
        scored = _score_chunk(session, source_id, ids[start : start + BATCH], ctx, now, force, screenings)
        total.upserts += scored.upserts
        total.ended += scored.ended
        total.stats.add(scored.stats)
    return total


def _score_chunk(
    session: Session,
    source_id: int,
    batch: Sequence[str],
    ctx: ScoringContext,
    now: datetime,
    force: bool,
    screenings: Screenings | None,
) -> Scored:
    """One round trip: the facts of up to ``BATCH`` survivors, read and scored."""
    day = now.date().isoformat()
    stats = ScoreStats()
    records = records_of(session, source_id, batch)
    every = sorted({rid for group in records.values() for rid in group})
    patients, by_record, clinical_by_record = _load(session, source_id, every)
    encounters = {pid: [e for rid in sorted(records[pid]) for e in by_record.get(rid, [])] for pid in batch}
    clinical: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for pid in batch:
        merged: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for rid in sorted(records[pid]):
            for rtype, rows in clinical_by_record.get(rid, {}).items():
                if rtype == "RelatedPerson" and rid != pid:  # a merged record's relatives are the person's
                    rows = [{**r, "patient": {"reference": f"Patient/{pid}"}} for r in rows]
                merged[rtype] += rows
        clinical[pid] = merged
    existing = _previous(session, source_id, every)
    screened = screenings([e.fhir_id for pid in batch for e in encounters[pid]]) if screenings else {}
    first_flags: dict[str, datetime] = {}
    for (enc_id, _), previous in existing.items():
        flagged_at = previous.first_flagged_at
        if flagged_at and (enc_id not in first_flags or flagged_at < first_flags[enc_id]):
            first_flags[enc_id] = flagged_at
    upserts: list[dict[str, Any]] = []
    ended: list[dict[str, Any]] = []
    for pid in batch:
        patient = patients.get(pid)
        if patient is None:
            continue  # assessed once the Patient arrives; no_contacts cannot be judged without it
        facts_of = clinical.get(pid, {})
        raws = [e.raw for e in encounters.get(pid, [])]
        stays = group_stays(raws, ctx.mapping, now=now)
        alive = not is_deceased(patient)
        for stay in encounters.get(pid, []):
            row = existing.get((stay.fhir_id, ctx.rules.version))
            whole = stay_of(stay.fhir_id, stays)
            # One stay, one assessment: its current leg's, while the stay goes on and the person lives.
            current = (
                alive
                and whole is not None
                and whole.ended_at is None
                and whole.current_id == stay.fhir_id
                and is_flaggable(stay.raw, ctx.mapping)
            )
            if not current and row is None:
                continue
            legs = set(whole.leg_ids) if whole is not None else {stay.fhir_id}
            record = PatientRecord(
                patient=patient,
                encounter=stay.raw,
                conditions=facts_of.get("Condition", []),
                observations=facts_of.get("Observation", []),
                related_persons=facts_of.get("RelatedPerson", []),
                other_encounters=[e.raw for e in encounters[pid] if e.fhir_id not in legs],
                procedures=facts_of.get("Procedure", []),
                screenings=sorted((done for leg in legs for done in screened.get(leg, [])), key=lambda d: d["id"]),
            )
            standing = f"{current}|{whole.current_id if whole else ''}|{','.join(sorted(legs))}"
            digest = _inputs_digest(ctx, record, day, standing)
            if row is not None and row.inputs_digest == digest and not force:
                stats.unchanged += 1
                continue
            stats.assessed += 1
            if row is not None and not current:
                ended.append({"_id": row.id, "_digest": digest, "_now": now})
                continue
            values = _assessment(source_id, pid, stay, record, ctx, digest, now)
            if values["flagged"]:
                stats.flagged += 1
                values["first_flagged_at"] = (row and row.first_flagged_at) or first_flags.get(stay.fhir_id) or now
            upserts.append(values)
    return Scored(upserts, ended, stats)


def _assessment(
    source_id: int,
    patient_id: str,
    stay: _Stay,
    record: PatientRecord,
    ctx: ScoringContext,
    digest: str,
    now: datetime,
) -> dict[str, Any]:
    facts = extract_facts(record, ctx.mapping)
    result = assess(facts, ctx.rules)
    lace = compute_lace(record, now)
    return {
        "source_id": source_id,
        "encounter_fhir_id": stay.fhir_id,
        "patient_fhir_id": patient_id,
        "rules_version": ctx.rules.version,
        "score": result.score,
        "priority": result.priority,
        "priority_rank": PRIORITY_ORDER.get(result.priority or "", 0),
        "flagged": result.flagged,
        "current": True,
        "reasons": [_plain(r) for r in result.reasons],
        "facts": [{"concept": f.concept, "evidence": f.evidence, "text": f.text} for f in facts],
        "lace": _plain(lace),
        "hospital_score": _plain(compute_hospital(record, now, lace)),
        "age": next((f.value for f in facts if f.concept == "age" and isinstance(f.value, int)), None),
        "admitted_at": stay.started,
        "inputs_digest": digest,
        "first_flagged_at": None,
        "assessed_at": now,
    }


def _plain(value: Any) -> Any:
    """``dataclasses.asdict`` for the flat dataclasses of a result (fields of scalars, lists and dicts of
    scalars): the same dict, without asdict's recursive deep copy (a tenth of the scoring time)."""
    names = _FIELDS.get(type(value))
    if names is None:
        names = _FIELDS[type(value)] = tuple(f.name for f in fields(value))
    out = {}
    for name in names:
        item = getattr(value, name)
        if isinstance(item, list):
            item = list(item)
        elif isinstance(item, dict):
            item = dict(item)
        elif is_dataclass(item):
            item = _plain(item)
        out[name] = item
    return out


_FIELDS: dict[type, tuple[str, ...]] = {}


def _write(session: Session, upserts: list[dict[str, Any]], ended: list[dict[str, Any]]) -> None:
    if upserts:
        connection = session.connection()
        execute_prepared(connection, *_upsert_plan(connection.dialect, tuple(upserts[0])), upserts)
    if ended:
        session.execute(
            update(_TABLE)
            .where(_TABLE.c.id == bindparam("_id"))
            .values(current=False, inputs_digest=bindparam("_digest"), assessed_at=bindparam("_now")),
            ended,
        )


@lru_cache(maxsize=8)
def _upsert_plan(dialect: Dialect, columns: tuple[str, ...]) -> tuple[str, tuple[str, ...], tuple[Any, ...]]:
    """The assessments' upsert compiled once, its parameter order, and a converter per parameter doing
    what the column type would (JSON text; naive UTC text for SQLite's datetimes): SQLAlchemy's per-row
    parameter processing cost as much as the statement itself (bench/scale.py)."""
    stmt = (postgresql.insert if dialect.name == "postgresql" else sqlite.insert)(_TABLE)
    stmt = stmt.values({c: bindparam(c) for c in columns})
    key = ["source_id", "encounter_fhir_id", "rules_version"]
    set_ = {c: getattr(stmt.excluded, c) for c in columns if c not in key and c != "first_flagged_at"}
    # Keep the first time an admission was flagged (the morning list's "new since").
    set_["first_flagged_at"] = func.coalesce(_TABLE.c.first_flagged_at, stmt.excluded.first_flagged_at)
    compiled = stmt.on_conflict_do_update(index_elements=key, set_=set_).compile(dialect=dialect)
    order = tuple(compiled.positiontup or columns)
    return str(compiled), order, driver_converters(_TABLE, order, dialect)


def patients_to_rescore(session: Session, source_id: int) -> list[str]:
    """Patients with an encounter that may be current, or an assessment still marked current."""
    open_statuses = ("planned", "arrived", "triaged", "in-progress", "onleave", "unknown")
    from_encounters = select(EncounterSnapshot.patient_fhir_id).where(
        EncounterSnapshot.source_id == source_id, col(EncounterSnapshot.status).in_(open_statuses)
    )
    from_assessments = select(RiskAssessment.patient_fhir_id).where(
        RiskAssessment.source_id == source_id, col(RiskAssessment.current).is_(True)
    )
    return sorted(set(session.exec(from_encounters)) | set(session.exec(from_assessments)))
