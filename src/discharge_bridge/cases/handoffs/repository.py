"""Reads of handoffs (scoping comes from the case, already fetched in scope)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from discharge_bridge.cases.handoffs.models import Handoff


def list_handoffs(session: Session, case_id: int) -> list[Handoff]:
    query = select(Handoff).where(Handoff.case_id == case_id).order_by(col(Handoff.proposed_at), col(Handoff.id))
    return list(session.exec(query))
