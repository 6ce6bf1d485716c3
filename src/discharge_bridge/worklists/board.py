"""The bed manager's board: every current inpatient, who is medically ready, how long they wait.

A read-only projection over the stored admissions (``beds``: flagged or not, with a case or not),
their cases, open barriers and handoffs, scoped to the hospitals the caller may see. Delays use
the case rule (``cases.readiness.bed_days_lost``): from medically ready to now while the patient is
still in the bed. Totals come per ward and per planned destination: ready today, this week,
delayed beyond the ready date, bed-days lost. The charts' weekly series live in ``board_series``.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, literal
from sqlalchemy import case as sa_case
from sqlmodel import Session, col, select

from discharge_bridge import keyset
from discharge_bridge.cases.barriers import delayed_days
from discharge_bridge.cases.handoffs.models import DestinationType, Handoff, HandoffStatus
from discharge_bridge.cases.models import Barrier, BarrierCode, Case, DateSource
from discharge_bridge.cases.readiness import bed_days_lost
from discharge_bridge.db import UTCDateTime
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.service import SourceNotFound, list_sources
from discharge_bridge.worklists.beds import (
    DESTINATIONS,
    INACTIVE_HANDOFF,
    NO_HANDOFF,
    BoardFilter,
    Days,
    Readiness,
    destination,
    expected_at,
    in_bed,
    local_days,
    readiness,
    ready_at,
    stay_rules,
    with_status,
)
from discharge_bridge.worklists.board_series import (
    DelayWeek,
    HandoffWeek,
    board_timezone,
    delay_series,
    handoff_series,
    week_starts,
)
from discharge_bridge.worklists.figures import kept
from discharge_bridge.worklists.people import Identity, identities
from discharge_bridge.worklists.schemas import BoardOut, BoardRowOut, BoardTotalsOut, GroupTotalsOut

__all__ = [
    "DESTINATIONS",
    "NO_HANDOFF",
    "Board",
    "BoardFilter",
    "BoardRow",
    "BoardTotals",
    "DelayWeek",
    "GroupTotals",
    "HandoffWeek",
    "InvalidBoardCursor",
    "Readiness",
    "board",
    "board_filter",
    "board_out",
    "board_timezone",
    "delay_series",
    "handoff_series",
    "week_starts",
]
_CHUNK = 500  # ids per IN (...) list


def board_filter(
    session: Session,
    source_ids: list[int] | None,
    hospital: str | None,
    ward: str | None,
    *,
    destination: str | None = None,
    status: Readiness | None = None,
    mappings_dir: Path | None = None,
    rules_version: str | None = None,
) -> tuple[BoardFilter, list[Source], Source | None]:
    """The filter for the caller's hospitals, with those hospitals and the one chosen (if any);
    a hospital outside them is SourceNotFound, as if it did not exist. With ``mappings_dir``, each
    hospital's mapping says which Encounters are current inpatient stays."""
    sources = list_sources(session, source_ids=source_ids)
    chosen = None
    if hospital:
        chosen = next((s for s in sources if s.name == hospital), None)
        if chosen is None:
            raise SourceNotFound(hospital)
    ids = [chosen.id] if chosen and chosen.id is not None else source_ids
    shown = [chosen] if chosen is not None else sources
    flt = BoardFilter(
        source_ids=ids,
        ward=ward or None,
        destination=destination or None,
        status=status,
        stays=stay_rules(session, shown, mappings_dir) if mappings_dir is not None else None,
        rules_version=rules_version,
    )
    return flt, sources, chosen


@dataclass(frozen=True)
class BarrierLine:
    code: BarrierCode
    owner: str | None
    started_at: datetime
    delayed_days: float


@dataclass(frozen=True)
class HandoffLine:
    destination_type: DestinationType
    organisation: str | None
    status: HandoffStatus
    status_at: datetime | None  # when the handoff reached its current status


@dataclass(frozen=True)
class BoardRow:
    case_id: int | None  # None: an inpatient nobody coordinates (no flag, no case)
    source: str
    hospital: str
    timezone: str
    ward: str | None
    bed: str | None
    patient: str  # the FHIR id
    encounter: str
    admitted_at: datetime | None
    medically_ready_at: datetime | None
    medically_ready_source: DateSource | None
    medically_ready_set_by: str | None
    expected_discharge_at: datetime | None  # the case's, else the EHR's planned end
    expected_discharge_source: DateSource | None
    days_delayed: float | None  # bed-days lost so far; None while not medically ready
    past_expected: bool
    barriers: list[BarrierLine] = field(default_factory=list)
    handoff: HandoffLine | None = None
    source_id: int = 0
    readiness: Readiness = Readiness.undated
    person: Identity | None = None  # name, age, sex, MRN, length of stay: shown, so logged


