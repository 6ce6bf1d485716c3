"""FHIR R4 JSON -> the columns the service stores. Pure: no database, no HTTP.

Tolerant of what real EHRs send (vendor keys, empty strings, times without a zone, a bare Coding
where a CodeableConcept is due, R5-shaped ``Encounter.class``), strict about the values the service
relies on. An empty string counts as absent. A value that is present but impossible is never stored
as if valid, nor quietly replaced:

* dead letter (``UnusableResource``; the reason names the field and may quote the value, because a
  dead letter keeps the payload anyway), when the service would act wrongly on the resource:
  - ``resourceType`` missing, not a string, or not an R4 resource type (an R4 type the service does
    not keep, e.g. Practitioner, is only ignored);
  - ``id`` missing or not a FHIR id;
  - ``Patient.birthDate`` not a FHIR date (``1938`` and ``1938-05`` are dates): age drives the risk
    rules, and a patient without one would quietly miss them;
  - ``Encounter.status`` missing or not one of the nine R4 codes: current stay or discharge;
  - ``Encounter.class`` that holds no readable code (a number, a code that is not a string, a code
    longer than any ActCode): which stays are inpatient;
  - ``Encounter.period`` that is not an object, a ``start`` / ``end`` that is not a FHIR dateTime
    (or out of range), an ``end`` before the ``start``: length of stay, discharge;
  - a ``subject`` (``RelatedPerson.patient``) missing, not a Reference, or not to a Patient.
* conformance problem (the row is stored, the doubtful column left empty, the problem counted per
  source with its path and kind, never its value), when the service can still use the resource:
  ``meta`` not an object, ``meta.lastUpdated`` not an instant, ``meta.versionId`` not a FHIR id
  (versions then fall back to the other one), ``Patient.gender`` not an AdministrativeGender code,
  ``Patient.name`` / ``telecom`` / ``contact`` / ``identifier`` / ``address`` not lists (what the
  pages and risk facts read), a name, phone or address longer than its column (cut),
  ``Encounter.location`` / ``extension`` not lists, codes longer than their column (admit source,
  discharge disposition, clinical status; on PostgreSQL they would fail the whole page), a ward or
  bed label longer than its column (cut), a planned end date that is not a dateTime. A missing
  ``Encounter.class`` stays tolerated (``class_code`` empty).

Cost: a regex or a set lookup per checked value, with the usual shapes tested first (about 10% of
``normalise``, ~1-2 us per Encounter); full model validation stays in ``conformance.py``, on a sample.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any

import orjson

from discharge_bridge.fhir.fields import (
    FHIR_ID,
    address_line,
    class_code,
    first_code,
    human_name,
    identifiers,
    obj,
    parse_instant,
    phones,
    reference_id,
    search_key,
)

PLANNED_END_URLS = frozenset(
    {
        # R5 Encounter.plannedEndDate carried into R4 as a cross-version extension.
        "http://hl7.org/fhir/5.0/StructureDefinition/extension-Encounter.plannedEndDate",
        "http://hl7.org/fhir/StructureDefinition/encounter-plannedEndDate",
    }
)
SNAPSHOT_TYPES = ("Patient", "Encounter", "Condition", "Observation", "RelatedPerson")
CLINICAL_TYPES = frozenset({"Condition", "Observation", "RelatedPerson"})
# FHIR date and dateTime, with two tolerances seen in real EHRs: no seconds, no zone.
_DATE_RE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_DATETIME_RE = re.compile(r"^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$")
ENCOUNTER_STATUSES = frozenset(
    {"planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled", "entered-in-error", "unknown"}
)
GENDERS = frozenset({"male", "female", "other", "unknown"})
# Column widths (models.py): a longer value would fail the whole page's INSERT on PostgreSQL.
_CODE_MAX, _CLASS_MAX, _LABEL_MAX = 64, 32, 200
_IDENTITY_MAX = {"name": 200, "phone": 64, "address": 300, "search_text": 600}
_IDENTITY_PATHS = {"name": "Patient.name", "phone": "Patient.telecom", "address": "Patient.address"}
_IDENTIFIERS_MAX = 10  # kept per Patient: an MRN, a passport, an insurance number... not a history

# Every resource type of FHIR R4 (4.0.1), plus those R4B added: a type outside this set is a typo
# or junk (dead letter); one inside it that the service does not keep is ignored.
# fmt: off
R4_RESOURCE_TYPES = frozenset({
    "Account", "ActivityDefinition", "AdverseEvent", "AllergyIntolerance", "Appointment", "AppointmentResponse",
    "AuditEvent", "Basic", "Binary", "BiologicallyDerivedProduct", "BodyStructure", "Bundle", "CapabilityStatement",
    "CarePlan", "CareTeam", "CatalogEntry", "ChargeItem", "ChargeItemDefinition", "Claim", "ClaimResponse",
    "ClinicalImpression", "CodeSystem", "Communication", "CommunicationRequest", "CompartmentDefinition",
    "Composition", "ConceptMap", "Condition", "Consent", "Contract", "Coverage", "CoverageEligibilityRequest",
    "CoverageEligibilityResponse", "DetectedIssue", "Device", "DeviceDefinition", "DeviceMetric", "DeviceRequest",
    "DeviceUseStatement", "DiagnosticReport", "DocumentManifest", "DocumentReference", "EffectEvidenceSynthesis",
    "Encounter", "Endpoint", "EnrollmentRequest", "EnrollmentResponse", "EpisodeOfCare", "EventDefinition",
    "Evidence", "EvidenceVariable", "ExampleScenario", "ExplanationOfBenefit", "FamilyMemberHistory", "Flag",
    "Goal", "GraphDefinition", "Group", "GuidanceResponse", "HealthcareService", "ImagingStudy", "Immunization",
    "ImmunizationEvaluation", "ImmunizationRecommendation", "ImplementationGuide", "InsurancePlan", "Invoice",
    "Library", "Linkage", "List", "Location", "Measure", "MeasureReport", "Media", "Medication",
    "MedicationAdministration", "MedicationDispense", "MedicationKnowledge", "MedicationRequest",
    "MedicationStatement", "MedicinalProduct", "MedicinalProductAuthorization", "MedicinalProductContraindication",
    "MedicinalProductIndication", "MedicinalProductIngredient", "MedicinalProductInteraction",
    "MedicinalProductManufactured", "MedicinalProductPackaged", "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect", "MessageDefinition", "MessageHeader", "MolecularSequence", "NamingSystem",
    "NutritionOrder", "Observation", "ObservationDefinition", "OperationDefinition", "OperationOutcome",
    "Organization", "OrganizationAffiliation", "Parameters", "Patient", "PaymentNotice", "PaymentReconciliation",
    "Person", "PlanDefinition", "Practitioner", "PractitionerRole", "Procedure", "Provenance", "Questionnaire",
    "QuestionnaireResponse", "RelatedPerson", "RequestGroup", "ResearchDefinition", "ResearchElementDefinition",
    "ResearchStudy", "ResearchSubject", "RiskAssessment", "RiskEvidenceSynthesis", "Schedule", "SearchParameter",
    "ServiceRequest", "Slot", "Specimen", "SpecimenDefinition", "StructureDefinition", "StructureMap",
    "Subscription", "Substance", "SubstanceNucleicAcid", "SubstancePolymer", "SubstanceProtein",
    "SubstanceReferenceInformation", "SubstanceSourceMaterial", "SubstanceSpecification", "SupplyDelivery",
    "SupplyRequest", "Task", "TerminologyCapabilities", "TestReport", "TestScript", "ValueSet",
    "VerificationResult", "VisionPrescription", "AdministrableProductDefinition", "Citation",
    "ClinicalUseDefinition", "EvidenceReport", "Ingredient", "ManufacturedItemDefinition",
    "MedicinalProductDefinition", "NutritionProduct", "PackagedProductDefinition", "RegulatedAuthorization",
    "SubscriptionStatus", "SubscriptionTopic", "SubstanceDefinition"
})
# fmt: on


class UnusableResource(ValueError):
    """The resource lacks something the service needs; it becomes a dead letter with this reason."""


class NotKept(UnusableResource):
    """A valid R4 resource type the service does not store (Practitioner, Location, ...): ignored."""


Problems = list[tuple[str, str]]  # (element path, kind of problem): no values, see conformance.py


def shown(value: Any, limit: int = 40) -> str:
    """A value for a dead letter's reason: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class Normalised:
    resource_type: str
    fhir_id: str
    version_id: str | None
    last_updated: datetime | None
    columns: dict[str, Any]  # table columns other than source_id / raw / ingested_at
    raw: dict[str, Any] | None  # the resource as received, unless ``normalise(..., encode=True)``
    raw_json: str | None = None  # ... which keeps it as JSON text instead
    problems: tuple[tuple[str, str], ...] = ()  # conformance problems found on the way (path, kind)


