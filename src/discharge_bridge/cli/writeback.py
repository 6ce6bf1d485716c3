"""``discharge-bridge writeback``: what a source's write-back holds, and sending its refused items again."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from discharge_bridge.cli.common import cli_actor, console, fail, ready_database
from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.ehr.writeback.status import retry_failed, writeback_status
from discharge_bridge.sources.service import SourceNotFound, get_source, list_sources

app = typer.Typer(no_args_is_help=True, help="Write-back to the EHR: Flags, RiskAssessments, Tasks.")


@app.command("status")
def writeback_status_command(
    source: Annotated[str | None, typer.Argument(help="A source's name (default: every source).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
) -> None:
    """Write-back on or off, items pending / sent / failed, and each refused item with the EHR's reasons."""

    ready_database()
    try:
        with session_scope(get_engine()) as session:
            sources = [get_source(session, source)] if source else list_sources(session)
            views = [writeback_status(session, s) for s in sources]
    except SourceNotFound as exc:
        raise fail(str(exc)) from None
    if fmt == "json":
        typer.echo(json.dumps([asdict(v) for v in views], indent=2, default=str))
        return
    table = Table("source", "write-back", "resources", "pending", "sent", "failed", "next attempt")
    for view in views:
        table.add_row(
            view.source,
            "on" if view.enabled else "off",
            ",".join(view.resources),
            str(view.pending),
            str(view.sent),
            str(view.failed),
            view.next_attempt_at.isoformat(timespec="seconds") if view.next_attempt_at else "-",
        )
    console.print(table)
    for view in views:
        for item in view.failed_items:
            console.print(
                f"[red]failed[/red] {view.source} {item.resource_type} {item.identifier}: {item.last_error or ''}"
            )
            for issue in item.issues:
                console.print(f"    {issue.severity} {issue.code}: {issue.diagnostics}")


@app.command("retry")
def writeback_retry_command(source: Annotated[str, typer.Argument(help="The source's name.")]) -> None:
    """Send the source's refused items again at its next pass (after the cause was fixed)."""

    ready_database()
    try:
        with session_scope(get_engine()) as session:
            count = retry_failed(session, get_source(session, source), actor=cli_actor())
    except SourceNotFound as exc:
        raise fail(str(exc)) from None
    console.print(f"{source}: {count} failed items will be sent again")
