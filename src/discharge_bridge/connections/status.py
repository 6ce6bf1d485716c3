"""Hospital IT's view of each source: sync status, dead letters, conformance; the connection check
and dead-letter replay as the IT page drives them.

Reads are scoped to the caller's sources (a foreign source or dead letter is simply not found).
Nothing here returns a secret: auth is described by its kind and the *names* of the env vars and
files that hold the secrets.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import case, func
from sqlmodel import Session, col, select

from discharge_bridge.audit import AdminAction, Target, record_admin_action
from discharge_bridge.connections.check import (
    N_,
    NEEDED_SEARCH_PARAMS,
    CheckReport,
    CheckStatus,
    check_source,
    item,
)
from discharge_bridge.connections.schemas import SourcePublic
from discharge_bridge.fhir import FhirClient, FhirError, RetryPolicy
from discharge_bridge.ingest.changes import queue_depths
from discharge_bridge.ingest.deadletters import ReplayOutcome, list_dead_letters, replay
from discharge_bridge.ingest.files import BadRecord, iter_resources
from discharge_bridge.ingest.models import AssessmentQueueEntry, ConformanceIssue, DeadLetter
from discharge_bridge.sources.models import Source, SourceMode, SyncRun
from discharge_bridge.sources.safety import SourceRefused, check_stored, current_policy
from discharge_bridge.sources.service import SourceError, client_for
from discharge_bridge.subscriptions.schemas import push_status

CHECK_TIMEOUT_SECONDS = 10.0  # a button press should answer in seconds, not wait out a hung EHR
FILE_CHECK_LIMIT = 200_000  # records counted by a file check; a bigger export is sampled
REPLAY_ALL_LIMIT = 200  # one button press re-reads at most this many from the EHR
SECRET_NAME_FIELDS = ("token_env", "token_file", "password_env", "password_file", "private_key_file")


class DeadLetterNotFound(LookupError):
    def __init__(self, letter_id: int) -> None:
        super().__init__(f"no dead letter {letter_id}")


@dataclass(frozen=True)
class QueueHealth:
    """A source's assessment queue: how many wait, how many failed at least once, since when."""

    waiting: int
    failing: int  # retried at each drain; held for a person after the assessment stage's limit
    oldest: datetime | None


@dataclass(frozen=True)
class SourceStatus:
    id: int
    public: SourcePublic
    auth_names: dict[str, str]  # e.g. {"token_env": "CITY1_TOKEN"}: names only
    behind: bool  # no successful pass for three poll intervals
    dead_letters: list[DeadLetter] = field(default_factory=list)
    conformance: list[ConformanceIssue] = field(default_factory=list)
    queue: QueueHealth = QueueHealth(0, 0, None)


def display_url(url: str) -> str:
    """The base URL without any user:password@ part (some sites paste credentials into the URL)."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _last_runs(session: Session, ids: list[int]) -> dict[int, SyncRun]:
    newest = select(func.max(SyncRun.id)).where(col(SyncRun.source_id).in_(ids)).group_by(col(SyncRun.source_id))
    runs = session.exec(select(SyncRun).where(col(SyncRun.id).in_(newest.scalar_subquery())))
    return {r.source_id: r for r in runs}


def _open_letter_counts(session: Session, ids: list[int]) -> dict[int, int]:
    query = (
        select(DeadLetter.source_id, func.count())
        .where(col(DeadLetter.source_id).in_(ids), col(DeadLetter.resolved_at).is_(None))
        .group_by(col(DeadLetter.source_id))
    )
    return {sid: int(n) for sid, n in session.exec(query)}


def queue_health(session: Session, ids: list[int]) -> dict[int, QueueHealth]:
    """Per source with a queue: its depth, the entries whose assessment failed, the oldest entry's time."""
    q = AssessmentQueueEntry
    failing = func.sum(case((col(q.attempts) > 0, 1), else_=0))
    query = (
        select(q.source_id, func.count(), failing, func.min(q.enqueued_at))
        .where(col(q.source_id).in_(ids))
        .group_by(col(q.source_id))
    )
    return {sid: QueueHealth(int(n), int(bad or 0), oldest) for sid, n, bad, oldest in session.exec(query)}


def conformance_of(session: Session, source_id: int, limit: int | None = 100) -> list[ConformanceIssue]:
    """The source's conformance problems, the most frequent first (``limit`` None: all of them)."""
    query = (
        select(ConformanceIssue)
        .where(ConformanceIssue.source_id == source_id)
        .order_by(col(ConformanceIssue.count).desc(), col(ConformanceIssue.id))
    )
    return list(session.exec(query if limit is None else query.limit(limit)))


