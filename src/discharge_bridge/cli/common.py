"""What every command shares: the consoles, failing with a message, a database ready to use."""

from __future__ import annotations

import getpass
import os

import typer
from rich.console import Console

from discharge_bridge.config import get_settings
from discharge_bridge.db import alembic_config, current_revision, upgrade

console = Console()
err = Console(stderr=True)


def cli_actor() -> str:
    """Who acts from the terminal, for the audit trail: ``cli:<operating-system user>``."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (a bare container)
        name = f"uid{os.getuid()}"
    return f"cli:{name}"


def fail(message: str, code: int = 1) -> typer.Exit:
    """An exit with ``message`` on stderr: ``raise fail(...)``."""
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def ready_database() -> None:
    """Upgrade the embedded SQLite schema on the fly; PostgreSQL must be upgraded on purpose."""

    settings = get_settings()
    if settings.is_sqlite:
        upgrade(settings)
        return
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(settings.sqlalchemy_url)).get_current_head()
    if current_revision(settings) != head:
        raise fail("the database schema is not current: run `discharge-bridge db upgrade` first")
