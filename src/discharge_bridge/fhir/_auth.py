"""Auth configuration and the httpx auths it builds; secrets are resolved here, never stored."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Literal, Self

import httpx
from pydantic import BaseModel, ConfigDict, model_validator

from ._exceptions import FhirFatalError
from ._retry import RetryPolicy
from ._smart import DEFAULT_SCOPE, SmartBackendAuth, load_private_key

__all__ = ["AuthConfig", "BearerTokenAuth", "build_auth"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class AuthConfig(BaseModel):
    """How to authenticate to the FHIR server.

    Holds only the *names* of environment variables and *paths* of files that contain secrets,
    so the config can be logged, stored and shown in an admin page safely.
    """

    # Unknown keys are refused: a typo (or a pasted `token:`) must not pass silently; and
    # validation errors never quote input values, which may be a secret in the wrong place.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    type: Literal["none", "bearer", "basic", "smart"] = "none"
    # bearer
    token_env: str | None = None
    token_file: str | None = None
    # basic
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    # smart (Backend Services, client_credentials with a signed JWT assertion)
    client_id: str | None = None
    private_key_file: str | None = None
    kid: str | None = None
    alg: Literal["RS384", "ES384"] = "RS384"
    scope: str = DEFAULT_SCOPE
    token_url: str | None = None

    def problems(self) -> list[str]:
        """Missing or inconsistent fields for the chosen type; empty when complete."""
        found: list[str] = []
        if self.type == "bearer":
            found += _one_secret_source("bearer", "token_env", self.token_env, "token_file", self.token_file)
        elif self.type == "basic":
            if not self.username:
                found.append("basic auth needs auth.username")
            found += _one_secret_source("basic", "password_env", self.password_env, "password_file", self.password_file)
        elif self.type == "smart":
            for name in ("client_id", "private_key_file", "kid"):
                if not getattr(self, name):
                    found.append(f"smart auth needs auth.{name}")
            if not self.scope.strip():
                found.append("smart auth needs a non-empty auth.scope")
            if self.token_url is not None and not self.token_url.startswith(("https://", "http://")):
                found.append("auth.token_url must be an http(s) URL")
        for field in ("token_env", "password_env"):
            value = getattr(self, field)
            # Do not echo the value: a wrong entry here is often the secret itself.
            if value is not None and not _ENV_NAME.fullmatch(value):
                found.append(f"auth.{field} must be the NAME of an environment variable, not its value")
        return found

    @model_validator(mode="after")
    def _check_complete(self) -> Self:
        found = self.problems()
        if found:
            raise ValueError("; ".join(found))
        return self

    def validate_complete(self) -> None:
        """Raise FhirFatalError listing every missing or inconsistent field.

        Construction already validates; this re-checks instances built with `model_construct`.
        """
        found = self.problems()
        if found:
            raise FhirFatalError(f"incomplete FHIR auth config (type={self.type}): " + "; ".join(found))


def _one_secret_source(kind: str, env_field: str, env: str | None, file_field: str, file: str | None) -> list[str]:
    if bool(env) == bool(file):
        return [f"{kind} auth needs exactly one of auth.{env_field} or auth.{file_field}"]
    return []


def _read_secret(env: str | None, file: str | None, what: str) -> str:
    """Resolve a secret from an env var or file; errors name the source, never the value."""
    if env:
        value = os.environ.get(env)
        if value is None:
            raise FhirFatalError(f"environment variable {env} (the {what}) is not set")
        if not value.strip():
            raise FhirFatalError(f"environment variable {env} (the {what}) is empty")
        return value.strip()
    assert file is not None  # guaranteed by AuthConfig.problems()
    try:
        value = Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        raise FhirFatalError(f"cannot read the {what} from file {file}: {exc.strerror}") from exc
    if not value.strip():
        raise FhirFatalError(f"file {file} (the {what}) is empty")
    return value.strip()


class BearerTokenAuth(httpx.Auth):
    """A fixed bearer token (a long-lived API token issued by the EHR team)."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


def build_auth(
    config: AuthConfig,
    base_url: str,
    *,
    transport: httpx.BaseTransport | None = None,
    retry: RetryPolicy | None = None,
    clock: Callable[[], float] | None = None,
) -> httpx.Auth | None:
    """Resolve secrets and build the httpx auth for `config`; None for type "none".

    Fails fast with FhirFatalError on incomplete config, missing env vars or unreadable files,
    so a misconfiguration shows at start-up rather than at the first scheduled job.
    `transport`, `retry` and `clock` are for SMART's own token calls (tests inject them).
    """
    config.validate_complete()
    if config.type == "none":
        return None
    if config.type == "bearer":
        return BearerTokenAuth(_read_secret(config.token_env, config.token_file, "bearer token"))
    if config.type == "basic":
        password = _read_secret(config.password_env, config.password_file, "basic auth password")
        assert config.username is not None
        return httpx.BasicAuth(config.username, password)
    assert config.client_id and config.private_key_file and config.kid
    return SmartBackendAuth(
        base_url,
        client_id=config.client_id,
        private_key=load_private_key(config.private_key_file, config.alg),
        kid=config.kid,
        alg=config.alg,
        scope=config.scope,
        token_url=config.token_url,
        transport=transport,
        retry=retry,
        clock=clock or time.time,
    )
