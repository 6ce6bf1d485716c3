"""The page writer's guarantees, on SQLite and PostgreSQL: what one page commits, and what a pass records.

Pages are built by hand, as the producers (poll, files, backfill, push) build them, and handed to
``write_pass``; every assertion reads the database back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.ingest import store
from discharge_bridge.ingest.models import (
    AssessmentQueueEntry,
    BulkExport,
    ClinicalSnapshot,
    DeadLetter,
    EncounterSnapshot,
    PatientSnapshot,
)
from discharge_bridge.ingest.writer import Checkpoint, Page, PageCounts, SyncAborted, SyncResult, write_pass
from discharge_bridge.sources.models import Source, SyncRun, SyncStatus
from tests.support.factories import make_source
from tests.support.fakefhir import condition, encounter, patient

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)  # the EHR's clock: resources' lastUpdated and cursors
NOW = datetime(2026, 11, 3, 7, 15, tzinfo=UTC)  # our clock while a pass runs


def _at(second: int) -> str:
    """A server instant as the writer stores cursors (UTC, milliseconds, Z)."""
    return (T0 + timedelta(seconds=second)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _v(resource: dict[str, Any], version: int = 1, second: int = 1) -> dict[str, Any]:
    """``resource`` as the EHR serves its ``version``th version."""
    return {**resource, "meta": {"versionId": str(version), "lastUpdated": _at(second)}}


# -- reading the database back ----------------------------------------------------------------------


@dataclass
class Stored:
    rows: dict[tuple[str, str], str | None]  # (type, id) -> versionId
    queue: dict[str, int]  # patient -> generation
    letters: dict[str, tuple[str | None, str | None, str, int]]  # error -> (type, id, payload, count)
    cursors: dict[str, str]
    export: Any  # the BulkExport row, when one was asked for


def _stored(session: Session, source_id: int, export_id: int | None = None) -> Stored:
    rows: dict[tuple[str, str], str | None] = {}
    for model in (PatientSnapshot, EncounterSnapshot):
        for fhir_id, version in session.execute(
            select(model.fhir_id, model.version_id).where(model.source_id == source_id)
        ):
            rows[(model.__name__.removesuffix("Snapshot"), fhir_id)] = version
    clinical = select(ClinicalSnapshot.resource_type, ClinicalSnapshot.fhir_id, ClinicalSnapshot.version_id)
    for rtype, fhir_id, version in session.execute(clinical.where(ClinicalSnapshot.source_id == source_id)):
        rows[(rtype, fhir_id)] = version
    queued = select(AssessmentQueueEntry.patient_fhir_id, AssessmentQueueEntry.generation)
    queue = {
        pid: generation
        for pid, generation in session.execute(queued.where(AssessmentQueueEntry.source_id == source_id))
    }
    letters = {
        letter.error: (letter.resource_type, letter.fhir_id, letter.payload, letter.count)
        for letter in session.exec(select(DeadLetter).where(DeadLetter.source_id == source_id))
    }
    cursors = session.execute(select(Source.cursors).where(Source.id == source_id)).scalar_one()
    export = None
    if export_id is not None:
        export = session.execute(select(BulkExport).where(BulkExport.id == export_id)).scalar_one()
    return Stored(rows, queue, letters, dict(cursors), export)


def _committed(engine: Engine, source_id: int, export_id: int | None = None) -> Stored:
    """What another connection sees: only committed pages."""
    with Session(engine) as session:
        return _stored(session, source_id, export_id)


def _runs(engine: Engine) -> list[SyncRun]:
    with Session(engine) as session:
        return list(session.exec(select(SyncRun).order_by(col(SyncRun.id))))


COUNTS = ("pages", "fetched", "created", "updated", "unchanged", "dead_letters")


def _counts(pass_or_run: SyncResult | SyncRun) -> dict[str, int]:
    """What a ``SyncResult`` or a sync run row counted."""
    return {name: getattr(pass_or_run, name) for name in COUNTS}


def _source_row(engine: Engine, source_id: int) -> Source:
    with Session(engine, expire_on_commit=False) as session:
        source = session.get(Source, source_id)
        assert source is not None
        session.expunge(source)
        return source


# -- setting up -------------------------------------------------------------------------------------


@pytest.fixture
def source_id(engine: Engine) -> int:
    with session_scope(engine) as session:
        source = make_source(session)
        assert source.id is not None
        return source.id


@pytest.fixture
def export_id(engine: Engine, source_id: int) -> int:
    """A producer's resume state for checkpoints to write to (as the Bulk backfill keeps it)."""
    with session_scope(engine) as session:
        export = BulkExport(source_id=source_id)
        session.add(export)
        session.flush()
        assert export.id is not None
        return export.id


