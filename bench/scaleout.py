"""Scale-out benchmark: 1 worker process against 3, sharing many file sources on PostgreSQL by lease.

    .venv/bin/python bench/scaleout.py                 # 300 sources of ~100 resources each
    .venv/bin/python bench/scaleout.py --quick         # 30 sources of ~60 resources, a smoke run
    .venv/bin/python bench/scaleout.py --sources 300 --resources 200 --workers 3

Each source is a small synthetic hospital (tests/support/synthetic.py, its own seed) in its own folder
(file mode). For each run a fresh PostgreSQL database (a throwaway cluster, tests/support/postgres.py)
gets the sources, then N real `discharge-bridge worker --once` processes start at once with
DISCHARGE_BRIDGE_POLL_BY=workers and the wall time until the last exits is the run's time (process
start-up included: ``*_with_startup_s``). Each worker records every pass (source, worker, start,
end): ``one_worker_s`` / ``three_workers_s`` run from the first pass's start to the last pass's end
(the load drained, start-up aside) and ``speedup`` is their ratio. The bench asserts every source
was polled exactly once and successfully and that no source had two overlapping passes. The last
line is JSON: sources, one_worker_s, three_workers_s (N workers), speedup, overlapping_passes, the
same with start-up, passes per worker, the workers' CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support: the tests' own harness (PostgreSQL cluster, synthetic hospital)

from sqlmodel import Session, col, select  # noqa: E402
from tests.assessment.crash import CLI  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402
from tests.support.synthetic import generate  # noqa: E402

from discharge_bridge.config import Settings  # noqa: E402
from discharge_bridge.connections.service import add_source  # noqa: E402
from discharge_bridge.db import make_engine, session_scope, upgrade  # noqa: E402
from discharge_bridge.ingest.models import EncounterSnapshot  # noqa: E402
from discharge_bridge.scheduling.workers import PassRecord, overlapping_passes  # noqa: E402
from discharge_bridge.sources.models import Source, SourceMode  # noqa: E402


def write_hospitals(root: Path, count: int, resources: int) -> int:
    """``count`` folders of one NDJSON file each; returns the resources written in all."""
    total = 0
    for n in range(count):
        folder = root / f"h{n:03d}"
        folder.mkdir(parents=True)
        items = generate(resources, seed=1000 + n).items
        with (folder / "hospital.ndjson").open("wb") as out:
            for item in items:
                out.write(orjson.dumps(item.resource) + b"\n")
        total += len(items)
    return total


def fresh_database(server: PostgresServer, folder: Path, hospitals: Path, count: int) -> Settings:
    settings = Settings(data_dir=folder, database_url=server.url(server.create_database()))
    upgrade(settings)
    engine = make_engine(settings.sqlalchemy_url)
    with session_scope(engine) as session:
        for n in range(count):
            add_source(
                session,
                name=f"h{n:03d}",
                hospital=f"Hospital {n}",
                base_url=str(hospitals / f"h{n:03d}"),
                mode=SourceMode.file,
                timezone="Europe/Moscow",
            )
    engine.dispose()
    return settings


def run_workers(
    settings: Settings, workers: int, concurrency: int, folder: Path
) -> tuple[float, float, list[PassRecord]]:
    """Start the workers at once, wait for the last; wall time, their CPU time, every pass they recorded."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISCHARGE_BRIDGE_")}
    env.update(
        DISCHARGE_BRIDGE_DATA_DIR=str(settings.data_dir),
        DISCHARGE_BRIDGE_DATABASE_URL=str(settings.database_url),
        DISCHARGE_BRIDGE_IMPORT_ROOTS=os.environ["DISCHARGE_BRIDGE_IMPORT_ROOTS"],
        DISCHARGE_BRIDGE_POLL_BY="workers",
        DISCHARGE_BRIDGE_WORKER_TICK_SECONDS="0.5",
        DISCHARGE_BRIDGE_LOG_LEVEL="WARNING",
    )
    folder.mkdir(parents=True, exist_ok=True)
    records = [folder / f"worker{n}.jsonl" for n in range(workers)]
    logs = [(folder / f"worker{n}.log").open("wb") for n in range(workers)]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [CLI, "worker", "--once", "--concurrency", str(concurrency), "--record", str(record)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for record, log in zip(records, logs, strict=True)
    ]
    codes = [proc.wait() for proc in procs]
    elapsed = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    for log in logs:
        log.close()
    if any(codes):
        tail = (folder / f"worker{codes.index(next(c for c in codes if c))}.log").read_text()[-3000:]
        raise SystemExit(f"a worker failed (exit codes {codes}):\n{tail}")
    passes = []
    for record in records:
        for line in record.read_bytes().splitlines() if record.exists() else []:
            row = orjson.loads(line)
            passes.append(
                PassRecord(
                    row["source"],
                    row["worker"],
                    datetime.fromisoformat(row["started_at"]),
                    datetime.fromisoformat(row["finished_at"]),
                )
            )
    return elapsed, cpu, passes


