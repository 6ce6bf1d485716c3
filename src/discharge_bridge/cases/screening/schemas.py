"""What the screening API accepts and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from discharge_bridge.cases.schemas import Input, Version
from discharge_bridge.cases.screening.models import ScreeningTool

LinkId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9.-]*$", max_length=64)]
AnswerCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]*$", max_length=64)]


class ScreeningStart(Input):
    tool: ScreeningTool = Field(description="brass or isar")


class ScreeningPatch(Input):
    answers: Annotated[dict[LinkId, AnswerCode | None], Field(max_length=64)] = Field(
        default_factory=dict, description="linkId -> answer code (the Questionnaire's answerOption code); null clears"
    )
    complete: bool = Field(default=False, description="Complete the screening: every item must be answered.")
    version: Version | None = None


class ScreeningOut(BaseModel):
    id: int
    case_id: int
    tool: str
    questionnaire: str = Field(description="The Questionnaire's canonical url|version.")
    status: str
    answers: dict[str, Any] = Field(description='linkId -> {"value", "source": prefilled | person, "evidence"}')
    unanswered: list[str]
    total: int | None = Field(description="Set once completed (the published total).")
    floor: int = Field(description="The points of the items answered so far.")
    maximum: int
    band: str | None
    created_by: str
    created_at: datetime
    completed_by: str | None
    completed_at: datetime | None
    updated_at: datetime
    version: int
