"""The engine the service makes: PostgreSQL connections run without JIT, keeping the URL's own options."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from discharge_bridge.db import make_engine
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.postgres


def _show(url: str, setting: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text(f"SHOW {setting}")).scalar_one())
    finally:
        engine.dispose()


def test_postgresql_connections_run_without_jit(postgres_server: PostgresServer) -> None:
    url = postgres_server.url(postgres_server.create_database())
    assert _show(url, "jit") == "off"  # the board's aggregates spent longer compiling than running


def test_the_urls_own_server_options_still_apply_and_win(postgres_server: PostgresServer) -> None:
    url = postgres_server.url(postgres_server.create_database())
    asked = f"{url}?options=-c%20statement_timeout%3D4321%20-c%20jit%3Don"
    assert _show(asked, "statement_timeout") == "4321ms"
    assert _show(asked, "jit") == "on"
