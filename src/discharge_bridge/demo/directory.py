"""The demo directory: mappings/directory_demo.csv, loaded once into an empty directory."""

from __future__ import annotations

from sqlmodel import select

from discharge_bridge.config import Settings
from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.directory.csv_io import import_csv
from discharge_bridge.directory.models import Organisation

DEMO_DIRECTORY = "directory_demo.csv"


def ensure_demo_directory(settings: Settings) -> int:
    """Import the demo directory unless the directory holds something already; returns services added."""
    with session_scope(get_engine(settings)) as session:
        if session.exec(select(Organisation.id).limit(1)).first() is not None:
            return 0
        text = (settings.mappings_dir / DEMO_DIRECTORY).read_text(encoding="utf-8")
        return import_csv(session, text, actor="demo", what=DEMO_DIRECTORY).services_created