@dataclass(frozen=True)
class GroupTotals:
    key: str | None  # a ward, or a destination (NO_HANDOFF: none planned); None: no ward in the EHR
    in_bed: int = 0
    ready_today: int = 0
    this_week: int = 0  # ready today to Sunday, today's included
    delayed: int = 0  # ready date before today, still in a bed
    bed_days_lost: float = 0.0


@dataclass(frozen=True)
class BoardTotals:
    in_bed: int
    ready_not_discharged: int
    bed_days_lost: float
    ready_today: int = 0
    this_week: int = 0
    delayed: int = 0


@dataclass(frozen=True)
class Board:
    totals: BoardTotals
    rows: list[BoardRow]
    wards: list[str]  # for the ward filter: the wards in a bed at the filtered hospitals
    by_ward: list[GroupTotals] = field(default_factory=list)
    by_destination: list[GroupTotals] = field(default_factory=list)
    next_after: str | None = None  # the cursor of the next page; None on the last one

    @property
    def shown(self) -> list[tuple[int, str]]:
        """The (source_id, patient) pairs of the rows: what the access log records."""
        return [(r.source_id, r.patient) for r in self.rows]


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def _open_barriers(session: Session, case_ids: list[int], now: datetime) -> dict[int, list[BarrierLine]]:
    found: dict[int, list[BarrierLine]] = defaultdict(list)
    for ids in _chunks(case_ids):
        query = (
            select(Barrier)
            .where(col(Barrier.case_id).in_(ids), col(Barrier.ended_at).is_(None))
            .order_by(col(Barrier.started_at), col(Barrier.id))
        )
        for b in session.exec(query):
            found[b.case_id].append(BarrierLine(b.code, b.owner, b.started_at, delayed_days(b, now)))
    return found


def _current_handoffs(session: Session, case_ids: list[int]) -> dict[int, HandoffLine]:
    """The most recent handoff of each case that is still under way (or done), not declined or cancelled."""
    found: dict[int, HandoffLine] = {}
    for ids in _chunks(case_ids):
        query = (
            select(Handoff)
            .where(col(Handoff.case_id).in_(ids), col(Handoff.status).not_in(INACTIVE_HANDOFF))
            .order_by(col(Handoff.proposed_at).desc(), col(Handoff.id).desc())
        )
        for h in session.exec(query):
            if h.case_id not in found:
                status_at = getattr(h, f"{h.status}_at", None)
                found[h.case_id] = HandoffLine(h.destination_type, h.organisation, h.status, status_at)
    return found


def _beds(flt: BoardFilter, now: datetime, calendars: dict[int, Days], columns: list[Any]) -> Any:
    return with_status(in_bed(select(*columns).select_from(EncounterSnapshot), flt, now), flt, calendars)


BOARD_SORT = "board"  # the cursor's sort name


def board_keys() -> list[keyset.Key]:
    """Medically ready first (longest waiting first), then by expected discharge, ward, bed; the
    encounter row's id last so every row has its own place."""
    return [
        keyset.Key(col(Case.medically_ready_at)),
        keyset.Key(expected_at()),
        keyset.Key(col(EncounterSnapshot.ward)),
        keyset.Key(col(EncounterSnapshot.bed)),
        keyset.Key(col(EncounterSnapshot.id)),
    ]


def _cursor_id(cursor: str) -> int:
    try:
        return keyset.decode(cursor, BOARD_SORT)
    except keyset.InvalidCursor as exc:
        raise InvalidBoardCursor(str(exc)) from None


def _anchor(session: Session, last_id: int) -> list[Any]:
    """The sort values of the row a cursor points after (read again: a cursor holds no patient data).
    The row need not be in a bed any more: the next page starts after where it stood."""
    query = (
        select(*(k.expression for k in board_keys()))
        .select_from(EncounterSnapshot)
        .outerjoin(
            Case,
            (col(Case.source_id) == EncounterSnapshot.source_id)
            & (col(Case.encounter_fhir_id) == EncounterSnapshot.fhir_id),
        )
        .where(col(EncounterSnapshot.id) == last_id)
    )
    values = session.execute(query).first()
    if values is None:
        raise InvalidBoardCursor("the row it points after is gone")
    return list(values)


