"""Task status from the EHR back to ours: a small poll of the Tasks we wrote that changed there.

One search per pass, ``Task?identifier=<our system>|&_lastUpdated=ge<cursor>`` (every Task with an
identifier of our system, changed since the newest one seen last time; the cursor is
``Source.writeback["tasks_read_at"]``, the server's own ``meta.lastUpdated``, so our clock does not
matter). A Task whose version is the one we wrote ourselves is skipped; another one (a nurse
completed it in the EHR) has its status applied to our task through the task service as
``ehr:<source>``, unless our task changed since we last sent it (then ours wins and is written over
the EHR's at the next send). Each Task in its own transaction.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.db import session_scope
from discharge_bridge.ehr.models import WritebackItem
from discharge_bridge.ehr.writeback.send import apply_remote_task
from discharge_bridge.fhir import FhirClient
from discharge_bridge.sources.models import Source

log = logging.getLogger(__name__)
PAGE = "200"


def _ours(remote: dict[str, Any], system: str) -> str | None:
    for identifier in remote.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("system") == system and identifier.get("value"):
            return str(identifier["value"])
    return None


def read_back_tasks(engine: Engine, source: Source, client: FhirClient, *, system: str) -> int:
    """Apply the EHR's changes of our Tasks; returns how many of our tasks moved."""
    assert source.id is not None
    cursor = (source.writeback or {}).get("tasks_read_at")
    params = {"identifier": f"{system}|", "_count": PAGE}
    if cursor:
        params["_lastUpdated"] = f"ge{cursor}"
    applied, newest = 0, cursor
    for page in client.search_pages("Task", params):
        for remote in page.resources:
            value = _ours(remote, system)
            meta = remote.get("meta") or {}
            updated = meta.get("lastUpdated")
            if isinstance(updated, str) and (newest is None or updated > newest):
                newest = updated
            if value is None:
                continue
            version = str(meta.get("versionId") or "") or None
            with session_scope(engine) as session:
                item = session.exec(
                    select(WritebackItem).where(
                        WritebackItem.source_id == source.id,
                        WritebackItem.resource_type == "Task",
                        WritebackItem.identifier == value,
                    )
                ).first()
                if item is None or item.remote_id is None or version is None or version == item.remote_version:
                    continue  # not ours, never sent, or the version we wrote
                if apply_remote_task(session, item, remote, source):
                    applied += 1
                item.remote_version = version
                session.add(item)
    if newest != cursor:
        with session_scope(engine) as session:
            row = session.get(Source, source.id)
            if row is not None:
                row.writeback = {**(row.writeback or {}), "tasks_read_at": newest}
                session.add(row)
    return applied
