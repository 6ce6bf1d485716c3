"""Figures beside the lists kept a few seconds (``list_figures_max_age_seconds``): the filters'
counts and the board's totals are shared by readers asking the same question within that time, then
computed again; off (0, the default) they are computed on every request. The worklist's rows
stay live; the board keeps its order over every row and reads the rows of a page live."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy.engine import Engine

from discharge_bridge.cases.models import Case
from discharge_bridge.db import session_scope
from discharge_bridge.worklists import figures
from discharge_bridge.worklists.board import Board, BoardFilter, board
from discharge_bridge.worklists.service import worklist
from tests.support.factories import RULES, flagged_case, make_source, put_encounter

pytestmark = pytest.mark.clock
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The monotonic clock ``figures.kept`` ages its answers by, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(figures.time, "monotonic", lambda: now[0])
    return now


def test_an_answer_is_kept_for_its_max_age_then_computed_again(clock: list[float]) -> None:
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


@pytest.fixture(autouse=True)
def _nothing_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no kept answers (a recycled test database may have the same URL)."""
    monkeypatch.setattr(figures, "_kept", OrderedDict())


def test_the_worklist_counts_are_shared_within_the_age_while_its_rows_stay_live(engine: Engine) -> None:
    with time_machine.travel(NOW, tick=False):
        with session_scope(engine) as session:
            city = make_source(session).id or 0
            flagged_case(session, city, "adm1", "p1")

        def read(max_age: float) -> tuple[int, int]:
            with session_scope(engine) as session:
                page = worklist(session, rules_version=RULES, now=NOW, with_counts=True, figures_max_age=max_age)
            assert page.counts is not None
            return len(page.items), sum(c.count for c in page.counts.priority)

        assert read(60) == (1, 1)
        with session_scope(engine) as session:
            flagged_case(session, city, "adm2", "p2", priority="medium")
        assert read(60) == (2, 1)  # rows live; the counts as kept
        assert read(0) == (2, 2)  # computed on every request


def _board(engine: Engine, city: int, max_age: float, **kwargs: object) -> Board:
    with session_scope(engine) as session:
        return board(session, BoardFilter(source_ids=[city]), now=NOW, figures_max_age=max_age, **kwargs)  # type: ignore[arg-type]


def test_the_board_keeps_its_order_and_totals_within_the_age_and_reads_its_rows_live(
    engine: Engine, clock: list[float]
) -> None:
    with time_machine.travel(NOW, tick=False):
        with session_scope(engine) as session:
            city = make_source(session).id or 0
            flagged_case(session, city, "adm1", "p1")
            second = flagged_case(session, city, "adm2", "p2").id
        kept = _board(engine, city, 60)
        assert [r.encounter for r in kept.rows] == ["adm1", "adm2"] and kept.totals.in_bed == 2  # undated: by id
        with session_scope(engine) as session:
            flagged_case(session, city, "adm3", "p3")  # a new admission
            case = session.get(Case, second)
            assert case is not None
            case.medically_ready_at = NOW - timedelta(days=2)  # a ready date moves a row to the top...
            session.add(case)
        now_kept = _board(engine, city, 60)
        assert [r.encounter for r in now_kept.rows] == ["adm1", "adm2"]  # ...once the order is computed again
        assert now_kept.rows[1].medically_ready_at == NOW - timedelta(days=2)  # the row itself is read now
        assert now_kept.totals.in_bed == 2  # totals as kept
        with session_scope(engine) as session:
            put_encounter(session, city, "adm1", "p1", status="finished", end="2026-11-25T10:00:00+03:00")
        assert [r.encounter for r in _board(engine, city, 60).rows] == ["adm2"]  # a row that left goes at once
        live = _board(engine, city, 0)
        assert [r.encounter for r in live.rows] == ["adm2", "adm3"] and live.totals.in_bed == 2
        clock[0] += 61
        again = _board(engine, city, 60)
        assert [r.encounter for r in again.rows] == ["adm2", "adm3"] and again.totals.in_bed == 2  # computed again


def test_a_kept_order_pages_every_row_once_and_a_cursor_outside_it_pages_by_sql(
    engine: Engine, clock: list[float]
) -> None:
    with time_machine.travel(NOW, tick=False):
        with session_scope(engine) as session:
            city = make_source(session).id or 0
            for i in range(1, 6):
                flagged_case(session, city, f"adm{i}", f"p{i}")

        def walk(max_age: float) -> list[str]:
            seen: list[str] = []
            after = None
            while True:
                page = _board(engine, city, max_age, limit=2, after=after)
                seen += [r.encounter for r in page.rows]
                if page.next_after is None:
                    return seen
                after = page.next_after

        assert walk(60) == walk(0) == ["adm1", "adm2", "adm3", "adm4", "adm5"]
        cursor = _board(engine, city, 60, limit=2).next_after
        with session_scope(engine) as session:
            put_encounter(session, city, "adm2", "p2", status="finished", end="2026-11-25T10:00:00+03:00")
        clock[0] += 61  # the order computed again without adm2, the cursor's row
        rest = _board(engine, city, 60, limit=2, after=cursor)
        assert [r.encounter for r in rest.rows] == ["adm3", "adm4"]  # after where adm2 stood, by SQL
