"""FastAPI dependencies: the request's session (the one owner of its transaction) and auth."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from discharge_bridge.config import Settings, get_settings
from discharge_bridge.db import get_engine, session_scope

_bearer = HTTPBearer(auto_error=False, description="API token (DISCHARGE_BRIDGE_API_TOKEN)")


def settings_dep(request: Request) -> Settings:
    return getattr(request.app.state, "settings", None) or get_settings()


SettingsDep = Annotated[Settings, Depends(settings_dep)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    """Commit when the route returns, roll back when it raises."""
    with session_scope(get_engine(settings)) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def require_token(
    settings: SettingsDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    expected = settings.api_token.get_secret_value() if settings.api_token else None
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "authentication required", headers={"WWW-Authenticate": "Bearer"}
        )
    if expected is None or not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid token", headers={"WWW-Authenticate": "Bearer"})


Authenticated = Depends(require_token)
