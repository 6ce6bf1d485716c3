"""suggestions_for_case: what a case says about its person, matched against the stored directory."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine

from discharge_bridge.cases.assessment import put_assessment
from discharge_bridge.cases.referrals.suggestions import person_needs, suggestions_for_case
from discharge_bridge.db import session_scope
from tests.directory.helpers import make_organisation, make_service
from tests.support.factories import flagged_case, make_source, put_encounter

pytestmark = pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)
AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_a_case_gets_services_for_its_needs_flags_age_and_district(engine: Engine) -> None:
    with session_scope(engine) as session:
        source_id = make_source(session).id or 0
        case = flagged_case(session, source_id, concepts=("lives_alone", "dementia"))
        # The patient (born 1940-03-02) lives in Tverskoy district.
        put_encounter(session, source_id, "adm1", "p1", person={"address": [{"use": "home", "district": "Tverskoy"}]})
        put_assessment(
            session,
            case,
            actor="anna",
            domains={"social": {"findings": "", "needs": ["help at home"]}, "legal": {"findings": "", "needs": []}},
            daily_living={"cook": "needs_help", "wash": "dependent", "go_outside": "independent"},
            living_situation={},
            expected_version=None,
        )
        org = make_organisation(session)
        make_service(session, org, "home-care", category="home_care", needs=["social"], area=["Tverskoy"], min_age=60)
        make_service(session, org, "geronto", category="gerontology_centre", capacity="waitlist", waiting_days=20)
        make_service(session, org, "home-care-arbat", category="home_care", needs=["social"], area=["Arbat"])
        make_service(session, org, "legal", category="legal_aid", needs=["legal"])
        make_service(session, org, "children", category="psychologist", needs=["social"], max_age=17)

        who = person_needs(session, case, at=AT)
        assert who.age == 86 and who.district == "Tverskoy" and not who.disability
        assert who.needs == {"social", "daily_living", "daily_living.cook", "daily_living.wash"}
        assert {"lives_alone", "dementia"} <= who.flags

        found = suggestions_for_case(session, case, at=AT)
        assert [s.service.code for s in found] == ["home-care", "geronto"]
        assert found[0].fits == ["need:social", "alone:cook+wash>home_care", "age:86>=60", "district:Tverskoy"]
        assert found[1].fits == ["flag:dementia>gerontology_centre"] and found[1].misses == ["waitlist:20"]


def test_a_bedside_correction_removes_a_wrong_flag(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0, concepts=("lives_alone",))
        put_assessment(
            session,
            case,
            actor="anna",
            domains={},
            daily_living={"cook": "dependent"},
            living_situation={"lives_alone": False},
            expected_version=None,
        )
        org = make_organisation(session)
        make_service(session, org, "home-care", category="home_care")
        who = person_needs(session, case, at=AT)
        assert "lives_alone" not in who.flags and who.district is None
        assert suggestions_for_case(session, case, at=AT) == []
