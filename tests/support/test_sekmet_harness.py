"""Proves the SEKMET harness: lifecycle, data loading, search, discharge, SMART backend-services auth."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.support.sekmet import SekmetError, SekmetServer

pytestmark = pytest.mark.slow

V3_ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def _admission_bundle() -> dict:
    patient = {"resourceType": "Patient", "id": "pat-1", "name": [{"family": "Doe", "given": ["Jane"]}]}
    encounters = [
        {
            "resourceType": "Encounter",
            "id": eid,
            "status": status,
            "class": {"system": V3_ACT, "code": cls},
            "subject": {"reference": "Patient/pat-1"},
            "period": {"start": "2024-05-01T08:00:00Z"},
        }
        for eid, status, cls in (("enc-1", "in-progress", "IMP"), ("enc-2", "in-progress", "AMB"))
    ]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in (patient, *encounters)
        ],
    }


def _ids(bundle: dict, mode: str = "match") -> list[str]:
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") == mode
    ]


def test_start_load_search_discharge_stop(sekmet: SekmetServer) -> None:
    assert sekmet.base_url == f"http://127.0.0.1:{sekmet.port}/fhir"
    assert sekmet.pid_alive()
    assert sekmet.start_seconds is not None and sekmet.start_seconds < 30

    resp = sekmet.transaction(_admission_bundle())
    assert resp["type"] == "transaction-response"
    assert [e["response"]["status"] for e in resp["entry"]] == ["201 Created"] * 3

    found = sekmet.get("Encounter", **{"class": "IMP", "status": "in-progress", "_include": "Encounter:subject"})
    assert _ids(found) == ["Encounter/enc-1"]
    assert _ids(found, "include") == ["Patient/pat-1"]
    # links advertise the configured base, not the simulator's localhost:8090 default
    assert all(link["url"].startswith(sekmet.base_url) for link in found["link"])

    done = sekmet.discharge("enc-1", end="2024-05-03T10:30:00Z", disposition_code="snf")
    assert done["status"] == "finished"
    assert done["period"] == {"start": "2024-05-01T08:00:00Z", "end": "2024-05-03T10:30:00Z"}
    assert done["hospitalization"]["dischargeDisposition"]["coding"][0]["code"] == "snf"
    assert done["meta"]["versionId"] == "2"
    assert _ids(sekmet.get("Encounter", status="finished")) == ["Encounter/enc-1"]

    with pytest.raises(SekmetError) as err:
        sekmet.get("Encounter/does-not-exist")
    assert err.value.status == 404

    pid = sekmet.pid
    sekmet.stop()
    assert not sekmet.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{sekmet.base_url}/metadata", timeout=2)


def test_each_test_gets_a_fresh_server(sekmet: SekmetServer) -> None:
    assert sekmet.get("Encounter", _summary="count")["total"] == 0


def test_kill_leaves_no_process(tmp_path: Path) -> None:
    server = SekmetServer(tmp_path)
    server.start()
    pid = server.pid
    server.kill()
    assert not server.pid_alive()
    assert pid == server.pid
    server.stop()  # idempotent after kill


def test_start_failure_reports_the_log(tmp_path: Path) -> None:
    server = SekmetServer(tmp_path, settings_overrides={"server_auth": {"types": ["kerberos"]}})
    with pytest.raises(RuntimeError, match="kerberos"):
        server.start()
    assert not server.running


def test_smart_backend_services_token_with_signed_jwt(sekmet_factory) -> None:
    server: SekmetServer = sekmet_factory(auth="smart")
    assert server.smart_client_id and server.smart_kid and server.smart_private_key_path

    cfg = httpx.get(f"{server.base_url}/.well-known/smart-configuration").json()
    token_url = cfg["token_endpoint"]
    assert token_url == f"http://127.0.0.1:{server.port}/auth/token"

    r = httpx.get(f"{server.base_url}/Encounter")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")

    key = serialization.load_pem_private_key(server.smart_private_key_path.read_bytes(), password=None)
    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": server.smart_client_id,
            "sub": server.smart_client_id,
            "aud": token_url,
            "exp": now + 240,
            "iat": now,
            "jti": str(uuid.uuid4()),
        },
        key,  # type: ignore[arg-type]
        algorithm="RS384",
        headers={"kid": server.smart_kid},
    )
    tok = httpx.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "scope": "system/*.rs",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )
    assert tok.status_code == 200, tok.text
    body = tok.json()
    assert body["token_type"] == "bearer"
    assert body["scope"] == "system/*.rs"
    assert body["expires_in"] == 3600
    headers = {"Authorization": f"Bearer {body['access_token']}"}

    # admin helpers authenticate themselves (system/*.*), then the read-only token can search...
    server.put({"resourceType": "Patient", "id": "p1"})
    r = httpx.get(f"{server.base_url}/Patient", headers=headers)
    assert r.status_code == 200
    assert r.json()["total"] == 1
    # ...but not write
    r = httpx.put(
        f"{server.base_url}/Patient/p1",
        json={"resourceType": "Patient", "id": "p1"},
        headers={**headers, "Content-Type": "application/fhir+json"},
    )
    assert r.status_code == 403


@pytest.mark.parametrize("auth", ["bearer", "basic"])
def test_static_auth_modes(sekmet_factory, auth: str) -> None:
    server: SekmetServer = sekmet_factory(auth=auth)
    assert httpx.get(f"{server.base_url}/Patient").status_code == 401
    server.put({"resourceType": "Patient", "id": "p1"})
    assert server.get("Patient/p1")["id"] == "p1"
    assert httpx.get(f"{server.base_url}/Patient/p1", headers=server.auth_headers()).status_code == 200


def test_strict_validation_rejects_unknown_elements(sekmet_factory) -> None:
    server: SekmetServer = sekmet_factory(validation="strict")
    with pytest.raises(SekmetError) as err:
        server.put({"resourceType": "Patient", "id": "p1", "vendorField": 1})
    assert err.value.status == 400
    assert "vendorField" in str(err.value)
