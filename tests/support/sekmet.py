"""Test harness around the SEKMET FHIR R4 simulator (PyPI ``sekmet-fhir``).

``SekmetServer`` runs ``sekmet serve`` as a subprocess bound to 127.0.0.1 on a free port, with its settings,
database and log confined to a temporary directory, and offers a few admin helpers (plain httpx) to load and
change data.  See tests/support/SEKMET_NOTES.md for what the server does and does not do.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import copy
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import httpx
import jwt
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from discharge_bridge.clock import CLOCK_START_ENV
from tests.support.clock import child_env

AuthMode = Literal["none", "smart", "bearer", "basic"]

DISCHARGE_DISPOSITION_SYSTEM = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
FHIR_JSON = "application/fhir+json"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

START_TIMEOUT = 60.0  # generous: the machine may be busy with other tests
STOP_TIMEOUT = 10.0


class SekmetError(RuntimeError):
    """An admin request to the simulator failed; carries the HTTP status and the decoded body."""

    def __init__(self, method: str, url: str, status: int, body: Any) -> None:
        self.method, self.url, self.status, self.body = method, url, status, body
        super().__init__(f"{method} {url} -> HTTP {status}: {_outcome_text(body)}")


def _outcome_text(body: Any) -> str:
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        return "; ".join(str(i.get("diagnostics", i.get("code"))) for i in body.get("issue", []))
    return str(body)[:2000]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sekmet_command(env: dict[str, str]) -> list[str]:
    if env.get(CLOCK_START_ENV):
        # The simulator's wall clock moves with ours (its meta.lastUpdated, _since, Bulk transactionTime).
        code = "from discharge_bridge.clock import start_from_environment; start_from_environment(); "
        return [sys.executable, "-c", code + "from sekmet.cli import app; app()"]
    exe = Path(sys.executable).parent / "sekmet"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("sekmet")
    if found:
        return [found]
    return [sys.executable, "-c", "from sekmet.cli import app; app()"]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM the server if the test process dies without running teardown (e.g. SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


_LIVE: weakref.WeakSet[SekmetServer] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_leftovers() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        server.stop()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class SekmetServer:
    """A SEKMET FHIR server in a subprocess; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        tmp_dir: Path,
        *,
        auth: AuthMode = "none",
        validation: str = "off",
        subscription_retries: int | None = None,
        db: Literal["memory", "file"] = "memory",
        settings_overrides: dict[str, Any] | None = None,
    ) -> None:
        if auth not in ("none", "smart", "bearer", "basic"):
            raise ValueError(f"unknown auth mode {auth!r}")
        if validation not in ("off", "warn", "strict"):
            raise ValueError(f"unknown validation mode {validation!r}")
        self.tmp_dir = Path(tmp_dir)
        self.auth: AuthMode = auth
        self.validation = validation
        self.subscription_retries = subscription_retries
        self.db = db
        self.settings_overrides = settings_overrides or {}

        self.port: int = 0
        self.pid: int = 0
        self.base_url: str = ""
        self.settings_path = self.tmp_dir / "settings.yaml"
        self.log_path = self.tmp_dir / "sekmet.log"

        self.smart_client_id: str | None = None
        self.smart_private_key_path: Path | None = None
        self.smart_kid: str | None = None
        self.bearer_token: str | None = None
        self.basic_user: str | None = None
        self.basic_password: str | None = None

        self.start_seconds: float | None = None
        self._spawned_at = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._client: httpx.Client | None = None
        self._access_token: tuple[str, float] | None = None

    # ------------------------------------------------------------------ urls

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_url(self) -> str:
        """SMART token endpoint: SEKMET serves it at {root}/auth/token (not under /fhir)."""
        return f"{self.root_url}/auth/token"

    # ------------------------------------------------------------- lifecycle

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        """Start the server process without waiting for it to answer (``wait_ready`` does)."""
        if self.running:
            raise RuntimeError(f"SEKMET already running (pid {self.pid})")
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.base_url = f"{self.root_url}/fhir"
        self._write_settings()
        self._spawn()

    def wait_ready(self) -> None:
        """Wait until the spawned server answers ``/metadata``; on a lost port race, start again (3 tries)."""
        last_error: Exception | None = None
        for _ in range(3):  # the free port may be taken between probing and binding
            if self._proc is None:  # lost the race for its port (or died) last time: spawn again
                self.spawn()
            try:
                self._wait_ready()
                return
            except _PortInUse as e:
                last_error = e
        raise RuntimeError(f"SEKMET could not bind a port after 3 tries: {last_error}")

    def _write_settings(self) -> None:
        server_auth: dict[str, Any] = {"types": [self.auth]}
        if self.auth == "smart":
            self._make_smart_client()
            assert self.smart_private_key_path is not None
            public = serialization.load_pem_private_key(
                self.smart_private_key_path.read_bytes(), password=None
            ).public_key()
            jwk = json.loads(RSAAlgorithm.to_jwk(public))
            jwk.update({"kid": self.smart_kid, "alg": "RS384", "use": "sig"})
            server_auth["smart_clients"] = [
                {"client_id": self.smart_client_id, "jwks": {"keys": [jwk]}, "scopes": "system/*.*"}
            ]
        elif self.auth == "bearer":
            self.bearer_token = self.bearer_token or secrets.token_urlsafe(24)
            server_auth["tokens"] = [self.bearer_token]
        elif self.auth == "basic":
            self.basic_user = self.basic_user or "admin"
            self.basic_password = self.basic_password or secrets.token_urlsafe(12)
            server_auth["users"] = {self.basic_user: self.basic_password}

        settings: dict[str, Any] = {
            "base_url": self.base_url,
            "host": "127.0.0.1",
            "port": self.port,
            "data_dir": str(self.tmp_dir / "data"),
            "own_private_key_path": str(self.tmp_dir / "keys" / "sekmet_private.pem"),
            "server_auth": server_auth,
            "validation": {"inbound": self.validation},
            # the simulator plays lab/RIS/pharmacy and writes follow-up resources on its own: noise here
            "simulator": {"enabled": False},
            "subscriptions": {},
        }
        if self.subscription_retries is not None:
            settings["subscriptions"]["retries"] = self.subscription_retries
        _deep_merge(settings, self.settings_overrides)
        self.settings_path.write_text(yaml.safe_dump(settings, sort_keys=False))

    def _make_smart_client(self) -> None:
        if self.smart_private_key_path and self.smart_private_key_path.exists():
            return
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path = self.tmp_dir / "keys" / "smart_client_private.pem"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        path.chmod(0o600)
        self.smart_private_key_path = path
        self.smart_client_id = f"discharge-bridge-test-{secrets.token_hex(4)}"
        self.smart_kid = f"test-key-{secrets.token_hex(4)}"

    def _spawn(self) -> None:
        env = child_env(shared=True)  # a session's server: the run's clock, not a test's frozen one
        env.update(
            {
                "SEKMET_CONFIG": str(self.settings_path),
                "SEKMET_BASE_URL": self.base_url,
                "SEKMET_PORT": str(self.port),
                "SEKMET_DB": ":memory:" if self.db == "memory" else str(self.tmp_dir / "data" / "sekmet.db"),
            }
        )
        env.pop("SEKMET_PUBLIC_URL", None)
        cmd = [*_sekmet_command(env), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self._log_file = self.log_path.open("ab")
        self._spawned_at = time.monotonic()
        self._proc = subprocess.Popen(
            cmd,
            cwd=self.tmp_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        self.pid = self._proc.pid
        with _LIVE_LOCK:
            _LIVE.add(self)

    def _wait_ready(self) -> None:
        if self._proc is None:
            raise RuntimeError("SEKMET was not spawned")
        if self._client is not None:
            return  # ready already
        started = self._spawned_at
        deadline = started + START_TIMEOUT
        while True:
            code = self._proc.poll()
            if code is not None:
                log = self.log_text()
                self._close_log()
                self._proc = None
                self._forget()
                if "address already in use" in log.lower():
                    raise _PortInUse(log[-500:])
                raise RuntimeError(f"SEKMET exited with code {code} during start-up. Log:\n{log[-4000:]}")
            try:
                r = httpx.get(f"{self.base_url}/metadata", timeout=1.0)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"SEKMET not ready within {START_TIMEOUT:.0f}s on {self.base_url}. Log:\n{self.log_text()[-4000:]}"
                )
            time.sleep(0.05)
        self.start_seconds = time.monotonic() - started
        self._client = httpx.Client(base_url=self.base_url, timeout=30.0, headers={"Accept": FHIR_JSON})

    def stop(self) -> None:
        """Terminate the server process by PID (SIGTERM), wait, SIGKILL if it lingers."""
        if self._client is not None:
            self._client.close()
            self._client = None
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
        self._close_log()
        self._access_token = None
        self._forget()

    def kill(self) -> None:
        """SIGKILL the server process (simulates a crash)."""
        if self._client is not None:
            self._client.close()
            self._client = None
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
        self._close_log()
        self._access_token = None
        self._forget()

    def _forget(self) -> None:
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def pid_alive(self) -> bool:
        return bool(self.pid) and _pid_alive(self.pid)

    # ------------------------------------------------------------------ auth

    def smart_client_assertion(self, *, audience: str | None = None, lifetime: int = 240) -> str:
        """A signed private_key_jwt client assertion for the registered backend-services client."""
        if self.smart_private_key_path is None:
            raise RuntimeError("server was not started with auth='smart'")
        now = int(time.time())
        claims = {
            "iss": self.smart_client_id,
            "sub": self.smart_client_id,
            "aud": audience or self.token_url,
            "exp": now + lifetime,
            "iat": now,
            "jti": str(uuid.uuid4()),
        }
        key = serialization.load_pem_private_key(self.smart_private_key_path.read_bytes(), password=None)
        return jwt.encode(claims, key, algorithm="RS384", headers={"kid": self.smart_kid})  # type: ignore[arg-type]

    def smart_token(self, scope: str = "system/*.*") -> dict[str, Any]:
        """POST a client_credentials grant with a JWT assertion to the token endpoint; returns the JSON."""
        r = httpx.post(
            self.token_url,
            data={
                "grant_type": "client_credentials",
                "scope": scope,
                "client_assertion_type": JWT_BEARER,
                "client_assertion": self.smart_client_assertion(),
            },
            timeout=30.0,
        )
        if r.status_code != 200:
            raise SekmetError("POST", self.token_url, r.status_code, r.text)
        return dict(r.json())

    def auth_headers(self) -> dict[str, str]:
        """Authorization header admin helpers use (a fresh SMART token is fetched when needed)."""
        if self.auth == "bearer":
            return {"Authorization": f"Bearer {self.bearer_token}"}
        if self.auth == "basic":
            raw = f"{self.basic_user}:{self.basic_password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        if self.auth == "smart":
            if self._access_token is None or self._access_token[1] < time.time() + 30:
                tok = self.smart_token()
                self._access_token = (tok["access_token"], time.time() + int(tok.get("expires_in", 300)))
            return {"Authorization": f"Bearer {self._access_token[0]}"}
        return {}

    # --------------------------------------------------------- admin helpers

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        if self._client is None:
            raise RuntimeError("SEKMET is not running")
        h = {**self.auth_headers(), **(headers or {})}
        content = None
        if json_body is not None:
            content = json.dumps(json_body).encode()
            h.setdefault("Content-Type", FHIR_JSON)
        # absolute URLs (e.g. next links) are used as they are; anything else is relative to the FHIR base
        url = path if path.startswith(("http://", "https://")) else path.lstrip("/")
        r = self._client.request(method, url, params=params, content=content, headers=h)
        if r.status_code >= 400:
            try:
                body: Any = r.json()
            except ValueError:
                body = r.text
            raise SekmetError(method, str(r.request.url), r.status_code, body)
        return r

    def transaction(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """POST a transaction/batch Bundle to the base; returns the response Bundle."""
        return dict(self._request("POST", "", json_body=bundle).json())

    def put(self, resource: dict[str, Any]) -> dict[str, Any]:
        """PUT {base}/{type}/{id} (create-or-update); returns the stored resource."""
        return dict(self._request("PUT", f"{resource['resourceType']}/{resource['id']}", json_body=resource).json())

    def post(self, resource: dict[str, Any]) -> dict[str, Any]:
        """POST {base}/{type} (server assigns the id); returns the stored resource."""
        return dict(self._request("POST", resource["resourceType"], json_body=resource).json())

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        """GET {base}/{path}; list/tuple values become repeated parameters (e.g. _include=[a, b])."""
        items: list[tuple[str, str]] = []
        for k, v in params.items():
            for x in v if isinstance(v, list | tuple) else [v]:
                items.append((k, str(x)))
        return dict(self._request("GET", path, params=items or None).json())

    def delete(self, path: str) -> None:
        self._request("DELETE", path)

    def discharge(self, encounter_id: str, *, end: str, disposition_code: str = "home") -> dict[str, Any]:
        """Read-modify-write the Encounter like sekmet's ``adt.discharge`` workflow, but with a chosen end.

        status -> finished, period.end = end, a closed statusHistory, active/planned locations completed, and
        hospitalization.dischargeDisposition (discharge-disposition code system).  The PUT carries If-Match with
        the version read, so a concurrent change fails loudly (412) instead of being overwritten.
        """
        enc = copy.deepcopy(self.get(f"Encounter/{encounter_id}"))
        version = enc.get("meta", {}).get("versionId")
        enc["status"] = "finished"
        for sh in enc.get("statusHistory", []) or []:
            sh.setdefault("period", {}).setdefault("end", end)
        enc.setdefault("statusHistory", []).append({"status": "finished", "period": {"start": end}})
        enc.setdefault("period", {})["end"] = end
        for loc in enc.get("location", []) or []:
            if loc.get("status") in ("active", "planned"):
                loc["status"] = "completed"
                loc.setdefault("period", {})["end"] = end
        enc.setdefault("hospitalization", {})["dischargeDisposition"] = {
            "coding": [{"system": DISCHARGE_DISPOSITION_SYSTEM, "code": disposition_code}]
        }
        headers = {"If-Match": f'W/"{version}"'} if version else None
        r = self._request("PUT", f"Encounter/{encounter_id}", json_body=enc, headers=headers)
        return dict(r.json())


class _PortInUse(RuntimeError):
    pass


def _deep_merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _deep_merge(into[k], v)
        else:
            into[k] = v


@contextlib.contextmanager
def running_sekmet(tmp_dir: Path, **kwargs: Any):  # type: ignore[no-untyped-def]
    """Convenience: ``with running_sekmet(tmp) as s:``."""
    server = SekmetServer(tmp_dir, **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()
