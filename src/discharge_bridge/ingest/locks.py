"""One pass at a time per source in this process: a poll, a push catch-up and a re-score never overlap.

Across processes the scheduler's source lease does the same (scheduling.leader).
"""

from __future__ import annotations

import threading

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def source_lock(name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(name, threading.Lock())
