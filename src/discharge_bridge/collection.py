"""The cyclic garbage collector paced for bulk work, one setting for all the threads of a process.

The ingest pass and the assessment stage allocate hundreds of thousands of short-lived dicts and
lists without cycles; at CPython's default thresholds the collector walked them again and again
(a fifth of an ingest pass's CPU time, a tenth of the stage's). Both change the collector's
settings, which are the process's, and a worker runs a pass and a drain in threads at once. When
each caller saved and restored the settings itself, two overlapping callers restored each other's
values: the raised threshold outlived them both. Here the first caller in changes a setting and
the last one out puts it back.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["YOUNG_THRESHOLD", "fewer_young_collections", "paused"]

YOUNG_THRESHOLD = 50_000  # allocations (minus frees) between young collections; CPython's default is 700

_lock = threading.Lock()
_raised = 0  # callers inside fewer_young_collections
_saved: tuple[int, int, int] | None = None
_pausing = 0  # callers inside paused() that turned collection off or found it off by us
_paused_by_us = False


@contextmanager
def fewer_young_collections() -> Iterator[None]:
    """Young collections every ``YOUNG_THRESHOLD`` net allocations instead of 700.

    The price: the count is allocations *minus* frees, so while short-lived dicts come and go it
    hardly moves and cyclic garbage piles up; a caller making much of it collects it itself (the
    ingest writer does, by bytes of responses)."""
    global _raised, _saved
    with _lock:
        if _raised == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(YOUNG_THRESHOLD, _saved[1], _saved[2])
        _raised += 1
    try:
        yield
    finally:
        with _lock:
            _raised -= 1
            if _raised == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None


@contextmanager
def paused() -> Iterator[None]:
    """Automatic collection off inside, then one young collection.

    For work that keeps a large acyclic structure alive until it ends (a batch's decoded FHIR
    JSON): each automatic collection walked it again and moved it to an older generation, whose
    collections walked it once more, for nothing. The young collection on the way out frees the
    cyclic garbage the work did make (SQLAlchemy's sessions and results), so memory stays bounded
    even while other threads keep collection off. Collection turned off by somebody else (a
    benchmark, a test) is left off."""
    global _pausing, _paused_by_us
    with _lock:
        if _pausing == 0 and gc.isenabled():
            gc.disable()
            _paused_by_us = True
        if _paused_by_us:
            _pausing += 1
        ours = _paused_by_us
    if not ours:
        yield
        return
    try:
        yield
    finally:
        with _lock:
            _pausing -= 1
            if _pausing == 0:
                _paused_by_us = False
                gc.enable()
        gc.collect(1)
