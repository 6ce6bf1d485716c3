"""``sources set --writeback`` (audited) and ``writeback status`` / ``writeback retry`` from the terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from discharge_bridge.audit import AuditQuery, search_audit
from discharge_bridge.cli import app
from discharge_bridge.config import get_settings
from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.ehr.models import WritebackItem, WritebackStatus
from discharge_bridge.sources.models import Source

runner = CliRunner()
OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "security", "diagnostics": "scope"}],
}


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DISCHARGE_BRIDGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DISCHARGE_BRIDGE_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_writeback_on_off_and_resources_are_audited() -> None:
    _ok("sources", "add", "city", "--hospital", "City", "--base-url", "https://ehr.example/fhir")
    _ok("sources", "set", "city", "--writeback", "on", "--writeback-resources", "Task,Flag")
    with session_scope(get_engine()) as session:
        assert session.exec(select(Source)).one().writeback == {"enabled": True, "resources": ["Flag", "Task"]}
        entry = search_audit(session, AuditQuery(target_name="city"))[0]
    assert entry.action == "source.edit"
    assert entry.details["writeback"] == {"from": {}, "to": {"enabled": True, "resources": ["Flag", "Task"]}}
    _ok("sources", "set", "city", "--writeback", "off")
    with session_scope(get_engine()) as session:
        assert session.exec(select(Source)).one().writeback["enabled"] is False
    bad = runner.invoke(app, ["sources", "set", "city", "--writeback-resources", "Patient"])
    assert bad.exit_code == 1 and "Flag, RiskAssessment, Task" in bad.output
    assert runner.invoke(app, ["sources", "set", "city", "--writeback", "maybe"]).exit_code == 2


def test_status_and_retry() -> None:
    _ok("sources", "add", "city", "--hospital", "City", "--base-url", "https://ehr.example/fhir")
    _ok("sources", "set", "city", "--writeback", "on")
    with session_scope(get_engine()) as session:
        source = session.exec(select(Source)).one()
        for n, status in enumerate([WritebackStatus.pending, WritebackStatus.sent, WritebackStatus.failed]):
            session.add(
                WritebackItem(
                    source_id=source.id or 0,
                    resource_type="Flag",
                    identifier=f"flag-city-{n}",
                    desired={},
                    desired_hash="h",
                    status=status,
                    last_error="POST Flag returned 403 Forbidden" if status == WritebackStatus.failed else None,
                    last_outcome=OUTCOME if status == WritebackStatus.failed else None,
                )
            )
    shown = json.loads(_ok("writeback", "status", "city", "--format", "json"))[0]
    assert (shown["enabled"], shown["pending"], shown["sent"], shown["failed"]) == (True, 1, 1, 1)
    assert shown["failed_items"][0]["issues"] == [{"severity": "error", "code": "security", "diagnostics": "scope"}]
    assert "403 Forbidden" in _ok("writeback", "status")
    assert "1 failed items" in _ok("writeback", "retry", "city")
    with session_scope(get_engine()) as session:
        assert {i.status for i in session.exec(select(WritebackItem))} == {
            WritebackStatus.pending,
            WritebackStatus.sent,
        }
        assert search_audit(session, AuditQuery(target_name="city"))[0].action == "writeback.retry"
    assert runner.invoke(app, ["writeback", "retry", "nowhere"]).exit_code == 1
