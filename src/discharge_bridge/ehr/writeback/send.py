"""Sending the outbox: each due item in its own short transaction, idempotent on the server.

The first time, a conditional create (``POST [type]`` with ``If-None-Exist: identifier=system|value``),
so a pass killed between the POST and our commit finds its resource on the next try instead of
making a second one. After that, an update by the id the server gave (``PUT [type]/[id]`` with
``If-Match`` on the version we last saw). A 2xx records the id and version and marks the item sent;
a temporary failure (5xx, 429, 408, a timeout, a cut-off body) leaves it pending with an
exponential, jittered backoff between one minute and one hour (never sooner than the server's
``Retry-After``); a refusal (another 4xx) marks it failed with the server's OperationOutcome, until
its desired state changes or IT presses Retry.

Tasks both ways: when our ``If-Match`` fails (412) the EHR changed the Task since we wrote it (a
nurse completed it...). We read it, and when our task has not changed since our last send, the
EHR's status is applied to our task through the task service as ``ehr:<source>`` (along the allowed
moves; a status we cannot reach is left alone and ours is written over it). Then the item is due
again at once, with the EHR's version.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from discharge_bridge.cases.errors import CoordinationError
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.tasks.models import TASK_TRANSITIONS, Task, TaskStatus
from discharge_bridge.cases.tasks.service import update_task
from discharge_bridge.db import session_scope, utcnow
from discharge_bridge.ehr.models import WritebackItem, WritebackStatus
from discharge_bridge.fhir import FhirClient, FhirError, FhirFatalError, FhirNotFound, FhirTemporaryError
from discharge_bridge.sources.models import Source

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
BACKOFF_MIN = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=1)
ERROR_MAX = 2000


@dataclass
class SendResult:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    applied: int = 0  # task statuses taken from the EHR


def backoff(attempts: int, retry_after: float | None = None) -> timedelta:
    """1 min, 2, 4 ... capped at 1 h, each drawn in [half, whole] so many items do not retry in step;
    never shorter than the server's Retry-After."""
    ceiling = min(BACKOFF_MAX, BACKOFF_MIN * 2 ** max(attempts - 1, 0))
    wait = max(BACKOFF_MIN, ceiling * random.uniform(0.5, 1.0))
    if retry_after is not None:
        wait = max(wait, timedelta(seconds=retry_after))
    return min(wait, BACKOFF_MAX) if retry_after is None else wait


def _version_of(response: httpx.Response, body: dict[str, Any] | None) -> str | None:
    version = ((body or {}).get("meta") or {}).get("versionId")
    if version:
        return str(version)
    etag = response.headers.get("etag", "")
    return etag.removeprefix("W/").strip('"') or None


def _id_of(response: httpx.Response, body: dict[str, Any] | None, resource_type: str) -> str | None:
    if body and body.get("id"):
        return str(body["id"])
    location = response.headers.get("location") or response.headers.get("content-location") or ""
    parts = location.split("/")
    if resource_type in parts and parts.index(resource_type) + 1 < len(parts):
        return parts[parts.index(resource_type) + 1]
    return None


def _body(response: httpx.Response) -> dict[str, Any] | None:
    if not response.content.strip():
        return None
    try:
        parsed = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def creates_by_id(source: Source, resource_type: str) -> bool:
    """``Source.writeback["create_by"]``: "conditional" (the default) or "id", for all types or per type
    (``{"RiskAssessment": "id"}``). "id" creates by ``PUT [type]/<our identifier value>``, for servers that
    take client-assigned ids but cannot search a type by identifier (sekmet 0.1.1 has no ``identifier``
    parameter for RiskAssessment and refuses the If-None-Exist with 400)."""
    how = (source.writeback or {}).get("create_by") or "conditional"
    if isinstance(how, dict):
        how = how.get(resource_type) or "conditional"
    return how == "id"


def _write(
    client: FhirClient, item: WritebackItem, system: str, *, by_id: bool = False
) -> tuple[str | None, str | None, bool]:
    """Send the item's desired resource; (remote id, version, created-by-match) from the answer."""
    resource = dict(item.desired)
    content = orjson.dumps(resource)
    headers = {"Content-Type": FHIR_JSON, "Prefer": "return=representation"}
    if item.remote_id is None and by_id:  # PUT creates it under our id (or updates what an earlier pass made)
        response = client.request(
            "PUT",
            f"{item.resource_type}/{item.identifier}",
            content=orjson.dumps({**resource, "id": item.identifier}),
            headers=headers,
        )
        body = _body(response)
        return _id_of(response, body, item.resource_type) or item.identifier, _version_of(response, body), False
    if item.remote_id is None:
        headers["If-None-Exist"] = f"identifier={system}|{item.identifier}"
        response = client.request("POST", item.resource_type, content=content, headers=headers)
        body = _body(response)
        # 200 (not 201): the server already had one with our identifier (an earlier pass died before
        # its commit): it was not updated, so the caller PUTs our state onto it.
        return _id_of(response, body, item.resource_type), _version_of(response, body), response.status_code == 200
    resource["id"] = item.remote_id
    if item.remote_version:
        headers["If-Match"] = f'W/"{item.remote_version}"'
    response = client.request(
        "PUT", f"{item.resource_type}/{item.remote_id}", content=orjson.dumps(resource), headers=headers
    )
    body = _body(response)
    return _id_of(response, body, item.resource_type) or item.remote_id, _version_of(response, body), False


