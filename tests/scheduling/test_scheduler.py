"""Polling jobs: one per enabled source, at its interval, never added paused."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from discharge_bridge.config import get_settings
from discharge_bridge.connections.service import add_source, update_source
from discharge_bridge.db import get_engine, session_scope, upgrade
from discharge_bridge.scheduling.scheduler import add_poll_jobs, poll_job


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DISCHARGE_BRIDGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DISCHARGE_BRIDGE_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    upgrade()
    yield tmp_path
    get_settings.cache_clear()


def test_one_job_per_enabled_source_at_its_interval() -> None:
    with session_scope(get_engine()) as session:
        add_source(session, name="a", hospital="A", base_url="https://a.example/fhir", poll_interval_seconds=60)
        add_source(session, name="b", hospital="B", base_url="https://b.example/fhir", poll_interval_seconds=600)
        add_source(session, name="off", hospital="Off", base_url="https://c.example/fhir")
        update_source(session, "off", {"enabled": False})
    scheduler = BackgroundScheduler(timezone="UTC")
    assert add_poll_jobs(scheduler) == ["a", "b"]
    scheduler.start(paused=True)
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {"poll:a", "poll:b"}
        assert jobs["poll:a"].trigger.interval.total_seconds() == 60
        assert jobs["poll:b"].trigger.interval.total_seconds() == 600
        assert all(job.next_run_time is not None for job in jobs.values())  # scheduled, not paused
        assert all(job.max_instances == 1 for job in jobs.values())
    finally:
        scheduler.shutdown(wait=False)


def test_a_failing_poll_is_logged_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        assert poll_job("no-such-source") is None
    assert "job poll_job failed: SourceNotFound" in caplog.text