def _order(session: Session, flt: BoardFilter, now: datetime, calendars: dict[int, Days]) -> array[int]:
    """The ids of every row the filter keeps, in the board's order (8 bytes a row)."""
    keys = board_keys()
    query = _beds(flt, now, calendars, [EncounterSnapshot.id]).order_by(*keyset.order_by(keys))
    return array("q", session.execute(query).scalars())


def _kept_slots(order: array[int], after_id: int | None, limit: int) -> list[int] | None:
    """The ids of the ``limit + 1`` slots after ``after_id`` in a kept order; None when that row is
    not in it (the order was computed again since): the caller then pages by SQL."""
    start = 0
    if after_id is not None:
        try:
            start = order.index(after_id) + 1
        except ValueError:
            return None
    return order[start : start + limit + 1].tolist()


class InvalidBoardCursor(ValueError):
    """The board's ``after`` was not made by the board, or its row is gone."""


def _page(
    session: Session,
    flt: BoardFilter,
    now: datetime,
    calendars: dict[int, Days],
    columns: list[Any],
    after_id: int | None,
    limit: int | None,
    max_age: float,
) -> tuple[list[Any], int | None]:
    """The rows of one page and the id of its last slot when more follow. With ``max_age`` the
    board's order over every row is kept that long (``figures.kept``: one sort of 100,000 rows then
    serves every page), and a page reads its rows by id, live: a row that left its bed or the filter
    since is not shown, one that arrived shows once the order is computed again. Otherwise (or when
    the cursor's row is not in the kept order) the page is one keyset query."""
    if max_age > 0 and limit is not None:
        order_key = ("board-order", str(session.get_bind().engine.url), repr(flt), now.date())
        order = kept(order_key, max_age, session, lambda s: _order(s, flt, now, calendars))
        slots = _kept_slots(order, after_id, limit)
        if slots is not None:
            shown = slots[:limit]
            live = _beds(flt, now, calendars, columns).where(col(EncounterSnapshot.id).in_(shown))
            found = {row.id: row for row in session.execute(live)}
            return [found[i] for i in shown if i in found], (shown[-1] if len(slots) > limit else None)
    keys = board_keys()
    ordered = _beds(flt, now, calendars, columns).order_by(*keyset.order_by(keys))
    if after_id is not None:
        ordered = ordered.where(keyset.after(keys, _anchor(session, after_id)))
    if limit is not None:
        ordered = ordered.limit(limit + 1)
    picked = session.execute(ordered).all()
    if limit is None or len(picked) <= limit:
        return list(picked), None
    return list(picked[:limit]), picked[limit - 1].id


def board(
    session: Session,
    flt: BoardFilter,
    *,
    now: datetime,
    limit: int | None = 500,
    after: str | None = None,
    mappings_dir: Path | None = None,
    figures_max_age: float = 0,
    sources: list[Source] | None = None,
) -> Board:
    """Patients in a bed, medically ready ones first (longest waiting first), then by expected
    discharge; ``limit`` rows after the cursor ``after`` (None: all), totals over all of them from
    one aggregate query (kept ``figures_max_age`` seconds, see ``figures.kept``). With ``mappings_dir``
    each row carries its patient's identity. ``sources``: the caller's, as ``board_filter`` gave them
    (else read again)."""
    if sources is None:
        sources = list_sources(session, source_ids=flt.source_ids)
    wanted = None if flt.source_ids is None else set(flt.source_ids)
    by_id = {s.id: s for s in sources if s.id is not None and (wanted is None or s.id in wanted)}
    calendars = {sid: local_days(s.timezone, now) for sid, s in by_id.items()}
    columns: list[Any] = [
        EncounterSnapshot.id,
        EncounterSnapshot.source_id,
        EncounterSnapshot.fhir_id,
        EncounterSnapshot.patient_fhir_id,
        EncounterSnapshot.ward,
        EncounterSnapshot.bed,
        EncounterSnapshot.period_start,
        EncounterSnapshot.planned_end,
        Case,
    ]
    after_id = _cursor_id(after) if after else None
    picked, last_slot = _page(session, flt, now, calendars, columns, after_id, limit, figures_max_age)
    case_ids = [row.Case.id for row in picked if row.Case is not None and row.Case.id is not None]
    barriers = _open_barriers(session, case_ids, now)
    handoffs = _current_handoffs(session, case_ids)
    people: dict[tuple[int, str], Identity] = {}
    if mappings_dir is not None:
        people = identities(session, [(r.source_id, r.fhir_id) for r in picked], now, mappings_dir)
    rows = [
        _row(
            row,
            by_id[row.source_id],
            now,
            calendars[row.source_id],
            barriers.get(row.Case.id, []) if row.Case is not None and row.Case.id is not None else [],
            handoffs.get(row.Case.id) if row.Case is not None and row.Case.id is not None else None,
            people.get((row.source_id, row.fhir_id)),
        )
        for row in picked
    ]
    broad = BoardFilter(source_ids=flt.source_ids, stays=flt.stays, rules_version=flt.rules_version)
    key = ("board", str(session.get_bind().engine.url), repr(broad), now.date())
    groups = kept(key, figures_max_age, session, lambda s: _groups(s, broad, now, calendars))
    totals, by_ward, by_destination = _summed(groups, flt)
    wards = sorted({g.ward for g in groups if g.ward})
    next_after = keyset.encode(BOARD_SORT, last_slot) if last_slot is not None else None
    return Board(totals, rows, wards, by_ward, by_destination, next_after=next_after)


