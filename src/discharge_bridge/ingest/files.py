"""A file source: FHIR NDJSON (a Bulk export), Bundles or single resources on disk.

Serves the bundled demo hospital and hospitals that hand over an export by other means. Files are
streamed line by line; every pass re-reads them all, which idempotent upserts make harmless.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import Engine

from discharge_bridge.config import Settings, get_settings
from discharge_bridge.db import session_scope
from discharge_bridge.ingest.poll import PollPass, Progress, SyncResult
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


class FilePass(PollPass):
    kind = "file"

    def _streams(self) -> None:
        batch: list[Any] = []
        for item in iter_resources(Path(self.source.base_url)):
            if isinstance(item, BadRecord):
                self._dead_letter(item)
                continue
            batch.append(item)
            if len(batch) >= self.settings.sync_page_size:
                self._commit_page(batch, {})
                batch = []
        if batch:
            self._commit_page(batch, {})

    def _dead_letter(self, bad: BadRecord) -> None:
        from discharge_bridge.ingest.store import record_dead_letter

        with session_scope(self.engine) as session:
            record_dead_letter(session, self.source_id, bad.text, bad.reason)
        self.result.dead_letters += 1


def sync_files(
    source: Source, *, engine: Engine, settings: Settings | None = None, progress: Progress | None = None
) -> SyncResult:
    return FilePass(engine, source, None, settings=settings or get_settings(), progress=progress).run()
