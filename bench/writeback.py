"""Write-back outbox benchmark: ``reconcile`` over N open cases of one source, on SQLite, in process.

Seeds N flagged cases (each with its risk assessment, two reasons with evidence, and two tasks) with
bulk Core inserts, turns write-back on, then times: the first reconcile (every case: 4 items each,
all new), a second one with nothing changed (no case looked at, nothing written), and one after 1%
of the cases had a task changed (only those are looked at; one item each changes). Sending is not
timed here (it is bounded by the EHR: one request per item). The last line printed is one JSON object.

    .venv/bin/python bench/writeback.py --quick        # 5,000 cases
    .venv/bin/python bench/writeback.py                # 100,000 cases
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Table, func, select, update  # noqa: E402

from discharge_bridge.cases.models import Case  # noqa: E402
from discharge_bridge.cases.tasks.models import Task  # noqa: E402
from discharge_bridge.config import Settings  # noqa: E402
from discharge_bridge.db import make_engine, session_scope, upgrade  # noqa: E402
from discharge_bridge.ehr.models import WritebackItem  # noqa: E402
from discharge_bridge.ehr.writeback.outbox import reconcile  # noqa: E402
from discharge_bridge.risk.models import RiskAssessment  # noqa: E402
from discharge_bridge.sources.models import Source  # noqa: E402

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
BATCH = 5000
SYSTEM = "urn:discharge-bridge:writeback"


def _table(model: Any) -> Table:
    return model.__table__  # type: ignore[no-any-return]


def seed(engine: Any, n: int) -> int:
    opened = NOW - timedelta(days=3)
    with session_scope(engine) as session:
        source = Source(name="city", hospital="City", base_url="http://ehr.test/fhir", writeback={"enabled": True})
        session.add(source)
        session.flush()
        source_id = source.id or 0
    for start in range(0, n, BATCH):
        ids = range(start, min(n, start + BATCH))
        with session_scope(engine) as session:
            session.execute(
                _table(Case).insert(),
                [
                    {
                        "source_id": source_id,
                        "encounter_fhir_id": f"e{i}",
                        "patient_fhir_id": f"p{i}",
                        "status": "open",
                        "priority": "high",
                        "priority_rank": 3,
                        "opened_at": opened,
                        "opened_by": "system",
                        "opened_by_hand": False,
                        "updated_at": opened,
                        "version": 1,
                    }
                    for i in ids
                ],
            )
            session.execute(
                _table(RiskAssessment).insert(),
                [
                    {
                        "source_id": source_id,
                        "encounter_fhir_id": f"e{i}",
                        "patient_fhir_id": f"p{i}",
                        "rules_version": "bench",
                        "score": 7,
                        "priority": "high",
                        "priority_rank": 3,
                        "flagged": True,
                        "current": True,
                        "inputs_digest": "x",
                        "assessed_at": opened,
                        "first_flagged_at": opened,
                        "facts": [],
                        "reasons": [
                            {
                                "concept": "lives_alone",
                                "rule": "lives_alone",
                                "points": 3,
                                "evidence": [f"Observation/o{i}"],
                                "text": "Lives alone",
                            },
                            {
                                "concept": "dementia",
                                "rule": "dementia",
                                "points": 4,
                                "evidence": [f"Condition/c{i}"],
                                "text": "Dementia",
                            },
                        ],
                    }
                    for i in ids
                ],
            )
            first = session.execute(
                select(func.min(_table(Case).c.id)).where(_table(Case).c.encounter_fhir_id == f"e{start}")
            ).scalar_one()
            session.execute(
                _table(Task).insert(),
                [
                    {
                        "case_id": first + k,
                        "kind": kind,
                        "priority": "routine",
                        "domain": "social",
                        "description": "See the patient" if kind == "first_visit" else "Call the relatives",
                        "owner": "anna",
                        "status": "requested",
                        "status_changed_at": opened,
                        "created_at": opened,
                        "created_by": "system",
                        "updated_at": opened,
                        "version": 1,
                    }
                    for k in range(len(ids))
                    for kind in ("first_visit", "find_relatives")
                ],
            )
    return source_id


def timed_reconcile(engine: Any, at: datetime) -> tuple[float, Any]:
    started = time.perf_counter()
    with session_scope(engine) as session:
        source = session.execute(select(Source)).scalar_one()
        result = reconcile(session, source, now=at, system=SYSTEM)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 5000 if args.quick else args.cases
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder), mappings_dir=ROOT / "mappings")
        upgrade(settings)
        engine = make_engine(settings.sqlalchemy_url)
        t = time.perf_counter()
        seed(engine, n)
        seed_s = time.perf_counter() - t
        first_s, first = timed_reconcile(engine, NOW)
        second_s, second = timed_reconcile(engine, NOW + timedelta(minutes=10))
        changed = max(n // 100, 1)
        with session_scope(engine) as session:
            tasks = _table(Task)
            session.execute(
                update(tasks)
                .where(tasks.c.kind == "first_visit", tasks.c.case_id <= changed)
                .values(status="in-progress", updated_at=NOW + timedelta(minutes=15))
            )
        third_s, third = timed_reconcile(engine, NOW + timedelta(minutes=20))
        with session_scope(engine) as session:
            items = session.execute(select(func.count()).select_from(_table(WritebackItem))).scalar_one()
    out = {
        "cases": n,
        "seed_s": round(seed_s, 2),
        "first_s": round(first_s, 2),
        "first_cases_per_s": round(n / first_s),
        "first_items": first.created,
        "second_s": round(second_s, 3),
        "second_cases_looked_at": second.cases,
        "second_items_written": second.created + second.changed,
        "one_percent_changed_s": round(third_s, 3),
        "one_percent_cases_looked_at": third.cases,
        "one_percent_items_changed": third.changed,
        "items": items,
    }
    print(
        f"reconcile {n:,} cases: first {first_s:.2f} s "
        f"({out['first_cases_per_s']:,} cases/s, {first.created:,} items); "
        f"nothing changed {second_s:.3f} s ({second.cases} cases looked at); "
        f"1% changed {third_s:.3f} s ({third.cases:,} cases, {third.changed:,} items changed)"
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
