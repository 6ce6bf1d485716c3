"""FastAPI dependencies of the API and the pages: the request's session (the one owner of its
transaction), who is asking, who makes a change (If-Match / ETag), and fetch-or-404 of a case.

Authentication, in order: ``Authorization: Bearer`` (a user's API token, or the deployment's
service token ``DISCHARGE_BRIDGE_API_TOKEN``), else the browser session cookie. A cookie-borne
request that changes something must also carry the session's CSRF token (``X-CSRF-Token`` header
or a ``csrf_token`` form field): a cookie alone never authorises a write.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Path, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from discharge_bridge.access import record_view
from discharge_bridge.cases.errors import CaseNotFound, InvalidInput, NotFound, VersionRequired
from discharge_bridge.cases.models import Barrier, Case
from discharge_bridge.cases.referrals.psychology import psychology_case
from discharge_bridge.cases.repository import get_case, get_child
from discharge_bridge.config import Settings, get_settings
from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.users.principal import Principal, Via
from discharge_bridge.users.roles import Permission, Role
from discharge_bridge.users.service import principal_for_session, principal_for_token
from discharge_bridge.validation import Id, Key, Line, digits

SESSION_COOKIE = "discharge_bridge_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_bearer = HTTPBearer(auto_error=False, description="A user's API token, or DISCHARGE_BRIDGE_API_TOKEN")


def settings_dep(request: Request) -> Settings:
    return getattr(request.app.state, "settings", None) or get_settings()


SettingsDep = Annotated[Settings, Depends(settings_dep)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    """Commit when the route returns, roll back when it raises."""
    with session_scope(get_engine(settings)) as session:
        yield session


# scope="function": commit (or roll back) when the route function ends, before the response is sent.
# With the default request scope FastAPI commits after sending, so a client could read its own
# redirect target before the write landed, or get a 2xx for a commit that then failed.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


class NotSignedIn(HTTPException):
    """401; the web pages turn it into a redirect to the sign-in page."""

    def __init__(self, detail: str = "authentication required") -> None:
        super().__init__(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


SERVICE_PRINCIPAL = Principal(
    username="api", display_name="API (service token)", role=Role.admin, source_ids=None, via=Via.service
)


def _csrf_ok(request: Request, expected: str | None, form_token: str | None) -> bool:
    given = request.headers.get("x-csrf-token") or form_token
    return bool(expected and given and secrets.compare_digest(given.encode(), expected.encode()))


async def current_principal(
    request: Request,
    settings: SettingsDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, also left on ``request.state.principal`` for the pages (navigation, language)."""
    # The lookups run in the thread pool, never on the event loop: a loop blocked waiting for a pooled
    # connection cannot run the exits that give connections back (a deadlock under ~15 concurrent requests).
    if credentials is not None:
        principal = await run_in_threadpool(_token_principal, settings, session, credentials.credentials)
    else:
        principal = await _session_principal(request, session)
    request.state.principal = principal
    return principal


def _token_principal(settings: Settings, session: Session, given: str) -> Principal:
    service = settings.api_token.get_secret_value() if settings.api_token else None
    if service is not None and secrets.compare_digest(given.encode(), service.encode()):
        return SERVICE_PRINCIPAL
    principal = principal_for_token(session, given)
    if principal is None:
        raise NotSignedIn("invalid or revoked token")
    return principal


async def _session_principal(request: Request, session: Session) -> Principal:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise NotSignedIn()
    principal = await run_in_threadpool(principal_for_session, session, cookie)
    if principal is None:
        raise NotSignedIn("the session has ended: sign in again")
    if request.method not in SAFE_METHODS:
        form_token = None
        if request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            form_token = (await request.form()).get("csrf_token")
        if not _csrf_ok(request, principal.csrf_token, form_token if isinstance(form_token, str) else None):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token: reload the page and retry")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def forbidden(permission: Permission) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, f"your role may not do this (needs {permission.value})")


def require(permission: Permission) -> Callable[[Principal], Principal]:
    """A dependency: the caller, if their role grants ``permission``; else 403."""

    def check(principal: CurrentPrincipal) -> Principal:
        if not principal.can(permission):
            raise forbidden(permission)
        return principal

    check.permission = permission  # type: ignore[attr-defined]  # read by the route sweep test
    return check


