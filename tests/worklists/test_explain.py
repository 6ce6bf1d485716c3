"""The lists' queries on PostgreSQL reach their rows through indexes: every statement the worklist
(each sort, a deep page by cursor, the filters' counts) and the bed board (a page, the next page,
the totals) send is captured as sent and EXPLAINed with sequential scans priced out
(``enable_seqscan = off``): a table that has no index matching the query's filter, join or order
still shows a Seq Scan then, and the test names it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.cases.models import Case, CaseStatus
from discharge_bridge.cases.repository import list_cases
from discharge_bridge.config import Settings
from discharge_bridge.db import make_engine, session_scope
from discharge_bridge.ingest.deadletters import list_dead_letters, next_letters_cursor
from discharge_bridge.ingest.store import record_dead_letter
from discharge_bridge.sources.models import Source
from discharge_bridge.worklists.board import board, board_filter
from discharge_bridge.worklists.filters import Sort, WorklistQuery
from discharge_bridge.worklists.service import worklist
from tests.support.factories import RULES, flagged_case, make_source, put_encounter
from tests.support.postgres import PostgresServer

pytestmark = [pytest.mark.postgres, pytest.mark.clock]
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
LISTED = {"risk_assessment", "encounter_snapshot", "coordination_case", "case_task", "patient_snapshot", "dead_letter"}


@pytest.fixture
def pg_engine(postgres_server: PostgresServer, tmp_path: Path) -> Iterator[Engine]:
    url = postgres_server.url(postgres_server.create_database(migrated=True))
    engine = make_engine(Settings(data_dir=tmp_path, database_url=url).sqlalchemy_url)
    with time_machine.travel(NOW - timedelta(days=1), tick=False), session_scope(engine) as session:
        source_id = make_source(session).id or 0
        for n in range(30):
            flagged_case(session, source_id, f"adm{n}", f"p{n}", priority=("high", "medium", "low")[n % 3])
        put_encounter(session, source_id, "unflagged", "p-none")  # in a bed, no flag, no case
        for n in range(30):
            record_dead_letter(session, source_id, {"resourceType": "Encounter", "id": f"bad{n}"}, "unreadable")
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    yield engine
    engine.dispose()


@contextmanager
def captured(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    statements: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", keep)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def seq_scans(engine: Engine, statements: list[tuple[str, Any]]) -> tuple[list[str], set[str]]:
    """(the listed tables scanned sequentially by any statement, every index used)."""
    scans: list[str] = []
    indexes: set[str] = set()
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute("SET enable_seqscan = off")
        for statement, parameters in statements:
            cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
            row = cursor.fetchone()
            assert row is not None
            raw = row[0]
            plan = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
            for node in _nodes(plan):
                if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in LISTED:
                    scans.append(f"{node['Relation Name']} in {statement[:80]}...")
                if "Index Name" in node:
                    indexes.add(node["Index Name"])
    return scans, indexes


@pytest.mark.parametrize("sort", list(Sort))
def test_each_worklist_sort_a_deep_page_and_the_counts_use_indexes(pg_engine: Engine, sort: Sort) -> None:
    with time_machine.travel(NOW, tick=False), session_scope(pg_engine) as session:
        first = worklist(session, rules_version=RULES, limit=5, query=WorklistQuery(sort=sort), now=NOW)
        assert first.next_after is not None
        with captured(pg_engine) as statements:
            worklist(
                session,
                rules_version=RULES,
                limit=5,
                query=WorklistQuery(sort=sort, after=first.next_after),
                now=NOW,
                mappings_dir=MAPPINGS,
                with_counts=True,
            )
    assert len(statements) >= 10  # the total, the anchor, the page, identities, the counts
    scans, indexes = seq_scans(pg_engine, statements)
    assert scans == []
    assert "ix_case_task_case_due" in indexes  # each row's next due task (a column of every sort)


def test_the_board_page_its_next_page_and_totals_use_indexes(pg_engine: Engine) -> None:
    with time_machine.travel(NOW, tick=False), session_scope(pg_engine) as session:
        flt, _, _ = board_filter(session, None, None, None, mappings_dir=MAPPINGS, rules_version=RULES)
        first = board(session, flt, now=NOW, limit=10, mappings_dir=MAPPINGS)
        assert first.next_after is not None and first.totals.in_bed == 31
        with captured(pg_engine) as statements:
            board(session, flt, now=NOW, limit=10, after=first.next_after, mappings_dir=MAPPINGS)
    assert len(statements) >= 4  # the anchor, the page, identities, the totals
    scans, indexes = seq_scans(pg_engine, statements)
    assert scans == []
    assert "ix_encounter_snapshot_status" in indexes  # the beds of the hospitals: (source_id, status)


def test_the_case_list_and_the_dead_letters_a_deep_page_by_cursor_use_indexes(pg_engine: Engine) -> None:
    with time_machine.travel(NOW, tick=False), session_scope(pg_engine) as session:
        source_id = session.exec(select(Source.id)).one()
    # The hospital's history: ten closed cases for each open one, as a hospital's list meets them.
    # Without it every case is open, and any index that names the hospital reads as well as another.
    at = NOW - timedelta(days=30)
    closed = {"status": "closed", "opened_at": at, "opened_by": "system", "updated_at": at, "version": 1}
    with pg_engine.begin() as conn:
        conn.execute(
            Case.__table__.insert(),  # type: ignore[attr-defined]
            [
                closed | {"source_id": source_id, "encounter_fhir_id": f"old{n}", "patient_fhir_id": f"q{n}"}
                for n in range(300)
            ],
        )
        conn.execute(text("ANALYZE coordination_case"))
    with time_machine.travel(NOW, tick=False), session_scope(pg_engine) as session:
        cases = list_cases(session, source_ids=[source_id], status=CaseStatus.open, limit=5)
        letters = list_dead_letters(session, source_id=source_id, limit=6)
        assert cases.next_after is not None and len(letters) == 6
        with captured(pg_engine) as statements:
            list_cases(session, source_ids=[source_id], status=CaseStatus.open, limit=5, after=cases.next_after)
            list_dead_letters(session, source_id=source_id, limit=6, after=next_letters_cursor(letters, 5))
    assert len(statements) == 5  # the cases: the capped total, the anchor, the page; the letters: anchor, page
    scans, indexes = seq_scans(pg_engine, statements)
    assert scans == []
    assert "ix_dead_letter_list" in indexes, sorted(indexes)
    # A hospital's open cases: (source_id, status) narrows to them, or the list's (status, priority,
    # opened) order walks the open ones; a walk of the stage's index by patient does neither.
    assert indexes & {"ix_coordination_case_source", "ix_coordination_case_list"}, sorted(indexes)
    assert "ix_coordination_case_patient" not in indexes


def plans(engine: Engine, statements: list[tuple[str, Any]], *settings: str) -> list[list[dict[str, Any]]]:
    """The nodes of each statement's plan under these planner settings."""
    found = []
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        for setting in settings:
            cursor.execute(setting)
        for statement, parameters in statements:
            cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
            row = cursor.fetchone()
            assert row is not None
            raw = row[0]
            found.append(list(_nodes((raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"])))
    return found


def test_the_worklist_first_and_deep_page_walk_the_priority_index_in_order(pg_engine: Engine) -> None:
    """The default sort (priority, score, admission, id) is read in index order and stops after a
    page: the rows' ids come from ix_risk_assessment_worklist, which holds the whole order (priority
    and score descending, then the admission's start as copied onto the assessment, then the id), so
    nothing is sorted: with the start read from the encounter, every row of the first (priority,
    score) group was joined and sorted (1,890 for a page of 50 at city scale). A deep page seeks to
    its cursor's (priority, score) in the index instead of reading every row before it. With full
    sorts priced out, a plan that must sort still shows a Sort node and the test names it."""
    with time_machine.travel(NOW, tick=False), session_scope(pg_engine) as session:
        first = worklist(session, rules_version=RULES, limit=5, now=NOW)
        assert first.next_after is not None
        with captured(pg_engine) as statements:
            worklist(session, rules_version=RULES, limit=5, now=NOW)
            worklist(session, rules_version=RULES, limit=5, query=WorklistQuery(after=first.next_after), now=NOW)
    pages = [(s, p) for s, p in statements if s.lstrip().startswith("SELECT risk_assessment.id \nFROM")]
    assert len(pages) == 2, [s[:80] for s, _ in statements]  # the ids of each page, before their columns
    first_plan, deep_plan = plans(pg_engine, pages, "SET enable_seqscan = off", "SET enable_sort = off")
    for plan in (first_plan, deep_plan):
        assert [n["Node Type"] for n in plan if "Sort" in n["Node Type"]] == [], plan
        walked = [n for n in plan if n.get("Index Name") == "ix_risk_assessment_worklist"]
        assert walked and walked[0]["Scan Direction"] == "Forward", walked
    seek = next(n for n in deep_plan if n.get("Index Name") == "ix_risk_assessment_worklist")
    assert "ROW(priority_rank, score) <=" in seek["Index Cond"], seek["Index Cond"]
