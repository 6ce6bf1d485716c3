"""Crash benchmark: `discharge-bridge sync --once` killed with SIGKILL at random instants, then run to the end.

    .venv/bin/python bench/crash.py                     # 20k resources, 15 kills, SQLite
    .venv/bin/python bench/crash.py --postgres          # the same on a throwaway PostgreSQL cluster
    .venv/bin/python bench/crash.py --quick             # 3k resources, 5 kills

A file source serves the synthetic hospital (tests/support/synthetic.py). A clean database gets one
uninterrupted pass (timed: ``clean_s``). A second database gets K passes, each killed at a random
instant within the clean pass's duration (ingest or assessment alike; once a pass finishes before
its kill, within 90% of that pass's duration, so later kills land in the shorter passes a recovery
runs), then one pass to the end.
Compared with the clean run: cases lost, cases duplicated, assessments and tasks that differ (all
must be 0), and what recovery costs: ``recovery_s`` (the last pass after the kills) and
``extra_s`` (all killed passes plus the last one, minus ``clean_s``). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.assessment.crash, tests.support: the test's own harness

from tests.assessment.crash import (  # noqa: E402
    add_file_source,
    outcome,
    run_sync,
    start_sync,
    write_hospital,
)

from discharge_bridge.config import Settings  # noqa: E402
from discharge_bridge.db import make_engine, upgrade  # noqa: E402


def _database(folder: Path, postgres: Any) -> Settings:
    url = postgres.url(postgres.create_database()) if postgres is not None else None
    settings = Settings(data_dir=folder, database_url=url)
    upgrade(settings)
    return settings


def _diff(a: list[Any], b: list[Any]) -> int:
    return len(set(a) ^ set(b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resources", type=int, default=20_000)
    parser.add_argument("--kills", type=int, default=15)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL (Debian's binaries) instead of SQLite")
    parser.add_argument("--quick", action="store_true", help="3k resources, 5 kills")
    args = parser.parse_args()
    if args.quick:
        args.resources, args.kills = 3_000, 5
    rng = random.Random(args.seed)
    postgres = None
    if args.postgres:
        from tests.support.postgres import PostgresServer

        postgres = PostgresServer()
        postgres.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            os.environ["DISCHARGE_BRIDGE_IMPORT_ROOTS"] = str(root)  # file sources read only under it (issue 16)
            resources = write_hospital(root / "ehr", args.resources)
            clean, killed = _database(root / "clean", postgres), _database(root / "killed", postgres)
            engines = [make_engine(s.sqlalchemy_url) for s in (clean, killed)]
            for engine in engines:
                add_file_source(engine, root / "ehr")

            started = time.monotonic()
            run_sync(clean)
            clean_s = time.monotonic() - started
            expected = outcome(engines[0])

            killed_s, kills_landed, window = 0.0, 0, clean_s
            for _ in range(args.kills):
                proc = start_sync(killed)
                begun = time.monotonic()
                try:
                    proc.wait(timeout=rng.uniform(0.0, window))
                    window = max(0.2, 0.9 * (time.monotonic() - begun))  # it finished first: aim inside it
                except subprocess.TimeoutExpired:  # still running: kill it now
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(10)
                    kills_landed += 1
                killed_s += time.monotonic() - begun
            started = time.monotonic()
            run_sync(killed)
            recovery_s = time.monotonic() - started
            got = outcome(engines[1])
            for engine in engines:
                engine.dispose()
    finally:
        if postgres is not None:
            postgres.stop()

    expected_cases = {c[0] for c in expected["cases"]}
    got_cases = {c[0] for c in got["cases"]}
    figures = {
        "database": "postgresql" if args.postgres else "sqlite",
        "resources": resources,
        "kills": args.kills,
        "kills_landed": kills_landed,
        "expected_cases": len(expected_cases),
        "lost_cases": len(expected_cases - got_cases),
        "duplicated_cases": len(got["duplicated_cases"]),
        "differing_assessments": _diff(expected["risks"], got["risks"]),
        "differing_tasks": _diff(expected["tasks"], got["tasks"]),
        "left_in_queue": got["queued"],
        "clean_s": round(clean_s, 2),
        "killed_passes_s": round(killed_s, 2),
        "recovery_s": round(recovery_s, 2),
        "extra_s": round(killed_s + recovery_s - clean_s, 2),
    }
    print(
        f"{resources} resources, {kills_landed}/{args.kills} kills landed: "
        f"{figures['lost_cases']} of {figures['expected_cases']} cases lost, {figures['duplicated_cases']} duplicated; "
        f"clean pass {figures['clean_s']} s, recovery pass {figures['recovery_s']} s"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
