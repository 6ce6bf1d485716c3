"""Sign-in throttling in the service: growing waits, then a lock; the same for a name that does not exist."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy.engine import Engine

from discharge_bridge.db import session_scope
from discharge_bridge.users import service
from discharge_bridge.users.throttle import (
    ThrottleKind,
    ThrottlePolicy,
    active_locks,
    blocked_for,
    sign_in,
    unlock,
)
from tests.support.factories import make_source, make_user

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
POLICY = ThrottlePolicy()  # the settings' defaults: 3 free, 2 s doubling to 60 s, lock at 10 for 15 min


@dataclass
class Counting:
    """The password hasher, counting the checks it makes (each one costs an argon2 verification)."""

    hasher: object
    verified: int = 0

    def verify(self, stored: str, password: str) -> bool:
        self.verified += 1
        return self.hasher.verify(stored, password)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.hasher, name)


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> Counting:
    counting = Counting(service._hasher)
    monkeypatch.setattr(service, "_hasher", counting)
    return counting


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def anna(engine: Engine) -> None:
    with session_scope(engine) as session:
        make_source(session)
        make_user(session, "anna", password=PASSWORD)


def attempt(engine: Engine, username: str, password: str = "wrong password!", address: str | None = "10.0.0.1"):
    with session_scope(engine) as session:
        return sign_in(session, username, password, address=address, policy=POLICY)


def guess_until_locked(
    engine: Engine, clock: time_machine.Coordinates, hasher: Counting, username: str, address: str
) -> list[tuple[bool, int | None, int]]:
    """Ten wrong passwords, each tried as soon as allowed (the clock left at the last one, now locked):
    (signed in, retry after, checks made) each."""
    seen = []
    for n in range(10):
        if n:
            clock.shift(seen[-1][1] or 1)
        before = hasher.verified
        result = attempt(engine, username, address=address)
        seen.append((result.user is not None, result.retry_after, hasher.verified - before))
    return seen


WAITS = [None, None, None, 2, 4, 8, 16, 32, 60, 15 * 60]  # 3 free, doubling, capped at 60 s, then the lock


def test_failures_wait_longer_each_time_then_lock_and_a_stranger_is_answered_the_same(
    engine: Engine, anna: None, clock: time_machine.Coordinates, hasher: Counting
) -> None:
    known = guess_until_locked(engine, clock, hasher, "anna", "10.0.0.1")
    unknown = guess_until_locked(engine, clock, hasher, "nobody-here", "10.0.0.2")
    assert known == [(False, wait, 1) for wait in WAITS]
    assert unknown == known  # same waits, same work (one password check per counted guess)
    with session_scope(engine) as session:
        locks = {(lock.kind, lock.subject, lock.failures) for lock in active_locks(session)}
    assert locks == {(ThrottleKind.account, "anna", 10), (ThrottleKind.account, "nobody-here", 10)}


def test_a_blocked_attempt_is_refused_without_checking_the_password_even_the_right_one(
    engine: Engine, anna: None, clock: time_machine.Coordinates, hasher: Counting
) -> None:
    for _ in range(4):
        attempt(engine, "anna")
    before = hasher.verified
    refused = attempt(engine, "anna", PASSWORD)
    assert (refused.user, refused.retry_after, hasher.verified - before) == (None, 2, 0)
    clock.shift(2)
    assert attempt(engine, "anna", PASSWORD).user is not None  # the wait is over
    for _ in range(3):  # the success cleared the account's count: three free failures again
        assert attempt(engine, "anna", address="10.9.9.9").retry_after is None


def test_a_lock_holds_against_the_right_password_from_anywhere_until_an_admin_lifts_it(
    engine: Engine, anna: None, clock: time_machine.Coordinates, hasher: Counting
) -> None:
    guess_until_locked(engine, clock, hasher, "anna", "10.0.0.1")
    clock.shift(60)
    elsewhere = attempt(engine, "anna", PASSWORD, address="192.0.2.7")
    assert elsewhere.user is None and elsewhere.retry_after is not None and elsewhere.retry_after > 600
    with session_scope(engine) as session:
        lifted = unlock(session, ThrottleKind.account, "ANNA")  # names are matched in any case
    assert lifted is not None and lifted.failures == 10
    assert attempt(engine, "anna", PASSWORD, address="192.0.2.7").user is not None
    with session_scope(engine) as session:
        assert unlock(session, ThrottleKind.account, "anna") is None  # nothing left to lift
        assert active_locks(session) == []


def test_failures_are_forgotten_after_a_quiet_while_but_not_right_after_a_lock(
    engine: Engine, anna: None, clock: time_machine.Coordinates, hasher: Counting
) -> None:
    for _ in range(3):
        attempt(engine, "anna")
    clock.shift(timedelta(minutes=16))  # more than signin_reset_minutes after the last failure
    assert attempt(engine, "anna").retry_after is None  # counted from one again
    guess_until_locked(engine, clock, hasher, "anna", "10.0.0.1")
    clock.shift(timedelta(minutes=16))  # the lock has ended, but the quiet time after it has not
    assert attempt(engine, "anna").retry_after == 15 * 60  # one more guess locks again at once
    clock.shift(timedelta(minutes=31))
    assert attempt(engine, "anna").retry_after is None


def test_one_address_guessing_many_names_is_throttled_and_locked_by_address(
    engine: Engine, anna: None, clock: time_machine.Coordinates, hasher: Counting
) -> None:
    policy = ThrottlePolicy(address_free_failures=5, address_lock_failures=8)
    waits = []
    for n in range(8):
        if waits:
            clock.shift(waits[-1] or 1)
        with session_scope(engine) as session:
            result = sign_in(session, f"user{n}", "wrong password!", address="203.0.113.5", policy=policy)
        waits.append(result.retry_after)
    assert waits == [None, None, None, None, None, 2, 4, 15 * 60]  # each name failed once; the address 8 times
    with session_scope(engine) as session:
        assert blocked_for(session, "anna", "203.0.113.5") is not None  # even a name it never tried
        assert blocked_for(session, "anna", "198.51.100.1") is None  # anna from elsewhere is not
        assert [(lock.kind, lock.subject) for lock in active_locks(session)] == [(ThrottleKind.address, "203.0.113.5")]
    assert attempt(engine, "anna", PASSWORD, address="198.51.100.1").user is not None


def test_a_lock_is_reported_once_when_it_is_set(
    engine: Engine, anna: None, clock: time_machine.Coordinates, hasher: Counting
) -> None:
    reported = []
    for _ in range(12):
        result = attempt(engine, "anna")
        reported.append([(lock.kind, lock.subject, lock.failures) for lock in result.new_locks])
        clock.shift(1 if result.retry_after is None or result.retry_after > 60 else result.retry_after)
    assert reported[9] == [(ThrottleKind.account, "anna", 10)]
    assert sum(len(r) for r in reported) == 1  # attempts during the lock set no new one
