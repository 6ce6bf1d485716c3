"""Engine, sessions and schema upgrades.

One owner of the transaction: a request's session dependency or a job's ``session_scope()``;
services flush, never commit.

Files the service writes are its own: ``private_files()`` (called when the CLI and the web app
start) sets the process umask to 0o077, and the SQLite database is created 0600 (the data folder
0700) before SQLite first opens it (SQLite gives its -wal and -shm files the database's
mode). A database left readable to others by an older version is narrowed to 0600 when opened.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import DateTime, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, create_engine

from discharge_bridge.clock import utcnow as utcnow  # re-exported: many modules take it from here
from discharge_bridge.config import Settings, get_settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
PRIVATE_UMASK = 0o077
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_files() -> None:
    """Files and folders this process creates from now on are readable by its own user only."""
    os.umask(PRIVATE_UMASK)


def _sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///path`` URL (None for memory databases and other backends)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    path = url[len(prefix) :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def make_private(path: Path) -> None:
    """Create the SQLite database file 0600 if missing (in an existing folder: a missing one stays an
    error SQLite reports), and narrow it and its companions (-wal, -shm) to 0600 if an older version
    left them readable to others."""
    if not path.exists() and path.parent.is_dir():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for file in (path, *(Path(f"{path}{suffix}") for suffix in SQLITE_COMPANIONS)):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            file.chmod(mode & 0o700)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite forgets the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not UTC:  # parse_instant already returns UTC: skip the conversion (hot path)
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def insert_for(session: Session, table: Table) -> Any:
    """The dialect's INSERT (with ``on_conflict_do_update`` / ``do_nothing``) for ``table``."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {dialect}")


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


# A SQLite connection reads the planner statistics (``sqlite_stat1``) when it opens, and never again
# when another connection ANALYZEs (the assessment stage, as tables grow): a pooled connection of the
# web process would plan with the statistics of the day it opened, or none. So they are replaced.
SQLITE_RECYCLE_SECONDS = 300


def make_engine(url: str, *, fresh_connections: bool = False) -> Engine:
    """``fresh_connections``: on SQLite, a connection per checkout, for a process that only reads
    what another analyses (assessment/pool.py); otherwise SQLite connections last
    ``SQLITE_RECYCLE_SECONDS``."""
    kwargs: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if fresh_connections:
            kwargs["poolclass"] = NullPool
        elif _sqlite_path(url) is not None:
            kwargs["pool_recycle"] = SQLITE_RECYCLE_SECONDS
    else:
        kwargs["pool_pre_ping"] = True
        kwargs["pool_size"] = 10
        kwargs["max_overflow"] = 20
        # No JIT: the board's and the figures' aggregates over 100,000 admissions spent 1.6 s a query
        # compiling (more than running them); our queries are many and short, JIT pays off on neither.
        asked = make_url(url).query.get("options")  # the URL's own server options, last: they win
        kwargs["connect_args"] = {"options": " ".join(o for o in ("-c jit=off", asked) if isinstance(o, str))}
    sqlite_file = _sqlite_path(url)
    if sqlite_file is not None:
        make_private(sqlite_file)
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the web process read while a sync writes; NORMAL sync is durable at each checkpoint.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


@lru_cache
def _engine_for(url: str) -> Engine:
    return make_engine(url)


def get_engine(settings: Settings | None = None) -> Engine:
    settings = settings or get_settings()
    if settings.is_sqlite:
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return _engine_for(settings.sqlalchemy_url)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A job's unit of work: commit on success, roll back on any error."""
    session = Session(engine or get_engine(), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(settings: Settings | None = None, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with Alembic (idempotent)."""
    from alembic import command

    settings = settings or get_settings()
    with migrating(settings) as cfg:
        command.upgrade(cfg, revision)


@contextmanager
def migrating(settings: Settings) -> Iterator[Any]:
    """An Alembic config bound to one connection in one transaction, for ``command.upgrade`` / ``downgrade``.

    On SQLite, foreign keys are off while migrations run: SQLite alters a table by copying it and
    dropping the original, and with foreign keys on, dropping ``source`` would delete every row
    that cascades from it. They are checked once the migrations are done, and turned on again.
    """
    engine = get_engine(settings)
    cfg = alembic_config(settings.sqlalchemy_url)
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")  # outside a transaction, or SQLite ignores it
            conn.commit()  # ends SQLAlchemy's autobegun transaction (SQLite began none for a PRAGMA)
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                yield cfg
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"the migration left rows whose parent is gone: {broken[:5]}")
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def current_revision(settings: Settings | None = None) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with get_engine(settings).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
