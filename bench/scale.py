"""Scale benchmark: the assessment stage alone, on a hospital ingested without it.

    .venv/bin/python bench/scale.py                  # 100k resources, SQLite, and PostgreSQL when its binaries exist
    .venv/bin/python bench/scale.py --quick          # 6k resources, for development
    .venv/bin/python bench/scale.py --per-row        # also drain a copy through the per-row reference (the ratio)
    .venv/bin/python bench/scale.py --profile        # cProfile the drain; prints the top functions
    .venv/bin/python bench/scale.py --backfill-1m    # a 1M-resource Bulk backfill with scoring (slow)

A synthetic hospital (tests/support/synthetic.py) is served on loopback (bench/loopback.py) and
polled into a fresh database by ``sync_source``, which only stores and queues; then
``assessment.drain`` is timed alone in the same process, with every SQL statement counted
(an executemany counts once). Each run is its own spawned process. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
import traceback
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests.support

from ingest import _child, _fresh_database, _peak_rss_mb, _profile_text, _server, _table_counts


def _counts(engine: Any) -> dict[str, int]:
    from discharge_bridge.cases.models import Case, CaseEvent
    from discharge_bridge.cases.tasks.models import Task
    from discharge_bridge.ingest.changes import QUEUE
    from discharge_bridge.risk.models import RiskAssessment

    out = _table_counts(engine, (RiskAssessment, Case, CaseEvent, Task))
    out["queued"] = _table_counts(engine, (QUEUE,))[QUEUE.name]
    return out


def run_drain(port: int, url: str | None, per_row: bool, profile_top: int, processes: int, conn: Any) -> None:
    """Child process: ingest the served hospital without assessment, then time ``drain`` alone;
    ``processes``: scoring processes (assessment/pool.py), started before the clock as in a worker
    that has been running."""
    try:
        import tempfile

        from sqlalchemy import event

        from discharge_bridge.assessment import drain
        from discharge_bridge.assessment.pool import close_pools, scoring_pool
        from discharge_bridge.fhir import FhirClient
        from discharge_bridge.ingest.poll import sync_source

        if per_row:  # the per-row reference the bulk path replaced (tests/assessment/per_row.py)
            from tests.assessment.per_row import sync_cases_per_row

            import discharge_bridge.cases.jobs as jobs

            jobs.sync_cases = sync_cases_per_row  # type: ignore[assignment]
        with tempfile.TemporaryDirectory(prefix="dbscale-") as tmp:
            settings, engine = _fresh_database(tmp, f"http://127.0.0.1:{port}/fhir", url)
            settings = settings.model_copy(update={"scoring_processes": processes})
            client = FhirClient(f"http://127.0.0.1:{port}/fhir")
            w0 = time.perf_counter()
            result = sync_source("bench", engine=engine, settings=settings, client=client)
            ingest_s = time.perf_counter() - w0
            client.close()
            before = _counts(engine)
            statements = [0]

            def count(*_: Any) -> None:
                statements[0] += 1

            event.listen(engine, "before_cursor_execute", count)
            pool = scoring_pool(settings)
            if pool is not None:
                pool.warm()
            profiler = None
            if profile_top:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            wall0, cpu0 = time.perf_counter(), time.process_time()
            stats = drain(engine, settings)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            if profiler is not None:
                profiler.disable()
            event.remove(engine, "before_cursor_execute", count)
            out: dict[str, Any] = {
                "status": str(result.status),
                "fetched": result.fetched,
                "ingest_s": ingest_s,
                "queued": before["queued"],
                "patients": stats.patients,
                "assessed": stats.assessed,
                "flagged": stats.flagged,
                "opened": stats.cases_opened,
                "failed": stats.failed,
                "error": stats.error,
                "wall_s": wall,
                "cpu_s": cpu,
                "statements": statements[0],
                "rows": _counts(engine),
                "peak_rss_mb": _peak_rss_mb(),
            }
            out["scoring_peak_rss_mb"] = _scoring_peak_rss_mb(pool)
            close_pools()
            if profiler is not None:
                out["profile"] = _profile_text(profiler, profile_top, wall, "assessment drain")
            engine.dispose()
        conn.send(out)
    except BaseException:
        conn.send({"error": traceback.format_exc()})


def run_backfill(port: int, url: str | None, processes: int, conn: Any) -> None:
    """Child process: a Bulk backfill of the served export into a fresh database, then the assessment
    stage; wall time of both and the peak RSS of the process and of its scoring processes, which
    start inside the timed window."""
    try:
        import tempfile

        from discharge_bridge.assessment import drain
        from discharge_bridge.assessment.pool import close_pools, scoring_pool
        from discharge_bridge.fhir import FhirClient
        from discharge_bridge.ingest import backfill

        base = f"http://127.0.0.1:{port}/fhir"
        with tempfile.TemporaryDirectory(prefix="dbscale-1m-") as tmp:
            settings, engine = _fresh_database(tmp, base, url)
            settings = settings.model_copy(update={"scoring_processes": processes})
            w0 = time.perf_counter()
            pool = scoring_pool(settings)
            if pool is not None:
                pool.warm()
            with FhirClient(base) as client:
                outcome = backfill.backfill_source("bench", engine=engine, settings=settings, client=client)
            ingest_s = time.perf_counter() - w0
            ingest_rss = _peak_rss_mb()
            stats = drain(engine, settings)
            wall = time.perf_counter() - w0
            scoring_rss = _scoring_peak_rss_mb(pool)
            close_pools()
            out = {
                "wall_s": wall,
                "scoring_peak_rss_mb": scoring_rss,
                "ingest_s": ingest_s,
                "status": str(outcome.sync.status),
                "ingested": outcome.sync.fetched,
                "patients": stats.patients,
                "opened": stats.cases_opened,
                "ingest_peak_rss_mb": ingest_rss,
                "peak_rss_mb": _peak_rss_mb(),
            }
            engine.dispose()
        conn.send(out)
    except BaseException:
        conn.send({"error": traceback.format_exc()})


def _scoring_peak_rss_mb(pool: Any) -> float:
    """The largest peak RSS of the pool's processes (VmHWM: since their exec, unlike RUSAGE_CHILDREN,
    which counts the parent's pages a spawned child held between fork and exec)."""
    if pool is None:
        return 0.0
    peaks = [0.0]
    for pid in pool.pids():
        with open(f"/proc/{pid}/status") as status:
            peaks += [int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:")]
    return max(peaks)


def _line(label: str, r: dict[str, Any]) -> str:
    rows = r["rows"]
    return (
        f"  {label:<22} {r['patients']:>7,} patients in {r['wall_s']:7.2f} s wall {r['cpu_s']:7.2f} s CPU"
        f" = {r['patients'] / r['wall_s']:7,.0f} patients/s ({r['patients'] / r['cpu_s']:,.0f}/CPU-s)"
        f" | {r['statements']:>7,} statements"
        f" ({r['statements'] / max(r['patients'], 1):.2f}/patient) | cases {rows['coordination_case']:,}"
        f" events {rows['case_event']:,} tasks {rows['case_task']:,} | peak RSS {r['peak_rss_mb']:.0f} MB"
        f" | left queued {rows['queued']} | failed {r['failed']}"
        + (f" | scoring process peak RSS {r['scoring_peak_rss_mb']:.0f} MB" if r["scoring_peak_rss_mb"] else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resources", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="6k resources")
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--postgres", action="store_true", help="require PostgreSQL (fail if its binaries are missing)")
    parser.add_argument("--per-row", action="store_true", help="also drain through the per-row reference path")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--backfill-1m", action="store_true", help="also a 1M-resource backfill with scoring")
    parser.add_argument("--backfill-size", type=int, default=1_000_000, help="resources of --backfill-1m")
    parser.add_argument(
        "--scoring-processes",
        type=int,
        default=1,
        help="scoring processes of the pooled drain and of the backfill (DISCHARGE_BRIDGE_SCORING_PROCESSES)",
    )
    args = parser.parse_args()
    size = 6000 if args.quick else args.resources
    ctx = mp.get_context("spawn")

    from tests.support.postgres import PostgresServer, _pg_bin

    postgres = None
    if not args.sqlite_only and (args.postgres or _pg_bin() is not None):
        postgres = PostgresServer()
        postgres.start()
    figures: dict[str, Any] = {"dataset_resources": size}
    try:
        databases: list[tuple[str, Any]] = [("sqlite", None)]
        if postgres is not None:
            databases.append(("postgresql", postgres))
        print(f"discharge_bridge scale benchmark: the assessment stage alone on a {size:,}-resource hospital")
        with _server(ctx, size) as info:
            for name, pg in databases:
                n = args.scoring_processes
                variants = [("bulk", False, 0)]
                variants += [(f"bulk +{n} scoring", False, n)] if n else []
                variants += [("per-row", True, 0)] if args.per_row else []
                for variant, per_row, processes in variants:
                    url = pg.url(pg.create_database()) if pg is not None else None
                    top = args.top if args.profile else 0
                    r = _child(ctx, run_drain, info["port"], url, per_row, top, processes)
                    if r["error"] or r["status"] != "ok":
                        raise SystemExit(f"{name} {variant}: {r['error'] or r['status']}")
                    print(_line(f"{name} {variant}", r) + f" | ingest before {r['ingest_s']:.1f} s")
                    key = {"bulk": name, "per-row": f"{name}_per_row"}.get(variant, f"{name}_pooled")
                    figures[f"{key}_patients_per_s"] = round(r["patients"] / r["wall_s"])
                    figures[f"{key}_patients_per_cpu_s"] = round(r["patients"] / r["cpu_s"])
                    figures[f"{key}_patients"] = r["patients"]
                    figures[f"{key}_wall_s"] = round(r["wall_s"], 2)
                    figures[f"{key}_statements"] = r["statements"]
                    figures[f"{key}_cases"] = r["rows"]["coordination_case"]
                    if r.get("profile"):
                        print(r["profile"])
                if args.per_row:
                    ratio = figures[f"{name}_patients_per_s"] / figures[f"{name}_per_row_patients_per_s"]
                    figures[f"{name}_ratio"] = round(ratio, 1)
                    print(f"  {name}: bulk / per-row {ratio:.1f}x")
        # The headline: SQLite as configured with --scoring-processes (the one-process figure is sqlite_...).
        figures["patients_per_s"] = figures[
            "sqlite_pooled_patients_per_s" if args.scoring_processes else "sqlite_patients_per_s"
        ]
        figures["scoring_processes"] = args.scoring_processes
        if args.backfill_1m:
            import tempfile

            from push import _export_server

            with (
                tempfile.TemporaryDirectory(prefix="dbscale-export-") as folder,
                _export_server(ctx, args.backfill_size, folder) as info,
            ):
                for name, pg in databases:
                    url = pg.url(pg.create_database()) if pg is not None else None
                    r = _child(ctx, run_backfill, info["port"], url, args.scoring_processes)
                    if r.get("error") or r["status"] != "ok":
                        raise SystemExit(f"{name} 1M backfill: {r.get('error') or r['status']}")
                    print(
                        f"  {name} backfill of {info['resources']:,} resources with scoring: {r['wall_s']:.1f} s"
                        f" (ingest {r['ingest_s']:.1f} s, {r['ingested']:,} ingested), {r['patients']:,} patients,"
                        f" {r['opened']:,} cases, peak RSS {r['peak_rss_mb']:.0f} MB"
                        f" (ingest {r['ingest_peak_rss_mb']:.0f} MB), {args.scoring_processes} scoring process(es)"
                        + (f" of peak RSS {r['scoring_peak_rss_mb']:.0f} MB" if args.scoring_processes else "")
                    )
                    figures[f"{name}_backfill_1m_s"] = round(r["wall_s"], 1)
                    figures[f"{name}_backfill_peak_rss_mb"] = round(r["peak_rss_mb"], 1)
                    figures[f"{name}_backfill_scoring_peak_rss_mb"] = round(r["scoring_peak_rss_mb"], 1)
            figures["backfill_1m_s"] = figures["sqlite_backfill_1m_s"]
            figures["peak_rss_mb"] = figures["sqlite_backfill_peak_rss_mb"]
    finally:
        if postgres is not None:
            postgres.stop()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
