"""The ``discharge-bridge`` command: database, sources, sync and dead letters.

Output for people goes to the terminal through rich; ``--format json`` gives machines the same data.
Nothing printed here carries patient names, birth dates or identifiers.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from discharge_bridge.config import get_settings
from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.users.cli import app as users_app

app = typer.Typer(no_args_is_help=True, help="Discharge coordination over a hospital's FHIR R4 server.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
sources_app = typer.Typer(no_args_is_help=True, help="Hospital FHIR endpoints (sources).")
dead_app = typer.Typer(no_args_is_help=True, help="Resources that could not be ingested.")
app.add_typer(db_app, name="db")
app.add_typer(sources_app, name="sources")
app.add_typer(dead_app, name="deadletters")
app.add_typer(users_app, name="users")

console = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def ready_database() -> None:
    """Upgrade the embedded SQLite schema on the fly; PostgreSQL must be upgraded on purpose."""
    from discharge_bridge.db import current_revision, upgrade

    settings = get_settings()
    if settings.is_sqlite:
        upgrade(settings)
        return
    from alembic.script import ScriptDirectory

    from discharge_bridge.db import alembic_config

    head = ScriptDirectory.from_config(alembic_config(settings.sqlalchemy_url)).get_current_head()
    if current_revision(settings) != head:
        raise _fail("the database schema is not current: run `discharge-bridge db upgrade` first")


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply Alembic migrations up to REVISION (default: the newest)."""
    from discharge_bridge.db import current_revision, upgrade

    upgrade(get_settings(), revision)
    console.print(f"schema at revision {current_revision()}")


# -- sources -------------------------------------------------------------------------------------


@sources_app.command("add")
def sources_add(
    name: Annotated[str, typer.Argument(help="Short name used in commands and URLs, e.g. city-hospital-1.")],
    hospital: Annotated[str, typer.Option(help="Hospital display name.")],
    base_url: Annotated[str, typer.Option(help="FHIR R4 base URL (or a folder/file for --mode file).")],
    auth: Annotated[str, typer.Option(help="none | bearer | basic | smart")] = "none",
    token_env: Annotated[str | None, typer.Option(help="bearer: env var holding the token.")] = None,
    token_file: Annotated[str | None, typer.Option(help="bearer: file holding the token.")] = None,
    username: Annotated[str | None, typer.Option(help="basic: user name.")] = None,
    password_env: Annotated[str | None, typer.Option(help="basic: env var holding the password.")] = None,
    password_file: Annotated[str | None, typer.Option(help="basic: file holding the password.")] = None,
    client_id: Annotated[str | None, typer.Option(help="smart: registered client id.")] = None,
    private_key_file: Annotated[str | None, typer.Option(help="smart: PEM private key file.")] = None,
    kid: Annotated[str | None, typer.Option(help="smart: key id registered with the EHR.")] = None,
    alg: Annotated[str, typer.Option(help="smart: RS384 or ES384.")] = "RS384",
    scope: Annotated[str | None, typer.Option(help="smart: scopes to request.")] = None,
    token_url: Annotated[str | None, typer.Option(help="smart: token URL (default: discovered).")] = None,
    timezone: Annotated[str, typer.Option(help="Hospital IANA time zone.")] = "UTC",
    mode: Annotated[str, typer.Option(help="poll | subscription | bulk | file")] = "poll",
    interval: Annotated[int, typer.Option(help="Seconds between polls.")] = 300,
    mapping: Annotated[str, typer.Option(help="Mapping file name in mappings/ (without .yaml).")] = "default",
    classes: Annotated[str, typer.Option(help="Inpatient Encounter.class codes.")] = "IMP,ACUTE,NONAC",
) -> None:
    """Register a hospital's FHIR endpoint. Secrets are named by env var or file, never given inline."""
    from discharge_bridge.sources.models import SourceMode
    from discharge_bridge.sources.service import SourceError, add_source

    ready_database()
    auth_fields: dict[str, Any] = {
        "type": auth,
        "token_env": token_env,
        "token_file": token_file,
        "username": username,
        "password_env": password_env,
        "password_file": password_file,
        "client_id": client_id,
        "private_key_file": private_key_file,
        "kid": kid,
        "alg": alg,
        "scope": scope,
        "token_url": token_url,
    }
    try:
        source_mode = SourceMode(mode)
    except ValueError:
        raise _fail(f"mode must be one of {', '.join(m.value for m in SourceMode)}") from None
    try:
        with session_scope(get_engine()) as session:
            add_source(
                session,
                name=name,
                hospital=hospital,
                base_url=base_url,
                auth={k: v for k, v in auth_fields.items() if v is not None},
                timezone=timezone,
                mode=source_mode,
                poll_interval_seconds=interval,
                mapping=mapping,
                inpatient_classes=[c.strip() for c in classes.split(",") if c.strip()],
            )
    except SourceError as exc:
        raise _fail(str(exc)) from None
    console.print(f"added source [bold]{name}[/bold]; next: `discharge-bridge sources check {name}`")


