"""SMART launch from the terminal: ``users link-ehr`` / ``unlink-ehr`` (audited, shown by ``users list``)
and ``sources set --smart-client-id / --smart-scope`` (audited, shown on the IT source page)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select
from typer.testing import CliRunner

from discharge_bridge.app import create_app
from discharge_bridge.audit import AuditQuery, search_audit
from discharge_bridge.cli import app
from discharge_bridge.config import get_settings
from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.deps import SESSION_COOKIE
from discharge_bridge.sources.models import Source
from discharge_bridge.users.models import UserFhirIdentity
from discharge_bridge.users.service import get_user, start_session

runner = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("DISCHARGE_BRIDGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DISCHARGE_BRIDGE_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _city_and_olga() -> None:
    _ok("sources", "add", "city", "--hospital", "City", "--base-url", "https://ehr.example/fhir")
    _ok("users", "add", "olga", "--role", "coordinator", "--source", "city", "--machine")


def test_link_and_unlink_an_ehr_identity() -> None:
    _city_and_olga()
    _ok("users", "link-ehr", "olga", "--source", "city", "--fhir-user", "Practitioner/123")
    listed = json.loads(_ok("users", "list", "--format", "json"))
    assert [u["ehr"] for u in listed if u["username"] == "olga"] == [["city:Practitioner/123"]]
    bad = runner.invoke(app, ["users", "link-ehr", "olga", "--source", "city", "--fhir-user", "123"])
    assert bad.exit_code == 1 and "Practitioner/123" in bad.output
    assert (
        runner.invoke(
            app, ["users", "link-ehr", "olga", "--source", "nowhere", "--fhir-user", "Practitioner/1"]
        ).exit_code
        == 1
    )
    _ok("users", "unlink-ehr", "olga", "--source", "city")
    with session_scope(get_engine()) as session:
        assert session.exec(select(UserFhirIdentity)).all() == []
        actions = [(e.action, e.details) for e in search_audit(session, AuditQuery(target_name="olga"))]
    assert ("user.link_ehr", {"source": "city", "fhir_user": "Practitioner/123"}) in actions
    assert ("user.unlink_ehr", {"source": "city", "fhir_user": "Practitioner/123"}) in actions


def test_smart_client_id_is_set_audited_and_shown_to_it() -> None:
    _city_and_olga()
    _ok("sources", "set", "city", "--smart-client-id", "bridge-app", "--smart-scope", "launch openid  fhirUser")
    with session_scope(get_engine()) as session:
        assert session.exec(select(Source)).one().smart_launch == {
            "client_id": "bridge-app",
            "scope": "launch openid fhirUser",
        }
        entry = search_audit(session, AuditQuery(target_name="city"))[0]
        assert entry.action == "source.edit"
        assert entry.details["smart_launch"]["to"] == {"client_id": "bridge-app", "scope": "launch openid fhirUser"}
        _ok("users", "add", "irina", "--role", "it_admin", "--source", "city", "--machine")
        token, _ = start_session(session, get_user(session, "irina"), lifetime=timedelta(hours=1))
    client = TestClient(create_app(get_settings()))
    client.cookies.set(SESSION_COOKIE, token)
    page = client.get("/it/sources/city").text
    assert 'data-smart-launch="on"' in page and "bridge-app" in page
    _ok("sources", "set", "city", "--smart-client-id", "")
    with session_scope(get_engine()) as session:
        assert session.exec(select(Source)).one().smart_launch == {"scope": "launch openid fhirUser"}
    assert 'data-smart-launch="off"' in client.get("/it/sources/city").text
