"""One write-back pass for a source: reconcile its outbox, then send what is due.

Run after each poll pass (scheduling/jobs.py ``poll_job``, which both the scheduler and the
``discharge-bridge worker`` processes run, under the source's lock), so a source is written back by
the one process that polls it. The HTTP calls run outside any transaction but each item's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from discharge_bridge.config import Settings, get_settings
from discharge_bridge.db import get_engine, session_scope, utcnow
from discharge_bridge.ehr.writeback.outbox import ReconcileResult, WritebackConfig, reconcile
from discharge_bridge.ehr.writeback.send import SendResult, send_due
from discharge_bridge.fhir import FhirClient, RetryPolicy
from discharge_bridge.sources.service import client_for, get_source

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
    """None when the source has write-back off."""
    settings = settings or get_settings()
    engine = engine or get_engine(settings)
    system = settings.writeback_identifier_system
    with session_scope(engine) as session:
        source = get_source(session, source_name)
        if not WritebackConfig.of(source).enabled:
            return None
        reconciled = reconcile(session, source, now=utcnow(), system=system)
    http = client or client_for(source, retry=RETRY)
    try:
        sent = send_due(engine, source, http, now=utcnow(), limit=limit, system=system)
    finally:
        if client is None:
            http.close()
    return WritebackPass(reconciled, sent)
