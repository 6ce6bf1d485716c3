"""Push and backfill benchmark: notification-to-worklist latency, and $export backfill throughput.

    .venv/bin/python bench/push.py                  # 200 admissions per channel, 100k-resource export
    .venv/bin/python bench/push.py --quick          # 30 admissions, 6k resources

Latency: the EHR simulator (`sekmet-fhir`, its own process) notifies the service (uvicorn in its
own process, SQLite) through a Subscription; for each admission the clock starts just before the
Encounter is written to the EHR and stops when its flagged assessment is in the database (polled
every 5 ms by this process), so the EHR's own delivery time is included. Admissions are sent one
after another. Backfill: a loopback `$export` server (its own process) serves the synthetic
hospital of bench/synthetic.py as NDJSON files; `backfill_source` runs in a fresh process.
The last line printed is one JSON object; see bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # tests.support.sekmet: the simulator harness

from tests.support.synthetic import SEED, generate  # noqa: E402 (after the path set-up above)

SECRET_ENV = "BENCH_HOOK_SECRET"
V3 = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
TOPIC = "http://sekmet.dev/fhir/SubscriptionTopic/encounter-start"


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _database(tmp: str) -> Any:
    from discharge_bridge.config import Settings
    from discharge_bridge.db import upgrade

    settings = Settings(data_dir=Path(tmp), database_url=None)
    upgrade(settings)
    return settings


# -- latency ------------------------------------------------------------------------------------------
def run_service(data_dir: str, port: int, conn: Any) -> None:
    """Child process: the web app on 127.0.0.1:port (webhook, ingest after each response)."""
    import logging

    import uvicorn

    from discharge_bridge.app import create_app
    from discharge_bridge.config import Settings

    logging.getLogger("discharge_bridge").setLevel(logging.ERROR)
    server = uvicorn.Server(
        uvicorn.Config(create_app(Settings(data_dir=Path(data_dir))), host="127.0.0.1", port=port, log_level="error")
    )
    threading.Thread(target=lambda: (_wait_started(server), conn.send("up")), daemon=True).start()
    server.run()


def _wait_started(server: Any) -> None:
    while not server.started:
        time.sleep(0.01)


def _admission(n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The record (a transaction) and then the admission: an 86-year-old with dementia."""
    pid = f"bp{n}"

    def put(resource: dict[str, Any]) -> dict[str, Any]:
        return {
            "resource": resource,
            "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
        }

    record = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            put({"resourceType": "Patient", "id": pid, "birthDate": "1940-03-02", "gender": "female"}),
            put(
                {
                    "resourceType": "Condition",
                    "id": f"bc{n}",
                    "subject": {"reference": f"Patient/{pid}"},
                    "clinicalStatus": {"coding": [{"code": "active"}]},
                    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "F03.90"}]},
                }
            ),
        ],
    }
    stay = {
        "resourceType": "Encounter",
        "id": f"be{n}",
        "status": "in-progress",
        "class": {"system": V3, "code": "IMP"},
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": "2026-11-20T10:15:00+03:00"},
    }
    return record, stay


def measure_latency(kind: str, admissions: int, tmp: str) -> dict[str, Any]:
    """Subscribe a source to the simulator, admit patients one by one, time each to the worklist."""
    from sqlalchemy import text
    from tests.support.sekmet import SekmetServer

    from discharge_bridge.connections.service import add_source
    from discharge_bridge.db import make_engine, session_scope
    from discharge_bridge.subscriptions.models import PayloadContent, SubscriptionKind
    from discharge_bridge.subscriptions.service import SubscribeRequest, subscribe_source

    os.environ[SECRET_ENV] = "bench-hook-secret"
    data = os.path.join(tmp, f"db-{kind}")
    settings = _database(data)
    engine = make_engine(settings.sqlalchemy_url)
    ctx = mp.get_context("spawn")
    port = _free_port()
    ours, theirs = ctx.Pipe()
    service = ctx.Process(target=run_service, args=(data, port, theirs), daemon=True)
    service.start()
    sim = SekmetServer(Path(tmp) / f"sekmet-{kind}")
    sim.start()
    try:
        if not ours.poll(60):
            raise RuntimeError("the service did not start")
        ours.recv()
        with session_scope(engine) as session:
            add_source(session, name="sim", hospital="Simulated General", base_url=sim.base_url)
        request = SubscribeRequest(public_url=f"http://127.0.0.1:{port}", secret_env=SECRET_ENV)
        if kind == "backport":
            request = SubscribeRequest(
                public_url=f"http://127.0.0.1:{port}",
                secret_env=SECRET_ENV,
                kind=SubscriptionKind.backport,
                topics=(TOPIC,),
                content=PayloadContent.id_only,
            )
        (row,) = subscribe_source("sim", request, engine=engine)
        deadline = time.monotonic() + 20
        while sim.get(f"Subscription/{row.server_id}")["status"] != "active":
            if time.monotonic() > deadline:
                raise RuntimeError("the Subscription did not become active")
            time.sleep(0.05)
        query = text(
            "SELECT 1 FROM risk_assessment WHERE encounter_fhir_id = :e AND flagged = 1 AND current = 1 LIMIT 1"
        )
        latencies: list[float] = []
        with engine.connect() as conn:
            for n in range(admissions):
                record, stay = _admission(n)
                sim.transaction(record)
                started = time.perf_counter()
                sim.put(stay)
                deadline = started + 30
                while conn.execute(query, {"e": stay["id"]}).first() is None:
                    conn.rollback()  # a fresh snapshot for the next look
                    if time.perf_counter() > deadline:
                        raise RuntimeError(f"admission {n} did not reach the worklist within 30 s")
                    time.sleep(0.005)
                latencies.append((time.perf_counter() - started) * 1000)
                conn.rollback()
            polls = conn.execute(text("SELECT count(*) FROM sync_run WHERE kind = 'poll'")).scalar_one()
    finally:
        sim.stop()
        service.terminate()
        service.join(10)
        engine.dispose()
    latencies.sort()
    return {
        "kind": kind,
        "admissions": admissions,
        "p50_ms": statistics.median(latencies),
        "p95_ms": latencies[max(0, round(0.95 * len(latencies)) - 1)],
        "max_ms": latencies[-1],
        "mean_ms": statistics.fmean(latencies),
        "polls": polls,
    }