@sources_app.command("set")
def sources_set(
    name: str,
    hospital: Annotated[str | None, typer.Option(help="Hospital display name.")] = None,
    base_url: Annotated[str | None, typer.Option(help="FHIR R4 base URL.")] = None,
    timezone: Annotated[str | None, typer.Option(help="Hospital IANA time zone.")] = None,
    interval: Annotated[int | None, typer.Option(help="Seconds between polls.")] = None,
    mapping: Annotated[str | None, typer.Option(help="Mapping file name in mappings/.")] = None,
    classes: Annotated[str | None, typer.Option(help="Inpatient Encounter.class codes.")] = None,
    enabled: Annotated[bool | None, typer.Option("--enabled/--disabled", help="Poll this source or not.")] = None,
    assignment: Annotated[str | None, typer.Option(help="How new cases get a coordinator: round_robin | ward.")] = None,
    ward: Annotated[
        list[str] | None,
        typer.Option(help="With --assignment ward: USER=WARD (the ward as the EHR names it); repeatable."),
    ] = None,
    ward_fallback: Annotated[
        str, typer.Option(help="With --assignment ward, a ward nobody covers: round_robin | none.")
    ] = "round_robin",
    morning_time: Annotated[str | None, typer.Option(help="Local HH:MM of the morning worklist.")] = None,
) -> None:
    """Change a source's settings; its synced data stays. Run `rescore` after a mapping change."""
    from discharge_bridge.sources.service import SourceError, SourceNotFound, update_source

    ready_database()
    if ward and assignment != "ward":
        raise _fail("--ward needs --assignment ward", 2)
    wards: dict[str, str] = {}
    for item in ward or []:
        user, sep, ward_name = item.partition("=")
        if not (sep and user.strip() and ward_name.strip()):
            raise _fail("--ward takes USER=WARD, e.g. --ward alice='Ward 3A'", 2)
        wards[ward_name.strip()] = user.strip()
    changes: dict[str, Any] = {
        "hospital": hospital,
        "base_url": base_url,
        "timezone": timezone,
        "poll_interval_seconds": interval,
        "mapping": mapping,
        "inpatient_classes": [c.strip() for c in classes.split(",") if c.strip()] if classes else None,
        "enabled": enabled,
        "assignment": {"mode": assignment, "wards": wards, "fallback": ward_fallback} if assignment else None,
        "morning_time": morning_time,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise _fail("nothing to change: give at least one option (see --help)", 2)
    try:
        with session_scope(get_engine()) as session:
            update_source(session, name, changes)
    except (SourceError, SourceNotFound) as exc:
        raise _fail(str(exc)) from None
    console.print(f"updated {name}: {', '.join(sorted(changes))}")
    if "mapping" in changes:
        console.print(f"next: `discharge-bridge rescore --source {name}`")


@sources_app.command("list")
def sources_list(fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table") -> None:
    """Show every source with its sync status."""
    from discharge_bridge.sources.service import list_sources
    from discharge_bridge.subscriptions.schemas import push_summary

    ready_database()
    with session_scope(get_engine()) as session:
        rows = [_source_row(s) | {"push": push_summary(session, s.id)} for s in list_sources(session)]
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table("name", "hospital", "mode", "base URL", "auth", "last success", "last error", "push")
    for row in rows:
        table.add_row(
            row["name"],
            row["hospital"],
            row["mode"],
            row["base_url"],
            row["auth"],
            str(row["last_success_at"] or "never"),
            (row["last_error"] or "")[:80],
            row["push"][:80],
        )
    console.print(table)


def _source_row(source: Any) -> dict[str, Any]:
    return {
        "name": source.name,
        "hospital": source.hospital,
        "mode": str(source.mode),
        "base_url": source.base_url,
        "auth": source.auth.get("type", "none"),
        "timezone": source.timezone,
        "interval_s": source.poll_interval_seconds,
        "mapping": source.mapping,
        "cursor": source.cursors.get("Encounter"),
        "last_success_at": source.last_success_at,
        "last_error": source.last_error,
    }


@sources_app.command("remove")
def sources_remove(
    name: str, yes: Annotated[bool, typer.Option("--yes", help="Confirm deleting its synced data.")] = False
) -> None:
    """Delete a source and everything synced from it."""
    from discharge_bridge.sources.service import SourceNotFound, remove_source

    if not yes:
        raise _fail(f"this deletes {name!r} and all data synced from it; repeat with --yes", 2)
    ready_database()
    try:
        with session_scope(get_engine()) as session:
            remove_source(session, name)
    except SourceNotFound as exc:
        raise _fail(str(exc)) from None
    console.print(f"removed source {name}")


@sources_app.command("check")
def sources_check(name: str) -> None:
    """Read the CapabilityStatement and try an authenticated search (a file source: its folder); say what to fix."""
    from discharge_bridge.sources.check import CheckStatus
    from discharge_bridge.sources.service import SourceNotFound, get_source
    from discharge_bridge.sources.status import run_check

    ready_database()
    try:
        with session_scope(get_engine()) as session:
            source = get_source(session, name)
    except SourceNotFound as exc:
        raise _fail(str(exc)) from None
    report = run_check(source)  # the same check as the hospital IT page
    marks = {CheckStatus.ok: "[green]ok[/green]", CheckStatus.warning: "[yellow]warn[/yellow]"}
    for item in report.items:
        console.print(f"{marks.get(item.status, '[red]FAIL[/red]'):>6}  {item.name}: {item.detail}")
    if not report.ok:
        raise typer.Exit(1)


@sources_app.command("subscribe")
def sources_subscribe(
    name: str,
    public_url: Annotated[str, typer.Option(help="Where the EHR reaches this service, e.g. https://bridge.example.")],
    secret_env: Annotated[str | None, typer.Option(help="Env var holding the webhook secret.")] = None,
    secret_file: Annotated[str | None, typer.Option(help="File holding the webhook secret.")] = None,
    kind: Annotated[str, typer.Option(help="classic (R4 criteria) | backport (topic-based).")] = "classic",
    criteria: Annotated[
        list[str] | None, typer.Option(help="classic: e.g. 'Encounter?class=IMP' (default: the source's classes).")
    ] = None,
    topic: Annotated[list[str] | None, typer.Option(help="backport: SubscriptionTopic URL; repeatable.")] = None,
    filter_: Annotated[
        str | None, typer.Option("--filter", help="backport: filter criteria (default: the source's classes).")
    ] = None,
    content: Annotated[
        str | None, typer.Option(help="full-resource | id-only (backport) | empty; default full / id-only.")
    ] = None,
    heartbeat: Annotated[int | None, typer.Option(help="backport: heartbeat period in seconds.")] = None,
    safety_poll_factor: Annotated[int, typer.Option(help="Poll this many times less often while subscribed.")] = 6,
) -> None:
    """Create the Subscription(s) on the EHR that push admissions here; polling slows to a safety net."""
    from discharge_bridge.fhir import FhirError
    from discharge_bridge.sources.service import SourceNotFound
    from discharge_bridge.subscriptions.models import PayloadContent, SubscriptionKind
    from discharge_bridge.subscriptions.service import (
        SECRET_HEADER,
        SubscribeRequest,
        SubscriptionError,
        subscribe_source,
    )

    ready_database()
    try:
        request = SubscribeRequest(
            public_url=public_url,
            kind=SubscriptionKind(kind),
            criteria=tuple(criteria or ()),
            topics=tuple(topic or ()),
            filter=filter_,
            content=PayloadContent(content) if content else None,
            heartbeat_seconds=heartbeat,
            secret_env=secret_env,
            secret_file=secret_file,
            safety_poll_factor=safety_poll_factor,
        )
    except ValueError:
        raise _fail("--kind is classic or backport; --content is full-resource, id-only or empty", 2) from None
    try:
        rows = subscribe_source(name, request, engine=get_engine())
    except (SubscriptionError, SourceNotFound) as exc:
        raise _fail(str(exc)) from None
    except FhirError as exc:
        raise _fail(f"the EHR refused the Subscription: {exc}") from None
    for row in rows:
        console.print(f"{name}: {row.kind} Subscription/{row.server_id} ({row.status}) for {row.criteria}")
    secret_from = f"env {secret_env}" if secret_env else f"file {secret_file}"
    console.print(
        f"notifications go to {rows[0].endpoint} with header {SECRET_HEADER} ({secret_from}); "
        f"polling continues every {safety_poll_factor}x the interval as a safety net"
    )


@sources_app.command("unsubscribe")
def sources_unsubscribe(name: str) -> None:
    """Delete the source's Subscriptions (on the EHR and here) and poll at the normal interval again."""
    from discharge_bridge.sources.service import SourceNotFound
    from discharge_bridge.subscriptions.service import SubscriptionError, unsubscribe_source

    ready_database()
    try:
        problems = unsubscribe_source(name, engine=get_engine())
    except (SubscriptionError, SourceNotFound) as exc:
        raise _fail(str(exc)) from None
    for problem in problems:
        err.print(f"[yellow]warning:[/yellow] {problem} (delete it on the EHR by hand)")
    console.print(f"{name}: unsubscribed; the webhook no longer accepts its notifications")


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

    from discharge_bridge.ingest.backfill import backfill_source
    from discharge_bridge.sources.service import SourceNotFound

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
        except SourceNotFound as exc:
            raise _fail(str(exc)) from None
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


# -- sync ----------------------------------------------------------------------------------------


@app.command("sync")
def sync(
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
) -> None:
    """Poll sources: one pass with --once, otherwise at each source's interval until stopped."""
    ready_database()
    if not once:
        from discharge_bridge.scheduler import run_polling_forever

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
    from discharge_bridge.sources.service import SourceNotFound, get_source, list_sources

    with session_scope(get_engine()) as session:
        try:
            names = [get_source(session, only).name] if only else [s.name for s in list_sources(session)]
        except SourceNotFound as exc:
            raise _fail(str(exc)) from None
    if not names:
        raise _fail("no sources yet: add one with `discharge-bridge sources add`")
    return names


def _sync_once(only: str | None, *, show_progress: bool) -> list[Any]:
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from discharge_bridge.ingest.poll import sync_source

    engine = get_engine()
    names = _source_names(only)
    results = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=err, disable=not show_progress) as bar:
        for name in names:
            task = bar.add_task(f"{name}: starting")

            def report(stage: str, count: int, task: Any = task, name: str = name) -> None:
                bar.update(task, description=f"{name}: {count} resources")

            results.append(sync_source(name, engine=engine, progress=report))
            bar.update(task, description=f"{name}: done")
    return results


# -- risk and worklist ---------------------------------------------------------------------------


@app.command("rescore")
def rescore(
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    force: Annotated[bool, typer.Option(help="Recompute even where nothing changed.")] = False,
) -> None:
    """Re-assess every current admission (after a rule or mapping change; daily for length of stay)."""
    from discharge_bridge.risk import MappingError, RuleSetError
    from discharge_bridge.scheduling.rescore import rescore_source

    ready_database()
    engine = get_engine()
    for name in _source_names(source):
        try:
            follow = rescore_source(engine, name, get_settings(), force=force)
        except (MappingError, RuleSetError) as exc:
            raise _fail(str(exc)) from None
        scores, cases = follow.scores, follow.cases
        console.print(
            f"{name}: {scores.assessed} assessed, {scores.flagged} flagged, {scores.unchanged} unchanged; "
            f"{cases.opened} cases opened, {cases.discharged} discharged"
        )


@app.command("worklist")
def worklist_cmd(
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    min_priority: Annotated[str | None, typer.Option(help="high | medium | low")] = None,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 200,
) -> None:
    """Current flagged admissions, highest priority first, with the reasons to check in the chart."""
    from discharge_bridge.risk import RuleSetError, load_rules
    from discharge_bridge.sources.service import SourceNotFound, get_source
    from discharge_bridge.worklists.service import worklist

    ready_database()
    if min_priority not in (None, "high", "medium", "low"):
        raise _fail("--min-priority must be high, medium or low")
    try:
        rules = load_rules("rules", search_dir=get_settings().mappings_dir)
    except RuleSetError as exc:
        raise _fail(str(exc)) from None
    with session_scope(get_engine()) as session:
        try:
            ids = [get_source(session, source).id or 0] if source else None
        except SourceNotFound as exc:
            raise _fail(str(exc)) from None
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
    from discharge_bridge.db import utcnow
    from discharge_bridge.risk import RuleSetError, load_rules
    from discharge_bridge.sources.service import SourceNotFound, get_source, list_sources
    from discharge_bridge.worklists.morning import build_morning_list, for_coordinator, latest_for

    ready_database()
    with session_scope(get_engine()) as session:
        try:
            sources = [get_source(session, source)] if source else list_sources(session)
        except SourceNotFound as exc:
            raise _fail(str(exc)) from None
        if build:
            try:
                rules_version = load_rules("rules", search_dir=get_settings().mappings_dir).version
            except RuleSetError as exc:
                raise _fail(str(exc)) from None
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


# -- dead letters --------------------------------------------------------------------------------


@dead_app.command("list")
def deadletters_list(
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    include_resolved: Annotated[bool, typer.Option("--all", help="Include replayed ones.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
) -> None:
    """Resources that could not be ingested, with the reason (payloads stay in the database)."""
    from discharge_bridge.ingest.deadletters import list_dead_letters
    from discharge_bridge.sources.service import SourceNotFound, get_source, list_sources

    ready_database()
    with session_scope(get_engine()) as session:
        try:
            source_id = get_source(session, source).id if source else None
        except SourceNotFound as exc:
            raise _fail(str(exc)) from None
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
    from discharge_bridge.fhir import FhirError
    from discharge_bridge.ingest.deadletters import list_dead_letters, replay
    from discharge_bridge.ingest.models import DeadLetter
    from discharge_bridge.sources.models import Source
    from discharge_bridge.sources.service import client_for, get_source

    ready_database()
    engine = get_engine()
    failed = 0
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
            failed += not outcome.resolved
            console.print(
                f"{outcome.dead_letter_id}: {'resolved' if outcome.resolved else 'not resolved'} ({outcome.detail})"
            )
        for client in clients.values():
            if client is not None:
                client.close()
    if not letters:
        console.print("nothing to replay")
    if failed:
        raise typer.Exit(1)


# -- serving -------------------------------------------------------------------------------------


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    scheduler: Annotated[
        bool,
        typer.Option(
            "--scheduler/--no-scheduler",
            help="Also run the scheduler in this process (it waits while another process leads). "
            "--no-scheduler for web replicas beside one `discharge-bridge scheduler`.",
        ),
    ] = True,
) -> None:
    """Run the web service (and, unless --no-scheduler, the scheduled jobs) on the configured database."""
    import uvicorn

    from discharge_bridge.api import create_app
    from discharge_bridge.logs import configure_logging, uvicorn_log_config

    settings = get_settings()
    ready_database()
    configure_logging(settings)
    runner = _background_scheduler(settings) if scheduler else None
    try:
        # uvicorn's access log prints raw paths and query strings: ours logs route templates instead.
        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            log_level=settings.log_level.lower(),
            log_config=uvicorn_log_config(),
            access_log=False,
            proxy_headers=True,
        )
    finally:
        if runner is not None:
            runner.stop(wait=5)


def _print_demo_welcome(settings: Any, port: int) -> None:
    from discharge_bridge.demo import DEMO_USERS, demo_password

    token = settings.api_token.get_secret_value() if settings.api_token else ""
    console.print(f"\n  discharge_bridge demo at [bold]http://127.0.0.1:{port}/[/bold]  (API docs: /docs)")
    console.print(f"  sign in with password [bold]{demo_password(settings)}[/bold] as:")
    for username, name, role in DEMO_USERS:
        console.print(f"    [bold]{username:<7}[/bold] {role.value:<12} {name}")
    console.print(  # soft_wrap: a wrapped token would not survive copy and paste
        f"  API (admin service token): curl -H 'Authorization: Bearer {token}' http://127.0.0.1:{port}/api/v1/sources\n",
        soft_wrap=True,
    )


@app.command("demo")
def demo(
    port: Annotated[int, typer.Option(help="Port to listen on (127.0.0.1).")] = 8000,
    load_only: Annotated[bool, typer.Option("--load-only", help="Load the demo hospital and exit.")] = False,
) -> None:
    """Start on the embedded default: SQLite in the data folder and the bundled demo hospital."""
    import uvicorn

    from discharge_bridge.api import create_app
    from discharge_bridge.demo import prepare_demo

    settings, result = prepare_demo(get_settings())
    console.print(
        f"demo hospital loaded: {result.fetched} resources ({result.created} new), "
        f"{result.dead_letters} dead letters, database {settings.sqlalchemy_url}"
    )
    if load_only:
        return
    from discharge_bridge.logs import configure_logging, uvicorn_log_config

    configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    _print_demo_welcome(settings, port)
    runner = _background_scheduler(settings)
    try:
        uvicorn.run(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            log_config=uvicorn_log_config(),
            access_log=False,
        )
    finally:
        runner.stop(wait=5)


def _background_scheduler(settings: Any) -> Any:
    """The scheduler in a thread of this process, behind the same leader lock as `scheduler`."""
    from discharge_bridge.scheduling.runner import SchedulerRunner

    runner = SchedulerRunner(settings)
    runner.start_in_thread()
    return runner


@app.command("scheduler")
def scheduler_cmd() -> None:
    """Run the scheduled jobs in the foreground: polling, morning worklists, escalation, re-scoring.

    Only one scheduler leads per database (a PostgreSQL advisory lock; a lock file on SQLite): a
    second one waits and takes over when the first stops or dies.
    """
    import signal

    from discharge_bridge.logs import configure_logging
    from discharge_bridge.scheduling.runner import SchedulerRunner

    settings = get_settings()
    ready_database()
    configure_logging(settings)
    runner = SchedulerRunner(settings, say=lambda text: err.print(text, highlight=False))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: runner.stop())
    err.print(f"scheduler {runner.holder}: taking the leader lock on {settings.sqlalchemy_url.split('@')[-1]}")
    runner.run()
    err.print("scheduler stopped")


if __name__ == "__main__":  # pragma: no cover
    app()
