"""Figures beside a list, kept a few seconds in this process: the worklist filters' counts and the
bed board's totals are aggregates over every matching admission (100,000 at city scale: seconds on
SQLite), and the board's order is a sort of all of them (its keys span the case and the stay, so no
index walks it), while the rows of a page are one indexed query. With ``list_figures_max_age_seconds``
set, readers asking the same question of the same database within that many seconds share one answer
(each web process keeps its own, at most ``MAX_ENTRIES``); the rows themselves are always read live.
0 (the default) computes them on every request.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")
MAX_ENTRIES = 256
_kept: OrderedDict[Hashable, tuple[float, object]] = OrderedDict()
_lock = threading.Lock()
_computing: dict[Hashable, threading.Lock] = {}  # one per key: who computes it now


def kept(key: Hashable, max_age: float, compute: Callable[[], T]) -> T:
    """``compute()``, or its answer for ``key`` if one was computed less than ``max_age`` seconds ago.

    One thread computes a key at a time: the others wait for its answer when there is none yet, or
    keep the previous answer while it is computed anew (50 readers arriving together would otherwise
    run the same aggregate 50 times at once and all wait for the last)."""
    if max_age <= 0:
        return compute()
    with _lock:
        hit = _kept.get(key)
        busy = _computing.setdefault(key, threading.Lock())
    if hit is not None and time.monotonic() - hit[0] < max_age:
        return hit[1]  # type: ignore[return-value]
    if hit is not None and not busy.acquire(blocking=False):
        return hit[1]  # type: ignore[return-value]  # being computed anew by another thread
    if hit is None:
        busy.acquire()
    try:
        with _lock:
            again = _kept.get(key)
        if again is not None and time.monotonic() - again[0] < max_age:
            return again[1]  # type: ignore[return-value]  # computed while this thread waited
        started = time.monotonic()
        value = compute()
        with _lock:
            _kept[key] = (started, value)
            _kept.move_to_end(key)
            while len(_kept) > MAX_ENTRIES:
                old, _ = _kept.popitem(last=False)
                _computing.pop(old, None)
        return value
    finally:
        busy.release()
