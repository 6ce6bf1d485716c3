"""A deterministic synthetic hospital in FHIR R4 JSON, shaped like what real EHRs send.

Per patient: 1 Patient, 1-2 Encounters (the current inpatient stay, sometimes an earlier stay of
any class), 2-4 Conditions, 1-2 Observations (mostly social history), 0-1 RelatedPerson. About 4%
of resources are "messy" in the ways normalise tolerates (zone-less times, bare Codings where a
CodeableConcept is due, R5-shaped ``Encounter.class``, empty strings, vendor top-level keys) and
fail strict R4 validation. One resource in a thousand is unusable (an Encounter without subject)
and must end as a dead letter.

The same seed and size always give the same resources; a smaller size is a prefix of a larger one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

VENDOR = "http://ehr.vendor.example/fhir/StructureDefinition"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
T0 = datetime(2025, 1, 6, 0, 0, tzinfo=UTC)
SEED = 20250106
MESSY = 0.04  # share of resources with a tolerated departure from R4

CLASS_DISPLAY = {"IMP": "inpatient encounter", "EMER": "emergency", "AMB": "ambulatory", "ACUTE": "inpatient acute"}
ICD10 = [
    ("I50.9", "Heart failure, unspecified"),
    ("J44.1", "COPD with acute exacerbation"),
    ("E11.9", "Type 2 diabetes mellitus without complications"),
    ("F03.90", "Unspecified dementia without behavioral disturbance"),
    ("N18.3", "Chronic kidney disease, stage 3"),
    ("I10", "Essential (primary) hypertension"),
    ("J18.9", "Pneumonia, unspecified organism"),
    ("S72.001A", "Fracture of unspecified part of neck of right femur"),
    ("F10.20", "Alcohol dependence, uncomplicated"),
    ("C34.90", "Malignant neoplasm of unspecified part of bronchus or lung"),
    ("I63.9", "Cerebral infarction, unspecified"),
    ("Z59.0", "Homelessness"),
]
SOCIAL_LOINC = [
    ("71802-3", "Housing status"),
    ("63512-8", "How many people are living or staying at this address"),
    ("76513-1", "How hard is it for you to pay for the very basics like food, housing, medical care"),
    ("93030-5", "Has lack of transportation kept you from medical appointments"),
]
OBS_CATEGORIES = ["social-history"] * 14 + ["survey"] * 3 + ["functional-status"] + ["laboratory"] * 2
RELATIONSHIPS = [("DAU", "daughter"), ("SON", "son"), ("WIFE", "wife"), ("HUSB", "husband"), ("NBOR", "neighbor")]
FAMILY = ["Ivanova", "Smith", "Petrov", "Garcia", "Kowalski", "Nguyen", "Okafor", "Larsen", "Haddad", "Moreau"]
GIVEN = ["Anna", "John", "Olga", "Maria", "Pavel", "Amir", "Chen", "Fatima", "Lars", "Ines", "Sergei", "Ruth"]
WARDS = [f"Ward {n}" for n in range(1, 25)]


@dataclass
class Item:
    """A resource with what the loopback server indexes it by."""

    resource: dict[str, Any]
    stamp: str  # meta.lastUpdated, ISO with milliseconds and Z: sorts as text
    patient: str | None = None
    cls: str | None = None
    categories: frozenset[str] = field(default_factory=frozenset)


class _Clock:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.now = T0

    def tick(self) -> tuple[datetime, str]:
        self.now += timedelta(milliseconds=self.rng.randint(200, 2000))
        return self.now, self.now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _meta(rng: random.Random, stamp: str) -> dict[str, Any]:
    return {"versionId": str(rng.randint(1, 4)), "lastUpdated": stamp, "source": "#ehr-prod-2"}


def _local(moment: datetime, rng: random.Random, messy: bool) -> str:
    """A dateTime with the hospital's +03:00 offset; a messy one drops the zone (seen in the wild)."""
    local = (moment + timedelta(hours=3)).replace(tzinfo=None, microsecond=0).isoformat()
    return local if messy else local + "+03:00"


