"""The directory as a FHIR R4 Bundle (type ``collection``): Organization, HealthcareService, Location,
Endpoint, following the Gravity SDOH IG's directory shape.

- Organization: our ``code`` as an identifier, ``type`` (state / city / charity / private), telecom,
  address; an organisation with a FHIR server has an ``endpoint`` (an Endpoint resource).
- HealthcareService: identifier, ``providedBy``, ``category`` (our ServiceCategory), ``type`` (its
  name as text), ``characteristic`` (the assessment domains it answers), ``coverageArea`` (one
  Location per district served), ``eligibility`` (coded: min-age, max-age, disability, residence,
  income, note; the value in ``comment``), ``availabilityExceptions`` (the opening hours as
  published), telecom, and extensions for what R4 has no element for (documents, capacity, waiting
  days, response days, consent, what a charity pays for).

Import reads the same shape back (validated with fhir.resources R4B first) and upserts by code.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError
from sqlmodel import Session

from discharge_bridge.directory.errors import ImportRefused
from discharge_bridge.directory.imports import ImportResult, check_organisations, check_services, upsert
from discharge_bridge.directory.models import DirectoryService, Organisation
from discharge_bridge.directory.schemas import OrganisationIn, ServiceRecord
from discharge_bridge.directory.service import list_organisations, list_services

BASE = "https://discharge-bridge.example/fhir"
ORGANISATION_SYSTEM = f"{BASE}/sid/directory-organisation"
SERVICE_SYSTEM = f"{BASE}/sid/directory-service"
KIND_SYSTEM = f"{BASE}/CodeSystem/organisation-kind"
CATEGORY_SYSTEM = f"{BASE}/CodeSystem/service-category"
NEEDS_SYSTEM = f"{BASE}/CodeSystem/needs-domain"
ELIGIBILITY_SYSTEM = f"{BASE}/CodeSystem/eligibility"
EXT = f"{BASE}/StructureDefinition"
EXT_DOCUMENT = f"{EXT}/required-document"
EXT_CAPACITY = f"{EXT}/capacity"  # Gravity SDOH's yes / no / waitlist
EXT_WAITING = f"{EXT}/waiting-days"
EXT_RESPONSE = f"{EXT}/response-days"
EXT_CONSENT = f"{EXT}/requires-consent"
EXT_PAYS_FOR = f"{EXT}/pays-for"
EXT_DESCRIPTION = f"{EXT}/description"
MAX_ENTRIES = 20_000
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def _id(prefix: str, key: str) -> str:
    """A FHIR id from our code (or a district's name), which may hold characters an id may not."""
    candidate = f"{prefix}-{key}"
    if _FHIR_ID.match(candidate):
        return candidate
    return f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def _telecom(phone: str | None, email: str | None) -> list[dict[str, str]]:
    found = []
    if phone:
        found.append({"system": "phone", "value": phone})
    if email:
        found.append({"system": "email", "value": email})
    return found


def _coding(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def organisation_resources(organisation: Organisation) -> list[dict[str, Any]]:
    resource: dict[str, Any] = {
        "resourceType": "Organization",
        "id": _id("org", organisation.code),
        "identifier": [{"system": ORGANISATION_SYSTEM, "value": organisation.code}],
        "active": organisation.active,
        "type": [_coding(KIND_SYSTEM, organisation.kind)],
        "name": organisation.name,
    }
    if telecom := _telecom(organisation.phone, organisation.email):
        resource["telecom"] = telecom
    if organisation.address:
        resource["address"] = [{"text": organisation.address}]
    if not organisation.fhir_base_url:
        return [resource]
    endpoint = {
        "resourceType": "Endpoint",
        "id": _id("endpoint", organisation.code),
        "status": "active",
        "connectionType": {
            "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
            "code": "hl7-fhir-rest",
        },
        "payloadType": [{"text": "ServiceRequest and Task (Gravity SDOH referral)"}],
        "address": organisation.fhir_base_url,
    }
    resource["endpoint"] = [{"reference": f"Endpoint/{endpoint['id']}"}]
    return [resource, endpoint]


def _eligibility(service: DirectoryService) -> list[dict[str, Any]]:
    found = []
    for code, value in [
        ("min-age", service.min_age),
        ("max-age", service.max_age),
        ("disability", "true" if service.disability_required else None),
        ("residence", service.residence_required),
        ("income", service.income_limit),
        ("note", service.eligibility_note),
    ]:
        if value is not None:
            found.append({"code": _coding(ELIGIBILITY_SYSTEM, code), "comment": str(value)})
    return found


def service_resource(service: DirectoryService, organisation: Organisation) -> dict[str, Any]:
    extensions: list[dict[str, Any]] = [
        {
            "url": EXT_DOCUMENT,
            "extension": [{"url": "code", "valueCode": d["code"]}, {"url": "label", "valueString": d["label"]}],
        }
        for d in service.documents
    ]
    extensions += [
        {"url": EXT_CAPACITY, "valueCode": str(service.capacity)},
        {"url": EXT_RESPONSE, "valueInteger": service.response_days},
        {"url": EXT_CONSENT, "valueBoolean": service.requires_consent},
    ]
    if service.waiting_days is not None:
        extensions.append({"url": EXT_WAITING, "valueInteger": service.waiting_days})
    if service.pays_for:
        extensions.append({"url": EXT_PAYS_FOR, "valueString": service.pays_for})
    if service.description:
        extensions.append({"url": EXT_DESCRIPTION, "valueString": service.description})
    resource: dict[str, Any] = {
        "resourceType": "HealthcareService",
        "id": _id("svc", service.code),
        "extension": extensions,
        "identifier": [{"system": SERVICE_SYSTEM, "value": service.code}],
        "active": service.active,
        "providedBy": {"reference": f"Organization/{_id('org', organisation.code)}"},
        "category": [_coding(CATEGORY_SYSTEM, str(service.category))],
        "type": [{"text": service.name}],
        "name": service.name,
    }
    if service.needs:
        resource["characteristic"] = [_coding(NEEDS_SYSTEM, n) for n in service.needs]
    if service.area:
        resource["coverageArea"] = [{"reference": f"Location/{_id('area', a)}", "display": a} for a in service.area]
    if eligibility := _eligibility(service):
        resource["eligibility"] = eligibility
    if telecom := _telecom(service.phone, service.email):
        resource["telecom"] = telecom
    if service.hours:
        resource["availabilityExceptions"] = service.hours
    return resource


def area_resource(district: str) -> dict[str, Any]:
    return {
        "resourceType": "Location",
        "id": _id("area", district),
        "status": "active",
        "name": district,
        "mode": "kind",
        "physicalType": _coding("http://terminology.hl7.org/CodeSystem/location-physical-type", "area"),
    }


def bundle(session: Session) -> dict[str, Any]:
    """Every organisation, service (active or not) and district served, as one collection Bundle."""
    organisations = {o.id: o for o in list_organisations(session)}
    services = sorted(list_services(session, active_only=False), key=lambda s: s.code)
    resources: list[dict[str, Any]] = []
    for organisation in sorted(organisations.values(), key=lambda o: o.code):
        resources += organisation_resources(organisation)
    districts = sorted({a for s in services for a in s.area})
    resources += [area_resource(d) for d in districts]
    resources += [service_resource(s, organisations[s.organisation_id]) for s in services]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}", "resource": r} for r in resources],
    }


