"""Retry with exponential backoff (full jitter) and `Retry-After`, shared by FHIR and token calls."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import httpx

from ._exceptions import FhirError, FhirFatalError, FhirTemporaryError, FhirUnreadablePage, loggable_path

__all__ = ["RetryPolicy", "parse_http_date", "parse_retry_after", "send_with_retry"]

logger = logging.getLogger("discharge_bridge.fhir")

T = TypeVar("T")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

# Failures where the request never left this process, so even a POST may be repeated safely.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass
class RetryPolicy:
    """How often and how long to wait; `sleep` is injectable so tests never really sleep."""

    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 120.0
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based).

        A server's Retry-After wins (capped); otherwise full jitter: uniform(0, base * 2**(n-1)),
        capped at backoff_max, so many workers hitting one EHR do not retry in lockstep.
        """
        if retry_after is not None:
            return max(0.0, min(retry_after, self.retry_after_max))
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(0.0, ceiling)


def parse_http_date(value: str | None) -> datetime | None:
    """Parse an HTTP-date (RFC 9110) into an aware UTC datetime; None if absent or invalid."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP-date relative to `now`; None if unusable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    when = parse_http_date(value)
    if when is None:
        return None
    reference = now or datetime.now(UTC)
    return max(0.0, (when - reference).total_seconds())


def retry_after_of(response: httpx.Response) -> float | None:
    """Retry-After of a response, measured against the server's own Date header when present.

    Using the server clock keeps the wait right when our host's clock is off.
    """
    now = parse_http_date(response.headers.get("date"))
    return parse_retry_after(response.headers.get("retry-after"), now=now)


def _transport_error(exc: httpx.TransportError, request: httpx.Request) -> FhirError:
    url = str(request.url)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return FhirFatalError(f"{request.method} {url} cannot be sent: {exc}", url=url)
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    return FhirTemporaryError(f"{request.method} {url} {kind} ({type(exc).__name__}: {exc or 'no detail'})", url=url)


def send_with_retry(
    client: httpx.Client,
    build_request: Callable[[], httpx.Request],
    policy: RetryPolicy,
    *,
    handle: Callable[[httpx.Response], T],
    idempotent: bool,
) -> T:
    """Send, let `handle` turn the response into a value or a FhirError, retry temporary errors.

    `build_request` is called per attempt so that each attempt can carry fresh data (a new
    client assertion for token requests). Non-idempotent requests are repeated only when they
    never left this host, or on 429/503 that carry a Retry-After (the server did not act).
    FhirErrors raised while sending (by an auth flow that already retried) pass through.
    """
    attempt = 0
    while True:
        attempt += 1
        request = build_request()
        path = loggable_path(request.url.path)  # never the query, nor ids: they can identify a patient
        error: FhirError
        try:
            response = client.send(request)
        except httpx.TransportError as exc:
            error = _transport_error(exc, request)
            error.__cause__ = exc
            retryable = idempotent or isinstance(exc, _NOT_SENT)
            outcome = type(exc).__name__
        else:
            logger.debug("%s %s -> %d (attempt %d)", request.method, path, response.status_code, attempt)
            try:
                return handle(response)
            except FhirTemporaryError as exc:
                error = exc
                retryable = idempotent or (response.status_code in (429, 503) and exc.retry_after is not None)
                outcome = str(response.status_code)
                if isinstance(exc, FhirUnreadablePage):  # its reason never quotes the body
                    outcome += f" unreadable ({exc.reason})"
        if not isinstance(error, FhirTemporaryError):
            raise error
        error.attempts = attempt
        if not retryable or attempt >= policy.max_attempts:
            error.retried = attempt > 1
            logger.warning(
                "%s %s -> %s; attempt %d/%d, giving up",
                request.method,
                path,
                outcome,
                attempt,
                policy.max_attempts,
            )
            raise error
        delay = policy.delay(attempt, error.retry_after)
        logger.warning(
            "%s %s -> %s; attempt %d/%d, retrying in %.2fs",
            request.method,
            path,
            outcome,
            attempt,
            policy.max_attempts,
            delay,
        )
        policy.sleep(delay)
