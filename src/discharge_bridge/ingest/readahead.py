"""Produce the next items of an iterator in a thread while the caller consumes the current one.

A poll pass alternates between waiting for the EHR and writing to the database. Both release the
GIL (socket reads, SQLite and PostgreSQL drivers), so fetching page n+1 while page n is written
overlaps them; against a real EHR, whose pages take hundreds of milliseconds, the pass then costs
about the larger of the two instead of their sum.

Order is kept: items come out in the order produced, and an exception raised by the producer is
raised to the consumer only after every item produced before it. At most ``depth`` items wait
in between, so memory stays bounded.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")

_DONE = object()


class ReadAhead(Generic[T]):
    """``with ReadAhead(items) as ahead: for item in ahead: ...``; leaving the block stops the thread.

    Leaving early (``break``, an exception in the consumer) asks the producer to stop after the item
    it is working on, discards what it produced, and waits for the thread to end, so nothing runs
    on behind the caller's back (the producer's generator is closed in its own thread).
    """

    def __init__(self, items: Iterator[T], *, depth: int = 1, name: str = "ingest-read-ahead") -> None:
        self._items = items
        self._queue: queue.Queue[tuple[object, T | BaseException | None]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)
        self._started = False

    def _produce(self) -> None:
        try:
            for item in self._items:
                if self._stop.is_set():
                    break
                self._queue.put((None, item))
                if self._stop.is_set():
                    break
        except BaseException as exc:  # handed to the consumer, raised there in order
            self._queue.put((_DONE, exc))
        else:
            self._queue.put((_DONE, None))
        finally:
            close = getattr(self._items, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> ReadAhead[T]:
        self._thread.start()
        self._started = True
        return self

    def __iter__(self) -> Iterator[T]:
        if not self._started:
            raise RuntimeError("use ReadAhead in a with block")
        while True:
            marker, value = self._queue.get()
            if marker is _DONE:
                if value is not None:
                    assert isinstance(value, BaseException)
                    raise value
                return
            yield value  # type: ignore[misc]

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):  # unblock a producer waiting to put
                self._queue.get(timeout=0.05)
        self._thread.join()
