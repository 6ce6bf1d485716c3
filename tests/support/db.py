"""Migrated databases for tests, fast: Alembic runs once per session into a template, each test gets a copy.

SQLite: the template is a migrated file, copied (``shutil.copy``) into the test's data folder.
PostgreSQL: the template is a migrated database, cloned with ``CREATE DATABASE ... TEMPLATE``
(see :class:`tests.support.postgres.PostgresServer`), and dropped after the test.
"""

from __future__ import annotations

import shutil
import tempfile
from functools import cache
from pathlib import Path

from discharge_bridge.config import Settings
from discharge_bridge.db import alembic_config, make_engine

SQLITE_NAME = "discharge_bridge.db"  # what Settings.sqlalchemy_url names in data_dir


def migrate(url: str) -> None:
    """Alembic to head on ``url``, on an engine of its own that is closed afterwards (nothing stays connected)."""
    from alembic import command

    engine = make_engine(url)
    try:
        cfg = alembic_config(url)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()


@cache
def sqlite_template() -> Path:
    """A migrated SQLite file for this process (made on first use, removed at exit with its folder)."""
    folder = Path(tempfile.mkdtemp(prefix="db-sqlite-template-"))
    path = folder / SQLITE_NAME
    migrate(f"sqlite:///{path.resolve()}")
    assert path.exists() and not Path(f"{path}-wal").exists(), "the template must be closed and checkpointed"
    import atexit

    atexit.register(shutil.rmtree, folder, True)
    return path


def migrated_sqlite(data_dir: Path) -> Settings:
    """Settings on ``data_dir`` whose SQLite database is a fresh copy of the migrated template."""
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(sqlite_template(), data_dir / SQLITE_NAME)
    return Settings(data_dir=data_dir, database_url=None)
