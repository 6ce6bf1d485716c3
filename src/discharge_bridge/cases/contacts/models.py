"""Tables of a case's contacts: the people a coordinator adds by hand, and the log of every call,
visit or message to anyone the case knows (from the EHR or added).

Contacts from the EHR (RelatedPerson, Patient.contact) are not copied here: they are read from the
stored FHIR each time, so a correction in the EHR shows at once. A log entry keeps the contact's
name and relationship as they were when it was written, so the log still reads right after the
EHR changes or drops the person.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from discharge_bridge.db import UTCDateTime, utcnow


class ContactKind(StrEnum):
    """How the coordinator reached out."""

    call = "call"
    visit = "visit"
    message = "message"


class ContactOutcome(StrEnum):
    reached = "reached"  # spoke to the person
    no_answer = "no_answer"
    wrong_number = "wrong_number"  # the number is not theirs (or not in service)
    refused = "refused"  # reached, and they will not take part in the patient's care
    agreed_to_care = "agreed_to_care"  # they will take the patient home or arrange care
    will_visit = "will_visit"  # they will come to the ward
    other = "other"


_contact_version = Column("version", Integer, nullable=False)


class CaseContact(SQLModel, table=True):
    """A relative, guardian or other person a coordinator added to a case by hand."""

    __tablename__ = "case_contact"
    __table_args__ = (Index("ix_case_contact_case", "case_id", "id"),)
    __mapper_args__ = {"version_id_col": _contact_version}

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="coordination_case.id", ondelete="CASCADE")
    name: str = Field(max_length=200)
    relationship: str = Field(sa_type=String(16))  # a contacts.relationships.HandRelationship code
    phones: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    address: str | None = Field(default=None, sa_column=Column(Text))
    note: str | None = Field(default=None, sa_column=Column(Text))
    added_by: str = Field(max_length=200)
    added_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_by: str = Field(max_length=200)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = Field(default=1, sa_column=_contact_version)


class ContactLogEntry(SQLModel, table=True):
    """One attempt to reach a contact of a case (append-only: a wrong entry is corrected by another)."""

    __tablename__ = "contact_log_entry"
    __table_args__ = (Index("ix_contact_log_entry_case", "case_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="coordination_case.id", ondelete="CASCADE")
    # Who was contacted: "RelatedPerson/<id>", "Patient/<id>/contact/<n>" (EHR) or "added/<id>" (case_contact).
    contact_ref: str = Field(max_length=160)
    contact_name: str = Field(max_length=200)  # as it was when the entry was written
    relationship: str = Field(default="", max_length=200)  # display text, as it was
    kind: ContactKind = Field(sa_type=String(16))
    outcome: ContactOutcome = Field(sa_type=String(16))
    at: datetime = Field(sa_type=UTCDateTime)  # when the call or visit took place
    actor: str = Field(max_length=200)
    note: str | None = Field(default=None, sa_column=Column(Text))
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
