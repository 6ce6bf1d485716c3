"""Users of the handoff network's roles: a receiver is bound to one organisation of the directory and
sees no hospital; a psychologist sees hospitals like a coordinator; no one else has an organisation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from discharge_bridge.cli import app as cli
from discharge_bridge.config import Settings, get_settings
from discharge_bridge.db import get_engine, session_scope, upgrade
from discharge_bridge.demo import DEMO_RECEIVERS, DEMO_SOURCE, ensure_demo_users
from discharge_bridge.demo.directory import ensure_demo_directory
from discharge_bridge.directory.models import Organisation
from discharge_bridge.directory.service import organisation_by_code
from discharge_bridge.users.roles import Role, home_page
from discharge_bridge.users.service import get_user, issue_token, list_users, principal_for_token
from tests.support.factories import make_source

runner = CliRunner()


@pytest.fixture
def cli_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("DISCHARGE_BRIDGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DISCHARGE_BRIDGE_DATABASE_URL", raising=False)
    monkeypatch.setenv("PW", "a long walk to the sea")
    get_settings.cache_clear()
    settings = get_settings()
    yield settings
    get_settings.cache_clear()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, " ".join(result.output.split())  # the terminal's line breaks aside


def test_a_receiver_needs_an_organisation_and_no_one_else_may_have_one(cli_settings: Settings) -> None:
    assert run("users", "list")[0] == 0  # migrates the fresh database
    with session_scope(get_engine(cli_settings)) as session:
        make_source(session, "city")
        org = Organisation(code="demo-home-care", name="Home care of the north", kind="city")
        session.add(org)
        session.flush()
        org_id = org.id
    code, out = run("users", "add", "rita", "--role", "receiver", "--password-env", "PW")
    assert code == 1 and "--organisation CODE" in out
    code, out = run("users", "add", "rita", "--role", "receiver", "--organisation", "nowhere", "--password-env", "PW")
    assert code == 1 and "no organisation with code 'nowhere'" in out
    code, out = run(
        "users",
        "add",
        "rita",
        "--role",
        "receiver",
        "--organisation",
        "demo-home-care",
        "--source",
        "city",
        "--password-env",
        "PW",
    )
    assert code == 1 and "drop --source" in out
    code, out = run(
        "users",
        "add",
        "anna",
        "--role",
        "coordinator",
        "--source",
        "city",
        "--organisation",
        "demo-home-care",
        "--password-env",
        "PW",
    )
    assert code == 1 and "drop --organisation" in out
    code, out = run(
        "users", "add", "rita", "--role", "receiver", "--organisation", "demo-home-care", "--password-env", "PW"
    )
    assert code == 0, out
    assert run("users", "add", "pavel", "--role", "psychologist", "--source", "city", "--password-env", "PW")[0] == 0
    listed = {u["username"]: u for u in json.loads(runner.invoke(cli, ["users", "list", "--format", "json"]).output)}
    assert (listed["rita"]["organisation"], listed["rita"]["role"]) == ("demo-home-care", "receiver")
    assert (listed["pavel"]["organisation"], listed["pavel"]["sources"]) == (None, ["city"])
    with session_scope(get_engine(cli_settings)) as session:
        principal = principal_for_token(session, issue_token(session, "rita", "t"))
        assert principal is not None
        assert (principal.organisation_id, principal.source_ids, home_page(principal.role)) == (org_id, (), "/portal")
    assert home_page(Role.psychologist) == "/psychology"
    # Leaving the receiver role unbinds the organisation; a coordinator then needs a hospital.
    code, out = run("users", "role", "rita", "--role", "coordinator")
    assert code == 1 and "--source" in out
    assert run("users", "role", "rita", "--role", "coordinator", "--source", "city")[0] == 0
    with session_scope(get_engine(cli_settings)) as session:
        assert get_user(session, "rita").organisation_id is None
    code, out = run("users", "role", "rita", "--role", "receiver")
    assert code == 1 and "--organisation CODE" in out


def test_the_demo_has_a_psychologist_and_a_receiver_of_a_demo_organisation(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    upgrade(settings)
    with session_scope(get_engine(settings)) as session:
        make_source(session, DEMO_SOURCE)
    ensure_demo_directory(settings)
    ensure_demo_users(settings)
    with session_scope(get_engine(settings)) as session:
        svetlana, pavel = get_user(session, "svetlana"), get_user(session, "pavel")
        home_care = organisation_by_code(session, DEMO_RECEIVERS["svetlana"])
        assert home_care is not None
        assert (svetlana.role, svetlana.organisation_id) == (Role.receiver, home_care.id)
        assert (pavel.role, pavel.organisation_id) == (Role.psychologist, None)
        assert [v.sources for v in list_users(session) if v.username == "pavel"] == [[DEMO_SOURCE]]