# -- backfill -----------------------------------------------------------------------------------------
class _ExportHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    folder: Path
    manifest: bytes
    polls = 0

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].removeprefix("/fhir/")
        if path == "Patient/$export":
            self._send(202, b"", {"Content-Location": "http://localhost:8090/fhir/bulk-status/1"})
        elif path == "bulk-status/1":
            type(self).polls += 1
            if type(self).polls == 1:
                self._send(202, b"", {"X-Progress": "writing", "Retry-After": "1"})
            else:
                self._send(200, self.manifest, {"Content-Type": "application/json"})
        elif path.startswith("bulk-files/") and "/" not in path[len("bulk-files/") :]:
            file = self.folder / path[len("bulk-files/") :]
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+ndjson")
            self.send_header("Content-Length", str(file.stat().st_size))
            self.end_headers()
            with file.open("rb") as handle:
                shutil.copyfileobj(handle, self.wfile, 1 << 20)
        else:
            self._send(404, b"", {})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_export(n_resources: int, seed: int, folder: str, conn: Any) -> None:
    """Child process: the synthetic hospital as one NDJSON file per type, and the $export endpoints."""
    gen = generate(n_resources, seed)
    counts: dict[str, int] = defaultdict(int)
    handles: dict[str, Any] = {}
    for item in gen.items:
        rtype = item.resource["resourceType"]
        if rtype not in handles:
            handles[rtype] = open(os.path.join(folder, f"{rtype}.ndjson"), "wb")  # noqa: SIM115
        handles[rtype].write(orjson.dumps(item.resource) + b"\n")
        counts[rtype] += 1
    for handle in handles.values():
        handle.close()
    del gen
    _ExportHandler.folder = Path(folder)
    _ExportHandler.manifest = orjson.dumps(
        {
            "transactionTime": "2026-11-23T10:00:00.000Z",
            "request": "http://localhost:8090/fhir/Patient/$export",
            "requiresAccessToken": True,
            "output": [
                {"type": t, "url": f"http://localhost:8090/fhir/bulk-files/{t}.ndjson", "count": c}
                for t, c in counts.items()
            ],
            "error": [],
        }
    )
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ExportHandler)
    httpd.daemon_threads = True
    conn.send({"port": httpd.server_address[1], "resources": sum(counts.values()), "by_type": dict(counts)})
    httpd.serve_forever(poll_interval=0.5)


def run_backfill(port: int, conn: Any) -> None:
    """Child process: `backfill_source` of a new source into a fresh SQLite database."""
    try:
        from discharge_bridge.assessment import assess_source
        from discharge_bridge.connections.service import add_source
        from discharge_bridge.db import make_engine, session_scope
        from discharge_bridge.fhir import FhirClient
        from discharge_bridge.ingest import backfill

        base = f"http://127.0.0.1:{port}/fhir"
        with tempfile.TemporaryDirectory(prefix="dbbench-bulk-") as tmp:
            settings = _database(tmp)
            engine = make_engine(settings.sqlalchemy_url)
            with session_scope(engine) as session:
                add_source(session, name="bench", hospital="Bench General", base_url=base, timezone="Europe/Moscow")
            rss_before = _peak_rss_mb()
            wall0, cpu0 = time.perf_counter(), time.process_time()
            with FhirClient(base) as client:
                outcome = backfill.backfill_source("bench", engine=engine, settings=settings, client=client)
            ingest_wall = time.perf_counter() - wall0
            cpu = time.process_time() - cpu0
            peak_ingest = _peak_rss_mb()
            started = time.perf_counter()  # then the assessment stage drains what the backfill queued
            assess_source(outcome.sync, "bench", engine=engine, settings=settings)
            spent = {"wall_s": time.perf_counter() - started, "rss_mb": peak_ingest}
            total = ingest_wall + spent["wall_s"]
            r = outcome.sync
            conn.send(
                {
                    "status": str(r.status),
                    "error": r.error,
                    "read": outcome.read,
                    "ingested": r.fetched,
                    "skipped": outcome.skipped,
                    "dead_letters": r.dead_letters,
                    "assessed": r.assessed,
                    "wall_s": total - spent["wall_s"],
                    "cpu_s": cpu,
                    "total_wall_s": total,
                    "scoring_wall_s": spent["wall_s"],
                    "rss_before_mb": rss_before,
                    "peak_rss_mb": spent["rss_mb"] or _peak_rss_mb(),
                    "peak_rss_with_scoring_mb": _peak_rss_mb(),
                    "cursor": r.cursor_after,
                }
            )
    except BaseException:
        conn.send({"error": traceback.format_exc()})


