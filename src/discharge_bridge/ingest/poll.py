"""A polling pass over one source: what changed since the cursor, page by page.

``Poll`` produces the pages: the Encounters (with their Patients) changed since the cursor, the
record of patients seen for the first time, then the changes of each fact stream. The page writer
(``writer``) stores each page with its advanced cursor in ONE transaction before the next page is
read, so a pass killed at any point resumes from the last committed page.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy.engine import Engine

from discharge_bridge.config import Settings, get_settings
from discharge_bridge.db import session_scope, utcnow
from discharge_bridge.fhir import FhirClient, FhirError, SearchPage
from discharge_bridge.fhir.fields import obj, parse_instant, reference_id, zone
from discharge_bridge.ingest.files import sync_files
from discharge_bridge.ingest.follow import FACT_STREAMS, Reader, entries, known_patients
from discharge_bridge.ingest.normalise import SNAPSHOT_TYPES
from discharge_bridge.ingest.writer import (
    Page,
    Progress,
    SyncResult,
    fail_before_start,
    format_instant,
    write_pass,
)
from discharge_bridge.sources import service as source_registry
from discharge_bridge.sources.models import Source, SourceMode
from discharge_bridge.sources.safety import SourcePolicy, check_stored


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


def _stamps(resources: Iterable[Any], tz: tzinfo) -> list[datetime]:
    found = []
    for res in resources:
        meta = res.get("meta") if isinstance(res, dict) else None
        stamp = parse_instant(meta.get("lastUpdated"), tz) if isinstance(meta, dict) else None
        if stamp is not None:
            found.append(stamp)
    return found


class Poll:
    """The pages of one polling pass: changed Encounters with their Patients and the record of new
    patients, then each fact stream's changes for patients already followed.

    Each stream's last page carries its final cursor. A new source's fact streams start where its
    first Encounter pass started.
    """

    def __init__(self, engine: Engine, source: Source, client: FhirClient, *, settings: Settings) -> None:
        assert source.id is not None
        self.engine = engine
        self.source_id = source.id
        self.classes = list(source.inpatient_classes)
        self.tz = zone(source.timezone)
        self.settings = settings
        self.reader = Reader(client, settings)
        self.cursors = dict(source.cursors)  # as the pass found them, then as it committed them
        self.pass_started: datetime | None = None

    def pages(self) -> Iterator[Page]:
        cursor = _Cursor(self.cursors.get("Encounter"))
        yield from self._encounter_pages(cursor)
        final = {"Encounter": cursor.final()} | self._first_fact_cursors()
        yield self._page([], final)
        self.cursors |= {k: v for k, v in final.items() if v is not None}
        for resource_type in FACT_STREAMS:
            committed = self.cursors.get(resource_type)
            if committed is None:
                continue
            cursor = _Cursor(committed)
            yield from self._fact_pages(resource_type, cursor)
            yield self._page([], {resource_type: cursor.final()})

    def _page(self, resources: list[Any], cursors: dict[str, str | None]) -> Page:
        return Page(resources, cursors=cursors, nbytes=self.reader.take_received())

    def _search(self, resource_type: str, params: dict[str, str], cursor: _Cursor) -> Iterator[SearchPage]:
        """Pages of a search ordered by _lastUpdated, re-issued from the newest stamp seen.

        Offset-based next links skip a resource when another one is updated mid-pass (the update
        moves it to the end of the result set and shifts every offset after it; seen on the EHR
        simulator and on HAPI). So while the server honours ``_sort``, each next page is a fresh
        search ``_lastUpdated=ge<page max>``: an update during the pass can only move a resource
        later, never past us. Re-reading the resources at the boundary stamp is harmless because
        upserts are idempotent. A server that ignores ``_sort``, or a tie group larger than a page,
        falls back to following the next links.
        """
        since = _since(cursor.committed, self.settings.sync_overlap_seconds)
        lower = f"gt{since}" if since else None
        while True:
            query = {**params, "_lastUpdated": lower} if lower else dict(params)
            reissued = False
            for page in self.reader.pages(resource_type, query):
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

    def _encounter_pages(self, cursor: _Cursor) -> Iterator[Page]:
        """Each Encounter page with its Patients and the record of new patients."""
        params = {
            "class": ",".join(self.classes),
            "_include": "Encounter:subject",
            "_count": str(self.settings.sync_page_size),
            "_sort": "_lastUpdated",
        }
        for found in self._search("Encounter", params, cursor):
            if self.pass_started is None:
                self.pass_started = found.server_date or utcnow()
                cursor.fallback = self.pass_started
            resources = [res for res, mode in entries(found.bundle) if mode != "outcome"]
            encounters = [r for r, mode in entries(found.bundle) if mode in (None, "match")]
            encounters = [r for r in encounters if isinstance(r, dict) and r.get("resourceType") == "Encounter"]
            referenced = {pid for r in encounters if (pid := reference_id(r.get("subject"), "Patient")) is not None}
            # Known once stored: the writer stores each page before the next one is read.
            new_patients = referenced - known_patients(self.engine, self.source_id, referenced)
            resources += self.reader.first_sight(resources, new_patients)
            page = self._page(resources, {"Encounter": cursor.observe(_stamps(encounters, self.tz))})
            del resources, encounters  # the writer frees the page's resources once parsed
            yield page

    def _first_fact_cursors(self) -> dict[str, str | None]:
        if self.pass_started is None:
            return {}
        start = format_instant(self.pass_started)
        return {t: start for t in FACT_STREAMS if t not in self.cursors}

    def _fact_pages(self, resource_type: str, cursor: _Cursor) -> Iterator[Page]:
        """Facts changed since the cursor, kept only for patients the service already follows."""
        params = {"_count": str(self.settings.sync_page_size), "_sort": "_lastUpdated"}
        if resource_type == "Observation":
            params["category"] = ",".join(self.settings.observation_categories)
        field_name = "patient" if resource_type == "RelatedPerson" else "subject"
        for found in self._search(resource_type, params, cursor):
            resources = [r for r, mode in entries(found.bundle) if mode in (None, "match")]
            owners = {
                pid for r in resources if isinstance(r, dict) and (pid := reference_id(r.get(field_name), "Patient"))
            }
            known = known_patients(self.engine, self.source_id, owners)
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
            page = self._page(keep, {resource_type: cursor.observe(_stamps(resources, self.tz))})
            del resources, keep
            yield page


def sync_source(
    source_name: str,
    *,
    engine: Engine,
    settings: Settings | None = None,
    client: FhirClient | None = None,
    progress: Progress | None = None,
    stop_after_pages: int | None = None,
) -> SyncResult:
    """Run one polling pass over the named source (a file source: re-read its files) and record it.

    What the pass changed is queued for assessment in the same transactions as its rows; the
    assessment stage (``discharge_bridge.assessment``) drains it.
    """
    settings = settings or get_settings()
    with session_scope(engine) as session:
        source = source_registry.get_source(session, source_name)
    policy = SourcePolicy.of(settings)  # where a source may point (sources/safety.py)
    if source.mode == SourceMode.file:
        try:
            check_stored(source, policy)
        except FhirError as exc:
            return fail_before_start(engine, source, str(exc))
        return sync_files(source, engine=engine, settings=settings, progress=progress)
    own_client = client is None
    try:
        client = client or source_registry.client_for(source, policy=policy)
    except FhirError as exc:
        return fail_before_start(engine, source, str(exc))
    try:
        poll = Poll(engine, source, client, settings=settings)
        return write_pass(
            engine,
            source,
            poll.pages(),
            kind="poll",
            settings=settings,
            progress=progress,
            stop_after_pages=stop_after_pages,
        )
    finally:
        if own_client:
            client.close()
