"""Barriers to discharge: list and add per case, change or end one."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from discharge_bridge.cases.barriers import add_barrier, update_barrier
from discharge_bridge.cases.repository import list_barriers
from discharge_bridge.cases.schemas import BarrierIn, BarrierOut, BarrierPatch
from discharge_bridge.db import utcnow
from discharge_bridge.deps import (
    Actor,
    CurrentBarrier,
    CurrentCase,
    IfMatch,
    SessionDep,
    case_of,
    expected_version,
    require_by_method,
    set_etag,
)
from discharge_bridge.users.roles import Permission
from discharge_bridge.worklists.case_views import barrier_view

# Bed managers record delays too, so barriers have their own write permission.
router = APIRouter(
    prefix="/api/v1",
    tags=["barriers"],
    dependencies=[Depends(require_by_method(Permission.read_cases, Permission.edit_barriers))],
)


@router.get("/cases/{case_id}/barriers", response_model=list[BarrierOut])
def barriers_index(case: CurrentCase, session: SessionDep) -> list[BarrierOut]:
    """Every barrier of the case, oldest first, with the delayed days each has cost."""
    assert case.id is not None
    now = utcnow()
    return [barrier_view(b, now) for b in list_barriers(session, case.id)]


@router.post("/cases/{case_id}/barriers", response_model=BarrierOut, status_code=201)
def barriers_add(
    case: CurrentCase, body: BarrierIn, session: SessionDep, response: Response, actor: Actor
) -> BarrierOut:
    barrier = add_barrier(
        session, case, actor=actor, code=body.code, owner=body.owner, note=body.note, started_at=body.started_at
    )
    set_etag(response, barrier.version)
    return barrier_view(barrier, utcnow())


@router.get("/barriers/{barrier_id}", response_model=BarrierOut)
def barrier_get(barrier: CurrentBarrier, response: Response) -> BarrierOut:
    set_etag(response, barrier.version)
    return barrier_view(barrier, utcnow())


@router.patch("/barriers/{barrier_id}", response_model=BarrierOut)
def barrier_patch(
    barrier: CurrentBarrier,
    body: BarrierPatch,
    session: SessionDep,
    response: Response,
    actor: Actor,
    if_match: IfMatch,
) -> BarrierOut:
    """Change owner / note / start, or end the barrier with ``ended_at``. If-Match optional."""
    expected = expected_version("barrier", if_match, body.version, required=False)
    values = {f: getattr(body, f) for f in body.model_fields_set - {"version"}}
    update_barrier(
        session, case_of(session, barrier.case_id), barrier, actor=actor, expected_version=expected, **values
    )
    session.flush()
    set_etag(response, barrier.version)
    return barrier_view(barrier, utcnow())
