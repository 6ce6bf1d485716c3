"""Rows of the handoff network for the portal, services-delivered and psychology tests: a directory
service of a new (or named) organisation, a consent, a referral to it."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from discharge_bridge.cases.consent.service import record_consent
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.referrals.models import Referral
from discharge_bridge.cases.referrals.service import create_referral
from discharge_bridge.directory.models import DirectoryService, Organisation, ServiceCategory


def directory_service(
    session: Session, code: str, category: ServiceCategory, *, organisation: str | None = None, **fields: Any
) -> DirectoryService:
    """A service ``code`` of the organisation ``organisation`` (default ``org-<code>``), made if missing."""
    org_code = organisation or f"org-{code}"
    org = session.exec(select(Organisation).where(Organisation.code == org_code)).first()
    if org is None:
        org = Organisation(code=org_code, name=f"Organisation {org_code}", kind="city", phone="+7 495 000-00-00")
        session.add(org)
        session.flush()
    assert org.id is not None
    fields.setdefault("documents", [{"code": "passport", "label": "Passport"}])
    service = DirectoryService(code=code, organisation_id=org.id, name=f"Service {code}", category=category, **fields)
    session.add(service)
    session.flush()
    return service


def consent_for(
    session: Session, case: Case, *, organisation_ids: list[int] | None = None, categories: list[str] | None = None
) -> int:
    consent = record_consent(
        session,
        case,
        {"method": "signed_form", "organisation_ids": organisation_ids or [], "categories": categories or []},
        actor="anna",
    )
    assert consent.id is not None
    return consent.id


def refer(
    session: Session, case: Case, service: DirectoryService, *, consent: bool = True, reason: str = "needs help"
) -> Referral:
    """A referral of ``case`` to ``service``, with a consent naming its organisation first when asked."""
    if consent:
        consent_for(session, case, organisation_ids=[service.organisation_id])
    assert service.id is not None
    return create_referral(session, case, service_id=service.id, needs=["social"], reason=reason, actor="anna")
