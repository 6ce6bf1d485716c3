"""Tables of a coordination case: the case, its append-only event log, its assessment and barriers.

Every mutable row carries ``version``, SQLAlchemy's version counter: an UPDATE names the version it
read, so two writers that both passed the If-Match check still cannot overwrite each other (the
second flush fails with ``StaleDataError``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from discharge_bridge.cases.transitions import Transitions
from discharge_bridge.db import UTCDateTime, utcnow


class CaseStatus(StrEnum):
    open = "open"
    closed = "closed"
    cancelled = "cancelled"


# A closed or cancelled case can be taken up again (reopened); nothing is final.
CASE_TRANSITIONS = Transitions(
    CaseStatus,
    {
        CaseStatus.open: (CaseStatus.closed, CaseStatus.cancelled),
        CaseStatus.closed: (CaseStatus.open,),
        CaseStatus.cancelled: (CaseStatus.open,),
    },
)


class CaseOutcome(StrEnum):
    discharged = "discharged"  # left hospital; the handoff (if any) is complete
    not_needed = "not_needed"  # the bedside assessment found no coordination need
    declined = "declined"  # the patient or family declined help
    transferred = "transferred"  # moved to another hospital: a new admission, a new case there
    died = "died"
    other = "other"


class DateSource(StrEnum):
    ehr = "ehr"  # from the EHR feed through the source's mapping
    person = "person"  # typed by a coordinator or clinician: a feed never overwrites it


class Priority(StrEnum):
    high = "high"
    medium = "medium"
    low = "low"


PRIORITY_RANK: dict[str | None, int] = {"high": 3, "medium": 2, "low": 1, None: 0}


class BarrierCode(StrEnum):
    """Why a medically ready patient is still in a bed (the classic delayed-discharge categories)."""

    awaiting_assessment = "awaiting_assessment"
    awaiting_placement = "awaiting_placement"
    awaiting_care_package = "awaiting_care_package"
    awaiting_equipment = "awaiting_equipment"
    family_choice = "family_choice"
    housing = "housing"
    documents = "documents"
    guardianship = "guardianship"
    funding = "funding"
    other = "other"


# Module-level columns: SQLAlchemy's version counter must name the very Column object of the table.
_case_version = Column("version", Integer, nullable=False)
_assessment_version = Column("version", Integer, nullable=False)
_barrier_version = Column("version", Integer, nullable=False)


class Case(SQLModel, table=True):
    """One admission under coordination; unique per (source, encounter) so opening is idempotent."""

    __tablename__ = "coordination_case"
    __table_args__ = (
        UniqueConstraint("source_id", "encounter_fhir_id"),
        Index("ix_coordination_case_list", "status", "priority_rank", "opened_at"),
        Index("ix_coordination_case_source", "source_id", "status"),
        Index("ix_coordination_case_coordinator", "coordinator", "status"),
        Index("ix_coordination_case_patient", "source_id", "patient_fhir_id"),  # 0020
    )
    __mapper_args__ = {"version_id_col": _case_version}

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="source.id", ondelete="CASCADE")
    encounter_fhir_id: str = Field(max_length=64)
    patient_fhir_id: str = Field(max_length=64)
    status: CaseStatus = Field(default=CaseStatus.open, sa_type=String(16))
    outcome: CaseOutcome | None = Field(default=None, sa_type=String(16))
    priority: Priority | None = Field(default=None, sa_type=String(8))
    priority_rank: int = 0  # sorts the list in SQL: 3 high .. 0 none
    coordinator: str | None = Field(default=None, max_length=200)
    opened_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    opened_by: str = Field(default="system", max_length=200)
    opened_by_hand: bool = False
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    expected_discharge_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    expected_discharge_source: DateSource | None = Field(default=None, sa_type=String(8))
    expected_discharge_set_by: str | None = Field(default=None, max_length=200)
    medically_ready_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    medically_ready_source: DateSource | None = Field(default=None, sa_type=String(8))
    medically_ready_set_by: str | None = Field(default=None, max_length=200)
    # Set when every reason behind the flags was withdrawn in the EHR (a corrected Condition...): the
    # coordinator closes the case or keeps it with a reason; never set on a case opened by hand.
    flag_withdrawn_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    actual_discharge_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    discharge_disposition: str | None = Field(default=None, max_length=64)  # the EHR's code, verbatim
    discharge_destination: str | None = Field(default=None, max_length=64)  # mapped category
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = Field(default=1, sa_column=_case_version)


class CaseEvent(SQLModel, table=True):
    """One entry of a case's append-only log: who did what when, with old -> new values in ``data``."""

    __tablename__ = "case_event"
    __table_args__ = (Index("ix_case_event_case", "case_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="coordination_case.id", ondelete="CASCADE")
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    actor: str = Field(max_length=200)
    kind: str = Field(max_length=32)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Assessment(SQLModel, table=True):
    """The needs assessment of a case (at most one): five domains, daily living, living situation.

    ``flag_corrections`` only grows: a bedside finding that contradicts a flag is appended, never
    replaced, so the audit shows what the EHR said and what the coordinator saw.
    """

    __tablename__ = "case_assessment"
    __mapper_args__ = {"version_id_col": _assessment_version}

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="coordination_case.id", ondelete="CASCADE", unique=True)
    domains: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    daily_living: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    living_situation: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    flag_corrections: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_by: str = Field(default="system", max_length=200)
    version: int = Field(default=1, sa_column=_assessment_version)


class Barrier(SQLModel, table=True):
    """A coded reason the discharge is delayed, open from ``started_at`` until ``ended_at``."""

    __tablename__ = "case_barrier"
    __table_args__ = (Index("ix_case_barrier_case", "case_id", "ended_at"),)
    __mapper_args__ = {"version_id_col": _barrier_version}

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="coordination_case.id", ondelete="CASCADE")
    code: BarrierCode = Field(sa_type=String(32))
    owner: str | None = Field(default=None, max_length=200)
    note: str | None = Field(default=None, sa_column=Column(Text))
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_by: str = Field(default="system", max_length=200)
    version: int = Field(default=1, sa_column=_barrier_version)
