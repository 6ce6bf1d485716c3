"""The CDS Hooks 2.0 service the EHR calls: discovery, the two hooks, feedback, and CORS preflights.

Not our sign-in: the EHR proves itself with a JWT it signs per call (ehr/cds/auth.py), whose issuer
names the hospital; no session cookie or API token of ours opens these routes. Discovery is open: it
lists two static service descriptions and nothing of any patient, and the spec's own discovery example
is a bare GET (an EHR reads it while IT registers us, before any issuer is configured here).
CORS: a browser-based EHR's origin is allowed only when a source lists it (``origins``); preflights
answer without a JWT, as browsers send none with them.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from discharge_bridge.api.webhooks import read_limited
from discharge_bridge.config import Settings
from discharge_bridge.db import get_engine, session_scope, utcnow
from discharge_bridge.deps import SettingsDep
from discharge_bridge.ehr.cds.auth import CdsCaller, CdsUnauthorized, verify_token
from discharge_bridge.ehr.cds.discovery import SERVICES, discovery
from discharge_bridge.ehr.cds.service import CdsBadRequest, CdsServiceNotFound, answer
from discharge_bridge.ehr.cds.settings import allowed_origins
from discharge_bridge.validation import FhirId

log = logging.getLogger(__name__)
router = APIRouter(tags=["cds-hooks"])

BODY_MAX = 2 * 1024 * 1024  # a hook call with its prefetched Patient and Encounter is a few kB
HookService = Annotated[FhirId, Path(description="The CDS service's id (see discovery).")]


def _cors(settings: Settings, request: Request) -> dict[str, str]:
    origin = request.headers.get("origin")
    if not origin:
        return {}
    with session_scope(get_engine(settings)) as session:
        allowed = allowed_origins(session)
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"} if origin in allowed else {"Vary": "Origin"}


def service_url(settings: Settings, request: Request) -> str:
    """This endpoint's URL as the EHR calls it: ``public_url`` + the path, else the request's own URL."""
    if settings.public_url:
        suffix = request.url.path[len(str(request.scope.get("root_path", "")).rstrip("/")) :]
        return settings.public_url.rstrip("/") + suffix
    return str(request.url.replace(query="", fragment=""))


def base_url(settings: Settings, request: Request) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def _verify(settings: Settings, token: str, audience: str) -> CdsCaller:
    # Its own transaction, committed at once: the jti is spent even if answering fails afterwards.
    with session_scope(get_engine(settings)) as session:
        return verify_token(session, token, audience=audience, now=utcnow())


async def cds_caller(request: Request, settings: SettingsDep) -> CdsCaller:
    """The hospital whose EHR signed this call; 401 with a short reason otherwise (the token is never logged)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    try:
        if scheme.lower() != "bearer" or not token.strip():
            raise CdsUnauthorized("a Bearer JWT is required")
        return await run_in_threadpool(_verify, settings, token.strip(), service_url(settings, request))
    except CdsUnauthorized as exc:
        log.info("CDS Hooks call to %s refused: %s", request.url.path, exc.reason)
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"', **_cors(settings, request)}
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"CDS Hooks JWT refused: {exc.reason}", headers) from None


# The route sweep recognises this attribute: the EHR's signed JWT instead of our sign-in (tests/test_route_sweep.py).
cds_caller.cds_jwt = True  # type: ignore[attr-defined]

CdsCallerDep = Annotated[CdsCaller, Depends(cds_caller)]


async def _json_body(request: Request) -> dict[str, Any]:
    body = await read_limited(request, BODY_MAX)
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the body is not JSON") from None
    if not isinstance(parsed, dict):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the body is not a JSON object")
    return parsed


def _answer(settings: Settings, caller: CdsCaller, service_id: str, body: dict[str, Any], base: str) -> dict[str, Any]:
    with session_scope(get_engine(settings)) as session:  # commits the access-log entry with the answer
        return answer(session, caller, service_id, body, base_url=base)


@router.get("/cds-services", summary="CDS Hooks discovery: our services, their hooks and prefetch templates")
def cds_discovery(request: Request, settings: SettingsDep) -> JSONResponse:
    return JSONResponse(discovery(), headers=_cors(settings, request))


@router.post("/cds-services/{hook_service}", summary="Call a CDS service (a JWT signed by the EHR is required)")
async def cds_call(
    hook_service: HookService, request: Request, caller: CdsCallerDep, settings: SettingsDep
) -> JSONResponse:
    """``{"cards": [...]}``: 400 when the body does not fit the hook, 404 for an id of no service of ours."""
    headers = _cors(settings, request)
    body = await _json_body(request)
    try:
        cards = await run_in_threadpool(_answer, settings, caller, hook_service, body, base_url(settings, request))
    except CdsServiceNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no CDS service {hook_service!r}", headers) from None
    except CdsBadRequest as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc), headers) from None
    return JSONResponse(cards, headers=headers)


@router.post("/cds-services/{hook_service}/feedback", summary="Feedback on the cards of a CDS service")
async def cds_feedback(
    hook_service: HookService, request: Request, caller: CdsCallerDep, settings: SettingsDep
) -> Response:
    """Accepted and counted in the log (card uuids and outcomes only); nothing is stored."""
    headers = _cors(settings, request)
    if hook_service not in SERVICES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no CDS service {hook_service!r}", headers)
    body = await _json_body(request)
    feedback = body.get("feedback")
    if not isinstance(feedback, list) or not all(
        isinstance(f, dict) and isinstance(f.get("card"), str) and f.get("outcome") in ("accepted", "overridden")
        for f in feedback
    ):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "feedback is a list of {card, outcome, ...}", headers)
    outcomes = [str(f["outcome"]) for f in feedback]
    log.info(
        "CDS Hooks feedback from %s on %s: %d accepted, %d overridden",
        caller.source_name,
        hook_service,
        outcomes.count("accepted"),
        outcomes.count("overridden"),
    )
    return Response(status_code=200, headers=headers)


def _preflight(request: Request, settings: Settings) -> Response:
    headers = _cors(settings, request)
    if "Access-Control-Allow-Origin" in headers:
        headers |= {
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Max-Age": "600",
        }
    return Response(status_code=204, headers=headers)


@router.options("/cds-services", include_in_schema=False)
def cds_discovery_preflight(request: Request, settings: SettingsDep) -> Response:
    return _preflight(request, settings)


@router.options("/cds-services/{hook_service}", include_in_schema=False)
def cds_call_preflight(hook_service: HookService, request: Request, settings: SettingsDep) -> Response:
    return _preflight(request, settings)


@router.options("/cds-services/{hook_service}/feedback", include_in_schema=False)
def cds_feedback_preflight(hook_service: HookService, request: Request, settings: SettingsDep) -> Response:
    return _preflight(request, settings)
