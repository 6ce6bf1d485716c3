"""Running the service: the web process, the demo, and the scheduler process."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from discharge_bridge.cli.common import console, err, ready_database
from discharge_bridge.config import Settings, get_settings
from discharge_bridge.demo import DEMO_USERS, demo_password, prepare_demo
from discharge_bridge.logs import configure_logging, uvicorn_log_config
from discharge_bridge.scheduling.runner import SchedulerRunner

app = typer.Typer()


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    scheduler: Annotated[
        bool,
        typer.Option(
            "--scheduler/--no-scheduler",
            help="Also run the scheduler in this process (it waits while another process leads). "
            "--no-scheduler for web replicas beside one `discharge-bridge scheduler`.",
        ),
    ] = True,
) -> None:
    """Run the web service (and, unless --no-scheduler, the scheduled jobs) on the configured database."""
    import uvicorn

    settings = get_settings()
    ready_database()
    configure_logging(settings)
    runner = _background_scheduler(settings) if scheduler else None
    try:
        # uvicorn's access log prints raw paths and query strings: ours logs route templates instead.
        uvicorn.run(
            web_app(settings),
            host=host,
            port=port,
            log_level=settings.log_level.lower(),
            log_config=uvicorn_log_config(),
            access_log=False,
            proxy_headers=True,
        )
    finally:
        if runner is not None:
            runner.stop(wait=5)


def _print_demo_welcome(settings: Any, port: int) -> None:

    token = settings.api_token.get_secret_value() if settings.api_token else ""
    console.print(f"\n  discharge_bridge demo at [bold]http://127.0.0.1:{port}/[/bold]  (API docs: /docs)")
    console.print(f"  sign in with password [bold]{demo_password(settings)}[/bold] as:")
    for username, name, role in DEMO_USERS:
        console.print(f"    [bold]{username:<7}[/bold] {role.value:<12} {name}")
    console.print(  # soft_wrap: a wrapped token would not survive copy and paste
        f"  API (admin service token): curl -H 'Authorization: Bearer {token}' http://127.0.0.1:{port}/api/v1/sources\n",
        soft_wrap=True,
    )


@app.command("demo")
def demo(
    port: Annotated[int, typer.Option(help="Port to listen on (127.0.0.1).")] = 8000,
    load_only: Annotated[bool, typer.Option("--load-only", help="Load the demo hospital and exit.")] = False,
) -> None:
    """Start on the embedded default: SQLite in the data folder and the bundled demo hospital."""
    import uvicorn

    settings, result = prepare_demo(get_settings())
    console.print(
        f"demo hospital loaded: {result.fetched} resources ({result.created} new), "
        f"{result.dead_letters} dead letters, database {settings.sqlalchemy_url}"
    )
    if load_only:
        return

    configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    _print_demo_welcome(settings, port)
    runner = _background_scheduler(settings)
    try:
        uvicorn.run(
            web_app(settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            log_config=uvicorn_log_config(),
            access_log=False,
        )
    finally:
        runner.stop(wait=5)


def _background_scheduler(settings: Any) -> Any:
    """The scheduler in a thread of this process, behind the same leader lock as `scheduler`."""

    runner = SchedulerRunner(settings)
    runner.start_in_thread()
    return runner


@app.command("scheduler")
def scheduler_cmd() -> None:
    """Run the scheduled jobs in the foreground: polling, morning worklists, escalation, re-scoring.

    Only one scheduler leads per database (a PostgreSQL advisory lock; a lock file on SQLite): a
    second one waits and takes over when the first stops or dies.
    """
    import signal

    settings = get_settings()
    ready_database()
    configure_logging(settings)
    runner = SchedulerRunner(settings, say=lambda text: err.print(text, highlight=False))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: runner.stop())
    err.print(f"scheduler {runner.holder}: taking the leader lock on {settings.sqlalchemy_url.split('@')[-1]}")
    runner.run()
    err.print("scheduler stopped")


def web_app(settings: Settings) -> Any:
    """The web application, for the commands that serve it."""
    # Imported here, not at the top: the web app (FastAPI, every router and page) adds a second or
    # more to the start of every other command (`sync`, `sources list`...), which do without it.
    from discharge_bridge.app import create_app

    return create_app(settings)
