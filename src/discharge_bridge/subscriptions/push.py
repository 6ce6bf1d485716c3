"""Pushed resources through the page writer, and the catch-up poll.

A batch of notifications is one page: the resources carried in full plus the current version of
each resource an id-only notification names. It is filtered the way a poll filters (inpatient
classes; facts only for patients the service follows), a new patient's record is fetched on first
sight as a poll fetches it, and the page writer parses, stores, dead-letters and queues it for
assessment like any page. Pushes never move a poll cursor: one notification says nothing about
what came before it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy.engine import Engine

from discharge_bridge.config import Settings
from discharge_bridge.fhir import FhirClient
from discharge_bridge.fhir.fields import class_code, owner_of
from discharge_bridge.ingest.follow import Reader, earlier_stay, followed_record, known_patients
from discharge_bridge.ingest.locks import source_lock
from discharge_bridge.ingest.normalise import SNAPSHOT_TYPES
from discharge_bridge.ingest.poll import sync_source
from discharge_bridge.ingest.writer import Page, SyncResult, write_pass
from discharge_bridge.sources.models import Source


def notification_pages(
    engine: Engine,
    source: Source,
    client: FhirClient,
    *,
    settings: Settings,
    resources: list[dict[str, Any]],
    references: list[tuple[str, str]],
) -> Iterator[Page]:
    """The one page of a batch of notifications: what a poll would have kept, and new patients' records."""
    reader = Reader(client, settings)
    keep, new_patients = _followed(engine, source, settings, resources + _reread(reader, references))
    keep += reader.first_sight(keep, new_patients)
    yield Page(keep, nbytes=reader.take_received())


def _reread(reader: Reader, references: list[tuple[str, str]]) -> list[Any]:
    """The current version of each referenced resource (id-only notifications), by `_id` search."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for rtype, rid in references:
        if rtype in SNAPSHOT_TYPES:
            wanted[rtype].add(rid)
    found: list[Any] = []
    size = reader.settings.facts_batch_size
    for rtype, ids in wanted.items():
        ordered = sorted(ids)
        for start in range(0, len(ordered), size):
            found += reader.by_id(rtype, ordered[start : start + size])
    return found


def _followed(
    engine: Engine, source: Source, settings: Settings, resources: list[Any]
) -> tuple[list[dict[str, Any]], set[str]]:
    """What a poll would have kept of these resources, and the patients seen for the first time."""
    assert source.id is not None
    classes = set(source.inpatient_classes)
    categories = set(settings.observation_categories)
    dicts = [r for r in resources if isinstance(r, dict)]
    inpatient = {id(r) for r in dicts if r.get("resourceType") == "Encounter" and class_code(r) in classes}
    subjects = {pid for r in dicts if id(r) in inpatient and (pid := owner_of(r)) is not None}
    owners = {pid for r in dicts if (pid := owner_of(r)) is not None}
    known = known_patients(engine, source.id, owners | subjects)
    followed = known | subjects
    keep: list[dict[str, Any]] = []
    for r in dicts:
        if r.get("resourceType") == "Encounter":
            # Inpatient stays always (one without a subject becomes a dead letter, as when
            # polled); other classes only as a followed patient's earlier, finished stay.
            if id(r) in inpatient or earlier_stay(r, followed):
                keep.append(r)
        elif followed_record(r, followed, categories):
            keep.append(r)
    return keep, subjects - known


def ingest_pushed(
    engine: Engine,
    source: Source,
    client: FhirClient,
    *,
    settings: Settings,
    resources: Iterable[dict[str, Any]] = (),
    references: Iterable[tuple[str, str]] = (),
) -> SyncResult:
    """Ingest one batch of pushed resources and references; what changed waits in the assessment queue."""
    pages = notification_pages(
        engine, source, client, settings=settings, resources=list(resources), references=list(references)
    )
    return write_pass(engine, source, pages, kind="push", settings=settings)


def catch_up(source_name: str, *, engine: Engine, settings: Settings, client: FhirClient | None = None) -> SyncResult:
    """A poll pass from the cursor, one at a time per source with the scheduled polls."""
    with source_lock(source_name):
        return sync_source(source_name, engine=engine, settings=settings, client=client)
