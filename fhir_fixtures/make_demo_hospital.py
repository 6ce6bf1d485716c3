"""Generate the bundled demo hospital: Bulk-Data-style NDJSON that `discharge-bridge demo` loads.

The output is committed (``fhir_fixtures/demo-hospital/``) and pinned to the anchor date
``2026-11-23``: admissions started 1-20 days before it, prior stays ended 5-60 days before it.
Everything is seeded, so the same anchor always gives the same bytes, and
``tests/ingest/test_demo_hospital.py`` fails when the committed files drift from this script.

Regenerate after editing this script (from the repository root)::

    .venv/bin/python fhir_fixtures/make_demo_hospital.py

A demo that looks current on another day (not for committing)::

    .venv/bin/python fhir_fixtures/make_demo_hospital.py --today 2027-03-01 --out /tmp/demo-hospital

The census: about 40 current inpatient admissions over three wards, with every concept of
``mappings/default.yaml`` (and the built-in elderly, no_contacts, no_guardian, readmission) proved
at least twice, a dozen admissions that must not be flagged, discharges in progress (R5
``plannedEndDate`` as a cross-version extension) and finished, outpatient and cancelled encounters
that must never be flagged, Conditions that must not count, a few messy-but-usable resources for
the conformance report and, in ``Encounter.broken.ndjson``, two lines that become dead letters.
All names are fictional. Standard library and orjson only: no network.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

ANCHOR = date(2026, 11, 23)
SEED = 20261123
MSK = timezone(timedelta(hours=3))  # the demo hospital's zone (Europe/Moscow, no DST)
OUT = Path(__file__).resolve().parent / "demo-hospital"

ICD10 = "http://hl7.org/fhir/sid/icd-10"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
V2_0131 = "http://terminology.hl7.org/CodeSystem/v2-0131"
V2_0220 = "http://terminology.hl7.org/CodeSystem/v2-0220"
LIVING = "http://terminology.hl7.org/CodeSystem/v3-LivingArrangement"
PLANNED_END = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Encounter.plannedEndDate"
LOCAL_SOCIAL = "http://demo-hospital.example/fhir/CodeSystem/social-history"

DISPLAYS = {
    # social-risk codes (mappings/default.yaml)
    "Z60.2": "Problems related to living alone",
    "Z60.4": "Social exclusion and rejection",
    "Z59.0": "Homelessness",
    "Z73.6": "Limitation of activities due to disability",
    "Z99.3": "Dependence on wheelchair",
    "Z74.0": "Reduced mobility",
    "Z74.1": "Need for assistance with personal care",
    "Z74.2": "Need for assistance at home and no other household member able to render care",
    "Z74.3": "Need for continuous supervision",
    "Z74.9": "Problem related to care-provider dependency, unspecified",
    "F03": "Unspecified dementia",
    "G30.1": "Alzheimer disease with late onset",
    "105529008": "Lives alone (finding)",
    "32911000": "Homeless (finding)",
    "52448006": "Dementia (disorder)",
    "422650009": "Social isolation (finding)",
    # admission diagnoses
    "I50.0": "Congestive heart failure",
    "J18.9": "Pneumonia, unspecified",
    "J44.1": "Chronic obstructive pulmonary disease with acute exacerbation, unspecified",
    "N39.0": "Urinary tract infection, site not specified",
    "I48.9": "Atrial fibrillation and atrial flutter, unspecified",
    "I63.9": "Cerebral infarction, unspecified",
    "G45.9": "Transient cerebral ischaemic attack, unspecified",
    "G40.9": "Epilepsy, unspecified",
    "G43.9": "Migraine, unspecified",
    "I61.9": "Intracerebral haemorrhage, unspecified",
    "S72.0": "Fracture of neck of femur",
    "K80.1": "Calculus of gallbladder with other cholecystitis",
    "K35.8": "Acute appendicitis, other and unspecified",
    "K56.6": "Other and unspecified intestinal obstruction",
    "K40.9": "Unilateral or unspecified inguinal hernia, without obstruction or gangrene",
    "S52.5": "Fracture of lower end of radius",
    "S42.0": "Fracture of clavicle",
    "S82.2": "Fracture of shaft of tibia",
    # comorbidities (Charlson, for LACE)
    "E11.9": "Non-insulin-dependent diabetes mellitus without complications",
    "I25.2": "Old myocardial infarction",
    "N18.4": "Chronic kidney disease, stage 4",
}
WARDS = {3: "Therapy ward 3", 5: "Neurology ward 5", 2: "Surgery ward 2"}
WARD_DX = {
    3: ["I50.0", "J18.9", "J44.1", "N39.0", "I48.9"],
    5: ["I63.9", "G45.9", "I61.9", "G40.9"],
    2: ["S72.0", "K80.1", "K56.6", "K40.9", "S82.2"],
}
COMORBIDITIES = ["E11.9", "I25.2", "N18.4", "I48.9"]
DISPOSITIONS = {
    "home": "Home",
    "snf": "Skilled nursing facility",
    "long": "Long-term care",
    "oth": "Other",
}
RELATIONS = {
    "DAU": "daughter", "SON": "son", "WIFE": "wife", "HUSB": "husband", "SIS": "sister",
    "BRO": "brother", "NIECE": "niece", "NEPHEW": "nephew", "MTH": "mother", "FTH": "father",
}
RELATION_SEX = {"DAU": "f", "WIFE": "f", "SIS": "f", "NIECE": "f", "MTH": "f"}

SURNAMES = [
    "Ivanov", "Petrov", "Sidorov", "Smirnov", "Kuznetsov", "Popov", "Sokolov", "Lebedev", "Kozlov",
    "Novikov", "Morozov", "Volkov", "Vasiliev", "Zaitsev", "Pavlov", "Semyonov", "Golubev",
    "Vinogradov", "Bogdanov", "Vorobyov", "Fyodorov", "Mikhailov", "Belyaev", "Tarasov", "Belov",
    "Komarov", "Orlov", "Kiselev", "Makarov", "Andreev", "Kovalev", "Ilyin", "Gusev", "Titov",
    "Kuzmin", "Baranov", "Kulikov", "Alekseev", "Stepanov", "Yakovlev", "Sorokin", "Sergeev",
    "Zakharov", "Borisov", "Gerasimov", "Ponomarev", "Grigoriev", "Lazarev", "Ershov", "Nikitin",
    "Sobolev", "Ryabov", "Polyakov", "Tsvetkov", "Danilov", "Zhukov", "Frolov", "Krylov",
]
GIVEN = {
    "m": ["Ivan", "Pyotr", "Nikolai", "Sergei", "Alexei", "Vladimir", "Mikhail", "Andrei", "Dmitry",
          "Yuri", "Viktor", "Gennady", "Boris", "Anatoly", "Oleg", "Pavel", "Konstantin", "Leonid"],
    "f": ["Anna", "Maria", "Olga", "Tatiana", "Natalia", "Elena", "Galina", "Valentina", "Lyudmila",
          "Nina", "Zinaida", "Tamara", "Vera", "Nadezhda", "Lidia", "Raisa", "Svetlana", "Irina"],
}
PATRONYMICS = {  # father's name -> (son's, daughter's) patronymic
    "Ivan": ("Ivanovich", "Ivanovna"), "Pyotr": ("Petrovich", "Petrovna"),
    "Nikolai": ("Nikolaevich", "Nikolaevna"), "Sergei": ("Sergeevich", "Sergeevna"),
    "Mikhail": ("Mikhailovich", "Mikhailovna"), "Alexei": ("Alekseevich", "Alekseevna"),
    "Vasily": ("Vasilievich", "Vasilievna"), "Fyodor": ("Fyodorovich", "Fyodorovna"),
    "Grigory": ("Grigorievich", "Grigorievna"), "Stepan": ("Stepanovich", "Stepanovna"),
}


# --- the census ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Social:
    """One piece of social evidence: a Condition (`icd` / `sct`) or an Observation."""

    kind: str  # icd | sct | living (v2-0220) | housing (v3-LivingArrangement) | household | sct-obs
    code: str = ""
    value: int = 0
    clinical: str = "active"
    verification: str = "confirmed"


@dataclass
class Admission:
    """One patient and their current (or just finished) inpatient stay. Ages are at admission."""

    sex: str
    age: int | None
    ward: int
    days_ago: int
    social: list[Social] = field(default_factory=list)
    relatives: list[str] = field(default_factory=list)  # RelatedPerson v3-RoleCode
    contacts: list[tuple[str, str]] = field(default_factory=list)  # Patient.contact (v2-0131, who)
    birth: str | None = None  # an explicit (possibly partial) birthDate instead of `age`
    cls: str = "IMP"
    status: str = "in-progress"
    dx: str | None = None
    planned_end: int | None = None  # days from the anchor (negative: already overdue)
    finished: tuple[int, str] | None = None  # (days ago, discharge disposition)
    prior: list[tuple[str, str, int]] = field(default_factory=list)  # (class, status, days before admission)
    messy: str | None = None
    inactive_relatives: list[str] = field(default_factory=list)
    icu_days: int = 0  # the stay began in intensive care: a parent Encounter with an ICU leg, then the ward's
    died_days_ago: int | None = None  # Patient.deceasedDateTime; the EHR has not closed the Encounter yet
    merged_stay_days: int | None = None  # a second record merged into this one (Patient.link), with an
    #                                      earlier inpatient stay ending this many days before admission
    note: str = ""


def icd(code: str, clinical: str = "active", verification: str = "confirmed") -> Social:
    return Social("icd", code, clinical=clinical, verification=verification)


def sct(code: str) -> Social:
    return Social("sct", code)


CENSUS: list[Admission] = [
    # Therapy ward 3: the elderly, living alone, dementia, no contacts, readmissions
    Admission("f", None, 3, 6, [sct("105529008")], ["DAU"], birth="1938", dx="I50.0",
              prior=[("AMB", "finished", 30)], messy="condition-vendor-key", note="lives alone, 87"),
    Admission("m", 82, 3, 9, [icd("Z60.2")], contacts=[("N", "NEPHEW")], planned_end=-1,
              messy="patient-vendor-key", note="lives alone, discharge overdue"),
    Admission("f", 78, 3, 4, [Social("living", "A")], messy="observation-no-zone",
              note="lives alone (v2-0220), no contacts"),
    Admission("f", 85, 3, 3, [icd("Z60.2"), icd("Z74.2")], ["SON"], birth="1941-05",
              messy="encounter-no-zone", note="lives alone, no caregiver"),
    Admission("m", 76, 3, 11, [Social("living", "A"), sct("422650009")],
              note="lives alone, isolated, no contacts"),
    Admission("f", 91, 3, 14, [icd("F03")], note="dementia, no contacts"),
    Admission("m", 80, 3, 8, [icd("G30.1"), icd("Z74.1")], prior=[("EMER", "finished", 20)],
              note="Alzheimer's, ADL, no contacts"),
    Admission("f", 73, 3, 5, [sct("52448006")], ["DAU"], status="onleave", note="dementia"),
    Admission("m", 69, 3, 2, [], note="no contacts at 69"),
    Admission("f", 77, 3, 7, [], note="no contacts at 77"),
    Admission("m", 67, 3, 5, [], ["WIFE"], dx="J44.1", prior=[("IMP", "finished", 8)], note="readmission"),
    Admission("f", 71, 3, 10, [icd("Z74.0")], ["DAU"], prior=[("IMP", "finished", 27), ("EMER", "finished", 40)],
              note="readmission, reduced mobility"),
    Admission("m", 58, 3, 6, [], ["WIFE"], planned_end=1, prior=[("EMER", "finished", 35)], note="unflagged"),
    Admission("f", 44, 3, 4, [icd("Z60.2", clinical="resolved")], ["HUSB"],
              note="unflagged: living alone resolved"),
    Admission("m", 62, 3, 12, [icd("F03", verification="refuted")], contacts=[("N", "SON")],
              note="unflagged: dementia refuted"),
    # Neurology ward 5: stroke, disability, dependency, homelessness
    Admission("m", 72, 5, 13, [icd("Z73.6")], ["WIFE"], dx="I63.9", note="disability"),
    Admission("f", 66, 5, 6, [icd("Z99.3")], ["SON"], dx="I63.9", prior=[("IMP", "finished", 45)],
              note="wheelchair; prior stay too old for readmission"),
    Admission("m", 54, 5, 9, [icd("Z74.3")], ["WIFE"], dx="I61.9", note="needs supervision"),
    Admission("f", 81, 5, 5, [icd("Z74.2"), sct("105529008")], contacts=[("C", "NIECE")], dx="G45.9",
              note="lives alone, no caregiver"),
    Admission("m", 48, 5, 3, [icd("Z59.0")], cls="ACUTE", dx="G40.9",
              prior=[("EMER", "finished", 12), ("EMER", "finished", 31)], note="homeless"),
    Admission("m", 39, 5, 2, [sct("32911000")], cls="ACUTE", status="onleave", dx="G40.9", note="homeless"),
    Admission("m", 60, 5, 7, [], ["WIFE"], dx="G40.9", note="unflagged"),
    Admission("f", 35, 5, 2, [], ["MTH", "HUSB"], dx="G43.9", note="unflagged"),
    Admission("f", 52, 5, 8, [icd("Z59.0", verification="entered-in-error")], ["DAU"],
              prior=[("IMP", "cancelled", 3)], note="unflagged: homelessness entered in error"),
    Admission("m", 70, 5, 16, [], ["WIFE"], dx="I63.9", planned_end=-2,
              prior=[("IMP", "finished", 14), ("EMER", "finished", 15)], note="readmission, discharge overdue"),
    Admission("f", 83, 5, 12, [icd("Z73.6"), icd("Z74.9")], ["DAU"], dx="I63.9", planned_end=2,
              note="disability, ADL"),
    # Surgery ward 2: homelessness, large families, children
    Admission("m", 56, 2, 4, [Social("housing", "HL")], cls="ACUTE", dx="K56.6", note="homeless (housing)"),
    Admission("f", 41, 2, 3, [Social("household", value=7)], ["HUSB"], dx="K80.1", note="household of 7"),
    Admission("m", 45, 2, 5, [Social("household", value=9)], ["WIFE"], status="onleave", dx="K35.8",
              note="household of 9"),
    Admission("f", 38, 2, 2, [Social("household", value=4)], ["HUSB"], dx="K80.1", note="unflagged: household of 4"),
    Admission("m", 15, 2, 2, [], cls="ACUTE", dx="K35.8", note="child, no guardian"),
    Admission("f", 16, 2, 5, [], contacts=[("C", "NEIGHBOUR")], dx="S52.5",
              note="child, emergency contact is no guardian"),
    Admission("m", 12, 2, 1, [], inactive_relatives=["MTH"], dx="S42.0",
              note="child, mother's record inactive"),
    Admission("f", 9, 2, 3, [], ["MTH"], dx="S42.0", note="unflagged: child with mother"),
    Admission("m", 13, 2, 4, [], ["MTH", "FTH"], dx="K35.8", note="unflagged: child with parents"),
    Admission("f", 79, 2, 1, [icd("Z74.0"), icd("Z60.2")], cls="ACUTE", status="arrived", dx="S72.0",
              note="hip fracture, lives alone, no contacts"),
    Admission("m", 63, 2, 5, [], ["WIFE"], dx="K40.9", planned_end=1, note="unflagged"),
    Admission("f", 50, 2, 4, [], ["SIS"], dx="K80.1", planned_end=0, note="unflagged"),
    Admission("m", 33, 2, 3, [], ["MTH"], dx="S82.2", note="unflagged"),
    Admission("f", 74, 2, 9, [Social("household", value=6)], ["SON"], dx="S72.0", note="household of 6"),
    Admission("m", 57, 2, 6, [icd("Z60.4"), Social("sct-obs", "105529008")], ["BRO"], dx="K56.6",
              note="isolated, lives alone"),
    Admission("f", 88, 3, 7, [Social("sct-obs", "422650009")], ["DAU"], dx="J18.9", note="isolated, 88"),
    # discharged in the last days: cases close, never flagged anew
    Admission("f", 80, 3, 11, [icd("Z60.2")], ["NIECE"], finished=(2, "snf"), note="discharged"),
    Admission("m", 61, 5, 8, [], ["WIFE"], finished=(1, "home"), dx="G45.9", note="discharged"),
    Admission("f", 86, 3, 15, [icd("F03")], finished=(3, "long"), note="discharged"),
    Admission("m", 47, 2, 6, [icd("Z59.0")], cls="ACUTE", finished=(1, "oth"), dx="S82.2", note="discharged"),
    # never flagged: an outpatient visit and a cancelled admission of patients at risk
    Admission("f", 82, 3, 0, [icd("Z60.2")], cls="AMB", note="outpatient only"),
    Admission("m", 90, 3, 2, [icd("F03")], status="cancelled", note="cancelled admission only"),
    # one stay in several Encounters, and a death the EHR has not closed the stay for
    Admission("f", 84, 3, 6, [icd("Z60.2")], ["SON"], dx="I50.0", icu_days=2, note="transfer: ICU then ward 3"),
    Admission("m", 91, 5, 4, [icd("Z60.2")], dx="I61.9", died_days_ago=0, note="died; Encounter still open"),
    Admission("f", 79, 2, 3, [], ["DAU"], dx="S72.0", merged_stay_days=12,
              note="registered twice, merged: the old record's stay makes this a readmission"),
]


# --- building resources --------------------------------------------------------------------


class Builder:
    def __init__(self, anchor: date) -> None:
        self.anchor = anchor
        self.rng = random.Random(SEED)
        self.out: dict[str, list[dict[str, Any]]] = {
            t: [] for t in ("Patient", "Encounter", "Condition", "Observation", "RelatedPerson")
        }
        self.free_beds = {w: self.rng.sample(range(1, 25), 24) for w in WARDS}
        self.surnames = self.rng.sample(SURNAMES, len(SURNAMES))

    # times ---------------------------------------------------------------------------------

    def moment(self, days_ago: float, hour: int | None = None) -> datetime:
        day = self.anchor - timedelta(days=int(days_ago))
        hour = self.rng.randint(8, 20) if hour is None else hour
        if day == self.anchor:
            hour = min(hour, 6)  # nothing on the anchor day happens after the census was taken
        return datetime.combine(day, time(hour, self.rng.choice((0, 10, 15, 20, 30, 40, 45, 50))), MSK)

    def stamp(self, moment: datetime) -> str:
        return moment.isoformat()

    def meta(self, moment: datetime) -> dict[str, Any]:
        latest = datetime.combine(self.anchor, time(7, 0), MSK)
        return {"versionId": "1", "lastUpdated": min(moment, latest).isoformat()}

    # people --------------------------------------------------------------------------------

    def surname(self, sex: str) -> str:
        name = self.surnames.pop()
        return name + "a" if sex == "f" else name

    def human(self, sex: str, family: str) -> dict[str, Any]:
        father = self.rng.choice(sorted(PATRONYMICS))
        given = self.rng.choice(GIVEN[sex])
        patronymic = PATRONYMICS[father][0 if sex == "m" else 1]
        return {"use": "official", "family": family, "given": [given, patronymic],
                "text": f"{family} {given} {patronymic}"}

    def birth_date(self, adm: Admission, admitted: datetime) -> str:
        if adm.birth:
            return adm.birth
        assert adm.age is not None
        day = admitted.date()
        anniversary = day.replace(year=day.year - adm.age, day=min(day.day, 28))
        return (anniversary - timedelta(days=self.rng.randint(1, 360))).isoformat()

    def phone(self) -> dict[str, Any]:
        return {"system": "phone", "value": f"+7 900 555-{self.rng.randint(0, 99):02d}-{self.rng.randint(0, 99):02d}"}

    # one admission -------------------------------------------------------------------------

    def add(self, n: int, adm: Admission) -> None:
        pid = f"demo-pat-{n:03d}"
        subject = {"reference": f"Patient/{pid}"}
        admitted = self.moment(adm.days_ago)
        family = self.surname(adm.sex)
        patient: dict[str, Any] = {
            "resourceType": "Patient",
            "id": pid,
            "meta": self.meta(admitted - timedelta(hours=1)),
            "identifier": [{"system": "http://demo-hospital.example/fhir/sid/mrn", "value": f"MRN{400100 + n}"}],
            "active": True,
            "name": [self.human(adm.sex, family)],
            "gender": "female" if adm.sex == "f" else "male",
            "birthDate": self.birth_date(adm, admitted),
            "address": [{"use": "home", "city": "Demogorsk", "country": "RU"}],
        }
        for role, who in adm.contacts:
            sex = "f" if who in ("NIECE", "NEIGHBOUR") else "m"
            patient.setdefault("contact", []).append({
                "relationship": [{"coding": [{"system": V2_0131, "code": role,
                                              "display": "Next-of-Kin" if role == "N" else "Emergency Contact"}],
                                  "text": who.lower()}],
                "name": self.human(sex, self.surname(sex)),
                "telecom": [self.phone()],
            })
        if adm.messy == "patient-vendor-key":
            patient["misPensionerCategory"] = "veteran of labour"  # unknown vendor element
        self.out["Patient"].append(patient)

        for i, code in enumerate(adm.relatives + adm.inactive_relatives, start=1):
            sex = RELATION_SEX.get(code, "m")
            same_family = family[:-1] if adm.sex == "f" and sex == "m" else family
            if adm.sex == "m" and sex == "f":
                same_family = family + "a"
            rp: dict[str, Any] = {
                "resourceType": "RelatedPerson",
                "id": f"demo-rp-{n:03d}-{i}",
                "meta": self.meta(admitted),
                "active": code not in adm.inactive_relatives,
                "patient": subject,
                "relationship": [{"coding": [{"system": ROLE, "code": code, "display": RELATIONS[code].title()}],
                                  "text": RELATIONS[code]}],
                "name": [self.human(sex, same_family)],
                "telecom": [self.phone()],
            }
            self.out["RelatedPerson"].append(rp)

        if adm.died_days_ago is not None:
            patient["deceasedDateTime"] = self.stamp(self.moment(adm.died_days_ago, hour=5))
        if adm.merged_stay_days is not None:
            old = {**patient, "id": f"{pid}-old", "active": False,
                   "identifier": [{"system": "http://demo-hospital.example/fhir/sid/mrn", "value": f"MRN{700100 + n}"}],
                   "link": [{"other": {"reference": f"Patient/{pid}"}, "type": "replaced-by"}]}
            patient["link"] = [{"other": {"reference": f"Patient/{pid}-old"}, "type": "replaces"}]
            self.out["Patient"].append(old)
            self.out["Encounter"].append(self.prior(
                f"demo-enc-{n:03d}-old1", "IMP", "finished", {"reference": f"Patient/{pid}-old"},
                admitted, adm.merged_stay_days))
        enc_id = f"demo-enc-{n:03d}"
        if adm.icu_days:
            self.out["Encounter"] += self.legs(enc_id, adm, subject, admitted)
        else:
            self.out["Encounter"].append(self.encounter(enc_id, adm, subject, admitted))
        for j, (cls, status, before) in enumerate(adm.prior, start=1):
            self.out["Encounter"].append(self.prior(f"{enc_id}-p{j}", cls, status, subject, admitted, before))

        conditions: list[dict[str, Any]] = []
        if adm.cls != "AMB" and adm.status != "cancelled":
            dx = adm.dx or self.rng.choice(WARD_DX[adm.ward])
            conditions.append(self.condition(enc_id, ICD10, dx, "encounter-diagnosis", admitted, subject))
            if (adm.age or 80) >= 60 and self.rng.random() < 0.5:
                extra = self.rng.choice([c for c in COMORBIDITIES if c != dx])
                conditions.append(self.condition(enc_id, ICD10, extra, "problem-list-item", admitted, subject))
        observations: list[dict[str, Any]] = []
        for item in adm.social:
            if item.kind in ("icd", "sct"):
                system = ICD10 if item.kind == "icd" else SNOMED
                cond = self.condition(enc_id, system, item.code, "problem-list-item", admitted, subject)
                cond["clinicalStatus"]["coding"][0]["code"] = item.clinical
                cond["verificationStatus"]["coding"][0]["code"] = item.verification
                if item.clinical == "resolved":
                    cond["abatementDateTime"] = self.stamp(admitted - timedelta(days=400))
                conditions.append(cond)
            else:
                observations.append(self.observation(item, admitted, subject))
        for k, cond in enumerate(conditions, start=1):
            cond["id"] = f"demo-cond-{n:03d}-{k}"
        for k, obs in enumerate(observations, start=1):
            obs["id"] = f"demo-obs-{n:03d}-{k}"
        if adm.messy == "condition-vendor-key" and conditions:
            conditions[0]["misDiagnosisStage"] = "final"  # unknown vendor element
        if adm.messy == "observation-no-zone" and observations:
            # some EHRs drop the offset: read in the hospital's zone, reported by conformance
            observations[0]["effectiveDateTime"] = observations[0]["effectiveDateTime"][:19]
        self.out["Condition"] += conditions
        self.out["Observation"] += observations

    def encounter(self, enc_id: str, adm: Admission, subject: dict[str, Any], admitted: datetime) -> dict[str, Any]:
        enc: dict[str, Any] = {
            "resourceType": "Encounter",
            "id": enc_id,
            "meta": self.meta(admitted + timedelta(minutes=20)),
            "identifier": [{"system": "http://demo-hospital.example/fhir/sid/case", "value": f"C{enc_id[-3:]}/26"}],
            "status": "finished" if adm.finished else adm.status,
            "class": {"system": ACT, "code": adm.cls, "display": {"IMP": "inpatient encounter",
                      "ACUTE": "inpatient acute", "AMB": "ambulatory"}[adm.cls]},
            "subject": subject,
            "period": {"start": self.stamp(admitted)},
        }
        if adm.cls == "AMB":
            enc["serviceType"] = {"text": "Day clinic"}
            return enc
        if adm.planned_end is not None:
            planned = datetime.combine(self.anchor + timedelta(days=adm.planned_end), time(12, 0), MSK)
            enc["extension"] = [{"url": PLANNED_END, "valueDateTime": self.stamp(planned)}]
            enc["meta"] = self.meta(datetime.combine(self.anchor, time(6, 30), MSK))
        source = "emd" if adm.cls == "ACUTE" else self.rng.choice(["gp", "emd", "hosp-trans", "outp"])
        enc["hospitalization"] = {"admitSource": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/admit-source", "code": source}]}}
        if adm.status == "cancelled":
            enc["period"] = {"start": self.stamp(admitted)}
            return enc
        bed = self.free_beds[adm.ward].pop()
        enc["location"] = [
            self.location(f"demo-ward-{adm.ward}", WARDS[adm.ward], "wa", "Ward"),
            self.location(f"demo-bed-{adm.ward}-{bed:02d}", f"Bed {adm.ward}-{bed:02d}", "bd", "Bed"),
        ]
        if adm.finished:
            days_ago, disposition = adm.finished
            ended = self.moment(days_ago, hour=self.rng.randint(10, 15))
            enc["period"]["end"] = self.stamp(ended)
            enc["meta"] = self.meta(ended)
            for loc in enc["location"]:
                loc["status"] = "completed"
            enc["hospitalization"]["dischargeDisposition"] = {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/discharge-disposition",
                "code": disposition, "display": DISPOSITIONS[disposition]}]}
        if adm.messy == "encounter-no-zone":
            enc["period"]["start"] = enc["period"]["start"][:19]  # no offset, as some EHRs send it
        return enc

    def legs(self, enc_id: str, adm: Admission, subject: dict[str, Any], admitted: datetime) -> list[dict[str, Any]]:
        """A stay sent as the admission (parent) with its legs (``partOf``): ICU, finished, then the ward."""
        ward = self.encounter(enc_id, adm, subject, admitted)
        moved = admitted + timedelta(days=adm.icu_days)
        parent = {k: v for k, v in ward.items() if k not in ("location", "id")}
        parent = {"resourceType": "Encounter", "id": f"{enc_id}-stay", **parent}
        icu = {
            **parent,
            "id": f"{enc_id}-icu",
            "status": "finished",
            "period": {"start": self.stamp(admitted), "end": self.stamp(moved)},
            "partOf": {"reference": f"Encounter/{enc_id}-stay"},
            "location": [
                {**self.location("demo-ward-icu", "Intensive care unit", "wa", "Ward"), "status": "completed"}
            ],
            "meta": self.meta(moved),
        }
        icu.pop("extension", None)
        ward["partOf"] = {"reference": f"Encounter/{enc_id}-stay"}
        ward["period"] = {**ward["period"], "start": self.stamp(moved)}
        ward["meta"] = self.meta(moved + timedelta(minutes=5))
        return [parent, icu, ward]

    def location(self, ref: str, display: str, kind: str, kind_display: str) -> dict[str, Any]:
        return {
            "location": {"reference": f"Location/{ref}", "display": display},
            "status": "active",
            "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type",
                                         "code": kind, "display": kind_display}]},
        }

    def prior(self, enc_id: str, cls: str, status: str, subject: dict[str, Any],
              admitted: datetime, before: int) -> dict[str, Any]:
        """An earlier encounter; `before` is the days from its end to this admission."""
        ended = admitted - timedelta(days=before, hours=self.rng.randint(1, 5))
        length = {"IMP": timedelta(days=self.rng.randint(4, 10)), "EMER": timedelta(hours=self.rng.randint(3, 7)),
                  "AMB": timedelta(minutes=40)}[cls]
        started = ended - length
        enc: dict[str, Any] = {
            "resourceType": "Encounter",
            "id": enc_id,
            "meta": self.meta(ended),
            "status": status,
            "class": {"system": ACT, "code": cls, "display": {"IMP": "inpatient encounter",
                      "EMER": "emergency", "AMB": "ambulatory"}[cls]},
            "subject": subject,
            "period": {"start": self.stamp(started), "end": self.stamp(ended)},
        }
        if status == "cancelled":
            enc["period"] = {"start": self.stamp(started)}
            enc["meta"] = self.meta(started)
        elif cls == "IMP":
            enc["hospitalization"] = {"dischargeDisposition": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/discharge-disposition",
                "code": "home", "display": "Home"}]}}
        return enc

    def condition(self, enc_id: str, system: str, code: str, category: str,
                  admitted: datetime, subject: dict[str, Any]) -> dict[str, Any]:
        recorded = admitted + timedelta(hours=self.rng.randint(1, 20))
        cond: dict[str, Any] = {
            "resourceType": "Condition",
            "meta": self.meta(recorded),
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]},
            "verificationStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                      "code": category}]}],
            "code": {"coding": [{"system": system, "code": code, "display": DISPLAYS[code]}], "text": DISPLAYS[code]},
            "subject": subject,
            "recordedDate": self.stamp(recorded),
        }
        if category == "encounter-diagnosis":
            cond["encounter"] = {"reference": f"Encounter/{enc_id}"}
        return cond

    def observation(self, item: Social, admitted: datetime, subject: dict[str, Any]) -> dict[str, Any]:
        effective = admitted + timedelta(hours=self.rng.randint(2, 30))
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "meta": self.meta(effective),
            "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "social-history", "display": "Social History"}]}],
            "subject": subject,
            "effectiveDateTime": self.stamp(effective),
        }
        if item.kind == "living":
            obs["code"] = {"coding": [{"system": LOCAL_SOCIAL, "code": "living-arrangement"}],
                           "text": "Living arrangement"}
            obs["valueCodeableConcept"] = {"coding": [{"system": V2_0220, "code": item.code, "display": "Alone"}],
                                           "text": "Alone"}
        elif item.kind == "housing":
            obs["code"] = {"coding": [{"system": LOINC, "code": "71802-3", "display": "Housing status"}],
                           "text": "Housing status"}
            obs["valueCodeableConcept"] = {"coding": [{"system": LIVING, "code": item.code,
                                                       "display": "homeless"}], "text": "Homeless"}
        elif item.kind == "household":
            obs["code"] = {"coding": [{"system": LOINC, "code": "63512-8",
                                       "display": "How many people are living or staying at this address?"}],
                           "text": "Household size"}
            obs["valueQuantity"] = {"value": item.value, "unit": "{#}", "system": "http://unitsofmeasure.org",
                                    "code": "{#}"}
        else:  # a finding recorded as an Observation code, answered yes
            obs["code"] = {"coding": [{"system": SNOMED, "code": item.code, "display": DISPLAYS[item.code]}],
                           "text": DISPLAYS[item.code]}
            obs["valueBoolean"] = True
        return obs


def broken_lines(anchor: date) -> list[bytes]:
    """Two lines the demo turns into dead letters: no subject, and JSON cut off mid-way."""
    started = datetime.combine(anchor - timedelta(days=2), time(10, 30), MSK).isoformat()
    no_subject = {
        "resourceType": "Encounter",
        "id": "demo-enc-broken-1",
        "meta": {"versionId": "1", "lastUpdated": started},
        "status": "in-progress",
        "class": {"system": ACT, "code": "IMP", "display": "inpatient encounter"},
        "period": {"start": started},
    }
    truncated = dict(no_subject, id="demo-enc-broken-2", subject={"reference": "Patient/demo-pat-001"})
    return [orjson.dumps(no_subject), orjson.dumps(truncated)[:97]]


def generate(out: Path, anchor: date = ANCHOR) -> dict[str, int]:
    """Write the NDJSON files under `out`; return the number of lines per file."""
    builder = Builder(anchor)
    for n, adm in enumerate(CENSUS, start=1):
        builder.add(n, adm)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for rtype, resources in builder.out.items():
        (out / f"{rtype}.ndjson").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in resources))
        counts[f"{rtype}.ndjson"] = len(resources)
    broken = broken_lines(anchor)
    (out / "Encounter.broken.ndjson").write_bytes(b"".join(line + b"\n" for line in broken))
    counts["Encounter.broken.ndjson"] = len(broken)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--today", type=date.fromisoformat, default=ANCHOR,
                        help=f"the anchor date the census is relative to (default {ANCHOR}, the committed one)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    args = parser.parse_args()
    for name, count in generate(args.out, args.today).items():
        print(f"{args.out / name}: {count} lines")


if __name__ == "__main__":
    main()