def source_public(session: Session, source: Source, now: datetime) -> SourcePublic:
    """What the API shows of one source: status, open dead letters, the last run, the queue, push health."""
    assert source.id is not None
    public = SourcePublic.of(
        source,
        dead_letters=_open_letter_counts(session, [source.id]).get(source.id, 0),
        last_run=_last_runs(session, [source.id]).get(source.id),
        now=now,
        queued=queue_depths(session, [source.id]).get(source.id, 0),
    )
    public.push = push_status(session, source.id)
    return public


def source_statuses(
    session: Session, *, source_ids: list[int] | None, now: datetime, letters_limit: int = 50
) -> list[SourceStatus]:
    """Every source in scope with its status, its newest open dead letters and its conformance problems."""
    query = select(Source).order_by(col(Source.name))
    if source_ids is not None:
        query = query.where(col(Source.id).in_(source_ids))
    sources = list(session.exec(query))
    ids = [s.id for s in sources if s.id is not None]
    runs, counts, queues = _last_runs(session, ids), _open_letter_counts(session, ids), queue_health(session, ids)
    empty = QueueHealth(0, 0, None)
    statuses = []
    for source in sources:
        assert source.id is not None
        public = SourcePublic.of(
            source,
            dead_letters=counts.get(source.id, 0),
            last_run=runs.get(source.id),
            now=now,
            queued=queues.get(source.id, empty).waiting,
        )
        public = public.model_copy(update={"base_url": display_url(public.base_url)})
        lag = public.lag_seconds
        statuses.append(
            SourceStatus(
                id=source.id,
                public=public,
                auth_names={k: str(v) for k, v in source.auth.items() if k in SECRET_NAME_FIELDS and v},
                behind=source.enabled and (lag is None or lag > 3 * source.poll_interval_seconds),
                dead_letters=list_dead_letters(session, source_id=source.id, limit=letters_limit),
                conformance=conformance_of(session, source.id),
                queue=queues.get(source.id, empty),
            )
        )
    return statuses


def get_dead_letter(session: Session, letter_id: int, *, source_ids: list[int] | None) -> DeadLetter:
    query = select(DeadLetter).where(DeadLetter.id == letter_id)
    if source_ids is not None:
        query = query.where(col(DeadLetter.source_id).in_(source_ids))
    letter = session.exec(query).first()
    if letter is None:
        raise DeadLetterNotFound(letter_id)
    return letter


# -- acting on a source ------------------------------------------------------------------------------


def check_client(source: Source, *, transport: httpx.BaseTransport | None = None) -> FhirClient:
    """A client for one interactive call: a short timeout and a single retry."""
    retry = RetryPolicy(max_attempts=2, backoff_max=1.0, retry_after_max=2.0)
    return client_for(source, retry=retry, timeout=CHECK_TIMEOUT_SECONDS, transport=transport)


def run_check(source: Source, *, transport: httpx.BaseTransport | None = None) -> CheckReport:
    """The connection check of ``discharge-bridge sources check``; a file source gets the folder check.
    A source that ``sources.safety`` refuses is neither contacted nor its folder read."""
    try:
        check_stored(source, current_policy())
    except SourceRefused as exc:
        if source.mode == SourceMode.file:
            refused = item("Folder", CheckStatus.failed, N_("not read: %(error)s"), error=str(exc))
        else:
            refused = item("Base URL", CheckStatus.failed, N_("not contacted: %(error)s"), error=str(exc))
        return CheckReport(source.name, [refused])
    if source.mode == SourceMode.file:
        return check_file_source(source)
    try:
        client = check_client(source, transport=transport)
    except (FhirError, SourceError) as exc:  # a secret's env var or file is missing, or the auth is incomplete
        return CheckReport(
            source.name,
            [item("Authentication", CheckStatus.failed, N_("cannot set up auth: %(error)s"), error=str(exc))],
        )
    with client:
        return check_source(source, client)


