"""What coordinators see, from the terminal: the worklist and the morning list."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from discharge_bridge.cli.common import console, fail, ready_database
from discharge_bridge.config import get_settings
from discharge_bridge.db import get_engine, session_scope, utcnow
from discharge_bridge.risk import RuleSetError, loading
from discharge_bridge.sources.service import SourceNotFound, get_source, list_sources
from discharge_bridge.worklists.morning import build_morning_list, for_coordinator, latest_for
from discharge_bridge.worklists.service import worklist

app = typer.Typer()


@app.command("worklist")
def worklist_cmd(
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    min_priority: Annotated[str | None, typer.Option(help="high | medium | low")] = None,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 200,
) -> None:
    """Current flagged admissions, highest priority first, with the reasons to check in the chart."""

    ready_database()
    if min_priority not in (None, "high", "medium", "low"):
        raise fail("--min-priority must be high, medium or low")
    try:
        rules = loading.rule_set(get_settings().mappings_dir)
    except RuleSetError as exc:
        raise fail(str(exc)) from None
    with session_scope(get_engine()) as session:
        try:
            ids = [get_source(session, source).id or 0] if source else None
        except SourceNotFound as exc:
            raise fail(str(exc)) from None
        page = worklist(session, rules_version=rules.version, source_ids=ids, min_priority=min_priority, limit=limit)
    if fmt == "json":
        typer.echo(page.model_dump_json(indent=2))
        return
    table = Table("priority", "score", "source", "patient", "encounter", "admitted", "ward", "why", "LACE")
    colours = {"high": "red", "medium": "yellow", "low": "cyan"}
    for item in page.items:
        concepts = dict.fromkeys(c for r in item.reasons for c in r.concept.split("+"))
        why = ", ".join(concepts)
        lace = "-"
        if item.lace is not None and item.lace.total is not None:
            lace = f"{item.lace.total}{'*' if item.lace.partial else ''}"
        table.add_row(
            f"[{colours[item.priority]}]{item.priority}[/]",
            str(item.score),
            item.source,
            item.patient,
            item.encounter,
            item.admitted_at.date().isoformat() if item.admitted_at else "-",
            item.ward or "-",
            why,
            lace,
        )
    console.print(table)
    console.print(
        f"{page.total} flagged admissions (rules {rules.version}); LACE * = partial. "
        "Reasons with their evidence: --format json"
    )


@app.command("morning")
def morning_cmd(
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    coordinator: Annotated[str | None, typer.Option(help="Only this coordinator's cases and tasks.")] = None,
    build: Annotated[
        bool, typer.Option("--build", help="First build today's list where it is missing (as the scheduler would).")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
) -> None:
    """The newest morning worklist of each hospital: new flags since the last list, tasks due today or overdue."""

    ready_database()
    with session_scope(get_engine()) as session:
        try:
            sources = [get_source(session, source)] if source else list_sources(session)
        except SourceNotFound as exc:
            raise fail(str(exc)) from None
        if build:
            try:
                rules_version = loading.rule_set(get_settings().mappings_dir).version
            except RuleSetError as exc:
                raise fail(str(exc)) from None
            for src in sources:
                build_morning_list(session, src, now=utcnow(), rules_version=rules_version, generated_by="cli")
        names = {s.id or 0: s.name for s in sources}
        rows: list[dict[str, Any]] = [
            {
                "source": names[m.source_id],
                "local_date": m.local_date,
                "generated_at": m.generated_at.isoformat(),
                "since": m.since.isoformat() if m.since else None,
                "generated_by": m.generated_by,
                "items": for_coordinator(m.items, coordinator) if coordinator else m.items,
            }
            for m in sorted(latest_for(session, list(names)), key=lambda m: names[m.source_id])
        ]
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print("no morning list yet (the scheduler builds one each morning; --build makes today's now)")
    for row in rows:
        items, counts = row["items"], row["items"]["counts"]
        console.print(
            f"[bold]{row['source']}[/bold] {row['local_date']}: {counts['new_flags']} new flags, "
            f"{counts['due_today']} tasks due today, {counts['overdue']} overdue (built {row['generated_at']})"
        )
        if items["new_flags"]:
            flags = Table("priority", "score", "case", "patient", "encounter", "ward", "bed", "why", "coordinator")
            for f in items["new_flags"]:
                flags.add_row(
                    *(str(f[k] if f[k] is not None else "-") for k in ("priority", "score", "case_id", "patient")),
                    f["encounter"],
                    f["ward"] or "-",
                    f["bed"] or "-",
                    ", ".join(f["concepts"]),
                    f["coordinator"] or "-",
                )
            console.print(flags)
        if items["due_tasks"]:
            tasks = Table("due", "", "task", "case", "encounter", "kind", "priority", "owner", "description")
            for t in items["due_tasks"]:
                tasks.add_row(
                    t["due_at"],
                    "[red]overdue[/red]" if t["overdue"] else "",
                    str(t["task_id"]),
                    str(t["case_id"]),
                    t["encounter"],
                    t["kind"],
                    t["priority"],
                    t["owner"] or "-",
                    t["description"][:60],
                )
            console.print(tasks)
