"""Matching a person to services: pure, so plain objects stand in for the tables' rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from discharge_bridge.directory.matching import PersonNeeds, explain, suggest


@dataclass
class Svc:
    code: str
    category: str
    needs: list[str] = field(default_factory=list)
    area: list[str] = field(default_factory=list)
    min_age: int | None = None
    max_age: int | None = None
    disability_required: bool = False
    residence_required: str | None = None
    income_limit: str | None = None
    documents: list[dict[str, Any]] = field(default_factory=list)
    capacity: str = "yes"
    waiting_days: int | None = None
    active: bool = True
    organisation_id: int = 1
    id: int | None = 1
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.code


@dataclass
class Org:
    id: int | None = 1
    active: bool = True


ORGS = {1: Org(), 2: Org(2, active=False)}


def person(**kw: Any) -> PersonNeeds:
    values: dict[str, Any] = {
        "age": 82,
        "district": None,
        "needs": frozenset(),
        "disability": False,
        "flags": frozenset(),
    }
    values.update(kw)
    return PersonNeeds(**values)


def codes(found: list[Any]) -> list[str]:
    return [s.service.code for s in found]


def test_reasons_say_why_it_fits_and_what_is_unknown() -> None:
    home_care = Svc(
        "home-care",
        "home_care",
        needs=["social", "daily_living"],
        area=["Tverskoy"],
        min_age=60,
        documents=[{"code": "passport", "label": "Passport"}],
    )
    elder = person(
        needs=frozenset({"social", "daily_living", "daily_living.cook"}), flags=frozenset({"lives_alone", "dementia"})
    )
    [found] = suggest([home_care], elder, organisations=ORGS)
    assert found.fits == ["need:daily_living", "need:social", "alone:cook>home_care", "age:82>=60"]
    assert found.misses == ["district_unknown"]
    assert found.documents == [{"code": "passport", "label": "Passport"}]
    assert [explain(r) for r in found.fits] == [
        "needs: daily living",
        "needs: social",
        "lives alone + cannot cook -> home care",
        "age 82 >= 60",
    ]
    geronto = Svc("geronto", "gerontology_centre", capacity="waitlist", waiting_days=30)
    [g] = suggest([geronto], elder, organisations=ORGS)
    assert g.fits == ["flag:dementia>gerontology_centre"] and g.misses == ["waitlist:30"]
    assert explain(g.fits[0]) == "dementia -> gerontology centre" and explain("waitlist:30") == "waiting list (30 days)"


def test_known_ineligibility_leaves_a_service_out_but_unknowns_do_not() -> None:
    services = [
        Svc("young-only", "psychologist", needs=["psychological"], max_age=17),
        Svc("other-district", "psychologist", needs=["psychological"], area=["Arbat"]),
        Svc("served", "psychologist", needs=["psychological"], area=["arbat", "Tverskoy"]),
        Svc("inactive", "psychologist", needs=["psychological"], active=False),
        Svc("closed-org", "psychologist", needs=["psychological"], organisation_id=2),
        Svc("unrelated", "legal_aid", needs=["legal"]),
    ]
    who = person(needs=frozenset({"psychological"}), district="Tverskoy")
    assert codes(suggest(services, who, organisations=ORGS)) == ["served"]
    unknown = person(age=None, needs=frozenset({"psychological"}))
    found = suggest(services, unknown, organisations=ORGS)
    assert codes(found) == ["other-district", "served", "young-only"]  # same score and misses: by name
    by_code = {s.service.code: s for s in found}
    assert by_code["young-only"].misses == ["age_unknown"]
    assert by_code["served"].misses == ["district_unknown"]


def test_ranked_by_score_then_fewer_misses() -> None:
    services = [
        Svc("full", "home_care", needs=["social"], capacity="no"),
        Svc("waiting", "home_care", needs=["social"], capacity="waitlist"),
        Svc("open", "home_care", needs=["social"]),
        Svc("two-needs", "social_protection", needs=["social", "material"]),
        Svc("disabled-only", "social_protection", needs=["social"], disability_required=True, income_limit="2 PM"),
    ]
    who = person(needs=frozenset({"social", "material"}))
    found = suggest(services, who, organisations=ORGS)
    assert codes(found) == ["two-needs", "open", "disabled-only", "waiting", "full"]  # a waiting list costs a point
    disabled = next(s for s in found if s.service.code == "disabled-only")
    assert disabled.misses == ["disability_not_recorded", "income:2 PM"]
    assert next(s for s in found if s.service.code == "full").misses == ["no_capacity"]


def test_flags_point_to_their_categories() -> None:
    services = [Svc(c, c) for c in ("guardianship", "social_protection", "social_home", "hospice", "charity")]
    found = suggest(services, person(flags=frozenset({"homeless", "no_guardian"})), organisations=ORGS)
    assert sorted(codes(found)) == ["guardianship", "social_home", "social_protection"]
    assert explain("flag:homeless>social_home") == "homeless -> social home"


CATEGORIES = ["home_care", "social_home", "gerontology_centre", "hospice", "psychologist", "legal_aid", "charity"]
DOMAINS = ["medical", "legal", "social", "psychological", "material", "daily_living"]
FLAGS = ["lives_alone", "dementia", "homeless", "disability", "no_guardian", "palliative"]

services_st = st.lists(
    st.builds(
        Svc,
        code=st.text("abcdef", min_size=1, max_size=6),
        category=st.sampled_from(CATEGORIES),
        needs=st.lists(st.sampled_from(DOMAINS), max_size=3, unique=True),
        area=st.lists(st.sampled_from(["Arbat", "Tverskoy"]), max_size=2, unique=True),
        min_age=st.none() | st.integers(0, 90),
        max_age=st.none() | st.integers(90, 120),
        capacity=st.sampled_from(["yes", "no", "waitlist"]),
    ),
    max_size=12,
)
people_st = st.builds(
    PersonNeeds,
    age=st.none() | st.integers(0, 110),
    district=st.none() | st.sampled_from(["Arbat", "Tverskoy", "Presnensky"]),
    needs=st.frozensets(st.sampled_from([*DOMAINS, "daily_living.cook", "daily_living.wash"])),
    disability=st.booleans(),
    flags=st.frozensets(st.sampled_from(FLAGS)),
)


@given(services_st, people_st)
def test_every_suggestion_is_eligible_explained_and_ranked(services: list[Svc], who: PersonNeeds) -> None:
    found = suggest(services, who, organisations=ORGS)
    assert [s.score for s in found] == sorted((s.score for s in found), reverse=True)
    for s in found:
        assert s.fits, "a suggestion always says why"
        assert all(explain(r) != r for r in s.fits + s.misses)
        svc = s.service
        if who.age is not None:
            assert (svc.min_age or 0) <= who.age <= (svc.max_age if svc.max_age is not None else 200)
        if who.district is not None and svc.area:
            assert who.district.casefold() in {a.casefold() for a in svc.area}
    # Nothing known about the person: nothing suggested.
    assert suggest(services, person(age=who.age, district=who.district), organisations=ORGS) == []
