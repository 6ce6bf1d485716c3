"""Setting a source up and changing it: every field checked against what a sync, the risk
rules and the coordinators' assignment will rely on (hospital IT's `sources add / set`, and the IT
page's form), and where it points against the rules of ``sources.safety`` (UnsafeSource)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from discharge_bridge.cases.assignment import AssignmentMode, InvalidAssignment, parse_assignment
from discharge_bridge.config import get_settings
from discharge_bridge.risk import MappingError, loading
from discharge_bridge.sources.models import Source, SourceMode
from discharge_bridge.sources.safety import SourcePolicy, check_settings, current_policy
from discharge_bridge.sources.service import NAME, SourceError, check_fields, get_source, validate_auth
from discharge_bridge.users.models import UserSource
from discharge_bridge.users.service import coordinators_of

_MORNING = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def validate_mapping(mapping: str, mappings_dir: Path | None) -> None:
    """Load the mapping now, so a typo or a broken file is reported when the source is saved."""

    try:
        loading.mapping(mapping, mappings_dir or get_settings().mappings_dir)
    except (MappingError, FileNotFoundError) as exc:
        raise SourceError(f"mapping {mapping!r} cannot be used: {exc}") from exc


def add_source(
    session: Session,
    *,
    name: str,
    hospital: str,
    base_url: str,
    auth: dict[str, Any] | None = None,
    timezone: str = "UTC",
    mode: SourceMode = SourceMode.poll,
    poll_interval_seconds: int = 300,
    mapping: str = "default",
    inpatient_classes: list[str] | None = None,
    mappings_dir: Path | None = None,
    policy: SourcePolicy | None = None,
) -> Source:
    """Create a source after checking every field a sync will rely on; where it points meets
    ``policy`` (default: the process's settings), UnsafeSource otherwise."""
    if not NAME.match(name):
        raise SourceError("name must be 1-64 lowercase letters, digits, '-' or '_' (it is used in URLs)")
    if session.exec(select(Source).where(Source.name == name)).first() is not None:
        raise SourceError(f"a source named {name!r} already exists")
    if mode == SourceMode.file:
        _folder_exists(base_url)
    check_fields(mode, base_url, timezone, poll_interval_seconds)
    base_url = check_settings(mode, base_url, auth or {}, policy or current_policy())  # a folder: resolved
    validate_mapping(mapping, mappings_dir)
    auth_config = validate_auth(auth or {"type": "none"})
    source = Source(
        name=name,
        hospital=hospital,
        base_url=base_url.rstrip("/"),
        auth=auth_config.model_dump(exclude_none=True),
        timezone=timezone,
        mode=mode,
        poll_interval_seconds=poll_interval_seconds,
        mapping=mapping,
        inpatient_classes=inpatient_classes or ["IMP", "ACUTE", "NONAC"],
    )
    session.add(source)
    session.flush()
    return source


def update_source(
    session: Session,
    name: str,
    changes: dict[str, Any],
    *,
    mappings_dir: Path | None = None,
    policy: SourcePolicy | None = None,
) -> Source:
    """Change a source's settings in place (its synced data and cursors stay).

    Every change is checked before any is made: a refused one leaves the source as it was. A change
    of where it points (mode, base URL, auth) is checked against ``policy`` as a new source is."""
    source = get_source(session, name)
    allowed = {"hospital", "base_url", "timezone", "poll_interval_seconds", "mapping", "inpatient_classes", "enabled"}
    allowed |= {"assignment", "morning_time", "auth", "mode"}
    unknown = set(changes) - allowed
    if unknown:
        raise SourceError(f"cannot change {', '.join(sorted(unknown))}")
    new = dict(changes)
    if "assignment" in new:
        new["assignment"] = validate_assignment(session, source, new["assignment"])
    if new.get("morning_time") is not None and not _MORNING.match(new["morning_time"]):
        raise SourceError("morning time must be HH:MM (24-hour, the hospital's local time), e.g. 07:00")
    if "auth" in new:
        new["auth"] = validate_auth(new["auth"]).model_dump(exclude_none=True)
    if "mode" in new:
        new["mode"] = SourceMode(new["mode"])
    if "base_url" in new:
        new["base_url"] = new["base_url"].rstrip("/")
    mode, base_url = new.get("mode", source.mode), new.get("base_url", source.base_url)
    if mode == SourceMode.file and ("mode" in new or "base_url" in new):
        _folder_exists(base_url)
    timezone = new.get("timezone", source.timezone)
    check_fields(mode, base_url, timezone, new.get("poll_interval_seconds", source.poll_interval_seconds))
    if {"mode", "base_url", "auth"} & set(new):
        base_url = check_settings(mode, base_url, new.get("auth", source.auth), policy or current_policy())
        if "base_url" in new or mode == SourceMode.file:
            new["base_url"] = base_url  # a folder as resolved
    if "mapping" in new:
        validate_mapping(new["mapping"], mappings_dir)
    for field, value in new.items():
        setattr(source, field, value)
    session.add(source)
    session.flush()
    return source


def _folder_exists(path: str) -> None:
    folder = Path(path).expanduser().resolve()  # later runs may start in another directory
    if not folder.exists():
        raise SourceError(f"{folder} does not exist: a file source reads NDJSON or Bundles from a folder or file")


def grant_source(session: Session, user_id: int, source_id: int) -> None:
    """Let the user see the source (hospital IT who set a source up go on to look after it)."""
    if session.get(UserSource, (user_id, source_id)) is None:
        session.add(UserSource(user_id=user_id, source_id=source_id))
        session.flush()


def validate_assignment(session: Session, source: Source, value: dict[str, Any]) -> dict[str, Any]:
    """The normalised assignment setting; every user named for a ward must coordinate this hospital."""

    try:
        mode, wards, fallback = parse_assignment(value)
    except InvalidAssignment as exc:
        raise SourceError(str(exc)) from None
    if mode == AssignmentMode.round_robin:
        return {"mode": str(mode)}
    assert source.id is not None
    pool = {u.username for u in coordinators_of(session, source.id)}
    strangers = sorted(set(wards.values()) - pool)
    if strangers:
        raise SourceError(
            f"not an enabled coordinator of {source.name}: {', '.join(strangers)} "
            f"(add them with `discharge-bridge users add NAME --role coordinator --source {source.name}`)"
        )
    return {"mode": str(mode), "wards": wards, "fallback": str(fallback)}
