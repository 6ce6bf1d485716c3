"""Turning write-back on or off for a source, and which resources it writes (``Source.writeback``).

The keys: ``enabled`` (bool), ``resources`` (a subset of Flag, RiskAssessment, Task; absent = all),
and ``reconciled_at``, the outbox's own watermark (ehr/writeback/outbox.py), kept across changes.
"""

from __future__ import annotations

from sqlmodel import Session

from discharge_bridge.ehr.writeback.resources import RESOURCE_TYPES
from discharge_bridge.sources.errors import SourceError
from discharge_bridge.sources.models import Source


def parse_resources(text: str) -> list[str]:
    """ "Flag,Task" -> ["Flag", "Task"]; SourceError naming what is not one of ours."""
    given = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [part for part in given if part not in RESOURCE_TYPES]
    if unknown or not given:
        raise SourceError(f"write-back resources are some of {', '.join(RESOURCE_TYPES)} (got {text!r})")
    return [t for t in RESOURCE_TYPES if t in given]


def set_writeback(
    session: Session, source: Source, *, enabled: bool | None = None, resources: list[str] | None = None
) -> Source:
    raw = dict(source.writeback or {})
    if enabled is not None:
        raw["enabled"] = enabled
    if resources is not None:
        raw["resources"] = parse_resources(",".join(resources))
    source.writeback = raw
    session.add(source)
    session.flush()
    return source
