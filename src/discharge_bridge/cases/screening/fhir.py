"""A screening as a FHIR R4 QuestionnaireResponse, and its JSON view. Pure.

Pre-filled answers that the coordinator has not confirmed carry the SDC ``answer-source`` style
information as an extension of ours naming the evidence, so the EHR can tell a suggestion from
a bedside answer.
"""

from __future__ import annotations

from typing import Any

from discharge_bridge.cases.screening.models import ScreeningResponse
from discharge_bridge.cases.screening.schemas import ScreeningOut
from discharge_bridge.risk.screening import Definition, total, unanswered

EVIDENCE_URL = "https://discharge-bridge.org/fhir/StructureDefinition/prefill-evidence"
TOTAL_URL = "https://discharge-bridge.org/fhir/StructureDefinition/screening-total"
BAND_URL = "https://discharge-bridge.org/fhir/StructureDefinition/screening-band"


def _coding(defn: Definition, link: str, code: str) -> dict[str, Any]:
    for option in _options(defn.resource.get("item", []), link):
        coding = option["valueCoding"]
        if coding["code"] == code:
            return {k: coding[k] for k in ("system", "code", "display") if k in coding}
    return {"code": code}


def _options(items: list[dict[str, Any]], link: str) -> list[dict[str, Any]]:
    for item in items:
        if item["linkId"] == link:
            return list(item.get("answerOption", []))
        found = _options(item.get("item", []), link)
        if found:
            return found
    return []


def _items(defn: Definition, items: list[dict[str, Any]], answers: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        link = item["linkId"]
        if item.get("type") == "group":
            inner = _items(defn, item.get("item", []), answers)
            if inner:
                out.append({"linkId": link, "text": item.get("text", ""), "item": inner})
            continue
        answer = answers.get(link)
        if not isinstance(answer, dict) or not answer.get("value"):
            continue
        value: dict[str, Any] = {"valueCoding": _coding(defn, link, answer["value"])}
        if answer.get("source") == "prefilled":
            value["extension"] = [{"url": EVIDENCE_URL, "valueString": str(answer.get("evidence") or "data")}]
        out.append({"linkId": link, "text": item.get("text", ""), "answer": [value]})
    return out


def questionnaire_response(
    response: ScreeningResponse, defn: Definition, *, patient_ref: str, encounter_ref: str
) -> dict[str, Any]:
    """The screening as a QuestionnaireResponse (status, answers, total and band as extensions)."""
    out: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": f"screening-{response.id}",
        "questionnaire": f"{defn.url}|{defn.version}",
        "status": str(response.status),
        "subject": {"reference": patient_ref},
        "encounter": {"reference": encounter_ref},
        "authored": (response.completed_at or response.updated_at).isoformat(),
        "author": {"display": response.completed_by or response.created_by},
        "item": _items(defn, defn.resource.get("item", []), response.answers),
    }
    if response.total is not None:
        out["extension"] = [
            {"url": TOTAL_URL, "valueInteger": response.total},
            {"url": BAND_URL, "valueCode": str(response.band)},
        ]
    return out


def screening_view(response: ScreeningResponse, defn: Definition) -> ScreeningOut:
    assert response.id is not None
    return ScreeningOut(
        id=response.id,
        case_id=response.case_id,
        tool=str(response.tool),
        questionnaire=f"{defn.url}|{defn.version}",
        status=str(response.status),
        answers=dict(response.answers),
        unanswered=unanswered(defn, response.answers),
        total=response.total,
        floor=total(defn, response.answers),
        maximum=defn.maximum,
        band=response.band,
        created_by=response.created_by,
        created_at=response.created_at,
        completed_by=response.completed_by,
        completed_at=response.completed_at,
        updated_at=response.updated_at,
        version=response.version,
    )
