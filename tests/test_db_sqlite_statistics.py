"""SQLite connections of a long-lived process take up the planner statistics another connection
computed (the assessment stage ANALYZEs its tables as they grow): SQLite reads ``sqlite_stat1`` when
a connection opens and never again, so the engine replaces its connections after
``SQLITE_RECYCLE_SECONDS``; a process that only reads gets a fresh connection each time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import time_machine
from sqlalchemy import Engine

from discharge_bridge.db import SQLITE_RECYCLE_SECONDS, make_engine

# Two indexes; without statistics SQLite takes the equality (x), with them the selective range (y).
QUERY = "EXPLAIN QUERY PLAN SELECT * FROM t WHERE x = 1 AND y > 5"
BY_X, BY_Y = "USING INDEX ix (x=?)", "USING INDEX iy (y>?)"


def _plan(engine: Engine) -> str:
    with engine.connect() as connection:
        return " ".join(row[3] for row in connection.exec_driver_sql(QUERY))


def _table(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER, y INTEGER)")
        connection.exec_driver_sql("CREATE INDEX ix ON t (x)")
        connection.exec_driver_sql("CREATE INDEX iy ON t (y)")
        connection.exec_driver_sql("INSERT INTO t VALUES " + ", ".join(f"({i % 2}, {i})" for i in range(20_000)))


def test_a_pooled_connection_is_replaced_and_plans_with_the_new_statistics(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stats.db'}"
    stage, web = make_engine(url), make_engine(url)
    try:
        _table(stage)
        with time_machine.travel(datetime(2026, 12, 8, 9, 0, tzinfo=UTC), tick=False) as clock:
            assert BY_X in _plan(web)  # the web process's connection opens: no statistics yet
            with stage.begin() as connection:
                connection.exec_driver_sql("ANALYZE")
            assert BY_Y in _plan(stage)
            assert BY_X in _plan(web)  # the same pooled connection: still the statistics it opened with
            clock.shift(SQLITE_RECYCLE_SECONDS + 1)
            assert BY_Y in _plan(web)  # replaced at checkout: the new statistics
    finally:
        stage.dispose()
        web.dispose()


def test_fresh_connections_plan_with_statistics_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stats.db'}"
    stage, scoring = make_engine(url), make_engine(url, fresh_connections=True)
    try:
        _table(stage)
        assert BY_X in _plan(scoring)
        with stage.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
        assert BY_Y in _plan(scoring)
    finally:
        stage.dispose()
        scoring.dispose()
