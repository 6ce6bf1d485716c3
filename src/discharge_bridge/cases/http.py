"""HTTP plumbing shared by the coordination routers: If-Match, actor, scope."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Response

from discharge_bridge.cases.errors import InvalidInput, VersionRequired
from discharge_bridge.deps import CurrentPrincipal, SourceScope
from discharge_bridge.users.principal import Via

__all__ = ["Actor", "IfMatch", "SourceScope", "expected_version", "set_etag"]


def actor_of(
    principal: CurrentPrincipal,
    x_actor: Annotated[
        str | None,
        Header(max_length=200, description="With the service token only: the person on whose behalf it acts."),
    ] = None,
) -> str:
    """Who makes the change: the signed-in user or the token's user; the service token may name one."""
    if principal.via == Via.service:
        return (x_actor or "").strip() or principal.username
    return principal.username


Actor = Annotated[str, Depends(actor_of)]


def if_match_header(
    if_match: Annotated[
        str | None, Header(description='The ETag (`"<version>"`) of the copy being edited (`*` counts as not given).')
    ] = None,
) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    text = if_match.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise InvalidInput(("header", "If-Match"), f'If-Match must be an ETag like "3", got {if_match!r}')
    return int(text)


IfMatch = Annotated[int | None, Depends(if_match_header)]


def expected_version(what: str, if_match: int | None, body_version: int | None, *, required: bool) -> int | None:
    """The version the client edited, from If-Match or the body; 428 when required and missing."""
    if if_match is not None and body_version is not None and if_match != body_version:
        raise InvalidInput(("body", "version"), f"If-Match ({if_match}) and version ({body_version}) disagree")
    found = if_match if if_match is not None else body_version
    if found is None and required:
        raise VersionRequired(what)
    return found


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'
