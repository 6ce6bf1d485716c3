"""Prometheus metrics: request latency by route template, and the service's state read at scrape.

Nothing runs in the background: ``GET /metrics`` builds a registry for the request, whose collector
queries the database (grouped by source, so one scrape costs a handful of queries however many
hospitals there are) and sees only the caller's hospitals. The latency histogram lives on the app
and is recorded by ``RequestObserver``, which also writes the request log line.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from discharge_bridge.cases.models import Priority
from discharge_bridge.db import utcnow
from discharge_bridge.deps import SessionDep, SettingsDep, SourceScope, require
from discharge_bridge.logs import log_request
from discharge_bridge.scheduling.leader import heartbeat_age
from discharge_bridge.sources.models import SyncStatus
from discharge_bridge.users.roles import Permission
from discharge_bridge.worklists.operations import OperationsFigures, read_figures

PREFIX = "discharge_bridge"
UNMATCHED = "unmatched"  # the route label of a path no route serves: never the raw path
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


# --- request latency and the request log ------------------------------------------------------


def route_template(scope: Scope, root_path: str) -> str:
    """The template (``/api/v1/cases/{case_id}``) of the route that served the request.

    Read after the app has run: the router leaves the route it matched in the scope, so the path
    is matched once, by routing itself. A mount (the static files) leaves its root path instead.
    """
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path_format", None) or getattr(route, "path", None) or UNMATCHED)
    mounted = scope.get("root_path", "")
    if mounted and mounted != root_path:
        return f"{mounted.removeprefix(root_path)}/{{path}}"
    return UNMATCHED


class RequestObserver:
    """ASGI middleware: one latency observation and one log line per HTTP request."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        root_path = scope.get("root_path", "")  # before routing rewrites it
        method = scope["method"] if scope["method"] in _METHODS else "other"
        status = 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope, root_path)
            self.histogram.labels(method, route, str(status)).observe(elapsed)
            log_request(method, route, status, elapsed * 1000)


def request_histogram() -> Histogram:
    return Histogram(
        f"{PREFIX}_http_request_duration_seconds",
        "Time to answer an HTTP request, by route template.",
        ["method", "route", "status"],
        registry=None,
    )


# --- the database at scrape -------------------------------------------------------------------


class DatabaseCollector(Collector):
    """Sync health per source, open work, and the scheduler's heartbeat, for the sources in ``scope``."""

    def __init__(self, session: SessionDep, scope: list[int] | None, now: datetime, stale_seconds: int) -> None:
        self.session = session
        self.scope = scope
        self.now = now
        self.stale_seconds = stale_seconds

    def collect(self) -> Iterator[Metric]:
        figures = read_figures(self.session, self.scope, self.now)
        names = {s.id: s.name for s in figures.sources if s.id is not None}
        yield from self._sync(figures)
        yield _per_source(
            GaugeMetricFamily(f"{PREFIX}_dead_letters_open", "Dead letters not yet resolved.", labels=["source"]),
            names,
            figures.dead_letters_open,
        )
        yield _per_source(
            GaugeMetricFamily(
                f"{PREFIX}_assessment_queue",
                "Patients stored and waiting for the assessment stage (ingest's outbox).",
                labels=["source"],
            ),
            names,
            figures.assessment_queue,
        )
        yield self._open_cases(names, figures.open_cases)
        yield _per_source(
            GaugeMetricFamily(f"{PREFIX}_tasks_overdue", "Active tasks past their due time.", labels=["source"]),
            names,
            figures.tasks_overdue,
        )
        yield from self._scheduler()

    def _sync(self, figures: OperationsFigures) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            f"{PREFIX}_source_sync_lag_seconds",
            "Seconds since the source's last successful sync (since it was added, if none yet).",
            labels=["source"],
        )
        last_success = GaugeMetricFamily(
            f"{PREFIX}_source_last_success_timestamp_seconds",
            "Unix time of the source's last successful sync.",
            labels=["source"],
        )
        up = GaugeMetricFamily(
            f"{PREFIX}_source_up", "1 when the source's last finished sync run succeeded.", labels=["source"]
        )
        failed = CounterMetricFamily(
            f"{PREFIX}_sync_runs_failed", "Sync runs of the source that ended in failure.", labels=["source"]
        )
        for source in figures.sources:
            assert source.id is not None
            since = source.last_success_at or source.created_at
            lag.add_metric([source.name], max((self.now - since).total_seconds(), 0.0))
            if source.last_success_at is not None:
                last_success.add_metric([source.name], source.last_success_at.timestamp())
            up.add_metric([source.name], 1.0 if figures.last_run_status.get(source.id) == SyncStatus.ok else 0.0)
            failed.add_metric([source.name], figures.failed_runs.get(source.id, 0))
        yield from (lag, last_success, up, failed)

    def _open_cases(self, names: dict[int, str], counts: dict[tuple[int, str], int]) -> Metric:
        family = GaugeMetricFamily(
            f"{PREFIX}_cases_open", "Open coordination cases by priority.", labels=["source", "priority"]
        )
        for source_id, name in names.items():
            for priority in [*Priority, "none"]:
                family.add_metric([name, str(priority)], counts.get((source_id, str(priority)), 0))
        return family

    def _scheduler(self) -> Iterator[Metric]:
        age = heartbeat_age(self.session, self.now)
        if age is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_scheduler_heartbeat_age_seconds", "Seconds since the scheduler leader's heartbeat.", age
            )
        alive = age is not None and age <= self.stale_seconds
        yield GaugeMetricFamily(
            f"{PREFIX}_scheduler_up", "1 when the scheduler's heartbeat is fresh (what /readyz checks).", float(alive)
        )


def _per_source(family: GaugeMetricFamily, names: dict[int, str], counts: dict[int, int]) -> Metric:
    for source_id, name in names.items():
        family.add_metric([name], counts.get(source_id, 0))
    return family


# --- the endpoint -----------------------------------------------------------------------------

router = APIRouter(include_in_schema=False)


@router.get("/metrics", dependencies=[Depends(require(Permission.manage_sources))])
def metrics(request: Request, session: SessionDep, scope: SourceScope, settings: SettingsDep) -> Response:
    """Prometheus text format; the caller's hospitals only (an it_admin or admin API token)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(request.app.state.request_histogram)
    registry.register(DatabaseCollector(session, scope, utcnow(), settings.scheduler_stale_seconds))
    registry.register(ProcessCollector(namespace=PREFIX, registry=None))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI) -> None:
    """The latency histogram and the request log on every request, and ``GET /metrics``."""
    app.state.request_histogram = request_histogram()
    app.add_middleware(RequestObserver, histogram=app.state.request_histogram)
    app.include_router(router)
