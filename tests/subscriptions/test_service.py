"""Subscribing and unsubscribing a source: what is sent to the EHR, what is kept here (never the secret)."""

from __future__ import annotations

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.db import session_scope
from discharge_bridge.fhir import FhirAuthError, FhirClient
from discharge_bridge.sources.models import Source, SourceMode
from discharge_bridge.subscriptions.models import PayloadContent, SourceSubscription, SubscriptionKind
from discharge_bridge.subscriptions.service import (
    BACKPORT_PROFILE,
    EXT_CONTENT,
    EXT_FILTER,
    EXT_HEARTBEAT,
    SubscribeRequest,
    SubscriptionError,
    safety_poll_interval,
    subscribe_source,
    unsubscribe_source,
)
from tests.subscriptions.conftest import SECRET, SECRET_ENV, Subscribe
from tests.subscriptions.stub_ehr import StubEhr
from tests.support.factories import make_source


def _posted(ehr: StubEhr) -> list[dict[str, object]]:
    return [
        orjson.loads(r.content) for r in ehr.requests if r.method == "POST" and r.url.path.endswith("/Subscription")
    ]


def _source(engine: Engine) -> Source:
    with Session(engine) as session:
        return session.exec(select(Source)).one()


def test_classic_subscription_carries_the_secret_header_only_to_the_ehr(
    subscribe: Subscribe, engine: Engine, ehr: StubEhr
) -> None:
    (row,) = subscribe()

    (sent,) = _posted(ehr)
    assert sent["criteria"] == "Encounter?class=IMP,ACUTE,NONAC"
    assert sent["status"] == "requested"
    assert sent["channel"] == {
        "type": "rest-hook",
        "endpoint": "https://bridge.test/webhooks/city",
        "header": [f"X-Discharge-Bridge-Secret: {SECRET}"],
        "payload": "application/fhir+json",
    }
    assert row.server_id in ehr.subscriptions and row.status == "active"
    assert (row.secret_env, row.secret_file, row.content) == (SECRET_ENV, None, PayloadContent.full_resource)
    with engine.connect() as conn:  # the secret is in no column of any table we wrote
        dumped = " ".join(str(v) for r in conn.execute(text("SELECT * FROM source_subscription")) for v in r)
        dumped += " ".join(str(v) for r in conn.execute(text("SELECT * FROM source")) for v in r)
    assert SECRET not in dumped
    source = _source(engine)
    assert source.mode == SourceMode.subscription
    with Session(engine) as session:
        assert safety_poll_interval(session, source) == 300 * 6


def test_backport_subscription_names_topic_filter_content_and_heartbeat(
    subscribe: Subscribe, engine: Engine, ehr: StubEhr
) -> None:
    topics = ("http://ehr.test/topic/admission", "http://ehr.test/topic/discharge")
    rows = subscribe(kind=SubscriptionKind.backport, topics=topics, heartbeat_seconds=120, safety_poll_factor=3)
    assert [r.criteria for r in rows] == list(topics)
    sent = _posted(ehr)[0]
    assert sent["meta"] == {"profile": [BACKPORT_PROFILE]}
    assert sent["criteria"] == topics[0]
    assert sent["_criteria"] == {"extension": [{"url": EXT_FILTER, "valueString": "Encounter?class=IMP,ACUTE,NONAC"}]}
    channel = sent["channel"]
    assert isinstance(channel, dict)
    assert channel["_payload"] == {"extension": [{"url": EXT_CONTENT, "valueCode": "id-only"}]}
    assert {"url": EXT_HEARTBEAT, "valueUnsignedInt": 120} in channel["extension"]
    with Session(engine) as session:
        assert safety_poll_interval(session, _source(engine)) == 900


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"secret_env": "NOT_SET_ANYWHERE"}, "NOT_SET_ANYWHERE"),
        ({"secret_env": None}, "exactly one of --secret-env or --secret-file"),
        ({"secret_env": "abc def"}, "NAME of an environment variable"),
        ({"public_url": "bridge.test"}, "public URL"),
        ({"content": PayloadContent.id_only}, "no id-only"),
        ({"kind": SubscriptionKind.backport}, "needs --topic"),
        ({"criteria": ("class=IMP",)}, "type and a search"),
        ({"safety_poll_factor": 0}, "at least 1"),
    ],
)
def test_requests_that_cannot_work_are_refused_before_the_ehr_is_asked(
    engine: Engine,
    fhir: FhirClient,
    ehr: StubEhr,
    stub_connections: None,
    request_fields: dict[str, object],
    message: str,
) -> None:
    with session_scope(engine) as session:
        make_source(session)
    fields = {"public_url": "https://bridge.test", "secret_env": SECRET_ENV} | request_fields
    with pytest.raises(SubscriptionError, match=message):
        subscribe_source("city", SubscribeRequest(**fields), engine=engine, client=fhir)  # type: ignore[arg-type]
    assert ehr.requests == []
    with Session(engine) as session:
        assert session.exec(select(SourceSubscription)).all() == []


def test_a_refused_subscription_leaves_nothing_behind(
    engine: Engine, fhir: FhirClient, ehr: StubEhr, stub_connections: None
) -> None:
    with session_scope(engine) as session:
        make_source(session)
    posts = 0

    def refuse_second(request: httpx.Request) -> httpx.Response | None:
        nonlocal posts
        if request.method == "POST":
            posts += 1
            if posts == 2:
                return httpx.Response(403)
        return None

    ehr.fail = refuse_second
    request = SubscribeRequest(
        public_url="https://bridge.test",
        secret_env=SECRET_ENV,
        criteria=("Encounter?class=IMP", "Encounter?class=ACUTE"),
    )
    with pytest.raises(FhirAuthError):
        subscribe_source("city", request, engine=engine, client=fhir)
    assert ehr.subscriptions == {}  # the first one was deleted again
    with Session(engine) as session:
        assert session.exec(select(SourceSubscription)).all() == []
    assert _source(engine).mode == SourceMode.poll


def test_subscribing_twice_is_refused_and_unsubscribe_cleans_both_sides(
    subscribe: Subscribe, engine: Engine, fhir: FhirClient, ehr: StubEhr
) -> None:
    subscribe()
    again = SubscribeRequest(public_url="https://bridge.test", secret_env=SECRET_ENV)
    with pytest.raises(SubscriptionError, match="already subscribed"):
        subscribe_source("city", again, engine=engine, client=fhir)

    assert unsubscribe_source("city", engine=engine, client=fhir) == []
    assert ehr.subscriptions == {}
    with Session(engine) as session:
        assert session.exec(select(SourceSubscription)).all() == []
        assert safety_poll_interval(session, _source(engine)) == 300
    assert _source(engine).mode == SourceMode.poll
    with pytest.raises(SubscriptionError, match="no subscriptions"):
        unsubscribe_source("city", engine=engine, client=fhir)
