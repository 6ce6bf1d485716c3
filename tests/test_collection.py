"""The collector's settings are the process's: callers in several threads share them (collection.py)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from discharge_bridge import collection


@pytest.fixture(autouse=True)
def default_collector() -> Iterator[None]:
    """CPython's defaults, collection on, whatever the test run set before; put back after."""
    was_enabled, was = gc.isenabled(), gc.get_threshold()
    gc.enable()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*was)
    (gc.enable if was_enabled else gc.disable)()


def test_overlapping_callers_put_the_threshold_back_when_the_last_leaves() -> None:
    """A pass and a drain in two threads: A in, B in, A out, B out. Restoring per caller left
    B's saved value (A's raised one) in place for good."""
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, tuple[int, int, int]] = {}

    def first() -> None:
        with collection.fewer_young_collections():
            a_in.set()
            b_in.wait(5)
        seen["after A"] = gc.get_threshold()
        a_out.set()

    def second() -> None:
        a_in.wait(5)
        with collection.fewer_young_collections():
            b_in.set()
            a_out.wait(5)
            seen["B alone"] = gc.get_threshold()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen["after A"] == (collection.YOUNG_THRESHOLD, 10, 10)  # B is still inside
    assert seen["B alone"] == (collection.YOUNG_THRESHOLD, 10, 10)
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
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def first() -> None:
        with collection.paused():
            a_in.set()
            b_in.wait(5)
        seen["after A"] = gc.isenabled()
        a_out.set()

    def second() -> None:
        a_in.wait(5)
        with collection.paused():
            b_in.set()
            a_out.wait(5)
            seen["B alone"] = gc.isenabled()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"after A": False, "B alone": False}
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
