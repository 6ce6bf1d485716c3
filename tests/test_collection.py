"""The collector's settings are the process's: callers in several threads share them (collection.py)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TypeVar

import pytest

from discharge_bridge import collection

T = TypeVar("T")


@pytest.fixture(autouse=True)
def default_collector() -> Iterator[None]:
    """CPython's defaults, collection on, whatever the test run set before; put back after."""
    was_enabled, was = gc.isenabled(), gc.get_threshold()
    gc.enable()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*was)
    (gc.enable if was_enabled else gc.disable)()


def _overlap(enter: Callable[[], AbstractContextManager[None]], observe: Callable[[], T]) -> dict[str, T]:
    """Two threads: A enters, B enters, A leaves, B leaves. What ``observe`` saw after A left, and
    while B was alone inside."""
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, T] = {}

    def first() -> None:
        with enter():
            a_in.set()
            b_in.wait(5)
        seen["after A"] = observe()
        a_out.set()

    def second() -> None:
        a_in.wait(5)
        with enter():
            b_in.set()
            a_out.wait(5)
            seen["B alone"] = observe()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return seen


def test_overlapping_callers_put_the_threshold_back_when_the_last_leaves() -> None:
    """A pass and a drain in two threads. Restoring per caller left B's saved value (A's raised
    one) in place for good."""
    raised = (collection.YOUNG_THRESHOLD, 10, 10)
    assert _overlap(collection.fewer_young_collections, gc.get_threshold) == {"after A": raised, "B alone": raised}
    assert gc.get_threshold() == (700, 10, 10)


def test_nested_callers_in_one_thread() -> None:
    with collection.fewer_young_collections():
        with collection.fewer_young_collections():
            assert gc.get_threshold()[0] == collection.YOUNG_THRESHOLD
        assert gc.get_threshold()[0] == collection.YOUNG_THRESHOLD
    assert gc.get_threshold() == (700, 10, 10)


def test_the_threshold_comes_back_after_an_error() -> None:
    with pytest.raises(ZeroDivisionError), collection.fewer_young_collections():
        raise ZeroDivisionError
    assert gc.get_threshold() == (700, 10, 10)


def test_collection_stays_off_until_the_last_pausing_thread_leaves() -> None:
    assert _overlap(collection.paused, gc.isenabled) == {"after A": False, "B alone": False}
    assert gc.isenabled()


def test_pausing_frees_the_cycles_made_inside_on_the_way_out() -> None:
    class Node:
        pass

    freed = threading.Event()
    with collection.paused():
        node = Node()
        node.self = node  # type: ignore[attr-defined]
        import weakref

        weakref.finalize(node, freed.set)
        del node
        assert not freed.is_set()  # a cycle: reference counting cannot free it
    assert freed.is_set()


def test_collection_turned_off_by_the_caller_stays_off() -> None:
    gc.disable()
    with collection.paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_an_error_inside_turns_collection_back_on() -> None:
    with pytest.raises(ZeroDivisionError), collection.paused():
        raise ZeroDivisionError
    assert gc.isenabled()
