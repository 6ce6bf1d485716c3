"""AuthConfig validation and the simple auths (bearer, basic) built from it."""

from __future__ import annotations

import base64
from pathlib import Path

import pydantic
import pytest
import respx
from fhir_testkit import BASE

from discharge_bridge.fhir import AuthConfig, FhirAuthError, FhirClient, FhirFatalError, build_auth

SECRET = "s3cr3t-t0ken-value"


def _authorization(mock: respx.MockRouter, config: AuthConfig) -> str:
    route = mock.get(f"{BASE}/Patient/p1").respond(200, json={"resourceType": "Patient", "id": "p1"})
    with FhirClient(BASE, auth=build_auth(config, BASE)) as client:
        client.read("Patient", "p1")
    return route.calls.last.request.headers["Authorization"]


def test_none_builds_no_auth(mock: respx.MockRouter) -> None:
    assert build_auth(AuthConfig(), BASE) is None
    route = mock.get(f"{BASE}/metadata").respond(200, json={"resourceType": "CapabilityStatement"})
    with FhirClient(BASE, auth=None) as client:
        client.capabilities()
    assert "Authorization" not in route.calls.last.request.headers


def test_bearer_from_env(mock: respx.MockRouter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EHR_TOKEN", SECRET + "\n")
    assert _authorization(mock, AuthConfig(type="bearer", token_env="EHR_TOKEN")) == f"Bearer {SECRET}"


def test_bearer_from_file(mock: respx.MockRouter, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(SECRET + "\n")
    assert _authorization(mock, AuthConfig(type="bearer", token_file=str(token_file))) == f"Bearer {SECRET}"


def test_basic_from_env(mock: respx.MockRouter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EHR_PASSWORD", SECRET)
    header = _authorization(mock, AuthConfig(type="basic", username="bridge", password_env="EHR_PASSWORD"))
    assert header == "Basic " + base64.b64encode(f"bridge:{SECRET}".encode()).decode()


def test_basic_from_file(mock: respx.MockRouter, tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(SECRET)
    config = AuthConfig(type="basic", username="bridge", password_file=str(password_file))
    header = _authorization(mock, config)
    assert base64.b64decode(header.removeprefix("Basic ")).decode() == f"bridge:{SECRET}"


def test_bearer_401_is_auth_error_without_retry(
    mock: respx.MockRouter, monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    monkeypatch.setenv("EHR_TOKEN", SECRET)
    route = mock.get(f"{BASE}/Patient/p1").respond(401, text=f"bad token {SECRET}")
    auth = build_auth(AuthConfig(type="bearer", token_env="EHR_TOKEN"), BASE)
    with FhirClient(BASE, auth=auth) as client, pytest.raises(FhirAuthError) as caught:
        client.read("Patient", "p1")
    assert route.call_count == 1
    assert caught.value.status_code == 401
    assert SECRET not in str(caught.value)


def test_missing_env_var_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EHR_TOKEN_MISSING", raising=False)
    with pytest.raises(FhirFatalError, match=r"environment variable EHR_TOKEN_MISSING .* is not set"):
        build_auth(AuthConfig(type="bearer", token_env="EHR_TOKEN_MISSING"), BASE)


def test_empty_env_var_is_refused_and_value_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EHR_PASSWORD", "   ")
    with pytest.raises(FhirFatalError, match=r"EHR_PASSWORD .* is empty"):
        build_auth(AuthConfig(type="basic", username="u", password_env="EHR_PASSWORD"), BASE)


def test_missing_secret_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "token"
    with pytest.raises(FhirFatalError, match=f"file {missing}"):
        build_auth(AuthConfig(type="bearer", token_file=str(missing)), BASE)


def test_secret_pasted_into_env_field_is_refused_without_echo() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        AuthConfig(type="bearer", token_env="eyJhbGciOi.secret-token")
    assert "NAME of an environment variable" in str(caught.value)
    assert "secret-token" not in str(caught.value)
    # Instances that skipped validation are still checked before use, again without echo.
    with pytest.raises(FhirFatalError) as fatal:
        build_auth(AuthConfig.model_construct(type="bearer", token_env="eyJhbGciOi.secret-token"), BASE)
    assert "secret-token" not in str(fatal.value)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"type": "bearer"}, ["bearer auth needs exactly one of auth.token_env or auth.token_file"]),
        (
            {"type": "bearer", "token_env": "A", "token_file": "/b"},
            ["bearer auth needs exactly one of auth.token_env or auth.token_file"],
        ),
        ({"type": "basic", "password_env": "P"}, ["basic auth needs auth.username"]),
        (
            {"type": "smart", "client_id": "c"},
            ["smart auth needs auth.private_key_file", "smart auth needs auth.kid"],
        ),
        (
            {"type": "smart", "client_id": "c", "private_key_file": "/k", "kid": "k", "token_url": "ftp://x"},
            ["auth.token_url must be an http(s) URL"],
        ),
    ],
)
def test_incomplete_config_is_rejected_per_type(fields: dict[str, str], expected: list[str]) -> None:
    assert AuthConfig.model_construct(**fields).problems() == expected  # type: ignore[arg-type]
    with pytest.raises(pydantic.ValidationError) as caught:
        AuthConfig.model_validate(fields)
    assert [e["msg"] for e in caught.value.errors()] == ["Value error, " + "; ".join(expected)]


def test_complete_configs_validate() -> None:
    assert AuthConfig().problems() == []
    assert AuthConfig(type="bearer", token_file="/run/secrets/ehr").problems() == []
    assert AuthConfig(type="smart", client_id="c", private_key_file="/k.pem", kid="k").problems() == []


def test_validate_complete_lists_every_problem() -> None:
    with pytest.raises(FhirFatalError) as caught:
        AuthConfig.model_construct(type="smart").validate_complete()
    message = str(caught.value)
    assert message.startswith("incomplete FHIR auth config (type=smart)")
    for field in ("client_id", "private_key_file", "kid"):
        assert f"auth.{field}" in message


def test_config_refuses_unknown_keys_without_echo() -> None:
    # Catches typos and attempts to put a secret straight into the config.
    with pytest.raises(pydantic.ValidationError) as caught:
        AuthConfig.model_validate({"type": "bearer", "token_env": "T", "token": SECRET})
    assert "token" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_smart_defaults() -> None:
    config = AuthConfig(type="smart", client_id="c", private_key_file="/k.pem", kid="k")
    assert config.alg == "RS384"
    assert config.scope.split() == [
        "system/Patient.rs",
        "system/Encounter.rs",
        "system/Condition.rs",
        "system/Observation.rs",
        "system/RelatedPerson.rs",
    ]
