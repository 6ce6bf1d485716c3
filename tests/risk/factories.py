"""Plain-function factories for FHIR R4 JSON in risk tests."""

from __future__ import annotations

from typing import Any

from discharge_bridge.risk import PatientRecord

ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ICD = "http://hl7.org/fhir/sid/icd-10"
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
ADMIT = "2024-03-10T08:00:00Z"


def cc(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def patient(birth: str | None = "1960-06-15", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Patient", "id": "9"}
    if birth is not None:
        out["birthDate"] = birth
    out.update(extra)
    return out


def encounter(
    cls: str = "IMP",
    status: str = "in-progress",
    start: str | None = ADMIT,
    eid: str = "5",
    end: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": eid,
        "status": status,
        "class": {"system": ACT, "code": cls},
        "subject": {"reference": "Patient/9"},
    }
    if start or end:
        out["period"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    out.update(extra)
    return out


def condition(
    system: str, code: str, cid: str = "123", clinical: str | None = "active", verification: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Condition",
        "id": cid,
        "code": cc(system, code),
        "subject": {"reference": "Patient/9"},
    }
    if clinical:
        out["clinicalStatus"] = cc("http://terminology.hl7.org/CodeSystem/condition-clinical", clinical)
    if verification:
        out["verificationStatus"] = cc("http://terminology.hl7.org/CodeSystem/condition-ver-status", verification)
    return out


def observation(code: dict[str, Any] | None, oid: str = "77", status: str = "final", **value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Observation", "id": oid, "status": status, **value}
    if code is not None:
        out["code"] = code
    return out


def related(
    code: str = "DAU",
    active: bool | None = True,
    rid: str = "rp1",
    system: str = "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "RelatedPerson",
        "id": rid,
        "patient": {"reference": "Patient/9"},
        "relationship": [cc(system, code)],
    }
    if active is not None:
        out["active"] = active
    return out


def record(**kw: Any) -> PatientRecord:
    kw.setdefault("patient", patient())
    kw.setdefault("encounter", encounter())
    if "related_persons" not in kw:
        kw["related_persons"] = [related()]
    return PatientRecord(**kw)
