"""The needs assessment of a case: read, replace (with If-Match), append a flag correction."""

from __future__ import annotations

from fastapi import APIRouter, Response

from discharge_bridge.cases.assessment import add_flag_correction, put_assessment
from discharge_bridge.cases.repository import get_assessment
from discharge_bridge.cases.schemas import AssessmentOut, AssessmentPut, CorrectionIn
from discharge_bridge.deps import Actor, CurrentCase, IfMatch, SessionDep, expected_version, set_etag
from discharge_bridge.worklists.case_views import assessment_view

router = APIRouter(tags=["assessment"])


@router.get("/cases/{case_id}/assessment", response_model=AssessmentOut)
def assessment_get(case: CurrentCase, session: SessionDep, response: Response) -> AssessmentOut:
    """The assessment; an empty one at version 0 before the first PUT."""
    assert case.id is not None
    view = assessment_view(case.id, get_assessment(session, case.id))
    set_etag(response, view.version)
    return view


@router.put("/cases/{case_id}/assessment", response_model=AssessmentOut)
def assessment_put(
    case: CurrentCase, body: AssessmentPut, session: SessionDep, response: Response, actor: Actor, if_match: IfMatch
) -> AssessmentOut:
    """Replace domains, daily living and living situation. Needs If-Match or ``version`` (0 for the
    first PUT); a living situation that contradicts a flag appends a correction."""
    assert case.id is not None
    expected = expected_version("assessment", if_match, body.version, required=True)
    payload = body.model_dump(exclude={"version"})
    assessment = put_assessment(
        session,
        case,
        actor=actor,
        domains=payload["domains"],
        daily_living=payload["daily_living"],
        living_situation=payload["living_situation"],
        expected_version=expected,
    )
    session.flush()
    view = assessment_view(case.id, assessment)
    set_etag(response, view.version)
    return view


@router.post("/cases/{case_id}/assessment/corrections", response_model=AssessmentOut, status_code=201)
def assessment_correct(
    case: CurrentCase, body: CorrectionIn, session: SessionDep, response: Response, actor: Actor, if_match: IfMatch
) -> AssessmentOut:
    """Record that a flag is wrong (or confirmed) at the bedside; earlier corrections stay."""
    assert case.id is not None
    expected = expected_version("assessment", if_match, body.version, required=False)
    assessment = add_flag_correction(
        session,
        case,
        actor=actor,
        concept=body.concept,
        correct=body.correct,
        note=body.note,
        expected_version=expected,
    )
    session.flush()
    view = assessment_view(case.id, assessment)
    set_etag(response, view.version)
    return view
