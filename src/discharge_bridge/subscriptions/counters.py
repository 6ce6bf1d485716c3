"""Keeping count of a Backport Subscription's events, to notice the ones that never came.

Every Backport notification says how many events the EHR has raised since the Subscription
started (`events-since-subscription-start`), and each event carries its number. A number we skip
is an event we did not receive. Servers deliver from several threads, so a "missing" event often
arrives a moment later: a gap is acted on only once it has stayed open for a grace period.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from discharge_bridge.subscriptions.models import SourceSubscription, SubscriptionKind, SubscriptionStatus
from discharge_bridge.subscriptions.notifications import Notification, NotificationType

GAP_GRACE_SECONDS = 15.0
HEARTBEAT_PERIODS = 2  # heartbeats missed in a row before the channel counts as broken
MAX_MISSING = 500  # numbers kept; any gap means a catch-up poll, which covers them all


def note_received(row: SourceSubscription, note: Notification, now: datetime) -> None:
    """Update the row's sign of life, status and event counter from one notification."""
    row.last_notification_at = now
    if note.type == NotificationType.handshake:
        row.status = SubscriptionStatus.active  # we answered 2xx: the server activates it now
    elif note.status in _STATUSES:
        row.status = SubscriptionStatus(note.status)
    if not note.backport:
        return
    last, missing = row.last_event_number, set(row.missing_events)
    if note.type == NotificationType.handshake and note.events_since is not None and note.events_since < last:
        last, missing = note.events_since, set()  # the server started counting again
    for number in sorted(set(note.event_numbers)):
        if number > last:
            missing.update(range(last + 1, min(number, last + 1 + MAX_MISSING)))
            last = number
        else:
            missing.discard(number)  # late (out of order) or a duplicate
    if note.events_since is not None and note.events_since > last:
        missing.update(range(last + 1, min(note.events_since + 1, last + 1 + MAX_MISSING)))
        last = note.events_since
    row.last_event_number = last
    row.missing_events = sorted(missing)[:MAX_MISSING]
    if not row.missing_events:
        row.gap_noticed_at = None
    elif row.gap_noticed_at is None:
        row.gap_noticed_at = now


def gap_due(row: SourceSubscription, now: datetime, grace_seconds: float = GAP_GRACE_SECONDS) -> bool:
    """Events are missing and did not turn up within the grace period."""
    return bool(
        row.missing_events
        and row.gap_noticed_at is not None
        and now - row.gap_noticed_at >= timedelta(seconds=grace_seconds)
    )


def heartbeat_overdue(row: SourceSubscription, now: datetime) -> bool:
    """A Backport Subscription with a heartbeat period has been silent for too long."""
    if row.kind != SubscriptionKind.backport or not row.heartbeat_seconds:
        return False
    if row.status != SubscriptionStatus.active:
        return False  # not yet handshaken (or already in error: the server check sees that)
    last = row.last_notification_at or row.created_at
    return now - last > timedelta(seconds=row.heartbeat_seconds * HEARTBEAT_PERIODS)


_STATUSES = frozenset(s.value for s in SubscriptionStatus)
