"""The registry of sources: finding, listing and removing one; building a FHIR client for one.

Setting a source up (with the checks that need the rules and the users) is ``connections.service``."""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError
from sqlmodel import Session, col, select

from discharge_bridge.fhir import AuthConfig, FhirClient, RetryPolicy, build_auth
from discharge_bridge.sources.errors import SourceError, SourceNotFound
from discharge_bridge.sources.models import Source, SourceMode
from discharge_bridge.sources.safety import SourcePolicy, check_stored, current_policy, guarded_transport

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def validate_auth(auth: dict[str, Any]) -> AuthConfig:
    try:
        return AuthConfig.model_validate(auth)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'auth'}: {e['msg']}" for e in exc.errors())
        raise SourceError(f"auth settings are incomplete: {problems}") from exc


def check_fields(mode: SourceMode, base_url: str, timezone: str, poll_interval_seconds: int) -> None:
    if mode != SourceMode.file and not base_url.startswith(("http://", "https://")):
        raise SourceError("base URL must start with http:// or https:// (the FHIR R4 base, e.g. https://ehr/fhir/r4)")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SourceError(f"unknown time zone {timezone!r} (use an IANA name such as Europe/Moscow)") from exc
    if poll_interval_seconds < 10:
        raise SourceError("poll interval must be at least 10 seconds")


def find_source(session: Session, name: str, *, source_ids: list[int] | None = None) -> Source | None:
    """The source by name, or None when there is none among ``source_ids`` (None = all)."""
    query = select(Source).where(Source.name == name)
    if source_ids is not None:
        query = query.where(col(Source.id).in_(source_ids))
    return session.exec(query).first()


def get_source(session: Session, name: str, *, source_ids: list[int] | None = None) -> Source:
    """The source by name; one outside ``source_ids`` (None = all) is reported as not found."""
    source = find_source(session, name, source_ids=source_ids)
    if source is None:
        raise SourceNotFound(name)
    return source


def narrow_scope(session: Session, name: str | None, source_ids: list[int] | None) -> list[int] | None:
    """``source_ids`` narrowed to the source named ``name`` (None: unchanged); SourceNotFound outside them."""
    if name is None:
        return source_ids
    found = get_source(session, name, source_ids=source_ids)
    assert found.id is not None
    return [found.id]


def list_sources(session: Session, *, source_ids: list[int] | None = None) -> list[Source]:
    query = select(Source).order_by(col(Source.name))
    if source_ids is not None:
        query = query.where(col(Source.id).in_(source_ids))
    return list(session.exec(query))


def remove_source(session: Session, name: str) -> None:
    """Delete a source and, by cascade, everything synced from it."""
    session.delete(get_source(session, name))
    session.flush()


def client_for(
    source: Source,
    *,
    retry: RetryPolicy | None = None,
    timeout: float = 30.0,
    transport: Any = None,
    policy: SourcePolicy | None = None,
) -> FhirClient:
    """A FHIR client with the source's auth; secrets are read from their env vars or files now.

    The stored settings are checked against the rules of ``sources.safety`` first (SourceRefused, a
    FhirFatalError, for one saved before them or under other settings), and each connection the client
    and its auth open is checked again where the socket opens (``guarded_transport``), unless a
    ``transport`` is given (tests) or a proxy carries the traffic.
    """
    policy = policy or current_policy()
    check_stored(source, policy)
    if transport is None:
        transport = guarded_transport(source.base_url, policy)
    auth_config = validate_auth(source.auth)
    auth = build_auth(auth_config, source.base_url, transport=transport)
    return FhirClient(source.base_url, auth=auth, retry=retry, timeout=timeout, transport=transport)
