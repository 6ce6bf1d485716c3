"""Where a source may point, as hospital IT meets it: ``sources add / set`` on the command line, the IT
page's source form (with its connection check) in English and Russian; and a source stored before
the rules with credentials in its base URL, never shown whole in any list, page, API answer, error or
log (issue 16).

The rules themselves are in test_safe_sources.py. The settings here are the process's defaults:
nothing allowed by name, HTTPS only, folders under the data folder's ``imports/``.
"""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import respx
from babel.messages.extract import extract_from_file
from fastapi.testclient import TestClient
from sqlmodel import select
from typer.testing import CliRunner

from discharge_bridge.app import create_app
from discharge_bridge.cli import app as cli
from discharge_bridge.config import Settings, get_settings
from discharge_bridge.db import get_engine, session_scope, upgrade
from discharge_bridge.deps import SESSION_COOKIE
from discharge_bridge.sources import safety
from discharge_bridge.sources.models import Source, SourceMode
from discharge_bridge.sources.service import get_source
from discharge_bridge.ui import i18n
from discharge_bridge.users.service import UserNotFound, get_user, issue_token, start_session
from tests.support.factories import make_user

SECRET = "hunter2-never-shown"
OLD_URL = f"https://svc:{SECRET}@ehr.city.example/fhir"
runner = CliRunner()


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The process's settings on a fresh data folder (with an ``imports/`` folder), rules at their defaults;
    names resolve to nothing (no real DNS), and no socket may be opened."""
    for name in ("DISCHARGE_BRIDGE_ALLOWED_SOURCE_HOSTS", "DISCHARGE_BRIDGE_ALLOW_PLAIN_HTTP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("DISCHARGE_BRIDGE_IMPORT_ROOTS", raising=False)
    monkeypatch.delenv("DISCHARGE_BRIDGE_DATABASE_URL", raising=False)
    monkeypatch.setenv("DISCHARGE_BRIDGE_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data" / "imports" / "city").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "x"}\n')

    def nowhere(host: Any, *args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", nowhere)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail(f"a connection was opened: {a}"))
    get_settings.cache_clear()
    settings = get_settings()
    upgrade(settings)
    yield settings
    get_settings.cache_clear()


def _cli(*args: str) -> Any:
    return runner.invoke(cli, list(args))


# -- the command line ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "mode", "says"),
    [
        (OLD_URL, "poll", "--auth basic"),
        ("http://169.254.169.254/latest/meta-data/", "poll", "cloud metadata"),
        ("https://metadata.google.internal/computeMetadata/v1/", "poll", "cloud metadata"),
        ("http://127.0.0.1:22/", "poll", "port 22 is not a web port"),
        ("http://[::1]:6379/", "poll", "port 6379 is not a web port"),
        ("http://ehr.city.example/fhir", "poll", "use https://"),
        ("/etc", "file", "outside the folders file sources may read"),
    ],
)
def test_sources_add_refuses_what_the_rules_refuse(site: Settings, base_url: str, mode: str, says: str) -> None:
    result = _cli("sources", "add", "city", "--hospital", "City", "--base-url", base_url, "--mode", mode)
    assert result.exit_code == 1
    assert says in " ".join(result.output.split()) and SECRET not in result.output
    assert json.loads(_cli("sources", "list", "--format", "json").stdout) == []


def test_sources_add_and_set_take_what_the_rules_allow_and_set_refuses_the_rest(site: Settings) -> None:
    imports = site.data_dir / "imports"
    assert (
        _cli("sources", "add", "city", "--hospital", "City", "--base-url", "https://ehr.city.example/fhir").exit_code
        == 0
    )
    assert (
        _cli(
            "sources", "add", "files", "--hospital", "F", "--base-url", str(imports / "city"), "--mode", "file"
        ).exit_code
        == 0
    )
    (imports / "escape").symlink_to(site.data_dir.parent / "outside")
    for args in (
        ("city", "--base-url", OLD_URL),
        ("city", "--base-url", "https://ehr.city.example:5432/fhir"),
        ("files", "--base-url", str(imports / "escape")),
        ("files", "--base-url", f"{imports}/../../outside"),
    ):
        refused = _cli("sources", "set", *args)
        assert refused.exit_code == 1 and "error" in refused.output and SECRET not in refused.output, args
    moved = _cli(
        "sources", "set", "city", "--base-url", "https://ehr.city.example:8443/fhir", "--auth", "basic",
        "--username", "svc", "--password-env", "CITY_PASSWORD",
    )  # fmt: skip
    assert moved.exit_code == 0, moved.output
    with session_scope(get_engine(site)) as session:
        city = get_source(session, "city")
        assert city.base_url == "https://ehr.city.example:8443/fhir"
        assert (city.auth["type"], city.auth["username"], city.auth["password_env"]) == (
            "basic",
            "svc",
            "CITY_PASSWORD",
        )
        assert get_source(session, "files").base_url == str(imports / "city")
    alone = _cli("sources", "set", "city", "--username", "other")
    assert alone.exit_code == 2 and "--auth" in alone.output


# -- the IT page -----------------------------------------------------------------------------------------


def _signed_in(settings: Settings, username: str, locale: str = "en") -> tuple[TestClient, str]:
    """A browser signed in as ``username`` (made an admin if there is no such user yet) and its CSRF token."""
    with session_scope(get_engine(settings)) as session:
        try:
            user = get_user(session, username)
        except UserNotFound:
            make_user(session, username, "admin", locale=locale)
            user = get_user(session, username)
        token, row = start_session(session, user, lifetime=timedelta(hours=1))
        csrf = row.csrf_token
    client = TestClient(create_app(settings), follow_redirects=False)
    client.cookies.set(SESSION_COOKIE, token)
    return client, csrf


FORM = {
    "name": "north",
    "hospital": "North Hospital",
    "mode": "poll",
    "auth_type": "none",
    "poll_interval_seconds": "300",
    "timezone": "Europe/Moscow",
    "mapping": "default",
}


def _field_error(html: str, field: str) -> str:
    found = re.search(rf'<p class="field-error error" id="{field}-error">([^<]*)</p>', html)
    assert found is not None, f"no message by {field}"
    return found.group(1)


@pytest.mark.parametrize("action", ["check", "save"])
@pytest.mark.parametrize(
    ("language", "base_url", "mode", "english", "russian"),
    [
        ("en", "http://169.254.169.254/latest/meta-data/", "poll", "cloud metadata service", None),
        ("ru", "https://[fd00:ec2::254]/", "poll", None, "облачной службы метаданных"),
        ("en", "http://ehr.north.example/fhir", "poll", "use https://", None),
        ("ru", "http://127.0.0.1:22/", "poll", None, "не веб-порт"),
        ("en", "/etc", "file", "outside the folders file sources may read", None),
        ("ru", "/etc", "file", None, "вне папок, которые могут читать файловые источники"),
    ],
)
def test_the_page_refuses_by_the_field_before_any_connection_or_file_is_read(
    site: Settings,
    action: str,
    language: str,
    base_url: str,
    mode: str,
    english: str | None,
    russian: str | None,
) -> None:
    client, csrf = _signed_in(site, f"root_{language}", language)
    with respx.mock(assert_all_called=False) as ehr:  # nothing may be asked of any server
        refused = client.post(
            "/it/add-source", data={**FORM, "mode": mode, "base_url": base_url, "action": action, "csrf_token": csrf}
        )
        assert not ehr.calls
    assert refused.status_code == 422
    message = _field_error(refused.text, "base_url")
    assert (english or russian or "?") in message
    assert 'aria-describedby="base_url-error' in refused.text
    assert "Patient.ndjson" not in refused.text and "passwd" not in refused.text  # no folder was read
    with session_scope(get_engine(site)) as session:
        assert session.exec(select(Source)).all() == []


def test_the_page_refuses_a_folder_that_links_out_and_a_token_url_of_metadata(site: Settings) -> None:
    client, csrf = _signed_in(site, "root")
    imports = site.data_dir / "imports"
    (imports / "city" / "Encounter.ndjson").symlink_to(site.data_dir.parent / "outside" / "Patient.ndjson")
    linked = client.post(
        "/it/add-source",
        data={**FORM, "mode": "file", "base_url": str(imports / "city"), "action": "check", "csrf_token": csrf},
    )
    assert linked.status_code == 422 and "links to" in _field_error(linked.text, "base_url")
    smart = {
        "auth_type": "smart",
        "client_id": "bridge",
        "private_key_file": "/etc/bridge/key.pem",
        "kid": "k1",
        "alg": "RS384",
        "token_url": "http://169.254.169.254/token",
    }
    token = client.post(
        "/it/add-source",
        data={**FORM, **smart, "base_url": "https://ehr.north.example/fhir", "action": "save", "csrf_token": csrf},
    )
    assert token.status_code == 422 and "cloud metadata" in _field_error(token.text, "token_url")


# -- a source stored before the rules, with credentials in its URL ---------------------------------------


def test_an_old_url_with_credentials_is_masked_everywhere_and_the_source_is_not_synced(
    site: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    engine = get_engine(site)
    with session_scope(engine) as session:
        session.add(Source(name="old", hospital="Old Hospital", base_url=OLD_URL))
        make_user(session, "irina", "it_admin", ("old",))
        token = issue_token(session, "irina", "tests")
    caplog.set_level(logging.DEBUG)
    seen: dict[str, str] = {}
    api = TestClient(create_app(site), headers={"Authorization": f"Bearer {token}"})
    listed = api.get("/api/v1/sources")
    assert listed.status_code == 200 and listed.json()[0]["base_url"] == "https://***@ehr.city.example/fhir"
    seen["api list"] = listed.text
    seen["api one"] = api.get("/api/v1/sources/old").text
    synced = _cli("sync", "--once", "--format", "json")
    assert synced.exit_code == 1
    seen["sync"] = synced.output
    [row] = json.loads(synced.stdout[synced.stdout.index("[") :])
    assert "source old is not synced" in row["error"] and "sources set old" in row["error"]
    seen["check"] = _cli("sources", "check", "old").output
    table = _cli("sources", "list")
    seen["list"], seen["list json"] = table.output, _cli("sources", "list", "--format", "json").output
    assert json.loads(seen["list json"])[0]["base_url"] == "https://***@ehr.city.example/fhir"
    page, _ = _signed_in(site, "irina")
    seen["it page"] = page.get("/it").text
    seen["edit form"] = page.get("/it/sources/old/edit").text
    assert "source old is not synced" in seen["it page"]
    seen["log"] = caplog.text
    with session_scope(engine) as session:
        seen["last error"] = get_source(session, "old").last_error or ""
    leaked = [where for where, text in seen.items() if SECRET in text or "svc:" in text]
    assert leaked == [], leaked


def test_the_check_of_a_stored_source_that_breaks_the_rules_neither_connects_nor_reads(site: Settings) -> None:
    with session_scope(get_engine(site)) as session:
        session.add(Source(name="etc", hospital="Etc", base_url="/etc", mode=SourceMode.file))
        session.add(Source(name="meta", hospital="Meta", base_url="http://169.254.169.254/latest"))
    etc = _cli("sources", "check", "etc")
    assert etc.exit_code == 1
    assert "Folder: not read: source etc is not synced" in " ".join(etc.output.split())
    assert "records" not in etc.output  # no file of /etc was counted
    meta = _cli("sources", "check", "meta")
    assert meta.exit_code == 1 and "Base URL: not contacted: source meta is not synced" in " ".join(meta.output.split())
    client, csrf = _signed_in(site, "ivan", "ru")
    checked = client.post("/it/sources/etc/check", data={"csrf_token": csrf})
    assert "Папка" in checked.text and "не прочитана: source etc is not synced" in checked.text


def test_every_message_of_the_rules_has_a_russian_translation() -> None:
    """The IT page shows the rules' refusals by their field in the reader's language (sources.po)."""
    found = list(extract_from_file("python", safety.__file__, keywords={"N_": None}))
    assert len(found) >= 13
    russian = i18n.translations("ru")
    for _, message, _, _ in found:
        assert isinstance(message, str)
        translated = russian.gettext(message)
        assert translated != message, message
        assert sorted(re.findall(r"%\((\w+)\)s", translated)) == sorted(re.findall(r"%\((\w+)\)s", message)), message
