"""``Source.smart_launch``: how this service launches as a SMART app against one hospital's EHR.

Keys (an empty dict = launch off for the source):

- ``client_id`` (required): our public client's id at the EHR's authorization server.
- ``scope``: what an EHR launch asks for; default ``launch openid fhirUser patient/*.rs``.
- ``standalone_scope``: what a standalone launch asks for (the user picks the patient at the EHR);
  default ``launch/patient launch/encounter openid fhirUser patient/*.rs``.
- ``issuer``: the ``iss`` the EHR's id_tokens carry, when its smart-configuration gives none;
  default the configuration's ``issuer``, else the source's base URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_SCOPE = "launch openid fhirUser patient/*.rs"
DEFAULT_STANDALONE_SCOPE = "launch/patient launch/encounter openid fhirUser patient/*.rs"
KEYS = ("client_id", "scope", "standalone_scope", "issuer")


@dataclass(frozen=True)
class LaunchConfig:
    client_id: str
    scope: str = DEFAULT_SCOPE
    standalone_scope: str = DEFAULT_STANDALONE_SCOPE
    issuer: str | None = None

    @classmethod
    def of(cls, raw: dict[str, Any] | None) -> LaunchConfig | None:
        """None when the source has no client id (launch off)."""
        raw = raw or {}
        client_id = str(raw.get("client_id") or "").strip()
        if not client_id:
            return None
        return cls(
            client_id=client_id,
            scope=str(raw.get("scope") or DEFAULT_SCOPE),
            standalone_scope=str(raw.get("standalone_scope") or DEFAULT_STANDALONE_SCOPE),
            issuer=str(raw["issuer"]) if raw.get("issuer") else None,
        )


def updated(raw: dict[str, Any] | None, *, client_id: str | None, scope: str | None) -> dict[str, Any]:
    """``raw`` with these keys set (an empty client id turns the launch off); other keys kept."""
    new = dict(raw or {})
    if client_id is not None:
        if client_id.strip():
            new["client_id"] = client_id.strip()
        else:
            new.pop("client_id", None)
    if scope is not None:
        if scope.strip():
            new["scope"] = " ".join(scope.split())
        else:
            new.pop("scope", None)
    return new
