"""The audit trail of administration: a row for each admin action, no secret in it, the API, the CSV, the page."""

from __future__ import annotations

import csv
import getpass
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import select
from typer.testing import CliRunner

from discharge_bridge.audit import AdminAction, AdminAuditEntry, Target, record_admin_action
from discharge_bridge.cli import app as cli
from discharge_bridge.config import Settings, get_settings
from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.users.throttle import ThrottlePolicy, sign_in
from tests.support.factories import api_client, make_source, user_client

runner = CliRunner()
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def entries(engine: Engine) -> list[AdminAuditEntry]:
    with session_scope(engine) as session:
        return list(session.exec(select(AdminAuditEntry).order_by(AdminAuditEntry.id)))  # type: ignore[arg-type]


@pytest.fixture
def cli_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("DISCHARGE_BRIDGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DISCHARGE_BRIDGE_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def ok(*args: str) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_every_user_command_is_recorded_with_who_did_it_and_no_secret(
    cli_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PW1", "a long walk to the sea")
    monkeypatch.setenv("PW2", "another long walk home")
    ok("sources", "add", "city", "--hospital", "City", "--base-url", "https://ehr.example/fhir")
    ok("sources", "add", "north", "--hospital", "North", "--base-url", "https://ehr.north.example/fhir")
    ok("users", "add", "anna", "--role", "coordinator", "--source", "city", "--password-env", "PW1")
    ok("users", "role", "anna", "--role", "bed_manager", "--source", "north")
    ok("users", "password", "anna", "--password-env", "PW2")
    token = runner.invoke(cli, ["users", "token", "anna", "--name", "scrape"]).stdout.strip().splitlines()[-1]
    ok("users", "revoke", "anna", "--name", "scrape")
    engine = get_engine(cli_settings)
    with time_machine.travel(START, tick=False) as clock:
        for _ in range(10):  # each as soon as allowed: the tenth locks the account
            with session_scope(engine) as session:
                wait = sign_in(session, "anna", "wrong!", address=None, policy=ThrottlePolicy()).retry_after
            clock.shift(wait or 1)
        clock.shift(-900)  # back inside the lock
        assert "unlocked account anna" in ok("users", "unlock", "anna")
        assert "is not locked" in ok("users", "unlock", "--address", "10.1.2.3")
    ok("users", "disable", "anna")
    refused = runner.invoke(cli, ["users", "add", "anna", "--role", "admin", "--password-env", "PW1"])
    assert refused.exit_code == 1  # a refused command leaves no entry

    actor = f"cli:{getpass.getuser()}"
    rows = [row for row in entries(engine) if row.target_kind != "source"]
    assert [(r.actor, r.action, r.target_kind, r.target_name) for r in rows] == [
        (actor, "user.add", "user", "anna"),
        (actor, "user.role", "user", "anna"),
        (actor, "user.password", "user", "anna"),
        (actor, "token.create", "user", "anna"),
        (actor, "token.revoke", "user", "anna"),
        (actor, "signin.unlock", "account", "anna"),
        (actor, "user.disable", "user", "anna"),
    ]
    assert rows[0].details == {"role": "coordinator", "sources": ["city"], "machine": False, "language": "en"}
    assert rows[1].details == {
        "role": {"from": "coordinator", "to": "bed_manager"},
        "sources": {"from": ["city"], "to": ["north"]},
    }
    assert rows[3].details == {"token_name": "scrape", "prefix": token[:10]}
    assert rows[4].details == {"token_name": "scrape", "revoked": 1}
    assert rows[5].details["failures"] == 10
    stored = json.dumps([r.details for r in rows])
    assert token.startswith("dbt_") and token not in stored
    assert "long walk" not in stored


def test_every_source_command_is_recorded_with_what_changed_and_no_secret(
    cli_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EHR_TOKEN", "a bearer secret")
    ok("sources", "add", "city", "--hospital", "City", "--base-url", "https://ehr.example/fhir")
    ok("sources", "set", "city", "--interval", "120", "--disabled", "--auth", "bearer", "--token-env", "EHR_TOKEN")
    ok("sources", "set", "city", "--mapping", "demo-hospital")
    refused = runner.invoke(cli, ["sources", "set", "city", "--mapping", "no-such-mapping"])
    assert refused.exit_code == 1, refused.output
    ok("sources", "remove", "city", "--yes")

    actor = f"cli:{getpass.getuser()}"
    rows = entries(get_engine(cli_settings))
    assert [(r.actor, r.action, r.target_kind, r.target_name) for r in rows] == [
        (actor, "source.add", "source", "city"),
        (actor, "source.edit", "source", "city"),
        (actor, "source.edit", "source", "city"),
        (actor, "mapping.set", "source", "city"),
        (actor, "source.remove", "source", "city"),
    ]
    assert rows[0].details["base_url"] == "https://ehr.example/fhir" and rows[0].details["enabled"] is True
    assert rows[1].details == {
        "poll_interval_seconds": {"from": "300", "to": "120"},
        "enabled": {"from": True, "to": False},
        "auth_type": {"from": "none", "to": "bearer"},
        "token_env": {"from": "", "to": "EHR_TOKEN"},
    }
    assert rows[3].details == {"from": "default", "to": "demo-hospital"}
    assert "a bearer secret" not in json.dumps([r.details for r in rows])


def test_details_never_keep_a_secret(engine: Engine) -> None:
    with session_scope(engine) as session:
        record_admin_action(
            session,
            "root",
            AdminAction.source_edit,
            Target("source", "city"),
            {
                "auth": {"type": "basic", "username": "svc", "password": "hunter2", "password_env": "CITY_PW"},
                "client_secret": "abc",
                "api_key": "k",
                "token_file": "/etc/city.token",
                "base_url": "https://ehr.example/fhir",
            },
        )
    assert entries(engine)[0].details == {
        "auth": {"type": "basic", "username": "svc", "password": "[redacted]", "password_env": "CITY_PW"},
        "client_secret": "[redacted]",
        "api_key": "[redacted]",
        "token_file": "/etc/city.token",
        "base_url": "https://ehr.example/fhir",
    }


def _seed(engine: Engine) -> None:
    with time_machine.travel(START, tick=False) as clock, session_scope(engine) as session:
        for n in range(5):
            record_admin_action(session, "root", AdminAction.user_add, Target("user", f"user{n}"), {"role": "admin"})
            clock.shift(3600)
        record_admin_action(session, "sign-in", AdminAction.signin_lock, Target("account", "=cmd|' /C calc'!A0"))


def test_the_api_searches_pages_and_exports_the_trail_for_admins_only(engine: Engine, settings: Settings) -> None:
    _seed(engine)
    with session_scope(engine) as session:
        make_source(session)
    admin = api_client(settings)
    page = admin.get("/api/v1/audit", params={"action": "user.add", "limit": 2})
    assert page.status_code == 200
    body = page.json()
    assert [e["target_name"] for e in body["entries"]] == ["user4", "user3"]
    older = admin.get("/api/v1/audit", params={"action": "user.add", "limit": 2, "before_id": body["next_before_id"]})
    assert [e["target_name"] for e in older.json()["entries"]] == ["user2", "user1"]
    since = admin.get("/api/v1/audit", params={"since": "2026-12-01T12:00:00Z", "actor": "root"}).json()
    assert [e["target_name"] for e in since["entries"]] == ["user4", "user3"] and since["next_before_id"] is None
    naive = admin.get("/api/v1/audit", params={"since": "2026-12-01T12:00:00"})
    assert naive.status_code == 422 and "since" in naive.text

    exported = admin.get("/api/v1/audit.csv", params={"target_kind": "account"})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(exported.text)))
    assert lines[0] == ["id", "at", "actor", "action", "target_kind", "target_name", "details"]
    assert [line[2:6] for line in lines[1:]] == [["sign-in", "signin.lock", "account", "'=cmd|' /C calc'!A0"]]
    assert len(list(csv.reader(io.StringIO(admin.get("/api/v1/audit.csv").text)))) == 7

    assert user_client(settings, engine, "anna").get("/api/v1/audit").status_code == 403
    assert user_client(settings, engine, "ivan", role="it_admin").get("/api/v1/audit.csv").status_code == 403
    assert api_client(settings, token=None).get("/api/v1/audit").status_code == 401


def test_the_page_lists_the_trail_and_is_linked_from_the_access_log(engine: Engine, settings: Settings) -> None:
    _seed(engine)
    with session_scope(engine) as session:
        make_source(session)
    admin = user_client(settings, engine, "root", role="admin")
    assert 'href="/audit"' in admin.get("/access-log").text
    page = admin.get("/audit", params={"action": "user.add", "since": "2026-12-01", "until": "2026-12-01"})
    assert page.status_code == 200
    assert page.text.count("<code>user.add</code>") == 5
    assert "role: admin" in page.text
    assert 'href="/api/v1/audit.csv?action=user.add&amp;since=2026-12-01T00%3A00%3A00%2B00%3A00' in page.text
    narrowed = admin.get("/audit", params={"target": "user2"}).text
    assert narrowed.count("<code>user.add</code>") == 1
    assert "A date could not be read" in admin.get("/audit", params={"since": "1 Dec"}).text
    assert user_client(settings, engine, "anna").get("/audit").status_code == 403
