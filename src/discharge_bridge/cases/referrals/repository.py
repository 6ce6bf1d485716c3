"""Reads of referrals, scoped to the hospitals the caller may see."""

from __future__ import annotations

from sqlmodel import Session, col, select

from discharge_bridge.cases.referrals.models import Referral
from discharge_bridge.cases.repository import get_child


def list_referrals(session: Session, case_id: int) -> list[Referral]:
    query = select(Referral).where(Referral.case_id == case_id).order_by(col(Referral.requested_at), col(Referral.id))
    return list(session.exec(query))


def get_referral(session: Session, referral_id: int, *, source_ids: list[int] | None) -> Referral | None:
    """The referral if its case is in scope (None = every hospital)."""
    return get_child(session, Referral, referral_id, source_ids=source_ids)
