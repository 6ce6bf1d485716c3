"""The page writer: every producer of FHIR data (poll, file folder, Bulk export, push) hands it pages.

A page is what a producer fetched or read: resources to parse, records it already found unusable,
the cursors its rows cover and, optionally, the producer's own checkpoint. Per page the writer
parses (pure: no database), then in ONE transaction stores the rows, which queues what changed for
assessment (``store.upsert_snapshots`` -> ``changes``), the dead letters, the advanced cursors and
the checkpoint. A pass killed at any point resumes from the last committed page; rows are
idempotent by (source, type, id, version), so re-reading a page changes nothing.

``write_pass`` runs a producer's pages as one pass: a sync run row around it, a ``SyncResult``.
Producers are generators: the writer stores page N before it asks for page N+1, so a producer
that looks at the store (which patients are new) sees every earlier page.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from discharge_bridge.collection import fewer_young_collections
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope, utcnow
from discharge_bridge.fhir import FhirError
from discharge_bridge.fhir.fields import parse_instant, zone
from discharge_bridge.ingest.conformance import Sampler
from discharge_bridge.ingest.pipeline import Parsed, parse_batch
from discharge_bridge.ingest.store import (
    fingerprint,
    payload_text,
    record_conformance,
    record_dead_letters,
    upsert_snapshots,
)
from discharge_bridge.sources.models import Source, SyncRun, SyncStatus

Progress = Callable[[str, int], None]  # (stage, resources so far)

# Dead responses allowed to pile up between two collections (see collection.fewer_young_collections). A collection
# walks whatever the page in hand still holds, ~5 ms: one per page cost 8% of a pass.
GC_EVERY_BYTES = 8 * 2**20


@dataclass
class PageCounts:
    """What writing one page did; a checkpoint sees it inside the page's transaction."""

    fetched: int = 0  # resources handed over, rows or not
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    dead_letters: int = 0


Checkpoint = Callable[[Session, PageCounts], None]


@dataclass
class Page:
    """One producer's unit of progress, written in one transaction.

    The writer takes ``resources``: it empties the list once parsed, so their dicts are freed
    before the write (the rows keep their JSON text only). ``bad``: (payload, reason) of records
    the producer could not even read (a line that is not JSON). ``cursors``: stream -> instant the
    rows cover (None: no change); a cursor never moves back. ``checkpoint``: the producer's own
    resume state, written in the same transaction. ``nbytes``: response bytes behind the page.
    """

    resources: list[Any] = field(default_factory=list)
    bad: list[tuple[Any, str]] = field(default_factory=list)
    cursors: dict[str, str | None] = field(default_factory=dict)
    checkpoint: Checkpoint | None = None
    nbytes: int = 0


class SyncAborted(RuntimeError):
    """Raised by ``stop_after_pages`` (and the backfill's batches): cuts a pass short at a page boundary."""


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

    def add(self, counts: PageCounts, *, filled: bool) -> None:
        if filled:
            self.pages += 1
        self.fetched += counts.fetched
        self.created += counts.created
        self.updated += counts.updated
        self.unchanged += counts.unchanged
        self.dead_letters += counts.dead_letters


