"""After each sync (and on `rescore`): assess the admissions, then bring their cases up to date.

One transaction for both, so a case is never opened for an assessment that rolled back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from discharge_bridge.cases.sync import CaseSyncStats, sync_cases
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.risk.service import ScoreStats, patients_to_rescore, score_patients, scoring_context
from discharge_bridge.sources.service import get_source


@dataclass
class FollowUp:
    scores: ScoreStats
    cases: CaseSyncStats


def assess_and_follow(
    engine: Engine,
    source_name: str,
    settings: Settings,
    *,
    patient_ids: Iterable[str] | None = None,
    encounter_ids: Iterable[str] | None = None,
    force: bool = False,
) -> FollowUp:
    """Score the given patients (default: every patient with a possibly current stay), then open,
    re-prioritise and discharge cases. Raises MappingError / RuleSetError for broken files."""
    with session_scope(engine) as session:
        source = get_source(session, source_name)
        assert source.id is not None
        ctx = scoring_context(source, settings)
        ids = list(patient_ids) if patient_ids is not None else patients_to_rescore(session, source.id)
        scores = score_patients(session, source, ids, ctx, force=force)
        cases = sync_cases(
            session,
            source.id,
            rules_version=ctx.rules.version,
            encounter_fhir_ids=encounter_ids,
            mappings_dir=settings.mappings_dir,
        )
        return FollowUp(scores, cases)
