"""Sign-in throttling: growing waits, then a lock, after failed sign-ins in a row.

Failures are counted per account name as typed (whether such a user exists or not, so a name
that does not exist is answered exactly as one that does) and per client address. While a key is
blocked, an attempt is refused with the seconds to wait (the page answers 429 with Retry-After)
without checking the password: nobody sleeps, and a blocked guess learns nothing. The counters
are rows in the database, so every replica sees the same ones.

The rules, per key, with the settings' numbers (account / address):
- the first ``free`` failures (3 / 20) are answered at once;
- each further one blocks the key for ``delay`` seconds (2), doubling each time, at most ``max_delay`` (60);
- the ``lock``-th failure (10 / 100) locks the key for ``lock_minutes`` (15): an admin may lift it;
- a key with no failure for ``reset_minutes`` (15) after its last failure or the end of its lock
  starts again from nothing; a successful sign-in clears its account's count (not its address's:
  one account of the attacker's own must not clear the count of an address guessing others).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlmodel import Session, col, delete, select

from discharge_bridge.config import Settings
from discharge_bridge.db import insert_for, utcnow
from discharge_bridge.users.models import SigninThrottle, User
from discharge_bridge.users.service import authenticate

_MAX_DOUBLINGS = 20  # 2**20 times the first wait is far beyond any max_delay


class ThrottleKind(StrEnum):
    account = "account"
    address = "address"


@dataclass(frozen=True)
class ThrottlePolicy:
    free_failures: int = 3
    lock_failures: int = 10
    address_free_failures: int = 20
    address_lock_failures: int = 100
    delay_seconds: int = 2
    max_delay_seconds: int = 60
    lock_minutes: int = 15
    reset_minutes: int = 15

    @classmethod
    def from_settings(cls, settings: Settings) -> ThrottlePolicy:
        return cls(
            free_failures=settings.signin_free_failures,
            lock_failures=settings.signin_lock_failures,
            address_free_failures=settings.signin_address_free_failures,
            address_lock_failures=settings.signin_address_lock_failures,
            delay_seconds=settings.signin_delay_seconds,
            max_delay_seconds=settings.signin_max_delay_seconds,
            lock_minutes=settings.signin_lock_minutes,
            reset_minutes=settings.signin_reset_minutes,
        )

    def limits(self, kind: ThrottleKind) -> tuple[int, int]:
        """(failures answered at once, failures that lock) for this kind of key."""
        if kind == ThrottleKind.account:
            return self.free_failures, self.lock_failures
        return self.address_free_failures, self.address_lock_failures

    def block_after(self, kind: ThrottleKind, failures: int) -> tuple[timedelta | None, bool]:
        """How long a key is blocked after its ``failures``-th failure in a row, and whether that is a lock."""
        free, lock_at = self.limits(kind)
        if failures >= lock_at:
            return timedelta(minutes=self.lock_minutes), True
        if failures <= free:
            return None, False
        doublings = min(failures - free - 1, _MAX_DOUBLINGS)
        return timedelta(seconds=min(self.delay_seconds * 2**doublings, self.max_delay_seconds)), False


@dataclass(frozen=True)
class Lock:
    kind: ThrottleKind
    subject: str
    failures: int
    until: datetime


@dataclass(frozen=True)
class SigninResult:
    """``user`` when signed in; else ``retry_after`` (seconds) when the caller must wait before trying again."""

    user: User | None
    retry_after: int | None = None
    new_locks: tuple[Lock, ...] = ()  # the locks this failure set, for the audit trail


def account_subject(username: str) -> str:
    return username.strip().casefold()[:200]


def _keys(username: str, address: str | None) -> list[tuple[ThrottleKind, str]]:
    keys = [(ThrottleKind.account, account_subject(username))]
    if address:
        keys.append((ThrottleKind.address, address[:200]))
    return keys


def _row(session: Session, kind: ThrottleKind, subject: str, *, lock: bool = False) -> SigninThrottle | None:
    query = select(SigninThrottle).where(SigninThrottle.kind == kind.value, SigninThrottle.subject == subject)
    if lock:
        query = query.with_for_update()
    return session.exec(query.execution_options(populate_existing=True)).first()


def _seconds(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))


def blocked_for(session: Session, username: str, address: str | None, *, now: datetime | None = None) -> int | None:
    """Seconds until an attempt for this name from this address is checked again; None: it may be tried now."""
    now = now or utcnow()
    waits = [
        row.blocked_until - now
        for kind, subject in _keys(username, address)
        if (row := _row(session, kind, subject)) is not None and row.blocked_until is not None
        if row.blocked_until > now
    ]
    return _seconds(max(waits)) if waits else None


def sign_in(
    session: Session,
    username: str,
    password: str,
    *,
    address: str | None,
    policy: ThrottlePolicy,
    now: datetime | None = None,
) -> SigninResult:
    """Check the password unless this name or address must wait; count a failure, clear on success.

    The work and the answer depend only on the counters and the password check, never on whether
    the name exists: ``authenticate`` verifies against a dummy hash for an unknown name.
    """
    now = now or utcnow()
    wait = blocked_for(session, username, address, now=now)
    if wait is not None:
        return SigninResult(None, wait)
    user = authenticate(session, username, password)
    if user is not None:
        clear(session, ThrottleKind.account, account_subject(username))
        return SigninResult(user)
    session.exec(delete(SigninThrottle).where(col(SigninThrottle.forget_at) <= now))  # type: ignore[call-overload]
    blocks: list[timedelta] = []
    locks: list[Lock] = []
    for kind, subject in _keys(username, address):
        row = _count_failure(session, kind, subject, policy, now)
        if row.blocked_until is not None and row.blocked_until > now:
            blocks.append(row.blocked_until - now)
            if row.locked:
                locks.append(Lock(kind, subject, row.failures, row.blocked_until))
    session.flush()
    return SigninResult(None, _seconds(max(blocks)) if blocks else None, tuple(locks))


def _count_failure(
    session: Session, kind: ThrottleKind, subject: str, policy: ThrottlePolicy, now: datetime
) -> SigninThrottle:
    # Insert-if-missing, then read the row FOR UPDATE: two replicas counting the same key at once
    # neither collide on the unique index nor lose a failure (PostgreSQL locks the row; SQLite has
    # one writer at a time, taken by the INSERT).
    table = SigninThrottle.__table__  # type: ignore[attr-defined]
    insert = insert_for(session, table).values(
        kind=kind.value, subject=subject, failures=0, last_failed_at=now, locked=False, forget_at=now
    )
    session.execute(insert.on_conflict_do_nothing(index_elements=["kind", "subject"]))
    row = _row(session, kind, subject, lock=True)
    assert row is not None
    if row.failures and row.forget_at <= now:
        row.failures, row.locked, row.blocked_until = 0, False, None
    row.failures += 1
    row.last_failed_at = now
    block, locked = policy.block_after(kind, row.failures)
    row.blocked_until = now + block if block is not None else None
    row.locked = locked
    row.forget_at = (row.blocked_until or now) + timedelta(minutes=policy.reset_minutes)
    session.add(row)
    return row


def clear(session: Session, kind: ThrottleKind, subject: str) -> bool:
    """Forget the failures of this key (a successful sign-in, or an admin lifting a lock); True if it had any."""
    result = session.exec(
        delete(SigninThrottle).where(  # type: ignore[call-overload]
            col(SigninThrottle.kind) == kind.value, col(SigninThrottle.subject) == subject
        )
    )
    session.flush()
    return bool(result.rowcount)


def unlock(session: Session, kind: ThrottleKind, subject: str, *, now: datetime | None = None) -> Lock | None:
    """Lift the lock of an account (its name, any case) or an address; the lock lifted, or None if there was none."""
    now = now or utcnow()
    subject = account_subject(subject) if kind == ThrottleKind.account else subject.strip()
    row = _row(session, kind, subject)
    if row is None or not row.locked or row.blocked_until is None or row.blocked_until <= now:
        return None
    lock = Lock(kind, subject, row.failures, row.blocked_until)
    clear(session, kind, subject)
    return lock


def active_locks(session: Session, *, now: datetime | None = None) -> list[Lock]:
    """Accounts and addresses locked now, the longest-lasting first."""
    now = now or utcnow()
    rows = session.exec(
        select(SigninThrottle)
        .where(col(SigninThrottle.locked).is_(True), col(SigninThrottle.blocked_until) > now)
        .order_by(col(SigninThrottle.blocked_until).desc(), col(SigninThrottle.id))
    )
    return [
        Lock(ThrottleKind(r.kind), r.subject, r.failures, r.blocked_until) for r in rows if r.blocked_until is not None
    ]
