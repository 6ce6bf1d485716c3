"""Discharge detection: the EHR says the stay ended; the case records when and where to, and closes
once its handoff is complete (or when the coordinator closes it)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlmodel import Session, select

from discharge_bridge.cases.barriers import end_open_barriers
from discharge_bridge.cases.events import EventKind, changes, record_event
from discharge_bridge.cases.handoffs.models import Handoff, HandoffStatus
from discharge_bridge.cases.mapping_files import load_yaml_model
from discharge_bridge.cases.models import Case, CaseOutcome, CaseStatus
from discharge_bridge.cases.service import change_status
from discharge_bridge.config import get_settings
from discharge_bridge.db import utcnow

DISPOSITIONS_FILE = "discharge_dispositions.yaml"
Category = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class Disposition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    destination: Category
    label: str


class DispositionMap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default: Category = "other"
    codes: dict[str, Disposition]

    def destination(self, code: str) -> str:
        found = self.codes.get(code)
        return found.destination if found else self.default


def load_dispositions(mappings_dir: Path | None = None) -> DispositionMap:
    if mappings_dir is None:
        mappings_dir = get_settings().mappings_dir
    return load_yaml_model(mappings_dir / DISPOSITIONS_FILE, DispositionMap)


def has_completed_handoff(session: Session, case: Case) -> bool:
    query = select(Handoff.id).where(Handoff.case_id == case.id, Handoff.status == HandoffStatus.completed).limit(1)
    return session.exec(query).first() is not None


def close_if_done(session: Session, case: Case, *, actor: str) -> bool:
    """Close an open case as "discharged" once the patient has left and a handoff is completed."""
    if case.status != CaseStatus.open or case.actual_discharge_at is None or not has_completed_handoff(session, case):
        return False
    return change_status(session, case, CaseStatus.closed, outcome=CaseOutcome.discharged, actor=actor)


def record_discharge(
    session: Session,
    case: Case,
    *,
    discharged_at: datetime,
    disposition_code: str | None,
    actor: str = "ehr",
    mappings_dir: Path | None = None,
    dispositions: DispositionMap | None = None,
) -> bool:
    """Store the actual discharge time, the EHR's disposition code and its mapped destination.

    Idempotent: the same values again change nothing and log nothing (returns False). A corrected
    time or code from the EHR is taken and logged. The first discharge ends the open barriers at
    the discharge time; the case closes when a handoff is completed, else stays open (discharged)
    for the coordinator to close.
    """
    if disposition_code is None:
        destination = None
    else:
        mapping = dispositions or load_dispositions(mappings_dir)
        destination = mapping.destination(disposition_code)
    first = case.actual_discharge_at is None
    changed = changes(
        case,
        {
            "actual_discharge_at": discharged_at,
            "discharge_disposition": disposition_code,
            "discharge_destination": destination,
        },
    )
    if not changed:
        return False
    case.updated_at = utcnow()
    session.add(case)
    data: dict[str, object] = dict(changed)
    if first:
        data["barriers_ended"] = end_open_barriers(session, case, discharged_at)
    record_event(session, case, actor=actor, kind=EventKind.discharged, data=data)
    close_if_done(session, case, actor=actor)
    return True
