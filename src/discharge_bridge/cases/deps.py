"""Fetch-or-404 dependencies: a route that takes ``CurrentCase`` never sees a missing or foreign case."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from discharge_bridge.cases.errors import CaseNotFound, NotFound
from discharge_bridge.cases.http import SourceScope
from discharge_bridge.cases.models import Barrier, Case
from discharge_bridge.cases.repository import get_case, get_child
from discharge_bridge.deps import SessionDep


def get_case_or_404(case_id: Annotated[int, Path(ge=1)], session: SessionDep, scope: SourceScope) -> Case:
    case = get_case(session, case_id, source_ids=scope)
    if case is None:
        raise CaseNotFound(case_id)
    return case


CurrentCase = Annotated[Case, Depends(get_case_or_404)]


def get_barrier_or_404(barrier_id: Annotated[int, Path(ge=1)], session: SessionDep, scope: SourceScope) -> Barrier:
    barrier = get_child(session, Barrier, barrier_id, source_ids=scope)
    if barrier is None:
        raise NotFound("barrier", barrier_id)
    return barrier


CurrentBarrier = Annotated[Barrier, Depends(get_barrier_or_404)]


def case_of(session: SessionDep, case_id: int) -> Case:
    """The case of a child row already fetched in scope."""
    case = session.get(Case, case_id)
    assert case is not None  # the foreign key guarantees it
    return case
