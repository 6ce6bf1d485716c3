"""Figures beside the lists kept a few seconds (``list_figures_max_age_seconds``): the filters'
counts and the board's totals are shared by readers asking the same question within that time; an
older answer is still returned at once while a background thread computes the new one with its own
session; off (0, the default) they are computed on every request. The worklist's rows stay live; the
board keeps its order over every row and reads the rows of a page live."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlmodel import Session

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


@pytest.fixture
def caller() -> Iterator[Session]:
    """The reader's session: an engine of its own, in memory (the answers below need no tables)."""
    memory = create_engine("sqlite://")
    with Session(memory) as session:
        yield session
    memory.dispose()


def test_an_answer_is_kept_for_its_max_age_then_computed_again(clock: list[float], caller: Session) -> None:
    calls: list[int] = []

    def compute(session: Session) -> int:
        calls.append(1)
        return len(calls)

    assert figures.kept(("k", 1), 10, caller, compute) == 1
    clock[0] += 9.9
    assert figures.kept(("k", 1), 10, caller, compute) == 1  # within the age: the same answer, not computed
    assert figures.kept(("k", 2), 10, caller, compute) == 2  # another question
    clock[0] += 0.2
    assert figures.kept(("k", 1), 10, caller, compute) == 1  # older than the age: the old one, at once...
    figures.settle()
    assert figures.kept(("k", 1), 10, caller, compute) == 3  # ...while it was computed again
    assert figures.kept(("k", 1), 0, caller, compute) == 4  # off: always computed
    assert len(calls) == 4


def test_readers_arriving_together_compute_a_first_answer_once_in_a_reader_with_its_session(
    caller: Session,
) -> None:
    calls: list[tuple[Session, threading.Thread]] = []
    release = threading.Event()

    def slow(session: Session) -> int:
        calls.append((session, threading.current_thread()))
        assert release.wait(10)
        return len(calls)

    answers: list[int] = []
    readers = [
        threading.Thread(target=lambda: answers.append(figures.kept(("slow",), 0.5, caller, slow))) for _ in range(8)
    ]
    for reader in readers:
        reader.start()
    time.sleep(0.2)
    release.set()
    for reader in readers:
        reader.join(10)
    assert answers == [1] * 8 and len(calls) == 1  # one aggregate for eight readers
    assert calls[0][0] is caller and calls[0][1] in readers  # computed by a reader, with its session
    time.sleep(0.6)  # older than the age now
    release.clear()
    renewing = threading.Thread(target=lambda: answers.append(figures.kept(("slow",), 0.5, caller, slow)))
    renewing.start()
    renewing.join(10)
    assert answers[-1] == 1  # the reader that found it old kept the old answer
    assert figures.kept(("slow",), 0.5, caller, slow) == 1  # so does the next one while it is renewed
    release.set()
    figures.settle()
    assert figures.kept(("slow",), 0.5, caller, slow) == 2 and len(calls) == 2


def test_a_stale_reader_gets_the_old_answer_at_once_and_a_background_thread_computes_the_new_one(
    clock: list[float], caller: Session
) -> None:
    calls: list[tuple[Session, threading.Thread]] = []
    release = threading.Event()

    def compute(session: Session) -> int:
        calls.append((session, threading.current_thread()))
        if len(calls) > 1:
            assert release.wait(5)
        return len(calls)

    assert figures.kept(("stale",), 10, caller, compute) == 1
    clock[0] += 11
    started = time.perf_counter()
    assert figures.kept(("stale",), 10, caller, compute) == 1  # the old answer...
    assert not release.is_set() and time.perf_counter() - started < 1  # ...before the new one could exist
    assert figures.kept(("stale",), 10, caller, compute) == 1  # still, while it is computed
    release.set()
    figures.settle()
    assert figures.kept(("stale",), 10, caller, compute) == 2  # the new one once computed
    assert len(calls) == 2
    (first, in_reader), (own, in_background) = calls
    assert first is caller and in_reader is threading.current_thread()
    assert in_background is not threading.current_thread() and in_background.daemon
    assert isinstance(own, Session) and own is not caller and own.get_bind() is caller.get_bind()


