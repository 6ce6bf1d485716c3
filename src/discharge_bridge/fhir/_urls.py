"""Base URL validation and pinning of server-advertised links to the configured server."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit, urlunsplit

from ._exceptions import FhirFatalError
from .fields import FHIR_ID, RESOURCE_TYPE

__all__ = ["normalise_base_url", "rebase_url", "resolve", "validate_id", "validate_type"]


def normalise_base_url(base_url: str) -> str:
    """`scheme://host[:port]/path` without trailing slash; FhirFatalError if unusable.

    Credentials in the URL are refused (and not echoed): they belong in the auth config.
    """
    parts = urlsplit(base_url.strip())
    if parts.username is not None or parts.password is not None:
        raise FhirFatalError("FHIR base URL must not contain credentials: configure them under auth")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FhirFatalError(f"malformed FHIR base URL {base_url!r}: expected http(s)://host[:port]/path", url=base_url)
    if parts.query or parts.fragment:
        raise FhirFatalError(f"FHIR base URL {base_url!r} must not contain a query string or fragment", url=base_url)
    try:
        parts.port  # noqa: B018 - raises ValueError on a non-numeric or out-of-range port
    except ValueError as exc:
        raise FhirFatalError(f"malformed FHIR base URL {base_url!r}: {exc}", url=base_url) from exc
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def validate_type(resource_type: str) -> str:
    """Refuse anything that is not a resource type name, so it cannot escape the base path."""
    if not RESOURCE_TYPE.fullmatch(resource_type):
        raise FhirFatalError(f"not a FHIR resource type: {resource_type!r}")
    return resource_type


def validate_id(resource_id: str) -> str:
    """Refuse ids outside the FHIR id grammar (which also rules out '/', '?' and '..' tricks)."""
    if not FHIR_ID.fullmatch(resource_id) or resource_id in (".", ".."):
        raise FhirFatalError(f"not a FHIR resource id: {resource_id!r}")
    return resource_id


def resolve(base: str, path_or_url: str) -> str:
    """Absolute URL for a caller-supplied path (relative to base) or URL (pinned to base)."""
    if urlsplit(path_or_url).scheme:
        return rebase_url(path_or_url, base)
    return f"{base}/{path_or_url.lstrip('/')}"


def _under(path: str, base_path: str) -> bool:
    return not base_path or path == base_path or path.startswith(base_path + "/")


def _segment_at(path: str, segment: str) -> int | None:
    needle = f"/{segment}"
    index = path.find(needle + "/")
    if index >= 0:
        return index
    return len(path) - len(needle) if path.endswith(needle) else None


def rebase_url(link: str, base: str, *, resource_type: str | None = None) -> str:
    """Pin a server-advertised link (next page, status URL) to the configured base URL.

    Servers behind proxies or in containers advertise the address they believe they have, e.g.
    HAPI's `server_address` gives `http://localhost:8090/fhir/Encounter?...` while we reach it
    as `http://127.0.0.1:54321/fhir`. So scheme, host and port always become the configured ones
    (which also keeps our credentials from going to another host). The path is kept when it is
    under the base path; otherwise, for search links, the server's own prefix is swapped for
    ours: up to the resource type segment, or the whole path for links without one
    (HAPI's `[base]?_getpages=...`). Relative links resolve against the base.
    """
    base_parts = urlsplit(base)
    base_path = base_parts.path.rstrip("/")
    if link.startswith("?"):
        link = base + link
    parts = urlsplit(urljoin(base + "/", link))
    path = parts.path
    if not _under(path, base_path) and resource_type is not None:
        index = _segment_at(path, resource_type)
        path = base_path + path[index:] if index is not None else base_path
    return urlunsplit((base_parts.scheme, base_parts.netloc, path, parts.query, ""))
