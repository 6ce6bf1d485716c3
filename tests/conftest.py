"""Shared fixtures: settings on a temp folder, and a migrated database on SQLite or PostgreSQL."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from discharge_bridge.clock import start_from_environment
from discharge_bridge.config import PROJECT_ROOT, Settings
from discharge_bridge.db import make_engine
from tests.support.db import migrated_sqlite
from tests.support.passwords import use_cheap_hashing
from tests.support.postgres import PostgresServer, _pg_bin

pytest_plugins = ["tests.support.fixtures"]


TERMINAL_ENV = ("COLUMNS", "LINES")


def pytest_configure(config: pytest.Config) -> None:
    """CI's clock-shifted runs set DISCHARGE_BRIDGE_CLOCK_START: the whole run starts at that instant.

    Passwords are hashed at argon2id's cheapest in this process (tests/support/passwords.py).

    A pytest-xdist worker gets the terminal size variables of the run that started it: GNU readline,
    loaded in a worker, exports COLUMNS=80 and LINES=24, which would freeze the CLI's Rich console
    at 80 columns when it is imported (a test's ``COLUMNS`` for one command would be ignored).
    """
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "terminal_env" in workerinput:
        for name, value in workerinput["terminal_env"].items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    start_from_environment()
    use_cheap_hashing()
    # Where sources may point (sources/safety.py): the tests' stand-in EHRs http://ehr.test and
    # http://poison.ehr.test (answered by respx or a MockTransport, never reached) by name, and file
    # sources in their temporary folders. Tests of the rules set their own (tests/connections/).
    os.environ.setdefault("DISCHARGE_BRIDGE_ALLOWED_SOURCE_HOSTS", "ehr.test,poison.ehr.test")
    os.environ.setdefault("DISCHARGE_BRIDGE_IMPORT_ROOTS", f"{tempfile.gettempdir()},{PROJECT_ROOT / 'fhir_fixtures'}")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: object) -> None:
    """pytest-xdist, in the controller: hand each worker this process's terminal size variables."""
    node.workerinput["terminal_env"] = {name: os.environ.get(name) for name in TERMINAL_ENV}  # type: ignore[attr-defined]


# Packages whose tests never read the date or the time of day (the HTTP client's retries and paging).
CLOCK_FREE = ("tests/fhir/",)


# Modules whose tests share a module-scoped fixture (a live server and the state its tests build up,
# or data read once): under pytest-xdist each runs whole, in order, on one worker; every other test
# is scheduled on its own. Collection fails when a module with such a fixture is missing here.
SHARED_MODULES = frozenset(
    {
        "tests/ingest/test_demo_hospital.py",
        "tests/ui/test_board_it_browser.py",
        "tests/ui/test_case_browser.py",
        "tests/ui/test_contacts_browser.py",
        "tests/ui/test_coordinator.py",
        "tests/ui/test_directory_browser.py",
        "tests/ui/test_launch_browser.py",
        "tests/ui/test_referral_journey.py",
        "tests/ui/test_security_browser.py",
        "tests/ui/test_signin.py",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything else is ``clock``: CI runs it again with the wall clock moved (.ci/run)."""
    root = Path(str(config.rootpath))
    unlisted: set[str] = set()
    for item in items:
        where = Path(str(item.path)).relative_to(root).as_posix()
        if not where.startswith(CLOCK_FREE):
            item.add_marker(pytest.mark.clock)
        if where not in SHARED_MODULES and _uses_module_fixture(item):
            unlisted.add(where)
    if unlisted:
        raise pytest.UsageError(f"module-scoped fixtures: list {sorted(unlisted)} in SHARED_MODULES")
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: the slow tests first, so none is left for last
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def _uses_module_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(defs[-1].scope == "module" for defs in info.name2fixturedefs.values() if defs)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (pyproject's addopts): a worker per core, at least 2, at most 4 (each starts its own
    PostgreSQL cluster, EHR simulators and Chromium)."""
    return max(2, min(os.cpu_count() or 2, 4))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """pytest-xdist (``-n N``, ``--dist load`` or ``loadgroup``): one test at a time to whichever worker
    is nearly idle, a module of SHARED_MODULES as one unit. (pytest-xdist's own ``xdist_group`` marks do
    not reach its scheduler under pytest 9, which no longer reads the node id the marks rewrite.)"""
    if config.getvalue("dist") not in ("load", "loadgroup"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedModulesTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in SHARED_MODULES else nodeid

    return SharedModulesTogether(config, log)  # type: ignore[arg-type]


_POSTGRES: list[PostgresServer] = []  # the session's server, once started


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if _pg_bin() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries are missing on CI: .ci/run must apt-get install postgresql")
        pytest.skip("PostgreSQL binaries not installed (apt-get install postgresql)")
    server = PostgresServer()
    server.start()
    _POSTGRES.append(server)
    yield server
    _POSTGRES.remove(server)
    server.stop()


@pytest.fixture(autouse=True)
def _drop_test_databases() -> Iterator[None]:
    """Every PostgreSQL database a test created is dropped after it (after its other fixtures' teardown)."""
    before = {id(server): len(server.created) for server in _POSTGRES}
    yield
    for server in _POSTGRES:
        server.drop_created(since=before.get(id(server), 0))


UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


@pytest.fixture(autouse=True)
def _restore_uvicorn_loggers() -> Iterator[None]:
    """A uvicorn started in this process (``uvicorn.Config(log_level=...)``) sets its loggers' levels for
    good: put them back, so a later test finds them as the first one did (in whatever order tests run)."""
    loggers = [logging.getLogger(name) for name in UVICORN_LOGGERS]
    saved = [(logger.level, logger.propagate, logger.disabled, list(logger.handlers)) for logger in loggers]
    yield
    for logger, (level, propagate, disabled, handlers) in zip(loggers, saved, strict=True):
        logger.setLevel(level)
        logger.propagate, logger.disabled = propagate, disabled
        logger.handlers[:] = handlers


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings whose database is a fresh, migrated SQLite file or PostgreSQL database.

    Both are copies of a template migrated once per session with Alembic (tests/support/db.py).
    """
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.url(server.create_database(migrated=True))
        return Settings(data_dir=tmp_path / "data", database_url=url)
    return migrated_sqlite(tmp_path / "data")


@pytest.fixture
def settings(db_settings: Settings) -> Settings:
    return db_settings


@pytest.fixture
def engine(db_settings: Settings) -> Iterator[Engine]:
    engine = make_engine(db_settings.sqlalchemy_url)
    yield engine
    engine.dispose()
