"""One batch of resources from any channel (poll page, file, notification, export) into the store."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any

from sqlmodel import Session

from discharge_bridge.ingest.conformance import Sampler
from discharge_bridge.ingest.normalise import Normalised, UnusableResource, normalise
from discharge_bridge.ingest.store import (
    UpsertStats,
    record_conformance,
    record_dead_letters,
    upsert_snapshots,
)


@dataclass
class Parsed:
    """Resources of a batch sorted into what will be stored and what will be dead-lettered."""

    rows: list[Normalised] = field(default_factory=list)
    rejected: list[tuple[Any, str]] = field(default_factory=list)  # (payload, reason)
    conformance: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    ignored: int = 0  # resource types the service does not keep (OperationOutcome, Practitioner, ...)


def parse_batch(
    resources: Iterable[Any], *, tz: tzinfo = UTC, sampler: Sampler | None = None, encode: bool = False
) -> Parsed:
    """Normalise each resource; a bad one is set aside with its reason and the rest go on.

    ``encode``: rows keep their resource as JSON text only (see ``normalise``).
    """
    parsed = Parsed()
    seen: set[tuple[Any, Any, Any]] = set()
    for resource in resources:
        if isinstance(resource, dict):
            if resource.get("resourceType") in ("OperationOutcome", "Bundle"):
                parsed.ignored += 1
                continue
            # The same version twice in a batch (a stay that is also a patient's "earlier stay",
            # an include repeated across entries): normalise and store it once.
            meta = resource.get("meta")
            key = (
                resource.get("resourceType"),
                resource.get("id"),
                meta.get("versionId") if isinstance(meta, dict) else None,
            )
            if key[1] is not None and key[2] is not None:
                if key in seen:
                    continue
                seen.add(key)
        if sampler is not None and isinstance(resource, dict):
            parsed.conformance.extend(sampler.check(resource))
        try:
            parsed.rows.append(normalise(resource, tz, encode=encode))
        except UnusableResource as exc:
            if (
                isinstance(resource, dict)
                and isinstance(resource.get("resourceType"), str)
                and str(exc).startswith("unsupported resourceType")
            ):
                parsed.ignored += 1
            else:
                parsed.rejected.append((resource, str(exc)))
    return parsed


@dataclass
class BatchResult:
    stats: UpsertStats
    dead_letters: int
    ignored: int

    @property
    def changed_patients(self) -> set[str]:
        return {fid for rtype, fid in self.stats.changed_keys if rtype == "Patient"}


def store_batch(session: Session, source_id: int, parsed: Parsed) -> BatchResult:
    """Write a parsed batch in the caller's transaction."""
    stats = upsert_snapshots(session, source_id, parsed.rows)
    record_dead_letters(session, source_id, parsed.rejected)
    if parsed.conformance:
        record_conformance(session, source_id, parsed.conformance)
    return BatchResult(stats=stats, dead_letters=len(parsed.rejected), ignored=parsed.ignored)
