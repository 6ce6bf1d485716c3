"""Getting data in: one pass or continuous polling, Bulk backfill, re-scoring, dead letters."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from discharge_bridge.assessment import assess_source, drain, sync_and_assess
from discharge_bridge.audit import AdminAction, Target, record_admin_action
from discharge_bridge.cli.common import cli_actor, console, err, fail, ready_database
from discharge_bridge.config import get_settings
from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.fhir import FhirError
from discharge_bridge.ingest.backfill import backfill_source
from discharge_bridge.ingest.deadletters import ReplayOutcome, list_dead_letters, replay
from discharge_bridge.ingest.models import DeadLetter
from discharge_bridge.risk import MappingError, RuleSetError
from discharge_bridge.scheduling.rescore import rescore_source
from discharge_bridge.scheduling.scheduler import run_polling_forever
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.service import SourceNotFound, client_for, get_source, list_sources

app = typer.Typer()
dead_app = typer.Typer(no_args_is_help=True, help="Resources that could not be ingested.")


@app.command("backfill")
def backfill(
    name: str,
    group: Annotated[
        str | None, typer.Option(help="Export this Group (e.g. current inpatients), not all patients.")
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Everything, not just what changed since the last one.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
) -> None:
    """Load a source's census with Bulk Data $export; resumes an interrupted one; sets the poll cursor."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    ready_database()
    show = sys.stderr.isatty() and fmt == "table"
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, disable=not show) as bar:
        task = bar.add_task(f"{name}: starting", total=None)

        def report(stage: str, done: int, total: int | None) -> None:
            if stage:
                bar.update(task, description=f"{name}: {stage}")
            bar.update(task, completed=done, total=total)

        try:
            outcome = backfill_source(name, engine=get_engine(), group_id=group, full=full, progress=report)
            bar.update(task, description=f"{name}: assessing")
            assess_source(outcome.sync, name, engine=get_engine(), settings=get_settings())
        except SourceNotFound as exc:
            raise fail(str(exc)) from None
    r = outcome.sync
    row = {
        "source": name,
        "status": str(r.status),
        "resumed": outcome.resumed,
        "since": outcome.since,
        "transaction_time": outcome.transaction_time,
        "read": outcome.read,
        "ingested": r.fetched,
        "skipped": outcome.skipped,
        "new": r.created,
        "updated": r.updated,
        "dead_letters": r.dead_letters,
        "assessed": r.assessed,
        "flagged": r.flagged,
        "cursor": r.cursor_after,
        "duration_s": round(r.duration_s, 2),
        "error": r.error,
    }
    if fmt == "json":
        typer.echo(json.dumps(row, indent=2))
    else:
        for key, value in row.items():
            if key != "error":
                console.print(f"{key:>16}  {value}")
        if r.error:
            err.print(f"[red]{name}:[/red] {r.error}")
    if r.status != "ok":
        raise typer.Exit(1)


@app.command("sync")
def sync(
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
) -> None:
    """Poll sources: one pass with --once, otherwise at each source's interval until stopped."""
    ready_database()
    if not once:
        run_polling_forever(only=source)
        return
    results = _sync_once(source, show_progress=sys.stderr.isatty() and fmt == "table")
    rows = [
        {
            "source": r.source,
            "status": str(r.status),
            "fetched": r.fetched,
            "new": r.created,
            "updated": r.updated,
            "unchanged": r.unchanged,
            "dead_letters": r.dead_letters,
            "cursor": r.cursor_after,
            "assessed": r.assessed,
            "flagged": r.flagged,
            "cases_opened": r.cases_opened,
            "discharged": r.discharged,
            "duration_s": round(r.duration_s, 2),
            "error": r.error,
        }
        for r in results
    ]
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
    else:
        table = Table("source", "status", "fetched", "new", "updated", "dead letters", "cursor", "seconds")
        for row in rows:
            status = "[green]ok[/green]" if row["status"] == "ok" else "[red]failed[/red]"
            table.add_row(
                row["source"],
                status,
                *(str(row[k]) for k in ("fetched", "new", "updated", "dead_letters")),
                str(row["cursor"] or "-"),
                str(row["duration_s"]),
            )
        console.print(table)
        for row in rows:
            if row["error"]:
                err.print(f"[red]{row['source']}:[/red] {row['error']}")
    if any(row["status"] != "ok" for row in rows):
        raise typer.Exit(1)


def _source_names(only: str | None) -> list[str]:
    """The named source, or every source; a clear error for an unknown name or none at all."""

    with session_scope(get_engine()) as session:
        try:
            names = [get_source(session, only).name] if only else [s.name for s in list_sources(session)]
        except SourceNotFound as exc:
            raise fail(str(exc)) from None
    if not names:
        raise fail("no sources yet: add one with `discharge-bridge sources add`")
    return names


