"""Directory rows for the referral and consent tests: an organisation and one service of it."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from discharge_bridge.directory.models import DirectoryService, Organisation, ServiceCategory


def make_service(
    session: Session,
    code: str = "home-care-north",
    category: ServiceCategory = ServiceCategory.home_care,
    *,
    organisation_code: str | None = None,
    documents: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> DirectoryService:
    """A service of a new organisation ``org-<code>`` (or an existing one by ``organisation_code``)."""
    org_code = organisation_code or f"org-{code}"
    organisation = session.exec(select(Organisation).where(Organisation.code == org_code)).first()
    if organisation is None:
        organisation = Organisation(code=org_code, name=f"Organisation {code}", kind="city")
        session.add(organisation)
        session.flush()
    assert organisation.id is not None
    service = DirectoryService(
        code=code,
        organisation_id=organisation.id,
        name=f"Service {code}",
        category=category,
        documents=[{"code": "passport", "label": "Passport"}, {"code": "snils", "label": "SNILS"}]
        if documents is None
        else documents,
        **fields,
    )
    session.add(service)
    session.flush()
    return service
