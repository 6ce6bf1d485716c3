"""Sign-in, sign-out, the language switch and the landing redirect.

The sign-in form has no session yet, so it is guarded by a double-submit token: a random cookie
that the form must repeat. The session cookie is HttpOnly, SameSite=Lax, and Secure over HTTPS.
Failed sign-ins are throttled per account name and per client address (users/throttle.py): a
name or address that must wait is answered 429 with Retry-After, the same for a name that does
not exist; a lock goes to the audit trail.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from discharge_bridge.audit import AdminAction, Target, record_admin_action
from discharge_bridge.config import Settings
from discharge_bridge.deps import SESSION_COOKIE, CurrentPrincipal, SessionDep, SettingsDep
from discharge_bridge.ui import i18n
from discharge_bridge.ui.templating import PageRoute, render
from discharge_bridge.users.roles import home_page
from discharge_bridge.users.service import end_session, set_locale, start_session
from discharge_bridge.users.throttle import SigninResult, ThrottleKind, ThrottlePolicy, sign_in

LOGIN_CSRF_COOKIE = "discharge_bridge_login"
SIGNIN_GUARD = "sign-in"  # the actor of a lock in the audit trail
router = APIRouter(route_class=PageRoute, include_in_schema=False)


def safe_next(target: str | None) -> str | None:
    """Only a path on this site: an absolute URL or ``//host`` would make the form an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def _secure(request: Request, settings: Settings) -> bool:
    return settings.cookie_secure if settings.cookie_secure is not None else request.url.scheme == "https"


def _login_page(request: Request, settings: Settings, *, next_: str | None, error: str | None, status: int) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request, "login.html", {"next": safe_next(next_) or "", "error": error, "login_csrf": token}, status
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request, settings), max_age=3600
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, settings: SettingsDep, next: str | None = None, lang: str | None = None) -> Response:
    if lang in i18n.LANGUAGES:
        request.cookies["lang"] = lang  # this render, and the cookie below for the next ones
    response = _login_page(request, settings, next_=next, error=None, status=200)
    if lang in i18n.LANGUAGES:
        response.set_cookie("lang", lang, samesite="lax", max_age=365 * 86400)
    return response


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    login_csrf: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(expected.encode(), login_csrf.encode()):
        i18n.set_language(request.cookies.get("lang") or i18n.pick_language(request.headers.get("accept-language")))
        message = i18n.gettext("The sign-in form expired. Please try again.")
        return _login_page(request, settings, next_=next, error=message, status=400)
    address = request.client.host if request.client is not None else None
    result = sign_in(session, username, password, address=address, policy=ThrottlePolicy.from_settings(settings))
    _audit_locks(session, result, address)
    user = result.user
    if user is None:
        i18n.set_language(request.cookies.get("lang") or i18n.pick_language(request.headers.get("accept-language")))
        if result.retry_after is not None:
            message = i18n.gettext("Too many failed sign-ins. Wait %(wait)s before trying again.") % {
                "wait": _wait_text(result.retry_after)
            }
            refused = _login_page(request, settings, next_=next, error=message, status=429)
            refused.headers["Retry-After"] = str(result.retry_after)
            return refused
        message = i18n.gettext("Wrong user name or password, or the account is disabled.")
        return _login_page(request, settings, next_=next, error=message, status=401)
    token, _ = start_session(session, user, lifetime=timedelta(hours=settings.session_hours))
    response = RedirectResponse(safe_next(next) or home_page(user.role), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=_secure(request, settings),
        max_age=settings.session_hours * 3600,
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


def _wait_text(seconds: int) -> str:
    if seconds < 120:
        return i18n.gettext("%(n)s s") % {"n": seconds}
    return i18n.gettext("%(n)s min") % {"n": -(-seconds // 60)}


def _audit_locks(session: SessionDep, result: SigninResult, address: str | None) -> None:
    for lock in result.new_locks:
        details: dict[str, object] = {"failures": lock.failures, "until": lock.until.isoformat()}
        if lock.kind == ThrottleKind.account and address:
            details["address"] = address  # where the last guess came from
        record_admin_action(
            session, SIGNIN_GUARD, AdminAction.signin_lock, Target(lock.kind.value, lock.subject), details
        )


@router.post("/logout")
def logout(request: Request, principal: CurrentPrincipal, session: SessionDep) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        end_session(session, cookie)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/account/language")
def change_language(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    language: Annotated[str, Form(max_length=8)],
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    if principal.user_id is not None and language in i18n.LANGUAGES:
        set_locale(session, principal.user_id, language)
    return RedirectResponse(safe_next(next) or "/", status_code=303)


@router.get("/")
def landing(principal: CurrentPrincipal) -> Response:
    return RedirectResponse(home_page(principal.role), status_code=303)
