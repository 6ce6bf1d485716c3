"""Security headers on every answer: pages, the API, static files and error pages alike.

- ``Content-Security-Policy``: scripts, styles, images and requests from this site only; no inline
  script or style, no ``eval``, no plugins, forms post here only, and no page may frame ours.
  The pages' behaviour lives in ``/static/*.js``. Swagger UI and ReDoc (``/docs``, ``/redoc``, for
  signed-in callers) are FastAPI's own pages, built on an inline script and a CDN: they get a
  policy that allows just those.
- ``X-Frame-Options: DENY`` for browsers that ignore ``frame-ancestors``; ``X-Content-Type-Options:
  nosniff``; ``Referrer-Policy: no-referrer`` (a case URL is not for other sites' logs).
- ``Cache-Control: no-store`` on everything but static files: pages and API answers carry patient
  data, which no browser or proxy cache may keep.
- ``Strict-Transport-Security`` when the request came over HTTPS (behind a TLS proxy, with the
  proxy's forwarded headers trusted).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
_CDN = "https://cdn.jsdelivr.net"  # where fastapi.openapi.docs loads Swagger UI and ReDoc from
DOCS_CSP = "; ".join(
    [
        "default-src 'self'",
        f"script-src 'self' 'unsafe-inline' {_CDN}",
        f"style-src 'self' 'unsafe-inline' {_CDN} https://fonts.googleapis.com",
        "img-src 'self' data: https://fastapi.tiangolo.com",
        "font-src 'self' https://fonts.gstatic.com",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
DOCS_PATHS = frozenset({"/docs", "/redoc"})
STATIC_PREFIX = "/static/"
HSTS = "max-age=31536000"


class SecurityHeaders:
    """Pure ASGI middleware (no response buffering): adds the headers as the response starts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        root = str(scope.get("root_path", "")).rstrip("/")
        if root and path.startswith(root):  # behind a prefix, the path may carry it (Starlette >= 0.35)
            path = path[len(root) :]
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = DOCS_CSP if path in DOCS_PATHS else CSP
                headers["X-Frame-Options"] = "DENY"
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                if not path.startswith(STATIC_PREFIX):
                    headers["Cache-Control"] = "no-store"
                if https:
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        await self.app(scope, receive, send_with_headers)
