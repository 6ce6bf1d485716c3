"""What the data already say about a BRASS or ISAR item, each suggestion with its evidence. Pure.

A pre-filled answer is a suggestion the coordinator confirms or changes at the bedside; it is
marked ``source: prefilled`` and keeps the evidence (a FHIR reference, or ``case assessment``).
Items the data cannot judge stay unanswered (sensory deficits, behaviour, number of drugs while
MedicationRequest / MedicationStatement are not fetched, ISAR's "do you see well?").

- age: the latest risk assessment's age (from Patient.birthDate).
- living situation (BRASS): the bedside living situation first (institution -> care home; not
  alone -> with family); else the flags: lives_alone with no_contacts -> alone with no support,
  lives_alone with a contact person -> alone with family support.
- cognition: a dementia flag -> "disoriented to some spheres some of the time" (BRASS, the
  lowest disoriented level: a floor the coordinator raises) and "serious memory problems" (ISAR).
- functional status (BRASS): the case assessment's daily-living answers: cook -> meal preparation,
  wash -> bathing, take_medicines -> own medication, manage_money -> finances, go_outside ->
  transportation; needs_help or dependent = dependent (1), independent = 0.
- ISAR "needed help before": an adl_dependency flag (recorded before this illness) -> yes.
- admissions: the patient's other inpatient or emergency encounters that started in the 3 months
  (BRASS) or, inpatient only, the 6 months (ISAR) before this admission.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from discharge_bridge.fhir.fields import encounter_class_codes, encounter_status, period, text

DAILY_TO_BRASS = {
    "cook": "function.meals",
    "wash": "function.bathing",
    "take_medicines": "function.medication",
    "manage_money": "function.finances",
    "go_outside": "function.transport",
}
INPATIENT = frozenset({"IMP", "ACUTE", "NONAC"})
EMERGENCY = frozenset({"EMER"})
NOT_A_VISIT = frozenset({"cancelled", "entered-in-error", "planned"})


def _answer(value: str, evidence: str | None) -> dict[str, Any]:
    return {"value": value, "source": "prefilled", "evidence": evidence}


def _visits(
    encounters: Iterable[dict[str, Any]], since: datetime, until: datetime, classes: frozenset[str]
) -> list[str]:
    found = []
    for encounter in encounters:
        if encounter_status(encounter) in NOT_A_VISIT:
            continue
        if not {c.upper() for c in encounter_class_codes(encounter)} & classes:
            continue
        start = period(encounter)[0]
        if start is not None and since <= start < until:
            found.append(f"Encounter/{text(encounter.get('id'))}")
    return found


def _age_code(age: int) -> str:
    if age <= 55:
        return "55-or-less"
    if age <= 64:
        return "56-64"
    return "65-79" if age <= 79 else "80-plus"


def prefill(
    tool: str,
    *,
    age: int | None,
    facts: list[dict[str, Any]],
    other_encounters: list[dict[str, Any]],
    admitted_at: datetime | None,
    daily_living: dict[str, Any],
    living_situation: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """``{linkId: {"value", "source": "prefilled", "evidence"}}`` for the items the data decide."""
    evidence = {str(f.get("concept")): f.get("evidence") for f in facts}
    out: dict[str, dict[str, Any]] = {}
    if tool == "brass":
        if age is not None:
            out["age"] = _answer(_age_code(age), "Patient")
        if living_situation.get("housing") == "institution":
            out["living"] = _answer("care-home", "case assessment")
        elif living_situation.get("lives_alone") is False:
            out["living"] = _answer("family", "case assessment")
        elif "lives_alone" in evidence:
            alone = "alone-none" if "no_contacts" in evidence else "alone-family"
            out["living"] = _answer(alone, evidence["lives_alone"])
        if "dementia" in evidence:
            out["cognition"] = _answer("some-spheres-some-time", evidence["dementia"])
        for key, link in DAILY_TO_BRASS.items():
            ability = daily_living.get(key)
            if ability in ("needs_help", "dependent", "independent"):
                out[link] = _answer("no" if ability == "independent" else "yes", "case assessment")
        if admitted_at is not None:
            seen = _visits(other_encounters, admitted_at - timedelta(days=91), admitted_at, INPATIENT | EMERGENCY)
            code = ("none", "one", "two")[len(seen)] if len(seen) <= 2 else "more-than-two"
            out["admissions"] = _answer(code, ", ".join(seen) or None)
    elif tool == "isar":
        if "adl_dependency" in evidence:
            out["help-before"] = _answer("yes", evidence["adl_dependency"])
        if admitted_at is not None:
            seen = _visits(other_encounters, admitted_at - timedelta(days=183), admitted_at, INPATIENT)
            out["hospitalised"] = _answer("yes" if seen else "no", ", ".join(seen) or None)
        if "dementia" in evidence:
            out["memory"] = _answer("yes", evidence["dementia"])
    return out
