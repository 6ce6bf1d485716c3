"""A polling pass over one source: what changed since the cursor, page by page.

Per page: fetch the Encounters (with their Patients), fetch what risk flagging needs for patients
seen for the first time, then write the rows, the dead letters and the advanced cursor in ONE
transaction. A pass killed at any point resumes from the last committed page; rows are idempotent
by (source, type, id, version), so re-reading a page changes nothing.
"""

from __future__ import annotations

import gc
import itertools
import logging
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy.engine import Engine

from discharge_bridge.config import Settings, get_settings
from discharge_bridge.db import session_scope, utcnow
from discharge_bridge.fhir import FhirClient, FhirError, SearchPage
from discharge_bridge.ingest.conformance import Sampler
from discharge_bridge.ingest.normalise import SNAPSHOT_TYPES, obj, parse_instant, reference_id, zone
from discharge_bridge.ingest.pipeline import Parsed, parse_batch, store_batch
from discharge_bridge.ingest.store import fingerprint, payload_text, stored_versions
from discharge_bridge.sources.models import Source, SourceMode, SyncRun, SyncStatus

log = logging.getLogger(__name__)

FACT_STREAMS = ("Condition", "Observation", "RelatedPerson")
Progress = Callable[[str, int], None]  # (stage, resources so far)


@contextmanager
def fewer_gc_pauses() -> Iterator[None]:
    """Raise the young-generation threshold while a pass runs.

    A page parses into hundreds of thousands of short-lived dicts without cycles; at the default
    threshold (700 allocations) a 100k-resource pass ran dozens of full collections over the
    whole heap, about a fifth of its CPU time (bench/ingest.py). The price: the count that
    triggers a collection is allocations *minus* frees, so while a page's dicts come and go it
    hardly moves, and cyclic garbage piles up. Each httpx Response is such a cycle (it and its
    stream refer to each other) holding its body: halfway through a 100k-resource pass, 400 dead
    responses held 51 MB, and peak memory grew with the input. ``PollPass`` collects the young
    generations after every ``GC_EVERY_BYTES`` of responses instead (``_received``).
    """
    old = gc.get_threshold()
    gc.set_threshold(50_000, old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)


# Dead responses allowed to pile up between two collections (see fewer_gc_pauses). A collection
# walks whatever the page in hand still holds, ~5 ms: one per page cost 8% of a pass.
GC_EVERY_BYTES = 8 * 2**20


@dataclass
class _Page:
    """A fetched page, parsed, with the cursors to commit in the same transaction as its rows."""

    parsed: Parsed
    cursors: dict[str, str | None]
    fetched: int  # resources received, rows or not


class SyncAborted(RuntimeError):
    """Raised by ``stop_after_pages``: lets tests cut a pass short at a page boundary."""


@dataclass
class SyncResult:
    source: str
    status: SyncStatus = SyncStatus.running
    pages: int = 0
    fetched: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    dead_letters: int = 0
    cursor_before: str | None = None
    cursor_after: str | None = None
    duration_s: float = 0.0
    error: str | None = None
    # Filled by the assessment stage that drains what the pass queued (assessment/jobs.py).
    assessed: int = 0
    flagged: int = 0
    cases_opened: int = 0
    discharged: int = 0


def format_instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Cursor:
    """Tracks a stream's high-water mark and whether the server returns it in _lastUpdated order.

    While pages arrive sorted, each page may move the cursor to its newest entry. A server that
    ignores ``_sort`` forces the cursor to wait for the end of the pass.
    """

    def __init__(self, start: str | None) -> None:
        self.committed = start
        self.sorted = True
        self.newest: datetime | None = parse_instant(start) if start else None
        self.page_max: datetime | None = None  # newest stamp of the previous page in this pass
        self.fallback: datetime | None = None

    def observe(self, stamps: list[datetime]) -> str | None:
        """Take one page's lastUpdated values; return the cursor to commit with it (or None)."""
        if not stamps:
            return None
        if self.sorted and (
            any(b < a for a, b in itertools.pairwise(stamps))
            or (self.page_max is not None and stamps[0] < self.page_max - timedelta(seconds=1))
        ):
            self.sorted = False
        self.page_max = max(stamps)
        if self.newest is None or self.page_max > self.newest:
            self.newest = self.page_max
        return format_instant(self.newest) if self.sorted else None

    def final(self) -> str | None:
        newest = self.newest or self.fallback
        return format_instant(newest) if newest else self.committed


def _since(cursor: str | None, overlap: int) -> str | None:
    start = parse_instant(cursor) if cursor else None
    return format_instant(start - timedelta(seconds=overlap)) if start else None


