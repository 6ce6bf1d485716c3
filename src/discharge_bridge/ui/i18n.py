"""Translations (gettext catalogs through Babel) and locale-aware formatting for the pages.

Catalogs are ``.po`` files read at start-up and compiled in memory, so there is no build step and
no binary ``.mo`` file in the repository. Every ``.po`` of a language is merged into one catalog:
each page area keeps its own file, so areas can grow without touching each other's.
"""

from __future__ import annotations

import io
import re
from contextvars import ContextVar
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = {"en": "English", "ru": "Русский"}
DEFAULT_LANGUAGE = "en"

_current: ContextVar[str] = ContextVar("ui_language", default=DEFAULT_LANGUAGE)


@lru_cache
def translations(language: str) -> NullTranslations:
    folder = LOCALE_DIR / language / "LC_MESSAGES"
    merged: Translations | None = None
    for po in sorted(folder.glob("*.po")):
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=language)
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        loaded = Translations(buffer)
        if merged is None:
            merged = loaded
        else:
            merged.merge(loaded)
    return merged if merged is not None else NullTranslations()


def set_language(language: str) -> None:
    _current.set(language if language in LANGUAGES else DEFAULT_LANGUAGE)


def current_language() -> str:
    return _current.get()


def gettext(message: str) -> str:
    return translations(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_current.get()).ngettext(singular, plural, n)


def N_(message: str) -> str:  # the gettext convention for "translate later"
    return message


# Answers of the layers below the pages (sign-in and role checks in deps, services' refusals) that
# reach an error page as English text: the pattern of each, and the message the reader gets instead.
SERVER_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"^missing or wrong CSRF token: reload the page and retry$"),
        N_("The form was too old or came from another page (the CSRF check): reload the page and try again."),
    ),
    (
        re.compile(r"^your role may not do this \(needs (?P<permission>\w+)\)$"),
        N_("Your role may not do this (it needs the %(permission)s permission)."),
    ),
    (re.compile(r"^(?P<what>[a-z]+) (?P<key>\S+) not found$"), N_("Not found: %(what)s %(key)s.")),
)


def server_message(text: str) -> str:
    """An English answer of the service layers in the reader's language, when it is one the pages know;
    otherwise as it came (it may name a file, a field or a value the reader needs to see)."""
    for pattern, message in SERVER_MESSAGES:
        found = pattern.match(text)
        if found:
            return gettext(message) % found.groupdict() if found.groupdict() else gettext(message)
    return text


def pick_language(accept_language: str | None) -> str:
    """The first supported language of an Accept-Language header (for pages before sign-in)."""
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


def fmt_datetime(value: datetime | None, timezone: str = "UTC", *, with_zone: bool = False) -> str:
    """A time in the hospital's zone, in the reader's language ("1 Dec 2026, 09:30")."""
    if value is None:
        return "—"
    local = value.astimezone(ZoneInfo(timezone))
    text = _datetime_text(local.replace(tzinfo=None, second=0, microsecond=0), _current.get())
    return f"{text} {local.tzname()}" if with_zone else text


def fmt_date(value: date | datetime | None, timezone: str = "UTC") -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        value = value.astimezone(ZoneInfo(timezone)).date()
    return _date_text(value, _current.get())


# A page of 100 beds formats 300 dates, most of them the same few days: Babel parsed the locale and
# the pattern for each, a fifth of the board page's time (bench/worklist.py).
@lru_cache(maxsize=4096)
def _date_text(day: date, language: str) -> str:
    return format_date(day, "d MMM y", locale=_locale(language))


@lru_cache(maxsize=4096)
def _datetime_text(local: datetime, language: str) -> str:
    """``local``: the wall-clock time to the minute, without its zone (the pattern shows neither)."""
    return format_datetime(local, "d MMM y, HH:mm", locale=_locale(language))


@lru_cache(maxsize=8)
def _locale(language: str) -> Locale:
    return Locale.parse(language)
