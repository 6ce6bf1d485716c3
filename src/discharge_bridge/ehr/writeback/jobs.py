"""One write-back pass for a source: reconcile its outbox, read back the Tasks the EHR changed, then
send what is due.

Run after each poll pass (scheduling/jobs.py ``poll_job``, which both the scheduler and the
``discharge-bridge worker`` processes run, under the source's lock), so a source is written back by
the one process that polls it. The HTTP calls run outside any transaction but each item's own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from discharge_bridge.config import Settings, get_settings
from discharge_bridge.db import get_engine, session_scope, utcnow
from discharge_bridge.ehr.writeback.outbox import ReconcileResult, WritebackConfig, reconcile
from discharge_bridge.ehr.writeback.readback import read_back_tasks
from discharge_bridge.ehr.writeback.send import SendResult, send_due
from discharge_bridge.fhir import FhirClient, FhirError, RetryPolicy
from discharge_bridge.sources.service import client_for, get_source

log = logging.getLogger(__name__)
SEND_LIMIT = 500
# One attempt per request: the outbox retries with its own backoff, so an EHR outage never holds a
# pass (nor the poll that runs it) in the client's sleeps.
RETRY = RetryPolicy(max_attempts=1)


@dataclass
class WritebackPass:
    reconciled: ReconcileResult
    sent: SendResult


def writeback_pass(
    source_name: str,
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    client: FhirClient | None = None,
    limit: int = SEND_LIMIT,
) -> WritebackPass | None:
    """None when the source has write-back off. The EHR's Task changes are read first, so the
    reconcile after them already wants the statuses they brought (nothing stale is sent over them)."""
    settings = settings or get_settings()
    engine = engine or get_engine(settings)
    system = settings.writeback_identifier_system
    with session_scope(engine) as session:
        source = get_source(session, source_name)
    config = WritebackConfig.of(source)
    if not config.enabled:
        return None
    http = client or client_for(source, retry=RETRY)
    try:
        applied = 0
        if "Task" in config.resources:
            try:
                applied = read_back_tasks(engine, source, http, system=system)
            except FhirError as exc:  # the EHR cannot be searched now: sending goes on, reading waits
                log.warning("write-back %s: Tasks not read back: %s", source.name, type(exc).__name__)
        with session_scope(engine) as session:
            reconciled = reconcile(session, get_source(session, source_name), now=utcnow(), system=system)
        sent = send_due(engine, source, http, now=utcnow(), limit=limit, system=system)
        sent.applied += applied
    finally:
        if client is None:
            http.close()
    return WritebackPass(reconciled, sent)
