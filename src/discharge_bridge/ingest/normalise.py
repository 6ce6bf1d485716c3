"""FHIR R4 JSON -> the columns the service stores. Pure: no database, no HTTP.

Tolerant of what real EHRs send (vendor keys, empty strings, times without a zone, a bare Coding
where a CodeableConcept is due, R5-shaped ``Encounter.class``), strict only about what the service
cannot do without: an id, a status, and a subject that is a Patient.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import orjson

PLANNED_END_URLS = frozenset(
    {
        # R5 Encounter.plannedEndDate carried into R4 as a cross-version extension.
        "http://hl7.org/fhir/5.0/StructureDefinition/extension-Encounter.plannedEndDate",
        "http://hl7.org/fhir/StructureDefinition/encounter-plannedEndDate",
    }
)
SNAPSHOT_TYPES = ("Patient", "Encounter", "Condition", "Observation", "RelatedPerson")
CLINICAL_TYPES = frozenset({"Condition", "Observation", "RelatedPerson"})
_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


class UnusableResource(ValueError):
    """The resource lacks something the service needs; it becomes a dead letter with this reason."""


@dataclass(frozen=True, slots=True)
class Normalised:
    resource_type: str
    fhir_id: str
    version_id: str | None
    last_updated: datetime | None
    columns: dict[str, Any]  # table columns other than source_id / raw / ingested_at
    raw: dict[str, Any] | None  # the resource as received, unless ``normalise(..., encode=True)``
    raw_json: str | None = None  # ... which keeps it as JSON text instead


def parse_instant(value: Any, tz: tzinfo = UTC) -> datetime | None:
    """A FHIR date / dateTime / instant as an aware UTC datetime.

    A value without a zone is read in the hospital's own time zone (``tz``): several EHRs drop the
    offset, and reading it as UTC would shift admissions by hours. A bare date means local midnight.
    Returns None for what cannot be read.
    """
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    try:
        if len(text) == 4:
            return datetime(int(text), 1, 1, tzinfo=tz).astimezone(UTC)
        if len(text) == 7:
            return datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=tz).astimezone(UTC)
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tz).astimezone(UTC)
        parsed = datetime.fromisoformat(text)  # Python 3.11 reads a trailing Z itself
    except ValueError:
        return None
    if parsed.tzinfo is UTC:  # most instants: nothing to convert
        return parsed
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


def zone(name: str | None) -> tzinfo:
    return ZoneInfo(name) if name and name != "UTC" else UTC


def codings(value: Any) -> list[dict[str, Any]]:
    """The Codings inside a CodeableConcept, a bare Coding, or a list of either."""
    if isinstance(value, list):
        return [c for item in value for c in codings(item)]
    if not isinstance(value, dict):
        return []
    if "coding" in value:
        inner = value.get("coding")
        return [c for c in inner if isinstance(c, dict)] if isinstance(inner, list) else []
    return [value] if "code" in value else []


def obj(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (tolerates junk where an object is due)."""
    return value if isinstance(value, dict) else {}