def format_instant(value: datetime) -> str:
    """A cursor as stored: UTC, milliseconds, ``Z``."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PageWriter:
    """Writes one pass's pages for one source; opens its own sessions (jobs take ids, not objects)."""

    def __init__(
        self,
        engine: Engine,
        source: Source,
        *,
        settings: Settings,
        progress: Progress | None = None,
        stop_after_pages: int | None = None,
    ) -> None:
        assert source.id is not None
        self.engine = engine
        self.source_id = source.id
        self.tz = zone(source.timezone)
        self.sampler = Sampler(settings.conformance_sample)
        self.progress = progress
        self.stop_after_pages = stop_after_pages
        self.result = SyncResult(source=source.name, cursor_before=source.cursors.get("Encounter"))
        self._rejected: set[str] = set()  # fingerprints dead-lettered in this pass
        self._received = 0  # response bytes since the last garbage collection

    def write_all(self, pages: Iterable[Page]) -> None:
        """Write each page before the next one is asked for; a producer left half-way is closed."""
        iterator = iter(pages)
        try:
            for page in iterator:
                self.write(page)
        finally:
            if isinstance(iterator, Generator):
                iterator.close()

    def write(self, page: Page) -> None:
        """Parse a page, then store its rows, dead letters, cursors and checkpoint in one transaction."""
        counts = PageCounts(fetched=len(page.resources))
        filled = bool(page.resources or page.bad)
        parsed = self._parse(page.resources)
        page.resources.clear()
        self._received += page.nbytes
        self._collect_if_due()
        with session_scope(self.engine) as session:
            stats = upsert_snapshots(session, self.source_id, parsed.rows)
            letters = parsed.rejected + page.bad
            record_dead_letters(session, self.source_id, letters)
            if parsed.conformance:
                record_conformance(session, self.source_id, parsed.conformance)
            counts.created, counts.updated, counts.unchanged = stats.created, stats.updated, stats.unchanged
            counts.dead_letters = len(letters)
            self._advance(session, page.cursors)
            if page.checkpoint is not None:
                page.checkpoint(session, counts)
        self.result.add(counts, filled=filled)
        if self.progress:
            self.progress("page", self.result.fetched)
        if self.stop_after_pages is not None and self.result.pages >= self.stop_after_pages:
            raise SyncAborted(f"stopped after {self.result.pages} pages as asked")

    def _parse(self, resources: list[Any]) -> Parsed:
        parsed = parse_batch(resources, tz=self.tz, sampler=self.sampler, encode=True)
        # A resource at a page boundary is read twice in one pass: count its dead letter once.
        fresh = []
        for payload, reason in parsed.rejected:
            key = fingerprint(payload_text(payload))
            if key not in self._rejected:
                self._rejected.add(key)
                fresh.append((payload, reason))
        parsed.rejected = fresh
        return parsed

    def _advance(self, session: Session, cursors: dict[str, str | None]) -> None:
        """Move the source's cursors forward, in the caller's transaction (never back)."""
        updates = {k: v for k, v in cursors.items() if v is not None}
        if not updates:
            return
        source = session.get(Source, self.source_id)
        assert source is not None
        merged = dict(source.cursors)
        for stream, value in updates.items():
            if not _behind(value, merged.get(stream)):
                merged[stream] = value
        source.cursors = merged  # reassign (not mutate) so SQLAlchemy sees the JSON column change

    def _collect_if_due(self) -> None:
        """Free the dead responses (see ``collection.fewer_young_collections``) once enough have arrived.

        Called where the page just parsed has been let go, so the collection has little to walk.
        """
        if self._received >= GC_EVERY_BYTES:
            self._received = 0
            gc.collect(1)

    # -- the pass -----------------------------------------------------------------------------

    def run(self, kind: str, pages: Iterable[Page]) -> SyncResult:
        """Write every page inside a sync run row; EHR failures end the pass as failed, not raised."""
        started = time.monotonic()
        run_id = self._open_run(kind)
        try:
            self.write_all(pages)
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

    def _open_run(self, kind: str) -> int:
        with session_scope(self.engine) as session:
            if kind in EXCLUSIVE_KINDS:
                _close_interrupted(session, self.source_id, kind)
            run = SyncRun(source_id=self.source_id, kind=kind, cursor_before=self.result.cursor_before)
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


# Passes of these kinds run one at a time per source (a worker's lease, the scheduler's leader lock):
# a run of the kind still "running" when the next one starts belongs to a process that died mid-pass.
# Pushes and backfills may run beside a poll, so theirs are left alone.
EXCLUSIVE_KINDS = frozenset({"poll", "file"})
INTERRUPTED = "interrupted: the process running this pass stopped before it ended (a later pass took over)"


def _close_interrupted(session: Session, source_id: int, kind: str) -> None:
    stale = (
        update(SyncRun)
        .where(col(SyncRun.source_id) == source_id, col(SyncRun.kind) == kind)
        .where(col(SyncRun.status) == SyncStatus.running)
        .values(status=SyncStatus.failed, finished_at=utcnow(), error=INTERRUPTED)
    )
    session.execute(stale)


def _behind(value: str, current: str | None) -> bool:
    """Whether ``value`` is older than the stored cursor (text that does not parse never is)."""
    if current is None:
        return False
    new, old = parse_instant(value), parse_instant(current)
    return new is not None and old is not None and new < old


def write_pass(
    engine: Engine,
    source: Source,
    pages: Iterable[Page],
    *,
    kind: str,
    settings: Settings,
    progress: Progress | None = None,
    stop_after_pages: int | None = None,
) -> SyncResult:
    """One pass of a producer's pages for a source, recorded as a sync run of ``kind``."""
    writer = PageWriter(engine, source, settings=settings, progress=progress, stop_after_pages=stop_after_pages)
    with fewer_young_collections():
        return writer.run(kind, pages)


def fail_before_start(engine: Engine, source: Source, error: str) -> SyncResult:
    """Record on the source a pass that could not start (no client, wrong mode) and report it."""
    with session_scope(engine) as session:
        stored = session.get(Source, source.id)
        assert stored is not None
        stored.last_sync_at = stored.last_error_at = utcnow()
        stored.last_error = error
    return SyncResult(source=source.name, status=SyncStatus.failed, error=error)
