"""SMART App Launch 2.0 as a public client: EHR launch (``iss`` + ``launch``) and standalone launch.

``begin`` reads the EHR's SMART configuration, keeps a ``SmartLaunchState`` (random state, PKCE
S256 verifier, OpenID nonce, ten minutes to live) and returns the authorization URL. ``complete``
takes the state back once (used, unexpired), exchanges the code, checks the id_token and matches
its ``fhirUser`` to a local user through ``UserFhirIdentity`` for that source. Every refusal is a
``LaunchRefused`` with a reason code the page words in the reader's language; nothing here is a 500.
Services flush; the caller commits (a refused ``complete`` still marks its state used).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit

from sqlmodel import Session, col, delete, select

from discharge_bridge.ehr.launch import oidc
from discharge_bridge.ehr.launch.settings import LaunchConfig, updated
from discharge_bridge.ehr.models import SmartLaunchState
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.safety import SourcePolicy, current_policy
from discharge_bridge.users.models import User, UserFhirIdentity, UserSource
from discharge_bridge.users.roles import Role

STATE_LIFETIME = timedelta(minutes=10)
_KEEP_USED = timedelta(days=1)  # used and expired states are purged after this

# reason codes of LaunchRefused (ui/launch.py words each one)
UNKNOWN_ISSUER = "unknown_issuer"
NOT_CONFIGURED = "not_configured"
BAD_STATE = "bad_state"
EXPIRED = "expired"
REPLAYED = "replayed"
NO_PATIENT = "no_patient"
NO_FHIR_USER = "no_fhir_user"
UNLINKED = "unlinked"
DISABLED = "disabled"
NO_HOSPITAL = "no_hospital"


class LaunchRefused(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class LaunchResult:
    user: User
    source: Source
    patient: str
    encounter: str | None
    fhir_user: str


def _base(url: str) -> str:
    return url.strip().rstrip("/")


def config_of(source: Source) -> LaunchConfig:
    config = LaunchConfig.of(source.smart_launch)
    if config is None:
        raise LaunchRefused(NOT_CONFIGURED, source.name)
    return config


def source_for_issuer(session: Session, iss: str) -> Source:
    """The source whose base URL is ``iss`` and that has SMART launch configured; an EHR launch from
    anywhere else is refused (the ``iss`` decides where the code and the user's identity come from)."""
    wanted = _base(iss)
    for source in session.exec(select(Source)):
        if _base(source.base_url) == wanted and LaunchConfig.of(source.smart_launch) is not None:
            return source
    raise LaunchRefused(UNKNOWN_ISSUER)


def source_named(session: Session, name: str) -> Source:
    source = session.exec(select(Source).where(Source.name == name)).first()
    if source is None:
        raise LaunchRefused(NOT_CONFIGURED)
    config_of(source)
    return source


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def begin(
    session: Session,
    source: Source,
    *,
    launch: str | None = None,
    redirect_uri: str,
    now: datetime,
    policy: SourcePolicy | None = None,
) -> str:
    """The EHR's authorization URL for this launch (``launch`` given: an EHR launch)."""
    config = config_of(source)
    assert source.id is not None
    with oidc.client(source.base_url, policy or current_policy()) as http:
        try:
            smart = oidc.smart_configuration(http, source.base_url)
        except oidc.OidcError as exc:
            raise LaunchRefused(exc.reason, exc.detail) from None
    session.exec(delete(SmartLaunchState).where(col(SmartLaunchState.expires_at) < now - _KEEP_USED))  # type: ignore[call-overload]
    state = SmartLaunchState(
        state=secrets.token_urlsafe(32),
        source_id=source.id,
        code_verifier=secrets.token_urlsafe(64),  # 86 characters of [A-Za-z0-9_-]: within RFC 7636's 43..128
        launch=launch,
        nonce=secrets.token_urlsafe(24),
        created_at=now,
        expires_at=now + STATE_LIFETIME,
    )
    session.add(state)
    session.flush()
    params = {
        "response_type": "code",
        "client_id": config.client_id,
        "redirect_uri": redirect_uri,
        "scope": config.scope if launch else config.standalone_scope,
        "state": state.state,
        "aud": _base(source.base_url),
        "code_challenge": _challenge(state.code_verifier),
        "code_challenge_method": "S256",
        "nonce": state.nonce,
    }
    if launch:
        params["launch"] = launch
    separator = "&" if urlsplit(smart.authorization_endpoint).query else "?"
    return smart.authorization_endpoint + separator + urlencode(params)


def _take_state(session: Session, state: str, now: datetime) -> SmartLaunchState:
    row = session.exec(select(SmartLaunchState).where(SmartLaunchState.state == state)).first() if state else None
    if row is None:
        raise LaunchRefused(BAD_STATE)
    if row.used_at is not None:
        raise LaunchRefused(REPLAYED)
    row.used_at = now  # taken before anything else can fail: a state serves one attempt
    session.add(row)
    session.flush()
    if row.expires_at <= now:
        raise LaunchRefused(EXPIRED)
    return row


def fhir_user_reference(claim: object, base_url: str) -> str | None:
    """``Practitioner/123`` from the claim, which may be relative or an absolute URL under the base."""
    if not isinstance(claim, str) or not claim.strip():
        return None
    value = claim.strip()
    if "://" in value:
        base = _base(base_url) + "/"
        if not value.startswith(base):
            return None  # another server's user says nothing about this hospital's
        value = value[len(base) :]
    parts = value.strip("/").split("/")
    if len(parts) != 2 or not all(parts):
        return None
    return f"{parts[0]}/{parts[1]}"


def match_user(session: Session, source: Source, fhir_user: str) -> User:
    """The local user linked to ``fhir_user`` at ``source``, enabled and allowed to see that hospital."""
    link = session.exec(
        select(UserFhirIdentity).where(UserFhirIdentity.source_id == source.id, UserFhirIdentity.fhir_user == fhir_user)
    ).first()
    user = session.get(User, link.user_id) if link is not None else None
    if user is None:
        raise LaunchRefused(UNLINKED)
    if user.disabled:
        raise LaunchRefused(DISABLED)
    if user.role != Role.admin:
        allowed = session.exec(
            select(UserSource).where(UserSource.user_id == user.id, UserSource.source_id == source.id)
        ).first()
        if allowed is None or user.role == Role.receiver:
            raise LaunchRefused(NO_HOSPITAL)
    return user


def complete(
    session: Session,
    *,
    state: str,
    code: str,
    redirect_uri: str,
    now: datetime,
    policy: SourcePolicy | None = None,
) -> LaunchResult:
    """Who launched and in which context: the user matched, the patient and encounter of the launch."""
    row = _take_state(session, state, now)
    source = session.get(Source, row.source_id)
    if source is None:
        raise LaunchRefused(BAD_STATE)
    config = config_of(source)
    with oidc.client(source.base_url, policy or current_policy()) as http:
        try:
            smart = oidc.smart_configuration(http, source.base_url)
            tokens = oidc.exchange_code(
                http,
                smart.token_endpoint,
                code=code,
                redirect_uri=redirect_uri,
                client_id=config.client_id,
                code_verifier=row.code_verifier,
            )
            id_token = tokens.get("id_token")
            if not isinstance(id_token, str):
                raise oidc.OidcError("bad_id_token", "no id_token (was openid asked for?)")
            claims = oidc.verify_id_token(
                http,
                id_token,
                jwks_uri=smart.jwks_uri,
                issuer=config.issuer or smart.issuer or _base(source.base_url),
                client_id=config.client_id,
                nonce=row.nonce,
                now=now,
            )
        except oidc.OidcError as exc:
            raise LaunchRefused(exc.reason, exc.detail) from None
    fhir_user = fhir_user_reference(claims.get("fhirUser"), source.base_url)
    if fhir_user is None:
        raise LaunchRefused(NO_FHIR_USER)
    user = match_user(session, source, fhir_user)
    patient = tokens.get("patient")
    if not isinstance(patient, str) or not patient.strip():
        raise LaunchRefused(NO_PATIENT)
    encounter = tokens.get("encounter")
    encounter_id = encounter.strip() if isinstance(encounter, str) and encounter.strip() else None
    return LaunchResult(user, source, patient.strip(), encounter_id, fhir_user)


def configure_launch(session: Session, source: Source, *, client_id: str | None, scope: str | None) -> Source:
    """Set the source's SMART launch client id and / or scope (an empty client id turns launch off).
    The caller audits the change (connections.forms.record_edit shows ``smart_launch``)."""
    source.smart_launch = updated(source.smart_launch, client_id=client_id, scope=scope)
    session.add(source)
    session.flush()
    return source