def _entries(bundle: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str | None]]:
    for entry in bundle.get("entry") or []:
        if isinstance(entry, dict) and "resource" in entry:
            search = obj(entry.get("search"))
            yield entry["resource"], search.get("mode")


def _stamps(resources: Iterable[Any], tz: tzinfo) -> list[datetime]:
    found = []
    for res in resources:
        meta = res.get("meta") if isinstance(res, dict) else None
        stamp = parse_instant(meta.get("lastUpdated"), tz) if isinstance(meta, dict) else None
        if stamp is not None:
            found.append(stamp)
    return found


class PollPass:
    """State of one pass; ``run`` drives it. Opens its own sessions (jobs take ids, not objects)."""

    kind = "poll"

    def __init__(
        self,
        engine: Engine,
        source: Source,
        client: FhirClient | None,
        *,
        settings: Settings,
        progress: Progress | None = None,
        stop_after_pages: int | None = None,
    ) -> None:
        assert source.id is not None
        self.engine = engine
        self.source_id = source.id
        self.source = source
        self.client = client
        self.settings = settings
        self.tz = zone(source.timezone)
        self.progress = progress
        self.stop_after_pages = stop_after_pages
        self.sampler = Sampler(settings.conformance_sample)
        self.result = SyncResult(source=source.name, cursor_before=source.cursors.get("Encounter"))
        self.pass_started: datetime | None = None
        self.rejected_this_pass: set[str] = set()
        self._received = 0  # response bytes since the last garbage collection

    # -- fetching -----------------------------------------------------------------------------
    def _search_all(self, resource_type: str, params: dict[str, str]) -> list[Any]:
        assert self.client is not None
        found: list[Any] = []
        for page in self.client.search_pages(resource_type, params):
            self._received += page.nbytes
            found.extend(res for res, mode in _entries(page.bundle) if mode != "outcome")
        return found

    def _known_patients(self, ids: set[str]) -> set[str]:
        if not ids:
            return set()
        with session_scope(self.engine) as session:
            return set(stored_versions(session, self.source_id, "Patient", sorted(ids)))

    def _facts_for(self, patient_ids: set[str]) -> list[Any]:
        """Everything risk flagging needs about patients seen for the first time, in batches."""
        found: list[Any] = []
        ids = sorted(patient_ids)
        size, count = self.settings.facts_batch_size, str(self.settings.sync_page_size)
        for start in range(0, len(ids), size):
            batch = ",".join(ids[start : start + size])
            found += self._search_all("Condition", {"patient": batch, "_count": count})
            found += self._search_all(
                "Observation",
                {"patient": batch, "category": ",".join(self.settings.observation_categories), "_count": count},
            )
            found += self._search_all("RelatedPerson", {"patient": batch, "_count": count})
            # Earlier stays of any class: readmission within 30 days, ED visits for LACE. Only
            # ended ones: the current stays are already on this page (asking for all of them
            # again was a tenth of a first pass's traffic).
            found += self._search_all("Encounter", {"patient": batch, "status": "finished", "_count": count})
        return found

    def _pages(self, resource_type: str, params: dict[str, str], cursor: _Cursor) -> Iterator[SearchPage]:
        """Pages of a search ordered by _lastUpdated, re-issued from the newest stamp seen.

        Offset-based next links skip a resource when another one is updated mid-pass (the update
        moves it to the end of the result set and shifts every offset after it; seen on the EHR
        simulator and on HAPI). So while the server honours ``_sort``, each next page is a fresh
        search ``_lastUpdated=ge<page max>``: an update during the pass can only move a resource
        later, never past us. Re-reading the resources at the boundary stamp is harmless because
        upserts are idempotent. A server that ignores ``_sort``, or a tie group larger than a page,
        falls back to following the next links.
        """
        assert self.client is not None
        since = _since(cursor.committed, self.settings.sync_overlap_seconds)
        lower = f"gt{since}" if since else None
        while True:
            query = {**params, "_lastUpdated": lower} if lower else dict(params)
            reissued = False
            for page in self.client.search_pages(resource_type, query):
                self._received += page.nbytes
                yield page
                if page.next_url is None or not cursor.sorted or cursor.page_max is None:
                    continue
                boundary = f"ge{format_instant(cursor.page_max)}"
                if boundary == lower:
                    continue  # the whole page shares one stamp: only the next link gets past it
                lower, reissued = boundary, True
                break
            if not reissued:
                return

    # -- the pass -----------------------------------------------------------------------------
    def run(self) -> SyncResult:
        with fewer_gc_pauses():
            return self._run()

    def _run(self) -> SyncResult:
        started = time.monotonic()
        run_id = self._open_run()
        try:
            self._streams()
            self.result.status = SyncStatus.ok
        except (FhirError, SyncAborted) as exc:
            self.result.status = SyncStatus.failed
            self.result.error = str(exc)
        except Exception as exc:  # any other failure still ends the run record, then propagates
            self.result.status = SyncStatus.failed
            self.result.error = f"internal error: {type(exc).__name__}: {exc}"
            self._close_run(run_id, started)
            raise
        self._close_run(run_id, started)
        return self.result

    def _streams(self) -> None:
        self._encounter_stream()
        self._fact_streams()

    def _open_run(self) -> int:
        with session_scope(self.engine) as session:
            run = SyncRun(source_id=self.source_id, kind=self.kind, cursor_before=self.result.cursor_before)
            session.add(run)
            session.flush()
            assert run.id is not None
            return run.id

    def _close_run(self, run_id: int, started: float) -> None:
        self.result.duration_s = time.monotonic() - started
        res = self.result
        with session_scope(self.engine) as session:
            run = session.get(SyncRun, run_id)
            source = session.get(Source, self.source_id)
            assert run is not None and source is not None
            now = utcnow()
            run.finished_at, run.status, run.error = now, res.status, res.error
            run.pages, run.fetched, run.created, run.updated = res.pages, res.fetched, res.created, res.updated
            run.unchanged, run.dead_letters = res.unchanged, res.dead_letters
            res.cursor_after = source.cursors.get("Encounter")
            run.cursor_after = res.cursor_after
            source.last_sync_at = now
            if res.status == SyncStatus.ok:
                source.last_success_at, source.last_error = now, None
            else:
                source.last_error, source.last_error_at = res.error, now

    def _encounter_stream(self) -> None:
        cursor = _Cursor(self.source.cursors.get("Encounter"))
        self._write_all(self._encounter_pages(cursor))
        self._commit_page([], {"Encounter": cursor.final()} | self._first_fact_cursors())

    def _encounter_pages(self, cursor: _Cursor) -> Generator[_Page, None, None]:
        """Each Encounter page with its Patients and the facts of new patients, parsed."""
        params = {
            "class": ",".join(self.source.inpatient_classes),
            "_include": "Encounter:subject",
            "_count": str(self.settings.sync_page_size),
            "_sort": "_lastUpdated",
        }
        for page in self._pages("Encounter", params, cursor):
            if self.pass_started is None:
                self.pass_started = page.server_date or utcnow()
                cursor.fallback = self.pass_started
            resources = [res for res, mode in _entries(page.bundle) if mode != "outcome"]
            encounters = [r for r, mode in _entries(page.bundle) if mode in (None, "match")]
            encounters = [r for r in encounters if isinstance(r, dict) and r.get("resourceType") == "Encounter"]
            referenced = {pid for r in encounters if (pid := reference_id(r.get("subject"), "Patient")) is not None}
            included = {r.get("id") for r in resources if isinstance(r, dict) and r.get("resourceType") == "Patient"}
            new_patients = referenced - self._known_patients(referenced)
            missing = new_patients - included
            if missing:  # servers that ignore _include
                resources += self._search_all(
                    "Patient", {"_id": ",".join(sorted(missing)), "_count": str(len(missing))}
                )
            resources += self._facts_for(new_patients)
            parsed = self._parse_page(resources, {"Encounter": cursor.observe(_stamps(encounters, self.tz))})
            del resources, encounters  # the fact resources go before the write, their rows keep only text
            self._collect_if_due()
            yield parsed

    def _first_fact_cursors(self) -> dict[str, str | None]:
        """A new source's fact streams start where its first Encounter pass started."""
        if self.pass_started is None:
            return {}
        start = format_instant(self.pass_started)
        return {t: start for t in FACT_STREAMS if t not in self.source.cursors}

    def _fact_streams(self) -> None:
        """Facts changed since the cursor, kept only for patients the service already follows."""
        for resource_type in FACT_STREAMS:
            committed = self.source.cursors.get(resource_type)
            if committed is None:
                continue
            cursor = _Cursor(committed)
            self._write_all(self._fact_pages(resource_type, cursor))
            self._commit_page([], {resource_type: cursor.final()})

    def _fact_pages(self, resource_type: str, cursor: _Cursor) -> Generator[_Page, None, None]:
        params = {"_count": str(self.settings.sync_page_size), "_sort": "_lastUpdated"}
        if resource_type == "Observation":
            params["category"] = ",".join(self.settings.observation_categories)
        field_name = "patient" if resource_type == "RelatedPerson" else "subject"
        for page in self._pages(resource_type, params, cursor):
            resources = [r for r, mode in _entries(page.bundle) if mode in (None, "match")]
            owners = {
                pid: r for r in resources if isinstance(r, dict) and (pid := reference_id(r.get(field_name), "Patient"))
            }
            known = self._known_patients(set(owners))
            # A resource whose owner cannot be read at all (no resourceType, a reference that is a
            # number or missing) goes on to become a dead letter: dropping it as "not our patient"
            # would hide it. One that names another patient, or a Group, is not ours.
            keep = [
                r
                for r in resources
                if not isinstance(r, dict)
                or r.get("resourceType") not in SNAPSHOT_TYPES
                or (r["resourceType"] == resource_type and not isinstance(obj(r.get(field_name)).get("reference"), str))
                or reference_id(r.get(field_name), "Patient") in known
            ]
            parsed = self._parse_page(keep, {resource_type: cursor.observe(_stamps(resources, self.tz))})
            del resources, keep, owners
            self._collect_if_due()
            yield parsed

    def _write_all(self, pages: Generator[_Page, None, None]) -> None:
        """Write each page before the next one is fetched (its new patients are then known)."""
        with closing(pages):
            for page in pages:
                self._write_page(page)

    def _commit_page(self, resources: list[Any], cursors: dict[str, str | None]) -> None:
        self._write_page(self._parse_page(resources, cursors))
        self._collect_if_due()

    def _collect_if_due(self) -> None:
        """Free the dead responses (see ``fewer_gc_pauses``) once enough have arrived.

        Called where the page just parsed has been let go, so the collection has little to walk.
        """
        if self._received >= GC_EVERY_BYTES:
            self._received = 0
            gc.collect(1)

    def _parse_page(self, resources: list[Any], cursors: dict[str, str | None]) -> _Page:
        """Normalise a page (pure: no database), ready for ``_write_page``."""
        parsed = parse_batch(resources, tz=self.tz, sampler=self.sampler, encode=True)
        # A resource at a page boundary is read twice in one pass: count its dead letter once.
        fresh = []
        for payload, reason in parsed.rejected:
            key = fingerprint(payload_text(payload))
            if key not in self.rejected_this_pass:
                self.rejected_this_pass.add(key)
                fresh.append((payload, reason))
        parsed.rejected = fresh
        return _Page(parsed, cursors, len(resources))

    def _write_page(self, page: _Page) -> None:
        """Store a parsed page and advance its cursors in one transaction."""
        parsed = page.parsed
        with session_scope(self.engine) as session:
            batch = store_batch(session, self.source_id, parsed)
            source = session.get(Source, self.source_id)
            assert source is not None
            updates = {k: v for k, v in page.cursors.items() if v is not None}
            if updates:
                # Reassign (not mutate) so SQLAlchemy sees the JSON column change.
                source.cursors = {**source.cursors, **updates}
                self.source.cursors = source.cursors
        res = self.result
        if page.fetched:
            res.pages += 1
        res.fetched += page.fetched
        res.created += batch.stats.created
        res.updated += batch.stats.updated
        res.unchanged += batch.stats.unchanged
        res.dead_letters += batch.dead_letters
        if self.progress:
            self.progress("page", res.fetched)
        if self.stop_after_pages is not None and res.pages >= self.stop_after_pages:
            raise SyncAborted(f"stopped after {res.pages} pages as asked")


