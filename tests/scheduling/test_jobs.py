"""The scheduler's jobs under a frozen clock, two hospitals in different zones (Moscow: UTC+3 all year;
New York: DST). On SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.cases.tasks.models import Task, TaskPriority
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import update_source
from discharge_bridge.db import session_scope
from discharge_bridge.risk import loading
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.scheduling.jobs import escalation_job, morning_job
from discharge_bridge.scheduling.rescore import scoring_fingerprint
from discharge_bridge.scheduling.scheduler import SourceJobs, build_scheduler, morning_trigger
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.service import get_source
from discharge_bridge.worklists.models import MorningList
from tests.support.factories import flagged_case, make_source, make_user


def _hospitals(session: Session, settings: Settings) -> dict[str, Source]:
    """msk (Europe/Moscow) and nyc (America/New_York), scored with today's files already."""
    out = {}
    for name, tz in (("msk", "Europe/Moscow"), ("nyc", "America/New_York")):
        make_source(session, name)
        source = update_source(session, name, {"timezone": tz})
        source.scoring_fingerprint = scoring_fingerprint(source, settings)  # no re-score in these tests
        out[name] = source
    session.flush()
    return out


def _lists(session: Session) -> dict[str, list[str]]:
    names = {s.id: s.name for s in session.exec(select(Source))}
    got: dict[str, list[str]] = {}
    for m in session.exec(select(MorningList).order_by(MorningList.local_date)):  # type: ignore[arg-type]
        got.setdefault(names[m.source_id], []).append(m.local_date)
    return got


def _paused(settings: Settings) -> BackgroundScheduler:
    scheduler = build_scheduler(settings)
    scheduler.start(paused=True)
    return scheduler


def test_morning_trigger_is_07_00_local_in_each_zone_across_dst(engine: Engine, settings: Settings) -> None:
    with session_scope(engine) as session:
        hospitals = _hospitals(session, settings)
    msk, nyc = morning_trigger(hospitals["msk"], settings), morning_trigger(hospitals["nyc"], settings)

    def fires(trigger: object, start: datetime, count: int) -> list[datetime]:
        out, prev = [], None
        now = start
        for _ in range(count):
            nxt = trigger.get_next_fire_time(prev, now)  # type: ignore[attr-defined]
            out.append(nxt.astimezone(UTC))
            prev, now = nxt, nxt + timedelta(seconds=1)
        return out

    spring = datetime(2026, 3, 6, 13, 0, tzinfo=UTC)  # New York moves to EDT on Sunday 8 March 2026
    assert fires(nyc, spring, 3) == [
        datetime(2026, 3, 7, 12, 0, tzinfo=UTC),  # 07:00 EST
        datetime(2026, 3, 8, 11, 0, tzinfo=UTC),  # 07:00 EDT
        datetime(2026, 3, 9, 11, 0, tzinfo=UTC),
    ]
    assert fires(msk, spring, 3) == [datetime(2026, 3, d, 4, 0, tzinfo=UTC) for d in (7, 8, 9)]
    autumn = datetime(2026, 10, 31, 0, 0, tzinfo=UTC)  # back to EST on Sunday 1 November 2026
    assert fires(nyc, autumn, 2) == [
        datetime(2026, 10, 31, 11, 0, tzinfo=UTC),
        datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
    ]

    with session_scope(engine) as session:
        update_source(session, "msk", {"morning_time": "06:30"})
        assert morning_trigger(get_source(session, "msk"), settings).get_next_fire_time(None, spring) == datetime(
            2026, 3, 7, 3, 30, tzinfo=UTC
        )
    assert morning_trigger(
        hospitals["nyc"], settings.model_copy(update={"morning_worklist_time": "08:15"})
    ).get_next_fire_time(None, spring) == datetime(2026, 3, 6, 13, 15, tzinfo=UTC)  # 08:15 EST, that day


