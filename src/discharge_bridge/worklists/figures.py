"""Figures beside a list, kept a few seconds in this process: the worklist filters' counts and the
bed board's totals are aggregates over every matching admission (100,000 at city scale: seconds on
SQLite), while the rows of a page are one indexed query. With ``list_figures_max_age_seconds`` set,
readers asking the same question of the same database within that many seconds share one answer
(each web process keeps its own, at most ``MAX_ENTRIES``); the rows themselves are always live.
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


def kept(key: Hashable, max_age: float, compute: Callable[[], T]) -> T:
    """``compute()``, or its answer for ``key`` if one was computed less than ``max_age`` seconds ago."""
    if max_age <= 0:
        return compute()
    now = time.monotonic()
    with _lock:
        hit = _kept.get(key)
        if hit is not None and now - hit[0] < max_age:
            _kept.move_to_end(key)
            return hit[1]  # type: ignore[return-value]
    value = compute()
    with _lock:
        _kept[key] = (now, value)
        _kept.move_to_end(key)
        while len(_kept) > MAX_ENTRIES:
            _kept.popitem(last=False)
    return value