def _row(
    row: Any,
    source: Source,
    now: datetime,
    days: Days,
    barriers: list[BarrierLine],
    handoff: HandoffLine | None,
    person: Identity | None,
) -> BoardRow:
    c: Case | None = row.Case
    expected = c.expected_discharge_at if c is not None and c.expected_discharge_at is not None else row.planned_end
    expected_source = (
        c.expected_discharge_source
        if c is not None and c.expected_discharge_at is not None
        else (DateSource.ehr if row.planned_end is not None else None)
    )
    ready = c.medically_ready_at if c is not None else None
    return BoardRow(
        case_id=c.id if c is not None else None,
        source=source.name,
        hospital=source.hospital,
        timezone=source.timezone,
        ward=row.ward,
        bed=row.bed,
        patient=row.patient_fhir_id,
        encounter=row.fhir_id,
        admitted_at=row.period_start,
        medically_ready_at=ready,
        medically_ready_source=c.medically_ready_source if c is not None else None,
        medically_ready_set_by=c.medically_ready_set_by if c is not None else None,
        expected_discharge_at=expected,
        expected_discharge_source=expected_source,
        days_delayed=bed_days_lost(c, now) if c is not None else None,
        past_expected=expected is not None and expected < now,
        barriers=barriers,
        handoff=handoff,
        source_id=row.source_id,
        readiness=readiness(ready or expected, days),
        person=person,
    )


class _Sum:
    def __init__(self) -> None:
        self.in_bed = self.today = self.week = self.delayed = self.ready = 0
        self.lost = 0.0

    def add(self, state: str, beds: int, ready: int, lost_days: float) -> None:
        self.in_bed += beds
        self.today += beds if state == Readiness.today else 0
        self.week += beds if state in (Readiness.today, Readiness.week) else 0
        self.delayed += beds if state == Readiness.delayed else 0
        self.ready += ready
        self.lost += lost_days

    def group(self, key: str | None) -> GroupTotals:
        return GroupTotals(key, self.in_bed, self.today, self.week, self.delayed, round(self.lost, 1))


def _state(calendars: dict[int, Days]) -> Any:
    """The readiness of a row as SQL, each hospital against its own local calendar."""
    ready = ready_at()
    alike: dict[Days, list[int]] = {}
    for source_id, days in calendars.items():
        alike.setdefault(days, []).append(source_id)
    whens: list[tuple[Any, str]] = [(ready.is_(None), Readiness.undated.value)]
    for days, ids in alike.items():
        here = col(EncounterSnapshot.source_id).in_(sorted(ids))
        whens += [
            (and_(here, ready < days.today_start), Readiness.delayed.value),
            (and_(here, ready < days.today_end), Readiness.today.value),
            (and_(here, ready < days.week_end), Readiness.week.value),
        ]
    return sa_case(*whens, else_=Readiness.later.value)


def _days_since(instant: Any, now: datetime, dialect: str) -> Any:
    if dialect == "postgresql":
        return func.extract("epoch", literal(now, UTCDateTime()) - instant) / 86400.0
    return func.julianday(literal(now, UTCDateTime())) - func.julianday(instant)