def test_the_morning_job_fires_at_each_hospitals_07_00(engine: Engine, settings: Settings) -> None:
    version = loading.rule_set(settings.mappings_dir).version
    with session_scope(engine) as session:
        hospitals = _hospitals(session, settings)
        for name in ("msk", "nyc"):
            make_user(session, f"coord-{name}", "coordinator", (name,))
            flagged_case(session, hospitals[name].id or 0, f"adm-{name}", f"p-{name}", rules_version=version)
        for row in session.exec(select(RiskAssessment)):
            row.first_flagged_at = datetime(2026, 3, 6, 20, 0, tzinfo=UTC)
            session.add(row)

    def run_until(instant: datetime, name: str) -> None:
        # The clock runs from two seconds before `instant`; the job must fire on its own.
        with time_machine.travel(instant - timedelta(seconds=2), tick=True):
            scheduler = build_scheduler(settings)
            scheduler.start()
            try:
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    with session_scope(engine) as session:
                        if name in _lists(session):
                            return
                    time.sleep(0.2)
                pytest.fail(f"no morning list for {name} after its 07:00")
            finally:
                scheduler.shutdown(wait=True)

    run_until(datetime(2026, 3, 7, 4, 0, tzinfo=UTC), "msk")  # 07:00 in Moscow, 23:00 in New York
    with session_scope(engine) as session:
        assert _lists(session) == {"msk": ["2026-03-07"]}
    run_until(datetime(2026, 3, 7, 12, 0, tzinfo=UTC), "nyc")  # 07:00 in New York
    with session_scope(engine) as session:
        assert _lists(session) == {"msk": ["2026-03-07"], "nyc": ["2026-03-07"]}
        zones = {hospitals["msk"].id: ZoneInfo("Europe/Moscow"), hospitals["nyc"].id: ZoneInfo("America/New_York")}
        for m in session.exec(select(MorningList)):
            assert m.items["counts"]["new_flags"] == 1 and m.generated_by == "scheduler"
            local = m.generated_at.astimezone(zones[m.source_id])
            assert (local.hour, local.minute) == (7, 0)


def test_a_missed_morning_is_built_at_start_within_the_grace_and_only_when_missing(
    engine: Engine, settings: Settings
) -> None:
    now = datetime(2026, 3, 7, 5, 30, tzinfo=UTC)  # 08:30 in Moscow (07:00 passed), 00:30 in New York
    with session_scope(engine) as session:
        _hospitals(session, settings)
    with time_machine.travel(now, tick=False):
        scheduler = _paused(settings)
        try:
            assert scheduler.get_job("morning:msk").next_run_time == now  # today's list is missing: now
            assert scheduler.get_job("morning:nyc").next_run_time == datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
        finally:
            scheduler.shutdown(wait=False)
        with session_scope(engine) as session:
            msk = get_source(session, "msk")
            session.add(MorningList(source_id=msk.id or 0, local_date="2026-03-07", generated_at=now, items={}))
        scheduler = _paused(settings)
        try:
            assert scheduler.get_job("morning:msk").next_run_time == datetime(2026, 3, 8, 4, 0, tzinfo=UTC)
        finally:
            scheduler.shutdown(wait=False)
    # Past the grace (07:00 + 3 h), a missing list waits for tomorrow morning.
    with time_machine.travel(datetime(2026, 3, 8, 7, 30, tzinfo=UTC), tick=False):  # 10:30 in Moscow
        scheduler = _paused(settings)
        try:
            assert scheduler.get_job("morning:msk").next_run_time == datetime(2026, 3, 9, 4, 0, tzinfo=UTC)
        finally:
            scheduler.shutdown(wait=False)


