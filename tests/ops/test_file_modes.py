"""The files the service writes are its own user's only: database, WAL, SHM, lock file, demo secrets."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from discharge_bridge.db import make_engine
from tests.support.clock import child_env

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).parent / "discharge-bridge"
DB = "discharge_bridge.db"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_a_real_start_writes_every_file_for_its_own_user_only(tmp_path: Path) -> None:
    """`discharge-bridge demo` started the way an operator would, with the usual umask 022."""
    data = tmp_path / "data"
    port = _free_port()
    env = {**child_env(), "DISCHARGE_BRIDGE_DATA_DIR": str(data), "PYTHONPATH": str(ROOT / "src")}
    for name in ("DISCHARGE_BRIDGE_DATABASE_URL", "DISCHARGE_BRIDGE_API_TOKEN"):
        env.pop(name, None)
    log = (tmp_path / "demo.log").open("wb")
    process = subprocess.Popen(
        [str(CLI), "demo", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT, umask=0o022
    )
    wanted = [data / DB, data / f"{DB}-wal", data / f"{DB}-shm", data / f"{DB}.scheduler.lock"]
    wanted += [data / "demo-password", data / "demo-api-token"]
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "demo.log").read_text()[-2000:]
            try:
                up = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                up = False
            if up and all(p.exists() for p in wanted):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"not all of {wanted} appeared: {sorted(p.name for p in data.iterdir())}")
        modes = {p.name: oct(mode(p)) for p in [data, *wanted]}
        assert modes == {p.name: oct(0o700 if p == data else 0o600) for p in [data, *wanted]}
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def test_a_database_left_readable_by_an_older_version_is_narrowed_when_opened(tmp_path: Path) -> None:
    path = tmp_path / DB
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        conn.commit()
        wal = Path(f"{path}-wal")
        assert wal.exists()
        for file in (path, wal):
            os.chmod(file, 0o644)
        make_engine(f"sqlite:///{path}").dispose()  # another process (or a restart) opens it
        assert (mode(path), mode(wal)) == (0o600, 0o600)
    engine.dispose()
