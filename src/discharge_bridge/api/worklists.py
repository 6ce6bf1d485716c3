"""GET /api/v1/worklist."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query

from discharge_bridge.deps import SessionDep, SettingsDep, SourceScope, require_by_method
from discharge_bridge.risk import RuleSetError, loading
from discharge_bridge.sources.service import SourceNotFound, narrow_scope
from discharge_bridge.users.roles import Permission
from discharge_bridge.worklists.schemas import WorklistPage
from discharge_bridge.worklists.service import worklist

router = APIRouter(
    prefix="/api/v1",
    tags=["worklist"],
    dependencies=[Depends(require_by_method(Permission.read_cases, Permission.coordinate))],
)


@router.get("/worklist", response_model=WorklistPage)
def get_worklist(
    session: SessionDep,
    settings: SettingsDep,
    scope: SourceScope,
    source: Annotated[str | None, Query(description="Only this source (hospital).")] = None,
    min_priority: Annotated[Literal["high", "medium", "low"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> WorklistPage:
    """Current flagged admissions, highest priority first, each with the reasons and their evidence."""
    try:
        rules = loading.rule_set(settings.mappings_dir)
    except RuleSetError as exc:
        raise HTTPException(503, f"the rule set cannot be loaded: {exc}") from None
    try:
        source_ids = narrow_scope(session, source, scope)
    except SourceNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    return worklist(
        session,
        rules_version=rules.version,
        source_ids=source_ids,
        min_priority=min_priority,
        limit=limit,
        offset=offset,
    )