def test_jobs_follow_sources_added_changed_and_disabled_while_running(engine: Engine, settings: Settings) -> None:
    with session_scope(engine) as session:
        _hospitals(session, settings)
    with time_machine.travel(datetime(2026, 3, 7, 1, 0, tzinfo=UTC), tick=False):
        scheduler = BackgroundScheduler(timezone=UTC)
        scheduler.start(paused=True)
        try:
            jobs = SourceJobs(scheduler, settings)
            jobs.refresh()
            assert {j.id for j in scheduler.get_jobs()} == {"poll:msk", "poll:nyc", "morning:msk", "morning:nyc"}
            with session_scope(engine) as session:
                make_source(session, "spb")
                update_source(session, "msk", {"poll_interval_seconds": 60, "morning_time": "06:00"})
                update_source(session, "nyc", {"enabled": False})
            jobs.refresh()
            got = {j.id: j for j in scheduler.get_jobs()}
            assert set(got) == {"poll:msk", "morning:msk", "poll:spb", "morning:spb"}
            assert got["poll:msk"].trigger.interval.total_seconds() == 60
            assert got["morning:msk"].next_run_time == datetime(2026, 3, 7, 3, 0, tzinfo=UTC)  # 06:00 Moscow
            assert got["morning:spb"].next_run_time == datetime(2026, 3, 7, 7, 0, tzinfo=UTC)  # UTC hospital
            assert all(j.max_instances == 1 and j.coalesce for j in got.values())
        finally:
            scheduler.shutdown(wait=False)


def test_the_full_scheduler_has_every_job_with_one_instance_each(settings: Settings, engine: Engine) -> None:
    with session_scope(engine) as session:
        _hospitals(session, settings)
    scheduler = build_scheduler(settings, heartbeat=lambda: None)
    scheduler.start(paused=True)
    try:
        jobs = {j.id: j for j in scheduler.get_jobs()}
        assert set(jobs) == {
            "poll:msk",
            "poll:nyc",
            "morning:msk",
            "morning:nyc",
            "sources",
            "escalation",
            "rescore",
            "subscriptions",  # push-channel recovery (subscriptions/recovery.py)
            "assessment",  # drains the assessment queue (assessment/stage.py)
            "heartbeat",
        }
        assert jobs["escalation"].trigger.interval == timedelta(minutes=settings.escalation_interval_minutes)
        assert jobs["rescore"].trigger.interval == timedelta(seconds=settings.rescore_check_seconds)
        assert jobs["heartbeat"].trigger.interval == timedelta(seconds=settings.scheduler_heartbeat_seconds)
        assert jobs["heartbeat"].executor == "heartbeat"  # its own thread: busy jobs never delay it
        assert all(j.max_instances == 1 and j.coalesce and j.misfire_grace_time for j in jobs.values())
    finally:
        scheduler.shutdown(wait=False)


def test_failing_jobs_are_logged_and_never_raise(
    engine: Engine, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with session_scope(engine) as session:
        hospitals = _hospitals(session, settings)
        broken = tmp_path / "broken-mappings"
        broken.mkdir()
        (broken / "rules.yaml").write_text("version: [unclosed\n")
    with caplog.at_level(logging.ERROR):
        assert morning_job(hospitals["msk"].id or 0, settings.model_copy(update={"mappings_dir": broken})) is None
    assert "job morning_job failed: RuleSetError" in caplog.text
    with session_scope(engine) as session:
        assert _lists(session) == {}
    # A zone the tz database does not know (saved before validation existed): that source is skipped.
    with session_scope(engine) as session:
        get_source(session, "nyc").timezone = "Mars/Olympus_Mons"
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.start(paused=True)
    try:
        SourceJobs(scheduler, settings).refresh()
        assert {j.id for j in scheduler.get_jobs()} == {"poll:msk", "morning:msk", "poll:nyc"}
        assert "source nyc: jobs not scheduled" in caplog.text
    finally:
        scheduler.shutdown(wait=False)


def test_escalation_job_escalates_overdue_tasks_of_every_hospital(engine: Engine, settings: Settings) -> None:
    with time_machine.travel(datetime(2026, 3, 5, 9, 0, tzinfo=UTC), tick=False), session_scope(engine) as session:
        hospitals = _hospitals(session, settings)
        for name in hospitals:
            flagged_case(session, hospitals[name].id or 0, f"adm-{name}", f"p-{name}")  # first visit due 6 March
    with time_machine.travel(datetime(2026, 3, 7, 9, 0, tzinfo=UTC), tick=False):
        assert escalation_job(settings) == 2
        assert escalation_job(settings) == 0
    with session_scope(engine) as session:
        assert {t.priority for t in session.exec(select(Task))} == {TaskPriority.urgent}
