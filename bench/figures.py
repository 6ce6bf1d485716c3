"""Figures benchmark: the city's figures and the daily situation report over N cases, in process.

Seeds N cases across H hospitals (two time zones) with bulk Core inserts of what the figures read:
encounter snapshots (wards), cases opened over the last 12 weeks (40% medically ready, 30%
discharged), per case its opening event and first-visit task, a person's assessment for 70% and a
person's task for 60%, a handoff for 30% (two thirds completed), a barrier for 20%, half a referral
and one service delivered per case on average, into SQLite and / or a throwaway PostgreSQL cluster.
Then times ``city_figures`` for a 4-week period (every grouping, every hospital) and one hospital's
``sitrep``, each ``--repeat`` times (the median is printed). The last line printed is one JSON object.

    .venv/bin/python bench/figures.py --quick --db sqlite      # 5,000 cases, 20 hospitals
    .venv/bin/python bench/figures.py --db both                # 100,000 cases, 100 hospitals
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support: the tests' PostgreSQL harness

from sqlalchemy import Table, select, text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402

from discharge_bridge.cases.delivered.models import ServiceDelivered  # noqa: E402
from discharge_bridge.cases.handoffs.models import Handoff  # noqa: E402
from discharge_bridge.cases.models import Barrier, Case, CaseEvent  # noqa: E402
from discharge_bridge.cases.referrals.models import Referral  # noqa: E402
from discharge_bridge.cases.tasks.models import Task  # noqa: E402
from discharge_bridge.config import Settings  # noqa: E402
from discharge_bridge.db import make_engine, session_scope, upgrade  # noqa: E402
from discharge_bridge.directory.models import DirectoryService, Organisation  # noqa: E402
from discharge_bridge.ingest.models import EncounterSnapshot  # noqa: E402
from discharge_bridge.sources.models import Source  # noqa: E402
from discharge_bridge.worklists.city import Grouping, city_figures  # noqa: E402
from discharge_bridge.worklists.periods import Period  # noqa: E402
from discharge_bridge.worklists.sitrep import sitrep  # noqa: E402

MAPPINGS = ROOT / "mappings"
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
BATCH = 5000
CATEGORIES = ["home_care", "social_home", "gerontology_centre", "psychologist", "legal_aid", "charity"]
KINDS = ["consultation", "document_filed", "my_documents_application", "relatives_found", "psychologist_session"]
BARRIERS = ["awaiting_placement", "awaiting_care_package", "documents", "funding", "housing"]
DESTINATIONS = ["home_with_care", "social_home", "gerontology_centre", "relatives"]


def _table(model: Any) -> Table:
    return model.__table__  # type: ignore[no-any-return]


def _rows(n: int, hospitals: int) -> dict[str, list[dict[str, Any]]]:
    rnd = random.Random(18)
    out: dict[str, list[dict[str, Any]]] = {
        k: [] for k in ("encounter", "case", "event", "task", "handoff", "barrier", "referral", "delivered")
    }
    for i in range(n):
        sid = i % hospitals + 1
        opened = NOW - timedelta(minutes=rnd.randint(0, 12 * 7 * 24 * 60))
        coordinator = f"coord{sid}-{rnd.randint(1, 4)}"
        ready = opened + timedelta(hours=rnd.randint(12, 240)) if rnd.random() < 0.4 else None
        left = ready + timedelta(hours=rnd.randint(0, 400)) if ready is not None and rnd.random() < 0.75 else None
        if left is not None and left > NOW:
            left = None
        out["encounter"].append(
            {
                "source_id": sid,
                "fhir_id": f"e{i}",
                "version_id": "1",
                "last_updated": opened,
                "patient_fhir_id": f"p{i}",
                "status": "finished" if left else "in-progress",
                "class_code": "IMP",
                "period_start": opened,
                "period_end": left,
                "ward": f"Ward {rnd.randint(1, 12)}",
                "bed": str(rnd.randint(1, 40)),
                "raw": {"resourceType": "Encounter", "id": f"e{i}"},
                "ingested_at": opened,
            }
        )
        case_id = i + 1
        out["case"].append(
            {
                "id": case_id,
                "source_id": sid,
                "encounter_fhir_id": f"e{i}",
                "patient_fhir_id": f"p{i}",
                "status": "closed" if left else "open",
                "priority_rank": 2,
                "coordinator": coordinator,
                "opened_at": opened,
                "opened_by": "system",
                "opened_by_hand": False,
                "medically_ready_at": ready,
                "actual_discharge_at": left,
                "updated_at": opened,
                "version": 1,
            }
        )
        out["event"].append({"case_id": case_id, "at": opened, "actor": "system", "kind": "opened", "data": {}})
        seen = opened + timedelta(minutes=rnd.randint(30, 4000)) if rnd.random() < 0.7 else None
        if seen is not None:
            out["event"].append(
                {"case_id": case_id, "at": seen, "actor": coordinator, "kind": "assessment_updated", "data": {}}
            )
        done = rnd.random() < 0.5
        out["task"].append(
            {
                "case_id": case_id,
                "kind": "first_visit",
                "priority": "routine",
                "domain": "social",
                "description": "First visit",
                "status": "completed" if done else "requested",
                "status_changed_at": opened + timedelta(minutes=rnd.randint(30, 3000)) if done else opened,
                "created_at": opened,
                "created_by": "system",
                "updated_at": opened,
                "version": 1,
            }
        )
        if rnd.random() < 0.6:
            at = opened + timedelta(minutes=rnd.randint(60, 6000))
            out["task"].append(
                {
                    "case_id": case_id,
                    "kind": "custom",
                    "priority": "routine",
                    "domain": "social",
                    "description": "Apply for home care",
                    "status": "requested",
                    "status_changed_at": at,
                    "created_at": at,
                    "created_by": coordinator,
                    "updated_at": at,
                    "version": 1,
                }
            )
        if rnd.random() < 0.3:
            proposed = opened + timedelta(hours=rnd.randint(2, 100))
            completed = proposed + timedelta(hours=rnd.randint(10, 300)) if rnd.random() < 0.66 else None
            out["handoff"].append(
                {
                    "case_id": case_id,
                    "destination_type": rnd.choice(DESTINATIONS),
                    "status": "completed" if completed else "referred",
                    "documents": [],
                    "proposed_at": proposed,
                    "completed_at": completed,
                    "created_by": coordinator,
                    "updated_at": proposed,
                    "version": 1,
                }
            )
        if rnd.random() < 0.2:
            start = (ready or opened) + timedelta(hours=1)
            out["barrier"].append(
                {
                    "case_id": case_id,
                    "code": rnd.choice(BARRIERS),
                    "started_at": start,
                    "ended_at": left,
                    "created_by": coordinator,
                    "version": 1,
                }
            )
        if rnd.random() < 0.5:
            service = rnd.randint(1, 50)
            requested = opened + timedelta(hours=rnd.randint(1, 200))
            answered = requested + timedelta(hours=rnd.randint(1, 96)) if rnd.random() < 0.8 else None
            out["referral"].append(
                {
                    "case_id": case_id,
                    "service_id": service,
                    "organisation_id": service,
                    "status": rnd.choice(("accepted", "completed", "in-progress")) if answered else "requested",
                    "needs": [],
                    "documents": [],
                    "requested_at": requested,
                    "accepted_at": answered,
                    "created_by": coordinator,
                    "updated_at": requested,
                    "version": 1,
                }
            )
        for _ in range(rnd.randint(0, 2)):
            at = opened + timedelta(hours=rnd.randint(1, 300))
            out["delivered"].append(
                {
                    "case_id": case_id,
                    "kind": rnd.choice(KINDS),
                    "delivered_at": at,
                    "delivered_by": coordinator,
                    "role": "coordinator",
                    "recorded_at": at,
                }
            )
    return out


def seed(engine: Engine, n: int, hospitals: int) -> dict[str, Any]:
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            _table(Source).insert(),
            [
                {
                    "id": h,
                    "name": f"h{h:03d}",
                    "hospital": f"Hospital {h}",
                    "base_url": f"https://ehr{h}.example.org/fhir",
                    "auth": {"type": "none"},
                    "timezone": "Europe/Moscow" if h % 2 else "Asia/Yekaterinburg",
                    "mode": "poll",
                    "poll_interval_seconds": 300,
                    "mapping": "default",
                    "inpatient_classes": ["IMP"],
                    "enabled": False,
                    "assignment": {"mode": "round_robin"},
                    "cursors": {},
                    "created_at": NOW,
                }
                for h in range(1, hospitals + 1)
            ],
        )
        conn.execute(
            _table(Organisation).insert(),
            [{"id": k, "code": f"org{k}", "name": f"Organisation {k}", "updated_at": NOW} for k in range(1, 51)],
        )
        conn.execute(
            _table(DirectoryService).insert(),
            [
                {
                    "id": k,
                    "code": f"svc{k}",
                    "organisation_id": k,
                    "name": f"Service {k}",
                    "category": CATEGORIES[k % len(CATEGORIES)],
                    "area": [],
                    "needs": [],
                    "documents": [],
                    "updated_at": NOW,
                }
                for k in range(1, 51)
            ],
        )
    rows = _rows(n, hospitals)
    tables = {
        "encounter": EncounterSnapshot,
        "case": Case,
        "event": CaseEvent,
        "task": Task,
        "handoff": Handoff,
        "barrier": Barrier,
        "referral": Referral,
        "delivered": ServiceDelivered,
    }
    for key, model in tables.items():
        data = rows[key]
        for start in range(0, len(data), BATCH):
            with engine.begin() as conn:
                conn.execute(_table(model).insert(), data[start : start + BATCH])
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    return {"seed_s": round(time.perf_counter() - started, 1), **{k: len(v) for k, v in rows.items()}}


def _time(repeat: int, run: Any) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 1)


def run_db(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-figures-{kind}-"))
    pg = None
    if kind == "postgres":
        pg = PostgresServer()
        pg.start()
        url = pg.url(pg.create_database())
    else:
        url = f"sqlite:///{tmp / 'bench.sqlite3'}"
    try:
        upgrade(Settings(database_url=url, data_dir=tmp, mappings_dir=MAPPINGS))
        engine = make_engine(url)
        info = seed(engine, args.cases, args.hospitals)
        print(
            f"[{kind}] seeded {args.cases:,} cases across {args.hospitals} hospitals in {info['seed_s']} s", flush=True
        )
        period = Period(date(2026, 11, 9), date(2026, 12, 6))
        results: dict[str, Any] = {"seeded": info}
        with session_scope(engine) as session:
            sources = list(session.scalars(select(Source)))
            for grouping in Grouping:
                ms = _time(args.repeat, lambda g=grouping: city_figures(session, sources, period, g))
                figures = city_figures(session, sources, period, grouping)
                cohort = figures.durations[0].total.cohort
                results[f"figures_{grouping.value}_ms"] = ms
                print(f"[{kind}] figures by {grouping.value:<11} {ms:>9.1f} ms  (cohort {cohort:,} cases)", flush=True)
            one = sources[0]
            ms = _time(args.repeat, lambda: sitrep(session, one, date(2026, 12, 6)))
            report = sitrep(session, one, date(2026, 12, 6))
            results["sitrep_ms"] = ms
            print(f"[{kind}] sitrep of one hospital {ms:>9.1f} ms  (waiting {report.ready_not_discharged})", flush=True)
        engine.dispose()
        return results
    finally:
        if pg is not None:
            pg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--hospitals", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="5,000 cases, 20 hospitals")
    args = parser.parse_args()
    if args.quick:
        args.cases, args.hospitals = 5000, 20
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    summary: dict[str, Any] = {"cases": args.cases, "hospitals": args.hospitals, "repeat": args.repeat}
    for kind in kinds:
        summary[kind] = run_db(kind, args)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