def _pass(engine: Engine, settings: Settings, source_id: int, pages: Any, **kwargs: Any) -> SyncResult:
    """One pass of ``pages`` with the source as stored now (its cursors are the pass's "before")."""
    kwargs.setdefault("kind", "test")
    return write_pass(engine, _source_row(engine, source_id), pages, settings=settings, **kwargs)


def _mark(export_id: int, key: str) -> Checkpoint:
    """A checkpoint like the backfill's: the page's key done, its counts added to the export."""

    def checkpoint(session: Session, counts: PageCounts) -> None:
        export = session.get(BulkExport, export_id)
        assert export is not None
        export.files_done = {**export.files_done, key: counts.fetched}
        export.resources += counts.fetched
        export.dead_letters += counts.dead_letters

    return checkpoint


def _mark_then_fail(export_id: int, key: str, error: Exception) -> Checkpoint:
    """``_mark`` flushed to the database, then a failure: nothing of the page may stay."""

    def checkpoint(session: Session, counts: PageCounts) -> None:
        _mark(export_id, key)(session, counts)
        session.flush()
        raise error

    return checkpoint


BAD_LINE = ('{"resourceType": "Patient", "id": "trunc', "export.ndjson line 3: unexpected end of data")


# -- 1. one page, one transaction -----------------------------------------------------------------------


def test_a_page_stores_rows_dead_letters_queue_cursor_and_checkpoint_in_one_transaction(
    engine: Engine, settings: Settings, source_id: int, export_id: int
) -> None:
    seen: dict[str, Any] = {}

    def checkpoint(session: Session, counts: PageCounts) -> None:
        _mark(export_id, "page-1")(session, counts)
        seen["counts"] = PageCounts(**vars(counts))
        seen["inside"] = _stored(session, source_id, export_id)  # the page's own transaction
        seen["outside"] = _committed(engine, source_id, export_id)  # any other connection

    no_subject = _v(encounter("e-orphan", "x"))
    del no_subject["subject"]
    page = Page(
        [_v(patient("p1")), _v(encounter("e1", "p1")), _v(condition("c1", "p1")), no_subject],
        bad=[BAD_LINE],
        cursors={"Encounter": _at(5)},
        checkpoint=checkpoint,
    )
    result = _pass(engine, settings, source_id, [page])

    assert result.status == SyncStatus.ok, result.error
    # inside the transaction, before it commits: everything of the page, and the checkpoint saw its counts
    inside = seen["inside"]
    assert inside.rows == {("Patient", "p1"): "1", ("Encounter", "e1"): "1", ("Condition", "c1"): "1"}
    assert inside.queue == {"p1": 1}
    assert set(inside.letters) == {"Encounter has no subject reference to a Patient", BAD_LINE[1]}
    assert inside.cursors == {"Encounter": _at(5)}
    assert (inside.export.files_done, inside.export.resources, inside.export.dead_letters) == ({"page-1": 4}, 4, 2)
    assert seen["counts"] == PageCounts(fetched=4, created=3, updated=0, unchanged=0, dead_letters=2)
    # ... of which no other connection saw anything yet
    outside = seen["outside"]
    assert (outside.rows, outside.queue, outside.letters, outside.cursors) == ({}, {}, {}, {})
    assert (outside.export.files_done, outside.export.resources) == ({}, 0)
    # and all of it once committed
    after = _committed(engine, source_id, export_id)
    assert (after.rows, after.queue, after.letters) == (inside.rows, inside.queue, inside.letters)
    assert after.cursors == inside.cursors
    assert (after.export.files_done, after.export.resources, after.export.dead_letters) == ({"page-1": 4}, 4, 2)


