"""``discharge-bridge sources``: hospital IT registers, checks and subscribes to EHR endpoints.

Each change is recorded in the audit trail of administration as done by ``cli:<the operating-system
user>``: settings as the form shows them (secrets only as the names of their env vars or files)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from discharge_bridge.audit import AdminAction, Target, record_admin_action
from discharge_bridge.cli.common import cli_actor, console, err, fail, ready_database
from discharge_bridge.connections.check import CheckStatus
from discharge_bridge.connections.forms import audited_settings, record_edit
from discharge_bridge.connections.service import add_source, update_source
from discharge_bridge.connections.status import run_check
from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.ehr.cds.settings import set_cds_hooks
from discharge_bridge.ehr.launch.service import configure_launch
from discharge_bridge.ehr.writeback.settings import parse_resources, set_writeback
from discharge_bridge.fhir import FhirError
from discharge_bridge.ingest.changes import queue_depths
from discharge_bridge.sources.models import SourceMode
from discharge_bridge.sources.safety import masked_url
from discharge_bridge.sources.service import SourceError, SourceNotFound, get_source, list_sources, remove_source
from discharge_bridge.subscriptions.models import PayloadContent, SubscriptionKind
from discharge_bridge.subscriptions.schemas import push_summary
from discharge_bridge.subscriptions.service import (
    SECRET_HEADER,
    SubscribeRequest,
    SubscriptionError,
    subscribe_source,
    unsubscribe_source,
)

app = typer.Typer(no_args_is_help=True, help="Hospital FHIR endpoints (sources).")


@app.command("add")
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
        raise fail(f"mode must be one of {', '.join(m.value for m in SourceMode)}") from None
    try:
        with session_scope(get_engine()) as session:
            source = add_source(
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
            details = audited_settings(source)
            record_admin_action(session, cli_actor(), AdminAction.source_add, Target("source", name), details)
    except SourceError as exc:
        raise fail(str(exc)) from None
    console.print(f"added source [bold]{name}[/bold]; next: `discharge-bridge sources check {name}`")


@app.command("set")
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
    auth: Annotated[
        str | None, typer.Option(help="none | bearer | basic | smart, with its options as for `sources add`.")
    ] = None,
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
    writeback: Annotated[
        str | None, typer.Option(help="on | off: write Flags, RiskAssessments and Tasks back to the EHR.")
    ] = None,
    writeback_resources: Annotated[
        str | None, typer.Option(help="What write-back writes, e.g. Flag,RiskAssessment,Task (default: all).")
    ] = None,
    smart_client_id: Annotated[
        str | None, typer.Option(help="SMART App Launch: our client id at the EHR ('' turns the launch off).")
    ] = None,
    smart_scope: Annotated[
        str | None, typer.Option(help="SMART App Launch: the scopes an EHR launch asks for.")
    ] = None,
    cds_issuer: Annotated[str | None, typer.Option(help="CDS Hooks: the `iss` of the EHR's JWTs.")] = None,
    cds_jwks_url: Annotated[str | None, typer.Option(help="CDS Hooks: the EHR's JWK Set URL.")] = None,
    cds_jku: Annotated[
        list[str] | None, typer.Option(help="CDS Hooks: a JWK Set URL a token's jku may name; repeatable.")
    ] = None,
    cds_algorithms: Annotated[
        str | None, typer.Option(help="CDS Hooks: accepted JWT algorithms (default RS384,ES384).")
    ] = None,
    cds_origin: Annotated[
        list[str] | None, typer.Option(help="CDS Hooks: a browser-based EHR's origin allowed by CORS; repeatable.")
    ] = None,
    cds_off: Annotated[bool, typer.Option("--cds-off", help="CDS Hooks: forget this source's settings.")] = False,
) -> None:
    """Change a source's settings; its synced data stays. Run `rescore` after a mapping change.

    ``--auth`` replaces the whole authentication setting (e.g. credentials that were in an old base URL:
    ``--base-url https://host/fhir --auth basic --username NAME --password-env VARIABLE``)."""

    ready_database()
    if ward and assignment != "ward":
        raise fail("--ward needs --assignment ward", 2)
    wards: dict[str, str] = {}
    for item in ward or []:
        user, sep, ward_name = item.partition("=")
        if not (sep and user.strip() and ward_name.strip()):
            raise fail("--ward takes USER=WARD, e.g. --ward alice='Ward 3A'", 2)
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
    if auth is not None:
        given = {
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
        changes["auth"] = {k: v for k, v in given.items() if v is not None}
    elif any(
        v is not None
        for v in (token_env, token_file, username, password_env, password_file, client_id, private_key_file, kid)
    ) or any(v is not None for v in (scope, token_url)):
        raise fail("the authentication options go with --auth (it replaces the whole setting)", 2)
    changes = {k: v for k, v in changes.items() if v is not None}
    if writeback not in (None, "on", "off"):
        raise fail("--writeback takes on or off", 2)
    cds_given = [cds_issuer, cds_jwks_url, cds_jku, cds_algorithms, cds_origin]
    cds = cds_off or any(v is not None for v in cds_given)
    smart = smart_client_id is not None or smart_scope is not None
    if not changes and writeback is None and writeback_resources is None and not cds and not smart:
        raise fail("nothing to change: give at least one option (see --help)", 2)
    try:
        with session_scope(get_engine()) as session:
            source = get_source(session, name)
            before = audited_settings(source)
            if changes:
                source = update_source(session, name, changes)
            if writeback is not None or writeback_resources is not None:
                resources = parse_resources(writeback_resources) if writeback_resources is not None else None
                source = set_writeback(
                    session, source, enabled=None if writeback is None else writeback == "on", resources=resources
                )
                changes["writeback"] = True
            if cds:
                source = set_cds_hooks(
                    session,
                    source,
                    issuer=cds_issuer,
                    jwks_url=cds_jwks_url,
                    jku_allow=cds_jku,
                    algorithms=cds_algorithms.split(",") if cds_algorithms is not None else None,
                    origins=cds_origin,
                    off=cds_off,
                )
                changes["cds_hooks"] = True
            if smart:
                source = configure_launch(session, source, client_id=smart_client_id, scope=smart_scope)
                changes["smart_launch"] = True
            record_edit(session, cli_actor(), before, source)
    except (SourceError, SourceNotFound) as exc:
        raise fail(str(exc)) from None
    console.print(f"updated {name}: {', '.join(sorted(changes))}")
    if "mapping" in changes:
        console.print(f"next: `discharge-bridge rescore --source {name}`")


@app.command("list")
def sources_list(fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table") -> None:
    """Show every source with its sync status."""

    ready_database()
    with session_scope(get_engine()) as session:
        sources = list_sources(session)
        queued = queue_depths(session, [s.id for s in sources if s.id is not None])
        rows = [
            _source_row(s) | {"assessment_queue": queued.get(s.id or 0, 0), "push": push_summary(session, s.id)}
            for s in sources
        ]
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table("name", "hospital", "mode", "base URL", "auth", "last success", "last error", "to assess", "push")
    for row in rows:
        table.add_row(
            row["name"],
            row["hospital"],
            row["mode"],
            row["base_url"],
            row["auth"],
            str(row["last_success_at"] or "never"),
            row["last_error"] or "",  # whole: an unreadable page names its URL
            str(row["assessment_queue"]),
            row["push"][:80],
        )
    console.print(table)


def _source_row(source: Any) -> dict[str, Any]:
    return {
        "name": source.name,
        "hospital": source.hospital,
        "mode": str(source.mode),
        "base_url": masked_url(source.base_url),  # never what a URL saved before issue 16 held before its host
        "auth": source.auth.get("type", "none"),
        "timezone": source.timezone,
        "interval_s": source.poll_interval_seconds,
        "mapping": source.mapping,
        "cursor": source.cursors.get("Encounter"),
        "last_success_at": source.last_success_at,
        "last_error": source.last_error,
    }


@app.command("remove")
def sources_remove(
    name: str, yes: Annotated[bool, typer.Option("--yes", help="Confirm deleting its synced data.")] = False
) -> None:
    """Delete a source and everything synced from it."""

    if not yes:
        raise fail(f"this deletes {name!r} and all data synced from it; repeat with --yes", 2)
    ready_database()
    try:
        with session_scope(get_engine()) as session:
            remove_source(session, name)
            record_admin_action(session, cli_actor(), AdminAction.source_remove, Target("source", name))
    except SourceNotFound as exc:
        raise fail(str(exc)) from None
    console.print(f"removed source {name}")


@app.command("check")
def sources_check(name: str) -> None:
    """Read the CapabilityStatement and try an authenticated search (a file source: its folder); say what to fix."""

    ready_database()
    try:
        with session_scope(get_engine()) as session:
            source = get_source(session, name)
    except SourceNotFound as exc:
        raise fail(str(exc)) from None
    report = run_check(source)  # the same check as the hospital IT page
    marks = {CheckStatus.ok: "[green]ok[/green]", CheckStatus.warning: "[yellow]warn[/yellow]"}
    for item in report.items:
        console.print(f"{marks.get(item.status, '[red]FAIL[/red]'):>6}  {item.name}: {item.detail}")
    if not report.ok:
        raise typer.Exit(1)


@app.command("subscribe")
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
        raise fail("--kind is classic or backport; --content is full-resource, id-only or empty", 2) from None
    try:
        rows = subscribe_source(name, request, engine=get_engine())
    except (SubscriptionError, SourceNotFound) as exc:
        raise fail(str(exc)) from None
    except FhirError as exc:
        raise fail(f"the EHR refused the Subscription: {exc}") from None
    details: dict[str, Any] = {"subscriptions": [f"{r.kind} Subscription/{r.server_id} for {r.criteria}" for r in rows]}
    details |= {"endpoint": rows[0].endpoint, "secret_env": secret_env, "secret_file": secret_file}
    _audit(AdminAction.subscription_add, name, details)
    for row in rows:
        console.print(f"{name}: {row.kind} Subscription/{row.server_id} ({row.status}) for {row.criteria}")
    secret_from = f"env {secret_env}" if secret_env else f"file {secret_file}"
    console.print(
        f"notifications go to {rows[0].endpoint} with header {SECRET_HEADER} ({secret_from}); "
        f"polling continues every {safety_poll_factor}x the interval as a safety net"
    )


@app.command("unsubscribe")
def sources_unsubscribe(name: str) -> None:
    """Delete the source's Subscriptions (on the EHR and here) and poll at the normal interval again."""

    ready_database()
    try:
        problems = unsubscribe_source(name, engine=get_engine())
    except (SubscriptionError, SourceNotFound) as exc:
        raise fail(str(exc)) from None
    _audit(AdminAction.subscription_remove, name, {"problems": problems})
    for problem in problems:
        err.print(f"[yellow]warning:[/yellow] {problem} (delete it on the EHR by hand)")
    console.print(f"{name}: unsubscribed; the webhook no longer accepts its notifications")


def _audit(action: AdminAction, name: str, details: dict[str, Any]) -> None:
    """After a change made in its own transactions (the EHR was called in between)."""
    with session_scope(get_engine()) as session:
        record_admin_action(session, cli_actor(), action, Target("source", name), details)
