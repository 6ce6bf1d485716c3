"""The password rules: long enough, not a common password, not the user name; wherever a password is set."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from discharge_bridge.cli import app
from discharge_bridge.config import Settings, get_settings
from discharge_bridge.db import session_scope
from discharge_bridge.demo import DEMO_USERS, demo_password
from discharge_bridge.users.passwords import common_passwords, password_problem
from discharge_bridge.users.roles import Role
from discharge_bridge.users.service import UserError, WeakPassword, add_user, check_password_strength, set_password
from tests.support.factories import make_source, make_user

runner = CliRunner()


@pytest.mark.parametrize(
    ("password", "username", "rule"),
    [
        ("short pass", "anna", "at least 12 characters (this one has 10)"),
        ("Password1234", "anna", "list of common passwords"),  # case does not help
        ("  qwerty123456  ", "anna", "list of common passwords"),  # nor spaces around it
        ("anna.petrova1", "Anna.Petrova1", "must not be the user name"),
    ],
)
def test_a_weak_password_is_refused_naming_the_rule(password: str, username: str, rule: str) -> None:
    with pytest.raises(WeakPassword, match=rule.replace("(", r"\(").replace(")", r"\)")):
        check_password_strength(password, username=username, min_length=12)


def test_a_good_password_passes_and_the_minimum_comes_from_the_settings() -> None:
    assert password_problem("correct horse battery", username="anna", min_length=12) is None
    assert Settings().password_min_length == 12
    assert "14 characters" in (password_problem("correct horse", username=None, min_length=14) or "")
    assert len(common_passwords()) > 5000 and "password" in common_passwords() and "iloveyou" in common_passwords()


def test_the_rules_hold_when_a_user_is_added_or_a_password_changed(engine: Engine) -> None:
    with session_scope(engine) as session:
        make_source(session)
        with pytest.raises(UserError, match="must not be the user name"):
            add_user(
                session, username="nikolay.sokolov", role=Role.coordinator, sources=["city"], password="Nikolay.Sokolov"
            )
        make_user(session, "anna", password="correct horse battery")
        with pytest.raises(UserError, match="common passwords"):
            set_password(session, "anna", "1q2w3e4r5t6y")
        with pytest.raises(UserError, match="at least 17"):
            set_password(session, "anna", "still fine at 12", min_length=17)


def test_the_demo_password_passes_the_rules(tmp_path: Path) -> None:
    password = demo_password(Settings(data_dir=tmp_path))
    for username, _name, _role in DEMO_USERS:
        check_password_strength(password, username=username)


@pytest.fixture
def cli_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DISCHARGE_BRIDGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DISCHARGE_BRIDGE_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def test_the_cli_refuses_a_weak_password_and_says_which_rule(cli_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEAK", "sunshine")
    added = runner.invoke(app, ["users", "add", "olga", "--role", "admin", "--password-env", "WEAK"])
    assert added.exit_code == 1 and "at least 12 characters" in added.output
    monkeypatch.setenv("DISCHARGE_BRIDGE_PASSWORD_MIN_LENGTH", "8")
    get_settings.cache_clear()
    added = runner.invoke(app, ["users", "add", "olga", "--role", "admin", "--password-env", "WEAK"])
    assert added.exit_code == 1 and "common passwords" in added.output
    monkeypatch.setenv("GOOD", "a long walk to the sea")
    assert runner.invoke(app, ["users", "add", "olga", "--role", "admin", "--password-env", "GOOD"]).exit_code == 0
    changed = runner.invoke(app, ["users", "password", "olga", "--password-env", "WEAK"])
    assert changed.exit_code == 1 and "common passwords" in changed.output
