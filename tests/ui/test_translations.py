"""Every message the pages can show has a Russian translation in the .po files.

The messages are extracted as a translator's tool would (Babel): ``_()`` / ``gettext`` / ``ngettext``
in every template, ``gettext`` / ``ngettext`` / ``N_`` in every module of ``ui/``, and the ``N_``-marked
messages of ``connections/`` (the connection check and the source form speak through the IT page).
A message without a Russian entry, an empty one, or one whose ``%(name)s`` placeholders differ from
the English fails the test, naming the message and where it is used: a page area that adds a string
adds its translation to its own .po file in the same change.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient
from jinja2.ext import babel_extract
from sqlalchemy.engine import Engine
from sqlmodel import select

import discharge_bridge.connections
import discharge_bridge.ui
from discharge_bridge.app import create_app
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.deps import SESSION_COOKIE
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.ui import i18n
from discharge_bridge.users.service import get_user, issue_token, start_session
from tests.support.factories import flagged_case, make_source, make_user

UI = Path(discharge_bridge.ui.__file__).parent
CONNECTIONS = Path(discharge_bridge.connections.__file__).parent
PO_DIR = UI / "locale" / "ru" / "LC_MESSAGES"
PYTHON_KEYWORDS = {"gettext": None, "ngettext": (1, 2), "N_": None, "_": None}
TEMPLATE_KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2)}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")

Message = str | tuple[str, ...]  # a message id, or (singular, plural)


def _python_messages(folder: Path, keywords: Mapping[str, object]) -> Iterator[tuple[Message, str]]:
    for path in sorted(folder.glob("*.py")):
        for lineno, message, _, _ in extract_from_file("python", str(path), keywords=keywords):  # type: ignore[arg-type]
            yield message, f"{path.relative_to(UI.parent)}:{lineno}"


def _template_messages() -> Iterator[tuple[Message, str]]:
    for path in sorted((UI / "templates").rglob("*.html")):
        found = extract_from_file(
            babel_extract,  # type: ignore[arg-type]
            str(path),
            keywords=TEMPLATE_KEYWORDS,  # type: ignore[arg-type]
            options={"extensions": "jinja2.ext.i18n", "trimmed": "false"},
        )
        for lineno, message, _, _ in found:
            yield message, f"{path.relative_to(UI.parent)}:{lineno}"


def extracted() -> dict[Message, str]:
    """Every message id the pages may show -> the first place it is used."""
    found: dict[Message, str] = {}
    sources = [
        _template_messages(),
        _python_messages(UI, PYTHON_KEYWORDS),
        _python_messages(CONNECTIONS, {"N_": None}),
    ]
    for messages in sources:
        for message, where in messages:
            key: Message = message if isinstance(message, str) else (message[0], message[1])
            if key and key not in found:
                found[key] = where
    return found


def russian_catalogs() -> dict[str, Catalog]:
    catalogs = {}
    for po in sorted(PO_DIR.glob("*.po")):
        with po.open("rb") as fh:
            catalogs[po.name] = read_po(fh, locale="ru")
    return catalogs


def _translation(catalogs: dict[str, Catalog], message: Message) -> list[str] | None:
    """The Russian forms of ``message`` from the first .po file that holds it; None when none does."""
    for catalog in catalogs.values():
        entry = catalog.get(message if isinstance(message, str) else message[0])
        if entry is not None and entry.id:
            forms = entry.string if isinstance(entry.string, tuple | list) else [entry.string]
            return [form or "" for form in forms]
    return None


def test_the_extraction_sees_every_area_of_the_pages() -> None:
    found = extracted()
    assert len(found) > 400
    for message in (
        "Sign in",  # login.html
        "Hospital IT",  # it.html
        "Sync now",  # it/source.html
        "Field at fault",  # it/source.html
        "Dead letters",  # it/source.html
        "Bed-days lost",  # board
        "Why flagged",  # case page
        "Skip to content",  # base.html
        "Sync requested: it runs now, and this card shows the result when it ends.",  # ui/it.py
        "give the hospital's name",  # connections/forms.py
        "FHIR %(version)s (R4)",  # connections/check.py
    ):
        assert message in found, message
    assert any(isinstance(m, tuple) for m in found)  # plural forms are seen too


def test_every_message_of_the_pages_has_a_russian_translation() -> None:
    catalogs = russian_catalogs()
    assert catalogs, f"no .po files in {PO_DIR}"
    missing = []
    for message, where in sorted(extracted().items(), key=lambda kv: kv[1]):
        forms = _translation(catalogs, message)
        if not forms or not all(form.strip() for form in forms):
            missing.append(f"{where}: {message!r}")
    assert not missing, f"{len(missing)} messages lack a Russian translation:\n" + "\n".join(missing)


def test_translations_keep_the_placeholders_of_the_english() -> None:
    wrong = []
    for name, catalog in russian_catalogs().items():
        for entry in catalog:
            if not entry.id or not entry.string:
                continue
            ids = [entry.id] if isinstance(entry.id, str) else list(entry.id)
            strings = [entry.string] if isinstance(entry.string, str) else list(entry.string)
            wanted = set(PLACEHOLDER.findall(ids[0])) | set(PLACEHOLDER.findall(ids[-1]))
            for text in filter(None, strings):
                used = set(PLACEHOLDER.findall(text))
                # A plural form may leave the number out ("один" for 1); a placeholder never appears from nowhere.
                if used - wanted or (isinstance(entry.id, str) and used != wanted):
                    wrong.append(f"{name}: {ids[0]!r} -> {text!r}")
    assert not wrong, "\n".join(wrong)


def test_a_message_translated_in_two_files_says_the_same_in_both() -> None:
    seen: dict[str, tuple[str, object]] = {}
    clashes = []
    for name, catalog in russian_catalogs().items():
        for entry in catalog:
            if not entry.id:
                continue
            key = entry.id if isinstance(entry.id, str) else entry.id[0]
            if key in seen and seen[key][1] != entry.string:
                clashes.append(f"{key!r}: {seen[key][0]} and {name} differ")
            seen.setdefault(key, (name, entry.string))
    assert not clashes, "\n".join(clashes)


@pytest.mark.parametrize("message", ["Hospital IT", "Sync now", "Dead letters"])
def test_the_pages_catalog_serves_the_translations(message: str) -> None:
    russian = i18n.translations("ru")
    assert russian.gettext(message) != message
    assert i18n.translations("en").gettext(message) == message


# -- the rule texts: a reason in the reader's language ------------------------------------------------

sqlite_only = pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)


def _client(app: object, engine: Engine, username: str) -> TestClient:
    with session_scope(engine) as session:
        token, _ = start_session(session, get_user(session, username), lifetime=timedelta(hours=1))
    client = TestClient(app, follow_redirects=False)  # type: ignore[arg-type]
    client.cookies.set(SESSION_COOKIE, token)
    return client


@sqlite_only
def test_a_reason_on_the_case_page_is_in_the_readers_language(settings: Settings, engine: Engine) -> None:
    english = "Aged 75 or over and lives alone"
    russian = "Возраст 75 лет и старше, одиноко проживает"
    with session_scope(engine) as session:
        source = make_source(session)
        assert source.id is not None
        case = flagged_case(session, source.id, "enc-1", "pat-1")
        row = session.exec(select(RiskAssessment).where(RiskAssessment.encounter_fhir_id == "enc-1")).one()
        reason = {"concept": "elderly+lives_alone", "rule": "elderly_lives_alone", "points": 2}
        reason |= {"evidence": ["Condition/c1"], "text": english, "texts": {"en": english, "ru": russian}}
        row.reasons = [reason]
        session.add(row)
        make_user(session, "anna", "coordinator", ("city",))
        make_user(session, "dmitry", "coordinator", ("city",), locale="ru")
        case_id = case.id
    app = create_app(settings)
    in_english = _client(app, engine, "anna").get(f"/cases/{case_id}")
    in_russian = _client(app, engine, "dmitry").get(f"/cases/{case_id}")
    assert in_english.status_code == in_russian.status_code == 200
    assert english in in_english.text and russian not in in_english.text
    assert russian in in_russian.text and english not in in_russian.text
    # The API keeps its fields: the English text, and the words per language beside it.
    api = TestClient(app, headers={"Authorization": f"Bearer {_token(engine, 'anna')}"})
    flags = api.get(f"/api/v1/cases/{case_id}").json()["flags"]
    assert flags["reasons"][0]["text"] == english and flags["reasons"][0]["texts"]["ru"] == russian


def _token(engine: Engine, username: str) -> str:
    with session_scope(engine) as session:
        return issue_token(session, username, "test")


# -- the messages of the layers below the pages --------------------------------------------------------


@sqlite_only
def test_refusals_from_below_the_pages_are_in_the_readers_language(settings: Settings, engine: Engine) -> None:
    with session_scope(engine) as session:
        make_source(session)
        make_user(session, "vera", "bed_manager", ("city",), locale="ru")
        make_user(session, "ivan", "it_admin", ("city",), locale="ru")
        make_user(session, "irina", "it_admin", ("city",))
    app = create_app(settings)
    refused = _client(app, engine, "vera").get("/it")
    assert refused.status_code == 403
    assert "Вашей роли это не разрешено (нужно право manage_sources)." in refused.text
    assert "your role may not" not in refused.text
    # A refused CSRF token stops the request before the user is known: the browser's language speaks.
    no_token = _client(app, engine, "ivan").post("/it/sources/city/check", headers={"Accept-Language": "ru"})
    assert no_token.status_code == 403 and "Форма устарела" in no_token.text and "missing or wrong" not in no_token.text
    english = _client(app, engine, "irina").post("/it/sources/city/check")
    assert english.status_code == 403
    assert "The form was too old or came from another page (the CSRF check): reload the page" in english.text
    # What the pages do not know is shown as it came (it may name what the reader has to fix).
    assert i18n.server_message("mappings/city.yaml: concepts.x: bad") == "mappings/city.yaml: concepts.x: bad"
