"""Backfill a source from a Bulk Data `$export`: a large hospital's current census on the first day.

The export asks for the five types the service keeps (`_type`), Group level when a group id is
given (e.g. the EHR's "current inpatients" group), else Patient level, with `_since` = the
previous backfill's `transactionTime`. NDJSON files are streamed in batches of lines, each a page for
the page writer (parse, idempotent upsert, dead letters), and only what a poll would have kept is
kept (``follow``):

1. every Encounter file, keeping inpatient-class stays; their patients are now followed;
2. every Encounter file again, keeping followed patients' finished stays of other classes;
3. Patient, Condition, Observation (the polled categories) and RelatedPerson of followed patients.

Each batch commits with the lines it covers, so an interrupted backfill resumes where it stopped
(the status URL, manifest and lines done are in `bulk_export`); an expired export starts again.
At the end `transactionTime` becomes every stream's poll cursor, in the same transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from discharge_bridge.config import Settings, get_settings
from discharge_bridge.db import session_scope, utcnow
from discharge_bridge.fhir import (
    BadLine,
    BulkExportClient,
    BulkExportFailed,
    ExportFile,
    ExportManifest,
    FhirAuthError,
    FhirClient,
    FhirError,
    FhirNotFound,
)
from discharge_bridge.fhir.fields import class_code, owner_of, parse_instant
from discharge_bridge.ingest.follow import FACT_STREAMS, earlier_stay, followed_from_store, followed_record
from discharge_bridge.ingest.models import BulkExport, BulkExportStatus
from discharge_bridge.ingest.writer import (
    Page,
    PageCounts,
    SyncAborted,
    SyncResult,
    fail_before_start,
    format_instant,
    write_pass,
)
from discharge_bridge.sources import service as source_registry
from discharge_bridge.sources.models import Source, SourceMode
from discharge_bridge.sources.safety import current_policy, vetted_client

log = logging.getLogger(__name__)

EXPORT_TYPES = ("Patient", "Encounter", "Condition", "Observation", "RelatedPerson")
BATCH_LINES = 1000
SCOPE_ADVICE = (
    "Bulk export needs system-level read access to every exported type and to the export's status and "
    "file endpoints: give the client e.g. system/*.rs (SMART v2) or system/*.read (v1) and set --scope"
)
BackfillProgress = Callable[[str, int, int | None], None]  # (stage, lines read, lines in the export)


@dataclass
class BackfillResult:
    sync: SyncResult
    export_id: int | None = None
    since: str | None = None
    transaction_time: str | None = None
    resumed: bool = False
    read: int = 0  # NDJSON lines read this run
    skipped: int = 0  # resources a poll would not have kept (outpatient stays, unfollowed patients)


@dataclass(frozen=True)
class _Step:
    key: str
    phase: str  # inpatient | earlier | facts
    file: ExportFile


def plan(manifest: ExportManifest) -> list[_Step]:
    """The download steps in the order the filters need (see the module docstring)."""
    encounters = [f for f in manifest.output if f.type == "Encounter"]
    steps = [_Step(f"inpatient:{f.url}", "inpatient", f) for f in encounters]
    steps += [_Step(f"earlier:{f.url}", "earlier", f) for f in encounters]
    for rtype in ("Patient", *FACT_STREAMS):
        steps += [_Step(f"{rtype}:{f.url}", "facts", f) for f in manifest.output if f.type == rtype]
    return steps


def _lines_done(export_id: int, key: str, lines: int, done: bool, session: Session, counts: PageCounts) -> None:
    """A batch's checkpoint, in the transaction of its rows: the lines of a step they cover."""
    export = session.get(BulkExport, export_id)
    assert export is not None
    export.files_done = {**export.files_done, key: {"lines": lines, "done": done}}
    export.resources += counts.fetched
    export.dead_letters += counts.dead_letters


def _complete(export_id: int, transaction_time: str, session: Session, counts: PageCounts) -> None:
    """The last checkpoint, in the transaction that makes transactionTime every stream's cursor."""
    export = session.get(BulkExport, export_id)
    assert export is not None
    export.status, export.finished_at, export.error = BulkExportStatus.complete, utcnow(), None
    export.transaction_time = transaction_time