def drain_seconds(passes: list[PassRecord]) -> float:
    """From the first pass's start to the last pass's end: the load drained, process start-up aside."""
    return (max(p.finished_at for p in passes) - min(p.started_at for p in passes)).total_seconds()


def check(settings: Settings, passes: list[PassRecord], count: int) -> dict[str, Any]:
    """Every source polled exactly once and successfully, no two passes of one source overlapping."""
    per_source = Counter(p.source for p in passes)
    assert len(per_source) == count and set(per_source.values()) == {1}, per_source.most_common(3)
    clashes = overlapping_passes(passes)
    assert clashes == [], clashes[:3]
    engine = make_engine(settings.sqlalchemy_url)
    with Session(engine) as session:
        failed = session.exec(select(Source.name).where(col(Source.last_success_at).is_(None))).all()
        encounters = len(session.exec(select(EncounterSnapshot.id)).all())
    engine.dispose()
    assert not failed, f"sources without a successful pass: {failed[:5]}"
    return {"overlapping_passes": len(clashes), "encounters": encounters}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=300)
    parser.add_argument("--resources", type=int, default=100, help="resources per source (at least)")
    parser.add_argument("--workers", type=int, default=3, help="worker processes of the scaled-out run")
    parser.add_argument("--concurrency", type=int, default=1, help="sources each worker polls at once")
    parser.add_argument("--quick", action="store_true", help="30 sources of ~60 resources")
    args = parser.parse_args()
    if args.quick:
        args.sources, args.resources = 30, 60
    server = PostgresServer()
    server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            os.environ["DISCHARGE_BRIDGE_IMPORT_ROOTS"] = str(root)  # file sources read only under it
            started = time.perf_counter()
            resources = write_hospitals(root / "ehr", args.sources, args.resources)
            print(f"{args.sources} hospitals, {resources} resources written in {time.perf_counter() - started:.1f} s")
            results: dict[int, tuple[float, float, list[PassRecord], dict[str, Any]]] = {}
            for workers in (1, args.workers):
                run = root / f"run{workers}"
                settings = fresh_database(server, run, root / "ehr", args.sources)
                elapsed, cpu, passes = run_workers(settings, workers, args.concurrency, run)
                checked = check(settings, passes, args.sources)
                results[workers] = (elapsed, cpu, passes, checked)
                per_worker = Counter(p.worker for p in passes)
                print(
                    f"{workers} worker(s) x {args.concurrency}: {len(passes)} passes in {elapsed:.2f} s from start, "
                    f"{drain_seconds(passes):.2f} s first pass to last "
                    f"({cpu:.1f} CPU-s in the workers, the database server's apart); "
                    f"passes per worker {sorted(per_worker.values(), reverse=True)}; "
                    f"overlapping passes {checked['overlapping_passes']}; encounters stored {checked['encounters']}"
                )
    finally:
        server.stop()
    one, many = results[1][0], results[args.workers][0]
    one_drain, many_drain = drain_seconds(results[1][2]), drain_seconds(results[args.workers][2])
    print(
        f"speedup {one_drain / many_drain:.2f}x first pass to last, {one / many:.2f}x with process start-up, "
        f"with {args.workers} workers on {os.cpu_count()} cores shared with other work"
    )
    print(
        json.dumps(
            {
                "sources": args.sources,
                "resources": resources,
                "workers": args.workers,
                "concurrency": args.concurrency,
                "one_worker_s": round(one_drain, 2),
                "three_workers_s" if args.workers == 3 else f"{args.workers}_workers_s": round(many_drain, 2),
                "speedup": round(one_drain / many_drain, 2),
                "one_worker_with_startup_s": round(one, 2),
                "workers_with_startup_s": round(many, 2),
                "speedup_with_startup": round(one / many, 2),
                "overlapping_passes": sum(r[3]["overlapping_passes"] for r in results.values()),
                "passes_per_worker": sorted(Counter(p.worker for p in results[args.workers][2]).values()),
                "one_worker_cpu_s": round(results[1][1], 1),
                "workers_cpu_s": round(results[args.workers][1], 1),
                "cpu_count": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
