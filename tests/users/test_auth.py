"""Users, tokens and scoping through the API: who may see and do what."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from discharge_bridge.app import create_app
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.users.roles import Role
from discharge_bridge.users.service import (
    UserError,
    add_user,
    authenticate,
    disable_user,
    issue_token,
    principal_for_session,
    start_session,
)
from tests.support.factories import flagged_case, make_source, make_user, user_client


def _two_hospitals(engine: Engine) -> tuple[int, int]:
    with session_scope(engine) as session:
        city = make_source(session, "city").id or 0
        north = make_source(session, "north").id or 0
        a = flagged_case(session, city, "adm-a", "pa").id or 0
        b = flagged_case(session, north, "adm-b", "pb").id or 0
    return a, b


def test_a_coordinator_sees_only_their_hospital(engine: Engine, settings: Settings) -> None:
    mine, foreign = _two_hospitals(engine)
    client = user_client(settings, engine, "anna", sources=("city",))
    assert client.get(f"/api/v1/cases/{mine}").status_code == 200
    assert client.get(f"/api/v1/cases/{foreign}").status_code == 404
    assert [c["encounter"] for c in client.get("/api/v1/cases").json()["items"]] == ["adm-a"]
    assert client.get("/api/v1/cases?source=north").status_code == 404
    worklist = client.get("/api/v1/worklist").json()
    assert {i["source"] for i in worklist["items"]} <= {"city"}
    assert client.post("/api/v1/cases", json={"source": "north", "encounter": "adm-b"}).status_code == 404
    tasks = client.get(f"/api/v1/cases/{mine}/tasks").json()
    assert client.get(f"/api/v1/tasks/{tasks[0]['id']}").status_code == 200
    # the change is recorded under the token's user, whatever X-Actor says
    patched = client.patch(f"/api/v1/cases/{mine}", json={"coordinator": "anna"}, headers={"X-Actor": "mallory"})
    assert patched.status_code == 200
    assert client.get(f"/api/v1/cases/{mine}/timeline").json()[-1]["actor"] == "anna"


def test_roles_limit_what_a_user_may_do(engine: Engine, settings: Settings) -> None:
    mine, _ = _two_hospitals(engine)
    beds = user_client(settings, engine, "boris", role="bed_manager")
    assert beds.get(f"/api/v1/cases/{mine}").status_code == 200
    refused = beds.patch(f"/api/v1/cases/{mine}", json={"coordinator": "boris"})
    assert refused.status_code == 403 and "coordinate" in refused.json()["detail"]
    assert beds.post(f"/api/v1/cases/{mine}/barriers", json={"code": "housing"}).status_code == 201
    assert beds.get("/api/v1/sources").status_code == 403
    it = user_client(settings, engine, "ivan", role="it_admin")
    assert [s["name"] for s in it.get("/api/v1/sources").json()] == ["city"]
    assert it.get("/api/v1/sources/north").status_code == 404
    assert it.get(f"/api/v1/cases/{mine}").status_code == 403
    admin = user_client(settings, engine, "root", role="admin")
    assert len(admin.get("/api/v1/cases").json()["items"]) == 2


def test_disabled_users_and_revoked_tokens_stop_at_once(engine: Engine, settings: Settings) -> None:
    _two_hospitals(engine)
    client = user_client(settings, engine, "anna")
    assert client.get("/api/v1/cases").status_code == 200
    with session_scope(engine) as session:
        disable_user(session, "anna")
    assert client.get("/api/v1/cases").status_code == 401
    forged = TestClient(create_app(settings), headers={"Authorization": "Bearer dbt_not-a-token"})
    assert forged.get("/api/v1/cases").status_code == 401


def test_passwords_are_hashed_and_checked(engine: Engine) -> None:
    with session_scope(engine) as session:
        make_source(session)
        make_user(session, "anna", password="correct horse battery")
    with session_scope(engine) as session:
        from sqlmodel import select

        from discharge_bridge.users.models import User

        stored = session.exec(select(User)).one().password_hash or ""
        assert stored.startswith("$argon2id$") and "correct" not in stored
        assert authenticate(session, "anna", "wrong password!") is None
        assert authenticate(session, "nobody", "correct horse battery") is None
        user = authenticate(session, "anna", "correct horse battery")
        assert user is not None and user.last_login_at is not None
        token, row = start_session(session, user, lifetime=__import__("datetime").timedelta(hours=1))
        principal = principal_for_session(session, token)
        assert principal is not None and principal.csrf_token == row.csrf_token and principal.username == "anna"
        assert principal_for_session(session, token + "x") is None


def test_user_rules(engine: Engine) -> None:
    with session_scope(engine) as session:
        make_source(session)
        for kwargs, message in [
            ({"username": "a b", "sources": ["city"]}, "without spaces"),
            ({"username": "x", "sources": []}, "hospitals"),
            ({"username": "x", "sources": ["nowhere"]}, "unknown source"),
            ({"username": "x", "sources": ["city"], "password": "short"}, "12 characters"),
        ]:
            try:
                add_user(session, role=Role.coordinator, password=kwargs.pop("password", None), **kwargs)  # type: ignore[arg-type]
            except UserError as exc:
                assert message in str(exc)
            else:
                raise AssertionError(f"accepted {kwargs}")
        make_user(session, "anna")
        try:
            make_user(session, "anna")
        except UserError as exc:
            assert "exists" in str(exc)
        assert issue_token(session, "anna", "x").startswith("dbt_")


def test_a_page_opened_with_a_token_knows_who_is_asking(engine: Engine, settings: Settings) -> None:
    _two_hospitals(engine)
    page = user_client(settings, engine, "anna").get("/worklist")
    assert page.status_code == 200
    assert 'href="/board"' in page.text and "anna" in page.text  # navigation and the account menu


def test_a_coordinator_who_opens_a_case_takes_it_on(engine: Engine, settings: Settings) -> None:
    from tests.support.factories import put_encounter

    with session_scope(engine) as session:
        city = make_source(session, "city").id or 0
        put_encounter(session, city, "quiet", "pq")
    anna = user_client(settings, engine, "anna").post("/api/v1/cases", json={"source": "city", "encounter": "quiet"})
    assert anna.status_code == 201 and anna.json()["coordinator"] == "anna"
