"""The read-ahead thread of a poll pass: order, bounded lead, errors in order, clean stop."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from discharge_bridge.ingest.readahead import ReadAhead


class Producer:
    """Counts what it produced and where it ran; can fail at a given item."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n = n
        self.fail_at = fail_at
        self.produced = 0
        self.closed_in: str | None = None
        self.threads: set[str] = set()

    def items(self) -> Iterator[int]:
        try:
            for i in range(self.n):
                self.threads.add(threading.current_thread().name)
                if i == self.fail_at:
                    raise LookupError(f"item {i} is broken")
                self.produced += 1
                yield i
        finally:
            self.closed_in = threading.current_thread().name


def test_items_come_out_in_order_from_another_thread() -> None:
    producer = Producer(50)
    with ReadAhead(producer.items()) as ahead:
        assert list(ahead) == list(range(50))
    assert producer.threads == {"ingest-read-ahead"}
    assert producer.closed_in == "ingest-read-ahead"


def test_the_producer_runs_at_most_depth_items_ahead() -> None:
    producer = Producer(30)
    leads = []
    with ReadAhead(producer.items(), depth=2) as ahead:
        for consumed, _item in enumerate(ahead, start=1):
            leads.append(producer.produced - consumed)
    # one item in the consumer's hands, `depth` in the queue, one being put
    assert max(leads) <= 3
    assert min(leads) >= 0


def test_a_producer_error_arrives_after_the_items_before_it() -> None:
    producer = Producer(10, fail_at=4)
    got = []
    with pytest.raises(LookupError, match="item 4 is broken"), ReadAhead(producer.items()) as ahead:
        for item in ahead:
            got.append(item)
    assert got == [0, 1, 2, 3]


def test_leaving_early_stops_the_producer_and_closes_its_generator() -> None:
    producer = Producer(1000)
    with pytest.raises(RuntimeError, match="consumer stopped"), ReadAhead(producer.items()) as ahead:
        for item in ahead:
            if item == 3:
                raise RuntimeError("consumer stopped")
    assert not ahead._thread.is_alive()
    assert producer.closed_in == "ingest-read-ahead"
    assert producer.produced <= 3 + 3  # what it had already made ahead, nothing more


def test_it_is_used_in_a_with_block() -> None:
    with pytest.raises(RuntimeError, match="with block"):
        list(ReadAhead(iter([1, 2])))
