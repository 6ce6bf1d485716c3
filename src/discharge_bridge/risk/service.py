"""Scoring admissions from stored snapshots, and keeping one assessment per admission and rule set.

Runs after each sync for the patients whose data changed, and over everything on
``discharge-bridge rescore`` (a rule or mapping change, or the daily refresh of length of stay).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from discharge_bridge.config import Settings
from discharge_bridge.db import utcnow
from discharge_bridge.ingest.models import ClinicalSnapshot, EncounterSnapshot, PatientSnapshot
from discharge_bridge.risk import (
    Mapping,
    PatientRecord,
    RuleSet,
    assess,
    compute_lace,
    extract_facts,
    is_flaggable,
    load_mapping,
    load_rules,
)
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.risk.rules import PRIORITY_ORDER
from discharge_bridge.sources.models import Source

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


def _files_digest(paths: Iterable[str]) -> str:
    sha = hashlib.sha256()
    for path in sorted(paths):
        sha.update(Path(path).read_bytes())
    return sha.hexdigest()


@lru_cache(maxsize=64)
def _context(mapping_name: str, mappings_dir: Path, stamp: tuple[float, ...]) -> ScoringContext:
    mapping = load_mapping(mapping_name, search_dir=mappings_dir)
    rules = load_rules("rules", search_dir=mappings_dir)
    return ScoringContext(mapping, rules, _files_digest([*mapping.files, rules.file]))


def scoring_context(source: Source, settings: Settings) -> ScoringContext:
    """The source's mapping and the rule set, reloaded whenever a file in mappings/ changes."""
    folder = settings.mappings_dir
    stamp = tuple(p.stat().st_mtime for p in sorted(folder.glob("*.y*ml")))
    return _context(source.mapping, folder, stamp)


def _inputs_digest(ctx: ScoringContext, record: PatientRecord, day: str) -> str:
    sha = hashlib.sha256(ctx.digest.encode())
    sha.update(ctx.rules.version.encode())
    sha.update(day.encode())  # LACE's length of stay grows daily for a current stay
    for res in (record.patient, record.encounter, *record.conditions, *record.observations,
                *record.related_persons, *record.other_encounters):
        meta = res.get("meta") if isinstance(res.get("meta"), dict) else {}
        sha.update(f"{res.get('resourceType')}/{res.get('id')}/{meta.get('versionId')}/{meta.get('lastUpdated')}|".encode())
    return sha.hexdigest()


def _load(session: Session, source_id: int, patient_ids: Sequence[str]) -> tuple[
    dict[str, dict[str, Any]], dict[str, list[EncounterSnapshot]], dict[str, dict[str, list[dict[str, Any]]]]
]:
    patients = {
        fid: raw
        for fid, raw in session.exec(
            select(PatientSnapshot.fhir_id, PatientSnapshot.raw).where(
                PatientSnapshot.source_id == source_id, col(PatientSnapshot.fhir_id).in_(patient_ids)
            )
        )
    }
    encounters: dict[str, list[EncounterSnapshot]] = defaultdict(list)
    for enc in session.exec(
        select(EncounterSnapshot).where(
            EncounterSnapshot.source_id == source_id, col(EncounterSnapshot.patient_fhir_id).in_(patient_ids)
        )
    ):
        encounters[enc.patient_fhir_id].append(enc)
    clinical: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for pid, rtype, raw in session.exec(
        select(ClinicalSnapshot.patient_fhir_id, ClinicalSnapshot.resource_type, ClinicalSnapshot.raw).where(
            ClinicalSnapshot.source_id == source_id, col(ClinicalSnapshot.patient_fhir_id).in_(patient_ids)
        )
    ):
        clinical[pid][rtype].append(raw)
    return patients, encounters, clinical


