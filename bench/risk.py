"""Risk-core benchmark: extract_facts, compute_lace and assess over ~10k synthetic admissions.

    .venv/bin/python bench/risk.py                   # 10k admissions, default mapping
    .venv/bin/python bench/risk.py --quick           # 1k admissions
    .venv/bin/python bench/risk.py --profile         # adds a cProfile'd pass, prints the top 25
    .venv/bin/python bench/risk.py --save-golden     # (re)write the golden digest for this size/mapping
    .venv/bin/python bench/risk.py --mapping city-hospital --repeat 5

Pure CPU, no database, no HTTP: the records come from tests/support/synthetic.py's hospital grouped per patient
(Patient, the current inpatient Encounter, Conditions, Observations, RelatedPersons, the other
Encounters). Every stage is timed over all admissions after one warm-up pass, best of
--repeat passes. The sha256 of the
repr of every result (facts, LACE, assessment) is compared with bench/risk_golden.json, so an
optimisation can be shown to change nothing. The last line printed is one JSON object.

A second, held-out digest (key ``<mapping>:<n>:hospital+screenings``) covers what issue 19 added:
the same records with, deterministically, laboratory values (haemoglobin, sodium) and a Procedure
for every 3rd and a completed BRASS / ISAR for every 4th, scored through facts, HOSPITAL and the
rule set. It has its own key so the original digest keeps meaning what it meant.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import json
import os
import pstats
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests.support

from tests.support.synthetic import generate

from discharge_bridge.risk import PatientRecord, assess, compute_hospital, compute_lace, extract_facts, loading
from discharge_bridge.risk.mapping import DEFAULT_MAPPINGS_DIR

GOLDEN = Path(__file__).resolve().parent / "risk_golden.json"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)  # fixed, so LACE's "days so far" is reproducible
RESOURCES_PER_ADMISSION = 8.6  # what synthetic.py averages; used to size the generated hospital


def build_records(admissions: int) -> list[PatientRecord]:
    """One PatientRecord per admitted patient, its current inpatient stay being the one assessed."""
    gen = generate(int(admissions * RESOURCES_PER_ADMISSION))
    by_patient: dict[str, list[dict[str, Any]]] = {}
    for item in gen.items:
        if item.patient is not None:  # the subject-less Encounters are dead letters, not admissions
            by_patient.setdefault(item.patient, []).append(item.resource)
    records: list[PatientRecord] = []
    for resources in by_patient.values():
        by_type: dict[str, list[dict[str, Any]]] = {}
        for resource in resources:
            by_type.setdefault(resource["resourceType"], []).append(resource)
        encounters = by_type.get("Encounter", [])
        current = next((e for e in reversed(encounters) if e.get("status") == "in-progress"), None)
        if not by_type.get("Patient") or current is None:
            continue
        records.append(
            PatientRecord(
                patient=by_type["Patient"][0],
                encounter=current,
                conditions=by_type.get("Condition", []),
                observations=by_type.get("Observation", []),
                related_persons=by_type.get("RelatedPerson", []),
                other_encounters=[e for e in encounters if e is not current],
            )
        )
        if len(records) == admissions:
            break
    return records


def _timed(fn: Callable[[], list[Any]]) -> tuple[float, list[Any]]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def run(records: list[PatientRecord], mapping: Any, rules: Any) -> tuple[dict[str, float], list[Any]]:
    """Seconds per stage over all records, and the results (facts, lace, assessment) per record."""
    t_facts, facts = _timed(lambda: [extract_facts(r, mapping) for r in records])
    t_lace, laces = _timed(lambda: [compute_lace(r, NOW) for r in records])
    t_assess, assessments = _timed(lambda: [assess(f, rules) for f in facts])
    return {"facts": t_facts, "lace": t_lace, "assess": t_assess}, list(zip(facts, laces, assessments, strict=True))


def with_screenings_and_labs(records: list[PatientRecord]) -> list[PatientRecord]:
    """Copies of the records with HOSPITAL's laboratory inputs and bedside screenings, chosen by position."""
    out = []
    for i, record in enumerate(records):
        start = (record.encounter.get("period") or {}).get("start")
        extra_obs: list[dict[str, Any]] = []
        procedures: list[dict[str, Any]] = []
        if i % 3 == 0 and start:
            for code, value, unit in (("718-7", 10 + (i % 5), "g/dL"), ("2951-2", 130 + (i % 9), "mmol/L")):
                extra_obs.append(
                    {
                        "resourceType": "Observation",
                        "id": f"lab-{code}-{i}",
                        "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                        "effectiveDateTime": start,
                        "valueQuantity": {"value": value, "unit": unit, "code": unit},
                    }
                )
            procedures.append(
                {"resourceType": "Procedure", "id": f"proc-{i}", "status": "completed", "performedDateTime": start}
            )
        screenings = []
        if i % 4 == 0:
            brass = (i * 7) % 41
            band = "low" if brass <= 10 else "needs_planning" if brass <= 19 else "not_home"
            screenings.append(
                {
                    "id": 2 * i + 1,
                    "tool": "brass",
                    "total": brass,
                    "band": band,
                    "evidence": f"QuestionnaireResponse/{2 * i + 1}",
                }
            )
            isar = i % 7
            screenings.append(
                {
                    "id": 2 * i + 2,
                    "tool": "isar",
                    "total": isar,
                    "band": "at_risk" if isar >= 2 else "not_at_risk",
                    "evidence": f"QuestionnaireResponse/{2 * i + 2}",
                }
            )
        out.append(
            PatientRecord(
                patient=record.patient,
                encounter=record.encounter,
                conditions=record.conditions,
                observations=[*record.observations, *extra_obs],
                related_persons=record.related_persons,
                other_encounters=record.other_encounters,
                procedures=procedures,
                screenings=screenings,
            )
        )
    return out


