"""Noticing a broken push channel and repairing it: re-activate, then poll from the cursor.

Checked on a timer (`check_all_subscriptions`, the scheduled job) and per subscription by id:

- the EHR put the Subscription in `error` or `off` (servers do after a few failed deliveries and
  then send nothing more), or no longer has it;
- a Backport heartbeat did not come within two periods;
- a gap in the Backport event counter stayed open past its grace period.

Recovery re-activates first and polls second, so a change made in between reaches us one way or
the other. What happened is recorded on the subscription row (shown with the source's status).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from discharge_bridge.config import Settings, get_settings
from discharge_bridge.db import get_engine, session_scope, utcnow
from discharge_bridge.fhir import FhirClient, FhirError
from discharge_bridge.sources.models import Source, SyncStatus
from discharge_bridge.subscriptions.counters import GAP_GRACE_SECONDS, gap_due, heartbeat_overdue
from discharge_bridge.subscriptions.inbox import process_inbox, shared_client
from discharge_bridge.subscriptions.models import SourceSubscription, SubscriptionStatus
from discharge_bridge.subscriptions.push import catch_up
from discharge_bridge.subscriptions.service import ServerState, SubscriptionError, reactivate, server_state

log = logging.getLogger(__name__)

CHECK_INTERVAL_SECONDS = 30


class RecoveryReason(StrEnum):
    server_error = "server_error"
    server_missing = "server_missing"
    heartbeat_missed = "heartbeat_missed"
    event_gap = "event_gap"


REASON_TEXT = {
    RecoveryReason.server_error: "the EHR stopped the Subscription (status error/off)",
    RecoveryReason.server_missing: "the Subscription is gone from the EHR",
    RecoveryReason.heartbeat_missed: "no heartbeat within two periods",
    RecoveryReason.event_gap: "events missing from the event counter",
}


@dataclass
class CheckOutcome:
    subscription_id: int
    reasons: list[RecoveryReason] = field(default_factory=list)
    recovered: bool = False
    server_status: str | None = None
    error: str | None = None


def check_subscription(
    subscription_id: int,
    *,
    engine: Engine,
    settings: Settings | None = None,
    client: FhirClient | None = None,
    now: datetime | None = None,
    gap_grace_seconds: float = GAP_GRACE_SECONDS,
) -> CheckOutcome:
    """Check one subscription and recover it when needed; never raises for EHR trouble."""
    settings = settings or get_settings()
    outcome = CheckOutcome(subscription_id)
    with session_scope(engine) as session:
        row = session.get(SourceSubscription, subscription_id)
        source = session.get(Source, row.source_id) if row is not None else None
    if row is None or source is None or source.id is None:
        outcome.error = "no such subscription"
        return outcome
    try:
        fhir = client or shared_client(source)
    except FhirError as exc:
        outcome.error = f"cannot connect to the EHR: {exc}"
        _record(engine, subscription_id, outcome, now or utcnow())
        return outcome
    process_inbox(source.id, engine=engine, settings=settings, client=fhir)  # leftovers of a crash
    with session_scope(engine) as session:
        row = session.get(SourceSubscription, subscription_id)
    if row is None:
        outcome.error = "no such subscription"
        return outcome
    now = now or utcnow()
    state: ServerState | None = None
    try:
        state = server_state(fhir, row)
    except FhirError as exc:
        outcome.error = f"could not read the Subscription on the EHR: {exc}"
    if state is not None:
        outcome.server_status = state.status
        if state.status is None:
            outcome.reasons.append(RecoveryReason.server_missing)
        elif state.status in (SubscriptionStatus.error, SubscriptionStatus.off):
            outcome.reasons.append(RecoveryReason.server_error)
    if heartbeat_overdue(row, now):
        outcome.reasons.append(RecoveryReason.heartbeat_missed)
    if gap_due(row, now, gap_grace_seconds):
        outcome.reasons.append(RecoveryReason.event_gap)
    if outcome.reasons:
        _recover(row, source, fhir, outcome, state, engine=engine, settings=settings, now=now)
    else:
        _record(engine, subscription_id, outcome, now)
    return outcome


def _recover(
    row: SourceSubscription,
    source: Source,
    fhir: FhirClient,
    outcome: CheckOutcome,
    state: ServerState | None,
    *,
    engine: Engine,
    settings: Settings,
    now: datetime,
) -> None:
    errors = []
    server_id = row.server_id
    try:
        server_id = reactivate(fhir, row)
        reactivated = True
    except (FhirError, SubscriptionError) as exc:
        errors.append(f"re-activation failed: {exc}")
        reactivated = False
    result = catch_up(source.name, engine=engine, settings=settings, client=fhir)
    if result.status != SyncStatus.ok:
        errors.append(f"catch-up poll failed: {result.error}")
    outcome.recovered = reactivated and result.status == SyncStatus.ok
    outcome.error = "; ".join(errors) or None
    why = ", ".join(REASON_TEXT[r] for r in outcome.reasons)
    with session_scope(engine) as session:
        stored = session.get(SourceSubscription, row.id, with_for_update=True)
        stored_source = session.get(Source, source.id)
        if stored is None or stored_source is None:
            return
        stored.server_id = server_id
        stored.recoveries += 1
        stored.last_recovery_at = stored.last_checked_at = now
        stored.last_recovery_reason = why[:200]
        stored.last_error = outcome.error
        if reactivated:
            stored.status = SubscriptionStatus.requested
            stored.last_notification_at = now  # the heartbeat clock starts again with the handshake
        if result.status == SyncStatus.ok:
            # The poll read everything up to now: events counted so far are covered.
            counted = state.events_since if state is not None and state.events_since is not None else 0
            stored.last_event_number = max(stored.last_event_number, counted)
            stored.missing_events = []
            stored.gap_noticed_at = None
        if outcome.error:
            stored_source.last_error = f"push: {why}; {outcome.error}"
            stored_source.last_error_at = now
    log.warning(
        "source %s: push recovered=%s (%s); catch-up fetched %d", source.name, outcome.recovered, why, result.fetched
    )


def _record(engine: Engine, subscription_id: int, outcome: CheckOutcome, now: datetime) -> None:
    with session_scope(engine) as session:
        stored = session.get(SourceSubscription, subscription_id)
        if stored is None:
            return
        stored.last_checked_at = now
        if outcome.server_status in {s.value for s in SubscriptionStatus}:
            stored.status = SubscriptionStatus(outcome.server_status)
        stored.last_error = outcome.error


def check_all_subscriptions(engine: Engine | None = None, settings: Settings | None = None) -> list[CheckOutcome]:
    """The scheduled job (every CHECK_INTERVAL_SECONDS): check every subscription, one failing
    never stopping the others."""
    settings = settings or get_settings()
    engine = engine or get_engine(settings)
    with session_scope(engine) as session:
        ids = [i for i in session.exec(select(SourceSubscription.id).order_by(col(SourceSubscription.id))) if i]
    outcomes = []
    for subscription_id in ids:
        try:
            outcomes.append(check_subscription(subscription_id, engine=engine, settings=settings))
        except Exception as exc:  # a broken row or database hiccup: the next subscription still runs
            log.error("subscription %d: check failed (%s)", subscription_id, type(exc).__name__)
    return outcomes
