"""The webhook the EHR notifies: `POST|PUT /webhooks/{source}` and `.../{type}/{id}` (classic PUT).

The one part of the API without sign-in: the EHR proves itself with the per-source secret it was
given in the Subscription's channel headers (`X-Discharge-Bridge-Secret`), compared in constant
time; anything else is a 401. A verified notification is parsed, written to the inbox and
committed before the 200, then ingested after the response (see inbox.py).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Path, Request, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from discharge_bridge.assessment import drain
from discharge_bridge.config import Settings
from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.deps import SettingsDep
from discharge_bridge.ingest.store import record_dead_letter
from discharge_bridge.sources.service import find_source
from discharge_bridge.subscriptions.inbox import process_inbox, store_notification
from discharge_bridge.subscriptions.notifications import InvalidNotification, parse_notification
from discharge_bridge.subscriptions.service import SECRET_HEADER, SubscriptionError, secret_of, subscriptions_of
from discharge_bridge.validation import FhirId, Key, ResourceType

router = APIRouter(tags=["webhooks"])

_RECEIVED = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "information", "code": "informational", "diagnostics": "notification received"}],
}
# Compared against when a source has no usable secret, so a wrong name costs the same time.
_DUMMY = secrets.token_urlsafe(32)


@dataclass(frozen=True)
class WebhookCaller:
    source_id: int
    source_name: str


class WebhookUnauthorized(HTTPException):
    def __init__(self) -> None:
        super().__init__(status.HTTP_401_UNAUTHORIZED, "missing or wrong webhook secret")


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(status.HTTP_413_CONTENT_TOO_LARGE, f"request body too large (over {limit} bytes)")


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, or BodyTooLarge (413) as soon as it is known to exceed `limit` bytes.

    A declared Content-Length over the limit is refused before a byte is read (a client waiting
    on `Expect: 100-continue` never sends it). A chunked body is counted as the server hands it
    over and refused at the first chunk past the limit: a 20 MB upload costs at most `limit`
    bytes, where reading it whole first cost twice its size. The server discards the rest.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def webhook_caller(
    name: Annotated[Key, Path(description="The source's name.")], request: Request, settings: SettingsDep
) -> WebhookCaller:
    """The source whose secret the request carries; 401 for a missing or wrong one (or no such source)."""
    given = request.headers.get(SECRET_HEADER, "")
    with session_scope(get_engine(settings)) as session:
        source = find_source(session, name)
        expected: list[str] = []
        if source is not None and source.id is not None:
            for row in subscriptions_of(session, source.id):
                try:
                    expected.append(secret_of(row))
                except SubscriptionError:
                    continue  # an unset secret accepts nothing
    matched = False
    for secret in expected or [_DUMMY]:
        matched |= secrets.compare_digest(given.encode(), secret.encode())
    if not given or not matched or source is None or source.id is None:
        raise WebhookUnauthorized()
    return WebhookCaller(source.id, source.name)


# The route sweep recognises this attribute: the webhook's own auth instead of a permission.
webhook_caller.webhook_secret = True  # type: ignore[attr-defined]

WebhookCallerDep = Annotated[WebhookCaller, Depends(webhook_caller)]


def _persist(
    settings: Settings, caller: WebhookCaller, method: str, rtype: str | None, rid: str | None, body: bytes
) -> None:
    with session_scope(get_engine(settings)) as session:
        store_notification(session, caller.source_id, method=method, path_type=rtype, path_id=rid, body=body)


def _dead_letter(settings: Settings, caller: WebhookCaller, body: bytes, reason: str) -> None:
    # The body as text for hospital IT to read; NUL as U+FFFD, since PostgreSQL keeps no NUL in a text.
    text = body.decode("utf-8", "replace").replace("\x00", "\ufffd")
    with session_scope(get_engine(settings)) as session:
        record_dead_letter(session, caller.source_id, text, f"webhook notification: {reason}")


def _drain(settings: Settings, source_id: int) -> None:
    """Ingest the inbox, then assess what it changed (the notification-to-worklist path)."""
    engine = get_engine(settings)
    process_inbox(source_id, engine=engine, settings=settings)
    drain(engine, settings, source_id=source_id)


async def _receive(
    request: Request,
    background: BackgroundTasks,
    caller: WebhookCaller,
    settings: Settings,
    resource_type: str | None,
    resource_id: str | None,
) -> JSONResponse:
    body = await read_limited(request, settings.webhook_max_body_bytes)
    try:
        parse_notification(body, path_type=resource_type, path_id=resource_id)
    except InvalidNotification as exc:
        await run_in_threadpool(_dead_letter, settings, caller, body, str(exc))
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"not a notification: {exc}") from None
    await run_in_threadpool(_persist, settings, caller, request.method, resource_type, resource_id, body)
    background.add_task(_drain, settings, caller.source_id)
    return JSONResponse(_RECEIVED, media_type="application/fhir+json")


async def receive_notification(
    request: Request, background: BackgroundTasks, caller: WebhookCallerDep, settings: SettingsDep
) -> JSONResponse:
    """A Backport notification bundle, a classic rest-hook resource, or an empty classic ping."""
    return await _receive(request, background, caller, settings, None, None)


async def receive_resource(
    resource_type: Annotated[ResourceType, Path()],
    resource_id: Annotated[FhirId, Path()],
    request: Request,
    background: BackgroundTasks,
    caller: WebhookCallerDep,
    settings: SettingsDep,
) -> JSONResponse:
    """A classic rest-hook notification sent as `PUT {endpoint}/{type}/{id}` with the resource."""
    return await _receive(request, background, caller, settings, resource_type, resource_id)


for _method in ("POST", "PUT"):
    router.add_api_route(
        "/webhooks/{name}",
        receive_notification,
        methods=[_method],
        operation_id=f"webhook_{_method.lower()}",
        summary="Receive a FHIR Subscription notification",
    )
    router.add_api_route(
        "/webhooks/{name}/{resource_type}/{resource_id}",
        receive_resource,
        methods=[_method],
        operation_id=f"webhook_resource_{_method.lower()}",
        summary="Receive a classic rest-hook notification for one resource",
    )
