"""How the lists (worklist, bed board) write a patient's sex, age and length of stay, in the reader's
language: "Female · 86 years", "24 days in hospital"."""

from __future__ import annotations

from typing import Any

from discharge_bridge.ui import i18n
from discharge_bridge.ui.case_labels import N_

SEX = {"male": N_("Male"), "female": N_("Female"), "other": N_("Other sex"), "unknown": N_("Sex unknown")}


def sex_label(value: str | None) -> str:
    return i18n.gettext(SEX[value]) if value in SEX else (value or "")


def age_label(age: int | None) -> str:
    return "" if age is None else i18n.ngettext("%(num)d year", "%(num)d years", age) % {"num": age}


def person_line(person: Any) -> str:
    """Sex and age of anything with ``sex`` and ``age`` (either part left out when unknown)."""
    if person is None:
        return ""
    return " · ".join(part for part in (sex_label(person.sex), age_label(person.age)) if part)


def stay_line(days: int | None) -> str:
    if days is None:
        return ""
    return i18n.ngettext("%(num)d day in hospital", "%(num)d days in hospital", days) % {"num": days}
