"""The directory's service: create, change, search, remove (or deactivate when referred to); audited."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from discharge_bridge.audit.models import AdminAuditEntry
from discharge_bridge.cases.referrals.models import Referral
from discharge_bridge.db import session_scope
from discharge_bridge.directory.errors import InvalidDirectoryInput, OrganisationNotFound, ServiceNotFound
from discharge_bridge.directory.models import DirectoryService
from discharge_bridge.directory.schemas import OrganisationPatch, ServiceIn, ServicePatch
from discharge_bridge.directory.service import (
    get_organisation,
    get_service,
    list_services,
    organisation_by_code,
    remove_service,
    update_organisation,
    update_service,
)
from tests.directory.helpers import make_organisation, make_service
from tests.support.factories import flagged_case, make_source


def test_create_find_and_edit_write_the_audit_trail(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_organisation(session, "csso-north", name="ЦСО Северный")
        svc = make_service(session, org, "home-care-north", area=["Северный"], needs=["social", "daily_living"])
        assert organisation_by_code(session, "csso-north") is org and organisation_by_code(session, "nope") is None
        assert svc.id is not None and get_service(session, svc.id) is svc
        update_service(session, svc, ServicePatch(capacity="waitlist", waiting_days=30), actor="admin")
        update_service(session, svc, ServicePatch(capacity="waitlist"), actor="admin")  # no change: no entry
        update_organisation(session, org, OrganisationPatch(phone="+7 495 000-00-00"), actor="admin")
    with session_scope(engine) as session:
        entries = session.exec(select(AdminAuditEntry).order_by(col(AdminAuditEntry.id))).all()
        assert [(e.actor, e.action, e.target_name) for e in entries] == [
            ("tests", "directory.organisation_add", "csso-north"),
            ("tests", "directory.service_add", "home-care-north"),
            ("admin", "directory.service_edit", "home-care-north"),
            ("admin", "directory.organisation_edit", "csso-north"),
        ]
        assert entries[2].details == {"capacity": ["yes", "waitlist"], "waiting_days": [None, 30]}


def test_codes_are_unique_and_lookups_raise(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_organisation(session)
        make_service(session, org, "s1")
        with pytest.raises(InvalidDirectoryInput) as taken:
            make_service(session, org, "s1")
        assert taken.value.field == "code"
        with pytest.raises(InvalidDirectoryInput) as org_taken:
            make_organisation(session)
        assert org_taken.value.field == "code"
        with pytest.raises(InvalidDirectoryInput) as unknown:
            make_service(session, org, "s2", organisation_id=999)
        assert unknown.value.field == "organisation_id"
        with pytest.raises(ServiceNotFound):
            get_service(session, 999)
        with pytest.raises(OrganisationNotFound):
            get_organisation(session, 999)


def test_inputs_are_bounded_and_required_fields_cannot_be_cleared(engine: Engine) -> None:
    with pytest.raises(ValidationError, match="min_age is above max_age"):
        ServiceIn(code="x", organisation_id=1, name="x", category="hospice", min_age=80, max_age=60)
    with pytest.raises(ValidationError):
        ServiceIn(code="has space", organisation_id=1, name="x", category="hospice")
    with session_scope(engine) as session:
        svc = make_service(session, make_organisation(session), "s1", max_age=60)
        with pytest.raises(InvalidDirectoryInput) as cleared:
            update_service(session, svc, ServicePatch(name=None), actor="admin")
        assert cleared.value.field == "name"
        with pytest.raises(InvalidDirectoryInput) as ages:
            update_service(session, svc, ServicePatch(min_age=70), actor="admin")
        assert ages.value.field == "min_age"
        update_service(session, svc, ServicePatch(max_age=None), actor="admin")  # optional: may be cleared
        assert svc.max_age is None


def test_list_filters_by_category_activity_and_words_in_any_case(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_organisation(session, name="Фонд «Старость в радость»", kind="charity")
        closed = make_organisation(session, "closed", active=False)
        make_service(session, org, "c1", category="charity", name="Оплата сиделки", pays_for="сиделка, лекарства")
        make_service(session, org, "h1", category="home_care", name="Уход на дому")
        make_service(session, org, "old", category="home_care", name="Old", active=False)
        make_service(session, closed, "gone", category="home_care", name="Gone")
        assert [s.code for s in list_services(session)] == ["c1", "h1"]
        assert [s.code for s in list_services(session, category="home_care")] == ["h1"]
        assert {s.code for s in list_services(session, active_only=False)} == {"c1", "h1", "old", "gone"}
        assert [s.code for s in list_services(session, search="ЛЕКАРСТВА")] == ["c1"]
        assert [s.code for s in list_services(session, search="старость уход")] == ["h1"]


def test_a_service_referred_to_is_deactivated_not_deleted(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_organisation(session)
        unused, used = make_service(session, org, "unused"), make_service(session, org, "used")
        case = flagged_case(session, make_source(session).id or 0)
        assert used.id is not None and org.id is not None and case.id is not None
        session.add(Referral(case_id=case.id, service_id=used.id, organisation_id=org.id))
        session.flush()
        assert remove_service(session, unused, actor="admin") is True
        assert remove_service(session, used, actor="admin") is False
    with session_scope(engine) as session:
        rows = {s.code: s.active for s in session.exec(select(DirectoryService))}
        assert rows == {"used": False}
        actions = [e.action for e in session.exec(select(AdminAuditEntry).order_by(col(AdminAuditEntry.id)))][-2:]
        assert actions == ["directory.service_remove", "directory.service_edit"]


@pytest.mark.parametrize("url", ["http://[", "http://x:99999/", "ftp://fhir.example", "https://", "http://a\x00b"])
def test_a_fhir_endpoint_must_be_a_url_a_client_can_call(url: str) -> None:
    with pytest.raises(ValidationError):
        OrganisationPatch(fhir_base_url=url)
    assert OrganisationPatch(fhir_base_url="https://fhir.example/r4").fhir_base_url == "https://fhir.example/r4"