@pytest.mark.parametrize(
    ("error", "propagates"),
    [
        (RuntimeError("disk full while saving the checkpoint"), True),
        (SyncAborted("stopped after 1 batches as asked"), False),
    ],
    ids=["unexpected-error", "sync-aborted"],
)
def test_a_failing_checkpoint_stores_nothing_of_its_page_and_keeps_the_earlier_pages(
    engine: Engine, settings: Settings, source_id: int, export_id: int, error: Exception, propagates: bool
) -> None:
    def second_page(checkpoint: Checkpoint) -> Page:
        return Page(
            [
                _v(patient("p1", gender="female"), version=2, second=20),  # an update of page 1's row
                _v(patient("p2"), second=21),
                _v(encounter("e2", "p2"), second=22),
                _v(encounter("e-bad", "p3", status="bogus"), second=23),
            ],
            bad=[BAD_LINE],
            cursors={"Encounter": _at(22), "Condition": _at(22)},
            checkpoint=checkpoint,
        )

    pages = [
        Page(
            [_v(patient("p1"), second=1), _v(encounter("e1", "p1"), second=2)],
            cursors={"Encounter": _at(2)},
            checkpoint=_mark(export_id, "page-1"),
        ),
        second_page(_mark_then_fail(export_id, "page-2", error)),
        Page([_v(patient("never"))], cursors={"Encounter": _at(99)}),  # never asked for
    ]

    with time_machine.travel(NOW, tick=False):
        if propagates:
            with pytest.raises(RuntimeError, match="disk full"):
                _pass(engine, settings, source_id, iter(pages))
            result = None
        else:
            result = _pass(engine, settings, source_id, iter(pages))

    stored = _committed(engine, source_id, export_id)
    # page 1 as it committed; of page 2 no row, update, queue entry, dead letter, cursor or checkpoint
    assert stored.rows == {("Patient", "p1"): "1", ("Encounter", "e1"): "1"}
    assert stored.queue == {"p1": 1}
    assert stored.letters == {}
    assert stored.cursors == {"Encounter": _at(2)}
    assert (stored.export.files_done, stored.export.resources, stored.export.dead_letters) == ({"page-1": 2}, 2, 0)
    # the run is recorded as failed, counting the committed page only
    (run,) = _runs(engine)
    assert run.status == SyncStatus.failed
    assert _counts(run) == {"pages": 1, "fetched": 2, "created": 2, "updated": 0, "unchanged": 0, "dead_letters": 0}
    assert (run.cursor_before, run.cursor_after, run.finished_at) == (None, _at(2), NOW)
    if propagates:
        assert run.error == "internal error: RuntimeError: disk full while saving the checkpoint"
    else:
        assert result is not None
        assert (result.status, result.error) == (SyncStatus.failed, "stopped after 1 batches as asked")
        assert (_counts(result), run.error) == (_counts(run), result.error)
    source = _source_row(engine, source_id)
    assert (source.last_error, source.last_error_at, source.last_success_at) == (run.error, NOW, None)

    # resumed from the checkpoint: page 2 again, now whole (its dead letters counted once, not twice)
    again = _pass(engine, settings, source_id, [second_page(_mark(export_id, "page-2"))])
    assert again.status == SyncStatus.ok, again.error
    assert (again.created, again.updated, again.dead_letters) == (2, 1, 2)
    stored = _committed(engine, source_id, export_id)
    assert stored.rows == {
        ("Patient", "p1"): "2",
        ("Patient", "p2"): "1",
        ("Encounter", "e1"): "1",
        ("Encounter", "e2"): "1",
    }
    assert stored.queue == {"p1": 2, "p2": 1}
    assert {error: count for error, (*_, count) in stored.letters.items()} == {
        "Encounter.status: 'bogus' is not an R4 Encounter status": 1,
        BAD_LINE[1]: 1,
    }
    assert stored.cursors == {"Encounter": _at(22), "Condition": _at(22)}
    assert stored.export.files_done == {"page-1": 2, "page-2": 4}