def checked_instant(value: Any, tz: tzinfo, path: str, kind: str = "dateTime") -> datetime | None:
    """``parse_instant`` for a value the service relies on: absent (None, "") is None, and a value
    that is present but not a FHIR date / dateTime raises ``UnusableResource`` naming ``path``."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and _DATETIME_RE.match(value):
        parsed = parse_instant(value, tz)
        if parsed is not None:
            return parsed
    raise UnusableResource(f"{path}: {shown(value)} is not a valid FHIR {kind}")


def _meta(resource: dict[str, Any], found: Problems) -> tuple[str | None, datetime | None]:
    meta = resource.get("meta")
    if not isinstance(meta, dict):
        if meta is not None:
            found.append(("meta", "not an object"))
        return None, None
    version = meta.get("versionId")
    if isinstance(version, str) and (version.isdigit() or FHIR_ID.match(version)):  # most servers: "1", "2", ...
        pass
    elif version is None or version == "":
        version = None
    elif isinstance(version, int) and not isinstance(version, bool):
        version = str(version)  # a number where the id is due: same meaning, kept
    else:
        found.append(("meta.versionId", "not a valid FHIR id"))
        version = None
    stamp = meta.get("lastUpdated")
    # parse_instant alone (no pattern): this stamp orders versions only, so any readable form will do
    last_updated = parse_instant(stamp)
    if last_updated is None and stamp is not None and stamp != "":
        found.append(("meta.lastUpdated", "not a valid FHIR instant"))
    return version, last_updated


def _require_id(resource: dict[str, Any], resource_type: str) -> str:
    rid = resource.get("id")
    if not isinstance(rid, str) or not rid:
        raise UnusableResource(f"{resource_type} has no id")
    if not FHIR_ID.match(rid):
        raise UnusableResource(f"{resource_type} id is not a valid FHIR id")
    return rid


def _is_date(value: Any) -> bool:
    """A FHIR date: YYYY, YYYY-MM or YYYY-MM-DD, each part in range."""
    if not isinstance(value, str):
        return False
    try:
        if len(value) == 10 and value[4] == "-" and value[7] == "-":  # the usual full date (hot path)
            return date.fromisoformat(value).year > 0
        if not _DATE_RE.match(value):
            return False
        if len(value) == 7:
            date(int(value[:4]), int(value[5:7]), 1)
    except ValueError:
        return False
    return value[:4] != "0000"


def _lists(resource: dict[str, Any], resource_type: str, keys: tuple[str, ...], found: Problems) -> None:
    for key in keys:
        value = resource.get(key)
        if value is not None and not isinstance(value, list):
            found.append((f"{resource_type}.{key}", "not a list"))


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _patient(resource: dict[str, Any], found: Problems) -> dict[str, Any]:
    birth = resource.get("birthDate")
    if (birth is not None and birth != "") and not _is_date(birth):
        raise UnusableResource(f"Patient.birthDate: {shown(birth)} is not a valid FHIR date")
    deceased = resource.get("deceasedBoolean") is True or bool(resource.get("deceasedDateTime"))
    gender = resource.get("gender")
    if gender in (None, ""):
        gender = None
    elif gender not in GENDERS:
        found.append(("Patient.gender", "not an AdministrativeGender code"))
        gender = None
    _lists(resource, "Patient", ("name", "telecom", "contact", "identifier", "address"), found)
    return {
        "active": resource.get("active") is not False,
        "birth_date": birth or None,
        "gender": gender,
        "deceased": deceased,
        **patient_identity(resource, found),
    }


def patient_identity(resource: dict[str, Any], found: Problems | None = None) -> dict[str, Any]:
    """The identity columns of a Patient; a value longer than its column is cut (and counted)."""
    name = human_name(resource.get("name"))
    held = identifiers(resource.get("identifier"))[:_IDENTIFIERS_MAX]
    numbers = phones(resource.get("telecom"))
    columns = {
        "name": name or None,
        "identifiers": [i._asdict() for i in held],
        "phone": numbers[0] if numbers else None,
        "address": address_line(resource.get("address")) or None,
        "search_text": search_key(" ".join([name, *(i.value for i in held)])) or None,
    }
    for key, limit in _IDENTITY_MAX.items():
        value = columns[key]
        if value is not None and len(value) > limit:
            columns[key] = value[:limit]
            if found is not None and key in _IDENTITY_PATHS:
                found.append((_IDENTITY_PATHS[key], "longer than its column, cut"))
    return columns


def _class_code(resource: dict[str, Any]) -> str | None:
    """``class_code``, checked: absent (or empty) is tolerated; present without a readable code is
    not (see the module doc)."""
    value = resource.get("class")
    if value is None or value == "" or value == {} or value == []:
        return None
    code = class_code(resource)
    if code is None or len(code) > _CLASS_MAX:
        raise UnusableResource(f"Encounter.class: {shown(value)} holds no valid code")
    return code


def _code(value: Any, path: str, found: Problems, limit: int = _CODE_MAX) -> str | None:
    code = first_code(value)
    if code is not None and len(code) > limit:
        found.append((path, f"code longer than {limit} characters"))
        return None
    return code


def _subject(resource: dict[str, Any], resource_type: str, field: str) -> str:
    """The Patient id of ``subject`` (``patient``); a dead letter naming the field otherwise."""
    ref = resource.get(field)
    patient = reference_id(ref, "Patient")
    if patient is not None:
        return patient
    if ref is None or (isinstance(ref, dict) and ref.get("reference") in (None, "")):
        raise UnusableResource(f"{resource_type} has no {field} reference to a Patient")
    if not isinstance(ref, dict):
        raise UnusableResource(f"{resource_type}.{field}: {shown(ref)} is not a Reference")
    text = ref.get("reference")
    if not isinstance(text, str):
        raise UnusableResource(f"{resource_type}.{field}.reference: {shown(text)} is not a string")
    raise UnusableResource(f"{resource_type}.{field}: {shown(text)} is not a reference to a Patient")


def _locations(resource: dict[str, Any], found: Problems) -> tuple[str | None, str | None]:
    """Ward and bed from ``Encounter.location`` (physicalType wa / ro / bd; current entries first)."""
    ward = bed = room = fallback = None
    entries = [e for e in _items(resource.get("location")) if isinstance(e, dict)]
    current = [e for e in entries if e.get("status") in (None, "active", "reserved")] or entries
    for entry in current:
        loc = obj(entry.get("location"))
        label = loc.get("display") or loc.get("reference")
        if not isinstance(label, str) or not label:
            continue
        kind = first_code(entry.get("physicalType"))
        if kind == "bd":
            bed = label
        elif kind == "wa":
            ward = label
        elif kind == "ro":
            room = label
        elif fallback is None:
            fallback = label
    if ward is not None and len(ward) > _LABEL_MAX:
        found.append(("Encounter.location.location", f"ward label longer than {_LABEL_MAX} characters, cut"))
        ward = ward[:_LABEL_MAX]
    if bed is not None and len(bed) > _LABEL_MAX:
        found.append(("Encounter.location.location", f"bed label longer than {_LABEL_MAX} characters, cut"))
        bed = bed[:_LABEL_MAX]
    return ward or room or fallback, bed


def _encounter(resource: dict[str, Any], tz: tzinfo, found: Problems) -> dict[str, Any]:
    status = resource.get("status")
    if status not in ENCOUNTER_STATUSES:
        if status is None or status == "":
            raise UnusableResource("Encounter has no status")
        raise UnusableResource(f"Encounter.status: {shown(status)} is not an R4 Encounter status")
    patient = reference_id(resource.get("subject"), "Patient") or _subject(resource, "Encounter", "subject")
    cls = resource.get("class")
    if isinstance(cls, dict) and isinstance(code := cls.get("code"), str) and 0 < len(code) <= _CLASS_MAX:
        cls_code: str | None = code  # R4's one Coding (hot path)
    else:
        cls_code = _class_code(resource)
    period = resource.get("period")
    if period is None or period == "":
        start = end = None
    elif not isinstance(period, dict):
        raise UnusableResource(f"Encounter.period: {shown(period)} is not a Period")
    else:
        start = checked_instant(period.get("start"), tz, "Encounter.period.start")
        end = checked_instant(period.get("end"), tz, "Encounter.period.end")
        if start is not None and end is not None and end < start:
            raise UnusableResource("Encounter.period: end is before start")
    hosp = obj(resource.get("hospitalization"))
    planned_end = None
    _lists(resource, "Encounter", ("location", "extension"), found)
    for ext in _items(resource.get("extension")):
        if isinstance(ext, dict) and ext.get("url") in PLANNED_END_URLS:
            value = ext.get("valueDateTime") or ext.get("valueDate")
            planned_end = parse_instant(value, tz) if isinstance(value, str) and _DATETIME_RE.match(value) else None
            if planned_end is None and value not in (None, ""):
                found.append(("Encounter.extension(plannedEndDate)", "not a valid FHIR dateTime"))
    ward, bed = _locations(resource, found)
    return {
        "patient_fhir_id": patient,
        "status": status,
        "class_code": cls_code,
        "period_start": start,
        "period_end": end,
        "admit_source": _code(hosp.get("admitSource"), "Encounter.hospitalization.admitSource", found),
        "discharge_disposition": _code(
            hosp.get("dischargeDisposition"), "Encounter.hospitalization.dischargeDisposition", found
        ),
        "ward": ward,
        "bed": bed,
        "planned_end": planned_end,
    }


def _clinical(resource: dict[str, Any], resource_type: str, found: Problems) -> dict[str, Any]:
    field = "patient" if resource_type == "RelatedPerson" else "subject"
    patient = reference_id(resource.get(field), "Patient") or _subject(resource, resource_type, field)
    if resource_type == "Condition":
        status = _code(resource.get("clinicalStatus"), "Condition.clinicalStatus", found, _CLASS_MAX)
        if first_code(resource.get("verificationStatus")) == "entered-in-error":
            status = "entered-in-error"
    elif resource_type == "Observation":
        status = resource.get("status") if isinstance(resource.get("status"), str) else None
        if status is not None and len(status) > _CLASS_MAX:
            found.append(("Observation.status", f"code longer than {_CLASS_MAX} characters"))
            status = None
    else:
        status = "inactive" if resource.get("active") is False else "active"
    return {"resource_type": resource_type, "patient_fhir_id": patient, "status": status}


def resource_type_of(resource: Any) -> str:
    """The type a resource declares; ``UnusableResource`` naming ``resourceType`` if it cannot be used.

    ``NotKept`` for an R4 type the service does not store.
    """
    if not isinstance(resource, dict):
        raise UnusableResource("entry is not a JSON object")
    resource_type = resource.get("resourceType")
    if resource_type in SNAPSHOT_TYPES:
        return resource_type  # type: ignore[no-any-return]
    if resource_type is None or resource_type == "":
        raise UnusableResource("resourceType: missing")
    if isinstance(resource_type, str) and resource_type in R4_RESOURCE_TYPES:
        raise NotKept(f"unsupported resourceType {resource_type!r}")
    raise UnusableResource(f"resourceType: {shown(resource_type)} is not an R4 resource type")


def normalise(resource: Any, tz: tzinfo = UTC, *, encode: bool = False) -> Normalised:
    """Pick out the columns of a Patient, Encounter, Condition, Observation or RelatedPerson.

    ``encode`` keeps the raw resource as its JSON text (``raw_json``) instead of the parsed dicts:
    a page waiting to be written then holds a few kilobytes per resource instead of a tree of
    objects about ten times that, and the text is what the database stores anyway.
    """
    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    if resource_type not in SNAPSHOT_TYPES:
        resource_type = resource_type_of(resource)  # raises: a type the service cannot or need not keep
    rid = _require_id(resource, resource_type)
    found: Problems = []
    version_id, last_updated = _meta(resource, found)
    if resource_type == "Patient":
        columns = _patient(resource, found)
    elif resource_type == "Encounter":
        columns = _encounter(resource, tz, found)
    else:
        columns = _clinical(resource, resource_type, found)
    problems = tuple(found) if found else ()
    if encode:
        text = orjson.dumps(resource).decode()
        return Normalised(resource_type, rid, version_id, last_updated, columns, None, text, problems)
    return Normalised(resource_type, rid, version_id, last_updated, columns, resource, None, problems)


Version = tuple[str | None, datetime | None]


def is_newer(incoming: Version, stored: Version) -> bool:
    """Whether an incoming (versionId, lastUpdated) supersedes the stored one.

    Numeric versionIds (most servers) compare as numbers; otherwise lastUpdated decides. Equal
    versions are not newer, which makes a re-read a no-op. Without either, the incoming copy wins.
    """
    in_ver, in_ts = incoming
    st_ver, st_ts = stored
    if in_ver is not None and st_ver is not None and in_ver.isdigit() and st_ver.isdigit():
        return int(in_ver) > int(st_ver)
    if in_ts is not None and st_ts is not None:
        if in_ts != st_ts:
            return in_ts > st_ts
        return in_ver != st_ver
    return not (in_ver is not None and in_ver == st_ver)
