"""The coordinator's live worklist: current flagged admissions, searched, filtered, sorted, paged by keyset.

Each row carries its patient's identity (name, sex, MRN, length of stay) when the caller passes the
mappings folder (the MRN's system is per hospital); whoever shows it records the view in the
access log (``WorklistPage.shown``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

from sqlalchemy import ColumnElement, and_
from sqlmodel import Session, col, select

from discharge_bridge import keyset
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.repository import has_open_cases, scoped
from discharge_bridge.db import utcnow
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.sources.models import Source
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Role
from discharge_bridge.worklists.conditions import (
    PRIORITY_RANK,
    all_of,
    conditions,
    joined,
    next_due,
    sort_keys,
    windows,
)
from discharge_bridge.worklists.counts import count_filters
from discharge_bridge.worklists.figures import kept
from discharge_bridge.worklists.filters import InvalidFilter, WorklistQuery
from discharge_bridge.worklists.people import Identity, identities
from discharge_bridge.worklists.schemas import CaseOut, WorklistItem, WorklistPage

__all__ = ["PRIORITY_RANK", "Half", "cases_of", "worklist", "worklist_half"]


# A coordinator's own cases, every case of the hospitals they see, or those nobody has taken yet.
Half = Literal["mine", "all", "unassigned"]


def worklist(
    session: Session,
    *,
    rules_version: str,
    source_ids: list[int] | None = None,
    min_priority: str | None = None,
    limit: int = 50,
    query: WorklistQuery | None = None,
    now: datetime | None = None,
    mappings_dir: Path | None = None,
    with_counts: bool = False,
    figures_max_age: float = 0,
) -> WorklistPage:
    """Flagged assessments of the active rule set whose encounter is still a current stay, matching
    ``query``, ``limit`` rows after ``query.after``. ``InvalidFilter`` names a parameter that cannot
    be used (a cursor made for another sort, say). ``figures_max_age``: see ``figures.kept``."""
    now = now or utcnow()
    asked = query or WorklistQuery()
    if min_priority is not None:
        asked = replace(asked, min_priority=min_priority)
    sources = _sources(session, source_ids)
    win = windows({sid: s.timezone for sid, s in sources.items()}, now)
    found = conditions(
        asked,
        rules_version=rules_version,
        source_ids=source_ids,
        win=win,
        dialect=session.get_bind().dialect.name,
    )
    where = all_of(found)
    total = keyset.capped_total(session, _counted(asked, where))
    keys = sort_keys(asked.sort)
    page_where = where
    if asked.after:
        try:
            last_id = keyset.decode(asked.after, asked.sort.value)
        except keyset.InvalidCursor as exc:
            raise InvalidFilter("after", str(exc)) from None
        anchor = joined(select(*(k.expression for k in keys))).where(col(RiskAssessment.id) == last_id)
        if source_ids is not None:  # a row of another hospital is no place to start from
            anchor = anchor.where(col(RiskAssessment.source_id).in_(source_ids))
        values = session.execute(anchor).first()
        if values is None:
            raise InvalidFilter("after", "the row it points after is gone")
        page_where = and_(where, keyset.after(keys, list(values)))
        seek = keyset.bound(keys, list(values))
        if seek is not None:
            page_where = and_(page_where, seek)
    # The page's ids first (the sort walks an index and joins only what the order needs), then their
    # columns: the case, the next task due and the reasons are read for the rows shown, not for every
    # row the sort looks at before it can stop (SQLite read them for a whole priority group).
    ids = list(
        session.execute(
            joined(select(col(RiskAssessment.id))).where(page_where).order_by(*keyset.order_by(keys)).limit(limit + 1)
        ).scalars()
    )
    more = len(ids) > limit
    ids = ids[:limit]
    columns: list[Any] = [
        RiskAssessment,
        EncounterSnapshot.period_start,
        EncounterSnapshot.ward,
        EncounterSnapshot.bed,
        EncounterSnapshot.status,
        Case.id,
        Case.status,
        Case.coordinator,
        next_due().label("next_due"),
    ]
    shown = joined(select(*columns)).where(where, col(RiskAssessment.id).in_(ids))
    by_id = {row[0].id: row for row in session.execute(shown)} if ids else {}
    rows = [by_id[i] for i in ids if i in by_id]  # a row discharged between the two reads is left out
    people: dict[tuple[int, str], Identity] = {}
    if mappings_dir is not None:
        people = identities(session, [(r[0].source_id, r[0].encounter_fhir_id) for r in rows], now, mappings_dir)
    items = [
        _item(row, sources[row[0].source_id], people.get((row[0].source_id, row[0].encounter_fhir_id))) for row in rows
    ]
    next_after = keyset.encode(asked.sort.value, ids[-1]) if more and ids else None
    counts = None
    if with_counts:
        key = (
            "counts",
            str(session.get_bind().engine.url),
            rules_version,
            source_ids and tuple(source_ids),
            replace(asked, after=None),
        )
        counts = kept(
            key,
            figures_max_age,
            session,
            lambda s: count_filters(s, found, win=win, dialect=s.get_bind().dialect.name),
        )
    return WorklistPage(
        total=min(total, keyset.TOTAL_CAP),
        total_more=total > keyset.TOTAL_CAP,
        items=items,
        next_after=next_after,
        counts=counts,
    )


class _Hospital(NamedTuple):
    name: str
    hospital: str
    timezone: str


def _sources(session: Session, source_ids: list[int] | None) -> dict[int, _Hospital]:
    """The columns a row shows of its hospital, for the hospitals in scope (100 at city scale: their
    settings, cursors and credentials are not read)."""
    query = select(Source.id, Source.name, Source.hospital, Source.timezone)
    if source_ids is not None:
        query = query.where(col(Source.id).in_(source_ids))
    return {sid: _Hospital(name, hospital, tz) for sid, name, hospital, tz in session.execute(query)}


def _counted(asked: WorklistQuery, where: ColumnElement[bool]) -> Any:
    """The ids the total counts. Without a ward filter the admission is checked per row by a
    correlated lookup rather than joined: PostgreSQL estimates the (source, id) join at 1% of its
    rows, so for 1,001 of them it hashes both tables whole (100 ms at 100,000 rows) where walking
    the assessments and looking each admission up stops after 1,001 (a few ms)."""
    if asked.ward:  # the only filter on the admission's columns
        return joined(select(col(RiskAssessment.id))).where(where)
    admission = (
        select(col(EncounterSnapshot.id))
        .where(
            col(EncounterSnapshot.source_id) == RiskAssessment.source_id,
            col(EncounterSnapshot.fhir_id) == RiskAssessment.encounter_fhir_id,
        )
        .correlate(RiskAssessment)
        .scalar_subquery()
    )
    return joined(select(col(RiskAssessment.id)), admission=False).where(where, admission.is_not(None))


def _item(row: Any, source: _Hospital, person: Identity | None) -> WorklistItem:
    risk: RiskAssessment = row[0]
    _, admitted_at, ward, bed, encounter_status, case_id, case_status, coordinator, due = row[:9]
    return WorklistItem(
        source=source.name,
        source_id=risk.source_id,
        hospital=source.hospital,
        patient=risk.patient_fhir_id,
        encounter=risk.encounter_fhir_id,
        name=person.name if person else None,
        sex=person.sex if person else None,
        mrn=person.mrn if person else None,
        priority=risk.priority or "low",
        score=risk.score,
        reasons=risk.reasons,  # type: ignore[arg-type]
        admitted_at=admitted_at,
        length_of_stay_days=person.length_of_stay_days if person else None,
        age=person.age if person and person.age is not None else risk.age,
        ward=ward,
        bed=bed,
        encounter_status=encounter_status,
        lace=WorklistItem.lace_of(risk.lace),
        rules_version=risk.rules_version,
        flagged_at=risk.first_flagged_at,
        case=CaseOut(id=case_id, status=str(case_status), coordinator=coordinator) if case_id is not None else None,
        next_due_at=due,
    )


def cases_of(
    session: Session, items: list[WorklistItem], *, source_ids: list[int] | None
) -> dict[tuple[str, str], Case]:
    """The case each listed admission already has, by (source name, encounter), among visible sources."""
    if not items:
        return {}
    query = (
        select(Case, Source.name)
        .join(Source, col(Source.id) == Case.source_id)
        .where(col(Case.encounter_fhir_id).in_({i.encounter for i in items}))
    )
    return {(name, case.encounter_fhir_id): case for case, name in session.exec(scoped(query, source_ids))}


def worklist_half(session: Session, principal: Principal, asked: Half | None) -> tuple[Half, bool]:
    """Which part of the lists the reader sees and whether they may switch: a coordinator may, and
    starts on their own cases when they have open ones; everyone else sees all (or the unassigned)."""
    if principal.role != Role.coordinator:
        return ("unassigned" if asked == "unassigned" else "all"), False
    if asked is not None:
        return asked, True
    mine = has_open_cases(session, principal.username, source_ids=principal.scope)
    return ("mine" if mine else "all"), True
