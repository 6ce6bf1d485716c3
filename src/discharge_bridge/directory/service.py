"""Read and edit the service directory. Services flush, never commit; every edit writes one entry of
the audit trail of administration in the same transaction (``directory.*`` actions).

A service that a referral points to is never deleted, only made inactive (``remove_service``), so a
referral keeps naming what was asked for. The directory is small (hundreds of rows, not millions):
search filters in Python, where case-folding works for Cyrillic too (SQLite's ``lower`` is ASCII only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from discharge_bridge.audit import Target, record_admin_action
from discharge_bridge.db import utcnow
from discharge_bridge.directory.errors import InvalidDirectoryInput, OrganisationNotFound, ServiceNotFound
from discharge_bridge.directory.models import DirectoryService, Organisation, ServiceCategory
from discharge_bridge.directory.schemas import OrganisationIn, OrganisationPatch, ServiceIn, ServicePatch

# Fields that hold a value always: a PATCH may change them, never clear them.
_ORGANISATION_REQUIRED = frozenset({"name", "kind", "active"})
_SERVICE_REQUIRED = frozenset(
    {"name", "category", "area", "needs", "documents", "capacity", "response_days", "active"}
    | {"disability_required", "requires_consent"}
)


# -- reading -------------------------------------------------------------------------------------


def list_organisations(session: Session, *, active_only: bool = False) -> list[Organisation]:
    stmt = select(Organisation).order_by(col(Organisation.name), col(Organisation.id))
    if active_only:
        stmt = stmt.where(col(Organisation.active).is_(True))
    return list(session.exec(stmt))


def get_organisation(session: Session, organisation_id: int) -> Organisation:
    found = session.get(Organisation, organisation_id)
    if found is None:
        raise OrganisationNotFound(organisation_id)
    return found


def organisation_by_code(session: Session, code: str) -> Organisation | None:
    return session.exec(select(Organisation).where(Organisation.code == code)).first()


def organisations_by_id(session: Session, ids: Iterable[int]) -> dict[int, Organisation]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.exec(select(Organisation).where(col(Organisation.id).in_(wanted)))
    return {o.id: o for o in rows if o.id is not None}


def list_services(
    session: Session,
    *,
    category: ServiceCategory | str | None = None,
    active_only: bool = True,
    search: str | None = None,
    organisation_id: int | None = None,
) -> list[DirectoryService]:
    """Services by category then name; ``active_only`` also leaves out those of inactive organisations.

    ``search`` matches words of the service's or its organisation's name, description, area or what it
    pays for, ignoring case."""
    stmt = select(DirectoryService).order_by(col(DirectoryService.category), col(DirectoryService.name))
    if category is not None:
        stmt = stmt.where(DirectoryService.category == str(category))
    if organisation_id is not None:
        stmt = stmt.where(DirectoryService.organisation_id == organisation_id)
    if active_only:
        stmt = (
            stmt.join(Organisation, col(Organisation.id) == col(DirectoryService.organisation_id))
            .where(col(DirectoryService.active).is_(True))
            .where(col(Organisation.active).is_(True))
        )
    services = list(session.exec(stmt))
    words = (search or "").casefold().split()
    if not words:
        return services
    organisations = organisations_by_id(session, (s.organisation_id for s in services))
    return [s for s in services if all(w in _haystack(s, organisations.get(s.organisation_id)) for w in words)]


def _haystack(service: DirectoryService, organisation: Organisation | None) -> str:
    parts = [service.code, service.name, service.description, service.pays_for, " ".join(service.area)]
    if organisation is not None:
        parts += [organisation.name, organisation.code]
    return " ".join(p for p in parts if p).casefold()


def get_service(session: Session, service_id: int) -> DirectoryService:
    found = session.get(DirectoryService, service_id)
    if found is None:
        raise ServiceNotFound(service_id)
    return found


def service_by_code(session: Session, code: str) -> DirectoryService | None:
    return session.exec(select(DirectoryService).where(DirectoryService.code == code)).first()


def is_referred_to(session: Session, service_id: int) -> bool:
    """Whether a referral names the service. The referral table belongs to cases (a floor above), so
    it is read by name rather than through its model."""
    found = session.execute(text("SELECT 1 FROM referral WHERE service_id = :id LIMIT 1"), {"id": service_id})
    return found.first() is not None


# -- editing -------------------------------------------------------------------------------------


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    """Values as the JSON columns and the audit trail store them (documents as dicts, enums as text)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, list):
            out[key] = [v.model_dump() if hasattr(v, "model_dump") else v for v in value]
        elif hasattr(value, "model_dump"):
            out[key] = value.model_dump()
        else:
            out[key] = value
    return out


