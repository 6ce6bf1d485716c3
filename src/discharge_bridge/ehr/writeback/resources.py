"""What we keep on the EHR, as FHIR R4 JSON: a Flag, a RiskAssessment and one Task per coordination task.

Pure functions of plain values (no database, no HTTP): ``outbox`` reads the rows into the
dataclasses below and stores what these return. The shapes follow HL7's Gravity SDOH workflow
(a Flag for the risk, a RiskAssessment for the reasoning, Tasks for the work). Each resource
carries our identifier (``<kind>-<source>-<id>``, under a system from the settings), by which it is
created and updated conditionally, and names the patient only by reference: no name, birth date,
phone or identifier of the patient leaves through here.

Codes: Flag.category and Flag.code are local (``urn:discharge-bridge:...``), since HL7's
flag-category has no social-risk code; qualitativeRisk uses HL7's ``risk-probability`` (our
``medium`` is its ``moderate``); Task.status is our status verbatim (ours are FHIR's values).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

DEFAULT_IDENTIFIER_SYSTEM = "urn:discharge-bridge:writeback"
LOCAL = "urn:discharge-bridge"
FLAG_CATEGORY = {
    "coding": [{"system": f"{LOCAL}:flag-category", "code": "social", "display": "Social"}],
    "text": "Social",
}
RISK_PROBABILITY = "http://terminology.hl7.org/CodeSystem/risk-probability"
QUALITATIVE = {"high": "high", "medium": "moderate", "low": "low"}
RESOURCE_TYPES = ("Flag", "RiskAssessment", "Task")
KINDS = {"Flag": "flag", "RiskAssessment": "risk", "Task": "task"}
CLOSED = frozenset({"closed", "cancelled"})
# "Condition/123", "Observation/a.b"; a fact's path after the id ("Patient/9.extension[lives-alone]") is dropped.
_REFERENCE = re.compile(r"^([A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}?)(?:\.[a-z].*)?$")


@dataclass(frozen=True)
class CaseFacts:
    """What the resources need of a case (no identity of the patient beyond the FHIR ids)."""

    id: int
    source: str
    patient_id: str
    encounter_id: str
    status: str  # open | closed | cancelled
    opened_at: datetime
    closed_at: datetime | None = None
    flag_withdrawn_at: datetime | None = None
    corrected_away: bool = False  # every flagged concept was found wrong at the bedside


@dataclass(frozen=True)
class RiskFacts:
    rules_version: str
    score: int
    priority: str | None
    reasons: list[dict[str, Any]] = field(default_factory=list)
    assessed_at: datetime | None = None
    first_flagged_at: datetime | None = None


@dataclass(frozen=True)
class TaskFacts:
    id: int
    status: str
    kind: str
    domain: str
    description: str
    owner: str | None
    due_at: datetime | None
    created_at: datetime
    updated_at: datetime
    status_reason: str | None = None


def _instant(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def identifier_value(resource_type: str, source: str, row_id: int) -> str:
    return f"{KINDS[resource_type]}-{source}-{row_id}"


def identifier(system: str, resource_type: str, source: str, row_id: int) -> dict[str, str]:
    return {"use": "official", "system": system, "value": identifier_value(resource_type, source, row_id)}


def digest(resource: dict[str, Any]) -> str:
    """A stable hash of a resource's JSON (keys sorted): equal resources, equal hashes."""
    return hashlib.sha256(orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)).hexdigest()


def reason_texts(reasons: list[dict[str, Any]]) -> list[str]:
    return [str(r.get("text") or r.get("concept") or "").strip() for r in reasons if r.get("text") or r.get("concept")]


def evidence_references(reasons: list[dict[str, Any]]) -> list[str]:
    """The resources that proved the reasons, as references, each once, in the reasons' order."""
    found: dict[str, None] = {}
    for reason in reasons:
        for item in reason.get("evidence") or []:
            match = _REFERENCE.match(str(item))
            if match:
                found[match.group(1)] = None
    return list(found)


