"""Worklist benchmark: the lists at city scale, served as production serves them, under 1 and 50 clients.

Seeds N open cases across H hospitals (sources) with bulk Core inserts of the rows the lists read
(sources, patient and encounter snapshots with names and identifiers, risk assessments, cases, a
task per case, users with their hospitals) into SQLite and / or a throwaway PostgreSQL cluster
(initdb in a temp dir, 127.0.0.1 only), starts the real web app under uvicorn with several worker
processes on 127.0.0.1, signs in (an API token for the API, a session cookie for the pages), then
for each surface runs one client, then C concurrent clients (httpx, asyncio), a fixed number of
requests each. The last line printed is one JSON object.

    .venv/bin/python bench/worklist.py --quick --db sqlite      # 5,000 cases, 20 hospitals
    .venv/bin/python bench/worklist.py --db both                # 100,000 cases, 100 hospitals
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support: the tests' PostgreSQL harness

import httpx  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlmodel import col  # noqa: E402
from tests.support.postgres import PostgresServer, free_port  # noqa: E402

from discharge_bridge import keyset  # noqa: E402
from discharge_bridge.cases.models import Case  # noqa: E402
from discharge_bridge.cases.tasks.models import Task  # noqa: E402
from discharge_bridge.config import Settings  # noqa: E402
from discharge_bridge.db import make_engine, session_scope, upgrade  # noqa: E402
from discharge_bridge.fhir.fields import search_key  # noqa: E402
from discharge_bridge.ingest.models import EncounterSnapshot, PatientSnapshot  # noqa: E402
from discharge_bridge.risk import loading  # noqa: E402
from discharge_bridge.risk.models import RiskAssessment  # noqa: E402
from discharge_bridge.sources.models import Source  # noqa: E402
from discharge_bridge.users.models import User, UserSource  # noqa: E402
from discharge_bridge.users.roles import Role  # noqa: E402
from discharge_bridge.users.service import hash_password, issue_token, start_session  # noqa: E402

MAPPINGS = ROOT / "mappings"
NOW = datetime.now(UTC).replace(microsecond=0)
FIRST = ["Anna", "Boris", "Vera", "Oleg", "Irina", "Pavel", "Olga", "Ivan", "Maria", "Sergei", "Elena", "Yuri"]
LAST = ["Ivanova", "Petrov", "Smirnova", "Kuznetsov", "Popova", "Sokolov", "Lebedeva", "Kozlov", "Novikova"]
RULES = [("lives_alone", "lives_alone"), ("elderly", "age"), ("dementia", "dementia"), ("homeless", "homeless")]
PRIORITIES = [("high", 3), ("medium", 2), ("low", 1)]
BATCH = 5000


# ---------------------------------------------------------------- seeding


def _rows(n: int, hospitals: int, rules_version: str) -> dict[str, list[dict[str, Any]]]:
    rnd = random.Random(17)
    out: dict[str, list[dict[str, Any]]] = {"patient": [], "encounter": [], "risk": [], "case": [], "task": []}
    for i in range(n):
        sid = i % hospitals + 1
        pid, eid = f"p{i}", f"e{i}"
        name = f"{rnd.choice(FIRST)} {rnd.choice(LAST)}"
        mrn = f"MRN{i:07d}"
        start = NOW - timedelta(days=rnd.randint(0, 40), minutes=rnd.randint(0, 1440))
        out["patient"].append(
            {
                "source_id": sid,
                "fhir_id": pid,
                "version_id": "1",
                "last_updated": start,
                "birth_date": f"{rnd.randint(1925, 1990)}-0{rnd.randint(1, 9)}-1{rnd.randint(0, 9)}",
                "gender": rnd.choice(["male", "female"]),
                "deceased": False,
                "name": name,
                "identifiers": [{"system": "urn:mrn", "value": mrn, "type": "MR"}],
                "phone": None,
                "address": None,
                "search_text": search_key(f"{name} {mrn}"),
                "raw": {"resourceType": "Patient", "id": pid},
                "ingested_at": start,
            }
        )
        out["encounter"].append(
            {
                "source_id": sid,
                "fhir_id": eid,
                "version_id": "1",
                "last_updated": start,
                "patient_fhir_id": pid,
                "status": "in-progress",
                "class_code": "IMP",
                "period_start": start,
                "period_end": None,
                "ward": f"Ward {rnd.randint(1, 12)}",
                "bed": f"{rnd.randint(1, 40)}",
                "planned_end": NOW + timedelta(days=rnd.randint(-5, 10)) if rnd.random() < 0.6 else None,
                "raw": {"resourceType": "Encounter", "id": eid},
                "ingested_at": start,
            }
        )
        concepts = rnd.sample(RULES, rnd.randint(1, 3))
        priority, rank = rnd.choice(PRIORITIES)
        out["risk"].append(
            {
                "source_id": sid,
                "encounter_fhir_id": eid,
                "patient_fhir_id": pid,
                "rules_version": rules_version,
                "score": 3 * len(concepts) + rnd.randint(0, 5),
                "priority": priority,
                "priority_rank": rank,
                "flagged": True,
                "current": True,
                "reasons": [
                    {"rule": r, "concept": c, "points": 3, "evidence": [f"Condition/c{i}"], "text": r}
                    for r, c in concepts
                ],
                "facts": [],
                "lace": None,
                "age": rnd.randint(35, 99),
                "admitted_at": start,  # as the assessment copies it from the encounter
                "inputs_digest": "bench",
                "first_flagged_at": start,
                "assessed_at": start,
            }
        )
        ready = NOW - timedelta(days=rnd.randint(0, 6)) if rnd.random() < 0.2 else None
        out["case"].append(
            {
                "id": i + 1,
                "source_id": sid,
                "encounter_fhir_id": eid,
                "patient_fhir_id": pid,
                "status": "open",
                "priority": priority,
                "priority_rank": rank,
                "coordinator": f"coord{sid}" if rnd.random() < 0.7 else None,
                "opened_at": start,
                "opened_by": "system",
                "opened_by_hand": False,
                "medically_ready_at": ready,
                "medically_ready_source": "person" if ready else None,
                "updated_at": start,
                "version": 1,
            }
        )
        out["task"].append(
            {
                "case_id": i + 1,
                "kind": "first_visit",
                "priority": "routine",
                "domain": "social",
                "description": "See the patient and start the assessment",
                "owner": f"coord{sid}",
                "due_at": NOW + timedelta(hours=rnd.randint(-72, 200)),
                "status": "requested",
                "status_changed_at": start,
                "created_at": start,
                "created_by": "system",
                "updated_at": start,
                "version": 1,
            }
        )
    return out


def seed(engine: Engine, n: int, hospitals: int) -> dict[str, Any]:
    """Bulk inserts; returns the API token, a page session cookie and some case ids."""
    rules_version = loading.rule_set(MAPPINGS).version
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            Source.__table__.insert(),  # type: ignore[attr-defined]
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
                    "inpatient_classes": ["IMP", "ACUTE", "NONAC"],
                    "enabled": False,
                    "assignment": {"mode": "round_robin"},
                    "cursors": {},
                    "created_at": NOW,
                }
                for h in range(1, hospitals + 1)
            ],
        )
    rows = _rows(n, hospitals, rules_version)
    tables = {
        "patient": PatientSnapshot.__table__,  # type: ignore[attr-defined]
        "encounter": EncounterSnapshot.__table__,  # type: ignore[attr-defined]
        "risk": RiskAssessment.__table__,  # type: ignore[attr-defined]
        "case": Case.__table__,  # type: ignore[attr-defined]
        "task": Task.__table__,  # type: ignore[attr-defined]
    }
    for key, table in tables.items():
        data = rows[key]
        for start in range(0, len(data), BATCH):
            with engine.begin() as conn:
                conn.execute(table.insert(), data[start : start + BATCH])
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            for table in ("source", "coordination_case"):
                conn.execute(text(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))"))
        # The steady state users meet: right after a bulk load autovacuum goes over every new row
        # (hint bits, the visibility map) and took the CPU the first surfaces were timed on.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE)"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    with session_scope(engine) as session:
        admin = User(username="bench-admin", display_name="Bench admin", role=Role.admin, password_hash=None)
        coordinator = User(
            username="bench-coord",
            display_name="Bench coordinator",
            role=Role.coordinator,
            password_hash=hash_password("correct horse battery"),
        )
        session.add(admin)
        session.add(coordinator)
        session.flush()
        for h in range(1, hospitals + 1):  # a city-wide coordinator: every hospital, the worst case
            session.add(UserSource(user_id=coordinator.id or 0, source_id=h))
        session.flush()
        token = issue_token(session, "bench-admin", "bench")
        cookie, _ = start_session(session, coordinator, lifetime=timedelta(hours=6))
        # A deep page: the cursor after the row at 99% of the default (priority) sort.
        order: list[Any] = [
            col(RiskAssessment.priority_rank).desc(),
            col(RiskAssessment.score).desc(),
            col(RiskAssessment.admitted_at).asc(),
            col(RiskAssessment.id).asc(),
        ]
        deep_id = session.execute(
            select(col(RiskAssessment.id))
            .join(
                EncounterSnapshot,
                (EncounterSnapshot.source_id == RiskAssessment.source_id)  # type: ignore[arg-type]
                & (EncounterSnapshot.fhir_id == RiskAssessment.encounter_fhir_id),
            )
            .order_by(*order)
            .offset(int(n * 0.99))
            .limit(1)
        ).scalar_one()
        cases = session.execute(select(func.count()).select_from(Case)).scalar_one()
    return {
        "token": token,
        "cookie": cookie,
        "deep_after": keyset.encode("priority", deep_id),
        "cases": cases,
        "seed_s": round(time.perf_counter() - started, 1),
        "rules_version": rules_version,
    }


# ---------------------------------------------------------------- server


def start_server(url: str, data_dir: Path, workers: int, figures_age: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "DISCHARGE_BRIDGE_DATABASE_URL": url,
        "DISCHARGE_BRIDGE_DATA_DIR": str(data_dir),
        "DISCHARGE_BRIDGE_MAPPINGS_DIR": str(MAPPINGS),
        "DISCHARGE_BRIDGE_LOG_LEVEL": "WARNING",
        "DISCHARGE_BRIDGE_LIST_FIGURES_MAX_AGE_SECONDS": str(figures_age),
    }
    # `discharge-bridge serve` runs one uvicorn process; the deployment runs web replicas beside one
    # scheduler (deploy/): uvicorn's --workers gives the replicas on one host.
    cmd = [
        str(ROOT / ".venv/bin/uvicorn"),
        "--factory",
        "discharge_bridge.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
        "--proxy-headers",
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=str(data_dir), start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code < 500:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError("the server exited")
        time.sleep(0.3)
    raise RuntimeError("the server did not start")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


# ---------------------------------------------------------------- load


async def _load(base: str, headers: dict[str, str], paths: list[str], clients: int, timeout: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    statuses: dict[str, int] = {}
    sent = 0
    size = 0
    queue = list(reversed(paths))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=timeout, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors, sent, size
            while queue:
                path = queue.pop()
                began = time.perf_counter()
                try:
                    response = await client.get(path)
                    ok = response.status_code == 200
                    size += len(response.content)
                    status = str(response.status_code)
                except httpx.HTTPError as exc:
                    ok = False
                    status = type(exc).__name__
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append(time.perf_counter() - began)
                sent += 1
                errors += not ok

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - began
    ordered = sorted(latencies)
    return {
        "requests": sent,
        "rps": round(sent / wall, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[max(int(len(ordered) * 0.95) - 1, 0)] * 1000, 1),
        "errors": errors,
        "bytes": size // max(sent, 1),
        "statuses": statuses,
    }


def surfaces(info: dict[str, Any], n: int) -> dict[str, tuple[dict[str, str], Any]]:
    api = {"Authorization": f"Bearer {info['token']}"}
    page = {"Cookie": f"discharge_bridge_session={info['cookie']}"}
    rnd = random.Random(5)
    return {
        "api_worklist": (api, lambda: "/api/v1/worklist?limit=50"),
        "api_worklist_deep": (api, lambda: f"/api/v1/worklist?limit=50&after={info['deep_after']}"),
        "worklist_page": (page, lambda: "/worklist?view=all"),
        "case_page": (page, lambda: f"/cases/{rnd.randint(1, n)}"),
        "api_board": (api, lambda: "/api/v1/board"),
        "board_page": (page, lambda: "/board"),
    }


def run_db(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-worklist-{kind}-"))
    pg = None
    if kind == "postgres":
        pg = PostgresServer()
        pg.start()
        name = pg.create_database()
        url = pg.url(name)
    else:
        url = f"sqlite:///{tmp / 'bench.sqlite3'}"
    proc = None
    try:
        upgrade(Settings(database_url=url, data_dir=tmp, mappings_dir=MAPPINGS))
        engine = make_engine(url)
        info = seed(engine, args.cases, args.hospitals)
        engine.dispose()
        print(f"[{kind}] seeded {info['cases']:,} open cases across {args.hospitals} hospitals in {info['seed_s']} s")
        proc, base = start_server(url, tmp, args.workers, args.figures_max_age)
        results: dict[str, Any] = {}
        for surface, (headers, path_of) in surfaces(info, args.cases).items():
            if args.only and surface not in args.only:
                continue
            asyncio.run(_load(base, headers, [path_of() for _ in range(3)], 1, args.timeout))  # warm up
            one = asyncio.run(_load(base, headers, [path_of() for _ in range(args.single)], 1, args.timeout))
            many = asyncio.run(
                _load(base, headers, [path_of() for _ in range(args.requests)], args.clients, args.timeout)
            )
            results[surface] = {"1": one, str(args.clients): many}
            for label, r in (("1 client ", one), (f"{args.clients} clients", many)):
                print(
                    f"[{kind}] {surface:<18} {label:<11} {r['requests']:>5} req  {r['rps']:>7.1f} req/s  "
                    f"p50 {r['p50_ms']:>8.1f} ms  p95 {r['p95_ms']:>8.1f} ms  errors {r['errors']:>3}  "
                    f"{r['bytes']:>7,} B" + ("" if r["errors"] == 0 else f"  {r['statuses']}"),
                    flush=True,
                )
        return results
    finally:
        if proc is not None:
            stop_server(proc)
        if pg is not None:
            pg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--hospitals", type=int, default=100)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=500, help="per surface under --clients")
    parser.add_argument("--single", type=int, default=50, help="requests per surface from one client")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds; a slower answer is an error")
    parser.add_argument("--only", nargs="*", help="surfaces to run (default: all)")
    parser.add_argument(
        "--figures-max-age",
        type=float,
        default=15.0,
        help="seconds the server keeps the filters' counts and the board's totals (list_figures_max_age_seconds)",
    )
    parser.add_argument("--quick", action="store_true", help="5,000 cases, 20 hospitals")
    args = parser.parse_args()
    if args.quick:
        args.cases, args.hospitals = 5000, 20
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    summary: dict[str, Any] = {
        "cases": args.cases,
        "hospitals": args.hospitals,
        "workers": args.workers,
        "figures_max_age_s": args.figures_max_age,
    }
    for kind in kinds:
        summary[kind] = run_db(kind, args)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