def apply_remote_task(session: Session, item: WritebackItem, remote: dict[str, Any], source: Source) -> bool:
    """Take the EHR's Task status onto ours, unless ours changed since we last sent it; True if applied."""
    task_id = int(item.identifier.rsplit("-", 1)[1])
    row = session.get(Task, task_id)
    case = session.get(Case, row.case_id) if row is not None else None
    if row is None or case is None:
        return False
    if item.sent_at is not None and row.updated_at > item.sent_at:
        return False  # ours moved too: ours wins and is written over the EHR's
    try:
        target = TaskStatus(str(remote.get("status")))
    except ValueError:
        return False
    steps = TASK_TRANSITIONS.path(TaskStatus(row.status), target)
    if not steps:
        return False
    reason = str((remote.get("statusReason") or {}).get("text") or "") or None
    try:
        for step in steps:
            values: dict[str, Any] = {"status": step}
            if step == target and reason:
                values["status_reason"] = reason
            update_task(session, case, row, actor=f"ehr:{source.name}", expected_version=None, **values)
    except CoordinationError:
        return False
    return True


def _refresh_from_remote(
    session: Session, client: FhirClient, item: WritebackItem, source: Source, now: datetime
) -> bool:
    """Our If-Match failed: read the EHR's copy, take its version (and a Task's status)."""
    assert item.remote_id is not None
    remote = client.read(item.resource_type, item.remote_id)
    applied = item.resource_type == "Task" and apply_remote_task(session, item, remote, source)
    item.remote_version = str((remote.get("meta") or {}).get("versionId") or "") or None
    item.next_attempt_at = now
    return applied


def _short(text: str) -> str:
    return text if len(text) <= ERROR_MAX else text[: ERROR_MAX - 1] + "…"


def _send_one(
    engine: Engine, source: Source, client: FhirClient, item_id: int, system: str, result: SendResult
) -> None:
    with session_scope(engine) as session:
        item = session.get(WritebackItem, item_id)
        if item is None or item.status != WritebackStatus.pending:
            return
        now = utcnow()
        hash_sent = item.desired_hash
        try:
            remote_id, version, matched = _write(client, item, system, by_id=creates_by_id(source, item.resource_type))
            if matched and remote_id:
                item.remote_id, item.remote_version = remote_id, version
                remote_id, version, _ = _write(client, item, system)
        except FhirTemporaryError as exc:
            item.attempts += 1
            item.next_attempt_at = now + backoff(item.attempts, exc.retry_after)
            item.last_error, item.last_outcome = _short(str(exc)), exc.outcome
            result.retrying += 1
            log.warning(
                "write-back %s %s: %s; attempt %d, again at %s",
                source.name,
                item.resource_type,
                exc.status_code or "no answer",
                item.attempts,
                item.next_attempt_at.isoformat(),
            )
            return
        except FhirFatalError as exc:
            if exc.status_code == 412 and item.remote_id is not None:
                if _refresh_from_remote(session, client, item, source, now):
                    result.applied += 1
                return
            if isinstance(exc, FhirNotFound) and item.remote_id is not None:
                item.remote_id, item.remote_version, item.next_attempt_at = (
                    None,
                    None,
                    now,
                )  # deleted there: create again
                return
            item.status, item.attempts = WritebackStatus.failed, item.attempts + 1
            item.last_error, item.last_outcome = _short(str(exc)), exc.outcome
            result.failed += 1
            log.warning("write-back %s %s refused: HTTP %s", source.name, item.resource_type, exc.status_code)
            return
        item.remote_id, item.remote_version = remote_id or item.remote_id, version
        item.sent_hash, item.sent_at, item.attempts = hash_sent, now, 0
        item.status = WritebackStatus.sent if item.desired_hash == hash_sent else WritebackStatus.pending
        item.last_error = item.last_outcome = None
        session.add(item)
        result.sent += 1


def due_ids(engine: Engine, source_id: int, now: datetime, limit: int) -> list[int]:
    with session_scope(engine) as session:
        query = (
            select(WritebackItem.id)
            .where(
                WritebackItem.source_id == source_id,
                WritebackItem.status == WritebackStatus.pending,
                col(WritebackItem.next_attempt_at) <= now,
            )
            .order_by(col(WritebackItem.next_attempt_at), col(WritebackItem.id))
            .limit(limit)
        )
        return [i for i in session.exec(query) if i is not None]


def send_due(
    engine: Engine, source: Source, client: FhirClient, *, now: datetime | None = None, limit: int = 500, system: str
) -> SendResult:
    """Send up to ``limit`` due items of the source, the longest due first, each in its own transaction."""
    result = SendResult()
    assert source.id is not None
    for item_id in due_ids(engine, source.id, now or utcnow(), limit):
        try:
            _send_one(engine, source, client, item_id, system, result)
        except FhirError as exc:  # e.g. the read after a 412 failed: the item stays due, tried next pass
            result.retrying += 1
            log.warning("write-back %s: item %d not sent: %s", source.name, item_id, type(exc).__name__)
    return result