@contextlib.contextmanager
def _export_server(ctx: Any, n_resources: int, folder: str) -> Iterator[dict[str, Any]]:
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=serve_export, args=(n_resources, SEED, folder, theirs), daemon=True)
    proc.start()
    try:
        if not ours.poll(600):
            raise RuntimeError("the export server did not start")
        yield ours.recv()
    finally:
        proc.terminate()
        proc.join(10)


def measure_backfill(n_resources: int, tmp: str) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    folder = os.path.join(tmp, "export")
    os.makedirs(folder)
    with _export_server(ctx, n_resources, folder) as info:
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(target=run_backfill, args=(info["port"], theirs))
        proc.start()
        while not ours.poll(1):
            if not proc.is_alive():
                raise RuntimeError(f"the backfill process died with exit code {proc.exitcode}")
        out: dict[str, Any] = ours.recv()
        proc.join(60)
    if "wall_s" not in out:
        raise RuntimeError(f"the backfill failed:\n{out.get('error')}")
    if out["status"] != "ok":
        raise RuntimeError(f"the backfill failed: {out['error']}")
    return out | {"dataset": info}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--admissions", type=int, default=200, help="admissions timed per channel")
    parser.add_argument("--resources", type=int, default=100_000, help="size of the exported hospital")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    args = parser.parse_args()
    admissions = 30 if args.quick else args.admissions
    resources = 6000 if args.quick else args.resources

    with tempfile.TemporaryDirectory(prefix="dbbench-push-") as tmp:
        classic = measure_latency("classic", admissions, tmp)
        backport = measure_latency("backport", admissions, tmp)
        bulk = measure_backfill(resources, tmp)

    print("discharge_bridge push and backfill benchmark (SQLite, loopback, EHR simulator for push)")
    for lat, label in ((classic, "classic rest-hook, full resource"), (backport, "Backport, id-only + re-read")):
        print(
            f"  {label:>34}: {lat['admissions']} admissions, EHR write -> worklist p50 {lat['p50_ms']:.0f} ms,"
            f" p95 {lat['p95_ms']:.0f} ms, max {lat['max_ms']:.0f} ms, mean {lat['mean_ms']:.0f} ms;"
            f" polls {lat['polls']}"
        )
    print(
        f"  backfill: {bulk['dataset']['resources']:,} resources exported, {bulk['read']:,} NDJSON lines read"
        f" (Encounter files twice), {bulk['ingested']:,} ingested, {bulk['skipped']:,} not kept,"
        f" {bulk['dead_letters']} dead letters | {bulk['wall_s']:.2f} s wall ({bulk['cpu_s']:.2f} s CPU with scoring)"
        f" | {bulk['dataset']['resources'] / bulk['wall_s']:,.0f} exported res/s,"
        f" {bulk['ingested'] / bulk['wall_s']:,.0f} ingested res/s | peak RSS {bulk['peak_rss_mb']:.0f} MB"
        f" (before {bulk['rss_before_mb']:.0f} MB, with scoring {bulk['peak_rss_with_scoring_mb']:.0f} MB)"
    )
    print(
        f"  then risk scoring: {bulk['assessed']:,} patients in {bulk['scoring_wall_s']:.2f} s;"
        f" end to end {bulk['total_wall_s']:.2f} s; cursor {bulk['cursor']}"
    )
    figures = {
        "p50_ms": round(classic["p50_ms"], 1),
        "p95_ms": round(classic["p95_ms"], 1),
        "backfill_resources_per_s": round(bulk["dataset"]["resources"] / bulk["wall_s"]),
        "peak_rss_mb": round(bulk["peak_rss_mb"], 1),
        "admissions": classic["admissions"],
        "backport_id_only_p50_ms": round(backport["p50_ms"], 1),
        "backport_id_only_p95_ms": round(backport["p95_ms"], 1),
        "polls_during_latency_runs": classic["polls"] + backport["polls"],
        "backfill_dataset_resources": bulk["dataset"]["resources"],
        "backfill_ingested": bulk["ingested"],
        "backfill_ingested_per_s": round(bulk["ingested"] / bulk["wall_s"]),
        "backfill_wall_s": round(bulk["wall_s"], 2),
        "backfill_scoring_s": round(bulk["scoring_wall_s"], 2),
        "backfill_end_to_end_s": round(bulk["total_wall_s"], 2),
        "peak_rss_with_scoring_mb": round(bulk["peak_rss_with_scoring_mb"], 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
