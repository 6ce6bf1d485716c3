"""``discharge-bridge users``: people and machine accounts. Passwords and tokens are never echoed back
except a new token, once, to the person who created it.

Each change is recorded in the audit trail of administration, in the transaction that makes it,
as done by ``cli:<the operating-system user>``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlmodel import Session

from discharge_bridge.audit import AdminAction, Target, record_admin_action
from discharge_bridge.cli.common import cli_actor, console, err, fail, ready_database
from discharge_bridge.config import get_settings
from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.directory.service import organisation_by_code, organisations_by_id
from discharge_bridge.ehr.launch.identities import ehr_identities, link_ehr_user, unlink_ehr_user
from discharge_bridge.users.roles import Role
from discharge_bridge.users.service import (
    UserError,
    add_user,
    change_role,
    disable_user,
    issue_token,
    list_users,
    revoke_tokens,
    set_password,
)
from discharge_bridge.users.throttle import ThrottleKind, unlock

app = typer.Typer(no_args_is_help=True, help="Users, their roles and hospitals, and API tokens.")


def _read_password(password_env: str | None, password_file: Path | None, *, required: bool) -> str | None:
    if password_env:
        value = os.environ.get(password_env)
        if not value:
            raise fail(f"environment variable {password_env} is empty or not set")
        return value
    if password_file:
        try:
            return password_file.read_text().strip()
        except OSError as exc:
            raise fail(f"cannot read {password_file}: {exc.strerror}") from None
    if not required:
        return None
    if not sys.stdin.isatty():
        raise fail("no password given: use --password-env VAR or --password-file FILE (or run in a terminal)")
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))


@app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="Sign-in name, e.g. anna.petrova.")],
    role: Annotated[Role, typer.Option(help="coordinator | bed_manager | it_admin | admin | psychologist | receiver")],
    source: Annotated[
        list[str] | None, typer.Option("--source", help="A hospital (source name) they may see; repeatable.")
    ] = None,
    organisation: Annotated[
        str | None, typer.Option(help="A receiver's organisation (its code in the service directory).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Display name (default: the user name).")] = None,
    language: Annotated[str, typer.Option(help="en | ru")] = "en",
    password_env: Annotated[str | None, typer.Option(help="Env var holding the initial password.")] = None,
    password_file: Annotated[Path | None, typer.Option(help="File holding the initial password.")] = None,
    machine: Annotated[bool, typer.Option("--machine", help="No password: signs in with API tokens only.")] = False,
) -> None:
    """Add a user. Without --password-env/--password-file the password is asked for in a terminal."""

    password = None if machine else _read_password(password_env, password_file, required=True)
    ready_database()
    try:
        with session_scope(get_engine()) as session:
            user = add_user(
                session,
                username=username,
                role=role,
                sources=source or [],
                password=password,
                display_name=name,
                locale=language,
                min_password_length=get_settings().password_min_length,
                organisation_id=_organisation_id(session, organisation),
            )
            details = {"role": role.value, "sources": sorted(source or []), "machine": machine, "language": language}
            if organisation is not None:
                details["organisation"] = organisation
            record_admin_action(session, cli_actor(), AdminAction.user_add, Target("user", user.username), details)
    except UserError as exc:
        raise fail(str(exc)) from None
    if organisation is not None:
        console.print(f"added {role.value} {username} of {organisation}")
        return
    console.print(f"added {role.value} {username}" + (f" for {', '.join(source)}" if source else " (every hospital)"))


def _organisation_id(session: Session, code: str | None) -> int | None:
    """The directory organisation of ``code`` (None: no organisation given)."""
    if code is None:
        return None
    found = organisation_by_code(session, code)
    if found is None:
        raise UserError(f"no organisation with code {code!r} in the service directory")
    return found.id


@app.command("list")
def users_list(fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table") -> None:
    """Every user with role, hospitals, language and status."""

    ready_database()
    with session_scope(get_engine()) as session:
        views = list_users(session)
        ids = {v.organisation_id for v in views if v.organisation_id is not None}
        codes = {i: o.code for i, o in organisations_by_id(session, ids).items()}
        ehr = ehr_identities(session)
    if fmt == "json":
        rows = [
            {
                "username": v.username,
                "name": v.display_name,
                "role": v.role.value,
                "sources": v.sources,
                "language": v.locale,
                "disabled": v.disabled,
                "last_login_at": v.last_login_at.isoformat() if v.last_login_at else None,
                "tokens": v.tokens,
                "organisation": codes.get(v.organisation_id) if v.organisation_id is not None else None,
                "ehr": ehr.get(v.username, []),
            }
            for v in views
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("user", "name", "role", "hospitals", "lang", "status", "last sign-in", "tokens", "EHR identity")
    for v in views:
        table.add_row(
            v.username,
            v.display_name,
            v.role.value,
            f"organisation {codes.get(v.organisation_id, '?')}"
            if v.organisation_id is not None
            else ", ".join(v.sources) or "-",
            v.locale,
            "disabled" if v.disabled else "active",
            v.last_login_at.strftime("%Y-%m-%d %H:%M") if v.last_login_at else "never",
            str(v.tokens),
            ", ".join(ehr.get(v.username, [])) or "-",
        )
    console.print(table)


@app.command("link-ehr")
def users_link_ehr(
    username: str,
    source: Annotated[str, typer.Option("--source", help="The source (hospital) whose EHR launches the app.")],
    fhir_user: Annotated[str, typer.Option("--fhir-user", help="The user in that EHR, e.g. Practitioner/123.")],
) -> None:
    """Link a user to who they are in a hospital's EHR: a SMART launch by that fhirUser signs them in."""

    ready_database()
    try:
        with session_scope(get_engine()) as session:
            added = link_ehr_user(session, username, source_name=source, fhir_user=fhir_user, actor=cli_actor())
    except UserError as exc:
        raise fail(str(exc)) from None
    console.print(f"{username} is {fhir_user.strip()} in the EHR of {source}" + ("" if added else " (already)"))


