"""Figures beside a list, kept a few seconds in this process: the worklist filters' counts and the
bed board's totals are aggregates over every matching admission (100,000 at city scale: seconds on
SQLite), and the board's order is a sort of all of them (its keys span the case and the stay, so no
index walks it), while the rows of a page are one indexed query. With ``list_figures_max_age_seconds``
set, readers asking the same question of the same database share one answer (each web process keeps
its own, at most ``MAX_ENTRIES``); the rows themselves are always read live. 0 (the default) computes
them on every request.

A reader gets an answer at most max_age old plus the time one computation takes: an older answer is
returned at once while one background thread computes the new one with a session of its own. Only the
first reader of a question waits, for its first answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session

T = TypeVar("T")
MAX_ENTRIES = 256
# Background refreshes at once per process: each holds a pooled connection (10 + 20 on PostgreSQL) and
# a core's worth of aggregate; past this many, an old answer is served until one of them is done.
MAX_REFRESHING = 4
_kept: OrderedDict[Hashable, tuple[float, object]] = OrderedDict()
_lock = threading.Lock()
_computing: dict[Hashable, threading.Lock] = {}  # one per key: who computes its first answer
_refreshing: set[Hashable] = set()  # keys being computed anew in the background
_threads: set[threading.Thread] = set()  # the background refreshes running now
log = logging.getLogger(__name__)


def kept(key: Hashable, max_age: float, session: Session, compute: Callable[[Session], T]) -> T:
    """``compute(session)``, or the answer kept for ``key``: a reader gets an answer at most
    ``max_age`` seconds old plus the time one computation takes, and never waits once one exists.

    The first answer is computed in the caller with its ``session``, by one thread at a time (50
    readers arriving together would otherwise run the same aggregate 50 times at once and all wait
    for the last). An older answer is returned at once, and one daemon thread computes the new one as
    ``compute(own_session)`` on the same engine (at most ``MAX_REFRESHING`` keys at once, others wait
    for a later reader); if that fails the old answer stays (logged) and the next reader to find it
    old tries again. ``max_age`` <= 0 computes on every call, in the caller."""
    if max_age <= 0:
        return compute(session)
    with _lock:
        hit = _kept.get(key)
        if hit is not None:
            if time.monotonic() - hit[0] >= max_age and key not in _refreshing and len(_refreshing) < MAX_REFRESHING:
                _refresh_in_background(key, session.get_bind().engine, compute)
            return hit[1]  # type: ignore[return-value]
        busy = _computing.setdefault(key, threading.Lock())
    with busy:
        with _lock:
            again = _kept.get(key)
        if again is not None:
            return again[1]  # type: ignore[return-value]  # computed while this thread waited
        started = time.monotonic()
        value = compute(session)
        _keep(key, started, value)
        return value


def settle(timeout: float = 10) -> None:
    """Wait for the background refreshes running now (for tests: none outlives a test's database)."""
    with _lock:
        running = list(_threads)
    for thread in running:
        thread.join(timeout)


def _keep(key: Hashable, started: float, value: object) -> None:
    with _lock:
        _kept[key] = (started, value)
        _kept.move_to_end(key)
        while len(_kept) > MAX_ENTRIES:
            old, _ = _kept.popitem(last=False)
            _computing.pop(old, None)


def _refresh_in_background(key: Hashable, engine: Engine, compute: Callable[[Session], object]) -> None:
    """Start the one thread computing ``key`` anew (the caller holds ``_lock``)."""
    thread = threading.Thread(target=_refresh, args=(key, engine, compute), name="kept-figures", daemon=True)
    _refreshing.add(key)
    _threads.add(thread)
    thread.start()


def _refresh(key: Hashable, engine: Engine, compute: Callable[[Session], object]) -> None:
    try:
        started = time.monotonic()
        with Session(engine) as own:
            value = compute(own)
        _keep(key, started, value)
    except Exception as exc:  # the old answer stays; the next reader to find it old tries again
        name = key[0] if isinstance(key, tuple) and key else type(key).__name__
        log.warning(
            "Kept figures %r: computing them anew failed (%s); the previous answer stays",
            name,
            type(exc).__name__,
            exc_info=False,
        )
    finally:
        with _lock:
            _refreshing.discard(key)
            _threads.discard(threading.current_thread())
