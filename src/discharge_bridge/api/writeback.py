"""Hospital IT's API of write-back to the EHR: a source's outbox at a glance, and Retry."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field

from discharge_bridge.deps import CurrentPrincipal, SessionDep, SourceScope, require_by_method
from discharge_bridge.ehr.writeback.status import retry_failed, writeback_status
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.service import SourceNotFound, get_source
from discharge_bridge.users.roles import Permission
from discharge_bridge.validation import Key

router = APIRouter(
    prefix="/api/v1",
    tags=["sources"],
    dependencies=[Depends(require_by_method(Permission.manage_sources, Permission.manage_sources))],
)
SourceName = Annotated[Key, Path(description="The source's name.")]


class OutcomeIssuePublic(BaseModel):
    severity: str
    code: str
    diagnostics: str


class FailedItemPublic(BaseModel):
    id: int
    resource_type: str = Field(description="Flag, RiskAssessment or Task.")
    identifier: str = Field(description="Our identifier's value on the EHR: <kind>-<source>-<case or task id>.")
    attempts: int
    last_error: str | None
    issues: list[OutcomeIssuePublic] = Field(description="The EHR's OperationOutcome issues.")
    updated_at: datetime


class WritebackPublic(BaseModel):
    source: str
    enabled: bool
    resources: list[str]
    pending: int
    sent: int
    failed: int
    next_attempt_at: datetime | None
    failed_items: list[FailedItemPublic] = Field(description="The most recently refused items (at most 50).")


class RetryPublic(BaseModel):
    retried: int = Field(description="Refused items made pending again.")


def _source(session: SessionDep, name: str, scope: list[int] | None) -> Source:
    try:
        return get_source(session, name, source_ids=scope)
    except SourceNotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/sources/{name}/writeback", response_model=WritebackPublic)
def source_writeback(name: SourceName, session: SessionDep, scope: SourceScope) -> WritebackPublic:
    """Write-back on or off, items pending / sent / failed, and the refused ones with the EHR's reasons."""
    return WritebackPublic.model_validate(asdict(writeback_status(session, _source(session, name, scope))))


@router.post("/sources/{name}/writeback/retry", response_model=RetryPublic)
def source_writeback_retry(
    name: SourceName, session: SessionDep, scope: SourceScope, principal: CurrentPrincipal
) -> RetryPublic:
    """The refused items are sent again at the source's next pass (audited as writeback.retry)."""
    count = retry_failed(session, _source(session, name, scope), actor=principal.username)
    return RetryPublic(retried=count)
