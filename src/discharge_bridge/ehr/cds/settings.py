"""A source's CDS Hooks client (``Source.cds_hooks``), set by hospital IT; empty = CDS Hooks off for it.

Keys: ``issuer`` (the ``iss`` of the EHR's JWTs; it names the hospital a call comes from, so two
sources never share one), ``jwks_url`` (its JWK Set), ``jku_allow`` (JWK Set URLs a token's ``jku``
header may name besides ``jwks_url``), ``algorithms`` (default RS384, ES384; only asymmetric ones),
``origins`` (browser origins of a web-based EHR allowed by CORS, e.g. ``https://ehr.example``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sqlmodel import Session, select

from discharge_bridge.ehr.cds.auth import ASYMMETRIC, DEFAULT_ALGORITHMS
from discharge_bridge.sources.errors import SourceError
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.safety import check_url, current_policy


def _url(value: str, field: str) -> str:
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceError(f"{field} must be an http(s) URL (got {value!r})")
    check_url(value, current_policy(), field=field)
    return value


def _origin(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") or parts.query:
        raise SourceError(f"a CORS origin is scheme://host[:port] (got {value!r})")
    return f"{parts.scheme}://{parts.netloc}"


def parse_algorithms(text: str) -> list[str]:
    given = [a.strip().upper() for a in text.split(",") if a.strip()]
    unknown = [a for a in given if a not in ASYMMETRIC]
    if unknown or not given:
        raise SourceError(f"CDS Hooks algorithms are some of {', '.join(sorted(ASYMMETRIC))} (got {text!r})")
    return given


def set_cds_hooks(
    session: Session,
    source: Source,
    *,
    issuer: str | None = None,
    jwks_url: str | None = None,
    jku_allow: list[str] | None = None,
    algorithms: list[str] | None = None,
    origins: list[str] | None = None,
    off: bool = False,
) -> Source:
    """Change the given keys (``off`` empties the setting first); SourceError for a bad value or an
    issuer another source already uses. CDS Hooks is on for the source once issuer and jwks_url are set."""
    raw: dict[str, Any] = {} if off else dict(source.cds_hooks or {})
    if issuer is not None:
        issuer = issuer.strip()
        if not issuer:
            raise SourceError("the CDS Hooks issuer is empty")
        taken = [
            other.name
            for other in session.exec(select(Source))
            if other.id != source.id and (other.cds_hooks or {}).get("issuer") == issuer
        ]
        if taken:
            raise SourceError(f"source {taken[0]} already uses CDS Hooks issuer {issuer!r}")
        raw["issuer"] = issuer
    if jwks_url is not None:
        raw["jwks_url"] = _url(jwks_url, "cds_jwks_url")
    if jku_allow is not None:
        raw["jku_allow"] = [_url(u, "cds_jku") for u in jku_allow]
    if algorithms is not None:
        raw["algorithms"] = parse_algorithms(",".join(algorithms))
    if origins is not None:
        raw["origins"] = [_origin(o) for o in origins]
    source.cds_hooks = {k: v for k, v in raw.items() if v not in (None, [], "")}
    session.add(source)
    session.flush()
    return source


def cds_summary(source: Source) -> dict[str, Any]:
    """What the IT page and the audit trail show (no secrets here: a JWK Set URL is public)."""
    raw = dict(source.cds_hooks or {})
    return {
        "enabled": bool(raw.get("issuer") and raw.get("jwks_url")),
        "issuer": raw.get("issuer"),
        "jwks_url": raw.get("jwks_url"),
        "jku_allow": list(raw.get("jku_allow") or []),
        "algorithms": list(raw.get("algorithms") or DEFAULT_ALGORITHMS),
        "origins": list(raw.get("origins") or []),
    }


def allowed_origins(session: Session) -> frozenset[str]:
    """Every origin some source lets call the CDS services from a browser."""
    found: set[str] = set()
    for source in session.exec(select(Source)):
        found.update((source.cds_hooks or {}).get("origins") or [])
    return frozenset(found)
