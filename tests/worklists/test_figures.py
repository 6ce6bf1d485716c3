"""Figures beside the lists kept a few seconds (``list_figures_max_age_seconds``): the filters'
counts and the board's totals are shared by readers asking the same question within that time, then
computed again; off (0, the default) they are computed on every request. The rows stay live."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
import time_machine
from sqlalchemy.engine import Engine

from discharge_bridge.db import session_scope
from discharge_bridge.worklists import figures
from discharge_bridge.worklists.board import BoardFilter, board
from discharge_bridge.worklists.service import worklist
from tests.support.factories import RULES, flagged_case, make_source

pytestmark = pytest.mark.clock
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_an_answer_is_kept_for_its_max_age_then_computed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(figures.time, "monotonic", lambda: clock[0])
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert figures.kept(("k", 1), 10, compute) == 1
    clock[0] += 9.9
    assert figures.kept(("k", 1), 10, compute) == 1  # within the age: the same answer, not computed
    assert figures.kept(("k", 2), 10, compute) == 2  # another question
    clock[0] += 0.2
    assert figures.kept(("k", 1), 10, compute) == 3  # older than the age: computed again
    assert figures.kept(("k", 1), 0, compute) == 4  # off: always computed


def test_readers_arriving_together_compute_a_key_once_and_keep_the_old_answer_while_it_is_renewed() -> None:
    calls: list[int] = []
    release = threading.Event()

    def slow() -> int:
        calls.append(1)
        assert release.wait(10)
        return len(calls)

    answers: list[int] = []
    readers = [threading.Thread(target=lambda: answers.append(figures.kept(("slow",), 0.5, slow))) for _ in range(8)]
    for reader in readers:
        reader.start()
    time.sleep(0.2)
    release.set()
    for reader in readers:
        reader.join(10)
    assert answers == [1] * 8 and len(calls) == 1  # one aggregate for eight readers
    time.sleep(0.6)  # older than the age now
    release.clear()
    renewing = threading.Thread(target=lambda: answers.append(figures.kept(("slow",), 0.5, slow)))
    renewing.start()
    time.sleep(0.2)
    assert figures.kept(("slow",), 0.5, slow) == 1  # while one thread computes, the others keep the old
    release.set()
    renewing.join(10)
    assert answers[-1] == 2 and len(calls) == 2


def test_counts_and_totals_are_shared_within_the_age_while_rows_stay_live(engine: Engine) -> None:
    with time_machine.travel(NOW, tick=False):
        with session_scope(engine) as session:
            city = make_source(session).id or 0
            flagged_case(session, city, "adm1", "p1")

        def read(max_age: float) -> tuple[int, int, int, int]:
            with session_scope(engine) as session:
                page = worklist(session, rules_version=RULES, now=NOW, with_counts=True, figures_max_age=max_age)
                beds = board(session, BoardFilter(source_ids=[city]), now=NOW, figures_max_age=max_age)
            assert page.counts is not None
            return len(page.items), sum(c.count for c in page.counts.priority), len(beds.rows), beds.totals.in_bed

        assert read(60) == (1, 1, 1, 1)
        with session_scope(engine) as session:
            flagged_case(session, city, "adm2", "p2", priority="medium")
        assert read(60) == (2, 1, 2, 1)  # rows live; the counts and totals as kept
        assert read(0) == (2, 2, 2, 2)  # computed on every request
