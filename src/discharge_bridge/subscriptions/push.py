"""Pushed resources through the same ingest path as a polled page, and the catch-up poll.

A notification's resources are treated like one page of the poll: the same filters (inpatient
classes; facts only for patients the service follows), the same first-sight fetch of a new
patient's record, the same parse, idempotent upsert, dead letters and scoring. Pushes never move
a poll cursor: one notification says nothing about what came before it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy.engine import Engine

from discharge_bridge.config import Settings
from discharge_bridge.fhir import FhirClient
from discharge_bridge.ingest.about import class_code, owner_of
from discharge_bridge.ingest.locks import source_lock
from discharge_bridge.ingest.normalise import SNAPSHOT_TYPES, codings
from discharge_bridge.ingest.poll import FACT_STREAMS, PollPass, SyncResult, sync_source
from discharge_bridge.sources.models import Source


class NotificationPass(PollPass):
    """One batch of notifications: resources carried in full plus (type, id) references to re-read."""

    kind = "push"

    def __init__(
        self,
        engine: Engine,
        source: Source,
        client: FhirClient,
        *,
        settings: Settings,
        resources: Iterable[dict[str, Any]] = (),
        references: Iterable[tuple[str, str]] = (),
    ) -> None:
        super().__init__(engine, source, client, settings=settings)
        self.given = list(resources)
        self.references = list(references)

    def _streams(self) -> None:
        resources = self.given + self._reread()
        keep, new_patients = self._followed(resources)
        included = {r.get("id") for r in keep if r.get("resourceType") == "Patient"}
        missing = new_patients - included
        if missing:
            keep += self._search_all("Patient", {"_id": ",".join(sorted(missing)), "_count": str(len(missing))})
        keep += self._facts_for(new_patients)
        self._commit_page(keep, {})

    def _reread(self) -> list[Any]:
        """The current version of each referenced resource (id-only notifications), by `_id` search."""
        wanted: dict[str, set[str]] = defaultdict(set)
        for rtype, rid in self.references:
            if rtype in SNAPSHOT_TYPES:
                wanted[rtype].add(rid)
        found: list[Any] = []
        size = self.settings.facts_batch_size
        for rtype, ids in wanted.items():
            ordered = sorted(ids)
            for start in range(0, len(ordered), size):
                chunk = ordered[start : start + size]
                found += self._search_all(rtype, {"_id": ",".join(chunk), "_count": str(len(chunk))})
        return found

    def _followed(self, resources: list[Any]) -> tuple[list[dict[str, Any]], set[str]]:
        """What a poll would have kept of these resources, and the patients seen for the first time."""
        classes = set(self.source.inpatient_classes)
        categories = set(self.settings.observation_categories)
        dicts = [r for r in resources if isinstance(r, dict)]
        inpatient = {id(r) for r in dicts if r.get("resourceType") == "Encounter" and class_code(r) in classes}
        subjects = {pid for r in dicts if id(r) in inpatient and (pid := owner_of(r)) is not None}
        owners = {pid for r in dicts if (pid := owner_of(r)) is not None}
        known = self._known_patients(owners | subjects)
        followed = known | subjects
        keep: list[dict[str, Any]] = []
        for r in dicts:
            rtype = r.get("resourceType")
            if rtype == "Encounter":
                # Inpatient stays always (one without a subject becomes a dead letter, as when
                # polled); other classes only as a followed patient's earlier, finished stay.
                if id(r) in inpatient or (r.get("status") == "finished" and owner_of(r) in followed):
                    keep.append(r)
            elif rtype == "Patient" or rtype in FACT_STREAMS:
                if owner_of(r) not in followed:
                    continue
                if rtype == "Observation" and not {c.get("code") for c in codings(r.get("category"))} & categories:
                    continue
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
    return NotificationPass(engine, source, client, settings=settings, resources=resources, references=references).run()


def catch_up(source_name: str, *, engine: Engine, settings: Settings, client: FhirClient | None = None) -> SyncResult:
    """A poll pass from the cursor, one at a time per source with the scheduled polls."""
    with source_lock(source_name):
        return sync_source(source_name, engine=engine, settings=settings, client=client)