def test_many_readers_of_a_stale_key_start_one_background_refresh(clock: list[float], caller: Session) -> None:
    calls: list[threading.Thread] = []
    release = threading.Event()

    def compute(session: Session) -> int:
        calls.append(threading.current_thread())
        if len(calls) > 1:
            assert release.wait(5)
        return len(calls)

    assert figures.kept(("many",), 10, caller, compute) == 1
    clock[0] += 11
    answers: list[int] = []
    readers = [
        threading.Thread(target=lambda: answers.append(figures.kept(("many",), 10, caller, compute))) for _ in range(20)
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(10)
    assert answers == [1] * 20  # none of them waited for the new answer
    release.set()
    figures.settle()
    assert len(calls) == 2  # one refresh for twenty stale readers
    assert figures.kept(("many",), 10, caller, compute) == 2 and len(calls) == 2


def test_at_most_max_refreshing_keys_are_renewed_at_once(clock: list[float], caller: Session) -> None:
    """Each refresh holds a pooled connection: past the cap an old answer is served and nothing is
    started until a refresh is done."""
    release = threading.Event()
    refreshing: list[str] = []

    def compute_of(name: str) -> Callable[[Session], str]:
        def compute(session: Session) -> str:
            if session is caller:  # the first answer, in the reader
                return f"{name}-old"
            refreshing.append(name)  # a refresh, in the background
            release.wait(10)
            return f"{name}-new"

        return compute

    names = [f"k{i}" for i in range(figures.MAX_REFRESHING + 1)]
    for name in names:
        assert figures.kept((name,), 10, caller, compute_of(name)) == f"{name}-old"
    clock[0] += 11
    assert [figures.kept((name,), 10, caller, compute_of(name)) for name in names] == [f"{n}-old" for n in names]
    for _ in range(500):
        if len(refreshing) == figures.MAX_REFRESHING:
            break
        time.sleep(0.01)
    time.sleep(0.05)
    assert sorted(refreshing) == names[: figures.MAX_REFRESHING]  # the last key was not started
    release.set()
    figures.settle()
    last = names[-1]
    assert figures.kept((last,), 10, caller, compute_of(last)) == f"{last}-old"  # its refresh starts now
    figures.settle()
    assert figures.kept((last,), 10, caller, compute_of(last)) == f"{last}-new"


def test_a_failed_refresh_keeps_the_old_answer_logs_no_value_and_the_next_stale_reader_retries(
    clock: list[float], caller: Session, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def compute(session: Session) -> str:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("result-secret for p-secret")
        return f"result-{len(calls)}"

    key = ("failing", "p-secret")
    assert figures.kept(key, 10, caller, compute) == "result-1"
    clock[0] += 11
    with caplog.at_level(logging.WARNING, logger=figures.__name__):
        assert figures.kept(key, 10, caller, compute) == "result-1"
        figures.settle()
        assert figures.kept(key, 10, caller, compute) == "result-1"  # the old one kept; a refresh again
        figures.settle()
    assert len(calls) == 3
    assert figures.kept(key, 10, caller, compute) == "result-3"
    warned = [r for r in caplog.records if r.name == figures.__name__]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING and not warned[0].exc_info
    message = warned[0].getMessage()
    assert "failing" in message
    assert "secret" not in message and "result" not in message  # neither the value nor the rest of the key


def _city_with_one_flag(engine: Engine) -> int:
    """A hospital with one flagged admission and its case; its id."""
    with session_scope(engine) as session:
        city = make_source(session).id or 0
        flagged_case(session, city, "adm1", "p1")
    return city


def _rows_and_counts(engine: Engine, max_age: float) -> tuple[int, int]:
    """The worklist's rows and its priority filter's counts, summed."""
    with session_scope(engine) as session:
        page = worklist(session, rules_version=RULES, now=NOW, with_counts=True, figures_max_age=max_age)
    assert page.counts is not None
    return len(page.items), sum(c.count for c in page.counts.priority)


def test_the_worklist_counts_are_shared_within_the_age_while_its_rows_stay_live(engine: Engine) -> None:
    with time_machine.travel(NOW, tick=False):
        city = _city_with_one_flag(engine)
        assert _rows_and_counts(engine, 60) == (1, 1)
        with session_scope(engine) as session:
            flagged_case(session, city, "adm2", "p2", priority="medium")
        assert _rows_and_counts(engine, 60) == (2, 1)  # rows live; the counts as kept
        assert _rows_and_counts(engine, 0) == (2, 2)  # computed on every request


def test_stale_worklist_counts_are_returned_at_once_and_renewed_in_the_background(
    engine: Engine, clock: list[float]
) -> None:
    with time_machine.travel(NOW, tick=False):
        city = _city_with_one_flag(engine)
        assert _rows_and_counts(engine, 60) == (1, 1)
        with session_scope(engine) as session:
            flagged_case(session, city, "adm2", "p2", priority="medium")
        clock[0] += 61
        assert _rows_and_counts(engine, 60) == (2, 1)  # older than the age: the old counts at once, rows live
        figures.settle()
        assert _rows_and_counts(engine, 60) == (2, 2)  # computed anew in the background, with its own session


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
        stale = _board(engine, city, 60)
        assert [r.encounter for r in stale.rows] == ["adm2"]  # the old order at once, its rows live...
        figures.settle()
        again = _board(engine, city, 60)
        assert [r.encounter for r in again.rows] == ["adm2", "adm3"] and again.totals.in_bed == 2  # ...then the new


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
        clock[0] += 61
        assert [r.encounter for r in _board(engine, city, 60, limit=2).rows] == ["adm1"]  # the old order, live
        figures.settle()  # the order computed again without adm2, the cursor's row
        rest = _board(engine, city, 60, limit=2, after=cursor)
        assert [r.encounter for r in rest.rows] == ["adm3", "adm4"]  # after where adm2 stood, by SQL