def score_patients(
    session: Session,
    source: Source,
    patient_ids: Iterable[str],
    ctx: ScoringContext,
    *,
    now: datetime | None = None,
    force: bool = False,
) -> ScoreStats:
    """(Re)assess every current admission of these patients; mark ended ones as no longer current.

    A finished, cancelled or outpatient encounter never gets a new flag: it is only assessed if it
    was assessed while current, and then just loses ``current``.
    """
    assert source.id is not None
    now = now or utcnow()
    day = now.date().isoformat()
    stats = ScoreStats()
    ids = sorted(set(patient_ids))
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        patients, encounters, clinical = _load(session, source.id, batch)
        existing = {
            (row.encounter_fhir_id, row.rules_version): row
            for row in session.exec(
                select(RiskAssessment).where(
                    RiskAssessment.source_id == source.id, col(RiskAssessment.patient_fhir_id).in_(batch)
                )
            )
        }
        first_flags: dict[str, datetime] = {}
        for (enc_id, _), row in existing.items():
            if row.first_flagged_at and (enc_id not in first_flags or row.first_flagged_at < first_flags[enc_id]):
                first_flags[enc_id] = row.first_flagged_at
        for pid in batch:
            patient = patients.get(pid)
            if patient is None:
                continue  # assessed once the Patient arrives; no_contacts cannot be judged without it
            facts_of = clinical.get(pid, {})
            for enc in encounters.get(pid, []):
                row = existing.get((enc.fhir_id, ctx.rules.version))
                current = is_flaggable(enc.raw, ctx.mapping)
                if not current and row is None:
                    continue
                record = PatientRecord(
                    patient=patient,
                    encounter=enc.raw,
                    conditions=facts_of.get("Condition", []),
                    observations=facts_of.get("Observation", []),
                    related_persons=facts_of.get("RelatedPerson", []),
                    other_encounters=[e.raw for e in encounters[pid] if e.fhir_id != enc.fhir_id],
                )
                digest = _inputs_digest(ctx, record, day)
                if row is not None and row.inputs_digest == digest and not force:
                    stats.unchanged += 1
                    continue
                if row is not None and not current:
                    row.current, row.inputs_digest, row.assessed_at = False, digest, now
                    session.add(row)
                    stats.assessed += 1
                    continue
                written = _write(session, source.id, enc, record, ctx, row, digest, now, first_flags.get(enc.fhir_id))
                stats.assessed += 1
                stats.flagged += written.flagged
    session.flush()
    return stats


def _write(
    session: Session,
    source_id: int,
    enc: EncounterSnapshot,
    record: PatientRecord,
    ctx: ScoringContext,
    row: RiskAssessment | None,
    digest: str,
    now: datetime,
    first_flagged: datetime | None,
) -> RiskAssessment:
    facts = extract_facts(record, ctx.mapping)
    result = assess(facts, ctx.rules)
    lace = compute_lace(record, now)
    age = next((f.value for f in facts if f.concept == "age" and isinstance(f.value, int)), None)
    if row is None:
        row = RiskAssessment(
            source_id=source_id,
            encounter_fhir_id=enc.fhir_id,
            patient_fhir_id=enc.patient_fhir_id,
            rules_version=ctx.rules.version,
            inputs_digest=digest,
        )
    row.score = result.score
    row.priority = result.priority
    row.priority_rank = PRIORITY_ORDER.get(result.priority or "", 0)
    row.flagged = result.flagged
    row.current = True
    row.reasons = [asdict(r) for r in result.reasons]
    row.facts = [{"concept": f.concept, "evidence": f.evidence, "text": f.text} for f in facts]
    row.lace = asdict(lace)
    row.age = age
    row.inputs_digest = digest
    row.assessed_at = now
    if result.flagged and row.first_flagged_at is None:
        row.first_flagged_at = first_flagged or now
    session.add(row)
    return row


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


def score_source(
    engine: Any, source_name: str, settings: Settings, *, patient_ids: Iterable[str] | None = None, force: bool = False
) -> ScoreStats:
    """Score the given patients of a source (default: every patient with a possibly current stay)."""
    from discharge_bridge.db import session_scope
    from discharge_bridge.sources.service import get_source

    with session_scope(engine) as session:
        source = get_source(session, source_name)
        ctx = scoring_context(source, settings)
        ids = list(patient_ids) if patient_ids is not None else patients_to_rescore(session, source.id or 0)
        return score_patients(session, source, ids, ctx, force=force)
