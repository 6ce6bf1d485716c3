"""The app's exception handlers: a page route's errors as pages, everything else as the API's JSON.

Starlette runs these after the route's dependencies have unwound, so the request's session has
rolled back first: a refused change never commits half of itself. That is why errors are answered
here and not inside a route's handler.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm.exc import StaleDataError

from discharge_bridge.cases.errors import CoordinationError
from discharge_bridge.ui.templating import PageRoute

STALE_BODY = {"detail": "the record was changed by someone else at the same time; reload and retry"}


def _page_route(request: Request) -> PageRoute | None:
    route = request.scope.get("route")
    return route if isinstance(route, PageRoute) else None


async def _http(request: Request, exc: Exception) -> Response:
    route = _page_route(request)
    if route is not None:
        return route.error_response(request, exc)
    assert isinstance(exc, HTTPException)
    return await http_exception_handler(request, exc)


async def _validation(request: Request, exc: Exception) -> Response:
    route = _page_route(request)
    if route is not None:
        return route.error_response(request, exc)
    assert isinstance(exc, RequestValidationError)
    return await request_validation_exception_handler(request, exc)


async def _coordination(request: Request, exc: Exception) -> Response:
    route = _page_route(request)
    if route is not None:
        return route.error_response(request, exc)
    assert isinstance(exc, CoordinationError)
    return JSONResponse(exc.body(), status_code=exc.status_code)


async def _stale(request: Request, exc: Exception) -> Response:
    # Two writers passed the version check at the same moment; the database refused the second.
    route = _page_route(request)
    if route is not None:
        return route.error_response(request, exc)
    return JSONResponse(STALE_BODY, status_code=409)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(CoordinationError, _coordination)
    app.add_exception_handler(StaleDataError, _stale)
