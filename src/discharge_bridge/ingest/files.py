"""A file source: FHIR NDJSON (a Bulk export), Bundles or single resources on disk.

Serves the bundled demo hospital and hospitals that hand over an export by other means. Files are
streamed line by line into pages for the page writer (``writer``); every pass re-reads them all,
which idempotent upserts make harmless.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import Engine

from discharge_bridge.config import Settings, get_settings
from discharge_bridge.ingest.writer import Page, Progress, SyncResult, write_pass
from discharge_bridge.sources.models import Source

SUFFIXES = (".ndjson", ".json", ".jsonl")


@dataclass(frozen=True)
class BadRecord:
    """A line or file that is not JSON: kept as text so it can become a dead letter."""

    text: str
    reason: str


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"file source path {root} does not exist")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))


def _resources_in(document: Any) -> Iterator[Any]:
    if isinstance(document, dict) and document.get("resourceType") == "Bundle":
        for entry in document.get("entry") or []:
            if isinstance(entry, dict) and "resource" in entry:
                yield entry["resource"]
    else:
        yield document


def iter_resources(root: Path) -> Iterator[Any | BadRecord]:
    """Every resource under ``root``, in file order; NDJSON is read a line at a time."""
    for path in _files(root):
        if path.name.endswith((".ndjson", ".jsonl")):
            with path.open("rb") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        yield from _resources_in(orjson.loads(line))
                    except orjson.JSONDecodeError as exc:
                        yield BadRecord(line.decode("utf-8", "replace"), f"{path.name} line {number}: {exc}")
        else:
            raw = path.read_bytes()
            try:
                yield from _resources_in(orjson.loads(raw))
            except orjson.JSONDecodeError as exc:
                yield BadRecord(raw.decode("utf-8", "replace"), f"{path.name}: {exc}")


def file_pages(root: Path, page_size: int) -> Iterator[Page]:
    """The resources under ``root`` in pages of ``page_size``; unreadable records ride along as bad."""
    resources: list[Any] = []
    bad: list[tuple[Any, str]] = []
    for item in iter_resources(root):
        if isinstance(item, BadRecord):
            bad.append((item.text, item.reason))
            continue
        resources.append(item)
        if len(resources) >= page_size:
            yield Page(resources, bad)
            resources, bad = [], []
    if resources or bad:
        yield Page(resources, bad)


def sync_files(
    source: Source, *, engine: Engine, settings: Settings | None = None, progress: Progress | None = None
) -> SyncResult:
    """One pass over a file source: every file read again, stored page by page."""
    settings = settings or get_settings()
    pages = file_pages(Path(source.base_url), settings.sync_page_size)
    return write_pass(engine, source, pages, kind="file", settings=settings, progress=progress)
