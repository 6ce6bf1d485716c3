"""deploy/ checked without a Docker engine or a cluster: hadolint on the Dockerfile, `docker compose
config` (the Compose specification's schema) on compose.yaml, the Kubernetes API's schemas on every
manifest kustomize renders, and what matters beyond a schema: a non-root user, the probes' paths,
migrations as their own Job and service, the same command per role everywhere, settings that exist.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from pydantic import ValidationError

from discharge_bridge.config import Settings
from tests.support.deploy import (
    BASE,
    DEPLOY,
    ROLES,
    ROOT,
    compose_commands,
    compose_config,
    compose_config_run,
    kubernetes_commands,
    kubernetes_resources,
    kubernetes_settings,
    pod_templates,
    resource,
    stages,
    tool,
)

UID = 10001


def _final_stage() -> list[tuple[str, str]]:
    return stages()[-1]


def _instructions(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [rest for kw, rest in stage if kw == keyword]


def test_the_dockerfile_passes_hadolint() -> None:
    done = subprocess.run(
        [tool("hadolint"), "--no-color", "--failure-threshold", "style", "--disable-ignore-pragma", "-"],
        input=(DEPLOY / "Dockerfile").read_text(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr


def test_hadolint_would_catch_a_bad_dockerfile() -> None:
    """The check is live: an unpinned base and root's apt-get without versions fail it."""
    done = subprocess.run(
        [tool("hadolint"), "--no-color", "--failure-threshold", "style", "-"],
        input="FROM python:latest\nRUN apt-get install gcc\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "DL3007" in done.stdout and "DL3008" in done.stdout


def test_the_image_builds_wheels_apart_and_runs_them_as_a_fixed_non_root_user() -> None:
    builder, final = stages()
    for stage in (builder, final):  # the base pinned to a patch release of 3.11's slim image
        assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+( AS \w+)?", stage[0][1]), stage[0][1]
    assert any(run.startswith("pip wheel --wheel-dir /wheels") for run in _instructions(builder, "RUN"))
    runs = " ".join(_instructions(final, "RUN"))
    assert "from=builder" in runs and "pip install --no-index /wheels/" in runs
    # Nothing that compiles reaches the final image: no package manager run, no toolchain named.
    assert not re.search(r"apt-get|apk |gcc|build-essential|\bmake\b", runs)
    assert f"useradd --system --uid {UID} --gid {UID}" in runs
    assert _instructions(final, "USER") == [f"{UID}:{UID}"]
    assert [json.loads(e) for e in _instructions(final, "ENTRYPOINT")] == [["discharge-bridge"]]
    (cmd,) = [json.loads(c) for c in _instructions(final, "CMD")]
    assert cmd[0] == "serve" and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert _instructions(final, "EXPOSE") == [cmd[cmd.index("--port") + 1]]


def test_the_build_context_holds_only_what_the_image_copies() -> None:
    """.dockerignore is an allowlist: the virtualenv, .git, data/ (databases, the demo's secrets) and
    deploy/.env stay out, and every file the Dockerfile copies from the context is let in."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = set()
    for stage in stages():
        for rest in _instructions(stage, "COPY"):
            if not rest.startswith("--from"):
                copied.update(shlex.split(rest)[:-1])
    assert copied == allowed
    assert not allowed & {".venv", ".git", "data", "deploy", "tests"}
    assert all((ROOT / path).exists() for path in allowed)


def test_compose_runs_migrations_first_then_web_workers_and_one_scheduler() -> None:
    services = compose_config()["services"]
    assert set(services) == {"postgres", *ROLES}
    postgres = services["postgres"]
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert any(v["target"] == "/var/lib/postgresql/data" and v["type"] == "volume" for v in postgres["volumes"])
    migrate = services["migrate"]
    assert migrate["command"] == ["db", "upgrade"] and migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker", "scheduler"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        assert services[name]["restart"] == "unless-stopped"
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["scheduler"].get("deploy", {}).get("replicas", 1) == 1
    (port,) = services["web"]["ports"]
    assert port["host_ip"] == "127.0.0.1" and port["target"] == 8000
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    for name in ROLES:
        service = services[name]
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name


def test_compose_config_would_catch_a_misspelt_key_or_a_missing_secret() -> None:
    compose = (DEPLOY / "compose.yaml").read_text()
    env = (DEPLOY / "compose.env.example").read_text()
    assert "stop_grace_period: 2m" in compose
    misspelt = compose_config_run(compose.replace("stop_grace_period: 2m", "stop_grace_periods: 2m", 1), env)
    assert misspelt.returncode != 0 and "stop_grace_periods" in misspelt.stderr
    no_password = compose_config_run(compose, env.replace("PGPASSWORD=", "# PGPASSWORD="))
    assert no_password.returncode != 0 and "set PGPASSWORD" in no_password.stderr


def test_compose_keeps_secrets_in_the_env_file() -> None:
    """compose.yaml names no secret's value: the database password comes from deploy/.env (to
    PostgreSQL by interpolation, to the containers by env_file), and the URL carries no password."""
    raw = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    app = raw["x-app"]
    assert app["env_file"] == ".env"
    assert not {"PGPASSWORD", "DISCHARGE_BRIDGE_API_TOKEN"} & set(app["environment"])
    assert raw["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${PGPASSWORD:?")
    assert urlsplit(app["environment"]["DISCHARGE_BRIDGE_DATABASE_URL"]).password is None
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / "compose.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert set(example) == {"PGPASSWORD", "DISCHARGE_BRIDGE_API_TOKEN"}
    resolved = compose_config()["services"]
    assert resolved["web"]["environment"]["PGPASSWORD"] == resolved["postgres"]["environment"]["POSTGRES_PASSWORD"]


def test_the_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    files = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    assert len(kubernetes_resources()) == len(files)


def test_every_rendered_manifest_is_valid_for_the_kubernetes_api() -> None:
    version = kubernetes_validate.latest_version()
    for manifest in kubernetes_resources():
        kubernetes_validate.validate(manifest, version, strict=True)  # raises on an unknown or wrong field
    kinds = sorted(r["kind"] for r in kubernetes_resources())
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "Deployment", "Job", "Secret", "Service"]


def test_the_schema_check_would_catch_a_misspelt_field() -> None:
    broken = json.loads(json.dumps(resource("Deployment", "discharge-bridge-web")))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_pods_run_as_the_image_user_read_only_without_capabilities() -> None:
    names = {(r["kind"], r["metadata"]["name"]) for r in kubernetes_resources()}
    pods = pod_templates()
    assert set(pods) == set(ROLES)
    for component, pod in pods.items():
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] == UID, component
        assert pod["automountServiceAccountToken"] is False, component
        # Service links would add DISCHARGE_BRIDGE_WEB_* variables, under the settings' prefix.
        assert pod["enableServiceLinks"] is False, component
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = pod["containers"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"], component
        tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert len(tmp) == 1 and "emptyDir" in volumes[tmp[0]["name"]], component
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}, (component, kind)
        refs = {
            ("ConfigMap", e["configMapRef"]["name"]) if "configMapRef" in e else ("Secret", e["secretRef"]["name"])
            for e in container["envFrom"]
        }
        assert refs == {("ConfigMap", "discharge-bridge-settings"), ("Secret", "discharge-bridge-secrets")}
        assert refs <= names, component


def test_web_pods_are_probed_on_healthz_and_served_by_the_service() -> None:
    """Readiness is /healthz, not /readyz: /readyz fails while the scheduler is away, which would take
    every web pod out of the Service at once (deploy/README.md)."""
    (container,) = pod_templates()["web"]["containers"]
    (port,) = container["ports"]
    args = container["args"]
    assert port["containerPort"] == int(args[args.index("--port") + 1]) and args[args.index("--host") + 1] == "0.0.0.0"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": port["name"]}, probe
    (service,) = [r for r in kubernetes_resources() if r["kind"] == "Service"]
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]
    web = resource("Deployment", "discharge-bridge-web")
    assert service["spec"]["selector"] == web["spec"]["selector"]["matchLabels"]


def test_migrations_run_as_a_job_and_one_scheduler_leads() -> None:
    job = resource("Job", "discharge-bridge-migrate")
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert kubernetes_commands()["migrate"] == ["db", "upgrade"]
    assert resource("Deployment", "discharge-bridge-scheduler")["spec"]["replicas"] == 1
    assert resource("Deployment", "discharge-bridge-worker")["spec"]["replicas"] >= 2
    for component in ("web", "worker", "scheduler"):
        assert kubernetes_commands()[component][:2] != ["db", "upgrade"]


def test_compose_and_kubernetes_run_the_same_command_for_each_role() -> None:
    assert compose_commands() == kubernetes_commands()
    assert "--no-scheduler" in kubernetes_commands()["web"]


def test_the_secret_holds_the_credentials_and_the_config_map_none() -> None:
    (secret,) = [r for r in kubernetes_resources() if r["kind"] == "Secret"]
    assert set(secret["stringData"]) == {"PGPASSWORD", "DISCHARGE_BRIDGE_API_TOKEN"}
    settings = kubernetes_settings()
    assert not {"PGPASSWORD", "DISCHARGE_BRIDGE_API_TOKEN"} & set(settings)
    assert urlsplit(settings["DISCHARGE_BRIDGE_DATABASE_URL"]).password is None


def _named_settings() -> set[str]:
    """Every DISCHARGE_BRIDGE_NAME the deploy files write (a pattern like DISCHARGE_BRIDGE_WEB_* is no name)."""
    names = set()
    for path in [*DEPLOY.rglob("*"), ROOT / ".dockerignore"]:
        if path.is_file():
            names.update(re.findall(r"\bDISCHARGE_BRIDGE_([A-Z][A-Z0-9_]*)(?![A-Z0-9_*])", path.read_text()))
    return names


def test_every_setting_the_deploy_files_name_exists() -> None:
    named = _named_settings()
    assert {"DATABASE_URL", "API_TOKEN", "POLL_BY"} <= named
    assert sorted(n for n in named if n.lower() not in Settings.model_fields) == []


def _env_of(instructions: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in instructions:
        for item in shlex.split(rest):
            name, _, value = item.partition("=")
            env[name] = value
    return env


def test_the_settings_the_deploy_files_set_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The image's, the ConfigMap's and compose's values parse as settings (a typo in a value fails)."""
    compose_env = compose_config()["services"]["web"]["environment"]
    sources: list[dict[str, Any]] = [_env_of(_instructions(_final_stage(), "ENV")), kubernetes_settings(), compose_env]
    for env in sources:
        for name, value in env.items():
            if name.startswith("DISCHARGE_BRIDGE_"):
                monkeypatch.setenv(name, str(value))
        if env.get("DISCHARGE_BRIDGE_API_TOKEN") is not None:  # the example's placeholder: refused as it stands
            with pytest.raises(ValidationError, match="placeholder"):
                Settings(_env_file=None)  # type: ignore[call-arg]
            monkeypatch.setenv("DISCHARGE_BRIDGE_API_TOKEN", "set-by-the-operator-Xq3")
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        for name, value in env.items():
            if name.startswith("DISCHARGE_BRIDGE_") and name != "DISCHARGE_BRIDGE_API_TOKEN":
                field = name.removeprefix("DISCHARGE_BRIDGE_").lower()
                parsed = getattr(settings, field)
                if isinstance(parsed, float):  # "15" is 15.0
                    assert parsed == float(value), name
                else:
                    assert str(parsed).lower() == str(value).lower(), name


def test_the_image_settings_point_where_the_image_puts_things() -> None:
    final = _final_stage()
    env = _env_of(_instructions(final, "ENV"))
    copies = [shlex.split(rest) for rest in _instructions(final, "COPY")]
    assert ["mappings", env["DISCHARGE_BRIDGE_MAPPINGS_DIR"]] in copies
    runs = " ".join(_instructions(final, "RUN"))
    assert f"install -d -o {UID} -g {UID} -m 0700 {env['DISCHARGE_BRIDGE_DATA_DIR']}" in runs
    assert Path(env["DISCHARGE_BRIDGE_DATA_DIR"]).is_absolute()
