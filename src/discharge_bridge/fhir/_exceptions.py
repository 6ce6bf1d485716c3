"""One exception class per failure kind, and the mapping from an HTTP response to one of them.

Callers decide on the class alone: `FhirTemporaryError` means "try the whole job again later",
`FhirFatalError` means "a person has to change something" (configuration, credentials, scopes).
"""

from __future__ import annotations

import httpx
import orjson

__all__ = [
    "FhirAuthError",
    "FhirError",
    "FhirFatalError",
    "FhirNotFound",
    "FhirPagingLoop",
    "FhirTemporaryError",
    "FhirUnreadablePage",
    "error_for_response",
    "outcome_diagnostics",
]

_DIAGNOSTICS_MAX = 300

# 501 (not implemented) and 505 (HTTP version) will not change on a retry.
_FATAL_5XX = frozenset({501, 505})


# Search parameters whose values say nothing about a patient; every other value is masked.
_SAFE_PARAMS = frozenset(
    {
        "_count",
        "_sort",
        "_include",
        "_revinclude",
        "_summary",
        "_elements",
        "_offset",
        "_lastUpdated",
        "_since",
        "_type",
        "_format",
        "class",
        "category",
        "status",
        "_getpages",
        "_page",
        "page",
    }
)


def redact_url(url: str) -> str:
    """The URL with the values of patient-bearing query parameters (patient, _id, name...) masked.

    Errors end up in logs, the sync history and hospital IT's page: none of them may carry who
    a search was about.
    """
    if "?" not in url:
        return url
    head, _, query = url.partition("?")
    parts = []
    for pair in query.split("&"):
        name, eq, _value = pair.partition("=")
        parts.append(pair if not eq or name in _SAFE_PARAMS else f"{name}=***")
    return head + "?" + "&".join(parts)


def loggable_path(path: str) -> str:
    """A request path fit for logs: resource ids masked (some EHRs use the MRN as Patient.id).

    ``/fhir/Patient/12345/_history/2`` -> ``/fhir/Patient/{id}/_history/{id}``.
    """
    parts = path.split("/")
    for i in range(1, len(parts)):
        previous, segment = parts[i - 1], parts[i]
        after_type = previous[:1].isupper() and not segment.startswith(("$", "_"))
        if segment and (after_type or previous == "_history"):
            parts[i] = "{id}"
    return "/".join(parts)


class FhirError(Exception):
    """Base of every error raised by `discharge_bridge.fhir`.

    `url` keeps the path and the query with patient-bearing values masked (see `redact_url`);
    response bodies of auth failures are never included in messages.
    """

    log_message_safe = True  # the messages name statuses and masked paths only, so logs show them whole

    def __init__(self, message: str, *, status_code: int | None = None, url: str = "") -> None:
        safe = redact_url(url)
        if url and safe != url:
            message = message.replace(url, safe)
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.url = safe
        # The server's OperationOutcome of a refused request, kept for hospital IT (never logged).
        self.outcome: dict[str, object] | None = None

    def __str__(self) -> str:
        return self.message