@app.command("unlink-ehr")
def users_unlink_ehr(
    username: str,
    source: Annotated[str, typer.Option("--source", help="The source (hospital).")],
) -> None:
    """Remove a user's EHR identity at a source: launches from that EHR no longer sign them in."""

    ready_database()
    try:
        with session_scope(get_engine()) as session:
            removed = unlink_ehr_user(session, username, source_name=source, actor=cli_actor())
    except UserError as exc:
        raise fail(str(exc)) from None
    console.print(f"removed {removed} EHR identity(ies) of {username} at {source}")


@app.command("disable")
def users_disable(username: str) -> None:
    """Disable a user: their sessions end and their API tokens stop working at once."""

    ready_database()
    try:
        with session_scope(get_engine()) as session:
            disable_user(session, username)
            record_admin_action(session, cli_actor(), AdminAction.user_disable, Target("user", username))
    except UserError as exc:
        raise fail(str(exc)) from None
    console.print(f"disabled {username}; their sessions and tokens no longer work")


@app.command("password")
def users_password(
    username: str,
    password_env: Annotated[str | None, typer.Option(help="Env var holding the new password.")] = None,
    password_file: Annotated[Path | None, typer.Option(help="File holding the new password.")] = None,
) -> None:
    """Set a new password (their open sessions end)."""

    password = _read_password(password_env, password_file, required=True)
    assert password is not None
    ready_database()
    try:
        with session_scope(get_engine()) as session:
            set_password(session, username, password, min_length=get_settings().password_min_length)
            record_admin_action(session, cli_actor(), AdminAction.user_password, Target("user", username))
    except UserError as exc:
        raise fail(str(exc)) from None
    console.print(f"password of {username} changed")


@app.command("token")
def users_token(
    username: str, name: Annotated[str, typer.Option(help="What the token is for, e.g. prometheus.")] = "api"
) -> None:
    """Create an API token acting as USERNAME (same role and hospitals). Printed once: store it."""

    ready_database()
    try:
        with session_scope(get_engine()) as session:
            token = issue_token(session, username, name)
            details = {"token_name": name, "prefix": token[:10]}  # as `users list` tells tokens apart
            record_admin_action(session, cli_actor(), AdminAction.token_create, Target("user", username), details)
    except UserError as exc:
        raise fail(str(exc)) from None
    err.print(f"API token {name!r} for {username} (shown once; send as 'Authorization: Bearer <token>'):")
    typer.echo(token)


@app.command("revoke")
def users_revoke(
    username: str, name: Annotated[str, typer.Option(help="The token's name, as given to `users token --name`.")]
) -> None:
    """Revoke USERNAME's API tokens called NAME: they stop working at once."""

    ready_database()
    try:
        with session_scope(get_engine()) as session:
            count = revoke_tokens(session, username, name)
            details = {"token_name": name, "revoked": count}
            record_admin_action(session, cli_actor(), AdminAction.token_revoke, Target("user", username), details)
    except UserError as exc:
        raise fail(str(exc)) from None
    console.print(f"revoked {count} token(s) {name!r} of {username}")


@app.command("role")
def users_role(
    username: str,
    role: Annotated[Role, typer.Option(help="coordinator | bed_manager | it_admin | admin | psychologist | receiver")],
    source: Annotated[
        list[str] | None,
        typer.Option("--source", help="Replace the hospitals they may see (repeatable); default: keep them."),
    ] = None,
    organisation: Annotated[
        str | None, typer.Option(help="A receiver's organisation (directory code); default: keep it.")
    ] = None,
) -> None:
    """Change a user's role (and, with --source, their hospitals); effective on their next request."""

    ready_database()
    try:
        with session_scope(get_engine()) as session:
            changed = change_role(
                session, username, role, source, organisation_id=_organisation_id(session, organisation)
            )
            if changed:
                record_admin_action(session, cli_actor(), AdminAction.user_role, Target("user", username), changed)
    except UserError as exc:
        raise fail(str(exc)) from None
    console.print(f"{username}: " + ("; ".join(changed) + " changed" if changed else "nothing to change"))


@app.command("unlock")
def users_unlock(
    username: Annotated[str | None, typer.Argument(help="The account to unlock (its sign-in name).")] = None,
    address: Annotated[str | None, typer.Option(help="Unlock a client address instead.")] = None,
) -> None:
    """Lift a sign-in lock set by repeated failed sign-ins (of an account, or of a client address)."""

    if (username is None) == (address is None):
        raise fail("give either an account name or --address ADDRESS")
    kind, subject = (ThrottleKind.account, username) if username is not None else (ThrottleKind.address, address)
    assert subject is not None
    ready_database()
    with session_scope(get_engine()) as session:
        lock = unlock(session, kind, subject)
        if lock is not None:
            details = {"failures": lock.failures, "was_locked_until": lock.until.isoformat()}
            target = Target(kind.value, lock.subject)
            record_admin_action(session, cli_actor(), AdminAction.signin_unlock, target, details)
    if lock is None:
        console.print(f"{subject} is not locked")
        return
    console.print(f"unlocked {kind.value} {subject}")
