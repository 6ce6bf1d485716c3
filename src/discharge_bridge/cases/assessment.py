"""The needs assessment: five domains, daily-living function, and the living situation seen at the bedside.

A bedside finding can contradict a flag the EHR raised (the chart says "lives alone", the
daughter moved in last year) or reveal one it missed. Such a finding is appended to
``flag_corrections`` and to the case's log; earlier corrections are never replaced.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from discharge_bridge.cases.errors import StaleVersion, check_version, ensure_open
from discharge_bridge.cases.events import EventKind, plain, record_event
from discharge_bridge.cases.models import Assessment, Case
from discharge_bridge.cases.repository import get_assessment, latest_risk
from discharge_bridge.db import utcnow

SECTIONS = ("domains", "daily_living", "living_situation")


def case_flags(session: Session, case: Case) -> set[str]:
    """The concepts the latest risk assessment flagged (parts of combinations included)."""
    risk = latest_risk(session, case)
    if risk is None or not risk.flagged:
        return set()
    return {part for r in risk.reasons for part in str(r.get("concept", "")).split("+") if part}


def _ensure(session: Session, case: Case, actor: str, expected_version: int | None) -> Assessment:
    """The case's assessment, created empty (version 1) when there is none yet (version 0)."""
    assert case.id is not None
    found = get_assessment(session, case.id)
    if found is not None:
        check_version("assessment", found.version, expected_version)
        return found
    if expected_version not in (None, 0):
        raise StaleVersion("assessment", expected_version, 0)
    created = Assessment(case_id=case.id, updated_by=actor)
    session.add(created)
    session.flush()
    return created


def _append_correction(
    assessment: Assessment, *, concept: str, flagged: bool, correct: bool, note: str, actor: str, at: datetime
) -> dict[str, Any] | None:
    """Append unless the latest correction of this concept already says the same (a repeated PUT)."""
    previous = [c for c in assessment.flag_corrections if c.get("concept") == concept]
    if previous and (previous[-1].get("flagged"), previous[-1].get("correct")) == (flagged, correct):
        return None
    entry = {
        "concept": concept,
        "flagged": flagged,
        "correct": correct,
        "note": note,
        "by": actor,
        "at": at.isoformat(),
    }
    assessment.flag_corrections = [*assessment.flag_corrections, entry]  # a new list: JSON columns track assignment
    return entry


def _bedside_findings(living: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(concept, present at the bedside, note) for what the living situation settles."""
    found: list[tuple[str, bool, str]] = []
    if living.get("lives_alone") is not None:
        alone = bool(living["lives_alone"])
        found.append(("lives_alone", alone, "bedside: lives alone" if alone else "bedside: does not live alone"))
    housing = living.get("housing")
    if housing is not None:
        homeless = housing == "homeless"
        found.append(("homeless", homeless, f"bedside: housing is {housing}"))
    return found


def put_assessment(
    session: Session,
    case: Case,
    *,
    actor: str,
    domains: dict[str, Any],
    daily_living: dict[str, Any],
    living_situation: dict[str, Any],
    expected_version: int | None,
) -> Assessment:
    """Replace the three sections (corrections are kept) and record bedside corrections of flags."""
    ensure_open(case)
    assessment = _ensure(session, case, actor, expected_version)
    now = utcnow()
    new = {"domains": plain(domains), "daily_living": plain(daily_living), "living_situation": plain(living_situation)}
    changed = {s: [getattr(assessment, s), new[s]] for s in SECTIONS if getattr(assessment, s) != new[s]}
    for section in changed:
        setattr(assessment, section, new[section])
    flags = case_flags(session, case)
    corrections = []
    for concept, present, note in _bedside_findings(new["living_situation"]):
        flagged = concept in flags
        if not present and not flagged:
            continue  # the EHR raised nothing and the bedside agrees: nothing to record
        entry = _append_correction(
            assessment, concept=concept, flagged=flagged, correct=present == flagged, note=note, actor=actor, at=now
        )
        if entry is not None:
            corrections.append(entry)
    if not changed and not corrections:
        return assessment
    assessment.updated_at, assessment.updated_by = now, actor
    session.add(assessment)
    session.flush()
    if changed:
        record_event(session, case, actor=actor, kind=EventKind.assessment_updated, data=changed, at=now)
    for entry in corrections:
        record_event(session, case, actor=actor, kind=EventKind.flag_corrected, data=entry, at=now)
    return assessment


def add_flag_correction(
    session: Session,
    case: Case,
    *,
    actor: str,
    concept: str,
    correct: bool,
    note: str,
    expected_version: int | None = None,
) -> Assessment:
    """Append a correction by hand (e.g. "no_contacts is wrong: a neighbour holds the keys")."""
    ensure_open(case)
    assessment = _ensure(session, case, actor, expected_version)
    now = utcnow()
    entry = {
        "concept": concept,
        "flagged": concept in case_flags(session, case),
        "correct": correct,
        "note": note,
        "by": actor,
        "at": now.isoformat(),
    }
    assessment.flag_corrections = [*assessment.flag_corrections, entry]
    assessment.updated_at, assessment.updated_by = now, actor
    session.add(assessment)
    session.flush()
    record_event(session, case, actor=actor, kind=EventKind.flag_corrected, data=entry, at=now)
    return assessment
