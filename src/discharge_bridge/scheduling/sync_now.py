"""Sync now: one pass of a source when a person asks for it (the IT page's button), beside the
scheduled polls.

``request`` notes the wish and answers at once; ``run`` (the page schedules it to run after its
response) does what a scheduled poll does: a pass, then the assessment of what it queued, under
the per-source lock the scheduled poll, a push catch-up and a re-score take, so none of them
overlap in this process. A second request while one is queued or running is refused: one press is
enough. Across processes (a web replica beside the scheduler) an overlap is harmless, as for a
webhook's catch-up poll: rows move forward by version only and the cursor never moves back.

What was asked and how it ended is kept in this process's memory, for the page that asked; the
sync run row is the record every process shows.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from discharge_bridge.assessment import sync_and_assess
from discharge_bridge.clock import utcnow
from discharge_bridge.config import Settings
from discharge_bridge.db import get_engine
from discharge_bridge.ingest.locks import source_lock
from discharge_bridge.ingest.writer import SyncResult
from discharge_bridge.scheduling.jobs import describe

log = logging.getLogger(__name__)


class SyncNowState(StrEnum):
    queued = "queued"  # asked for; waits for the pass the scheduler may be running
    running = "running"
    ok = "ok"
    failed = "failed"


IN_FLIGHT = frozenset({SyncNowState.queued, SyncNowState.running})


@dataclass(frozen=True)
class SyncNow:
    """A person's request to sync one source, and its outcome once the pass has run."""

    source: str
    state: SyncNowState
    requested_by: str
    requested_at: datetime
    finished_at: datetime | None = None
    result: SyncResult | None = None
    error: str | None = None  # the pass's error, or what failed around it

    @property
    def in_flight(self) -> bool:
        return self.state in IN_FLIGHT


_requests: dict[str, SyncNow] = {}
_guard = threading.Lock()


def request(source: str, *, by: str) -> bool:
    """Note a request to sync ``source`` now; False when one is already queued or running here."""
    with _guard:
        current = _requests.get(source)
        if current is not None and current.in_flight:
            return False
        _requests[source] = SyncNow(source, SyncNowState.queued, by, utcnow())
        return True


def status(source: str) -> SyncNow | None:
    """The newest request for ``source`` made in this process, running or ended; None if none."""
    with _guard:
        return _requests.get(source)


def _set(source: str, **changes: object) -> None:
    with _guard:
        current = _requests.get(source)
        if current is not None:
            _requests[source] = replace(current, **changes)  # type: ignore[arg-type]


def run(source: str, settings: Settings) -> SyncNow | None:
    """The requested pass and the assessment after it, as a scheduled poll runs them; never raises.

    A failure is kept on the request (and, for the pass itself, on the sync run and the source)."""
    with source_lock(source):
        _set(source, state=SyncNowState.running)
        try:
            result = sync_and_assess(source, engine=get_engine(settings), settings=settings)
        except Exception as exc:
            log.error("sync now %s failed: %s", source, describe(exc))
            _set(source, state=SyncNowState.failed, finished_at=utcnow(), error=describe(exc))
            return status(source)
    log.info(
        "sync now %s: %s fetched=%d new=%d updated=%d dead_letters=%d",
        source,
        result.status,
        result.fetched,
        result.created,
        result.updated,
        result.dead_letters,
    )
    state = SyncNowState.ok if result.status == "ok" else SyncNowState.failed
    _set(source, state=state, finished_at=utcnow(), result=result, error=result.error)
    return status(source)


def forget(source: str | None = None) -> None:
    """Drop the requests kept for ``source`` (every source: None); for tests and a renamed source."""
    with _guard:
        if source is None:
            _requests.clear()
        else:
            _requests.pop(source, None)
