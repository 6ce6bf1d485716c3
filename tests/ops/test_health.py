"""/healthz and /readyz: open to anyone; ready means the database answers and the scheduler is alive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import time_machine
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from discharge_bridge.app import create_app
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.scheduling.models import SchedulerLease

NOW = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)


def _beat(engine: Engine, seconds_ago: float) -> None:
    with session_scope(engine) as session:
        lease = session.get(SchedulerLease, "scheduler") or SchedulerLease(name="scheduler", holder="host:1")
        lease.heartbeat_at = NOW - timedelta(seconds=seconds_ago)
        session.add(lease)


def test_readyz_wants_a_fresh_scheduler_heartbeat(settings: Settings, engine: Engine) -> None:
    client = TestClient(create_app(settings))  # no credentials: health checks are open
    with time_machine.travel(NOW, tick=False):
        assert client.get("/healthz").json() == {"status": "ok"}
        missing = client.get("/readyz")
        assert missing.status_code == 503
        assert missing.json() == {"status": "unavailable", "database": "ok", "scheduler": "missing"}

        _beat(engine, 10)
        fresh = client.get("/readyz")
        assert fresh.status_code == 200
        assert fresh.json() == {
            "status": "ok",
            "database": "ok",
            "scheduler": "ok",
            "scheduler_heartbeat_age_seconds": 10.0,
        }

        _beat(engine, settings.scheduler_stale_seconds + 1)
        stale = client.get("/readyz")
        assert stale.status_code == 503
        assert stale.json()["scheduler"] == "stale" and stale.json()["database"] == "ok"

        _beat(engine, settings.scheduler_stale_seconds)  # the limit itself still counts as alive
        assert client.get("/readyz").status_code == 200


def test_readyz_names_an_unreachable_database_without_its_address() -> None:
    url = "sqlite:////nonexistent-dir-7c1/discharge_bridge.db"
    client = TestClient(create_app(Settings(database_url=url)))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "database": "unreachable",
        "error": "OperationalError",
        "scheduler": "unknown",
    }
    assert "nonexistent" not in response.text
    assert client.get("/healthz").status_code == 200


def test_readyz_on_a_schema_never_migrated(tmp_path: Path) -> None:
    client = TestClient(create_app(Settings(data_dir=tmp_path / "empty")))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "database": "ok",
        "scheduler": "unknown",
        "error": "OperationalError",
    }
