"""The app's exception handlers: a page route's errors as pages, everything else as the API's JSON.

Starlette runs these after the route's dependencies have unwound, so the request's session has
rolled back first: a refused change never commits half of itself. That is why errors are answered
here and not inside a route's handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm.exc import StaleDataError

from discharge_bridge.cases.errors import CoordinationError
from discharge_bridge.ui.templating import PageRoute

STALE_BODY = {"detail": "the record was changed by someone else at the same time; reload and retry"}


async def _coordination_json(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CoordinationError)
    return JSONResponse(exc.body(), status_code=exc.status_code)


async def _stale_json(_request: Request, _exc: Exception) -> Response:
    # Two writers passed the version check at the same moment; the database refused the second.
    return JSONResponse(STALE_BODY, status_code=409)


Handler = Callable[[Request, Any], Awaitable[Response]]


def _pages_or(api_handler: Handler) -> Handler:
    """A page route's error as its page; any other route's through ``api_handler``."""

    async def handle(request: Request, exc: Exception) -> Response:
        route = request.scope.get("route")
        if isinstance(route, PageRoute):
            return route.error_response(request, exc)
        return await api_handler(request, exc)

    return handle


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _pages_or(http_exception_handler))
    app.add_exception_handler(RequestValidationError, _pages_or(request_validation_exception_handler))
    app.add_exception_handler(CoordinationError, _pages_or(_coordination_json))
    app.add_exception_handler(StaleDataError, _pages_or(_stale_json))
