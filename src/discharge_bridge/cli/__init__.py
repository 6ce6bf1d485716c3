"""The ``discharge-bridge`` command, one module per group of commands.

Output for people goes to the terminal through rich; ``--format json`` gives machines the same data.
Nothing printed here carries patient names, birth dates or identifiers.
"""

from __future__ import annotations

import typer

from discharge_bridge.cli import directory, serve, sources, sync, users, worker, worklists, writeback
from discharge_bridge.cli.common import console
from discharge_bridge.clock import start_from_environment
from discharge_bridge.config import get_settings
from discharge_bridge.db import current_revision, private_files, upgrade

app = typer.Typer(no_args_is_help=True, help="Discharge coordination over a hospital's FHIR R4 server.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
app.add_typer(db_app, name="db")
app.add_typer(sources.app, name="sources")
app.add_typer(sync.dead_app, name="deadletters")
app.add_typer(users.app, name="users")
app.add_typer(directory.app, name="directory")
app.add_typer(writeback.app, name="writeback")
for group in (sync.app, worklists.app, serve.app, worker.app):
    app.registered_commands.extend(group.registered_commands)


@app.callback()
def main() -> None:
    """Discharge coordination over a hospital's FHIR R4 server."""
    start_from_environment()  # tests move every process's wall clock through one setting (clock.py)
    private_files()  # umask 0o077: the database, the demo's password and token, lock files: ours only


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply Alembic migrations up to REVISION (default: the newest)."""

    upgrade(get_settings(), revision)
    console.print(f"schema at revision {current_revision()}")


if __name__ == "__main__":  # pragma: no cover
    app()