def held_out(records: list[PatientRecord], mapping: Any, rules: Any) -> list[Any]:
    """(facts, HOSPITAL, assessment) per record of ``with_screenings_and_labs``."""
    out = []
    for record in with_screenings_and_labs(records):
        facts = extract_facts(record, mapping)
        out.append((facts, compute_hospital(record, NOW), assess(facts, rules)))
    return out


def digest(results: list[Any]) -> str:
    h = hashlib.sha256()
    for result in results:
        h.update(repr(result).encode())
        h.update(b"\n")
    return h.hexdigest()


def check_golden(key: str, value: str, save: bool) -> str:
    golden: dict[str, str] = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}
    if save or key not in golden:
        golden[key] = value
        GOLDEN.write_text(json.dumps(golden, indent=2, sort_keys=True) + "\n")
        return "saved"
    return "match" if golden[key] == value else "MISMATCH"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admissions", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="1,000 admissions")
    parser.add_argument("--mapping", default="default")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes; the best per stage is kept")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--save-golden", action="store_true")
    args = parser.parse_args()
    admissions = 1_000 if args.quick else args.admissions

    records = build_records(admissions)
    n = len(records)
    mapping = loading.mapping(args.mapping, DEFAULT_MAPPINGS_DIR)
    rules = loading.rule_set(DEFAULT_MAPPINGS_DIR)
    # The ~1M objects of the input are not what is measured: keep the cyclic GC from rescanning
    # them on every collection the stages trigger (a live service holds one patient at a time).
    gc.collect()
    gc.freeze()
    run(records, mapping, rules)  # warm-up: imports, caches, first-call costs
    # Best of --repeat per stage: the least disturbed measure on a shared machine.
    seconds, results = run(records, mapping, rules)
    for _ in range(args.repeat - 1):
        again, _ = run(records, mapping, rules)
        seconds = {stage: min(s, again[stage]) for stage, s in seconds.items()}

    golden = check_golden(f"{args.mapping}:{n}", digest(results), args.save_golden)
    t_held = time.perf_counter()
    extended = held_out(records, mapping, rules)
    t_held = time.perf_counter() - t_held
    golden_held = check_golden(f"{args.mapping}:{n}:hospital+screenings", digest(extended), args.save_golden)
    print(f"held-out (HOSPITAL + screenings): {golden_held}, {t_held / n * 1e6:.1f} us/admission")
    per = {stage: s / n * 1e6 for stage, s in seconds.items()}
    total = sum(per.values())
    flagged = sum(1 for _, _, a in results if a.priority is not None)
    print(f"{n:,} admissions, mapping {args.mapping!r}, {flagged:,} with a priority; golden digest: {golden}")
    for stage, us in per.items():
        print(f"  {stage:<8} {us / 1000:8.3f} ms/admission   {seconds[stage]:7.2f} s total")
    print(f"  {'total':<8} {total / 1000:8.3f} ms/admission")

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run(records, mapping, rules)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)

    print(
        json.dumps(
            {
                "admissions": n,
                "extract_facts_us": round(per["facts"], 1),
                "lace_us": round(per["lace"], 1),
                "assess_us": round(per["assess"], 1),
                "total_us_per_admission": round(total, 1),
                "golden": golden,
                "golden_hospital_screenings": golden_held,
            }
        )
    )
    return 1 if "MISMATCH" in (golden, golden_held) else 0


if __name__ == "__main__":
    sys.exit(main())
