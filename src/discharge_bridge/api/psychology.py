"""The psychologist's list: open cases of their hospitals with a live referral to a psychologist.

Each row shows the minimum (name, age, sex, ward, the referral's reason and needs); the list is
written to the access log. A psychologist opens such a case through the services routes
(``/api/v1/cases/{case_id}/services``), which answer 404 for any other case (``deps.visible_case``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from discharge_bridge.cases.referrals.psychology import psychology_cases
from discharge_bridge.db import utcnow
from discharge_bridge.deps import CurrentPrincipal, SessionDep, log_view, require
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Id, PageSize

router = APIRouter(
    prefix="/api/v1/psychology", tags=["psychology"], dependencies=[Depends(require(Permission.psychology))]
)
ROUTE = "api.psychology.cases"


class PsychologyCaseOut(BaseModel):
    case_id: int
    referral_id: int
    referral_status: str
    name: str | None
    age: int | None
    sex: str | None
    ward: str | None
    reason: str | None
    needs: list[str]
    requested_at: datetime


class PsychologyPage(BaseModel):
    items: list[PsychologyCaseOut]
    next_after: int | None = Field(description="Pass as `after` for the next page (a referral id); null at the end.")


@router.get("/cases", response_model=PsychologyPage)
def psychology_index(
    session: SessionDep,
    principal: CurrentPrincipal,
    after: Annotated[Id | None, Query(description="The `next_after` of the previous page.")] = None,
    limit: Annotated[PageSize, Query(le=500)] = 100,
) -> PsychologyPage:
    """One row per live referral to a psychologist of an open case in the caller's hospitals."""
    rows = psychology_cases(session, source_ids=principal.scope, today=utcnow().date(), after=after, limit=limit)
    log_view(session, principal, ROUTE, [(r.source_id, r.patient_fhir_id) for r in rows])
    items = [
        PsychologyCaseOut(
            case_id=r.case_id,
            referral_id=r.referral_id,
            referral_status=r.referral_status,
            name=r.person.name,
            age=r.person.age,
            sex=r.person.sex,
            ward=r.person.ward,
            reason=r.reason,
            needs=r.needs,
            requested_at=r.requested_at,
        )
        for r in rows
    ]
    return PsychologyPage(items=items, next_after=rows[-1].referral_id if len(rows) == limit else None)
