"""Ingest benchmark: the real poll pass against a loopback FHIR server, and a naive baseline.

    .venv/bin/python bench/ingest.py                 # 100k resources (and 25k for the memory check)
    .venv/bin/python bench/ingest.py --quick         # smoke run, well under 30 s
    .venv/bin/python bench/ingest.py --profile       # adds a cProfile'd pass and prints its top 15

Every measured pass runs in its own spawned process (fresh interpreter, fresh SQLite database in a
temp dir) and the server in another, so CPU time and peak RSS are the client's alone. The last line
printed is one JSON object with the figures; see bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests.support

from tests.support.synthetic import SEED

ADVERTISED = "http://localhost:8090/fhir"


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _fresh_database(tmp: str, base_url: str, url: str | None = None) -> tuple[Any, Any]:
    """A migrated database (SQLite in ``tmp`` unless ``url``) with the source "bench" at ``base_url``."""
    from pathlib import Path

    from discharge_bridge.config import Settings
    from discharge_bridge.connections.service import add_source
    from discharge_bridge.db import make_engine, session_scope, upgrade

    settings = Settings(data_dir=Path(tmp), database_url=url)
    upgrade(settings)
    engine = make_engine(settings.sqlalchemy_url)
    with session_scope(engine) as session:
        add_source(session, name="bench", hospital="Bench General", base_url=base_url, timezone="Europe/Moscow")
    return settings, engine


def _table_counts(engine: Any, tables: tuple[Any, ...]) -> dict[str, int]:
    """Rows in each of ``tables`` (models or Core tables), by table name."""
    from sqlalchemy import func, select
    from sqlmodel import Session

    with Session(engine) as session:
        return {
            getattr(t, "__tablename__", None) or t.name: session.execute(
                select(func.count()).select_from(t)
            ).scalar_one()
            for t in tables
        }


def _row_counts(engine: Any) -> dict[str, int]:
    from discharge_bridge.ingest.models import ClinicalSnapshot, DeadLetter, EncounterSnapshot, PatientSnapshot

    return _table_counts(engine, (PatientSnapshot, EncounterSnapshot, ClinicalSnapshot, DeadLetter))


# -- the real path ----------------------------------------------------------------------------------
def run_real(port: int, profile_top: int, conn: Any) -> None:
    """Child process: one first poll pass of a new source through sync_source, then the assessment
    stage draining what the pass queued (timed apart: the headline is the ingest pass)."""
    try:
        import tempfile

        import httpx

        from discharge_bridge.assessment import drain
        from discharge_bridge.fhir import FhirClient
        from discharge_bridge.ingest.poll import sync_source

        base = f"http://127.0.0.1:{port}/fhir"
        urls: list[str] = []

        class _Recording(httpx.HTTPTransport):  # the pages' URLs, for the limit below (no bodies kept)
            def handle_request(self, request: httpx.Request) -> httpx.Response:
                urls.append(str(request.url))
                return super().handle_request(request)

        with tempfile.TemporaryDirectory(prefix="dbbench-") as tmp:
            settings, engine = _fresh_database(tmp, base)
            client = FhirClient(base, transport=_Recording())
            rss_before = _peak_rss_mb()
            profiler = scoring_profiler = None
            if profile_top:
                import cProfile

                profiler, scoring_profiler = cProfile.Profile(), cProfile.Profile()
                profiler.enable()
            wall0, cpu0 = time.perf_counter(), time.process_time()
            result = sync_source("bench", engine=engine, settings=settings, client=client)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            peak_ingest = _peak_rss_mb()
            if profiler is not None and scoring_profiler is not None:
                profiler.disable()
                scoring_profiler.enable()
            wall1, cpu1 = time.perf_counter(), time.process_time()
            stats = drain(engine, settings)
            scoring_wall, scoring_cpu = time.perf_counter() - wall1, time.process_time() - cpu1
            if scoring_profiler is not None:
                scoring_profiler.disable()
            client.close()
            out: dict[str, Any] = {
                "status": str(result.status),
                "error": result.error or stats.error,
                "pages": result.pages,
                "fetched": result.fetched,
                "created": result.created,
                "dead_letters": result.dead_letters,
                "wall_s": wall,
                "cpu_s": cpu,
                "total_wall_s": wall + scoring_wall,
                "total_cpu_s": cpu + scoring_cpu,
                "scoring_wall_s": scoring_wall,
                "scoring_cpu_s": scoring_cpu,
                "assessed": stats.patients,
                "rss_before_mb": rss_before,
                "peak_rss_mb": peak_ingest,
                "peak_rss_with_scoring_mb": _peak_rss_mb(),
                "rows": _row_counts(engine),
                "db_mb": os.path.getsize(os.path.join(tmp, "discharge_bridge.db")) / 2**20,
            }
            if profiler is not None and scoring_profiler is not None:
                out["profile"] = _profile_text(profiler, profile_top, wall, "ingest pass (scoring excluded)")
                out["profile"] += "\n" + _profile_text(scoring_profiler, 10, scoring_wall, "risk scoring")
            else:
                out["limit"] = _limit(urls, engine, tmp, base)
        conn.send(out)
    except BaseException:
        conn.send({"error": traceback.format_exc()})


def _limit(urls: list[str], stored: Any, tmp: str, base: str) -> dict[str, float]:
    """The floor under the pass: the same pages parsed with orjson and the rows the pass stored in the
    snapshot tables written again with one executemany per table into a fresh database, in one
    transaction. No HTTP (the pages are fetched again before the clock starts), no normalising, no
    cursor, queue or dead letters: what any ingest of these rows must at least spend."""
    import httpx
    import orjson
    from sqlalchemy import insert, select

    from discharge_bridge.ingest.models import ClinicalSnapshot, EncounterSnapshot, PatientSnapshot

    tables = [m.__table__ for m in (PatientSnapshot, EncounterSnapshot, ClinicalSnapshot)]  # type: ignore[attr-defined,union-attr]
    with httpx.Client() as http:
        pages = [http.get(url).content for url in urls]
    with stored.connect() as conn:
        rows = {t.name: [dict(r._mapping) for r in conn.execute(select(t))] for t in tables}
    os.makedirs(os.path.join(tmp, "limit"))
    _, engine = _fresh_database(os.path.join(tmp, "limit"), base)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for page in pages:
        orjson.loads(page)
    parse_cpu = time.process_time() - cpu0
    with engine.begin() as conn:
        for table in tables:
            if rows[table.name]:
                conn.execute(insert(table), rows[table.name])
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    engine.dispose()
    written = sum(map(len, rows.values()))
    return {"wall_s": wall, "cpu_s": cpu, "parse_cpu_s": parse_cpu, "pages": len(pages), "rows": written}


def _profile_text(profiler: Any, top: int, wall: float, label: str) -> str:
    import io
    import pstats

    name = "discharge_bridge_" + label.split()[0] + ".prof"
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), name)
    profiler.dump_stats(path)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    total = stats.total_tt  # type: ignore[attr-defined]
    text.write(f"profiled {label}: {wall:.2f} s wall, {total:.2f} s in profiled functions; raw stats in {path}\n")
    for key in ("tottime", "cumulative"):
        text.write(f"\n== top {top} by {key} ==\n")
        stats.sort_stats(key).print_stats(top)
    return text.getvalue()


# -- the naive path ---------------------------------------------------------------------------------
def run_naive(port: int, limit: int, conn: Any) -> None:
    """Child process: the same pages, full R4B model validation and one ORM commit per row.

    Deliberately generous to the baseline: duplicates are skipped from an in-memory set instead of
    a query, and patients seen before are remembered in memory too.
    """
    try:
        import tempfile

        import httpx
        from fhir.resources.R4B import get_fhir_model_class
        from sqlmodel import Session

        from discharge_bridge.db import utcnow
        from discharge_bridge.fhir.fields import reference_id, zone
        from discharge_bridge.ingest.follow import FACT_STREAMS
        from discharge_bridge.ingest.models import ClinicalSnapshot, EncounterSnapshot, PatientSnapshot
        from discharge_bridge.ingest.normalise import UnusableResource, normalise

        models: dict[str, Any] = {"Patient": PatientSnapshot, "Encounter": EncounterSnapshot}
        models |= dict.fromkeys(FACT_STREAMS, ClinicalSnapshot)
        base = f"http://127.0.0.1:{port}/fhir"
        with tempfile.TemporaryDirectory(prefix="dbbench-naive-") as tmp:
            settings, engine = _fresh_database(tmp, base)
            tz = zone("Europe/Moscow")
            http = httpx.Client(timeout=30)
            counts = {"processed": 0, "stored": 0, "invalid": 0, "unusable": 0, "duplicate": 0}
            seen: set[tuple[str, str, str]] = set()
            known: set[str] = set()

            def pages(rtype: str, params: dict[str, str]) -> Iterator[list[dict[str, Any]]]:
                url: str | None = f"{base}/{rtype}"
                query: dict[str, str] | None = params
                while url:
                    body = http.get(url, params=query).json()
                    yield [e["resource"] for e in body.get("entry", [])]
                    nxt = [link["url"] for link in body.get("link", []) if link["relation"] == "next"]
                    url, query = (base + nxt[0].removeprefix(ADVERTISED)) if nxt else None, None

            def store(session: Session, res: dict[str, Any]) -> None:
                counts["processed"] += 1
                try:
                    get_fhir_model_class(res["resourceType"]).model_validate(res)
                except (ValueError, TypeError, KeyError):  # pydantic's ValidationError is a ValueError
                    counts["invalid"] += 1
                    return
                try:
                    row = normalise(res, tz)
                except UnusableResource:
                    counts["unusable"] += 1
                    return
                model = models[row.resource_type]
                key = (model.__tablename__, row.resource_type, row.fhir_id)
                if key in seen:
                    counts["duplicate"] += 1
                    return
                seen.add(key)
                session.add(
                    model(
                        source_id=1,
                        fhir_id=row.fhir_id,
                        version_id=row.version_id,
                        last_updated=row.last_updated,
                        raw=res,
                        ingested_at=utcnow(),
                        **row.columns,
                    )
                )
                session.commit()
                counts["stored"] += 1

            wall0, cpu0 = time.perf_counter(), time.process_time()
            enc_params = {
                "class": "IMP,ACUTE,NONAC",
                "_include": "Encounter:subject",
                "_count": str(settings.sync_page_size),
                "_sort": "_lastUpdated",
            }
            count = str(settings.sync_page_size)
            cats = ",".join(settings.observation_categories)
            with Session(engine) as session:
                for page in pages("Encounter", enc_params):
                    resources = list(page)
                    pids = {p for r in page if (p := reference_id(r.get("subject"), "Patient")) is not None}
                    new = sorted(pids - known)
                    known |= pids
                    size = settings.facts_batch_size
                    for start in range(0, len(new), size):
                        batch = ",".join(new[start : start + size])
                        for rtype, extra in (
                            ("Condition", {}),
                            ("Observation", {"category": cats}),
                            ("RelatedPerson", {}),
                            ("Encounter", {}),
                        ):
                            for facts in pages(rtype, {"patient": batch, "_count": count, **extra}):
                                resources += facts
                    for res in resources[: limit - counts["processed"]]:
                        store(session, res)
                    if counts["processed"] >= limit:
                        break
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            http.close()
            conn.send({**counts, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": _peak_rss_mb()})
    except BaseException:
        conn.send({"error": traceback.format_exc()})


# -- orchestration ----------------------------------------------------------------------------------
@contextlib.contextmanager
def _server(ctx: Any, n_resources: int) -> Iterator[dict[str, Any]]:
    from loopback import serve

    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=serve, args=(n_resources, SEED, theirs), daemon=True)
    proc.start()
    try:
        if not ours.poll(600):
            raise RuntimeError("loopback server did not start")
        yield ours.recv()
    finally:
        proc.terminate()
        proc.join(10)


def _child(ctx: Any, target: Callable[..., None], *args: Any) -> dict[str, Any]:
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=target, args=(*args, theirs))
    proc.start()
    try:
        while not ours.poll(1):
            if not proc.is_alive():
                raise RuntimeError(f"{target.__name__} died with exit code {proc.exitcode}")
        out: dict[str, Any] = ours.recv()
    finally:
        proc.join(60)
    if "wall_s" not in out:
        raise RuntimeError(f"{target.__name__} failed:\n{out.get('error')}")
    return out


def _real_line(label: str, server: dict[str, Any], r: dict[str, Any]) -> str:
    return (
        f"  {label:>6} dataset {server['resources']:>7,} resources | fetched {r['fetched']:>7,} in {r['pages']} pages"
        f" | {r['wall_s']:6.2f} s wall {r['cpu_s']:6.2f} s CPU | {r['fetched'] / r['wall_s']:8,.0f} res/s"
        f" {r['fetched'] / r['cpu_s']:8,.0f} res/CPU-s | peak RSS {r['peak_rss_mb']:.0f} MB"
        f" (before pass {r['rss_before_mb']:.0f} MB) | dead letters {r['dead_letters']} | status {r['status']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resources", type=int, default=100_000, help="dataset size of the large run")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--naive", type=int, default=5000, help="resources the naive path processes")
    parser.add_argument("--profile", action="store_true", help="also run a cProfile'd pass and print hotspots")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    big = 6000 if args.quick else args.resources
    small = max(big // 4, 500)
    naive_n = min(args.naive, 600 if args.quick else args.naive)

    ctx = mp.get_context("spawn")
    servers, real = {}, {}
    naive: dict[str, Any] = {}
    profile: dict[str, Any] = {}
    for size in (small, big):
        with _server(ctx, size) as info:
            servers[size] = info
            real[size] = _child(ctx, run_real, info["port"], 0)
            if real[size]["status"] != "ok":
                raise SystemExit(f"real pass failed: {real[size]['error']}")
            if size == big:
                naive = _child(ctx, run_naive, info["port"], naive_n)
                if args.profile:
                    profile = _child(ctx, run_real, info["port"], args.top)

    r, info = real[big], servers[big]
    rate, cpu_rate = r["fetched"] / r["wall_s"], r["fetched"] / r["cpu_s"]
    naive_rate = naive["processed"] / naive["wall_s"]
    print("discharge_bridge ingest benchmark (first poll pass of a new source, SQLite, loopback FHIR server)")
    print(f"  dataset by type (large): {info['by_type']}  unusable Encounters: {info['bad']}")
    for size, label in ((small, "small"), (big, "large")):
        print(_real_line(label, servers[size], real[size]))
    print(f"  rows stored (large): {r['rows']}  database {r['db_mb']:.0f} MB")
    end_rate = r["fetched"] / r["total_wall_s"]
    for size, label in ((small, "small"), (big, "large")):
        x = real[size]
        print(
            f"  {label} risk scoring after the pass: {x['assessed']:,} patients assessed"
            f" in {x['scoring_wall_s']:.2f} s wall {x['scoring_cpu_s']:.2f} s CPU;"
            f" sync_source end to end {x['total_wall_s']:.2f} s"
            f" = {x['fetched'] / x['total_wall_s']:,.0f} res/s"
        )
    print(
        f"  naive: {naive['processed']:,} resources in {naive['wall_s']:.2f} s wall {naive['cpu_s']:.2f} s CPU"
        f" = {naive_rate:,.0f} res/s ({naive['processed'] / naive['cpu_s']:,.0f} res/CPU-s); stored {naive['stored']},"
        f" invalid {naive['invalid']}, unusable {naive['unusable']}, duplicate {naive['duplicate']}"
    )
    naive_cpu_rate = naive["processed"] / naive["cpu_s"]
    lim = r["limit"]
    limit_rate, limit_cpu_rate = r["fetched"] / lim["wall_s"], r["fetched"] / lim["cpu_s"]
    print(
        f"  limit (the same {lim['pages']} responses parsed with orjson, the same {lim['rows']:,} rows written with"
        f" executemany): {lim['wall_s']:.2f} s wall {lim['cpu_s']:.2f} s CPU (parse {lim['parse_cpu_s']:.2f} s)"
        f" = {limit_rate:,.0f} res/s; the pass is {rate / limit_rate:.2f} of it"
        f" ({cpu_rate / limit_cpu_rate:.2f} in CPU)"
    )
    print(
        f"  real / naive: {rate / naive_rate:.1f}x wall, {cpu_rate / naive_cpu_rate:.1f}x CPU"
        "   targets: >= 15x naive, >= 0.8 of the limit, flat memory"
    )
    if profile:
        print()
        print(profile["profile"])
    figures = {
        "resources_per_s": round(rate),
        "naive_resources_per_s": round(naive_rate),
        "ratio": round(rate / naive_rate, 1),
        "peak_rss_mb": round(r["peak_rss_mb"], 1),
        "peak_rss_mb_small": round(real[small]["peak_rss_mb"], 1),
        "peak_rss_with_scoring_mb": round(r["peak_rss_with_scoring_mb"], 1),
        "resources_per_cpu_s": round(cpu_rate),
        "naive_resources_per_cpu_s": round(naive_cpu_rate),
        "ratio_cpu": round(cpu_rate / naive_cpu_rate, 1),
        "limit_resources_per_s": round(limit_rate),
        "limit_fraction": round(rate / limit_rate, 2),
        "limit_fraction_cpu": round(cpu_rate / limit_cpu_rate, 2),
        "resources": r["fetched"],
        "dead_letters": r["dead_letters"],
        "dataset_resources": info["resources"],
        "dataset_resources_small": servers[small]["resources"],
        "resources_small": real[small]["fetched"],
        "resources_per_s_small": round(real[small]["fetched"] / real[small]["wall_s"]),
        "wall_s": round(r["wall_s"], 2),
        "cpu_s": round(r["cpu_s"], 2),
        "end_to_end_resources_per_s": round(end_rate),
        "scoring_s": round(r["scoring_wall_s"], 2),
        "naive_resources": naive["processed"],
        "naive_invalid": naive["invalid"],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
