"""Bulk Data Access client: `$export` kick-off, status polling and streamed NDJSON downloads.

Spec: https://hl7.org/fhir/uv/bulkdata/export.html . The kick-off answers 202 with a status URL
(`Content-Location`); the status URL answers 202 (`X-Progress`, `Retry-After`) until a 200
manifest lists one NDJSON file per type. Files are streamed a line at a time: a large hospital's
census never sits in memory.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from ._client import FHIR_JSON, FhirClient
from ._exceptions import FhirAuthError, FhirError, FhirFatalError, FhirNotFound, FhirTemporaryError, error_for_response
from ._retry import retry_after_of
from ._urls import rebase_url, validate_id, validate_type

__all__ = [
    "BadLine",
    "BulkExportClient",
    "BulkExportFailed",
    "ExportFile",
    "ExportManifest",
    "ExportProgress",
]

log = logging.getLogger("discharge_bridge.fhir")

NDJSON = "application/fhir+ndjson"
# OperationOutcome issue codes under `transient` (https://hl7.org/fhir/R4/valueset-issue-type.html)
# that the Bulk Data spec tells servers to use when a status poll failed but the job did not.
# `exception` is also under `transient`, but servers use it for a job that died: not retried.
_TRANSIENT_CODES = frozenset({"transient", "lock-error", "no-store", "timeout", "incomplete", "throttled"})
_CHUNK = 64 * 1024


class BulkExportFailed(FhirFatalError):
    """The server says the export job failed (or answered the kick-off in a way that cannot work)."""


@dataclass(frozen=True, slots=True)
class ExportFile:
    type: str
    url: str
    count: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "url": self.url, "count": self.count}


@dataclass(frozen=True, slots=True)
class ExportManifest:
    """The completed job: `transaction_time` is the server time the export is consistent with."""

    transaction_time: str
    requires_access_token: bool
    output: tuple[ExportFile, ...]
    error: tuple[ExportFile, ...] = ()

    @classmethod
    def from_json(cls, body: Any) -> ExportManifest:
        if not isinstance(body, dict) or not isinstance(body.get("transactionTime"), str):
            raise BulkExportFailed("the $export manifest has no transactionTime: not a Bulk Data manifest")
        return cls(
            transaction_time=body["transactionTime"],
            requires_access_token=body.get("requiresAccessToken") is not False,
            output=tuple(_files(body.get("output"))),
            error=tuple(_files(body.get("error"))),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "transactionTime": self.transaction_time,
            "requiresAccessToken": self.requires_access_token,
            "output": [f.to_json() for f in self.output],
            "error": [f.to_json() for f in self.error],
        }


def _files(items: Any) -> Iterator[ExportFile]:
    for item in items or []:
        if isinstance(item, dict) and isinstance(item.get("url"), str) and isinstance(item.get("type"), str):
            count = item.get("count")
            yield ExportFile(item["type"], item["url"], count if isinstance(count, int) else None)


@dataclass(frozen=True, slots=True)
class ExportProgress:
    """A status poll that found the job still running."""

    progress: str | None  # X-Progress: free text from the server ("writing", "42%")
    retry_after: float | None


@dataclass(frozen=True, slots=True)
class BadLine:
    """An NDJSON line that is not a JSON object: it becomes a dead letter, the download goes on."""

    text: str
    reason: str


@dataclass
class BulkExportClient:
    """`$export` over a `FhirClient` (its auth, retry policy and base-URL pinning).

    `poll_default` is the wait when the server sends no Retry-After; every wait is clamped to
    [`poll_min`, `poll_max`] so neither a missing nor an absurd header hurts.
    """

    client: FhirClient
    poll_min: float = 1.0
    poll_max: float = 120.0
    poll_default: float = 5.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    # Sends the requests for files on another host, without our credentials; closed by `close`. The
    # caller vets where it may connect (a manifest names any URL); by default a plain client.
    downloads: httpx.Client | None = None

    def close(self) -> None:
        if self.downloads is not None:
            self.downloads.close()
            self.downloads = None

    # -- kick-off and status --------------------------------------------------------------------

    def kick_off(self, *, group_id: str | None = None, types: Iterable[str] = (), since: str | None = None) -> str:
        """Start an export (Group level when `group_id` is given, else Patient level); the status URL."""
        path = f"Group/{validate_id(group_id)}/$export" if group_id else "Patient/$export"
        params: dict[str, str] = {}
        wanted = [validate_type(t) for t in types]
        if wanted:
            params["_type"] = ",".join(wanted)
        if since:
            params["_since"] = since
        response = self.client.request(
            "GET", path, params=params, headers={"Prefer": "respond-async", "Accept": FHIR_JSON}
        )
        if response.status_code != 202:
            raise BulkExportFailed(
                f"{path} answered {response.status_code} instead of 202 Accepted: the server does not run "
                "$export asynchronously (check that Bulk Data is enabled for this client)",
                status_code=response.status_code,
                url=str(response.request.url),
            )
        location = response.headers.get("content-location")
        if not location:
            raise BulkExportFailed(f"{path} accepted the export but sent no Content-Location status URL")
        return rebase_url(location, self.client.base_url)

    def poll(self, status_url: str) -> ExportManifest | ExportProgress:
        """One status request: the manifest when done, else the server's progress and wait."""
        url = rebase_url(status_url, self.client.base_url)
        response = self.client._send("GET", url, headers={"Accept": "application/json"}, handle=_status_response)
        if response.status_code == 202:
            return ExportProgress(response.headers.get("x-progress"), retry_after_of(response))
        return ExportManifest.from_json(_json_body(response))

    def wait(
        self,
        status_url: str,
        *,
        on_progress: Callable[[str | None], None] | None = None,
        timeout: float | None = None,
    ) -> ExportManifest:
        """Poll until the manifest is ready, waiting as the server asks (Retry-After)."""
        started = self.clock()
        while True:
            state = self.poll(status_url)
            if isinstance(state, ExportManifest):
                return state
            if on_progress is not None:
                on_progress(state.progress)
            delay = state.retry_after if state.retry_after is not None else self.poll_default
            delay = min(max(delay, self.poll_min), self.poll_max)
            if timeout is not None and self.clock() - started + delay > timeout:
                raise FhirTemporaryError(f"the export was still running after {timeout:.0f} s", url=status_url)
            self.sleep(delay)

    def cancel(self, status_url: str) -> None:
        """DELETE the job (the server may then remove its files); a job already gone is fine."""
        with contextlib.suppress(FhirNotFound):
            self.client.delete(rebase_url(status_url, self.client.base_url))

    # -- downloads ------------------------------------------------------------------------------

    def iter_lines(
        self, file: ExportFile, *, requires_access_token: bool = True, skip: int = 0
    ) -> Iterator[tuple[int, bytes]]:
        """(line number, line) of each non-blank line after line `skip`, streamed.

        A connection that breaks mid-file is opened again and the lines already yielded are
        skipped, up to the retry policy's attempts without progress; then FhirTemporaryError.
        FhirNotFound when the file is gone (expired): the export has to be started again.
        """
        policy = self.client.retry
        done = skip
        failures = 0
        while True:
            try:
                for number, line in self._stream(file, requires_access_token):
                    if number <= done:
                        continue
                    done, failures = number, 0
                    yield number, line
                return
            except FhirTemporaryError as exc:
                failures += 1
                if failures >= policy.max_attempts:
                    exc.attempts, exc.retried = failures, failures > 1
                    raise
                delay = policy.delay(failures, exc.retry_after)
                log.warning("export file %s broke after line %d; resuming in %.2fs", file.type, done, delay)
                policy.sleep(delay)

    def iter_resources(
        self, file: ExportFile, *, requires_access_token: bool = True, skip: int = 0
    ) -> Iterator[tuple[int, dict[str, Any] | BadLine]]:
        """Like `iter_lines`, each line parsed: a resource, or a BadLine with the reason."""
        for number, line in self.iter_lines(file, requires_access_token=requires_access_token, skip=skip):
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield number, BadLine(line.decode("utf-8", "replace"), f"{file.type} NDJSON line {number}: {exc}")
                continue
            if not isinstance(value, dict):
                yield (
                    number,
                    BadLine(line.decode("utf-8", "replace"), f"{file.type} NDJSON line {number}: not an object"),
                )
                continue
            yield number, value

    def _download_client(self, url: str, requires_access_token: bool) -> tuple[httpx.Client, str]:
        """Where to send a file request, and which client (with or without our credentials) sends it.

        Files that need our token are pinned to the FHIR server like any link, so the token never
        goes elsewhere. Files that need none may live on another host (pre-signed object storage):
        they are fetched as they are, by a client without credentials.
        """
        base_host = urlsplit(self.client.base_url).netloc
        if requires_access_token or urlsplit(url).netloc in ("", base_host):
            return self.client._http, rebase_url(url, self.client.base_url)
        if self.downloads is None:
            self.downloads = httpx.Client(timeout=60.0, follow_redirects=True)
        return self.downloads, url

    def _stream(self, file: ExportFile, requires_access_token: bool) -> Iterator[tuple[int, bytes]]:
        http, url = self._download_client(file.url, requires_access_token)
        try:
            with http.stream("GET", url, headers={"Accept": NDJSON}) as response:
                if not response.is_success:
                    response.read()
                    raise error_for_response(response, retry_after=retry_after_of(response))
                number = 0
                pending = b""
                for chunk in response.iter_bytes(_CHUNK):
                    lines = (pending + chunk).split(b"\n") if pending else chunk.split(b"\n")
                    pending = lines.pop()
                    for line in lines:
                        number += 1
                        if line.strip():
                            yield number, line
                if pending.strip():
                    yield number + 1, pending
        except httpx.TransportError as exc:  # reset, timeout, truncated body: all worth a resume
            raise FhirTemporaryError(
                f"downloading the {file.type} export file failed ({type(exc).__name__}: {exc or 'no detail'})",
                url=url,
            ) from exc


def _status_response(response: httpx.Response) -> httpx.Response:
    """202 / 200 pass; 429 and transient outcomes retry; any other error means the job failed."""
    if response.status_code in (200, 202):
        return response
    if response.status_code == 429 or (response.status_code >= 500 and _transient(response)):
        raise FhirTemporaryError(
            f"export status poll answered {response.status_code}",
            status_code=response.status_code,
            url=str(response.request.url),
            retry_after=retry_after_of(response),
        )
    error: FhirError = error_for_response(response)
    if isinstance(error, FhirNotFound | FhirAuthError):
        raise error  # expired or deleted: the caller starts again; credentials: a person fixes them
    raise BulkExportFailed(
        f"the export failed on the server: {error}", status_code=response.status_code, url=error.url
    ) from error


def _transient(response: httpx.Response) -> bool:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return True  # a gateway's HTML page, not the FHIR server's verdict on the job
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return True
    codes = {i.get("code") for i in body.get("issue") or [] if isinstance(i, dict)}
    return bool(codes) and codes <= _TRANSIENT_CODES


def _json_body(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise FhirTemporaryError(
            f"the export manifest is not valid JSON ({len(response.content)} bytes; truncated?)",
            url=str(response.request.url),
        ) from exc
