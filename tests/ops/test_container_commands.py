"""The commands the containers run (deploy/compose.yaml and deploy/k8s/base agree on them), run as
processes against the test PostgreSQL with the ConfigMap's settings: the migrations to completion,
then the web service (up at once, ready only once a scheduler beats), the scheduler (the web service
turns ready), a worker (it polls a hospital), each stopped by SIGTERM with a clean exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlmodel import Session, func, select

from discharge_bridge.db import alembic_config, make_engine
from discharge_bridge.ingest.models import EncounterSnapshot
from tests.assessment.crash import add_file_source, write_hospital
from tests.support.clock import child_env
from tests.support.deploy import compose_commands, compose_config, kubernetes_commands, kubernetes_settings
from tests.support.postgres import PostgresServer, free_port

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
CLI = str(Path(sys.executable).with_name("discharge-bridge"))


def _until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def _env(url: str, tmp_path: Path) -> dict[str, str]:
    """The ConfigMap's settings, on the test's database (no password: the test server trusts
    loopback), with file sources allowed under the test's folder."""
    env = {k: v for k, v in child_env().items() if not k.startswith("DISCHARGE_BRIDGE_")}
    env.update(kubernetes_settings())
    env.update(
        DISCHARGE_BRIDGE_DATABASE_URL=url,
        DISCHARGE_BRIDGE_DATA_DIR=str(tmp_path / "data"),
        DISCHARGE_BRIDGE_IMPORT_ROOTS=str(tmp_path),
        COLUMNS="200",
    )
    return env


def _on_loopback(command: list[str], port: int) -> list[str]:
    """The web command as the containers run it, but on 127.0.0.1 (tests never bind more)."""
    assert command[command.index("--host") + 1] == "0.0.0.0"
    local = list(command)
    local[local.index("--host") + 1] = "127.0.0.1"
    local[local.index("--port") + 1] = str(port)
    return local


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _healthcheck(port: int) -> int:
    """compose.yaml's health check of the web service, on the test's port, by this interpreter."""
    command = compose_config()["services"]["web"]["healthcheck"]["test"]
    assert command[:3] == ["CMD", "python", "-c"] and ":8000/healthz" in command[3]
    done = subprocess.run(
        [sys.executable, "-c", command[3].replace(":8000/", f":{port}/")], capture_output=True, timeout=30
    )
    return done.returncode


def _stop(proc: subprocess.Popen[bytes], log: Path, *, resignals: bool = False) -> str:
    """SIGTERM, then a clean exit: 0, or (``resignals``: uvicorn, once shut down gracefully, raises the
    signal it caught again for whoever handles it next) the signal itself. As a container's PID 1,
    whose signals without a handler are ignored, that process then exits 0 too."""
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(60)
    text = log.read_text()
    assert code == 0 or (resignals and code == -signal.SIGTERM), text
    return text


def test_the_containers_commands_run_migrate_web_scheduler_and_worker(
    postgres_server: PostgresServer, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    commands = kubernetes_commands()
    assert commands == compose_commands()
    name = postgres_server.create_database()  # empty: the migrations build it
    url = postgres_server.url(name)
    env = _env(url, tmp_path)

    def start(role: str, command: list[str]) -> tuple[subprocess.Popen[bytes], Path]:
        log = tmp_path / f"{role}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([CLI, *command], env=env, stdout=out, stderr=subprocess.STDOUT)
        processes.append(proc)
        return proc, log

    # The migrations, to completion; again, as a re-run Job would, with nothing left to do.
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    for _ in range(2):
        done = subprocess.run([CLI, *commands["migrate"]], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"schema at revision {head}" in done.stdout

    port = free_port()
    web, web_log = start("web", _on_loopback(commands["web"], port))
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            assert web.poll() is None, web_log.read_text()
            return False

    _until(answers, "the web service's /healthz")
    assert _healthcheck(port) == 0
    waiting = httpx.get(f"{base}/readyz", timeout=5)
    assert waiting.status_code == 503 and waiting.json()["scheduler"] == "missing", waiting.text

    scheduler, scheduler_log = start("scheduler", commands["scheduler"])
    _until(lambda: httpx.get(f"{base}/readyz", timeout=5).status_code == 200, "/readyz once the scheduler beats")
    assert httpx.get(f"{base}/readyz", timeout=5).json() == {
        "status": "ok",
        "database": "ok",
        "scheduler": "ok",
        "scheduler_heartbeat_age_seconds": pytest.approx(0, abs=60),
    }

    engine = make_engine(url)
    try:
        write_hospital(tmp_path / "city", 60)
        add_file_source(engine, tmp_path / "city")
        worker, worker_log = start("worker", commands["worker"])

        def stored() -> int:
            assert worker.poll() is None, worker_log.read_text()
            with Session(engine) as session:
                return int(session.exec(select(func.count()).select_from(EncounterSnapshot)).one())

        _until(lambda: stored() > 0, "the worker to poll the hospital")
    finally:
        engine.dispose()

    assert "worker stopped after 1 passes" in _stop(worker, worker_log)
    assert "scheduler stopped" in _stop(scheduler, scheduler_log)
    assert "Finished server process" in _stop(web, web_log, resignals=True)
    assert _healthcheck(port) != 0
    assert os.environ.get("DISCHARGE_BRIDGE_POLL_BY") is None  # the setting reached the children only
