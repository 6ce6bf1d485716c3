"""CDS Hooks cards from what a case shows (plain data in, the spec's card JSON out; no database).

No PHI beyond what the EHR already shows: no name, birth date or identifier of the patient; the
coordinator's name, the reasons' texts (rule texts such as "lives alone"), the next task and the
handoff's state are coordination facts. Text a person typed (a task's description) is escaped so it
cannot become a link or markup inside the EHR (a card's markdown is rendered there).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SOURCE_LABEL = "discharge_bridge"
SUMMARY_MAX = 139  # the spec: a "<140-character summary"
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#+!|~&])")


def escape(text: str) -> str:
    """``text`` as literal markdown: each special character backslash-escaped, line breaks as spaces."""
    return _MARKDOWN.sub(r"\\\1", " ".join(text.split()))


def _summary(text: str) -> str:
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1].rstrip() + "…"


@dataclass(frozen=True)
class NextTask:
    description: str
    due_at: datetime | None


@dataclass(frozen=True)
class CaseCardFacts:
    """What a card may say of one open case."""

    case_url: str  # absolute URL of our case page
    base_url: str  # absolute URL of this service (the card's source.url)
    priority: str | None
    coordinator: str | None  # a display name
    reasons: list[str] = field(default_factory=list)
    next_task: NextTask | None = None
    smart_launch_url: str | None = None  # our SMART launch URL when the source has SMART launch set up


@dataclass(frozen=True)
class DischargeGaps:
    """Why the discharge is not ready socially; empty lists and ``handoff_ok`` = all in order."""

    handoff_ok: bool
    handoff_state: str  # e.g. "no handoff arranged", "home with home care: referred"
    open_barriers: list[str] = field(default_factory=list)
    missing_documents: list[str] = field(default_factory=list)

    @property
    def in_order(self) -> bool:
        return self.handoff_ok and not self.open_barriers and not self.missing_documents


def _source(facts: CaseCardFacts) -> dict[str, Any]:
    return {"label": SOURCE_LABEL, "url": facts.base_url}


def _links(facts: CaseCardFacts, label: str) -> list[dict[str, Any]]:
    links: list[dict[str, Any]] = [{"label": label, "url": facts.case_url, "type": "absolute"}]
    if facts.smart_launch_url:
        links.append({"label": f"{label} (inside the EHR)", "url": facts.smart_launch_url, "type": "smart"})
    return links


def _date(value: datetime | None) -> str:
    return value.date().isoformat() if value is not None else "no due date"


def patient_view_card(facts: CaseCardFacts) -> dict[str, Any]:
    """The open case at a glance: priority, coordinator, why flagged, the next task; warning when high."""
    priority = facts.priority or "unrated"
    coordinator = facts.coordinator or "not assigned"
    lines = ["**Why flagged**"]
    lines += [f"- {escape(text)}" for text in facts.reasons] or ["- opened by hand (no risk reasons)"]
    if facts.next_task is not None:
        task = facts.next_task
        lines += ["", f"**Next task:** {escape(task.description)} (due {_date(task.due_at)})"]
    else:
        lines += ["", "**Next task:** none open"]
    return {
        "uuid": str(uuid.uuid4()),
        "summary": _summary(f"Social coordination: {priority} priority, coordinator {coordinator}"),
        "indicator": "warning" if facts.priority == "high" else "info",
        "detail": "\n".join(lines),
        "source": _source(facts),
        "links": _links(facts, "Open the coordination case"),
    }


def discharge_card(facts: CaseCardFacts, gaps: DischargeGaps) -> dict[str, Any] | None:
    """A warning naming what is missing before a safe discharge; ``None`` when all is in order."""
    if gaps.in_order:
        return None
    parts = []
    if not gaps.handoff_ok:
        parts.append("handoff not complete")
    if gaps.open_barriers:
        parts.append(f"{len(gaps.open_barriers)} barrier{'s' if len(gaps.open_barriers) != 1 else ''} open")
    if gaps.missing_documents:
        n = len(gaps.missing_documents)
        parts.append(f"{n} document{'s' if n != 1 else ''} missing")
    lines = [f"**Handoff:** {escape(gaps.handoff_state)}"]
    if gaps.open_barriers:
        lines += ["", "**Open barriers**"] + [f"- {escape(b)}" for b in gaps.open_barriers]
    if gaps.missing_documents:
        lines += ["", "**Documents missing**"] + [f"- {escape(d)}" for d in gaps.missing_documents]
    if facts.coordinator:
        lines += ["", f"**Coordinator:** {escape(facts.coordinator)}"]
    return {
        "uuid": str(uuid.uuid4()),
        "summary": _summary("Social discharge not ready: " + ", ".join(parts)),
        "indicator": "warning",
        "detail": "\n".join(lines),
        "source": _source(facts),
        "links": _links(facts, "Act on the coordination case"),
    }
