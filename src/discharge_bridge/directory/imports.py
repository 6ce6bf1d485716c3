"""Upsert of a whole directory read from a file (CSV or a FHIR Bundle), by ``code``, all or nothing.

The readers (``csv_io``, ``fhir_io``) validate every row first and raise ``ImportRefused`` with every
problem; only a clean file reaches ``upsert``, which writes in the caller's transaction. Each created
or changed row is audited like an edit by hand, plus one ``directory.import`` entry with the counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlmodel import Session

from discharge_bridge.audit import Target, record_admin_action
from discharge_bridge.directory.errors import ImportRefused
from discharge_bridge.directory.schemas import (
    OrganisationIn,
    OrganisationPatch,
    ServiceIn,
    ServicePatch,
    ServiceRecord,
)
from discharge_bridge.directory.service import (
    create_organisation,
    create_service,
    organisation_by_code,
    service_by_code,
    update_organisation,
    update_service,
)

UPLOAD_MAX = 5 * 1024 * 1024  # bytes of a file to import: a city's directory is a few hundred rows


def _state(row: Any) -> dict[str, Any]:
    return {field: getattr(row, field) for field in type(row).model_fields if field != "updated_at"}


@dataclass
class ImportResult:
    organisations_created: int = 0
    organisations_updated: int = 0
    services_created: int = 0
    services_updated: int = 0
    unchanged: int = 0


def check_organisations(
    rows: Sequence[tuple[int, OrganisationIn]], problems: list[tuple[int, str, str]]
) -> dict[str, OrganisationIn]:
    """One organisation per code: a later row that says otherwise about it is a problem of that row."""
    found: dict[str, OrganisationIn] = {}
    for line, organisation in rows:
        seen = found.get(organisation.code)
        if seen is None:
            found[organisation.code] = organisation
            continue
        for field in OrganisationIn.model_fields:
            if getattr(seen, field) != getattr(organisation, field):
                problems.append((line, f"organisation_{field}", "differs from an earlier row of the same organisation"))
    return found


def check_services(rows: Sequence[tuple[int, ServiceRecord]], problems: list[tuple[int, str, str]]) -> None:
    seen: set[str] = set()
    for line, service in rows:
        if service.code in seen:
            problems.append((line, "code", f"service {service.code} appears twice in the file"))
        seen.add(service.code)


def upsert(
    session: Session,
    organisations: Sequence[OrganisationIn],
    services: Sequence[ServiceRecord],
    *,
    actor: str,
    what: str,
) -> ImportResult:
    """Create or change every organisation and service by code; rows not in the file are left as they are."""
    result = ImportResult()
    ids: dict[str, int] = {}
    for organisation in organisations:
        stored = organisation_by_code(session, organisation.code)
        if stored is None:
            stored = create_organisation(session, organisation, actor=actor)
            result.organisations_created += 1
        else:
            before = _state(stored)
            update_organisation(
                session, stored, OrganisationPatch(**organisation.model_dump(exclude={"code"})), actor=actor
            )
            changed = _state(stored) != before
            result.organisations_updated += changed
            result.unchanged += not changed
        assert stored.id is not None
        ids[organisation.code] = stored.id
    problems: list[tuple[int, str, str]] = []
    for index, service in enumerate(services):
        organisation_id = ids.get(service.organisation_code)
        if organisation_id is None:
            stored_org = organisation_by_code(session, service.organisation_code)
            if stored_org is None or stored_org.id is None:
                problems.append((index, "organisation_code", f"no organisation {service.organisation_code}"))
                continue
            organisation_id = ids[service.organisation_code] = stored_org.id
        values = service.model_dump(exclude={"organisation_code"})
        stored_service = service_by_code(session, service.code)
        if stored_service is None:
            create_service(session, ServiceIn(**values, organisation_id=organisation_id), actor=actor)
            result.services_created += 1
        else:
            before = _state(stored_service)
            patch = ServicePatch(**{k: v for k, v in values.items() if k != "code"})
            update_service(session, stored_service, patch, actor=actor)
            if stored_service.organisation_id != organisation_id:  # moved to another organisation
                moved = {"organisation_id": [stored_service.organisation_id, organisation_id]}
                stored_service.organisation_id = organisation_id
                session.add(stored_service)
                session.flush()
                record_admin_action(session, actor, "directory.service_edit", Target("service", service.code), moved)
            changed = _state(stored_service) != before
            result.services_updated += changed
            result.unchanged += not changed
    if problems:
        raise ImportRefused(problems)
    record_admin_action(session, actor, "directory.import", Target("directory", what), asdict(result))
    return result
