"""The figures a city reports: how fast flagged people are seen, planned for and handed off, the
delay from medically ready to discharge and the bed-days it costs, referrals and how receivers
answer, and the services delivered. Counts only: no one's identity, ever.

Each figure is computed in the database over a *cohort* (grouped by hospital, ward, coordinator or
ISO week, the week on the hospital's local calendar):

- flag to first visit, flag to plan, flag to handoff: the cases **opened** in the period (the flag,
  or a case opened by hand), each measured from ``opened_at`` to its first visit (``FIRST_VISIT``
  below), the first action-plan task a person created, the first handoff completed. Hours for the
  first two, days for the handoff; a case that has not got there yet counts in the cohort only.
- medically ready to discharge: the cases **discharged** in the period that had a medically-ready
  date; the delay and its sum, the bed-days lost, as ``cases.readiness.bed_days_lost`` defines them
  (discharge minus medically ready, never below zero).
- referrals: those **requested** in the period, by the service's category and outcome (completed,
  rejected, cancelled, else open); receivers' response time (requested to accepted or rejected)
  per organisation, over all of the period's referrals whatever the grouping.
- services delivered: rows of ``service_delivered`` **delivered** in the period and not struck out,
  by kind, and how many distinct people (patients) they went to. In the coordinator grouping they
  count under who delivered them (a psychologist too), not the case's coordinator.

The ward is the stored admission's; the coordinator is the case's current one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import String, and_, case, cast, func, literal, select
from sqlmodel import Session, col

from discharge_bridge.cases.delivered.models import ServiceDelivered
from discharge_bridge.cases.events import EventKind
from discharge_bridge.cases.handoffs.models import Handoff, HandoffStatus
from discharge_bridge.cases.models import Case, CaseEvent
from discharge_bridge.cases.referrals.models import Referral, ReferralStatus
from discharge_bridge.cases.tasks.models import Task, TaskKind, TaskStatus
from discharge_bridge.directory.models import DirectoryService, Organisation
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.sources.models import Source
from discharge_bridge.worklists.figures import kept
from discharge_bridge.worklists.periods import Calendars, Period, Spread, not_negative, seconds_between, spreads

# Who is not a person: the feed, the assessment stage and the scheduler write events and tasks too.
MACHINE_ACTORS = ("system", "ehr", "scheduler")

# A coordinator has seen the patient when, as a person (not the feed or the scheduler), they
# recorded the needs assessment or corrected a flag after a bedside finding (both are done at the
# bedside), or completed the case's first-visit task. Calls and visits to *relatives*
# (``contact_logged``) are not a visit to the patient.
FIRST_VISIT_EVENTS = (EventKind.assessment_updated.value, EventKind.flag_corrected.value)

HOUR, DAY = 3600.0, 86400.0
NOTHING = Spread(0, 0, None, None, 0.0)


class Grouping(StrEnum):
    hospital = "hospital"
    ward = "ward"
    coordinator = "coordinator"
    week = "week"


class Outcome(StrEnum):
    completed = "completed"
    rejected = "rejected"
    cancelled = "cancelled"
    open = "open"


@dataclass(frozen=True)
class Duration:
    """One group of a duration figure: ``cohort`` items, ``count`` reached, median and p90 in ``unit``."""

    group: str | None
    cohort: int
    count: int
    median: float | None
    p90: float | None


@dataclass(frozen=True)
class DurationFigure:
    name: str  # flag_to_first_visit | flag_to_plan | flag_to_handoff | ready_to_discharge
    unit: str  # hours | days
    groups: list[Duration]
    total: Duration


@dataclass(frozen=True)
class BedDays:
    group: str | None
    discharged: int  # discharged in the period with a medically-ready date
    bed_days_lost: float


@dataclass(frozen=True)
class ReferralCount:
    group: str | None
    category: str
    outcome: str
    count: int


@dataclass(frozen=True)
class ResponseTime:
    organisation: str  # the directory's code
    name: str
    requested: int
    answered: int
    median_hours: float | None
    p90_hours: float | None


@dataclass(frozen=True)
class Delivered:
    group: str | None
    kind: str
    count: int
    people: int


@dataclass(frozen=True)
class People:
    group: str | None
    people: int  # distinct patients who got at least one service


@dataclass(frozen=True)
class CityFigures:
    period: Period
    grouping: Grouping
    durations: list[DurationFigure]
    bed_days: list[BedDays]
    bed_days_total: BedDays
    referrals: list[ReferralCount]
    responses: list[ResponseTime]
    delivered: list[Delivered]
    people: list[People]
    people_total: int
    hospitals: dict[int, str] = field(default_factory=dict)  # source id -> name, of the hospitals covered


class _Figures:
    """The figures of one question: the covered hospitals (id, name, time zone), the period and the
    grouping, read with ``session``."""

    def compute(self) -> CityFigures:
        delay, lost, lost_total = self.ready_to_discharge()
        delivered, people, people_total = self.delivered()
        return CityFigures(
            period=self.period,
            grouping=self.grouping,
            durations=[*self.flag_durations(), delay],
            bed_days=lost,
            bed_days_total=lost_total,
            referrals=self.referrals(),
            responses=self.responses(),
            delivered=delivered,
            people=people,
            people_total=people_total,
            hospitals=dict(self.names),
        )

    def __init__(
        self, session: Session, hospitals: Sequence[tuple[int, str, str]], period: Period, grouping: Grouping
    ) -> None:
        self.session = session
        self.period = period.check()
        self.grouping = grouping
        self.source_ids = [sid for sid, _, _ in hospitals]
        self.names = {sid: name for sid, name, _ in hospitals}
        self.calendars = Calendars.of((sid, timezone) for sid, _, timezone in hospitals)
        self.dialect = session.get_bind().dialect.name

    def key(self, at: Any, *, person: Any = None) -> Any:
        """The group of a row whose cohort instant is ``at`` (``person``: who, in the coordinator grouping)."""
        if self.grouping == Grouping.hospital:
            return cast(Case.source_id, String)
        if self.grouping == Grouping.ward:
            return EncounterSnapshot.ward
        if self.grouping == Grouping.coordinator:
            return person if person is not None else col(Case.coordinator)
        return self.calendars.week(self.period, at, col(Case.source_id))

    def cases(self, query: Any, at: Any) -> Any:
        """``query`` (selecting from Case) kept to the covered hospitals and ``at`` in the period;
        the admission joined for the ward grouping."""
        if self.grouping == Grouping.ward:
            query = query.outerjoin(
                EncounterSnapshot,
                and_(
                    col(EncounterSnapshot.source_id) == Case.source_id,
                    col(EncounterSnapshot.fhir_id) == Case.encounter_fhir_id,
                ),
            )
        return query.where(
            col(Case.source_id).in_(self.source_ids), self.calendars.within(self.period, at, Case.source_id)
        )

    def label(self, key: Any) -> str | None:
        if key is None:
            return None
        if self.grouping == Grouping.hospital:
            return self.names.get(int(key), str(key))
        return str(key)

    def seconds(self, start: Any, end: Any) -> Any:
        return seconds_between(start, end, self.dialect)

    # -- durations --------------------------------------------------------------------------------

    def spread(self, figures: dict[str, tuple[Any, Any]]) -> dict[tuple[str, Any], Spread]:
        """``{name: (cohort CTE, seconds over it)}``: each figure per group and overall (``<name>:all``),
        in one statement."""
        keyed: dict[str, Any] = {}
        for name, (cohort, seconds) in figures.items():
            keyed[name] = select(cohort.c.grp.label("grp"), seconds.label("seconds"))
            keyed[f"{name}:all"] = select(literal("all").label("grp"), seconds.label("seconds"))
        return spreads(self.session, keyed)

    def figure(self, name: str, unit: str, found: dict[tuple[str, Any], Spread]) -> DurationFigure:
        scale = HOUR if unit == "hours" else DAY

        def out(group: str | None, s: Spread) -> Duration:
            def scaled(v: float | None) -> float | None:
                return None if v is None else round(v / scale, 1)

            return Duration(group, s.cohort, s.count, scaled(s.median), scaled(s.p90))

        groups = [out(self.label(k), s) for (f, k), s in found.items() if f == name]
        whole = found.get((f"{name}:all", "all"), NOTHING)
        return DurationFigure(name, unit, sorted(groups, key=_order), out(None, whole))

    def flag_durations(self) -> list[DurationFigure]:
        """The three times from the flag over one cohort of the period's new cases, each case's
        lookups made once (a CTE the statement reads six times)."""
        opened = col(Case.opened_at)
        columns: tuple[Any, ...] = (
            self.key(opened).label("grp"),
            opened.label("opened"),
            visit_event().label("seen_event"),
            visit_task().label("seen_task"),
            first_plan().label("planned"),
            handoff_completed().label("handed"),
        )
        c = self.cases(select(*columns), opened).cte("cohort").prefix_with("MATERIALIZED")
        cohort = c.c
        seen = earliest(cohort.seen_event, cohort.seen_task)
        found = self.spread(
            {
                "flag_to_first_visit": (c, self.seconds(cohort.opened, seen)),
                "flag_to_plan": (c, self.seconds(cohort.opened, cohort.planned)),
                "flag_to_handoff": (c, self.seconds(cohort.opened, cohort.handed)),
            }
        )
        return [
            self.figure("flag_to_first_visit", "hours", found),
            self.figure("flag_to_plan", "hours", found),
            self.figure("flag_to_handoff", "days", found),
        ]

    def ready_to_discharge(self) -> tuple[DurationFigure, list[BedDays], BedDays]:
        left, ready = col(Case.actual_discharge_at), col(Case.medically_ready_at)
        columns = (self.key(left).label("grp"), not_negative(self.seconds(ready, left)).label("delay"))
        c = self.cases(select(*columns).where(ready.is_not(None)), left).cte("discharged")
        name = "ready_to_discharge"
        found = self.spread({name: (c, c.c.delay)})
        whole = found.get(("ready_to_discharge:all", "all"), NOTHING)
        lost = sorted(
            (
                BedDays(self.label(k), s.count, round(s.total / DAY, 1))
                for (f, k), s in found.items()
                if f == "ready_to_discharge"
            ),
            key=_order,
        )
        return (
            self.figure("ready_to_discharge", "days", found),
            lost,
            BedDays(None, whole.count, round(whole.total / DAY, 1)),
        )

    # -- referrals --------------------------------------------------------------------------------

    def referrals(self) -> list[ReferralCount]:
        status = col(Referral.status)
        outcome = case(
            (status == ReferralStatus.completed.value, Outcome.completed.value),
            (status == ReferralStatus.rejected.value, Outcome.rejected.value),
            (status == ReferralStatus.cancelled.value, Outcome.cancelled.value),
            else_=Outcome.open.value,
        )
        at = col(Referral.requested_at)
        key = self.key(at)
        query = (
            select(key, col(DirectoryService.category), outcome, func.count())
            .select_from(Referral)
            .join(Case, col(Case.id) == Referral.case_id)
            .join(DirectoryService, col(DirectoryService.id) == Referral.service_id)
        )
        query = self.cases(query, at).group_by(key, col(DirectoryService.category), outcome)
        rows = [ReferralCount(self.label(k), str(c), str(o), int(n)) for k, c, o, n in self.session.execute(query)]
        return sorted(rows, key=lambda r: (_order(r), r.category, r.outcome))

    def responses(self) -> list[ResponseTime]:
        at = col(Referral.requested_at)
        answered = func.coalesce(Referral.accepted_at, Referral.rejected_at)
        query = (
            select(col(Referral.organisation_id).label("grp"), self.seconds(at, answered).label("seconds"))
            .select_from(Referral)
            .join(Case, col(Case.id) == Referral.case_id)
        )
        found = {oid: s for (_, oid), s in spreads(self.session, {"response": self.cases(query, at)}).items()}
        if not found:
            return []
        names = {
            oid: (code, name)
            for oid, code, name in self.session.execute(
                select(col(Organisation.id), col(Organisation.code), col(Organisation.name)).where(
                    col(Organisation.id).in_(list(found))
                )
            )
        }

        def hours(v: float | None) -> float | None:
            return None if v is None else round(v / HOUR, 1)

        rows = [
            ResponseTime(names[oid][0], names[oid][1], s.cohort, s.count, hours(s.median), hours(s.p90))
            for oid, s in found.items()
        ]
        return sorted(rows, key=lambda r: r.organisation)

    # -- services delivered -----------------------------------------------------------------------

    def delivered(self) -> tuple[list[Delivered], list[People], int]:
        at = col(ServiceDelivered.delivered_at)
        person = func.count(func.distinct(cast(Case.source_id, String) + literal(":") + col(Case.patient_fhir_id)))
        key = self.key(at, person=col(ServiceDelivered.delivered_by))

        def query(*columns: Any) -> Any:
            base = (
                select(*columns)
                .select_from(ServiceDelivered)
                .join(Case, col(Case.id) == ServiceDelivered.case_id)
                .where(col(ServiceDelivered.cancelled_at).is_(None))
            )
            return self.cases(base, at)

        kinds = self.session.execute(
            query(key, ServiceDelivered.kind, func.count(), person).group_by(key, ServiceDelivered.kind)
        )
        rows = sorted(
            (Delivered(self.label(k), str(kind), int(n), int(p)) for k, kind, n, p in kinds),
            key=lambda r: (_order(r), r.kind),
        )
        people = sorted(
            (People(self.label(k), int(p)) for k, p in self.session.execute(query(key, person).group_by(key))),
            key=_order,
        )
        total = self.session.execute(query(person)).scalar_one()
        return rows, people, int(total or 0)


def _order(row: Any) -> tuple[bool, str]:
    return (row.group is None, row.group or "")


def _human(actor: Any) -> Any:
    return col(actor).not_in(MACHINE_ACTORS)


def visit_event() -> Any:
    """When a person first recorded a ``FIRST_VISIT_EVENTS`` event on the case (through its index)."""
    return (
        select(func.min(CaseEvent.at))
        .where(col(CaseEvent.case_id) == Case.id, col(CaseEvent.kind).in_(FIRST_VISIT_EVENTS), _human(CaseEvent.actor))
        .correlate(Case)
        .scalar_subquery()
    )


def visit_task() -> Any:
    """When the case's first-visit task was completed (completed is final: its last status change)."""
    return (
        select(func.min(Task.status_changed_at))
        .where(
            col(Task.case_id) == Case.id,
            col(Task.status) == TaskStatus.completed.value,
            col(Task.kind) == TaskKind.first_visit.value,
        )
        .correlate(Case)
        .scalar_subquery()
    )


