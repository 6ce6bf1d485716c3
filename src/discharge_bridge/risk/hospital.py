"""HOSPITAL score (Donzé et al., JAMA Intern Med 2013;173(8):632-8; validated in 9 countries,
Donzé et al., JAMA Intern Med 2016;176(4):496-502): potentially avoidable 30-day readmission.

Shown beside LACE; it informs and never gates a flag. Seven items, 0-13 points:

| item | published definition                                        | points |
|------|-------------------------------------------------------------|--------|
| H    | haemoglobin at discharge < 12 g/dL                          | 1      |
| O    | discharge from an Oncology service                          | 2      |
| S    | sodium at discharge < 135 mmol/L                            | 1      |
| P    | any procedure (ICD-coded) during the stay                   | 1      |
| IT   | index admission type: urgent (non-elective)                 | 1      |
| A    | hospital admissions in the previous 12 months: 0-1 / 2-5 / >5 | 0 / 2 / 5 |
| L    | length of stay >= 5 days                                    | 2      |

Bands as published (2013, kept in 2016): low 0-4, intermediate 5-6, high >= 7.

How each item is read from FHIR R4 here:
- H: Observation LOINC 718-7 (and 20509-6, 30313-1, 30350-3, 30352-9: other haemoglobin
  methods), status final/amended/corrected/preliminary, effective within the stay; the last one
  before discharge (while in hospital: the latest). Units g/dL; g/L divided by 10; mmol/L times
  1.611 (haemoglobin monomer, as European labs report).
- S: Observation LOINC 2951-2 (serum/plasma) or 2947-0 (blood), mmol/L or mEq/L (equal for Na+).
- O: Encounter.serviceType: a SNOMED CT oncology specialty (394593009 medical oncology,
  394592004 clinical oncology, 419815003 radiation oncology) or a code/display/text saying
  oncology (``oncolog`` / ``онколог``). A record with no serviceType leaves O missing.
- P: a Procedure (completed or in progress) performed within the stay. Without any Procedure in
  the record the item is missing (the default poll does not fetch Procedure, so "none" and "not
  sent" look alike); with Procedures but none in the stay it is 0.
- IT: the same reading as LACE's "A" (class EMER, admitSource emd, priority em/ur, or an ED visit
  leading to the admission = urgent; another class/priority/admit source = elective).
- A: the patient's other inpatient encounters (class IMP/ACUTE/NONAC, not cancelled, planned or
  entered in error) starting in the 365 days before this admission started.
- L: calendar days from admission to discharge (while in hospital: to ``now``, so it can only
  grow and callers re-score daily, as for LACE).

A missing item is never counted as 0: the score is ``partial`` and its total is a floor ("at
least N"); the band is given only when every value the missing items could take keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from discharge_bridge.fhir.fields import (
    as_list,
    aware,
    code_values,
    codes,
    encounter_class_codes,
    encounter_status,
    obj,
    parse_datetime,
    period,
    text,
)
from discharge_bridge.risk.codes import norm_system
from discharge_bridge.risk.evidence import observation_counts
from discharge_bridge.risk.lace import LaceScore, compute_lace
from discharge_bridge.risk.record import PatientRecord

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
HAEMOGLOBIN_LOINC = frozenset({"718-7", "20509-6", "30313-1", "30350-3", "30352-9"})
SODIUM_LOINC = frozenset({"2951-2", "2947-0"})
ONCOLOGY_SNOMED = frozenset({"394593009", "394592004", "419815003"})
ONCOLOGY_WORDS = ("oncolog", "онколог")
INPATIENT_CLASSES = frozenset({"IMP", "ACUTE", "NONAC"})
NOT_AN_ADMISSION = frozenset({"cancelled", "entered-in-error", "planned"})
PROCEDURE_DONE = frozenset({"completed", "in-progress"})
LOOKBACK = timedelta(days=365)
HB_MMOL_TO_G_DL = 1.611

# The most each item can add: a missing item's range, to tell whether the band is settled.
MAX_POINTS = {"H": 1, "O": 2, "S": 1, "P": 1, "IT": 1, "A": 5, "L": 2}
ITEMS = tuple(MAX_POINTS)
LOW_MAX = 4
INTERMEDIATE_MAX = 6


@dataclass(frozen=True)
class HospitalScore:
    """``inputs``: per item, {"points", "value", "evidence"} (value in the item's unit; evidence a
    reference or None); ``missing``: items the data could not decide, never counted."""

    total: int
    partial: bool
    band: str | None  # low / intermediate / high; None when the missing items could change it
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def band_of(total: int) -> str:
    if total <= LOW_MAX:
        return "low"
    if total <= INTERMEDIATE_MAX:
        return "intermediate"
    return "high"


def admission_points(count: int) -> int:
    if count <= 1:
        return 0
    if count <= 5:
        return 2
    return 5


def _ref(resource: dict[str, Any]) -> str:
    return f"{text(resource.get('resourceType'))}/{text(resource.get('id'))}"


def _has_loinc(observation: dict[str, Any], wanted: frozenset[str]) -> bool:
    return any(
        c.code in wanted and norm_system(c.system) in ("http://loinc.org", "urn:oid:2.16.840.1.113883.6.1")
        for c in codes(observation.get("code"))
    )


def _when(resource: dict[str, Any], key: str) -> datetime | None:
    moment = parse_datetime(resource.get(f"{key}DateTime") or resource.get(f"{key}Instant"))
    if moment is None:
        start, end = period({"period": resource.get(f"{key}Period")})
        moment = end or start
    if moment is None and key == "effective":
        moment = parse_datetime(resource.get("issued"))
    return aware(moment) if moment is not None else None


def _in_stay(moment: datetime | None, start: datetime | None, end: datetime | None) -> bool:
    if moment is None:
        return False
    if start is not None and moment < start:
        return False
    return end is None or moment <= end


def _quantity(observation: dict[str, Any]) -> tuple[float, str] | None:
    quantity = obj(observation.get("valueQuantity"))
    value = quantity.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    unit = text(quantity.get("code")) or text(quantity.get("unit"))
    return float(value), unit.replace(" ", "").lower()


def _haemoglobin_g_dl(observation: dict[str, Any]) -> float | None:
    read = _quantity(observation)
    if read is None:
        return None
    value, unit = read
    if unit in ("g/dl", "g/100ml"):
        return value
    if unit == "g/l":
        return value / 10
    if unit == "mmol/l":
        return value * HB_MMOL_TO_G_DL
    return None


def _sodium_mmol_l(observation: dict[str, Any]) -> float | None:
    read = _quantity(observation)
    if read is None:
        return None
    value, unit = read
    return value if unit in ("mmol/l", "meq/l") else None


def _last_lab(
    record: PatientRecord, wanted: frozenset[str], start: datetime | None, end: datetime | None, reader: Any
) -> tuple[float, str] | None:
    """The last usable value of these codes within the stay, with the Observation's reference."""
    best: tuple[datetime, float, str] | None = None
    for observation in record.observations:
        if not isinstance(observation, dict) or not observation_counts(observation):
            continue
        if not _has_loinc(observation, wanted):
            continue
        moment = _when(observation, "effective")
        if not _in_stay(moment, start, end) or moment is None:
            continue
        value = reader(observation)
        if value is None:
            continue
        if best is None or moment > best[0]:
            best = (moment, value, _ref(observation))
    return (best[1], best[2]) if best else None


