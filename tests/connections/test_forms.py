"""The IT page's source form: each field checked on its own words, entries that may be secrets dropped,
the same rules as `sources add / set` when saved, and a change that is refused leaving the source as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.audit import AuditQuery, search_audit
from discharge_bridge.config import Settings
from discharge_bridge.connections.forms import (
    blank_form,
    check_against,
    read_form,
    save_changes,
    save_new,
    settings_version,
    unsaved_source,
    values_of,
)
from discharge_bridge.connections.service import add_source, update_source
from discharge_bridge.db import session_scope
from discharge_bridge.sources.models import Source, SourceMode
from discharge_bridge.sources.service import SourceError
from discharge_bridge.users.models import UserSource
from discharge_bridge.users.service import get_user
from tests.support.factories import make_user

sqlite_only = pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)
GOOD = {
    "name": "north",
    "hospital": "North Hospital",
    "mode": "poll",
    "base_url": "https://ehr.north.example/fhir/r4/",
    "auth_type": "basic",
    "username": "svc_discharge",
    "password_env": "NORTH_PASSWORD",
    "poll_interval_seconds": "300",
    "timezone": "Europe/Moscow",
    "mapping": "default",
}


def _errors(raw: dict[str, str], **kw: object) -> dict[str, str]:
    form = read_form(raw, **kw)  # type: ignore[arg-type]
    return {e.field: e.message % dict(e.params) if e.params else e.message for e in form.errors}


def test_a_complete_form_gives_the_settings_a_source_stores() -> None:
    form = read_form(GOOD)
    assert form.ok, form.errors
    assert form.auth() == {"type": "basic", "username": "svc_discharge", "password_env": "NORTH_PASSWORD"}
    source = unsaved_source(form)
    assert (source.name, source.base_url, source.mode) == ("north", "https://ehr.north.example/fhir/r4", "poll")
    assert source.id is None  # the check runs against it; nothing is stored


@pytest.mark.parametrize(
    ("field", "typed"),
    [
        ("password_env", "correct horse battery staple"),
        ("password_env", "$ecret!"),
        ("password_file", "relative/secret.txt"),
        ("password_file", "hunter2 with spaces"),
        ("base_url", "https://svc:hunter2@ehr.example/fhir"),
    ],
)
def test_an_entry_that_may_be_a_secret_is_refused_and_dropped(field: str, typed: str) -> None:
    form = read_form({**GOOD, field: typed})
    assert not form.ok and form.error(field) is not None
    assert form.values[field] == ""  # not shown again
    assert typed not in repr(form.errors)  # nor quoted by a message


def test_each_field_says_what_is_wrong_with_it() -> None:
    errors = _errors(
        {
            **GOOD,
            "name": "North Hospital",
            "hospital": "",
            "base_url": "ftp://ehr",
            "poll_interval_seconds": "5",
            "timezone": "Europe/Atlantis",
            "auth_type": "bearer",
        }
    )
    assert set(errors) == {
        "name",
        "hospital",
        "base_url",
        "poll_interval_seconds",
        "timezone",
        "token_env",
        "token_file",
    }
    assert errors["token_env"] == errors["token_file"]  # one of them, not both, not neither
    assert "one of them, not both" in errors["token_env"]
    assert _errors({**GOOD, "auth_type": "bearer", "token_env": "A", "token_file": "/etc/t"})["token_env"]
    smart = _errors({**GOOD, "auth_type": "smart", "alg": "HS256", "token_url": "ldap://x"})
    assert set(smart) == {"client_id", "private_key_file", "kid", "alg", "token_url"}
    assert _errors({**GOOD, "mode": "subscription"}) == {"mode": "choose one of the modes offered"}
    assert _errors({**GOOD, "auth_type": "kerberos"}) == {"auth_type": "choose one of the kinds offered"}


def test_a_file_source_needs_a_folder_that_exists_and_no_authentication(tmp_path: Path) -> None:
    form = read_form({**GOOD, "mode": "file", "base_url": str(tmp_path)})
    assert form.ok and form.auth() == {"type": "none"}
    assert _errors({**GOOD, "mode": "file", "base_url": "exports/city"}) == {
        "base_url": "give the full path of the folder on this host (starting with /)"
    }
    missing = _errors({**GOOD, "mode": "file", "base_url": str(tmp_path / "nowhere")})
    assert list(missing) == ["base_url"] and "does not exist on this host" in missing["base_url"]


@sqlite_only
def test_a_name_in_use_and_a_mapping_that_is_not_offered_are_refused(engine: Engine, settings: Settings) -> None:
    with session_scope(engine) as session:
        add_source(session, name="north", hospital="North", base_url="https://ehr.north.example/fhir")
        form = check_against(read_form({**GOOD, "mapping": "rules"}), session, settings.mappings_dir)
    assert {e.field for e in form.errors} == {"name", "mapping"}


@sqlite_only
def test_saving_a_new_source_gives_it_to_a_scoped_user_only(engine: Engine, settings: Settings) -> None:
    with session_scope(engine) as session:
        add_source(session, name="city", hospital="City", base_url="https://ehr.city.example/fhir")
        make_user(session, "irina", "it_admin", ("city",))
        irina = get_user(session, "irina").id
        north = save_new(
            session, read_form(GOOD), actor="irina", user_id=irina, scoped=True, mappings_dir=settings.mappings_dir
        )
        south = save_new(
            session,
            read_form({**GOOD, "name": "south"}),
            actor="irina",
            user_id=irina,
            scoped=False,
            mappings_dir=settings.mappings_dir,
        )
        granted = {row.source_id for row in session.exec(select(UserSource).where(UserSource.user_id == irina))}
        added = search_audit(session, AuditQuery(action="source.add"))
        assert sorted(e.target_name for e in added) == ["north", "south"] and added[0].actor == "irina"
        assert north.id in granted and south.id not in granted
        assert north.base_url == "https://ehr.north.example/fhir/r4" and north.auth["password_env"] == "NORTH_PASSWORD"


@sqlite_only
def test_a_change_from_the_form_keeps_the_name_and_moves_the_version(engine: Engine, settings: Settings) -> None:
    with session_scope(engine) as session:
        city = add_source(session, name="city", hospital="City", base_url="https://ehr.city.example/fhir")
        before = settings_version(city)
        opened = blank_form(city)
        assert opened.ok and opened.values["name"] == "city" and opened.values["auth_type"] == "none"
        form = read_form({**values_of(city), "name": "renamed", "hospital": "City No. 1", "auth_type": "bearer"})
        assert form.error("token_env") is not None  # bearer without its token: refused before saving
        form = read_form(
            {**values_of(city), "name": "renamed", "auth_type": "bearer", "token_env": "CITY_TOKEN"}, editing=city
        )
        saved = save_changes(session, city, form, actor="irina", mappings_dir=settings.mappings_dir)
        assert saved.name == "city" and saved.auth["token_env"] == "CITY_TOKEN"
        assert settings_version(saved) != before
        audit = search_audit(session, AuditQuery(target_name="city"))
        assert [(e.actor, e.action) for e in audit] == [("irina", "source.edit")]
        assert audit[0].details["auth_type"] == {"from": "none", "to": "bearer"}
        assert audit[0].details["token_env"] == {"from": "", "to": "CITY_TOKEN"}


@sqlite_only
def test_a_refused_change_leaves_the_source_as_it_was(engine: Engine, settings: Settings) -> None:
    with session_scope(engine) as session:
        add_source(session, name="city", hospital="City", base_url="https://ehr.city.example/fhir")
        for changes in (
            {"hospital": "Renamed", "timezone": "Mars/Olympus"},
            {"hospital": "Renamed", "mapping": "no-such-mapping"},
            {"hospital": "Renamed", "mode": "file", "base_url": "/no/such/folder"},
            {"hospital": "Renamed", "auth": {"type": "bearer"}},
        ):
            with pytest.raises(SourceError):
                update_source(session, "city", changes, mappings_dir=settings.mappings_dir)
            assert session.exec(select(Source).where(Source.name == "city")).one().hospital == "City"
    with Session(engine) as session:
        assert session.exec(select(Source).where(Source.name == "city")).one().hospital == "City"


@sqlite_only
def test_a_source_may_become_a_file_source_and_its_folder_is_stored_resolved(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "export").mkdir()
    with session_scope(engine) as session:
        add_source(session, name="city", hospital="City", base_url="https://ehr.city.example/fhir")
        changed = update_source(session, "city", {"mode": "file", "base_url": f"{tmp_path}/./export/"})
        assert changed.mode == SourceMode.file and changed.base_url == str((tmp_path / "export").resolve())
