"""Stored snapshots of FHIR resources, dead letters and conformance problems.

Each snapshot keeps the fields the service queries plus the raw resource for audit and for the
risk rules. Rows are keyed by (source, type, FHIR id) and only ever move forward in version.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from discharge_bridge.db import UTCDateTime, utcnow


class PatientSnapshot(SQLModel, table=True):
    __tablename__ = "patient_snapshot"
    __table_args__ = (UniqueConstraint("source_id", "fhir_id"),)

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="source.id", ondelete="CASCADE")
    fhir_id: str = Field(max_length=64)
    version_id: str | None = Field(default=None, max_length=64)
    last_updated: datetime | None = Field(default=None, sa_type=UTCDateTime)
    active: bool = True
    birth_date: str | None = Field(default=None, max_length=10)  # may be partial: 1938, 1938-05
    gender: str | None = Field(default=None, max_length=16)
    deceased: bool = False
    # Who the person is, for the pages (fhir.fields readers; PHI: never logged).
    name: str | None = Field(default=None, max_length=200)
    identifiers: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    phone: str | None = Field(default=None, max_length=64)
    address: str | None = Field(default=None, max_length=300)
    search_text: str | None = Field(default=None, max_length=600)  # fields.search_key of name + identifiers
    raw: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    ingested_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class EncounterSnapshot(SQLModel, table=True):
    __tablename__ = "encounter_snapshot"
    __table_args__ = (
        UniqueConstraint("source_id", "fhir_id"),
        Index("ix_encounter_snapshot_patient", "source_id", "patient_fhir_id"),
        Index("ix_encounter_snapshot_status", "source_id", "status"),
        Index("ix_encounter_snapshot_start", "period_start"),  # the worklist by admission (0014)
        Index("ix_encounter_snapshot_class", text("upper(class_code)")),  # the board's stay filter's statistics (0018)
    )

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="source.id", ondelete="CASCADE")
    fhir_id: str = Field(max_length=64)
    version_id: str | None = Field(default=None, max_length=64)
    last_updated: datetime | None = Field(default=None, sa_type=UTCDateTime)
    patient_fhir_id: str = Field(max_length=64)
    status: str = Field(max_length=32)
    class_code: str | None = Field(default=None, max_length=32)
    period_start: datetime | None = Field(default=None, sa_type=UTCDateTime)
    period_end: datetime | None = Field(default=None, sa_type=UTCDateTime)
    admit_source: str | None = Field(default=None, max_length=64)
    discharge_disposition: str | None = Field(default=None, max_length=64)
    ward: str | None = Field(default=None, max_length=200)
    bed: str | None = Field(default=None, max_length=200)
    planned_end: datetime | None = Field(default=None, sa_type=UTCDateTime)
    raw: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    ingested_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ClinicalSnapshot(SQLModel, table=True):
    """Condition, Observation and RelatedPerson: the facts behind a patient's risk."""

    __tablename__ = "clinical_snapshot"
    __table_args__ = (
        UniqueConstraint("source_id", "resource_type", "fhir_id"),
        Index("ix_clinical_snapshot_patient", "source_id", "patient_fhir_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="source.id", ondelete="CASCADE")
    resource_type: str = Field(max_length=32)
    fhir_id: str = Field(max_length=64)
    version_id: str | None = Field(default=None, max_length=64)
    last_updated: datetime | None = Field(default=None, sa_type=UTCDateTime)
    patient_fhir_id: str = Field(max_length=64)
    status: str | None = Field(default=None, max_length=32)
    raw: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    ingested_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DeadLetter(SQLModel, table=True):
    """A resource the service could not use, kept verbatim with the reason until replayed."""

    __tablename__ = "dead_letter"
    __table_args__ = (
        UniqueConstraint("source_id", "fingerprint"),
        Index("ix_dead_letter_list", "source_id", "last_seen", "id"),  # IT's list: a source's newest first
    )

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="source.id", index=True, ondelete="CASCADE")
    resource_type: str | None = Field(default=None, max_length=64)
    fhir_id: str | None = Field(default=None, max_length=64)
    fingerprint: str = Field(max_length=64)  # sha256 of the payload: the same bad payload counts, not repeats
    payload: str = Field(sa_column=Column(Text, nullable=False))
    error: str = Field(sa_column=Column(Text, nullable=False))
    count: int = 1
    first_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ConformanceIssue(SQLModel, table=True):
    """A way a source's resources depart from FHIR R4, aggregated for hospital IT (no patient data)."""

    __tablename__ = "conformance_issue"
    __table_args__ = (UniqueConstraint("source_id", "resource_type", "path", "problem"),)

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="source.id", index=True, ondelete="CASCADE")
    resource_type: str = Field(max_length=64)
    path: str = Field(max_length=300)
    problem: str = Field(max_length=300)
    count: int = 1
    example_id: str | None = Field(default=None, max_length=64)
    first_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AssessmentQueueEntry(SQLModel, table=True):
    """A patient whose stored data changed and who must be (re)assessed: the ingest outbox.

    Written in the same transaction as the rows that changed (and the cursor that covers them), so a
    process killed after storing a page and before scoring it loses nothing: the assessment stage
    (assessment/) drains the queue and deletes each entry in the transaction that wrote its results.
    ``generation`` grows each time the patient is queued again, so a drain that read generation 3
    never deletes the entry a later page raised to 4.
    """

    __tablename__ = "assessment_queue"
    __table_args__ = (UniqueConstraint("source_id", "patient_fhir_id"),)

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="source.id", ondelete="CASCADE")
    patient_fhir_id: str = Field(max_length=64)
    generation: int = 1
    enqueued_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    attempts: int = 0  # failed assessments of this entry; past the limit it waits for a person
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class PatientAlias(SQLModel, table=True):
    """Two Patient records of one person (R4 ``Patient.link``), as the EHR said it.

    ``replaced``: the ``alias`` record was merged into ``survivor`` (``replaced-by`` on the alias, or
    ``replaces`` on the survivor); the alias is never shown as the person again. ``seealso``: the EHR
    only says they may be the same person; a coordinator confirms it (``confirmed_at``), and from then
    on the pair is one person, ``survivor`` the record their case is on.
    """

    __tablename__ = "patient_alias"
    __table_args__ = (
        UniqueConstraint("source_id", "alias_id", "survivor_id", "kind"),
        Index("ix_patient_alias_survivor", "source_id", "survivor_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="source.id", ondelete="CASCADE")
    alias_id: str = Field(max_length=64)
    survivor_id: str = Field(max_length=64)
    kind: str = Field(max_length=16)  # replaced | seealso
    seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    confirmed_by: str | None = Field(default=None, max_length=200)


class BulkExportStatus(StrEnum):
    running = "running"  # kicked off, waiting for the manifest, or downloading
    complete = "complete"
    failed = "failed"


class BulkExport(SQLModel, table=True):
    """One `$export` backfill: enough to resume it after an interruption, and its `_since` next time."""

    __tablename__ = "bulk_export"

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="source.id", index=True, ondelete="CASCADE")
    status: BulkExportStatus = Field(default=BulkExportStatus.running, sa_type=String(16))
    group_id: str | None = Field(default=None, max_length=64)
    since: str | None = Field(default=None, max_length=40)
    status_url: str | None = Field(default=None, sa_column=Column(Text))
    manifest: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    transaction_time: str | None = Field(default=None, max_length=40)
    # Per download step ("inpatient:<url>", ...): lines committed and whether the step is done.
    files_done: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    resources: int = 0
    dead_letters: int = 0
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    error: str | None = Field(default=None, sa_column=Column(Text))