class BulkBackfill:
    """The pages of one `$export` backfill (new or resumed): a batch of lines per page.

    The export's own state (status URL, manifest, failures) is saved as it changes; the lines a
    batch covers are saved as the batch's checkpoint, with its rows.
    """

    def __init__(
        self,
        engine: Engine,
        source: Source,
        client: FhirClient,
        *,
        settings: Settings,
        group_id: str | None = None,
        full: bool = False,
        progress: BackfillProgress | None = None,
        sleep: Callable[[float], None] = time.sleep,
        stop_after_batches: int | None = None,
    ) -> None:
        assert source.id is not None
        self.engine = engine
        self.source_id = source.id
        self.source_name = source.name
        self.client = client
        self.group_id = group_id
        self.full = full
        self.report = progress
        self.sleep = sleep
        self.stop_after_batches = stop_after_batches
        self.batches = 0
        self.outcome = BackfillResult(SyncResult(source=source.name))  # ``sync`` is the writer's, at the end
        self.classes = set(source.inpatient_classes)
        self.categories = set(settings.observation_categories)
        self.followed: set[str] = set()
        self.total: int | None = None
        self.read_before = 0  # lines committed by the runs this one resumes

    # -- the export -------------------------------------------------------------------------------

    def pages(self) -> Iterator[Page]:
        bulk = BulkExportClient(
            self.client, sleep=self.sleep, downloads=vetted_client(current_policy(), field="bulk_file")
        )
        export_id = self._prepare()
        try:
            try:
                yield from self._export(bulk, export_id)
            except FhirNotFound:
                # The status URL or a file expired (servers keep them for hours): start again.
                # Rows already stored make the repeat cheap: their versions are unchanged.
                log.warning("source %s: the export expired; starting it again", self.source_name)
                self._restart(export_id)
                yield from self._export(bulk, export_id)
        except FhirAuthError as exc:
            self._failed(export_id, f"{exc}. {SCOPE_ADVICE}", final=False)
            raise FhirAuthError(f"{exc}. {SCOPE_ADVICE}", status_code=exc.status_code, url=exc.url) from exc
        except BulkExportFailed as exc:
            self._failed(export_id, str(exc), final=True)
            raise
        except (FhirError, SyncAborted) as exc:
            self._failed(export_id, str(exc), final=False)  # resumable: run `backfill` again
            raise
        finally:
            bulk.close()

    def _prepare(self) -> int:
        """Resume the source's unfinished export, or start a new one (`_since` = last one's time)."""
        with session_scope(self.engine) as session:
            query = select(BulkExport).where(BulkExport.source_id == self.source_id).order_by(col(BulkExport.id).desc())
            exports = list(session.exec(query))
            running = next((e for e in exports if e.status == BulkExportStatus.running), None)
            if running is not None and (self.group_id is None or self.group_id == running.group_id) and not self.full:
                self.outcome.resumed = bool(running.status_url)
                self.group_id = running.group_id
                export = running
            else:
                if running is not None:
                    running.status, running.error, running.finished_at = (
                        BulkExportStatus.failed,
                        "replaced by a new backfill",
                        utcnow(),
                    )
                last = next((e for e in exports if e.status == BulkExportStatus.complete), None)
                since = None if self.full or last is None or last.transaction_time is None else last.transaction_time
                export = BulkExport(source_id=self.source_id, group_id=self.group_id, since=since)
                session.add(export)
                session.flush()
            assert export.id is not None
            self.outcome.export_id, self.outcome.since = export.id, export.since
            return export.id

    def _restart(self, export_id: int) -> None:
        with session_scope(self.engine) as session:
            export = session.get(BulkExport, export_id)
            assert export is not None
            export.status_url, export.manifest, export.transaction_time, export.files_done = None, None, None, {}

    def _failed(self, export_id: int, error: str, *, final: bool) -> None:
        with session_scope(self.engine) as session:
            export = session.get(BulkExport, export_id)
            if export is None:
                return
            export.error = error
            if final:
                export.status, export.finished_at = BulkExportStatus.failed, utcnow()

    def _export(self, bulk: BulkExportClient, export_id: int) -> Iterator[Page]:
        with session_scope(self.engine) as session:
            export = session.get(BulkExport, export_id)
            assert export is not None
            status_url, stored_manifest, since = export.status_url, export.manifest, export.since
            files_done = dict(export.files_done)
        self.read_before = sum(int(state.get("lines", 0)) for state in files_done.values())
        if status_url is None:
            self._stage("export: kick-off")
            status_url = bulk.kick_off(group_id=self.group_id, types=EXPORT_TYPES, since=since)
            self._save(export_id, status_url=status_url)
        if stored_manifest is None:
            manifest = bulk.wait(
                status_url, on_progress=lambda p: self._stage(f"export running ({p or 'no progress'})")
            )
            self._save(export_id, manifest=manifest.to_json(), transaction_time=manifest.transaction_time)
        else:
            manifest = ExportManifest.from_json(stored_manifest)
        self.outcome.transaction_time = manifest.transaction_time
        if manifest.error:
            log.warning("source %s: the export lists %d error file(s)", self.source_name, len(manifest.error))
        steps = plan(manifest)
        counts = [s.file.count for s in steps]
        self.total = sum(c for c in counts if c is not None) if all(c is not None for c in counts) else None
        self.followed = followed_from_store(self.engine, self.source_id, self.classes)
        for step in steps:
            state = files_done.get(step.key) or {}
            if not state.get("done"):
                yield from self._download(bulk, manifest, step, skip=int(state.get("lines", 0)))
        yield from self._finish(export_id, manifest.transaction_time)

    def _save(self, export_id: int, **values: Any) -> None:
        with session_scope(self.engine) as session:
            export = session.get(BulkExport, export_id)
            assert export is not None
            for name, value in values.items():
                setattr(export, name, value)

    # -- downloads ----------------------------------------------------------------------------------

    def _wanted(self, phase: str, resource: dict[str, Any]) -> bool | None:
        """Keep it (True), not (False), or None: the other pass over the Encounter files decides."""
        if resource.get("resourceType") == "Encounter":
            inpatient = class_code(resource) in self.classes
            if phase == "inpatient" and inpatient:
                if (pid := owner_of(resource)) is not None:
                    self.followed.add(pid)
                return True  # without a subject it is kept, to become a dead letter
            if phase == "earlier" and not inpatient:
                return earlier_stay(resource, self.followed)
            return None
        return phase == "facts" and followed_record(resource, self.followed, self.categories)

    def _download(self, bulk: BulkExportClient, manifest: ExportManifest, step: _Step, *, skip: int) -> Iterator[Page]:
        self._stage(f"{step.file.type} ({step.phase})")
        batch: list[dict[str, Any]] = []
        bad: list[BadLine] = []
        lines, since_commit = skip, 0
        for number, item in bulk.iter_resources(
            step.file, requires_access_token=manifest.requires_access_token, skip=skip
        ):
            lines = number
            since_commit += 1
            self.outcome.read += 1
            if isinstance(item, BadLine):
                if step.phase != "earlier":  # the first pass over the file already kept it
                    bad.append(item)
            else:
                wanted = self._wanted(step.phase, item)
                if wanted:
                    batch.append(item)
                elif wanted is False:
                    self.outcome.skipped += 1
            if since_commit >= BATCH_LINES:
                yield from self._batch(batch, bad, step.key, lines, done=False)
                batch, bad, since_commit = [], [], 0
        yield from self._batch(batch, bad, step.key, lines, done=True)

    def _batch(self, resources: list[Any], bad: list[BadLine], key: str, lines: int, *, done: bool) -> Iterator[Page]:
        """One page of a step: its rows and dead letters, with the lines they cover as checkpoint."""
        assert self.outcome.export_id is not None
        letters = [(line.text, line.reason) for line in bad]
        yield Page(resources, letters, checkpoint=partial(_lines_done, self.outcome.export_id, key, lines, done))
        self._stage(None)
        self.batches += 1
        if self.stop_after_batches is not None and self.batches >= self.stop_after_batches:
            raise SyncAborted(f"stopped after {self.batches} batches as asked")

    def _finish(self, export_id: int, transaction_time: str) -> Iterator[Page]:
        """Complete the export and make its transactionTime the poll cursor of every stream."""
        stamp = parse_instant(transaction_time)
        cursors: dict[str, str | None] = {}
        stored = transaction_time  # unreadable: kept as sent, and no cursor moves
        if stamp is not None:
            stored = format_instant(stamp)
            cursors = dict.fromkeys(("Encounter", *FACT_STREAMS), stored)
        yield Page(cursors=cursors, checkpoint=partial(_complete, export_id, stored))
        self.outcome.transaction_time = stored

    def _stage(self, stage: str | None) -> None:
        if self.report is not None:
            self.report(stage or "", self.read_before + self.outcome.read, self.total)


