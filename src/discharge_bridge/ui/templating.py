"""Rendering pages: the Jinja2 environment, the page route class and the navigation.

A ``PageRoute``'s errors become pages: not signed in -> 303 to the sign-in page (coming back after),
403 / 404 / 409 / 422 -> an error page in the reader's language, with the same status code.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape

from discharge_bridge import __version__
from discharge_bridge.cases.errors import CoordinationError
from discharge_bridge.ui import i18n
from discharge_bridge.ui.portal_labels import label
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Permission

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_URL = "/static"

env = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(["html"]),
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)
env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
env.filters["dt"] = i18n.fmt_datetime
env.filters["date"] = i18n.fmt_date
env.globals.update(LANGUAGES=i18n.LANGUAGES, STATIC_URL=STATIC_URL, VERSION=__version__)
env.globals["role_label"] = partial(label, "role")  # a role's name in the reader's language

# (path, label, permission): the top navigation, each entry shown to the roles that may open it.
NAV: list[tuple[str, str, Permission]] = [
    ("/worklist", "Worklist", Permission.read_cases),
    ("/board", "Bed board", Permission.view_board),
    ("/figures", "Figures", Permission.view_figures),
    ("/directory", "Directory", Permission.read_directory),
    ("/it", "Hospital IT", Permission.manage_sources),
    ("/access-log", "Access log", Permission.audit_access),
    ("/portal", "Referrals to us", Permission.receive_referrals),
    ("/psychology", "Psychology", Permission.psychology),
]


def principal_of(request: Request) -> Principal | None:
    return getattr(request.state, "principal", None)


def language_of(request: Request) -> str:
    principal = principal_of(request)
    if principal is not None:
        return principal.locale
    return request.cookies.get("lang") or i18n.pick_language(request.headers.get("accept-language"))


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    i18n.set_language(language_of(request))
    principal = principal_of(request)
    nav = [
        {"href": href, "label": i18n.gettext(label), "active": request.url.path.startswith(href)}
        for href, label, permission in NAV
        if principal is not None and principal.can(permission)
    ]
    page = {
        "request": request,
        "principal": principal,
        "csrf_token": principal.csrf_token if principal is not None else None,
        "lang": i18n.current_language(),
        "nav": nav,
        **(context or {}),
    }
    return HTMLResponse(env.get_template(template).render(page), status_code=status_code)


def _error_page(request: Request, status_code: int, message: str) -> HTMLResponse:
    titles = {403: "Not allowed", 404: "Not found", 409: "Not possible now", 422: "Please check the form"}
    i18n.set_language(language_of(request))  # before the message is put in the reader's language
    return render(
        request,
        "error.html",
        {"title": titles.get(status_code, "Something went wrong"), "message": i18n.server_message(message)},
        status_code=status_code,
    )


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)


class PageRoute(APIRoute):
    """A page: its errors are answered as pages, not JSON (see ``ui.errors``, installed on the app).

    The answer is made by the app's exception handlers, which run after the route's dependencies
    have unwound, so the request's session has rolled back: a refused submit never writes half of
    itself. Subclasses refine ``error_response``.
    """

    def error_response(self, request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            if exc.status_code == 401:
                return login_redirect(request)
            return _error_page(request, exc.status_code, str(exc.detail))
        if isinstance(exc, CoordinationError):
            return _error_page(request, exc.status_code, str(exc.body().get("detail", exc.message)))
        if isinstance(exc, RequestValidationError):
            fields = ", ".join(str(e.get("loc", ["?"])[-1]) for e in exc.errors())
            return _error_page(request, 422, f"{i18n.gettext('Please check')}: {fields}")
        return _error_page(request, 409, i18n.gettext("The record was changed by someone else: reload the page."))