def flag_active(case: CaseFacts, risk: RiskFacts | None) -> bool:
    """Active while the case is open, its admission still flagged, and nobody withdrew or corrected it."""
    flagged = risk is not None and risk.priority is not None
    withdrawn = case.flag_withdrawn_at is not None or case.corrected_away
    return case.status not in CLOSED and flagged and not withdrawn


def flag(case: CaseFacts, risk: RiskFacts | None, *, system: str) -> dict[str, Any]:
    active = flag_active(case, risk)
    reasons = reason_texts(risk.reasons) if risk is not None else []
    start = (risk.first_flagged_at if risk is not None else None) or case.opened_at
    period: dict[str, str] = {"start": start.isoformat()}
    if not active:
        end = case.closed_at or case.flag_withdrawn_at or (risk.assessed_at if risk is not None else None)
        if end is not None and end >= start:
            period["end"] = end.isoformat()
    return {
        "resourceType": "Flag",
        "identifier": [identifier(system, "Flag", case.source, case.id)],
        "status": "active" if active else "inactive",
        "category": [FLAG_CATEGORY],
        "code": {
            "coding": [{"system": f"{LOCAL}:flag", "code": "social-risk", "display": "Patient at social risk"}],
            "text": "Patient at social risk" + (": " + "; ".join(reasons) if reasons else ""),
        },
        "subject": {"reference": f"Patient/{case.patient_id}"},
        "encounter": {"reference": f"Encounter/{case.encounter_id}"},
        "period": period,
    }


def risk_assessment(case: CaseFacts, risk: RiskFacts, *, system: str, amended: bool = False) -> dict[str, Any]:
    """``entered-in-error`` once the flag was corrected away at the bedside; ``amended`` after a change
    of what was sent (the caller knows); else ``final``."""
    status = "entered-in-error" if case.corrected_away else "amended" if amended else "final"
    resource: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "identifier": [identifier(system, "RiskAssessment", case.source, case.id)],
        "status": status,
        "method": {
            "coding": [{"system": f"{LOCAL}:rule-set", "code": risk.rules_version}],
            "text": f"discharge-bridge rule set {risk.rules_version}",
        },
        "subject": {"reference": f"Patient/{case.patient_id}"},
        "encounter": {"reference": f"Encounter/{case.encounter_id}"},
    }
    if risk.assessed_at is not None:
        resource["occurrenceDateTime"] = risk.assessed_at.isoformat()
    basis = evidence_references(risk.reasons)
    if basis:
        resource["basis"] = [{"reference": ref} for ref in basis]
    if risk.priority in QUALITATIVE:
        code = QUALITATIVE[risk.priority]
        resource["prediction"] = [
            {
                "outcome": {"text": "Delayed or unsafe discharge without social coordination"},
                "qualitativeRisk": {"coding": [{"system": RISK_PROBABILITY, "code": code}], "text": risk.priority},
            }
        ]
    texts = reason_texts(risk.reasons)
    resource["note"] = [{"text": f"Score {risk.score}" + (": " + "; ".join(texts) if texts else "")}]
    return resource


def task(case: CaseFacts, job: TaskFacts, *, system: str) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "identifier": [identifier(system, "Task", case.source, job.id)],
        "status": job.status,
        "intent": "order",
        "code": {"coding": [{"system": f"{LOCAL}:task-kind", "code": job.kind}], "text": job.domain},
        "description": job.description,
        "for": {"reference": f"Patient/{case.patient_id}"},
        "encounter": {"reference": f"Encounter/{case.encounter_id}"},
        "authoredOn": job.created_at.isoformat(),
        "lastModified": job.updated_at.isoformat(),
    }
    if job.status_reason:
        resource["statusReason"] = {"text": job.status_reason}
    if job.owner:
        resource["owner"] = {"display": job.owner}
    if job.due_at is not None:
        resource["restriction"] = {"period": {"end": job.due_at.isoformat()}}
    return resource


def content_of(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource without its status: what tells a change of content from a change of status."""
    return {k: v for k, v in resource.items() if k != "status"}
