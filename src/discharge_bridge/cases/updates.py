"""Changing a case from its header: assign, keep, confirm the same person, set readiness dates, close,
cancel or reopen. The API's PATCH and each of the case page's header forms make the same call.

Only the fields the caller sends are in ``values``; they are applied in one order, whoever asks:
a reopen first (so the other changes land on an open case), a close or cancel last (so they land
before the case becomes read-only).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from discharge_bridge.cases.assignment import check_coordinator
from discharge_bridge.cases.errors import InvalidInput, check_version, ensure_open
from discharge_bridge.cases.models import Case, CaseStatus
from discharge_bridge.cases.readiness import DATES, set_dates_by_person
from discharge_bridge.cases.service import assign, change_status, confirm_same_person, keep_case

FIELDS = frozenset({"coordinator", "status", "outcome", "keep_reason", "same_person", *DATES})
ENDINGS = (CaseStatus.closed, CaseStatus.cancelled)


def update_case(
    session: Session,
    case: Case,
    values: dict[str, Any],
    *,
    actor: str,
    expected_version: int | None = None,
) -> bool:
    """Apply the sent fields; return whether anything changed.

    ``outcome`` goes only with a close or cancel. Everything but the status needs an open case
    (CaseClosed otherwise). A new coordinator must be an enabled coordinator of the case's hospital
    (``assignment.check_coordinator``, InvalidInput otherwise), whoever asks; the one the case has
    already is not checked again.
    """
    unknown = set(values) - FIELDS
    if unknown:
        raise TypeError(f"not a case field: {sorted(unknown)}")
    check_version("case", case.version, expected_version)
    status = values.get("status")
    if "outcome" in values and status not in ENDINGS:
        raise InvalidInput(("body", "outcome"), "outcome goes with status closed or cancelled")
    changed = False
    if status == CaseStatus.open:
        changed |= change_status(session, case, CaseStatus.open, actor=actor)
    if set(values) - {"status", "outcome"}:
        ensure_open(case)
    if "coordinator" in values:
        if values["coordinator"] != case.coordinator:
            check_coordinator(session, case, values["coordinator"])
        changed |= assign(session, case, values["coordinator"], actor=actor)
    if values.get("keep_reason") is not None:
        keep_case(session, case, actor=actor, reason=values["keep_reason"])
        changed = True
    if values.get("same_person") is not None:
        confirm_same_person(session, case, values["same_person"], actor=actor)
        changed = True
    dates: dict[str, datetime | None] = {f: values[f] for f in DATES if f in values}
    if dates:
        changed |= set_dates_by_person(session, case, dates, actor=actor)
    if status in ENDINGS:
        changed |= change_status(session, case, status, outcome=values.get("outcome"), actor=actor)
    return changed
