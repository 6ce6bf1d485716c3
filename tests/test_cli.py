"""The command line as hospital IT uses it: sources, sync, dead letters, worklist."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from discharge_bridge.audit import AuditQuery, search_audit
from discharge_bridge.cli import app
from discharge_bridge.config import get_settings
from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.demo import DEMO_DATA

runner = CliRunner()


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


def test_sources_add_list_remove_and_secrets_by_name_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITY_TOKEN", "s3cret-value")
    _ok(
        "sources",
        "add",
        "city",
        "--hospital",
        "City",
        "--base-url",
        "https://ehr.example/fhir",
        "--auth",
        "bearer",
        "--token-env",
        "CITY_TOKEN",
        "--timezone",
        "Europe/Moscow",
    )
    listed = json.loads(_ok("sources", "list", "--format", "json"))
    assert [(s["name"], s["auth"], s["timezone"]) for s in listed] == [("city", "bearer", "Europe/Moscow")]
    assert "s3cret" not in _ok("sources", "list")

    again = runner.invoke(app, ["sources", "add", "city", "--hospital", "C", "--base-url", "https://x/fhir"])
    assert again.exit_code == 1 and "already exists" in again.output
    bad_tz = runner.invoke(
        app, ["sources", "add", "b", "--hospital", "B", "--base-url", "https://x/fhir", "--timezone", "Mars/Base"]
    )
    assert bad_tz.exit_code == 1 and "time zone" in bad_tz.output
    no_token = runner.invoke(
        app, ["sources", "add", "c", "--hospital", "C", "--base-url", "https://x/fhir", "--auth", "bearer"]
    )
    assert no_token.exit_code == 1 and "token" in no_token.output

    refused = runner.invoke(app, ["sources", "remove", "city"])
    assert refused.exit_code == 2 and "--yes" in refused.output
    _ok("sources", "remove", "city", "--yes")
    assert json.loads(_ok("sources", "list", "--format", "json")) == []


def test_sync_of_an_unreachable_source_exits_non_zero_with_the_reason() -> None:
    with socket.socket() as free:  # a port nothing listens on (a source may use web ports only, issue 16)
        free.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{free.getsockname()[1]}/fhir"
    _ok("sources", "add", "down", "--hospital", "Down", "--base-url", down, "--interval", "60")
    result = runner.invoke(app, ["sync", "--once", "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 1
    rows = json.loads(result.stdout[result.stdout.index("[") :])
    assert rows[0]["status"] == "failed" and "ConnectError" in rows[0]["error"]


def test_file_source_sync_worklist_and_dead_letter_replay(tmp_path: Path) -> None:
    _ok("sources", "add", "files", "--hospital", "Files", "--base-url", str(DEMO_DATA), "--mode", "file")
    rows = json.loads(_ok("sync", "--once", "--format", "json"))
    assert rows[0]["status"] == "ok" and rows[0]["dead_letters"] == 2 and rows[0]["flagged"] >= 20

    items = json.loads(_ok("worklist", "--format", "json"))["items"]
    assert items[0]["priority"] == "high"
    assert all(r["evidence"] for item in items for r in item["reasons"])

    letters = json.loads(_ok("deadletters", "list", "--format", "json"))
    assert sorted(letter["error"].split(":")[0] for letter in letters) == [
        "Encounter has no subject reference to a Patient",
        "Encounter.broken.ndjson line 2",
    ]
    replay = runner.invoke(app, ["deadletters", "replay"])
    assert replay.exit_code == 1  # the files have not been fixed: still unusable, still listed
    assert "still" in replay.output
    assert len(json.loads(_ok("deadletters", "list", "--format", "json"))) == 2
    _ok("rescore", "--source", "files")
    with session_scope(get_engine()) as session:  # both in the audit trail, as the terminal's user
        audit = search_audit(session, AuditQuery(target_name="files"))
    assert [e.action for e in audit][:2] == ["rules.rescore", "deadletter.replay"]
    assert all(e.actor.startswith("cli:") for e in audit[:2]) and audit[1].details["resolved"] == 0


def test_sources_set_changes_settings_in_place_and_refuses_a_broken_mapping(tmp_path: Path) -> None:
    _ok("sources", "add", "city", "--hospital", "City", "--base-url", "https://ehr.example/fhir")
    _ok("sources", "set", "city", "--interval", "120", "--mapping", "city-hospital", "--disabled")
    listed = json.loads(_ok("sources", "list", "--format", "json"))[0]
    assert (listed["interval_s"], listed["mapping"]) == (120, "city-hospital")

    missing = runner.invoke(app, ["sources", "set", "city", "--mapping", "no-such-site"])
    assert missing.exit_code == 1 and "no-such-site" in missing.output
    nothing = runner.invoke(app, ["sources", "set", "city"])
    assert nothing.exit_code == 2
    assert json.loads(_ok("sources", "list", "--format", "json"))[0]["mapping"] == "city-hospital"