def first_code(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(inner := value.get("coding"), list):
        # the usual CodeableConcept, without building the list ``codings`` returns (hot path)
        for coding in inner:
            if isinstance(coding, dict) and isinstance(code := coding.get("code"), str) and code:
                return code
        return None
    for coding in codings(value):
        code = coding.get("code")
        if isinstance(code, str) and code:
            return code
    return None


def reference_id(ref: Any, expected_type: str) -> str | None:
    """The logical id in ``{"reference": "Patient/123"}`` (relative, absolute or versioned)."""
    if not isinstance(ref, dict):
        return None
    text = ref.get("reference")
    if not isinstance(text, str) or not text or text.startswith("#"):
        return None
    kind, _, rest = text.partition("/")
    if kind == expected_type and "/" not in rest:  # the usual relative "Patient/123" (hot path)
        return rest if _ID_RE.match(rest) else None
    parts = text.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == expected_type and _ID_RE.match(parts[-1]):
        return parts[-1]
    return None


def _meta(resource: dict[str, Any]) -> tuple[str | None, datetime | None]:
    meta = resource.get("meta")
    if not isinstance(meta, dict):
        return None, None
    version = meta.get("versionId")
    return (str(version) if version not in (None, "") else None), parse_instant(meta.get("lastUpdated"))


def _require_id(resource: dict[str, Any], resource_type: str) -> str:
    rid = resource.get("id")
    if not isinstance(rid, str) or not rid:
        raise UnusableResource(f"{resource_type} has no id")
    if not _ID_RE.match(rid):
        raise UnusableResource(f"{resource_type} id is not a valid FHIR id")
    return rid


def _patient(resource: dict[str, Any], rid: str, tz: tzinfo) -> dict[str, Any]:
    birth = resource.get("birthDate")
    deceased = resource.get("deceasedBoolean") is True or bool(resource.get("deceasedDateTime"))
    gender = resource.get("gender")
    return {
        "active": resource.get("active") is not False,
        "birth_date": birth[:10] if isinstance(birth, str) and birth else None,
        "gender": gender if isinstance(gender, str) and gender else None,
        "deceased": deceased,
    }


def _class_code(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    return first_code(value)


def _locations(resource: dict[str, Any]) -> tuple[str | None, str | None]:
    """Ward and bed from ``Encounter.location`` (physicalType wa / ro / bd; current entries first)."""
    ward = bed = room = fallback = None
    entries = [e for e in resource.get("location") or [] if isinstance(e, dict)]
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
    return ward or room or fallback, bed


def _encounter(resource: dict[str, Any], rid: str, tz: tzinfo) -> dict[str, Any]:
    status = resource.get("status")
    if not isinstance(status, str) or not status:
        raise UnusableResource("Encounter has no status")
    patient = reference_id(resource.get("subject"), "Patient")
    if patient is None:
        raise UnusableResource("Encounter has no subject reference to a Patient")
    period = obj(resource.get("period"))
    hosp = obj(resource.get("hospitalization"))
    planned_end = None
    for ext in resource.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") in PLANNED_END_URLS:
            planned_end = parse_instant(ext.get("valueDateTime") or ext.get("valueDate"), tz)
    ward, bed = _locations(resource)
    return {
        "patient_fhir_id": patient,
        "status": status,
        "class_code": _class_code(resource.get("class")),
        "period_start": parse_instant(period.get("start"), tz),
        "period_end": parse_instant(period.get("end"), tz),
        "admit_source": first_code(hosp.get("admitSource")),
        "discharge_disposition": first_code(hosp.get("dischargeDisposition")),
        "ward": ward,
        "bed": bed,
        "planned_end": planned_end,
    }


def _clinical(resource: dict[str, Any], resource_type: str) -> dict[str, Any]:
    field = "patient" if resource_type == "RelatedPerson" else "subject"
    patient = reference_id(resource.get(field), "Patient")
    if patient is None:
        raise UnusableResource(f"{resource_type} has no {field} reference to a Patient")
    if resource_type == "Condition":
        status = first_code(resource.get("clinicalStatus"))
        if first_code(resource.get("verificationStatus")) == "entered-in-error":
            status = "entered-in-error"
    elif resource_type == "Observation":
        status = resource.get("status") if isinstance(resource.get("status"), str) else None
    else:
        status = "inactive" if resource.get("active") is False else "active"
    return {"resource_type": resource_type, "patient_fhir_id": patient, "status": status}


def normalise(resource: Any, tz: tzinfo = UTC, *, encode: bool = False) -> Normalised:
    """Pick out the columns of a Patient, Encounter, Condition, Observation or RelatedPerson.

    ``encode`` keeps the raw resource as its JSON text (``raw_json``) instead of the parsed dicts:
    a page waiting to be written then holds a few kilobytes per resource instead of a tree of
    objects about ten times that, and the text is what the database stores anyway.
    """
    if not isinstance(resource, dict):
        raise UnusableResource("entry is not a JSON object")
    resource_type = resource.get("resourceType")
    if resource_type not in SNAPSHOT_TYPES:
        raise UnusableResource(f"unsupported resourceType {resource_type!r}")
    rid = _require_id(resource, resource_type)
    version_id, last_updated = _meta(resource)
    if resource_type == "Patient":
        columns = _patient(resource, rid, tz)
    elif resource_type == "Encounter":
        columns = _encounter(resource, rid, tz)
    else:
        columns = _clinical(resource, resource_type)
    if encode:
        return Normalised(resource_type, rid, version_id, last_updated, columns, None, orjson.dumps(resource).decode())
    return Normalised(resource_type, rid, version_id, last_updated, columns, resource)


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
