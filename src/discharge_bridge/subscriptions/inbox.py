"""Acknowledged notifications: written to the inbox before the 200, then drained into the store.

The webhook commits the raw notification and answers at once; `process_inbox` then runs (in the
web process right after the response, and from the recovery job for leftovers after a crash).
Rows leave the inbox only once their resources are committed, or once a catch-up poll that covers
them has run, so an acknowledged notification is never lost. One drain per source at a time in a
process; a second request meanwhile just asks the running one to go round again.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope, utcnow
from discharge_bridge.fhir import FhirClient, FhirError
from discharge_bridge.ingest.store import record_dead_letter
from discharge_bridge.sources.models import Source, SyncStatus
from discharge_bridge.sources.service import client_for
from discharge_bridge.subscriptions.counters import note_received
from discharge_bridge.subscriptions.models import SourceSubscription, SubscriptionKind, WebhookNotification
from discharge_bridge.subscriptions.notifications import (
    InvalidNotification,
    Notification,
    NotificationType,
    parse_notification,
)
from discharge_bridge.subscriptions.push import catch_up, ingest_pushed

log = logging.getLogger(__name__)

BATCH = 500
MAX_ATTEMPTS = 5  # then the rows are dropped and a catch-up poll reads what they named


def store_notification(
    session: Session, source_id: int, *, method: str, path_type: str | None, path_id: str | None, body: bytes
) -> WebhookNotification:
    row = WebhookNotification(
        source_id=source_id,
        method=method,
        path_type=path_type,
        path_id=path_id,
        body=body.decode("utf-8", "replace"),
    )
    session.add(row)
    session.flush()
    return row


@dataclass
class InboxOutcome:
    processed: int = 0
    resources: int = 0  # fetched by the push passes (carried, re-read and first-sight records)
    dead_letters: int = 0
    polls: int = 0
    failed: int = 0  # rows left for a later attempt


# -- one drain per source at a time ------------------------------------------------------------

_guard = threading.Lock()
_running: set[int] = set()
_again: set[int] = set()


def _claim(source_id: int) -> bool:
    """True when this caller drains; False when a drain is running (it is asked to go round again)."""
    with _guard:
        if source_id in _running:
            _again.add(source_id)
            return False
        _running.add(source_id)
        return True


def _release(source_id: int) -> bool:
    """Stop draining unless someone asked for another round meanwhile (checked and released at once)."""
    with _guard:
        if source_id in _again:
            _again.discard(source_id)
            return False
        _running.discard(source_id)
        return True


# -- clients are kept per source: SMART tokens are reused across notifications ---------------------

_clients: dict[int, tuple[str, FhirClient]] = {}
_clients_guard = threading.Lock()


def shared_client(source: Source) -> FhirClient:
    assert source.id is not None
    key = source.base_url + "|" + orjson.dumps(source.auth, option=orjson.OPT_SORT_KEYS).decode()
    with _clients_guard:
        found = _clients.get(source.id)
        if found is not None and found[0] == key:
            return found[1]
    client = client_for(source)  # outside the guard: SMART discovery may take a while
    with _clients_guard:
        previous = _clients.get(source.id)
        _clients[source.id] = (key, client)
    if previous is not None and previous[1] is not client:
        previous[1].close()
    return client


def process_inbox(
    source_id: int, *, engine: Engine, settings: Settings, client: FhirClient | None = None
) -> InboxOutcome | None:
    """Drain the source's inbox; None when another drain in this process is already at it."""
    if not _claim(source_id):
        return None
    outcome = InboxOutcome()
    try:
        while True:
            _drain(source_id, engine=engine, settings=settings, client=client, outcome=outcome)
            if _release(source_id):
                return outcome
    except BaseException:
        with _guard:
            _running.discard(source_id)
            _again.discard(source_id)
        raise


def _drain(
    source_id: int, *, engine: Engine, settings: Settings, client: FhirClient | None, outcome: InboxOutcome
) -> None:
    while True:
        with session_scope(engine) as session:
            source = session.get(Source, source_id)
            rows = list(
                session.exec(
                    select(WebhookNotification)
                    .where(WebhookNotification.source_id == source_id)
                    .order_by(col(WebhookNotification.id))
                    .limit(BATCH)
                )
            )
        if source is None or not rows:
            return
        if not _process(source, rows, engine=engine, settings=settings, client=client, outcome=outcome):
            return  # the EHR could not be read: the rows wait for the next drain
        if len(rows) < BATCH:
            return