def _refuse_clearing(changes: Mapping[str, Any], required: frozenset[str]) -> None:
    for field in sorted(required & set(changes)):
        if changes[field] is None:
            raise InvalidDirectoryInput(field, f"{field} may not be empty")


def _changed(row: Any, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Apply ``changes``; return ``{field: [old, new]}`` of what really changed."""
    diff: dict[str, Any] = {}
    for field, value in changes.items():
        old = getattr(row, field)
        if old != value:
            setattr(row, field, value)
            diff[field] = [old, value]
    return diff


def create_organisation(session: Session, data: OrganisationIn, *, actor: str) -> Organisation:
    if organisation_by_code(session, data.code) is not None:
        raise InvalidDirectoryInput("code", f"an organisation with code {data.code} exists already")
    organisation = Organisation(**data.model_dump())
    session.add(organisation)
    session.flush()
    record_admin_action(
        session, actor, "directory.organisation_add", Target("organisation", data.code), data.model_dump()
    )
    return organisation


def update_organisation(
    session: Session, organisation: Organisation, changes: OrganisationPatch, *, actor: str
) -> Organisation:
    """Change the fields sent (a field sent as null is cleared, unless it must hold a value)."""
    values = _plain({f: getattr(changes, f) for f in changes.model_fields_set})
    _refuse_clearing(values, _ORGANISATION_REQUIRED)
    diff = _changed(organisation, values)
    if diff:
        organisation.updated_at = utcnow()
        session.add(organisation)
        session.flush()
        record_admin_action(
            session, actor, "directory.organisation_edit", Target("organisation", organisation.code), diff
        )
    return organisation


def create_service(session: Session, data: ServiceIn, *, actor: str) -> DirectoryService:
    if service_by_code(session, data.code) is not None:
        raise InvalidDirectoryInput("code", f"a service with code {data.code} exists already")
    if session.get(Organisation, data.organisation_id) is None:
        raise InvalidDirectoryInput("organisation_id", f"organisation {data.organisation_id} not found")
    values = _plain(dict(data))
    service = DirectoryService(**values)
    session.add(service)
    session.flush()
    record_admin_action(session, actor, "directory.service_add", Target("service", data.code), values)
    return service


def update_service(
    session: Session, service: DirectoryService, changes: ServicePatch, *, actor: str
) -> DirectoryService:
    """Change the fields sent (a field sent as null is cleared, unless it must hold a value)."""
    values = _plain({f: getattr(changes, f) for f in changes.model_fields_set})
    _refuse_clearing(values, _SERVICE_REQUIRED)
    low = values.get("min_age", service.min_age)
    high = values.get("max_age", service.max_age)
    if low is not None and high is not None and low > high:
        raise InvalidDirectoryInput("min_age" if "min_age" in values else "max_age", "min_age is above max_age")
    diff = _changed(service, values)
    if diff:
        service.updated_at = utcnow()
        session.add(service)
        session.flush()
        record_admin_action(session, actor, "directory.service_edit", Target("service", service.code), diff)
    return service


def remove_service(session: Session, service: DirectoryService, *, actor: str) -> bool:
    """Delete the service, or make it inactive when a referral names it; True when it was deleted."""
    assert service.id is not None
    if is_referred_to(session, service.id):
        if service.active:
            update_service(session, service, ServicePatch(active=False), actor=actor)
        return False
    record_admin_action(session, actor, "directory.service_remove", Target("service", service.code), {})
    session.delete(service)
    session.flush()
    return True