@dataclass(frozen=True)
class _Group:
    """Admissions in a bed alike in ward, planned destination and readiness."""

    ward: str | None
    place: str  # a DestinationType value, or NO_HANDOFF
    state: Readiness
    beds: int
    ready: int  # medically ready among them
    lost: float  # their bed-days lost


def _groups(session: Session, flt: BoardFilter, now: datetime, calendars: dict[int, Days]) -> list[_Group]:
    """Every admission the filter keeps, not just the rows shown: one aggregate query grouped by
    ward, destination and readiness (a few hundred groups at most). The ward, destination and
    status filters are these groups' keys, so one answer over the hospitals serves all of them."""
    ready = col(Case.medically_ready_at)
    rows = _beds(
        flt,
        now,
        calendars,
        [
            col(EncounterSnapshot.ward).label("ward"),
            destination().label("place"),
            _state(calendars).label("state"),
            ready.label("medically"),
        ],
    ).subquery()
    lost = sa_case(
        (
            rows.c.medically < literal(now, UTCDateTime()),
            _days_since(rows.c.medically, now, session.get_bind().dialect.name),
        ),
        else_=0.0,
    )
    figures: list[Any] = [rows.c.ward, rows.c.place, rows.c.state]
    figures += [func.count(), func.count(rows.c.medically), func.sum(lost)]
    query = select(*figures).group_by(rows.c.ward, rows.c.place, rows.c.state)
    return [
        _Group(
            ward, str(place) if place else NO_HANDOFF, Readiness(state), int(beds), int(ready_n), float(lost_days or 0)
        )
        for ward, place, state, beds, ready_n, lost_days in session.execute(query)
    ]


_WITHIN = {status: {status} for status in Readiness} | {Readiness.week: {Readiness.today, Readiness.week}}


def _summed(groups: list[_Group], flt: BoardFilter) -> tuple[BoardTotals, list[GroupTotals], list[GroupTotals]]:
    """The totals of the groups ``flt``'s ward, destination and status keep: overall, per ward and
    per destination (this week includes today, as the status filter does)."""
    overall = _Sum()
    wards: dict[str | None, _Sum] = defaultdict(_Sum)
    places: dict[str, _Sum] = defaultdict(_Sum)
    for g in groups:
        if flt.ward and g.ward != flt.ward:
            continue
        if flt.destination and g.place != flt.destination:
            continue
        if flt.status is not None and g.state not in _WITHIN[flt.status]:
            continue
        for bucket in (overall, wards[g.ward], places[g.place]):
            bucket.add(g.state, g.beds, g.ready, g.lost)
    totals = BoardTotals(
        in_bed=overall.in_bed,
        ready_not_discharged=overall.ready,
        bed_days_lost=round(overall.lost, 1),
        ready_today=overall.today,
        this_week=overall.week,
        delayed=overall.delayed,
    )
    by_ward = [wards[w].group(w) for w in sorted(wards, key=lambda w: (w is None, w or ""))]
    by_destination = [places[d].group(d) for d in DESTINATIONS if d in places]
    return totals, by_ward, by_destination


def board_out(result: Board) -> BoardOut:
    """The board as the API gives it."""
    rows = [
        BoardRowOut(
            source=r.source,
            hospital=r.hospital,
            ward=r.ward,
            bed=r.bed,
            patient=r.patient,
            encounter=r.encounter,
            case_id=r.case_id,
            name=r.person.name if r.person else None,
            sex=r.person.sex if r.person else None,
            age=r.person.age if r.person else None,
            mrn=r.person.mrn if r.person else None,
            admitted_at=r.admitted_at,
            length_of_stay_days=r.person.length_of_stay_days if r.person else None,
            medically_ready_at=r.medically_ready_at,
            medically_ready_source=r.medically_ready_source,
            expected_discharge_at=r.expected_discharge_at,
            expected_discharge_source=r.expected_discharge_source,
            readiness=r.readiness,
            days_delayed=r.days_delayed,
            destination=r.handoff.destination_type if r.handoff else None,
            handoff_status=r.handoff.status if r.handoff else None,
            barriers=[b.code for b in r.barriers],
        )
        for r in result.rows
    ]
    return BoardOut(
        totals=BoardTotalsOut(**asdict(result.totals)),
        by_ward=[GroupTotalsOut(**asdict(g)) for g in result.by_ward],
        by_destination=[GroupTotalsOut(**asdict(g)) for g in result.by_destination],
        wards=result.wards,
        rows=rows,
        truncated=result.totals.in_bed > len(rows),
        next_after=result.next_after,
    )
