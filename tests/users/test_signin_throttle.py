"""Throttled sign-in at the form: 429 with Retry-After, then a lock; the audit trail; an admin lifts it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.app import create_app
from discharge_bridge.audit import AdminAuditEntry
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from tests.support.factories import make_source, make_user

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
SESSION = "discharge_bridge_session"

pytestmark = pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)  # the SQL runs on both in test_throttle


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def users(engine: Engine) -> None:
    with session_scope(engine) as session:
        make_source(session)
        make_user(session, "anna", password=PASSWORD)
        make_user(session, "root", role="admin", password=PASSWORD)


def browser(settings: Settings, address: str) -> TestClient:
    return TestClient(create_app(settings), client=(address, 50000), follow_redirects=False)


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no {name} field on the page"
    return found.group(1)


def post_login(client: TestClient, username: str, password: str, lang: str = "en") -> httpx.Response:
    form = client.get(f"/login?lang={lang}")
    data = {"username": username, "password": password, "login_csrf": hidden(form.text, "login_csrf")}
    return client.post("/login", data=data)


def alert(response: httpx.Response) -> str:
    found = re.search(r'role="alert">([^<]*)<', response.text)
    return found.group(1) if found else ""


def twenty_wrong_passwords(
    client: TestClient, clock: time_machine.Coordinates, username: str
) -> list[tuple[int, str | None, str]]:
    """The first ten as soon as each is allowed (so each counts), the next ten a second apart."""
    answers: list[tuple[int, str | None, str]] = []
    for n in range(20):
        if n:
            wait = answers[-1][1]
            clock.shift(int(wait) if wait and n < 10 else 1)
        response = post_login(client, username, "wrong password!")
        assert SESSION not in response.cookies
        answers.append((response.status_code, response.headers.get("retry-after"), alert(response)))
    return answers


def lock_entries(engine: Engine) -> list[tuple[str, str, str, str, int]]:
    with session_scope(engine) as session:
        rows = session.exec(select(AdminAuditEntry).order_by(AdminAuditEntry.id)).all()  # type: ignore[arg-type]
        return [(r.actor, r.action, r.target_kind, r.target_name, r.details.get("failures")) for r in rows]


def test_twenty_wrong_passwords_are_throttled_then_locked_and_a_stranger_gets_the_same_answers(
    settings: Settings, engine: Engine, users: None, clock: time_machine.Coordinates
) -> None:
    known = twenty_wrong_passwords(browser(settings, "10.0.0.1"), clock, "anna")
    wrong = "Wrong user name or password, or the account is disabled."
    assert known[:3] == [(401, None, wrong)] * 3
    assert [(status, wait) for status, wait, _ in known[3:10]] == [
        (429, "2"),
        (429, "4"),
        (429, "8"),
        (429, "16"),
        (429, "32"),
        (429, "60"),
        (429, "900"),  # the tenth failure locks the account for 15 minutes
    ]
    assert [(status, wait) for status, wait, _ in known[10:]] == [(429, str(900 - n)) for n in range(1, 11)]
    assert known[3][2] == "Too many failed sign-ins. Wait 2 s before trying again."
    assert known[9][2] == "Too many failed sign-ins. Wait 15 min before trying again."

    stranger = twenty_wrong_passwords(browser(settings, "10.0.0.2"), clock, "nobody")
    assert stranger == known  # status, Retry-After and text alike: a name that does not exist is not told apart

    locked = post_login(browser(settings, "192.0.2.1"), "anna", PASSWORD)  # the right password, from elsewhere
    assert locked.status_code == 429 and SESSION not in locked.cookies
    assert lock_entries(engine) == [
        ("sign-in", "signin.lock", "account", "anna", 10),
        ("sign-in", "signin.lock", "account", "nobody", 10),
    ]


def test_the_wait_is_said_in_russian(settings: Settings, users: None, clock: time_machine.Coordinates) -> None:
    client = browser(settings, "10.0.0.1")
    for _ in range(4):
        response = post_login(client, "anna", "wrong password!", lang="ru")
    assert response.status_code == 429
    assert alert(response) == "Слишком много неудачных попыток входа. Подождите 2 с и попробуйте снова."  # noqa: RUF001


def test_an_admin_sees_the_lock_and_lifts_it_on_the_audit_page(
    settings: Settings, engine: Engine, users: None, clock: time_machine.Coordinates
) -> None:
    twenty_wrong_passwords(browser(settings, "10.0.0.1"), clock, "anna")
    admin = browser(settings, "10.0.0.9")
    assert post_login(admin, "root", PASSWORD).status_code == 303
    page = admin.get("/audit")
    assert page.status_code == 200
    assert re.search(r"<code>anna</code>\s*</td>\s*<td class=\"num\">10</td>", page.text)
    form = {"kind": "account", "subject": "anna"}
    assert admin.post("/audit/unlock", data=form).status_code == 403  # no CSRF token: refused
    assert post_login(browser(settings, "10.0.0.1"), "anna", PASSWORD).status_code == 429

    lifted = admin.post("/audit/unlock", data={**form, "csrf_token": hidden(page.text, "csrf_token")})
    assert lifted.status_code == 303 and lifted.headers["location"] == "/audit?unlocked=anna"
    assert "The lock of anna was lifted." in admin.get(lifted.headers["location"]).text
    assert post_login(browser(settings, "10.0.0.1"), "anna", PASSWORD).status_code == 303
    assert lock_entries(engine)[-1] == ("root", "signin.unlock", "account", "anna", 10)
    assert "No account or address is locked." in admin.get("/audit").text


def test_only_an_admin_may_lift_a_lock(
    settings: Settings, engine: Engine, users: None, clock: time_machine.Coordinates
) -> None:
    anna = browser(settings, "10.0.0.3")
    assert post_login(anna, "anna", PASSWORD).status_code == 303
    page = anna.get("/worklist")
    refused = anna.post(
        "/audit/unlock", data={"kind": "account", "subject": "x", "csrf_token": hidden(page.text, "csrf_token")}
    )
    assert refused.status_code == 403
    assert anna.get("/audit").status_code == 403