def _parsed(session: Session, source: Source, rows: list[WebhookNotification]) -> list[Notification]:
    notes = []
    assert source.id is not None
    for row in rows:
        try:
            notes.append(parse_notification(row.body.encode(), path_type=row.path_type, path_id=row.path_id))
        except InvalidNotification as exc:  # the webhook checks first; kept in case the parser tightens
            record_dead_letter(session, source.id, row.body, f"webhook notification: {exc}")
    return notes


def _track(session: Session, source_id: int, notes: list[Notification]) -> None:
    """Counters, status and last sign of life of the subscriptions the notifications came from."""
    subs = list(
        session.exec(select(SourceSubscription).where(SourceSubscription.source_id == source_id).with_for_update())
    )
    if not subs:
        return
    now = utcnow()
    for note in notes:
        row = _subscription_for(subs, note)
        if row is not None:
            note_received(row, note, now)
            session.add(row)


def _subscription_for(subs: list[SourceSubscription], note: Notification) -> SourceSubscription | None:
    kind = SubscriptionKind.backport if note.backport else SubscriptionKind.classic
    same_kind = [s for s in subs if s.kind == kind]
    for candidates in (
        [s for s in same_kind if note.subscription and s.server_id == note.subscription],
        # A handshake can beat the POST response that tells us the server id: match the topic.
        [s for s in same_kind if note.topic and s.criteria == note.topic and s.server_id is None],
        [s for s in same_kind if not note.backport],
    ):
        if candidates:
            return candidates[0]
    return None


def _process(
    source: Source,
    rows: list[WebhookNotification],
    *,
    engine: Engine,
    settings: Settings,
    client: FhirClient | None,
    outcome: InboxOutcome,
) -> bool:
    assert source.id is not None
    with session_scope(engine) as session:
        notes = _parsed(session, source, rows)
        _track(session, source.id, notes)
    resources: list[dict[str, Any]] = []
    references: list[tuple[str, str]] = []
    poll = False
    for note in notes:
        resources += note.resources
        references += note.focus
        empty_event = note.type == NotificationType.event and not note.resources and not note.focus
        poll = poll or note.type == NotificationType.ping or empty_event
    error = None
    try:
        fhir = client or shared_client(source)
    except FhirError as exc:
        fhir, error = None, f"cannot connect to the EHR: {exc}"
    if fhir is not None and (resources or references):
        result = ingest_pushed(engine, source, fhir, settings=settings, resources=resources, references=references)
        outcome.resources += result.fetched
        outcome.dead_letters += result.dead_letters
        if result.status != SyncStatus.ok:
            error = result.error or "push ingest failed"
    if error is not None:
        return _failed(source, rows, error, engine=engine, settings=settings, client=fhir, outcome=outcome)
    if poll and fhir is not None:
        outcome.polls += 1
        catch_up(source.name, engine=engine, settings=settings, client=fhir)
    _forget(engine, rows)
    outcome.processed += len(rows)
    return True


def _failed(
    source: Source,
    rows: list[WebhookNotification],
    error: str,
    *,
    engine: Engine,
    settings: Settings,
    client: FhirClient | None,
    outcome: InboxOutcome,
) -> bool:
    """Count an attempt; rows out of attempts give way to a catch-up poll, which reads them anyway."""
    exhausted = []
    with session_scope(engine) as session:
        for row in rows:
            stored = session.get(WebhookNotification, row.id)
            if stored is None:
                continue
            stored.attempts += 1
            stored.error = error
            if stored.attempts >= MAX_ATTEMPTS:
                exhausted.append(stored)
    log.warning("source %s: %d notification(s) not ingested yet: %s", source.name, len(rows), error)
    if exhausted and client is not None:
        result = catch_up(source.name, engine=engine, settings=settings, client=client)
        outcome.polls += 1
        if result.status == SyncStatus.ok:
            _forget(engine, exhausted)
            outcome.processed += len(exhausted)
            outcome.failed += len(rows) - len(exhausted)
            return False
    outcome.failed += len(rows)
    return False


def _forget(engine: Engine, rows: list[WebhookNotification]) -> None:
    ids = [row.id for row in rows]
    with session_scope(engine) as session:
        for stored in session.exec(select(WebhookNotification).where(col(WebhookNotification.id).in_(ids))):
            session.delete(stored)