def backfill_source(
    source_name: str,
    *,
    engine: Engine,
    settings: Settings | None = None,
    client: FhirClient | None = None,
    group_id: str | None = None,
    full: bool = False,
    progress: BackfillProgress | None = None,
    sleep: Callable[[float], None] = time.sleep,
    stop_after_batches: int | None = None,
) -> BackfillResult:
    """Run (or resume) a `$export` backfill of the named source; what it stored waits in the assessment queue."""
    settings = settings or get_settings()
    with session_scope(engine) as session:
        source = source_registry.get_source(session, source_name)
    if source.mode == SourceMode.file:
        return BackfillResult(fail_before_start(engine, source, "a file source has no $export: use `sync`"))
    own = client is None
    try:
        fhir = client or source_registry.client_for(source)
    except FhirError as exc:
        return BackfillResult(fail_before_start(engine, source, str(exc)))
    try:
        backfill = BulkBackfill(
            engine,
            source,
            fhir,
            settings=settings,
            group_id=group_id,
            full=full,
            progress=progress,
            sleep=sleep,
            stop_after_batches=stop_after_batches,
        )
        # Each batch queues its patients for assessment with its rows; the caller drains the queue.
        backfill.outcome.sync = write_pass(engine, source, backfill.pages(), kind="backfill", settings=settings)
    finally:
        if own:
            fhir.close()
    return backfill.outcome