def check_file_source(source: Source, limit: int = FILE_CHECK_LIMIT) -> CheckReport:
    """What a sync of a file source relies on: the folder, readable records, the resource types."""
    root = Path(source.base_url)
    items = [
        item(
            "File source",
            CheckStatus.ok,
            N_(
                "this source reads FHIR NDJSON or Bundles from a folder on this host, not a FHIR server: "
                "the check looks at the files; no network connection or authentication is involved"
            ),
        )
    ]
    if not root.exists():
        items.append(
            item("Folder", CheckStatus.failed, N_("%(folder)s does not exist: copy the export there"), folder=root)
        )
        return CheckReport(source.name, items)
    by_type: Counter[str] = Counter()
    bad: list[str] = []
    try:
        for number, record in enumerate(iter_resources(root), start=1):
            if number > limit:
                break
            if isinstance(record, BadRecord):
                bad.append(record.reason.split(":")[0])
            elif isinstance(record, dict):
                by_type[str(record.get("resourceType"))] += 1
    except OSError as exc:
        items.append(
            item(
                "Folder",
                CheckStatus.failed,
                N_("cannot read %(folder)s: %(error)s"),
                folder=root,
                error=exc.strerror or exc,
            )
        )
        return CheckReport(source.name, items)
    total = sum(by_type.values()) + len(bad)
    if total >= limit:
        readable = item(
            "Folder",
            CheckStatus.ok,
            N_("%(folder)s is readable: %(total)s records (the first %(limit)s records)"),
            folder=root,
            total=f"{total:,}",
            limit=f"{limit:,}",
        )
    else:
        readable = item(
            "Folder", CheckStatus.ok, N_("%(folder)s is readable: %(total)s records"), folder=root, total=f"{total:,}"
        )
    items.append(readable)
    if bad:
        where = ", ".join(bad[:3]) + (" ..." if len(bad) > 3 else "")
        items.append(
            item(
                "Readable records",
                CheckStatus.warning,
                N_("%(count)s not valid JSON (%(where)s): they become dead letters"),
                count=len(bad),
                where=where,
            )
        )
    else:
        items.append(item("Readable records", CheckStatus.ok, N_("every record is JSON")))
    for rtype in NEEDED_SEARCH_PARAMS:
        n = by_type.get(rtype, 0)
        if n == 1:
            items.append(item(rtype, CheckStatus.ok, N_("1 resource")))
        elif n:
            items.append(item(rtype, CheckStatus.ok, N_("%(count)s resources"), count=f"{n:,}"))
        elif rtype == "Encounter":
            items.append(item(rtype, CheckStatus.failed, N_("no Encounter resources: nothing to sync")))
        else:
            items.append(
                item(
                    rtype,
                    CheckStatus.warning,
                    N_("no %(type)s resources: risk flags will have less to go on"),
                    type=rtype,
                )
            )
    return CheckReport(source.name, items)


def replay_dead_letter(
    session: Session, letter_id: int, *, source_ids: list[int] | None, actor: str
) -> tuple[Source, list[ReplayOutcome]]:
    """Replay one dead letter of a visible source (DeadLetterNotFound otherwise); its source and the outcome."""
    letter = get_dead_letter(session, letter_id, source_ids=source_ids)
    source = session.get(Source, letter.source_id)
    assert source is not None
    return source, replay_letters(session, source, [letter], actor=actor)


def replay_open_letters(
    session: Session, source: Source, *, actor: str, limit: int = REPLAY_ALL_LIMIT
) -> list[ReplayOutcome]:
    """Replay the source's newest open dead letters, at most ``limit`` (one button press re-reads that many)."""
    letters = list_dead_letters(session, source_id=source.id, limit=limit)
    return replay_letters(session, source, letters, actor=actor)


def replay_letters(session: Session, source: Source, letters: list[DeadLetter], *, actor: str) -> list[ReplayOutcome]:
    """Replay dead letters of one source in the caller's transaction (re-read from the EHR where it has one).

    The audit trail gets which letters and how many were resolved, never their payloads (patient data)."""
    outcomes = _replay(session, source, letters)
    if letters:
        details = {"dead_letters": [o.dead_letter_id for o in outcomes], "resolved": sum(o.resolved for o in outcomes)}
        record_admin_action(session, actor, AdminAction.deadletter_replay, Target("source", source.name), details)
    return outcomes


def _replay(session: Session, source: Source, letters: list[DeadLetter]) -> list[ReplayOutcome]:
    client = None
    if source.mode != SourceMode.file:
        try:
            client = check_client(source)
        except (FhirError, SourceError):
            client = None  # the stored payloads are re-parsed instead, as the CLI does
    try:
        return [replay(session, letter, source, client) for letter in letters]
    finally:
        if client is not None:
            client.close()
        session.flush()
