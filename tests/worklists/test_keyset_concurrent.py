"""Keyset paging while the list changes: a reader pages the worklist by cursor, one page per
transaction as the API serves it, while another thread admits new flagged patients and discharges
others between (and during) the pages. Every admission that stays on the list throughout is seen
exactly once; none is ever seen twice (OFFSET paging fails both: a discharge before the offset
skips a row, an admission before it repeats one).
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import update
from sqlalchemy.engine import Engine

from discharge_bridge.db import session_scope
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.worklists.filters import Sort, WorklistQuery
from discharge_bridge.worklists.service import worklist
from tests.support.factories import RULES, make_source, move_admission, put_encounter, put_risk

pytestmark = pytest.mark.clock
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
START = 60  # admissions on the list when paging starts
PAGE = 7
PRIORITIES = ("high", "medium", "low")
CONCEPTS = (("lives_alone",), ("dementia", "elderly"), ("homeless", "lives_alone", "no_contacts"))


def _admit(engine: Engine, source_id: int, n: int, rnd: random.Random) -> None:
    with session_scope(engine) as session:
        put_encounter(session, source_id, f"adm{n}", f"p{n}")
        put_risk(
            session,
            source_id,
            f"adm{n}",
            f"p{n}",
            priority=rnd.choice(PRIORITIES),
            concepts=rnd.choice(CONCEPTS),  # scores tie often: the id decides within a tie
        )
        move_admission(session, source_id, f"adm{n}", NOW - timedelta(days=rnd.randint(0, 5), hours=rnd.randint(0, 23)))


def _discharge(engine: Engine, source_id: int, n: int) -> None:
    """The encounter finished: its assessment is no longer a current stay, so it leaves the list."""
    with session_scope(engine) as session:
        session.execute(
            update(RiskAssessment)
            .where(RiskAssessment.source_id == source_id, RiskAssessment.encounter_fhir_id == f"adm{n}")  # type: ignore[arg-type]
            .values(current=False)
        )


@pytest.mark.parametrize("sort", [Sort.priority, Sort.admitted, Sort.stay, Sort.name, Sort.due])
def test_every_row_that_stays_open_is_seen_once_while_rows_are_added_and_closed(engine: Engine, sort: Sort) -> None:
    rnd = random.Random(f"keyset-{sort}")
    with time_machine.travel(NOW, tick=False):
        with session_scope(engine) as session:
            source_id = make_source(session).id or 0
        for n in range(START):
            _admit(engine, source_id, n, rnd)

        discharged: set[str] = set()
        added: set[str] = set()
        step = threading.Event()
        stepped = threading.Event()
        stop = threading.Event()
        failures: list[BaseException] = []

        def writer() -> None:
            """Between every two pages: admit two patients and discharge two (seen or not yet seen)."""
            next_n = START
            try:
                while step.wait(10) and not stop.is_set():
                    step.clear()
                    for _ in range(2):
                        _admit(engine, source_id, next_n, rnd)
                        added.add(f"adm{next_n}")
                        next_n += 1
                    for victim in rnd.sample([n for n in range(next_n) if f"adm{n}" not in discharged], 2):
                        _discharge(engine, source_id, victim)
                        discharged.add(f"adm{victim}")
                    stepped.set()
            except BaseException as exc:  # reported by the reader's thread
                failures.append(exc)
                stepped.set()

        thread = threading.Thread(target=writer)
        thread.start()
        seen: list[str] = []
        after: str | None = None
        pages = 0
        try:
            while True:
                with session_scope(engine) as session:
                    page = worklist(
                        session, rules_version=RULES, limit=PAGE, query=WorklistQuery(sort=sort, after=after), now=NOW
                    )
                seen += [item.encounter for item in page.items]
                pages += 1
                after = page.next_after
                if after is None:
                    break
                step.set()  # the other thread writes now, between this page and the next
                assert stepped.wait(30), "the writer did not finish its step"
                stepped.clear()
                assert not failures, failures
        finally:
            stop.set()
            step.set()
            thread.join(30)

    assert pages > START // PAGE and discharged and added  # the list really changed under the reader
    twice = sorted({e for e in seen if seen.count(e) > 1})
    assert twice == []
    stayed = {f"adm{n}" for n in range(START)} - discharged
    missing = sorted(stayed - set(seen))
    assert missing == []
    assert set(seen) <= {f"adm{n}" for n in range(START)} | added
