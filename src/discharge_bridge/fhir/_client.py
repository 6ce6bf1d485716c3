"""The FHIR R4 REST client: search paging, reads and generic JSON calls, all with retry."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
import orjson

from ._exceptions import FhirFatalError, FhirPagingLoop, FhirUnreadablePage, diagnostics_of, error_for_response
from ._retry import IDEMPOTENT_METHODS, RetryPolicy, parse_http_date, retry_after_of, send_with_retry
from ._urls import normalise_base_url, rebase_url, resolve, validate_id, validate_type

__all__ = ["FhirClient", "SearchPage"]

FHIR_JSON = "application/fhir+json"

Params = Mapping[str, str | Sequence[str]]
T = TypeVar("T")

# More pages than this in ONE search means paging that never ends (an offset server ignoring its
# own total, a cursor that never runs out), not data: 10,000 pages of 200 are 2 million resources,
# beyond any hospital's inpatient stays. Each re-issued poll search starts a new count.
MAX_PAGES_PER_SEARCH = 10_000
_TYPE_NAME = re.compile(r"[A-Z][A-Za-z]{1,63}")


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One searchset Bundle as fetched; `next_url` is already pinned to the configured server."""

    bundle: dict[str, Any]
    url: str
    next_url: str | None
    server_date: datetime | None
    nbytes: int

    @property
    def resources(self) -> list[dict[str, Any]]:
        """The `entry[].resource` objects, skipping entries without one."""
        entries = self.bundle.get("entry") or []
        return [e["resource"] for e in entries if isinstance(e, dict) and isinstance(e.get("resource"), dict)]


def _query(params: Params | None) -> httpx.QueryParams | None:
    if params is None:
        return None
    items: list[tuple[str, str | int | float | bool | None]] = []
    for key, value in params.items():
        if isinstance(value, str):
            items.append((key, value))
        else:
            items.extend((key, v) for v in value)  # repeated parameter = AND in FHIR search
    return httpx.QueryParams(items)


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            if isinstance(url, str) and url.strip():
                return url.strip()
    return None


