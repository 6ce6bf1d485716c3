"""``discharge-bridge worker``: one of N processes that share the sources by lease (scheduling/workers.py)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import orjson
import typer

from discharge_bridge.cli.common import err, ready_database
from discharge_bridge.config import get_settings
from discharge_bridge.logs import configure_logging
from discharge_bridge.scheduling.workers import PassRecord, Worker

app = typer.Typer()


@app.command("worker")
def worker_cmd(
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1, max=64, help="Sources this process polls at once (default: DISCHARGE_BRIDGE_WORKER_CONCURRENCY)."
        ),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Exit when no source is due and the queue is drained.")] = False,
    record: Annotated[
        Path | None,
        typer.Option(help="Append one JSON line per pass (source, worker, started_at, finished_at) to this file."),
    ] = None,
) -> None:
    """Poll the sources that are due, each held by one worker at a time, and drain the assessment queue.

    Run several on one PostgreSQL database with DISCHARGE_BRIDGE_POLL_BY=workers, beside one
    `discharge-bridge scheduler` (which then leaves polling to the workers). SIGTERM or SIGINT: no
    new source is taken, the passes in hand finish and release theirs.
    """
    settings = get_settings()
    ready_database()
    configure_logging(settings)

    def write(line: PassRecord) -> None:
        assert record is not None
        with record.open("ab") as out:  # one short line per write: whole even with other writers
            out.write(orjson.dumps(line) + b"\n")

    worker = Worker(settings, concurrency=concurrency, on_pass=write if record else None)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop())
    if settings.poll_by != "workers":
        err.print(
            "warning: DISCHARGE_BRIDGE_POLL_BY is not 'workers': a scheduler on this database polls the sources too",
            highlight=False,
        )
    err.print(
        f"worker {worker.holder}: {worker.concurrency} at a time, lease {settings.worker_lease_seconds} s, "
        f"on {settings.sqlalchemy_url.split('@')[-1]}",
        highlight=False,
    )
    passes = worker.run(once=once)
    err.print(f"worker stopped after {passes} passes", highlight=False)