def earliest(a: Any, b: Any) -> Any:
    """The earlier of two instants, either maybe NULL (SQLite's min(a, b) and LEAST differ on NULL).
    The first visit is ``earliest(visit_event(), visit_task())``."""
    return case((a.is_(None), b), (b.is_(None), a), (b < a, b), else_=a)


def first_plan() -> Any:
    """When a person first added a task to the case's action plan (the tasks the case opened with
    are the system's, not a plan)."""
    return (
        select(func.min(Task.created_at))
        .where(col(Task.case_id) == Case.id, _human(Task.created_by))
        .correlate(Case)
        .scalar_subquery()
    )


def handoff_completed() -> Any:
    return (
        select(func.min(Handoff.completed_at))
        .where(col(Handoff.case_id) == Case.id, col(Handoff.status) == HandoffStatus.completed.value)
        .correlate(Case)
        .scalar_subquery()
    )


def city_figures(
    session: Session, sources: list[Source], period: Period, grouping: Grouping, *, figures_max_age: float = 0
) -> CityFigures:
    """Every figure of ``sources`` (the caller's hospitals, maybe narrowed to one) over ``period``.

    Over a city (100,000 cases) this is seconds on SQLite: with ``figures_max_age`` (the setting
    ``list_figures_max_age_seconds``) readers asking the same question within that many seconds share
    one answer (``worklists.figures.kept``). Raises ``InvalidPeriod`` for a period that ends before it
    starts, is longer than a year or lies outside the years the API takes."""
    hospitals = [(s.id, s.name, s.timezone) for s in sources if s.id is not None]  # plain data, not the rows
    checked = period.check()
    key = ("city", str(session.get_bind().engine.url), tuple(sorted(sid for sid, _, _ in hospitals)), checked, grouping)
    return kept(key, figures_max_age, session, lambda s: _Figures(s, hospitals, checked, grouping).compute())