class FhirClient:
    """Synchronous FHIR R4 client for one server; safe to share between threads (httpx.Client is).

    Every call retries temporary failures per `retry` and raises a FhirError subclass otherwise.
    Absolute URLs handed in or advertised by the server are pinned to `base_url`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        headers: dict[str, str] | None = None,
        user_agent: str = "discharge-bridge/0.1",
        max_pages: int = MAX_PAGES_PER_SEARCH,
    ) -> None:
        if max_pages < 1:
            raise ValueError("FhirClient max_pages must be at least 1")
        self.base_url = normalise_base_url(base_url)
        self.retry = retry or RetryPolicy()
        self.max_pages = max_pages
        self._auth = auth
        merged = {"User-Agent": user_agent, **(headers or {}), "Accept": FHIR_JSON}
        # Redirects are not followed: a redirect means the base URL is wrong, and following one
        # would move our credentials to wherever the server points.
        self._http = httpx.Client(
            auth=auth, timeout=timeout, transport=transport, headers=merged, follow_redirects=False
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (and the auth's token pool, if it has one)."""
        self._http.close()
        close_auth = getattr(self._auth, "close", None)
        if callable(close_auth):
            close_auth()

    # -- search -----------------------------------------------------------------------------

    def search_pages(self, resource_type: str, params: Params) -> Iterator[SearchPage]:
        """Yield each Bundle page of a search, following `next` links until there is none.

        Each page is retried on its own; a page still unreadable after the retries raises
        FhirUnreadablePage. A next link back to a page already fetched in this search, or more
        than `max_pages` pages, raises FhirPagingLoop. Either way the pages before were yielded.
        """
        validate_type(resource_type)
        url = f"{self.base_url}/{resource_type}"
        query = _query(params)
        seen: set[str] = set()
        while True:
            page = self._send("GET", url, params=query, handle=lambda r: self._page(r, resource_type))
            seen.add(page.url)  # plain strings: parsing long patient=a,b,... URLs again cost ~5% of a pass
            yield page
            if page.next_url is None:
                return
            if page.next_url in seen:
                raise FhirPagingLoop(
                    f"FHIR paging loop: the next link of page {len(seen)} of search {resource_type} points "
                    f"back to a page already fetched in this search; stopped: GET {page.next_url}",
                    url=page.next_url,
                )
            if len(seen) >= self.max_pages:
                raise FhirPagingLoop(
                    f"FHIR paging loop: search {resource_type} has more than {self.max_pages} pages "
                    f"(next links without end?); stopped before: GET {page.next_url}",
                    url=page.next_url,
                )
            url, query = page.next_url, None

    def _page(self, response: httpx.Response, resource_type: str) -> SearchPage:
        body = self._object(response, what="page")
        url = str(response.request.url)
        found = body.get("resourceType")
        if found == "OperationOutcome":
            # A readable refusal answered with 200 (e.g. an unsupported parameter): a retry gets
            # the same answer, a person has to change the search or the server.
            detail = diagnostics_of(body)
            raise FhirFatalError(
                f"search {resource_type} returned OperationOutcome instead of a Bundle"
                + (f": {detail}" if detail else ""),
                status_code=response.status_code,
                url=url,
            )
        problem = None
        if found != "Bundle":
            # The type is named only when it looks like one: never echo other server text.
            if isinstance(found, str) and _TYPE_NAME.fullmatch(found):
                what = f"{'an' if found[0] in 'AEIOU' else 'a'} {found}"
            else:
                what = "JSON with no resourceType"
            problem = f"{what} where a search Bundle was due"
        elif not isinstance(body.get("entry", []), list):
            problem = "Bundle.entry is not a list"
        elif not isinstance(body.get("link", []), list):
            problem = "Bundle.link is not a list"
        if problem:
            raise FhirUnreadablePage(problem, url=url, status_code=response.status_code)
        link = _next_link(body)
        return SearchPage(
            bundle=body,
            url=str(response.request.url),
            next_url=rebase_url(link, self.base_url, resource_type=resource_type) if link else None,
            server_date=parse_http_date(response.headers.get("date")),
            nbytes=len(response.content),
        )

    # -- reads and generic calls ------------------------------------------------------------

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """GET one resource by id; FhirNotFound on 404/410 (missing or deleted)."""
        url = f"{self.base_url}/{validate_type(resource_type)}/{validate_id(resource_id)}"
        body = self._send("GET", url, handle=self._object)
        if body.get("resourceType") != resource_type:
            detail = diagnostics_of(body)
            raise FhirFatalError(
                f"read {resource_type}/{resource_id} returned {body.get('resourceType')}"
                + (f": {detail}" if detail else ""),
                url=url,
            )
        return body

    def capabilities(self) -> dict[str, Any]:
        """The server's CapabilityStatement (`GET [base]/metadata`)."""
        body = self.get_json("metadata")
        if body.get("resourceType") != "CapabilityStatement":
            raise FhirFatalError(
                f"{self.base_url}/metadata is not a CapabilityStatement "
                f"(got {body.get('resourceType')}): is the base URL a FHIR R4 endpoint?",
                url=f"{self.base_url}/metadata",
            )
        return body

    def get_json(self, path_or_url: str, params: Params | None = None) -> dict[str, Any]:
        """GET a path relative to the base (or a URL pinned to it) and return its JSON object."""
        return self._send("GET", resolve(self.base_url, path_or_url), params=_query(params), handle=self._object)

    def post_json(
        self,
        path_or_url: str,
        body: Mapping[str, Any] | None = None,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """POST a JSON body; returns the response body or None when empty.

        Retried only where the server cannot have acted (connect failures, 429/503 + Retry-After).
        """
        return self._write("POST", path_or_url, body, params, headers)

    def put_json(
        self,
        path_or_url: str,
        body: Mapping[str, Any],
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """PUT a JSON body (pass `If-Match` in headers for optimistic concurrency)."""
        return self._write("PUT", path_or_url, body, params, headers)

    def delete(
        self, path_or_url: str, *, params: Params | None = None, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any] | None:
        """DELETE (also cancels a Bulk Data job at its status URL); body or None when empty."""
        return self._write("DELETE", path_or_url, None, params, headers)

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Params | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Lower-level call for when headers matter (Bulk Data 202 + Content-Location, ETag).

        Same retry and error mapping; returns the (read) response of any 2xx status.
        """
        url = resolve(self.base_url, path_or_url)
        return self._send(
            method.upper(), url, params=_query(params), content=content, headers=headers, handle=self._checked
        )

    # -- plumbing ---------------------------------------------------------------------------

    def _write(
        self,
        method: str,
        path_or_url: str,
        body: Mapping[str, Any] | None,
        params: Params | None,
        headers: Mapping[str, str] | None,
    ) -> dict[str, Any] | None:
        content = None
        merged = dict(headers or {})
        if body is not None:
            content = orjson.dumps(body)
            merged.setdefault("Content-Type", FHIR_JSON)
        url = resolve(self.base_url, path_or_url)
        return self._send(
            method, url, params=_query(params), content=content, headers=merged, handle=self._optional_object
        )

    def _send(
        self,
        method: str,
        url: str,
        *,
        handle: Callable[[httpx.Response], T],
        params: httpx.QueryParams | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> T:
        def build() -> httpx.Request:
            return self._http.build_request(method, url, params=params, content=content, headers=headers)

        return send_with_retry(self._http, build, self.retry, handle=handle, idempotent=method in IDEMPOTENT_METHODS)

    @staticmethod
    def _checked(response: httpx.Response) -> httpx.Response:
        if not response.is_success:
            raise error_for_response(response, retry_after=retry_after_of(response))
        return response

    def _optional_object(self, response: httpx.Response) -> dict[str, Any] | None:
        self._checked(response)
        if response.status_code in (202, 204) and not response.content.strip():
            return None
        if not response.content.strip() and response.request.method != "GET":
            return None  # e.g. 201 Created with Prefer: return=minimal
        return self._object(response)

    def _object(self, response: httpx.Response, *, what: str = "response") -> dict[str, Any]:
        """The JSON object of a 2xx answer; FhirUnreadablePage (retried) when there is none.

        The reasons never quote the body: it may hold patient data, or credentials a login
        page echoes back.
        """
        self._checked(response)
        request = response.request
        content = response.content
        status = response.status_code
        if not content.strip():
            if status in (202, 204):
                return {}
            reason = f"{status} with an empty body: cut off?"
        elif "html" in response.headers.get("content-type", "").lower():
            # A gateway's error page or a login proxy answering 200 instead of the FHIR server.
            reason = "HTML, not FHIR JSON: a gateway error page or login proxy answered (is the base URL right?)"
        else:
            try:
                body = orjson.loads(content)
            except orjson.JSONDecodeError:
                # Seen with proxies that cut long responses: a valid JSON start, then nothing.
                reason = f"not valid JSON, {len(content)} bytes: a truncated body?"
            else:
                if isinstance(body, dict):
                    return body
                reason = "JSON that is not an object"
        raise FhirUnreadablePage(reason, url=str(request.url), method=request.method, status_code=status, what=what)
