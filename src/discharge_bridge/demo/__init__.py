"""The embedded demo: SQLite, the bundled demo hospital as a file source, demo users of every role
(sharing one password generated into the data folder) and a generated API token."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import SecretStr

from discharge_bridge.assessment import sync_and_assess
from discharge_bridge.config import PROJECT_ROOT, Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import get_engine, session_scope, upgrade, utcnow
from discharge_bridge.demo.activity import seed_demo_activity
from discharge_bridge.demo.directory import ensure_demo_directory
from discharge_bridge.directory.service import organisation_by_code
from discharge_bridge.ingest.writer import SyncResult
from discharge_bridge.risk import loading
from discharge_bridge.sources.models import SourceMode
from discharge_bridge.sources.service import SourceNotFound, get_source
from discharge_bridge.users.roles import Role
from discharge_bridge.users.service import UserNotFound, add_user, get_user
from discharge_bridge.worklists.morning import build_morning_list

DEMO_SOURCE = "demo"
DEMO_DATA = PROJECT_ROOT / "fhir_fixtures" / "demo-hospital"
# (user name, display name, role): staff names are made up; two coordinators share the new cases.
DEMO_USERS = [
    ("anna", "Anna Petrova", Role.coordinator),
    ("dmitry", "Dmitry Orlov", Role.coordinator),
    ("boris", "Boris Ivanov", Role.bed_manager),
    ("irina", "Irina Sokolova", Role.it_admin),
    ("admin", "Administrator", Role.admin),
    ("pavel", "Pavel Smirnov", Role.psychologist),
    ("svetlana", "Svetlana Kuznetsova", Role.receiver),
]
# Receivers work for an organisation of the demo directory (mappings/directory_demo.csv), not a hospital.
DEMO_RECEIVERS = {"svetlana": "csso-tverskoy"}  # the home-care centre of the Tverskoy district


def demo_token(settings: Settings) -> str:
    """The API token for the demo: the configured one, or one generated once into the data folder."""
    if settings.api_token:
        return settings.api_token.get_secret_value()
    path = settings.data_dir / "demo-api-token"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def demo_password(settings: Settings) -> str:
    """The demo users' password: generated once into the data folder (the demo binds 127.0.0.1 only)."""
    path = settings.data_dir / "demo-password"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(9))
        path.chmod(0o600)
    return path.read_text().strip()


def ensure_demo_users(settings: Settings) -> str:
    """Create the demo users that are missing (Russian for one coordinator); returns their password."""
    password = demo_password(settings)
    with session_scope(get_engine(settings)) as session:
        for username, name, role in DEMO_USERS:
            try:
                get_user(session, username)
            except UserNotFound:
                code = DEMO_RECEIVERS.get(username)
                organisation = organisation_by_code(session, code) if code is not None else None
                if role == Role.receiver and organisation is None:
                    continue  # a directory without the demo's organisations (imported by hand): no receiver
                add_user(
                    session,
                    username=username,
                    display_name=name,
                    role=role,
                    sources=[] if role in (Role.admin, Role.receiver) else [DEMO_SOURCE],
                    password=password,
                    locale="ru" if username in ("dmitry", "svetlana") else "en",
                    organisation_id=organisation.id if organisation is not None else None,
                )
    return password


def build_demo_morning_list(settings: Settings) -> None:
    """Today's morning list now, so the demo's worklist shows one before the first 07:00 comes."""

    rules_version = loading.rule_set(settings.mappings_dir).version
    with session_scope(get_engine(settings)) as session:
        source = get_source(session, DEMO_SOURCE)
        build_morning_list(session, source, now=utcnow(), rules_version=rules_version, generated_by="demo")


def prepare_demo(settings: Settings, data: Path = DEMO_DATA, *, activity: bool = True) -> tuple[Settings, SyncResult]:
    """Migrate, register the demo hospital and its users if needed, load it; return settings carrying the token."""
    upgrade(settings)
    engine = get_engine(settings)
    with session_scope(engine) as session:
        try:
            get_source(session, DEMO_SOURCE)
        except SourceNotFound:
            add_source(
                session,
                name=DEMO_SOURCE,
                hospital="Demo City Hospital No. 1",
                base_url=str(data),
                mode=SourceMode.file,
                timezone="Europe/Moscow",
                mapping="demo-hospital",
                mappings_dir=settings.mappings_dir,
            )
    ensure_demo_directory(settings)
    ensure_demo_users(settings)  # before the sync, so its new cases are assigned to the coordinators
    result = sync_and_assess(DEMO_SOURCE, engine=engine, settings=settings)
    with session_scope(engine) as session:
        source_id = get_source(session, DEMO_SOURCE).id
    assert source_id is not None
    if activity:  # tests that walk the coordination flow themselves start from the bare admissions
        seed_demo_activity(settings, source_id)
    build_demo_morning_list(settings)
    token = demo_token(settings)
    return settings.model_copy(update={"api_token": SecretStr(token)}), result