# -- import --------------------------------------------------------------------------------------


def _code_of(resource: dict[str, Any], system: str) -> str | None:
    for identifier in resource.get("identifier") or []:
        if identifier.get("system") == system and identifier.get("value"):
            return str(identifier["value"])
    return None


def _first_code(concepts: Any, system: str) -> str | None:
    for concept in concepts or []:
        for coding in concept.get("coding") or []:
            if coding.get("system") == system and coding.get("code"):
                return str(coding["code"])
    return None


def _telecom_of(resource: dict[str, Any], system: str) -> str | None:
    return next((t.get("value") for t in resource.get("telecom") or [] if t.get("system") == system), None)


def _ext(resource: dict[str, Any], url: str) -> Any:
    for extension in resource.get("extension") or []:
        if extension.get("url") == url:
            return next((v for k, v in extension.items() if k.startswith("value")), None)
    return None


def _organisation_values(resource: dict[str, Any], endpoints: dict[str, Any]) -> dict[str, Any]:
    address = next((a.get("text") for a in resource.get("address") or [] if a.get("text")), None)
    endpoint = next((endpoints.get(e.get("reference", "")) for e in resource.get("endpoint") or []), None)
    values = {
        "code": _code_of(resource, ORGANISATION_SYSTEM),
        "name": resource.get("name"),
        "kind": _first_code(resource.get("type"), KIND_SYSTEM),
        "phone": _telecom_of(resource, "phone"),
        "email": _telecom_of(resource, "email"),
        "address": address,
        "fhir_base_url": endpoint,
        "active": resource.get("active"),
    }
    return {k: v for k, v in values.items() if v is not None}