def _oncology(encounter: dict[str, Any]) -> bool | None:
    service = encounter.get("serviceType")
    if not isinstance(service, dict) and not isinstance(service, list):
        return None
    words = [text(obj(s).get("text")).lower() for s in as_list(service)]
    for c in codes(service):
        if c.code in ONCOLOGY_SNOMED and norm_system(c.system) == SNOMED:
            return True
        words.append(c.display.lower())
        words.append(c.code.lower())
    return any(word in w for w in words for word in ONCOLOGY_WORDS)


def _procedure(record: PatientRecord, start: datetime | None, end: datetime | None) -> tuple[int, str | None] | None:
    if not record.procedures:
        return None
    for procedure in record.procedures:
        if not isinstance(procedure, dict):
            continue
        if not code_values(procedure.get("status")) & PROCEDURE_DONE:
            continue
        if _in_stay(_when(procedure, "performed"), start, end):
            return 1, _ref(procedure)
    return 0, None


def _prior_admissions(record: PatientRecord, start: datetime | None) -> tuple[int, list[str]] | None:
    if start is None:
        return None
    found = []
    for other in record.other_encounters:
        if not isinstance(other, dict) or encounter_status(other) in NOT_AN_ADMISSION:
            continue
        if not {c.upper() for c in encounter_class_codes(other)} & INPATIENT_CLASSES:
            continue
        o_start = period(other)[0]
        if o_start is not None and start - LOOKBACK <= o_start < start:
            found.append(_ref(other))
    return len(found), found


def compute_hospital(record: PatientRecord, now: datetime, lace: LaceScore | None = None) -> HospitalScore:
    """The HOSPITAL score of the record's admission as of ``now`` (naive ``now`` is read as UTC).

    ``lace``: the same admission's LACE, when already computed (its "A" is HOSPITAL's "IT")."""
    start, end = period(record.encounter)
    inputs: dict[str, dict[str, Any]] = {}
    encounter_ref = _ref(record.encounter)

    hb = _last_lab(record, HAEMOGLOBIN_LOINC, start, end, _haemoglobin_g_dl)
    if hb is not None:
        inputs["H"] = {"points": int(hb[0] < 12), "value": round(hb[0], 1), "evidence": hb[1]}
    oncology = _oncology(record.encounter)
    if oncology is not None:
        inputs["O"] = {"points": 2 if oncology else 0, "value": oncology, "evidence": encounter_ref}
    sodium = _last_lab(record, SODIUM_LOINC, start, end, _sodium_mmol_l)
    if sodium is not None:
        inputs["S"] = {"points": int(sodium[0] < 135), "value": round(sodium[0], 1), "evidence": sodium[1]}
    procedure = _procedure(record, start, end)
    if procedure is not None:
        inputs["P"] = {"points": procedure[0], "value": bool(procedure[0]), "evidence": procedure[1]}
    acute = (lace or compute_lace(record, now)).components["A"]
    if acute is not None:
        inputs["IT"] = {"points": int(acute > 0), "value": "urgent" if acute else "elective", "evidence": encounter_ref}
    prior = _prior_admissions(record, start)
    if prior is not None:
        inputs["A"] = {
            "points": admission_points(prior[0]),
            "value": prior[0],
            "evidence": ", ".join(prior[1]) or None,
        }
    if start is not None:
        until = end if end is not None else aware(now)
        days = max((until.astimezone(start.tzinfo).date() - start.date()).days, 0)
        inputs["L"] = {"points": 2 if days >= 5 else 0, "value": days, "evidence": encounter_ref}

    missing = [item for item in ITEMS if item not in inputs]
    total = sum(i["points"] for i in inputs.values())
    ceiling = total + sum(MAX_POINTS[item] for item in missing)
    band = band_of(total) if band_of(total) == band_of(ceiling) else None
    ordered = {item: inputs[item] for item in ITEMS if item in inputs}
    return HospitalScore(total=total, partial=bool(missing), band=band, inputs=ordered, missing=missing)
