"""Parsing one batch of resources from any channel (poll page, file, notification, export, replay).

Pure: no database. The page writer (``writer``) stores what comes out, in one transaction per page.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any

from discharge_bridge.ingest.conformance import Sampler
from discharge_bridge.ingest.normalise import Normalised, NotKept, UnusableResource, normalise

log = logging.getLogger(__name__)


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

    Never raises for a resource: whatever goes wrong reading one (a check in ``normalise`` or a
    failure nobody foresaw) makes it a dead letter, so one bad entry cannot cost its page or stop
    its source. ``encode``: rows keep their resource as JSON text only (see ``normalise``).
    """
    parsed = Parsed()
    seen: set[tuple[str, str, str]] = set()
    for resource in resources:
        try:  # the body stays inline: a call per resource was a few percent of ingest (bench/ingest.py)
            if isinstance(resource, dict):
                rtype = resource.get("resourceType")
                if rtype in ("OperationOutcome", "Bundle"):
                    parsed.ignored += 1
                    continue
                # The same version twice in a batch (a stay that is also a patient's "earlier stay",
                # an include repeated across entries): normalise and store it once.
                rid = resource.get("id")
                meta = resource.get("meta")
                version = meta.get("versionId") if isinstance(meta, dict) else None
                if isinstance(rtype, str) and isinstance(rid, str) and isinstance(version, str):
                    key = (rtype, rid, version)
                    if key in seen:
                        continue
                    seen.add(key)
                if sampler is not None:
                    parsed.conformance.extend(sampler.check(resource))
            row = normalise(resource, tz, encode=encode)
            parsed.rows.append(row)
            if row.problems:
                parsed.conformance.extend((row.resource_type, path, kind, row.fhir_id) for path, kind in row.problems)
        except NotKept:
            parsed.ignored += 1
        except UnusableResource as exc:
            parsed.rejected.append((resource, str(exc)))
        except Exception as exc:  # a resource must never stop the batch: dead-letter it
            # The log names the kind of failure only: its message may quote patient data.
            log.warning("unreadable %s resource set aside: %s", _declared(resource), type(exc).__name__)
            parsed.rejected.append((resource, f"unreadable resource: {type(exc).__name__}: {exc}"[:1000]))
    return parsed


def _declared(resource: Any) -> str:
    rtype = resource.get("resourceType") if isinstance(resource, dict) else None
    return rtype[:64] if isinstance(rtype, str) else "untyped"
