"""The morning list: new flags since the previous list, tasks due by the end of the hospital's local day,
per-coordinator views, one list per hospital and local date; on SQLite and PostgreSQL, clock frozen."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from discharge_bridge.cases.models import Case
from discharge_bridge.cases.service import assign
from discharge_bridge.cases.tasks.models import Task, TaskDomain, TaskKind, TaskStatus
from discharge_bridge.cases.tasks.service import create_task, update_task
from discharge_bridge.config import get_settings
from discharge_bridge.connections.service import update_source
from discharge_bridge.db import get_engine, session_scope, upgrade
from discharge_bridge.risk import loading
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.service import get_source
from discharge_bridge.worklists.models import MorningList
from discharge_bridge.worklists.morning import build_morning_list, for_coordinator, latest_for, local_day
from tests.support.factories import RULES, flagged_case, make_source, make_user

DAY1 = datetime(2026, 11, 2, 4, 0, tzinfo=UTC)  # 07:00 in Moscow
DAY2 = DAY1 + timedelta(days=1)


def _source(session: Session, name: str, tz: str) -> Source:
    make_source(session, name)
    return update_source(session, name, {"timezone": tz})


def _flag(
    session: Session, source: Source, eid: str, at: datetime, coordinator: str | None = None, **risk: object
) -> Case:
    """A flagged admission first flagged at ``at``, its case opened now (with its first-visit task)."""
    case = flagged_case(session, source.id or 0, eid, f"p-{eid}", **risk)
    for row in session.exec(select(RiskAssessment).where(RiskAssessment.encounter_fhir_id == eid)):
        row.first_flagged_at = at
        session.add(row)
    if coordinator:
        assign(session, case, coordinator, actor="test")
    session.flush()
    return case


def _first_visit(session: Session, case: Case) -> int:
    task = session.exec(select(Task).where(Task.case_id == case.id, Task.kind == TaskKind.first_visit)).one()
    return task.id or 0


def _task(session: Session, case: Case, description: str, due: datetime, owner: str | None = None) -> int:
    task = create_task(
        session, case, actor="t", description=description, domain=TaskDomain.social, due_at=due, owner=owner
    )
    return task.id or 0


def test_local_day_ends_at_local_midnight_in_each_zone() -> None:
    now = datetime(2026, 11, 3, 4, 0, tzinfo=UTC)
    moscow = Source(name="m", hospital="M", base_url="x", timezone="Europe/Moscow")
    new_york = Source(name="n", hospital="N", base_url="x", timezone="America/New_York")
    assert local_day(moscow, now) == ("2026-11-03", datetime(2026, 11, 3, 21, 0, tzinfo=UTC))
    # 04:00 UTC is still the evening before in New York (EST since 1 November 2026).
    assert local_day(new_york, now) == ("2026-11-02", datetime(2026, 11, 3, 5, 0, tzinfo=UTC))


def test_lists_hold_new_flags_since_the_last_list_and_tasks_due_today_or_overdue(engine: Engine) -> None:
    with time_machine.travel(DAY1 - timedelta(hours=12), tick=False), session_scope(engine) as session:
        msk = _source(session, "msk", "Europe/Moscow")
        early = _flag(session, msk, "e1", DAY1 - timedelta(hours=10), "alice", priority="medium")
        early_visit = _first_visit(session, early)  # due 24 h after opening: DAY1 16:00 UTC, 19:00 in Moscow
    with session_scope(engine) as session:
        msk = get_source(session, "msk")
        first = build_morning_list(session, msk, now=DAY1, rules_version=RULES)
        assert first is not None and first.local_date == "2026-11-02" and first.since is None
        assert first.generated_at == DAY1
        [flag] = first.items["new_flags"]
        assert flag == {
            "case_id": early.id,
            "encounter": "e1",
            "patient": "p-e1",
            "priority": "medium",
            "score": 3,
            "concepts": ["lives_alone"],
            "reasons": [
                {
                    "concept": "lives_alone",
                    "rule": "lives_alone",
                    "points": 3,
                    "evidence": ["Condition/lives_alone"],
                    "text": "lives_alone",
                }
            ],
            "ward": None,
            "bed": None,
            "coordinator": "alice",
            "flagged_at": (DAY1 - timedelta(hours=10)).isoformat(),
        }
        [task] = first.items["due_tasks"]
        assert task["task_id"] == early_visit and task["overdue"] is False and task["owner"] == "alice"
        assert task["due_at"] == (DAY1 + timedelta(hours=12)).isoformat() and task["kind"] == "first_visit"
        assert first.items["counts"] == {"new_flags": 1, "due_today": 1, "overdue": 0}
        # The same local date again: nothing written, None returned.
        assert build_morning_list(session, msk, now=DAY1 + timedelta(hours=3), rules_version=RULES) is None
        assert len(session.exec(select(MorningList)).all()) == 1

    with time_machine.travel(DAY1 + timedelta(hours=6), tick=False), session_scope(engine) as session:
        msk = get_source(session, "msk")
        late = _flag(session, msk, "l1", DAY1 + timedelta(hours=6), "bob", concepts=("dementia+lives_alone",))
        other_rules = _flag(session, msk, "x1", DAY1 + timedelta(hours=7), rules_version="older-rules")
        gone = _flag(session, msk, "g1", DAY1 + timedelta(hours=8))
        for row in session.exec(select(RiskAssessment).where(RiskAssessment.encounter_fhir_id == "g1")):
            row.current = False  # discharged before the morning
            session.add(row)
        make_user(session, "carol", sources=("msk",))  # a task goes to someone of the hospital
        overdue = _task(session, late, "Call the daughter", DAY2 - timedelta(hours=1), owner="carol")
        later_today = _task(session, late, "Book the home-care assessment", DAY2 + timedelta(hours=10))
        tomorrow = _task(session, early, "Visit again", DAY2 + timedelta(hours=30))
        done = _task(session, early, "Done already", DAY2 - timedelta(hours=2))
        done_task = session.get(Task, done)
        assert done_task is not None
        for status in (TaskStatus.in_progress, TaskStatus.completed):
            update_task(session, early, done_task, actor="t", expected_version=done_task.version, status=status)
            session.flush()
        visits = {_first_visit(session, c) for c in (late, other_rules, gone)}  # due DAY2 10:00 UTC

    with session_scope(engine) as session:
        second = build_morning_list(session, get_source(session, "msk"), now=DAY2, rules_version=RULES)
        assert second is not None and second.local_date == "2026-11-03" and second.since == DAY1
        # Not e1 again (already on the first list), not x1 (another rule set), not g1 (no longer current).
        [flag] = second.items["new_flags"]
        assert (flag["encounter"], flag["coordinator"], flag["concepts"]) == ("l1", "bob", ["dementia", "lives_alone"])
        due = {t["task_id"]: t["overdue"] for t in second.items["due_tasks"]}
        assert due == {early_visit: True, overdue: True, later_today: False, **dict.fromkeys(visits, False)}
        assert tomorrow not in due and done not in due
        assert [t["task_id"] for t in second.items["due_tasks"]][:2] == [early_visit, overdue]  # by due time
        assert second.items["counts"] == {"new_flags": 1, "due_today": 4, "overdue": 2}

        bob = for_coordinator(second.items, "bob")
        assert [f["encounter"] for f in bob["new_flags"]] == ["l1"]
        assert {t["task_id"] for t in bob["due_tasks"]} == {overdue, later_today, _first_visit(session, late)}
        carol = for_coordinator(second.items, "carol")  # owns a task on bob's case
        assert carol == {
            "new_flags": [],
            "due_tasks": [t for t in second.items["due_tasks"] if t["task_id"] == overdue],
            "counts": {"new_flags": 0, "due_today": 0, "overdue": 1},
        }
        alice = for_coordinator(second.items, "alice")
        assert alice["new_flags"] == [] and [t["task_id"] for t in alice["due_tasks"]] == [early_visit]

        msk_id = get_source(session, "msk").id or 0
        assert [m.local_date for m in latest_for(session, [msk_id])] == ["2026-11-03"]


def test_one_instant_is_a_different_local_date_in_each_zone(engine: Engine) -> None:
    now = datetime(2026, 11, 3, 4, 30, tzinfo=UTC)  # 07:30 in Moscow, 23:30 the day before in New York
    with time_machine.travel(now - timedelta(days=2), tick=False), session_scope(engine) as session:
        _source(session, "msk", "Europe/Moscow")
        nyc = _source(session, "nyc", "America/New_York")
        case = _flag(session, nyc, "n1", now - timedelta(hours=2), "dana")
        before_midnight = _task(session, case, "Before NY midnight", datetime(2026, 11, 3, 4, 59, tzinfo=UTC))
        after_midnight = _task(session, case, "After NY midnight", datetime(2026, 11, 3, 5, 1, tzinfo=UTC))
        visit = _first_visit(session, case)  # due a day after opening: overdue by now
    with session_scope(engine) as session:
        m = build_morning_list(session, get_source(session, "msk"), now=now, rules_version=RULES)
        n = build_morning_list(session, get_source(session, "nyc"), now=now, rules_version=RULES)
        assert m is not None and n is not None
        assert (m.local_date, n.local_date) == ("2026-11-03", "2026-11-02")
        assert m.items == {"new_flags": [], "due_tasks": [], "counts": {"new_flags": 0, "due_today": 0, "overdue": 0}}
        assert {t["task_id"]: t["overdue"] for t in n.items["due_tasks"]} == {visit: True, before_midnight: False}
        assert after_midnight not in {t["task_id"] for t in n.items["due_tasks"]}
        assert [f["encounter"] for f in n.items["new_flags"]] == ["n1"]
        assert len(session.exec(select(MorningList)).all()) == 2


def test_the_morning_command_builds_and_shows_the_newest_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from discharge_bridge.cli import app

    monkeypatch.setenv("DISCHARGE_BRIDGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DISCHARGE_BRIDGE_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        upgrade()
        version = loading.rule_set(get_settings().mappings_dir).version
        with session_scope(get_engine()) as session:
            msk = _source(session, "msk", "Europe/Moscow")
            _flag(session, msk, "a1", DAY1, "alice", rules_version=version)
            _flag(session, msk, "b1", DAY1, "bob", rules_version=version)
        runner = CliRunner()
        with time_machine.travel(DAY1 + timedelta(hours=1), tick=False):  # the flags are of DAY1
            empty = runner.invoke(app, ["morning"])
            assert empty.exit_code == 0 and "no morning list yet" in empty.output
            built = runner.invoke(app, ["morning", "--build", "--source", "msk", "--format", "json"])
            assert built.exit_code == 0, built.output
            [row] = json.loads(built.output)
            assert (row["source"], row["generated_by"], row["items"]["counts"]["new_flags"]) == ("msk", "cli", 2)
            mine = json.loads(runner.invoke(app, ["morning", "--coordinator", "bob", "--format", "json"]).output)
            assert [f["encounter"] for f in mine[0]["items"]["new_flags"]] == ["b1"]
            table = runner.invoke(app, ["morning"], env={"COLUMNS": "200"})
            assert table.exit_code == 0 and "msk" in table.output and "2 new flags" in table.output
            again = runner.invoke(app, ["morning", "--build", "--format", "json"])  # idempotent per local date
            assert json.loads(again.output)[0]["generated_at"] == row["generated_at"]
            unknown = runner.invoke(app, ["morning", "--source", "nope"])
            assert unknown.exit_code == 1
    finally:
        get_settings.cache_clear()
