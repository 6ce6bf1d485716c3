"""The webhook limits a body while it streams: a declared Content-Length over the limit is refused
before anything is read, a chunked body at the first chunk past the limit, never read whole.

Fast tests drive the app in process (ASGITransport pulls each chunk only when the app asks for
it, so the tests can count what was read); one slow test sends a 20 MB chunked body to a real
uvicorn process and watches its memory.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from discharge_bridge.app import create_app
from discharge_bridge.config import Settings
from discharge_bridge.db import make_engine, session_scope
from discharge_bridge.subscriptions.models import SourceSubscription, SubscriptionKind, SubscriptionStatus
from tests.subscriptions.conftest import HEADERS, SECRET, SECRET_ENV, Subscribe
from tests.support.db import migrated_sqlite
from tests.support.factories import make_source
from tests.support.fakefhir import encounter

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 1000
CHUNK = 100

sqlite_only = pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> int:
    monkeypatch.setattr(settings, "webhook_max_body_bytes", LIMIT)
    return LIMIT


@dataclass
class Sent:
    """What the app pulled of a streamed request body."""

    chunks: int = 0

    async def body(self, total: int, chunk: int = CHUNK) -> AsyncIterator[bytes]:
        for start in range(0, total, chunk):
            self.chunks += 1
            yield b" " * min(chunk, total - start)


def _post(settings: Settings, path: str, content: AsyncIterator[bytes], headers: dict[str, str]) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://bridge.test") as client:
            return await client.put(path, content=content, headers=headers)

    return asyncio.run(run())


@sqlite_only
def test_declared_length_over_the_limit_is_refused_before_reading(
    subscribe: Subscribe, settings: Settings, small_limit: int
) -> None:
    subscribe()
    sent = Sent()
    headers = {**HEADERS, "Content-Length": str(small_limit * 20)}
    response = _post(settings, "/webhooks/city/Encounter/e1", sent.body(small_limit * 20), headers)
    assert response.status_code == 413
    assert sent.chunks == 0


@sqlite_only
def test_chunked_body_over_the_limit_stops_at_the_limit(
    subscribe: Subscribe, settings: Settings, small_limit: int
) -> None:
    subscribe()
    sent = Sent()
    response = _post(settings, "/webhooks/city/Encounter/e1", sent.body(small_limit * 100), dict(HEADERS))
    assert response.status_code == 413
    assert "too large" in response.text
    assert sent.chunks == small_limit // CHUNK + 1  # the chunk that crossed the limit, not one more


@sqlite_only
@pytest.mark.parametrize("chunked", [True, False])
def test_a_body_of_exactly_the_limit_is_read_and_accepted(
    subscribe: Subscribe, settings: Settings, small_limit: int, chunked: bool
) -> None:
    subscribe()
    resource = orjson.dumps(encounter("e1", "p1"))
    padded = resource + b" " * (small_limit - len(resource))  # trailing whitespace is valid JSON

    async def body() -> AsyncIterator[bytes]:
        for start in range(0, len(padded), CHUNK):
            yield padded[start : start + CHUNK]

    headers = dict(HEADERS) if chunked else {**HEADERS, "Content-Length": str(len(padded))}
    response = _post(settings, "/webhooks/city/Encounter/e1", body(), headers)
    assert response.status_code == 200, response.text
    over = _post(settings, "/webhooks/city/Encounter/e1", Sent().body(small_limit + 1), dict(HEADERS))
    assert over.status_code == 413


@sqlite_only
def test_test_client_sees_413_for_both_framings(subscribe: Subscribe, webhook: TestClient, small_limit: int) -> None:
    subscribe()
    too_big = b" " * (small_limit + 1)
    assert webhook.post("/webhooks/city", content=too_big, headers=HEADERS).status_code == 413

    def chunks() -> Iterator[bytes]:
        yield from (too_big[i : i + CHUNK] for i in range(0, len(too_big), CHUNK))

    assert webhook.post("/webhooks/city", content=chunks(), headers=HEADERS).status_code == 413


@sqlite_only
def test_the_secret_is_checked_before_any_body_is_read(settings: Settings, subscribe: Subscribe) -> None:
    subscribe()
    sent = Sent()
    response = _post(settings, "/webhooks/city/Encounter/e1", sent.body(10 * LIMIT), {"X-Other": "1"})
    assert response.status_code == 401
    assert sent.chunks == 0


# -- a real server -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class WebhookServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def memory_kib(self, field: str) -> int:
        """VmRSS (resident now) or VmHWM (peak resident since the last ``reset_peak``) of the server."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} for {self.process.pid}")

    def reset_peak(self) -> None:
        # A freed 20 MB buffer goes back to the OS at once, so VmRSS after the request says little:
        # the peak does. Writing 5 to clear_refs resets VmHWM to the current RSS (Linux 4.0+).
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_webhook_server(data_dir: Path, *, limit: int | None = None, src: Path = ROOT / "src") -> WebhookServer:
    """A subscribed source in a fresh SQLite file, served by uvicorn in its own process (as `serve` runs it).

    ``limit`` replaces the webhook's body limit in the server process; ``src`` is the code it runs.
    """
    settings = migrated_sqlite(data_dir)
    engine = make_engine(settings.sqlalchemy_url)
    with session_scope(engine) as session:
        source = make_source(session)
        assert source.id is not None
        session.add(
            SourceSubscription(
                source_id=source.id,
                kind=SubscriptionKind.classic,
                criteria="Encounter?class=IMP",
                endpoint="http://127.0.0.1/webhooks/city",
                secret_env=SECRET_ENV,
                status=SubscriptionStatus.active,
            )
        )
    engine.dispose()
    port = _free_port()
    env = {
        **os.environ,
        "DISCHARGE_BRIDGE_DATA_DIR": str(data_dir),
        SECRET_ENV: SECRET,
        "PYTHONPATH": str(src),
    }
    env.pop("DISCHARGE_BRIDGE_DATABASE_URL", None)
    env.pop("DISCHARGE_BRIDGE_API_TOKEN", None)
    if limit:
        env["DISCHARGE_BRIDGE_WEBHOOK_MAX_BODY_BYTES"] = str(limit)
    code = (
        "import uvicorn; from discharge_bridge.app import create_app; "
        "from discharge_bridge.logs import uvicorn_log_config; "
        f"uvicorn.run(create_app(), host='127.0.0.1', port={port}, log_level='warning', "
        "log_config=uvicorn_log_config(), access_log=False)"
    )
    log = data_dir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=out, stderr=subprocess.STDOUT)
    server = WebhookServer(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 60  # generous: the machine may be busy with other tests
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError("the server did not answer /healthz within 60 s")


def chunked_body(total: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    block = b" " * chunk
    for start in range(0, total, chunk):
        yield block[: min(chunk, total - start)]


def send_chunked(server: WebhookServer, total: int) -> httpx.Response:
    """PUT a `total`-byte body with Transfer-Encoding: chunked (a generator body has no length)."""
    with httpx.Client(base_url=server.base_url, headers=HEADERS, timeout=60) as client:
        return client.put("/webhooks/city/Encounter/e1", content=chunked_body(total))


def measure(server: WebhookServer, total: int) -> tuple[int, int, int, int]:
    """(status, VmRSS before, VmRSS after, peak VmHWM) in KiB around one chunked upload of `total` bytes."""
    # Warm up the paths the measured request takes (imports, the DB connection, the threadpool).
    for _ in range(2):
        send_chunked(server, 256 * 1024)
    server.reset_peak()
    before = server.memory_kib("VmRSS")
    response = send_chunked(server, total)
    return response.status_code, before, server.memory_kib("VmRSS"), server.memory_kib("VmHWM")


@pytest.fixture
def webhook_server(tmp_path: Path) -> Iterator[WebhookServer]:
    server = start_webhook_server(tmp_path / "data", limit=128 * 1024)
    yield server
    server.stop()


@pytest.mark.slow
def test_a_20_mb_chunked_body_gets_413_without_growing_the_server(webhook_server: WebhookServer) -> None:
    status, before, after, peak = measure(webhook_server, 20 * 2**20)
    assert status == 413
    assert peak - before < 4 * 1024, f"peak VmRSS {peak} KiB, {before} KiB before the request"
    assert after - before < 4 * 1024, f"VmRSS grew from {before} KiB to {after} KiB"
    # the server still reads small bodies as usual (this one is refused for what it says, not its size)
    with httpx.Client(base_url=webhook_server.base_url, headers=HEADERS, timeout=10) as client:
        refused = client.post("/webhooks/city", content=b"{broken")
    assert refused.status_code == 400 and "not a notification" in refused.text