class FhirTemporaryError(FhirError):
    """Retryable failure (429, 5xx, timeouts, resets, truncated JSON), raised once retries ran out."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        url: str = "",
        retry_after: float | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, status_code=status_code, url=url)
        self.retry_after = retry_after
        self.attempts = attempts
        self.retried = False

    def __str__(self) -> str:
        if self.retried:
            return f"{self.message} (gave up after {self.attempts} attempts)"
        return self.message


class FhirUnreadablePage(FhirTemporaryError):
    """A 2xx answer whose body cannot be used: cut-off or invalid JSON, an HTML page, JSON that is
    not the Bundle a search is due, an empty body.

    Temporary: proxies cut long responses and gateways answer 200 with an error page while the
    EHR restarts, and the next attempt often reads fine. `reason` says what was wrong without
    quoting the body (it can hold patient data, or credentials a login page echoes); `url` is the
    page's URL with patient-bearing query values masked. The message leads with the reason, so
    the first 80 characters (`sources list`) say what happened.
    """

    def __init__(
        self, reason: str, *, url: str, method: str = "GET", status_code: int | None = None, what: str = "page"
    ) -> None:
        super().__init__(f"unreadable FHIR {what} ({reason}): {method} {url}", status_code=status_code, url=url)
        self.reason = reason
        self.method = method
        self.what = what  # "page" for a search Bundle, "response" for any other call

    def __str__(self) -> str:
        if not self.retried:
            return self.message
        reason = f"{self.reason}; gave up after {self.attempts} attempts"
        return f"unreadable FHIR {self.what} ({reason}): {self.method} {self.url}"


class FhirFatalError(FhirError):
    """Not retryable: configuration, request or permission problem that needs a person."""


class FhirPagingLoop(FhirFatalError):
    """A search whose `next` links never end: one points back to a page already read in the same
    search, or the search ran past the client's page bound. Raised after the pages before it were
    yielded; not retried, since the server would page the same way again.
    """


class FhirAuthError(FhirFatalError):
    """Authentication or authorisation failed (token endpoint refused us, or 401/403 after re-auth)."""


class FhirNotFound(FhirFatalError):
    """The resource or endpoint does not exist (404) or was deleted (410)."""


def outcome_diagnostics(response: httpx.Response) -> str | None:
    """Summarise an OperationOutcome body (diagnostics, else details.text), capped at 300 chars."""
    try:
        body = orjson.loads(response.content)
    except (orjson.JSONDecodeError, httpx.ResponseNotRead):
        return None
    return diagnostics_of(body)


def diagnostics_of(body: object) -> str | None:
    """Same as `outcome_diagnostics` for an already parsed body."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return None
    texts: list[str] = []
    for issue in body.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
        if isinstance(text, str) and text.strip():
            texts.append(text.strip())
    if not texts:
        return None
    return "; ".join(texts)[:_DIAGNOSTICS_MAX]


def _reason(response: httpx.Response) -> str:
    return f"{response.status_code} {response.reason_phrase}".strip()


def _body_hint(response: httpx.Response) -> str:
    diagnostics = outcome_diagnostics(response)
    if diagnostics:
        return f": {diagnostics}"
    # A gateway or login proxy answering instead of the FHIR server sends HTML, not an outcome.
    if "html" in response.headers.get("content-type", ""):
        return " (HTML body: a proxy or gateway answered, not the FHIR server)"
    return ""


def error_for_response(response: httpx.Response, *, retry_after: float | None = None) -> FhirError:
    """Map a non-2xx response to the exception class callers act on, with its OperationOutcome if any."""
    error = _error_for_response(response, retry_after=retry_after)
    if response.status_code not in (401, 403):  # never keep what a token server answered
        try:
            body = orjson.loads(response.content)
        except (orjson.JSONDecodeError, httpx.ResponseNotRead):
            body = None
        if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
            error.outcome = body
    return error


def _error_for_response(response: httpx.Response, *, retry_after: float | None = None) -> FhirError:
    request = response.request
    url = str(request.url)
    status = response.status_code
    what = f"{request.method} {url} returned {_reason(response)}"
    if status in (401, 403):
        # Never echo the body here: some token servers reflect the rejected credentials.
        advice = (
            "the server rejected the credentials; check the token / client registration"
            if status == 401
            else "access denied; check the scopes granted to this client"
        )
        return FhirAuthError(f"{what}: {advice}", status_code=status, url=url)
    if status in (404, 410):
        return FhirNotFound(f"{what}{_body_hint(response)}", status_code=status, url=url)
    if status in (408, 429) or (status >= 500 and status not in _FATAL_5XX):
        return FhirTemporaryError(f"{what}{_body_hint(response)}", status_code=status, url=url, retry_after=retry_after)
    if 300 <= status < 400:
        location = response.headers.get("location", "?")
        return FhirFatalError(
            f"{what} redirecting to {location}: configure that address as the base URL",
            status_code=status,
            url=url,
        )
    return FhirFatalError(f"{what}{_body_hint(response)}", status_code=status, url=url)
