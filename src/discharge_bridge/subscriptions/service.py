"""Subscribe a source's EHR to push notifications, unsubscribe, and re-activate a Subscription.

`subscribe_source` and `unsubscribe_source` are jobs (they take a source name and open their own
sessions) because they talk to the EHR between two transactions: the subscription row, with the
reference to its secret, is committed *before* the Subscription is created, so the webhook can
verify the handshake a Backport server sends at once.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from discharge_bridge.config import Settings, get_settings
from discharge_bridge.db import session_scope
from discharge_bridge.fhir import FhirClient, FhirError, FhirNotFound
from discharge_bridge.sources.models import Source, SourceMode
from discharge_bridge.sources.service import client_for, get_source
from discharge_bridge.subscriptions.inbox import process_inbox
from discharge_bridge.subscriptions.models import (
    PayloadContent,
    SourceSubscription,
    SubscriptionKind,
    SubscriptionStatus,
)
from discharge_bridge.subscriptions.notifications import InvalidNotification, parse_notification

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Discharge-Bridge-Secret"  # noqa: S105 - a header name, not a secret
REASON = "discharge_bridge: admissions and discharges for discharge coordination"
BP = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
BACKPORT_PROFILE = f"{BP}/backport-subscription"
EXT_FILTER = f"{BP}/backport-filter-criteria"
EXT_CONTENT = f"{BP}/backport-payload-content"
EXT_HEARTBEAT = f"{BP}/backport-heartbeat-period"
EXT_TIMEOUT = f"{BP}/backport-timeout"
NOTIFICATION_TIMEOUT_SECONDS = 30
FHIR_JSON = "application/fhir+json"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CRITERIA = re.compile(r"^[A-Z][A-Za-z]+(\?.*)?$")
_STATUSES = frozenset(s.value for s in SubscriptionStatus)


class SubscriptionError(ValueError):
    """A subscription that cannot be made or changed, with what to fix."""


@dataclass(frozen=True)
class SubscribeRequest:
    """What hospital IT asks for. One Subscription is created per criteria (classic) or topic (backport)."""

    public_url: str  # where the EHR reaches this service, e.g. https://bridge.city.example
    kind: SubscriptionKind = SubscriptionKind.classic
    criteria: tuple[str, ...] = ()  # classic: default Encounter?class=<the source's classes>
    topics: tuple[str, ...] = ()  # backport: SubscriptionTopic canonical URLs
    filter: str | None = None  # backport: default Encounter?class=<the source's classes>
    content: PayloadContent | None = None  # default full-resource (classic) / id-only (backport)
    heartbeat_seconds: int | None = None
    secret_env: str | None = None
    secret_file: str | None = None
    safety_poll_factor: int = 6


def read_secret(env: str | None, file: str | None) -> str:
    """The webhook secret from its environment variable or file; the error names the source only."""
    if env:
        value = os.environ.get(env, "").strip()
        if not value:
            raise SubscriptionError(f"environment variable {env} (the webhook secret) is not set or empty")
        return value
    if file:
        try:
            value = Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SubscriptionError(f"cannot read the webhook secret from file {file}: {exc.strerror}") from exc
        if not value:
            raise SubscriptionError(f"file {file} (the webhook secret) is empty")
        return value
    raise SubscriptionError("a webhook secret is needed: --secret-env NAME or --secret-file PATH")


def secret_of(row: SourceSubscription) -> str:
    return read_secret(row.secret_env, row.secret_file)


def webhook_endpoint(public_url: str, source_name: str) -> str:
    url = public_url.strip().rstrip("/")
    if not url.startswith(("https://", "http://")) or "?" in url or "#" in url:
        raise SubscriptionError("the public URL must be http(s)://host[:port][/path] without query or fragment")
    return f"{url}/webhooks/{source_name}"


def subscriptions_of(session: Session, source_id: int) -> list[SourceSubscription]:
    query = select(SourceSubscription).where(SourceSubscription.source_id == source_id)
    return list(session.exec(query.order_by(col(SourceSubscription.id))))


def safety_poll_interval(session: Session, source: Source) -> int:
    """The poll interval to schedule: slower while the EHR pushes, as a net under the push channel."""
    if source.mode != SourceMode.subscription or source.id is None:
        return source.poll_interval_seconds
    factors = [row.safety_poll_factor for row in subscriptions_of(session, source.id)]
    return source.poll_interval_seconds * max(factors or [1])


def subscription_resource(
    row: SourceSubscription, secret: str, *, status: str = "requested", with_id: bool = True
) -> dict[str, Any]:
    """The Subscription to create on (or PUT back to) the EHR."""
    channel: dict[str, Any] = {
        "type": "rest-hook",
        "endpoint": row.endpoint,
        "header": [f"{SECRET_HEADER}: {secret}"],
    }
    resource: dict[str, Any] = {"resourceType": "Subscription", "status": status, "reason": REASON}
    if row.server_id and with_id:
        resource["id"] = row.server_id
    if row.kind == SubscriptionKind.classic:
        resource["criteria"] = row.criteria
        if row.content == PayloadContent.full_resource:
            channel["payload"] = FHIR_JSON  # absent payload = empty notifications (R4)
    else:
        resource["meta"] = {"profile": [BACKPORT_PROFILE]}
        resource["criteria"] = row.criteria
        if row.filter:
            resource["_criteria"] = {"extension": [{"url": EXT_FILTER, "valueString": row.filter}]}
        channel["payload"] = FHIR_JSON
        channel["_payload"] = {"extension": [{"url": EXT_CONTENT, "valueCode": str(row.content)}]}
        extensions = [{"url": EXT_TIMEOUT, "valueUnsignedInt": NOTIFICATION_TIMEOUT_SECONDS}]
        if row.heartbeat_seconds:
            extensions.insert(0, {"url": EXT_HEARTBEAT, "valueUnsignedInt": row.heartbeat_seconds})
        channel["extension"] = extensions
    resource["channel"] = channel
    return resource


def _rows_for(source: Source, request: SubscribeRequest) -> list[SourceSubscription]:
    assert source.id is not None
    if bool(request.secret_env) == bool(request.secret_file):
        raise SubscriptionError("give exactly one of --secret-env or --secret-file for the webhook secret")
    if request.secret_env and not _ENV_NAME.match(request.secret_env):
        raise SubscriptionError("--secret-env must be the NAME of an environment variable, not its value")
    read_secret(request.secret_env, request.secret_file)  # fail now, not at the first notification
    if request.safety_poll_factor < 1:
        raise SubscriptionError("the safety-net poll factor must be at least 1")
    if request.heartbeat_seconds is not None and request.heartbeat_seconds < 1:
        raise SubscriptionError("the heartbeat period must be at least 1 second")
    classes = f"Encounter?class={','.join(source.inpatient_classes)}"
    common: dict[str, Any] = {
        "source_id": source.id,
        "endpoint": webhook_endpoint(request.public_url, source.name),
        "secret_env": request.secret_env,
        "secret_file": request.secret_file,
        "safety_poll_factor": request.safety_poll_factor,
    }
    if request.kind == SubscriptionKind.classic:
        content = request.content or PayloadContent.full_resource
        if content == PayloadContent.id_only:
            raise SubscriptionError("classic R4 Subscriptions carry the full resource or nothing: no id-only")
        if request.topics or request.heartbeat_seconds:
            raise SubscriptionError("topics and heartbeats belong to Backport (topic-based) Subscriptions")
        criteria = request.criteria or (classes,)
        bad = [c for c in criteria if not _CRITERIA.match(c)]
        if bad:
            raise SubscriptionError("classic criteria look like Encounter?class=IMP (a type and a search)")
        return [SourceSubscription(kind=request.kind, criteria=c, content=content, **common) for c in criteria]
    if not request.topics:
        raise SubscriptionError("a Backport Subscription needs --topic with the EHR's SubscriptionTopic URL")
    if request.criteria:
        raise SubscriptionError("Backport Subscriptions take --topic and --filter, not --criteria")
    return [
        SourceSubscription(
            kind=request.kind,
            criteria=topic,
            filter=request.filter or classes,
            content=request.content or PayloadContent.id_only,
            heartbeat_seconds=request.heartbeat_seconds,
            **common,
        )
        for topic in request.topics
    ]


def _created(client: FhirClient, resource: dict[str, Any]) -> tuple[str, str | None]:
    """POST a Subscription; its server id (from the body, else the Location) and status."""
    response = client.request(
        "POST",
        "Subscription",
        content=orjson.dumps(resource),
        headers={"Content-Type": FHIR_JSON, "Prefer": "return=representation"},
    )
    body: dict[str, Any] = {}
    if response.content.strip():
        parsed = orjson.loads(response.content)
        body = parsed if isinstance(parsed, dict) else {}
    server_id = body.get("id")
    if not isinstance(server_id, str):
        location = response.headers.get("location") or response.headers.get("content-location") or ""
        parts = location.split("/_history")[0].rstrip("/").split("/")
        server_id = parts[-1] if len(parts) >= 2 and parts[-2] == "Subscription" else None
    if not server_id:
        raise SubscriptionError("the EHR created the Subscription but did not say its id (no body, no Location)")
    status = body.get("status")
    return server_id, status if isinstance(status, str) else None


def subscribe_source(
    name: str, request: SubscribeRequest, *, engine: Engine, client: FhirClient | None = None
) -> list[SourceSubscription]:
    """Create the Subscriptions on the EHR and switch the source to subscription mode.

    If the EHR refuses one, those already created are deleted again and nothing is kept.
    """
    with session_scope(engine) as session:
        source = get_source(session, name)
        assert source.id is not None
        if subscriptions_of(session, source.id):
            raise SubscriptionError(f"{name} is already subscribed: run `sources unsubscribe {name}` first")
        if source.mode == SourceMode.file:
            raise SubscriptionError(f"{name} reads files; only a FHIR server can push notifications")
        rows = _rows_for(source, request)
        session.add_all(rows)
        session.flush()
        row_ids = [row.id for row in rows]
    secret = read_secret(request.secret_env, request.secret_file)
    own = client is None
    fhir = client or client_for(source)
    created: dict[int, tuple[str, str | None]] = {}
    try:
        for row in rows:
            assert row.id is not None
            created[row.id] = _created(fhir, subscription_resource(row, secret))
    except (FhirError, SubscriptionError):
        for server_id, _ in created.values():
            _delete_quietly(fhir, server_id)
        with session_scope(engine) as session:
            for row_id in row_ids:
                stored = session.get(SourceSubscription, row_id)
                if stored is not None:
                    session.delete(stored)
        raise
    finally:
        if own:
            fhir.close()
    with session_scope(engine) as session:
        stored_source = session.get(Source, source.id)
        assert stored_source is not None
        stored_source.mode = SourceMode.subscription
        kept = []
        for row_id, (server_id, status) in created.items():
            stored = session.get(SourceSubscription, row_id)
            assert stored is not None
            stored.server_id = server_id
            # A Backport handshake may already have marked it active: do not step back.
            if status in _STATUSES and stored.status != SubscriptionStatus.active:
                stored.status = SubscriptionStatus(status)
            kept.append(stored)
        log.info("source %s: %d subscription(s) created", name, len(kept))
        return kept


def _delete_quietly(client: FhirClient, server_id: str) -> str | None:
    try:
        client.delete(f"Subscription/{server_id}")
    except FhirNotFound:
        return None
    except FhirError as exc:
        return str(exc)
    return None


def unsubscribe_source(
    name: str, *, engine: Engine, client: FhirClient | None = None, settings: Settings | None = None
) -> list[str]:
    """Delete the source's Subscriptions on the EHR and here; back to polling at its own interval.

    Notifications already acknowledged are ingested first. Returns the problems met deleting on
    the EHR (the local rows go regardless, so the webhook stops accepting notifications at once).
    """

    with session_scope(engine) as session:
        source = get_source(session, name)
        assert source.id is not None
        rows = subscriptions_of(session, source.id)
        if not rows:
            raise SubscriptionError(f"{name} has no subscriptions")
        server_ids = [row.server_id for row in rows if row.server_id]
    problems: list[str] = []
    own = client is None
    try:
        fhir = client or client_for(source)
    except FhirError as exc:
        problems.append(f"could not connect to delete on the EHR: {exc}")
        fhir = None
    if fhir is not None:
        try:
            process_inbox(source.id, engine=engine, settings=settings or get_settings(), client=fhir)
            for server_id in server_ids:
                problem = _delete_quietly(fhir, server_id)
                if problem:
                    problems.append(problem)
        finally:
            if own:
                fhir.close()
    with session_scope(engine) as session:
        stored = session.get(Source, source.id)
        assert stored is not None
        for row in subscriptions_of(session, source.id):
            session.delete(row)
        if stored.mode == SourceMode.subscription:
            stored.mode = SourceMode.poll
    return problems


@dataclass(frozen=True)
class ServerState:
    """The Subscription as the EHR has it (None status: it no longer exists there)."""

    status: str | None
    events_since: int | None = None


def server_state(client: FhirClient, row: SourceSubscription) -> ServerState:
    """Read the Subscription (and, for Backport, `$status` for the event counter where offered)."""
    if not row.server_id:
        return ServerState(None)
    try:
        resource = client.read("Subscription", row.server_id)
    except FhirNotFound:
        return ServerState(None)
    status = resource.get("status")
    events = None
    if row.kind == SubscriptionKind.backport:
        events = _events_since(client, row.server_id)
    return ServerState(status if isinstance(status, str) else "unknown", events)


def _events_since(client: FhirClient, server_id: str) -> int | None:

    try:
        bundle = client.get_json(f"Subscription/{server_id}/$status")
    except FhirError:
        return None  # $status is optional in the IG: the counter then shows with the next notification
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        wrapper = {"resourceType": "Bundle", "type": "history", "entry": [{"resource": resource}]}
        try:
            note = parse_notification(orjson.dumps(wrapper))
        except InvalidNotification:
            continue
        if note.subscription in (None, server_id) and note.events_since is not None:
            return note.events_since
    return None


def reactivate(client: FhirClient, row: SourceSubscription) -> str:
    """PUT the Subscription back as `requested` (the EHR then re-activates it, Backport with a new
    handshake); if the EHR lost it, create it again. Returns the server id, which may be new."""
    secret = secret_of(row)
    if row.server_id:
        try:
            client.put_json(f"Subscription/{row.server_id}", subscription_resource(row, secret))
            return row.server_id
        except FhirNotFound:
            pass
    server_id, _ = _created(client, subscription_resource(row, secret, with_id=False))
    return server_id
