"""A small SMART App Launch 2.0 authorization server (and the EHR's launch button) for the tests.

The simulator (sekmet) runs no user launches: its /auth/authorize answers an OAuth error (see
tests/support/SEKMET_NOTES.md). This server does what the spec asks of an EHR for a public client:

- ``GET {base}/.well-known/smart-configuration``: issuer, authorize / token endpoints, jwks_uri,
  ``code_challenge_methods_supported: ["S256"]``, the launch capabilities;
- ``GET /ehr/launch?patient=&encounter=&user=&app=``: the EHR's side, a launch id bound to that
  context and a redirect to ``app?iss={base}&launch={id}``;
- ``GET /authorize``: checks client, redirect URI, ``aud``, S256 challenge and the launch id (or
  ``launch/patient`` for a standalone launch), shows an "Approve" page, then redirects with a code;
- ``POST /token``: the code once, the redirect URI again, the PKCE verifier against the challenge;
  answers the token with ``patient``, ``encounter`` and an RS256 id_token (iss, aud = client id,
  sub, fhirUser, nonce, iat, exp) signed by the key of ``/jwks``.

Run as a process: ``python -m tests.support.smart_auth CONFIG.json`` (``serve_smart_auth`` does).
The helpers for keys and id_tokens serve the unit tests too.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

ROOT = Path(__file__).resolve().parents[2]


# -- keys and tokens (shared with the unit tests) ---------------------------------------------------------


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def jwks_of(key: rsa.RSAPrivateKey, kid: str = "k1") -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
    return {"keys": [jwk]}


def id_token(key: rsa.RSAPrivateKey, *, kid: str = "k1", **claims: Any) -> str:
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


# -- the server -------------------------------------------------------------------------------------------


def build_app(config: dict[str, Any]) -> FastAPI:
    """``config``: base (the FHIR base = iss), client_id, redirect_uris, key_pem, default_user,
    default_patient, default_encounter (standalone)."""
    app = FastAPI()
    base: str = config["base"].rstrip("/")
    root = base.rsplit("/fhir", 1)[0]
    key = serialization.load_pem_private_key(config["key_pem"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    launches: dict[str, dict[str, str | None]] = {}
    pending: dict[str, dict[str, Any]] = {}  # approval id -> the authorize request
    codes: dict[str, dict[str, Any]] = {}

    def error(status: int, code: str, description: str) -> JSONResponse:
        return JSONResponse({"error": code, "error_description": description}, status_code=status)

    @app.get("/fhir/.well-known/smart-configuration")
    def smart_configuration() -> dict[str, Any]:
        return {
            "issuer": base,
            "authorization_endpoint": f"{root}/authorize",
            "token_endpoint": f"{root}/token",
            "jwks_uri": f"{root}/jwks",
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": ["openid", "fhirUser", "launch", "launch/patient", "launch/encounter", "patient/*.rs"],
            "response_types_supported": ["code"],
            "capabilities": [
                "launch-ehr",
                "launch-standalone",
                "client-public",
                "context-ehr-patient",
                "context-ehr-encounter",
                "context-standalone-patient",
                "sso-openid-connect",
                "permission-patient",
            ],
        }

    @app.get("/jwks")
    def jwks() -> dict[str, Any]:
        return jwks_of(key)

    @app.get("/ehr/launch")
    def ehr_launch(app_url: str, patient: str, user: str, encounter: str | None = None) -> Response:
        launch = secrets.token_urlsafe(12)
        launches[launch] = {"patient": patient, "encounter": encounter, "user": user}
        return RedirectResponse(f"{app_url}?{urlencode({'iss': base, 'launch': launch})}", status_code=302)

    @app.get("/authorize")
    def authorize(request: Request) -> Response:
        q = request.query_params
        if q.get("client_id") != config["client_id"] or q.get("redirect_uri") not in config["redirect_uris"]:
            return error(400, "invalid_client", "unknown client or redirect_uri")  # never redirect to an unknown URI
        redirect = q["redirect_uri"]

        def refuse(code: str) -> Response:
            return RedirectResponse(f"{redirect}?{urlencode({'error': code, 'state': q.get('state', '')})}", 302)

        if q.get("response_type") != "code" or not q.get("state"):
            return refuse("invalid_request")
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return refuse("invalid_request")
        if (q.get("aud") or "").rstrip("/") != base:
            return refuse("invalid_request")
        scopes = set((q.get("scope") or "").split())
        if q.get("launch"):
            context = launches.get(q["launch"])
            if context is None or "launch" not in scopes:
                return refuse("invalid_request")
        elif "launch/patient" in scopes:
            context = {
                "patient": config["default_patient"],
                "encounter": config.get("default_encounter") if "launch/encounter" in scopes else None,
                "user": config["default_user"],
            }
        else:
            return refuse("invalid_scope")
        approval = secrets.token_urlsafe(12)
        pending[approval] = {"context": context, "query": dict(q), "scopes": scopes}
        return HTMLResponse(
            "<!doctype html><html><body><h1>Test EHR: allow access?</h1>"
            f"<p>App {html.escape(config['client_id'])} asks for {html.escape(' '.join(sorted(scopes)))}</p>"
            f"<form method='post' action='/authorize/approve'><input type='hidden' name='approval' value='{approval}'>"
            "<button name='decision' value='approve'>Approve</button>"
            "<button name='decision' value='deny'>Deny</button></form></body></html>"
        )

    @app.post("/authorize/approve")
    def approve(approval: str = Form(), decision: str = Form()) -> Response:
        request = pending.pop(approval, None)
        if request is None:
            return error(400, "invalid_request", "unknown approval")
        q = request["query"]
        if decision != "approve":
            denied = urlencode({"error": "access_denied", "state": q["state"]})
            return RedirectResponse(f"{q['redirect_uri']}?{denied}", 303)
        code = secrets.token_urlsafe(16)
        codes[code] = {**request, "issued": time.time()}
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}", 303)

    @app.post("/token")
    def token(
        grant_type: str = Form(),
        code: str = Form(),
        redirect_uri: str = Form(),
        client_id: str = Form(),
        code_verifier: str = Form(""),
    ) -> Response:
        if grant_type != "authorization_code":
            return error(400, "unsupported_grant_type", grant_type)
        granted = codes.pop(code, None)  # a code is good once
        if granted is None or time.time() - granted["issued"] > 60:
            return error(400, "invalid_grant", "unknown, used or expired code")
        q = granted["query"]
        if client_id != q["client_id"] or redirect_uri != q["redirect_uri"]:
            return error(400, "invalid_grant", "client_id or redirect_uri differ from the authorization request")
        if not 43 <= len(code_verifier) <= 128 or s256(code_verifier) != q["code_challenge"]:
            return error(400, "invalid_grant", "PKCE verification failed")
        context = granted["context"]
        now = int(time.time())
        body: dict[str, Any] = {
            "access_token": secrets.token_urlsafe(24),
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": " ".join(sorted(granted["scopes"])),
            "patient": context["patient"],
        }
        if context.get("encounter"):
            body["encounter"] = context["encounter"]
        if "openid" in granted["scopes"]:
            claims: dict[str, Any] = {
                "iss": base,
                "aud": client_id,
                "sub": context["user"],
                "iat": now,
                "exp": now + 300,
                "fhirUser": f"{base}/{context['user']}",
            }
            if q.get("nonce"):
                claims["nonce"] = q["nonce"]
            body["id_token"] = id_token(key, **claims)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    return app


# -- as a process -----------------------------------------------------------------------------------------


@dataclass
class SmartAuthServer:
    base: str  # the FHIR base URL, the launch's iss
    root: str
    process: subprocess.Popen[bytes]

    def launch_url(self, app_url: str, *, patient: str, user: str, encounter: str | None = None) -> str:
        params = {"app_url": app_url, "patient": patient, "user": user}
        if encounter:
            params["encounter"] = encounter
        return f"{self.root}/ehr/launch?{urlencode(params)}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_smart_auth(folder: Path, *, port: int, **config: Any) -> Iterator[SmartAuthServer]:
    """Start this server on 127.0.0.1:``port`` in a child process; stop it (by its PID) afterwards."""
    root = f"http://127.0.0.1:{port}"
    config = {"base": f"{root}/fhir", "key_pem": pem(new_key()), **config}
    path = folder / "smart_auth.json"
    path.write_text(json.dumps(config))
    log = (folder / "smart_auth.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.smart_auth", str(path), str(port)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError((folder / "smart_auth.log").read_text()[-2000:])
            try:
                if httpx.get(f"{root}/jwks", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield SmartAuthServer(config["base"], root, process)
    finally:
        process.kill()
        process.wait(10)
        log.close()


if __name__ == "__main__":
    import uvicorn

    served = build_app(json.loads(Path(sys.argv[1]).read_text()))
    uvicorn.run(served, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