def require_by_method(read: Permission, write: Permission) -> Callable[[Request, Principal], Principal]:
    """Router-wide: GET/HEAD need ``read``, anything else ``write`` (no route can forget either)."""

    def check(request: Request, principal: CurrentPrincipal) -> Principal:
        needed = read if request.method in SAFE_METHODS else write
        if not principal.can(needed):
            raise forbidden(needed)
        return principal

    check.read, check.write = read, write  # type: ignore[attr-defined]  # read by the route sweep test
    return check


def source_scope(principal: CurrentPrincipal) -> list[int] | None:
    """The sources (hospitals) the caller may see: None = all. Passed to every repository read."""
    return principal.scope


SourceScope = Annotated[list[int] | None, Depends(source_scope)]


# --- who makes a change, and which copy they edited (If-Match / ETag) ---


def actor_of(
    principal: CurrentPrincipal,
    x_actor: Annotated[
        Line | None, Header(description="With the service token only: the person on whose behalf it acts.")
    ] = None,
) -> str:
    """Who makes the change: the signed-in user or the token's user; the service token may name one."""
    if principal.via == Via.service:
        return (x_actor or "").strip() or principal.username
    return principal.username


Actor = Annotated[str, Depends(actor_of)]


def if_match_header(
    if_match: Annotated[
        Key | None, Header(description='The ETag (`"<version>"`) of the copy being edited (`*` counts as not given).')
    ] = None,
) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    version = digits(if_match.strip().removeprefix("W/").strip('"'))
    if version is None:
        raise InvalidInput(("header", "If-Match"), f'If-Match must be an ETag like "3", got {if_match!r}')
    return version


IfMatch = Annotated[int | None, Depends(if_match_header)]


def expected_version(what: str, if_match: int | None, body_version: int | None, *, required: bool) -> int | None:
    """The version the client edited, from If-Match or the body; 428 when required and missing."""
    if if_match is not None and body_version is not None and if_match != body_version:
        raise InvalidInput(("body", "version"), f"If-Match ({if_match}) and version ({body_version}) disagree")
    found = if_match if if_match is not None else body_version
    if found is None and required:
        raise VersionRequired(what)
    return found


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'


# --- fetch-or-404: a route that takes CurrentCase never sees a missing or foreign case ---


def visible_case(session: Session, case_id: int, principal: Principal) -> Case | None:
    """The case if the caller may see it: in their hospitals; for a psychologist (no read_cases) only
    with a live referral to a psychologist (cases/referrals/psychology.py). The one place that rule is."""
    if not principal.can(Permission.read_cases) and principal.can(Permission.psychology):
        return psychology_case(session, case_id, source_ids=principal.scope)
    return get_case(session, case_id, source_ids=principal.scope)


def get_case_or_404(case_id: Annotated[Id, Path()], session: SessionDep, principal: CurrentPrincipal) -> Case:
    case = visible_case(session, case_id, principal)
    if case is None:
        raise CaseNotFound(case_id)
    return case


CurrentCase = Annotated[Case, Depends(get_case_or_404)]


def get_barrier_or_404(barrier_id: Annotated[Id, Path()], session: SessionDep, scope: SourceScope) -> Barrier:
    barrier = get_child(session, Barrier, barrier_id, source_ids=scope)
    if barrier is None:
        raise NotFound("barrier", barrier_id)
    return barrier


CurrentBarrier = Annotated[Barrier, Depends(get_barrier_or_404)]


def case_of(session: SessionDep, case_id: int) -> Case:
    """The case of a child row already fetched in scope."""
    case = session.get(Case, case_id)
    assert case is not None  # the foreign key guarantees it
    return case


def log_view(session: Session, principal: Principal, route: str, patients: Iterable[tuple[int, str]]) -> None:
    """Record that this request showed these patients' identity, and commit now, in this thread.

    The one way a page or an API answer writes the access log. Committing here, once what is shown
    has been read, ends the write at once: held to the session's exit (after rendering a page of 100
    rows), it kept SQLite's other writers waiting under load.
    """
    if record_view(session, user=principal.username, route=route, patients=patients) is not None:
        session.commit()