def _service_values(resource: dict[str, Any], organisations: dict[str, str], areas: dict[str, Any]) -> dict[str, Any]:
    eligibility = {
        _first_code([e.get("code") or {}], ELIGIBILITY_SYSTEM): e.get("comment")
        for e in resource.get("eligibility") or []
    }
    documents = []
    for extension in resource.get("extension") or []:
        if extension.get("url") == EXT_DOCUMENT:
            parts = {e.get("url"): e.get("valueCode", e.get("valueString")) for e in extension.get("extension") or []}
            documents.append({"code": parts.get("code"), "label": parts.get("label")})
    needs = [c["code"] for concept in resource.get("characteristic") or [] for c in concept.get("coding") or []]
    area = [areas.get(a.get("reference", ""), a.get("display")) for a in resource.get("coverageArea") or []]
    values = {
        "code": _code_of(resource, SERVICE_SYSTEM),
        "organisation_code": organisations.get((resource.get("providedBy") or {}).get("reference", "")),
        "name": resource.get("name"),
        "category": _first_code(resource.get("category"), CATEGORY_SYSTEM),
        "description": _ext(resource, EXT_DESCRIPTION),
        "area": area,
        "needs": needs,
        "min_age": eligibility.get("min-age"),
        "max_age": eligibility.get("max-age"),
        "disability_required": eligibility.get("disability") == "true",
        "residence_required": eligibility.get("residence"),
        "income_limit": eligibility.get("income"),
        "eligibility_note": eligibility.get("note"),
        "documents": documents,
        "pays_for": _ext(resource, EXT_PAYS_FOR),
        "capacity": _ext(resource, EXT_CAPACITY),
        "waiting_days": _ext(resource, EXT_WAITING),
        "response_days": _ext(resource, EXT_RESPONSE),
        "requires_consent": _ext(resource, EXT_CONSENT),
        "phone": _telecom_of(resource, "phone"),
        "email": _telecom_of(resource, "email"),
        "hours": resource.get("availabilityExceptions"),
        "active": resource.get("active"),
    }
    return {k: v for k, v in values.items() if v is not None}


def _problems(exc: ValidationError, line: int) -> list[tuple[int, str, str]]:
    return [
        (line, ".".join(str(p) for p in e["loc"]) or "resource", e["msg"])
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def read_records(data: Any) -> tuple[list[OrganisationIn], list[ServiceRecord]]:
    """Validate the Bundle (R4B models), then each entry; ``ImportRefused`` with every problem
    (``line`` is the entry's index, from 0; ``column`` the field)."""
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise ImportRefused([(0, "resourceType", "a FHIR Bundle is expected")])
    entries = data.get("entry") or []
    if len(entries) > MAX_ENTRIES:
        raise ImportRefused([(0, "entry", f"at most {MAX_ENTRIES} entries")])
    try:
        Bundle.model_validate(data)
    except ValidationError as exc:
        raise ImportRefused(
            [(0, ".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors(include_input=False)][:50]
        ) from None
    except (TypeError, ValueError) as exc:  # fhir.resources' own validators raise these directly
        raise ImportRefused([(0, "Bundle", str(exc)[:300])]) from None
    resources = [(i, e.get("resource") or {}) for i, e in enumerate(entries)]
    endpoints = {
        f"Endpoint/{r.get('id')}": r.get("address") for _, r in resources if r.get("resourceType") == "Endpoint"
    }
    areas = {f"Location/{r.get('id')}": r.get("name") for _, r in resources if r.get("resourceType") == "Location"}
    problems: list[tuple[int, str, str]] = []
    organisations: list[tuple[int, OrganisationIn]] = []
    org_codes: dict[str, str] = {}
    for index, resource in resources:
        if resource.get("resourceType") != "Organization":
            continue
        try:
            organisation = OrganisationIn(**_organisation_values(resource, endpoints))
        except ValidationError as exc:
            problems += _problems(exc, index)
            continue
        organisations.append((index, organisation))
        org_codes[f"Organization/{resource.get('id')}"] = organisation.code
    services: list[tuple[int, ServiceRecord]] = []
    for index, resource in resources:
        if resource.get("resourceType") != "HealthcareService":
            continue
        values = _service_values(resource, org_codes, areas)
        if "organisation_code" not in values:
            problems.append((index, "providedBy", "must name an Organization of the bundle"))
            continue
        try:
            services.append((index, ServiceRecord(**values)))
        except ValidationError as exc:
            problems += _problems(exc, index)
    distinct = check_organisations(organisations, problems)
    check_services(services, problems)
    if problems:
        raise ImportRefused(problems)
    return list(distinct.values()), [s for _, s in services]


def import_bundle(session: Session, data: Any, *, actor: str, what: str = "bundle") -> ImportResult:
    organisations, services = read_records(data)
    return upsert(session, organisations, services, actor=actor, what=what)