def sync_source(
    source_name: str,
    *,
    engine: Engine,
    settings: Settings | None = None,
    client: FhirClient | None = None,
    progress: Progress | None = None,
    stop_after_pages: int | None = None,
) -> SyncResult:
    """Run one polling pass over the named source and record how it went.

    What the pass changed is queued for assessment in the same transactions as its rows; the
    assessment stage (``discharge_bridge.assessment``) drains it.
    """
    from discharge_bridge.sources.service import client_for, get_source

    settings = settings or get_settings()
    with session_scope(engine) as session:
        source = get_source(session, source_name)
    if source.mode == SourceMode.file:
        from discharge_bridge.ingest.files import sync_files

        result = sync_files(source, engine=engine, settings=settings, progress=progress)
    else:
        own_client = client is None
        try:
            client = client or client_for(source)
        except FhirError as exc:
            return _failed_before_start(engine, source, str(exc))
        try:
            result = PollPass(
                engine, source, client, settings=settings, progress=progress, stop_after_pages=stop_after_pages
            ).run()
        finally:
            if own_client:
                client.close()
    return result


def _failed_before_start(engine: Engine, source: Source, error: str) -> SyncResult:
    with session_scope(engine) as session:
        stored = session.get(Source, source.id)
        assert stored is not None
        stored.last_sync_at = stored.last_error_at = utcnow()
        stored.last_error = error
    return SyncResult(source=source.name, status=SyncStatus.failed, error=error)
