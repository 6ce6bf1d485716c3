"""Directory rows for tests: an organisation and its services, through the service functions."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from discharge_bridge.directory.models import DirectoryService, Organisation
from discharge_bridge.directory.schemas import OrganisationIn, ServiceIn
from discharge_bridge.directory.service import create_organisation, create_service


def make_organisation(session: Session, code: str = "csso-north", **fields: Any) -> Organisation:
    values = {"code": code, "name": f"Organisation {code}", **fields}
    return create_organisation(session, OrganisationIn(**values), actor="tests")


def make_service(session: Session, organisation: Organisation, code: str, **fields: Any) -> DirectoryService:
    assert organisation.id is not None
    values = {"code": code, "organisation_id": organisation.id, "name": f"Service {code}", "category": "home_care"}
    return create_service(session, ServiceIn(**{**values, **fields}), actor="tests")