def test_an_upsert_failing_mid_page_stores_nothing_of_its_page(
    engine: Engine, settings: Settings, source_id: int, export_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store._write_snapshots
    written: list[str] = []

    def flaky(session: Session, sid: int, table: Any, conflict: Any, rows: Any) -> None:
        if any(row.fhir_id == "e2" for row in rows):
            # the page's patients went into the transaction first; then the connection drops
            stored_now = _stored(session, source_id)
            written.extend(f"{rtype}/{fid}@{v}" for (rtype, fid), v in sorted(stored_now.rows.items()))
            raise OperationalError("INSERT INTO encounter_snapshot ...", {}, Exception("server closed the connection"))
        real(session, sid, table, conflict, rows)

    monkeypatch.setattr(store, "_write_snapshots", flaky)
    pages = [
        Page(
            [_v(patient("p1")), _v(encounter("e1", "p1"))],
            cursors={"Encounter": _at(2)},
            checkpoint=_mark(export_id, "page-1"),
        ),
        Page(
            [_v(patient("p1", gender="male"), version=2), _v(patient("p2")), _v(encounter("e2", "p2"))],
            cursors={"Encounter": _at(9)},
            checkpoint=_mark(export_id, "page-2"),
        ),
    ]

    with pytest.raises(OperationalError, match="server closed the connection"):
        _pass(engine, settings, source_id, pages)

    # the failing statement came after page 2's patients were written in its transaction ...
    assert written == ["Encounter/e1@1", "Patient/p1@2", "Patient/p2@1"]
    # ... and none of them survived it
    stored = _committed(engine, source_id, export_id)
    assert stored.rows == {("Patient", "p1"): "1", ("Encounter", "e1"): "1"}
    assert stored.queue == {"p1": 1}
    assert stored.cursors == {"Encounter": _at(2)}
    assert stored.export.files_done == {"page-1": 2}
    (run,) = _runs(engine)
    assert (run.status, run.pages, run.created, run.cursor_after) == (SyncStatus.failed, 1, 2, _at(2))
    assert run.error is not None and run.error.startswith("internal error: OperationalError:")


# -- 2. cursors ---------------------------------------------------------------------------------------


def test_a_cursor_never_moves_back(engine: Engine, settings: Settings, source_id: int) -> None:
    pages = [
        Page([_v(encounter("e1", "p1"), second=50)], cursors={"Encounter": _at(50), "Condition": _at(40)}),
        # older cursors on later pages: their rows are stored, the cursors stay where they are
        Page([_v(encounter("e2", "p2"), second=30)], cursors={"Encounter": _at(30), "Condition": None}),
        Page(cursors={"Encounter": "2026-11-01T11:00:45+03:00"}),  # 08:00:45Z, written with an offset
        Page(cursors={"Condition": _at(41), "Observation": _at(10)}),  # forward, and a stream seen first
    ]
    first = _pass(engine, settings, source_id, pages)

    assert first.status == SyncStatus.ok, first.error
    stored = _committed(engine, source_id)
    assert set(stored.rows) == {("Encounter", "e1"), ("Encounter", "e2")}
    assert stored.cursors == {"Encounter": _at(50), "Condition": _at(41), "Observation": _at(10)}
    assert (first.cursor_before, first.cursor_after) == (None, _at(50))

    # a later pass that carries older cursors leaves them too; then moves them forward
    second = _pass(engine, settings, source_id, [Page(cursors={"Encounter": _at(20), "Observation": _at(9)})])
    assert (second.cursor_before, second.cursor_after) == (_at(50), _at(50))
    assert _committed(engine, source_id).cursors == {"Encounter": _at(50), "Condition": _at(41), "Observation": _at(10)}

    third = _pass(engine, settings, source_id, [Page(cursors={"Encounter": _at(60)})])
    assert (third.cursor_before, third.cursor_after) == (_at(50), _at(60))
    assert _committed(engine, source_id).cursors["Encounter"] == _at(60)
    assert [run.cursor_after for run in _runs(engine)] == [_at(50), _at(50), _at(60)]


# -- 3. dead letters ------------------------------------------------------------------------------------


def test_an_invalid_resource_becomes_a_dead_letter_and_the_rest_of_its_page_is_stored(
    engine: Engine, settings: Settings, source_id: int
) -> None:
    no_subject = _v(encounter("e-orphan", "p1"))
    del no_subject["subject"]
    bad_status = _v(encounter("e-bogus", "p9", status="bogus"))
    page = Page(
        [
            _v(patient("p1")),
            no_subject,
            _v(encounter("e1", "p1")),
            bad_status,
            {"resourceType": "OperationOutcome", "issue": []},  # not kept, not a dead letter either
            _v(condition("c1", "p1")),
        ],
        bad=[BAD_LINE],
    )
    with time_machine.travel(NOW, tick=False):
        result = _pass(engine, settings, source_id, [page])

    assert result.status == SyncStatus.ok, result.error
    assert (result.fetched, result.created, result.dead_letters) == (6, 3, 3)
    stored = _committed(engine, source_id)
    assert stored.rows == {("Patient", "p1"): "1", ("Encounter", "e1"): "1", ("Condition", "c1"): "1"}
    assert stored.queue == {"p1": 1}  # a dead letter's patient (p9) is not queued
    with Session(engine) as session:
        letters = {letter.fhir_id: letter for letter in session.exec(select(DeadLetter))}
    assert set(letters) == {"e-orphan", "e-bogus", None}
    orphan, bogus, line = letters["e-orphan"], letters["e-bogus"], letters[None]
    assert (orphan.resource_type, orphan.error) == ("Encounter", "Encounter has no subject reference to a Patient")
    assert (bogus.resource_type, bogus.error) == (
        "Encounter",
        "Encounter.status: 'bogus' is not an R4 Encounter status",
    )
    assert (line.resource_type, line.payload, line.error) == (None, BAD_LINE[0], BAD_LINE[1])
    assert store.payload_text(no_subject) == orphan.payload  # kept verbatim, to be replayed
    for letter in letters.values():
        assert (letter.count, letter.first_seen, letter.last_seen, letter.resolved_at) == (1, NOW, NOW, None)
        assert letter.source_id == source_id


def test_an_invalid_resource_read_twice_in_a_pass_is_one_dead_letter(
    engine: Engine, settings: Settings, source_id: int
) -> None:
    """A resource at a page boundary comes on two pages; another pass meeting it again counts it again."""
    bogus = _v(encounter("e-bogus", "p9", status="bogus"), second=5)
    pages = [
        Page([_v(patient("p1")), {**bogus}]),
        Page([{**bogus}, _v(encounter("e1", "p1"))]),
    ]
    first = _pass(engine, settings, source_id, pages)
    assert (first.pages, first.fetched, first.created, first.dead_letters) == (2, 4, 2, 1)
    assert {e: c for e, (*_, c) in _committed(engine, source_id).letters.items()} == {
        "Encounter.status: 'bogus' is not an R4 Encounter status": 1
    }

    second = _pass(engine, settings, source_id, [Page([{**bogus}])])
    assert second.dead_letters == 1
    assert {e: c for e, (*_, c) in _committed(engine, source_id).letters.items()} == {
        "Encounter.status: 'bogus' is not an R4 Encounter status": 2
    }


# -- 4. the assessment queue ------------------------------------------------------------------------------


def test_the_patients_of_changed_rows_are_queued_with_them(engine: Engine, settings: Settings, source_id: int) -> None:
    queued_inside: list[dict[str, int]] = []  # in the page's transaction
    queued_outside: list[dict[str, int]] = []  # committed meanwhile

    def peek(session: Session, counts: PageCounts) -> None:
        queued_inside.append(_stored(session, source_id).queue)
        queued_outside.append(_committed(engine, source_id).queue)

    first = _pass(
        engine,
        settings,
        source_id,
        [
            # a Patient queues itself; an Encounter or a fact queues its subject, stored or not yet
            Page([_v(patient("p1")), _v(encounter("e1", "p1"))], checkpoint=peek),
            Page([_v(condition("c2", "p2"))], checkpoint=peek),
        ],
    )
    assert first.status == SyncStatus.ok, first.error
    assert queued_inside == [{"p1": 1}, {"p1": 1, "p2": 1}]
    assert queued_outside == [{}, {"p1": 1}]
    assert _committed(engine, source_id).queue == {"p1": 1, "p2": 1}

    # unchanged rows queue nobody; a new version raises its patient's generation
    queued_inside.clear()
    queued_outside.clear()
    second = _pass(
        engine,
        settings,
        source_id,
        [
            Page([_v(patient("p1")), _v(encounter("e1", "p1")), _v(condition("c2", "p2"))], checkpoint=peek),
            Page([_v(encounter("e1", "p1", status="onleave"), version=2)], checkpoint=peek),
        ],
    )
    assert (second.unchanged, second.updated) == (3, 1)
    assert queued_inside == [{"p1": 1, "p2": 1}, {"p1": 2, "p2": 1}]
    assert queued_outside == [{"p1": 1, "p2": 1}, {"p1": 1, "p2": 1}]
    assert _committed(engine, source_id).queue == {"p1": 2, "p2": 1}


# -- 5. the pass: sync run row and result ----------------------------------------------------------------


def test_the_sync_run_and_the_result_count_what_was_written(engine: Engine, settings: Settings, source_id: int) -> None:
    bogus = _v(encounter("e-bogus", "p9", status="bogus"))
    first_pages = [
        Page([_v(patient("p1")), _v(patient("p2")), _v(encounter("e1", "p1")), _v(encounter("e2", "p2"))]),
        Page([_v(condition("c1", "p1")), bogus], bad=[BAD_LINE]),
        Page(cursors={"Encounter": _at(9)}),  # a cursor-only page is not a page of data
    ]
    with time_machine.travel(NOW, tick=False):
        first = _pass(engine, settings, source_id, first_pages, kind="file")

    assert first.status == SyncStatus.ok and first.error is None
    assert _counts(first) == {"pages": 2, "fetched": 6, "created": 5, "updated": 0, "unchanged": 0, "dead_letters": 2}
    assert (first.cursor_before, first.cursor_after) == (None, _at(9))
    stored = _committed(engine, source_id)
    assert len(stored.rows) == first.created
    assert len(stored.letters) == first.dead_letters

    later = NOW + timedelta(hours=1)
    second_pages = [
        Page(
            [
                _v(patient("p1")),  # unchanged
                _v(encounter("e1", "p1", status="finished"), version=2),  # updated
                _v(encounter("e3", "p2")),  # new
            ],
            cursors={"Encounter": _at(12)},
        )
    ]
    with time_machine.travel(later, tick=False):
        second = _pass(engine, settings, source_id, second_pages)

    assert _counts(second) == {"pages": 1, "fetched": 3, "created": 1, "updated": 1, "unchanged": 1, "dead_letters": 0}
    assert (second.cursor_before, second.cursor_after) == (_at(9), _at(12))
    assert len(_committed(engine, source_id).rows) == first.created + second.created

    runs = _runs(engine)
    assert [(r.kind, r.status, r.started_at, r.finished_at, r.error) for r in runs] == [
        ("file", SyncStatus.ok, NOW, NOW, None),
        ("test", SyncStatus.ok, later, later, None),
    ]
    for run, result in zip(runs, (first, second), strict=True):
        assert run.source_id == source_id
        assert _counts(run) == _counts(result)
        assert (run.cursor_before, run.cursor_after) == (result.cursor_before, result.cursor_after)
    source = _source_row(engine, source_id)
    assert (source.last_sync_at, source.last_success_at, source.last_error) == (later, later, None)


def test_each_page_is_stored_before_the_next_is_asked_for_and_a_stopped_pass_closes_its_producer(
    engine: Engine, settings: Settings, source_id: int
) -> None:
    """Producers look at the store between pages (which patients are new): they must see every earlier page."""
    seen_before: list[set[tuple[str, str]]] = []
    closed: list[bool] = []

    def producer() -> Iterator[Page]:
        try:
            for n in range(1, 4):
                seen_before.append(set(_committed(engine, source_id).rows))
                yield Page([_v(patient(f"p{n}"))], cursors={"Encounter": _at(n)})
        finally:
            closed.append(True)

    progress: list[tuple[str, int]] = []
    result = _pass(engine, settings, source_id, producer(), stop_after_pages=2, progress=lambda *a: progress.append(a))

    assert seen_before == [set(), {("Patient", "p1")}]  # page 3 was never asked for
    assert closed == [True]
    assert (result.status, result.error, result.pages) == (SyncStatus.failed, "stopped after 2 pages as asked", 2)
    assert progress == [("page", 1), ("page", 2)]
    stored = _committed(engine, source_id)
    assert set(stored.rows) == {("Patient", "p1"), ("Patient", "p2")}
    assert stored.cursors == {"Encounter": _at(2)}
    (run,) = _runs(engine)
    assert (run.status, run.pages, run.created, run.cursor_after) == (SyncStatus.failed, 2, 2, _at(2))


def test_a_poll_run_left_running_by_a_dead_process_is_closed_as_interrupted_by_the_next_poll(
    engine: Engine, settings: Settings, source_id: int
) -> None:
    """Polls of a source run one at a time (lease, leader): an older one still "running" died mid-pass.
    A push or backfill running beside it is someone else's live pass and is left alone."""
    with time_machine.travel(NOW, tick=False), session_scope(engine) as session:
        session.add(SyncRun(source_id=source_id, kind="poll"))
        session.add(SyncRun(source_id=source_id, kind="push"))
    later = NOW + timedelta(minutes=5)
    with time_machine.travel(later, tick=False):
        result = _pass(engine, settings, source_id, [Page([_v(patient("p1"))])], kind="poll")
    assert result.status == SyncStatus.ok
    assert [(r.kind, r.status, r.finished_at, (r.error or "")[:11]) for r in _runs(engine)] == [
        ("poll", SyncStatus.failed, later, "interrupted"),
        ("push", SyncStatus.running, None, ""),
        ("poll", SyncStatus.ok, later, ""),
    ]
