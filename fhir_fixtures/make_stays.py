"""Write fhir_fixtures/stays/: one hospital stay per folder, in the shapes real EHRs send it.

    python fhir_fixtures/make_stays.py

Each folder holds ``sync1.json``, ``sync2.json``... (transaction Bundles: what the EHR holds at each
sync, the changes only) and ``expected.yaml`` (what the service must show after the last sync).
The tests (tests/cases/test_stays_scenarios.py) load them into the EHR simulator and into a file
source, sync after each step, and check cases per stay, the live worklist, readmission reasons and
the case's timeline, with the clock at ``NOW``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent / "stays"
NOW = "2026-03-10T09:00:00Z"  # the tests' clock
V3 = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ADMIT = "http://terminology.hl7.org/CodeSystem/admit-source"
DISPO = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
ICD10 = "http://hl7.org/fhir/sid/icd-10"


def patient(pid: str, **extra: Any) -> dict[str, Any]:
    """85 and homeless on record (Z59.0 below): flagged high."""
    return {"resourceType": "Patient", "id": pid, "birthDate": "1940-06-15", "gender": "female", **extra}


def link(kind: str, other: str) -> list[dict[str, Any]]:
    """Patient.link to another record of the same person (R4 link-type: replaced-by, replaces, seealso)."""
    return [{"other": {"reference": f"Patient/{other}"}, "type": kind}]


def homeless(pid: str, cid: str, *, verification: str = "confirmed") -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "subject": {"reference": f"Patient/{pid}"},
        "code": {"coding": [{"system": ICD10, "code": "Z59.0", "display": "Homelessness"}]},
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "verificationStatus": {"coding": [{"code": verification}]},
    }


def encounter(
    eid: str,
    pid: str,
    start: str,
    *,
    status: str = "in-progress",
    end: str | None = None,
    ward: str | None = None,
    part_of: str | None = None,
    admit: str | None = None,
    disposition: str | None = None,
) -> dict[str, Any]:
    enc: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": eid,
        "status": status,
        "class": {"system": V3, "code": "IMP"},
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": start, **({"end": end} if end else {})},
    }
    if ward:
        enc["location"] = [
            {"location": {"display": ward}, "status": "active", "physicalType": {"coding": [{"code": "wa"}]}}
        ]
    if part_of:
        enc["partOf"] = {"reference": f"Encounter/{part_of}"}
    hosp: dict[str, Any] = {}
    if admit:
        hosp["admitSource"] = {"coding": [{"system": ADMIT, "code": admit}]}
    if disposition:
        hosp["dischargeDisposition"] = {"coding": [{"system": DISPO, "code": disposition}]}
    if hosp:
        enc["hospitalization"] = hosp
    return enc


def bundle(resources: list[dict[str, Any]], version: int) -> dict[str, Any]:
    entries = []
    for res in resources:
        res = {**res, "meta": {"versionId": str(version), "lastUpdated": f"2026-03-0{version}T00:00:00Z"}}
        url = f"{res['resourceType']}/{res['id']}"
        entries.append({"fullUrl": url, "resource": res, "request": {"method": "PUT", "url": url}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


SCENARIOS: dict[str, dict[str, Any]] = {
    "partof_chain": {
        "description": "An admission sent as a parent Encounter with ward legs (partOf): ICU finished, ward current.",
        "syncs": [
            [
                patient("st-po"),
                homeless("st-po", "st-po-c"),
                encounter("st-po-adm", "st-po", "2026-03-08T08:00:00Z"),
                encounter("st-po-icu", "st-po", "2026-03-08T08:00:00Z", status="finished",
                          end="2026-03-09T10:00:00Z", ward="ICU", part_of="st-po-adm"),
                encounter("st-po-w3", "st-po", "2026-03-09T10:00:00Z", ward="Ward 3", part_of="st-po-adm"),
            ]
        ],
        "expected": {"cases": [{"encounter": "st-po-w3", "status": "open"}], "worklist": ["st-po-w3"],
                     "readmission": False, "timeline": ["opened"]},
    },
    "transfer_between_syncs": {
        "description": "A ward transfer between two syncs: leg 1 finishes, leg 2 opens, both partOf the stay.",
        "syncs": [
            [
                patient("st-tb"),
                homeless("st-tb", "st-tb-c"),
                encounter("st-tb-adm", "st-tb", "2026-03-08T08:00:00Z"),
                encounter("st-tb-icu", "st-tb", "2026-03-08T08:00:00Z", ward="ICU", part_of="st-tb-adm"),
            ],
            [
                encounter("st-tb-icu", "st-tb", "2026-03-08T08:00:00Z", status="finished",
                          end="2026-03-09T10:00:00Z", ward="ICU", part_of="st-tb-adm"),
                encounter("st-tb-w5", "st-tb", "2026-03-09T10:00:00Z", ward="Ward 5", part_of="st-tb-adm"),
            ],
        ],
        "expected": {"cases": [{"encounter": "st-tb-w5", "status": "open"}], "worklist": ["st-tb-w5"],
                     "readmission": False, "timeline": ["opened", "leg_changed"]},
    },
    "unlinked_same_hour_transfer": {
        "description": "A transfer sent as a finished inpatient Encounter and a new one, no link, the same hour.",
        "syncs": [
            [
                patient("st-un"),
                homeless("st-un", "st-un-c"),
                encounter("st-un-1", "st-un", "2026-03-07T08:00:00Z", ward="Surgery"),
            ],
            [
                encounter("st-un-1", "st-un", "2026-03-07T08:00:00Z", status="finished",
                          end="2026-03-09T10:00:00Z", ward="Surgery"),
                encounter("st-un-2", "st-un", "2026-03-09T10:20:00Z", ward="Rehabilitation"),
            ],
        ],
        "expected": {"cases": [{"encounter": "st-un-2", "status": "open"}], "worklist": ["st-un-2"],
                     "readmission": False, "timeline": ["opened", "leg_changed"]},
    },
    "readmission_after_discharge": {
        "description": "A stay that ended with a discharge home 10 days ago, then a new admission: a readmission.",
        "syncs": [
            [
                patient("st-re"),
                homeless("st-re", "st-re-c"),
                encounter("st-re-1", "st-re", "2026-02-20T08:00:00Z", status="finished",
                          end="2026-02-28T10:00:00Z", disposition="home"),
                encounter("st-re-2", "st-re", "2026-03-09T10:00:00Z", ward="Ward 2"),
            ]
        ],
        "expected": {"cases": [{"encounter": "st-re-2", "status": "open"}], "worklist": ["st-re-2"],
                     "readmission": True, "timeline": ["opened"]},
    },
    "period_end_with_stale_status": {
        "description": "period.end in the past while the status still says in-progress: discharged.",
        "syncs": [
            [patient("st-pe"), homeless("st-pe", "st-pe-c"), encounter("st-pe-1", "st-pe", "2026-03-08T08:00:00Z")],
            [encounter("st-pe-1", "st-pe", "2026-03-08T08:00:00Z", end="2026-03-10T07:00:00Z")],
        ],
        "expected": {"cases": [{"encounter": "st-pe-1", "status": "open", "discharged": True}], "worklist": [],
                     "readmission": False, "timeline": ["opened", "discharged"]},
    },
    "deceased_after_the_case": {
        "description": "The patient dies (deceasedBoolean) while the EHR still has the Encounter in progress.",
        "syncs": [
            [patient("st-db"), homeless("st-db", "st-db-c"), encounter("st-db-1", "st-db", "2026-03-08T08:00:00Z")],
            [patient("st-db", deceasedBoolean=True)],
        ],
        "expected": {"cases": [{"encounter": "st-db-1", "status": "closed", "outcome": "died"}], "worklist": [],
                     "readmission": False, "timeline": ["opened", "status_changed"], "open_tasks": 0},
    },
    "deceased_at_first_sight": {
        "description": "deceasedDateTime on a patient whose Encounter the EHR has not closed yet: never flagged.",
        "syncs": [
            [
                patient("st-dd", deceasedDateTime="2026-03-09T23:10:00Z"),
                homeless("st-dd", "st-dd-c"),
                encounter("st-dd-1", "st-dd", "2026-03-08T08:00:00Z"),
            ]
        ],
        "expected": {"cases": [], "worklist": [], "readmission": False, "timeline": []},
    },
    "entered_in_error_admission": {
        "description": "The admission itself is marked entered-in-error after its case opened.",
        "syncs": [
            [patient("st-ee"), homeless("st-ee", "st-ee-c"), encounter("st-ee-1", "st-ee", "2026-03-08T08:00:00Z")],
            [encounter("st-ee-1", "st-ee", "2026-03-08T08:00:00Z", status="entered-in-error")],
        ],
        "expected": {"cases": [{"encounter": "st-ee-1", "status": "cancelled"}], "worklist": [],
                     "readmission": False, "timeline": ["opened", "status_changed"], "open_tasks": 0},
    },
    "merge_before_the_case": {
        "description": "A patient registered twice and merged (replaced-by / replaces), the stay on both records.",
        "syncs": [
            [
                patient("st-mb-old", active=False, link=link("replaced-by", "st-mb")),
                patient("st-mb", link=link("replaces", "st-mb-old")),
                homeless("st-mb", "st-mb-c"),
                encounter("st-mb-e-old", "st-mb-old", "2026-03-08T08:00:00Z", ward="Ward 3"),
                encounter("st-mb-e", "st-mb", "2026-03-08T08:05:00Z", ward="Ward 3"),
            ]
        ],
        "expected": {"person": "st-mb", "cases": [{"patient": "st-mb", "encounter": "st-mb-e", "status": "open"}],
                     "worklist": ["st-mb-e"],
                     "readmission": False, "timeline": ["opened"]},
    },
    "merge_after_the_case": {
        "description": "The case exists on one record; then the EHR merges it into another and moves the stay there.",
        "syncs": [
            [patient("st-ma-a"), homeless("st-ma-a", "st-ma-c"),
             encounter("st-ma-e", "st-ma-a", "2026-03-08T08:00:00Z", ward="Ward 2")],
            [
                patient("st-ma-a", active=False, link=link("replaced-by", "st-ma-b")),
                patient("st-ma-b", link=link("replaces", "st-ma-a")),
                encounter("st-ma-e", "st-ma-b", "2026-03-08T08:00:00Z", ward="Ward 2"),
            ],
        ],
        "expected": {"person": "st-ma-b", "cases": [{"patient": "st-ma-b", "encounter": "st-ma-e", "status": "open"}],
                     "worklist": ["st-ma-e"], "readmission": False, "timeline": ["opened", "merged"]},
    },
    "seealso_possible_duplicate": {
        "description": "A record the EHR says may be the same person (seealso): shown, not merged until confirmed.",
        "syncs": [
            [
                patient("st-sa"),
                homeless("st-sa", "st-sa-c"),
                encounter("st-sa-1", "st-sa", "2026-03-09T10:00:00Z", ward="Ward 5"),
                patient("st-sa-2", link=link("seealso", "st-sa")),
                encounter("st-sa-2-e", "st-sa-2", "2026-02-20T08:00:00Z", status="finished",
                          end="2026-02-28T10:00:00Z", disposition="home"),
            ]
        ],
        "expected": {"cases": [{"encounter": "st-sa-1", "status": "open", "possibly_same_person": ["st-sa-2"]}],
                     "worklist": ["st-sa-1"], "readmission": False, "timeline": ["opened"]},
    },
    "withdrawn_flag": {
        "description": "The only fact behind the flag (homelessness) is corrected: the case is marked, not left high.",
        "syncs": [
            [
                patient("st-wf", birthDate="1990-01-01", contact=[{"relationship": [{"coding": [{"code": "N"}]}]}]),
                homeless("st-wf", "st-wf-c"),
                encounter("st-wf-1", "st-wf", "2026-03-08T08:00:00Z"),
            ],
            [homeless("st-wf", "st-wf-c", verification="entered-in-error")],
        ],
        "expected": {
            "cases": [{"encounter": "st-wf-1", "status": "open", "flag_withdrawn": True, "priority": None}],
            "worklist": [],
            "readmission": False,
            "timeline": ["opened", "priority_changed", "flag_withdrawn"],
        },
    },
}


def main() -> None:
    for name, spec in SCENARIOS.items():
        folder = HERE / name
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("sync*.json"):
            old.unlink()
        for n, resources in enumerate(spec["syncs"], start=1):
            text = json.dumps(bundle(resources, n), indent=1, ensure_ascii=False)
            (folder / f"sync{n}.json").write_text(text + "\n", encoding="utf-8")
        expected = {"description": spec["description"], "now": NOW, **spec["expected"]}
        (folder / "expected.yaml").write_text(yaml.safe_dump(expected, sort_keys=False, allow_unicode=True))
    print(f"wrote {len(SCENARIOS)} scenarios to {HERE}")


if __name__ == "__main__":
    main()