def _sync_once(only: str | None, *, show_progress: bool) -> list[Any]:
    from rich.progress import Progress, SpinnerColumn, TextColumn

    engine = get_engine()
    names = _source_names(only)
    results = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=err, disable=not show_progress) as bar:
        for name in names:
            task = bar.add_task(f"{name}: starting")

            def report(stage: str, count: int, task: Any = task, name: str = name) -> None:
                bar.update(task, description=f"{name}: {count} resources")

            results.append(sync_and_assess(name, engine=engine, progress=report))
            bar.update(task, description=f"{name}: done")
    return results


def _by_source(letters: list[DeadLetter], outcomes: list[ReplayOutcome]) -> dict[int, list[ReplayOutcome]]:
    grouped: dict[int, list[ReplayOutcome]] = {}
    for letter, outcome in zip(letters, outcomes, strict=True):
        grouped.setdefault(letter.source_id, []).append(outcome)
    return grouped


@app.command("rescore")
def rescore(
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    force: Annotated[bool, typer.Option(help="Recompute even where nothing changed.")] = False,
) -> None:
    """Re-assess every current admission (after a rule or mapping change; daily for length of stay)."""

    ready_database()
    engine = get_engine()
    for name in _source_names(source):
        try:
            follow = rescore_source(engine, name, get_settings(), force=force)
        except (MappingError, RuleSetError) as exc:
            raise fail(str(exc)) from None
        with session_scope(engine) as session:
            details = {"force": force, "assessed": follow.scores.assessed, "flagged": follow.scores.flagged}
            record_admin_action(session, cli_actor(), AdminAction.rules_rescore, Target("source", name), details)
        scores, cases = follow.scores, follow.cases
        console.print(
            f"{name}: {scores.assessed} assessed, {scores.flagged} flagged, {scores.unchanged} unchanged; "
            f"{cases.opened} cases opened, {cases.discharged} discharged"
        )


@dead_app.command("list")
def deadletters_list(
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    include_resolved: Annotated[bool, typer.Option("--all", help="Include replayed ones.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
) -> None:
    """Resources that could not be ingested, with the reason (payloads stay in the database)."""

    ready_database()
    with session_scope(get_engine()) as session:
        try:
            source_id = get_source(session, source).id if source else None
        except SourceNotFound as exc:
            raise fail(str(exc)) from None
        names = {s.id: s.name for s in list_sources(session)}
        rows = [
            {
                "id": d.id,
                "source": names.get(d.source_id),
                "resource": f"{d.resource_type or '?'}/{d.fhir_id or '?'}",
                "error": d.error,
                "count": d.count,
                "last_seen": d.last_seen.isoformat(),
                "resolved": d.resolved_at is not None,
            }
            for d in list_dead_letters(session, source_id=source_id, include_resolved=include_resolved)
        ]
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "source", "resource", "error", "count", "last seen")
    for row in rows:
        table.add_row(*(str(row[k]) for k in ("id", "source", "resource", "error", "count", "last_seen")))
    console.print(table if rows else "no dead letters")


@dead_app.command("replay")
def deadletters_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead letter ids (default: all unresolved).")] = None,
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
) -> None:
    """Re-read each dead letter from the EHR (or re-parse it) through the normal ingest path."""

    ready_database()
    engine = get_engine()
    failed = 0
    outcomes: list[ReplayOutcome] = []
    with session_scope(engine) as session:
        source_id = get_source(session, source).id if source else None
        if ids:
            letters = [d for i in ids if (d := session.get(DeadLetter, i)) is not None]
        else:
            letters = list_dead_letters(session, source_id=source_id, limit=10_000)
        clients: dict[int, Any] = {}
        for letter in letters:
            src = session.get(Source, letter.source_id)
            assert src is not None and src.id is not None
            if src.id not in clients:
                try:
                    clients[src.id] = client_for(src)
                except FhirError:
                    clients[src.id] = None
            outcome = replay(session, letter, src, clients[src.id])
            outcomes.append(outcome)
            failed += not outcome.resolved
            console.print(
                f"{outcome.dead_letter_id}: {'resolved' if outcome.resolved else 'not resolved'} ({outcome.detail})"
            )
        for client in clients.values():
            if client is not None:
                client.close()
        for source_id, replayed in _by_source(letters, outcomes).items():
            src = session.get(Source, source_id)
            assert src is not None
            details = {
                "dead_letters": [o.dead_letter_id for o in replayed],
                "resolved": sum(o.resolved for o in replayed),
            }
            record_admin_action(
                session, cli_actor(), AdminAction.deadletter_replay, Target("source", src.name), details
            )
    drain(engine, get_settings())  # what the replays stored waits in the assessment queue
    if not letters:
        console.print("nothing to replay")
    if failed:
        raise typer.Exit(1)