def _cc(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


class Generator:
    def __init__(self, seed: int = SEED) -> None:
        self.rng = random.Random(seed)
        self.clock = _Clock(self.rng)
        self.items: list[Item] = []
        self.next_bad = 1000
        self.bad = 0
        self.serial = 0

    def _messy(self) -> bool:
        return self.rng.random() < MESSY

    def _id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial:07d}"

    def _add(self, resource: dict[str, Any], stamp: str, **tags: Any) -> None:
        self.items.append(Item(resource, stamp, **tags))

    def patient(self) -> str:
        rng = self.rng
        pid = self._id("pat")
        _, stamp = self.clock.tick()
        year = rng.randint(1928, 1985)
        messy = self._messy()
        res: dict[str, Any] = {
            "resourceType": "Patient",
            "id": pid,
            "meta": _meta(rng, stamp),
            "extension": [
                {"url": f"{VENDOR}/patient-mrn-check-digit", "valueString": str(rng.randint(0, 9))},
                {"url": f"{VENDOR}/patient-interpreter-needed", "valueBoolean": rng.random() < 0.1},
            ],
            "identifier": [
                {
                    "use": "usual",
                    "type": _cc("http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical record number"),
                    "system": "urn:oid:1.2.643.5.1.13.13.12.2.77.7",
                    "value": f"MRN{rng.randint(10_000_000, 99_999_999)}",
                }
            ],
            "active": True,
            "name": [{"use": "official", "family": rng.choice(FAMILY), "given": [rng.choice(GIVEN)]}],
            "telecom": [{"system": "phone", "value": f"+7 495 {rng.randint(100, 999)}-{rng.randint(1000, 9999)}"}],
            "gender": rng.choice(["female", "male"]),
            "birthDate": f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "address": [{"use": "home", "city": "Moscow", "postalCode": f"1{rng.randint(10000, 29999)}"}],
        }
        if messy:
            kind = rng.randint(0, 2)
            if kind == 0:
                res["birthDate"] = str(year)  # partial date: valid FHIR, but kept to exercise the column
                res["gender"] = ""  # empty string: invalid R4
            elif kind == 1:
                res["vendorPatientClass"] = "VIP"  # vendor key at top level: invalid R4
            else:
                res["deceasedDateTime"] = _local(self.clock.now, rng, True)
        self._add(res, stamp, patient=pid)
        return pid

    def condition(self, pid: str, enc_id: str) -> None:
        rng = self.rng
        code, display = rng.choice(ICD10)
        onset, stamp = self.clock.tick()
        messy = self._messy()
        status = {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
        res: dict[str, Any] = {
            "resourceType": "Condition",
            "id": self._id("cond"),
            "meta": _meta(rng, stamp),
            # a bare Coding where a CodeableConcept is due: some EHRs do this
            "clinicalStatus": status if messy else {"coding": [status]},
            "verificationStatus": _cc(
                "http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed"
            ),
            "category": [
                _cc(
                    "http://terminology.hl7.org/CodeSystem/condition-category",
                    "encounter-diagnosis",
                    "Encounter Diagnosis",
                )
            ],
            "code": _cc("http://hl7.org/fhir/sid/icd-10", code, display),
            "subject": {"reference": f"Patient/{pid}"},
            "encounter": {"reference": f"Encounter/{enc_id}"},
            "onsetDateTime": _local(onset - timedelta(days=rng.randint(0, 3000)), rng, False),
            "recordedDate": _local(onset, rng, False),
        }
        self._add(res, stamp, patient=pid)

    def observation(self, pid: str) -> None:
        rng = self.rng
        category = rng.choice(OBS_CATEGORIES)
        code, display = rng.choice(SOCIAL_LOINC)
        when, stamp = self.clock.tick()
        messy = self._messy()
        res: dict[str, Any] = {
            "resourceType": "Observation",
            "id": self._id("obs"),
            "meta": _meta(rng, stamp),
            "status": "final",
            "category": [_cc(OBS_CATEGORY, category, category.replace("-", " ").title())],
            "code": _cc("http://loinc.org", code, display),
            "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": _local(when, rng, messy),
            "valueCodeableConcept": _cc("http://loinc.org", f"LA{rng.randint(1000, 9999)}-{rng.randint(0, 9)}", "Yes"),
        }
        if messy:
            res["valueString"] = ""  # second value[x] and empty: invalid R4
        self._add(res, stamp, patient=pid, categories=frozenset({category}))

    def related_person(self, pid: str) -> None:
        rng = self.rng
        code, display = rng.choice(RELATIONSHIPS)
        _, stamp = self.clock.tick()
        rel = {"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": code, "display": display}
        res: dict[str, Any] = {
            "resourceType": "RelatedPerson",
            "id": self._id("rp"),
            "meta": _meta(rng, stamp),
            "active": rng.random() < 0.9,
            "patient": {"reference": f"Patient/{pid}"},
            "relationship": [rel if self._messy() else {"coding": [rel]}],
            "name": [{"family": rng.choice(FAMILY), "given": [rng.choice(GIVEN)]}],
            "telecom": [{"system": "phone", "value": f"+7 916 {rng.randint(100, 999)}-{rng.randint(1000, 9999)}"}],
        }
        self._add(res, stamp, patient=pid)

    def encounter(self, pid: str | None, eid: str, cls: str, *, current: bool) -> None:
        rng = self.rng
        _, stamp = self.clock.tick()
        messy = self._messy()
        start = self.clock.now - timedelta(hours=rng.randint(2, 240) if current else rng.randint(300, 9000))
        ward = rng.choice(WARDS)
        class_coding = {"system": ACT_CODE, "code": cls, "display": CLASS_DISPLAY[cls]}
        res: dict[str, Any] = {
            "resourceType": "Encounter",
            "id": eid,
            "meta": _meta(rng, stamp),
            "extension": [{"url": f"{VENDOR}/encounter-ward-code", "valueCode": ward.replace(" ", "")}],
            "identifier": [{"system": "urn:ehr:visit", "value": f"V{rng.randint(1_000_000, 9_999_999)}"}],
            "status": "in-progress" if current else "finished",
            # R5 made class a list of CodeableConcepts; some servers already send that shape
            "class": [{"coding": [class_coding]}] if messy else class_coding,
            "type": [_cc("http://snomed.info/sct", "32485007", "Hospital admission")],
            "period": {"start": _local(start, rng, messy)},
            "hospitalization": {
                "admitSource": _cc(
                    "http://terminology.hl7.org/CodeSystem/admit-source", "emd", "From accident/emergency department"
                ),
            },
            "location": [
                {
                    "location": {"reference": f"Location/{ward.replace(' ', '').lower()}", "display": ward},
                    "status": "active",
                    "physicalType": _cc("http://terminology.hl7.org/CodeSystem/location-physical-type", "wa", "Ward"),
                },
                {
                    "location": {"display": f"{ward} bed {rng.randint(1, 30)}"},
                    "status": "active",
                    "physicalType": _cc("http://terminology.hl7.org/CodeSystem/location-physical-type", "bd", "Bed"),
                },
            ],
        }
        if pid is not None:
            res["subject"] = {"reference": f"Patient/{pid}", "display": "patient"}
        if current:
            planned = start + timedelta(days=rng.randint(2, 12))
            res["extension"].append(
                {
                    "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-Encounter.plannedEndDate",
                    "valueDateTime": _local(planned, rng, False),
                }
            )
        else:
            res["period"]["end"] = _local(start + timedelta(days=rng.randint(1, 9)), rng, False)
            res["hospitalization"]["dischargeDisposition"] = _cc(
                "http://terminology.hl7.org/CodeSystem/discharge-disposition", "home", "Home"
            )
        self._add(res, stamp, patient=pid, cls=cls)

    def admission(self) -> None:
        """One admitted patient with everything recorded about them, oldest first."""
        rng = self.rng
        pid = self.patient()
        current = self._id("enc")
        if rng.random() < 0.5:
            self.encounter(pid, self._id("enc"), rng.choice(["IMP", "EMER", "AMB", "AMB"]), current=False)
        for _ in range(rng.randint(2, 4)):
            self.condition(pid, current)
        for _ in range(rng.choice([1, 1, 2, 2])):
            self.observation(pid)
        if rng.random() < 0.5:
            self.related_person(pid)
        self.encounter(pid, current, rng.choice(["IMP"] * 9 + ["ACUTE"]), current=True)
        if len(self.items) >= self.next_bad:
            # an inpatient Encounter that names no patient: nothing can be done with it
            self.encounter(None, self._id("enc"), "IMP", current=True)
            self.bad += 1
            self.next_bad += 1000


def generate(n_resources: int, seed: int = SEED) -> Generator:
    """Admissions until the hospital holds at least ``n_resources`` resources."""
    gen = Generator(seed)
    while len(gen.items) < n_resources:
        gen.admission()
    return gen
