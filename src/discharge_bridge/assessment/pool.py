"""Scoring processes: shares of each assessment batch scored on other cores.

The risk core is Python, so one draining process scores on one core however many the machine has,
and scoring is about two thirds of a batch (bench/scale.py). With ``scoring_processes`` = N, a
batch's patients are cut into N + 1 contiguous shares: the draining process scores the first while
N processes (spawned once, kept for the life of the process) read and score the others, each through
its own connection. They only read; the batch writes their rows in its own transaction, in the order
one process would have written them, so the results are the same (tests/assessment/test_pool.py).

A process reads its own snapshot, at least as new as the batch's: a patient changed meanwhile is
queued again at a newer generation, which the batch does not delete, and is assessed again. A share
whose process dies, fails, or scores with other mapping or rule files (a file edited mid-batch) is
scored by the batch itself (``risk.service.score_patients``), so the stage never loses a batch to it.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.util
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime

from sqlalchemy.engine import Engine

from discharge_bridge.cases.screening.service import completed_screenings
from discharge_bridge.config import Settings
from discharge_bridge.db import make_engine, session_scope
from discharge_bridge.risk.service import Scored, compute_scores, scoring_context
from discharge_bridge.sources.models import Source

log = logging.getLogger(__name__)

MIN_SHARE = 50  # patients: below this a share costs more to hand over than to score here


class ScoringPool:
    """``Offload`` for ``score_patients``, backed by ``size`` spawned processes."""

    def __init__(self, settings: Settings, size: int) -> None:
        self.settings, self.size = settings, size
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _running(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is not None and self._executor._broken:  # a process died: start afresh
                log.warning("a scoring process stopped: starting the scoring processes again")
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.size,
                    mp_context=multiprocessing.get_context("spawn"),  # no fork of a process holding connections
                    initializer=_start,
                    initargs=(self.settings,),
                )
            return self._executor

    def warm(self) -> None:
        """Start the processes now (they import the service, about a second) rather than on the first batch."""
        executor = self._running()
        for future in [executor.submit(_ready) for _ in range(self.size)]:
            future.result()

    def pids(self) -> list[int]:
        """The processes' ids, once started (tests kill them)."""
        self.warm()
        executor = self._running()
        return sorted(executor._processes)  # the executor keeps no public list of its processes

    def __call__(
        self, source_id: int, ids: list[str], *, now: datetime, force: bool, digest: str
    ) -> list[tuple[list[str], Future[Scored]]]:
        shares = min(self.size + 1, len(ids) // MIN_SHARE)
        if shares < 2:
            return []
        step = -(-len(ids) // shares)  # equal shares: unequal ones measured no faster (bench/scale.py)
        parts = [ids[start : start + step] for start in range(step, len(ids), step)]
        try:
            executor = self._running()
            return [(part, executor.submit(_score, source_id, part, now, force, digest)) for part in parts]
        except (BrokenProcessPool, RuntimeError) as exc:  # a process was killed: start afresh next batch
            log.warning("the scoring processes stopped (%s): starting them again", type(exc).__name__)
            self.close(wait=False)
            return []

    def close(self, *, wait: bool = True) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)


_pools: dict[tuple[str, str, int], ScoringPool] = {}
_pools_lock = threading.Lock()


def scoring_pool(settings: Settings) -> ScoringPool | None:
    """The process's pool for these settings (one per database and mappings folder), or None
    when ``scoring_processes`` is 0."""
    if settings.scoring_processes < 1:
        return None
    key = (settings.sqlalchemy_url, str(settings.mappings_dir), settings.scoring_processes)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            if not _pools:
                # Before multiprocessing joins a process's children at exit (atexit runs too late in
                # a multiprocessing child, which then waits forever on processes still waiting for work).
                multiprocessing.util.Finalize(None, close_pools, exitpriority=100)
            pool = _pools[key] = ScoringPool(settings, settings.scoring_processes)
        return pool


def close_pools() -> None:
    """Stop every scoring process of this process (tests; the processes also end with it)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


# -- inside a scoring process ------------------------------------------------------------------------
_engine: Engine | None = None
_settings: Settings | None = None


def _start(settings: Settings) -> None:
    global _engine, _settings
    # Fresh connections on SQLite: the statistics the batch ANALYZEs as tables grow (assessment/stage.py)
    # reach a process that only reads at its next connection.
    _settings, _engine = settings, make_engine(settings.sqlalchemy_url, fresh_connections=True)


def _ready() -> bool:
    return _engine is not None


def _score(source_id: int, ids: list[str], now: datetime, force: bool, digest: str) -> Scored:
    assert _engine is not None and _settings is not None
    with session_scope(_engine) as session:  # reads only
        source = session.get(Source, source_id)
        if source is None:
            raise LookupError(f"source {source_id} is gone")
        ctx = scoring_context(source, _settings)
        if ctx.digest != digest:
            raise RuntimeError("the mapping or rule files changed during the batch")
        return compute_scores(
            session,
            source_id,
            ids,
            ctx,
            now=now,
            force=force,
            screenings=lambda encounter_ids: completed_screenings(session, source_id, encounter_ids),
        )
