"""End to end: a real uvicorn process answers the EHR's CDS Hooks call; its JWK Set is served over HTTP by a
small local server, and the JWT's aud is the URL the EHR called (the server's own address)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import time_machine
from sqlalchemy.engine import Engine

from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.ehr.cds.discovery import PATIENT_VIEW
from tests.ehr.cds_support import EHR_JWKS, ISSUER, configure, token
from tests.support.clock import child_env
from tests.support.factories import flagged_case, make_source

pytestmark = [pytest.mark.slow, pytest.mark.clock, pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)]
ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Keys(BaseHTTPRequestHandler):
    fetched = 0

    def do_GET(self) -> None:
        type(self).fetched += 1
        body = json.dumps(EHR_JWKS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def jwks_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Keys)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks"
    server.shutdown()
    server.server_close()


@pytest.fixture
def live(settings: Settings, engine: Engine, jwks_server: str) -> Iterator[str]:
    with time_machine.travel(NOW, tick=False):
        with session_scope(engine) as session:
            source = make_source(session, "city")
            configure(session, source, jwks_url=jwks_server)
            flagged_case(session, source.id or 0, "adm1", "p1")
        port = _free_port()
        env = {**child_env(), "DISCHARGE_BRIDGE_DATA_DIR": str(settings.data_dir), "PYTHONPATH": str(ROOT / "src")}
        env.pop("DISCHARGE_BRIDGE_DATABASE_URL", None)
        code = (
            "import uvicorn; from discharge_bridge.app import create_app; "
            f"uvicorn.run(create_app(), host='127.0.0.1', port={port}, log_level='warning', access_log=False)"
        )
        log = (settings.data_dir / "server.log").open("wb")
        process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                assert process.poll() is None, (settings.data_dir / "server.log").read_text()[-2000:]
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                raise RuntimeError("the server did not answer /healthz within 60 s")
            yield base
        finally:
            process.terminate()
            process.wait(10)
            log.close()


def test_a_real_server_answers_a_signed_patient_view_call(live: str) -> None:
    assert httpx.get(f"{live}/cds-services").json()["services"][0]["id"] == PATIENT_VIEW
    endpoint = f"{live}/cds-services/{PATIENT_VIEW}"
    body = {
        "hook": "patient-view",
        "hookInstance": "0c8b8d2e",
        "context": {"userId": "Practitioner/1", "patientId": "p1"},
    }
    raw = token(NOW, endpoint, iss=ISSUER)
    response = httpx.post(endpoint, json=body, headers={"Authorization": f"Bearer {raw}"}, timeout=30)
    assert response.status_code == 200, response.text
    [card] = response.json()["cards"]
    assert card["summary"].startswith("Social coordination: high priority")
    assert card["links"][0]["url"].startswith(f"{live}/cases/")
    assert _Keys.fetched >= 1
    replay = httpx.post(endpoint, json=body, headers={"Authorization": f"Bearer {raw}"}, timeout=30)
    assert replay.status_code == 401