CSV_HEADER = ["figure", "group", "detail", "measure", "value"]


def figure_rows(figures: CityFigures) -> list[tuple[str, str, str, str, object]]:
    """Every number of ``figures`` as a long table (figure, group, detail, measure, value): a
    spreadsheet pivots it any way; the overall rows have the group ``all``."""
    rows: list[tuple[str, str, str, str, object]] = []

    def group(value: str | None, overall: bool = False) -> str:
        return "all" if overall else value or ""

    for f in figures.durations:
        for d, overall in [*((d, False) for d in f.groups), (f.total, True)]:
            g = group(d.group, overall)
            rows += [
                (f.name, g, "", "cohort", d.cohort),
                (f.name, g, "", "count", d.count),
                (f.name, g, "", f"median_{f.unit}", "" if d.median is None else d.median),
                (f.name, g, "", f"p90_{f.unit}", "" if d.p90 is None else d.p90),
            ]
    for b, overall in [*((b, False) for b in figures.bed_days), (figures.bed_days_total, True)]:
        rows += [
            ("bed_days_lost", group(b.group, overall), "", "discharged", b.discharged),
            ("bed_days_lost", group(b.group, overall), "", "days", b.bed_days_lost),
        ]
    for r in figures.referrals:
        rows.append(("referrals", group(r.group), f"{r.category}/{r.outcome}", "count", r.count))
    for resp in figures.responses:
        for measure, value in (
            ("requested", resp.requested),
            ("answered", resp.answered),
            ("median_hours", resp.median_hours),
            ("p90_hours", resp.p90_hours),
        ):
            rows.append(("response_time", resp.organisation, "", measure, "" if value is None else value))
    for s in figures.delivered:
        rows += [
            ("services_delivered", group(s.group), s.kind, "count", s.count),
            ("services_delivered", group(s.group), s.kind, "people", s.people),
        ]
    for p in figures.people:
        rows.append(("people_served", group(p.group), "", "people", p.people))
    rows.append(("people_served", "all", "", "people", figures.people_total))
    return rows
