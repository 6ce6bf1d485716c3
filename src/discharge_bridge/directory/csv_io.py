"""The directory as CSV: one row per service with its organisation's columns.

Lists (districts served, needs, documents) are ``;``-separated in one cell; a document is
``code=label``. Import is an upsert by ``code``, all or nothing: every bad cell of every row is
reported by line (the header is line 1) and column before anything is written. Export goes through
``spreadsheet`` so a cell that starts like a formula is quoted.
"""

from __future__ import annotations

import csv
from typing import IO, Any

from pydantic import ValidationError
from sqlmodel import Session

from discharge_bridge.directory.errors import ImportRefused
from discharge_bridge.directory.imports import ImportResult, check_organisations, check_services, upsert
from discharge_bridge.directory.models import DirectoryService, Organisation
from discharge_bridge.directory.schemas import OrganisationIn, ServiceRecord
from discharge_bridge.directory.service import list_services, organisations_by_id
from discharge_bridge.spreadsheet import write_rows

ORGANISATION_COLUMNS = ["code", "name", "kind", "phone", "email", "address", "fhir_base_url", "active"]
SERVICE_COLUMNS = [
    "code",
    "name",
    "category",
    "description",
    "area",
    "needs",
    "min_age",
    "max_age",
    "disability_required",
    "residence_required",
    "income_limit",
    "eligibility_note",
    "documents",
    "pays_for",
    "capacity",
    "waiting_days",
    "response_days",
    "requires_consent",
    "phone",
    "email",
    "hours",
    "active",
]
COLUMNS = [f"organisation_{c}" for c in ORGANISATION_COLUMNS] + SERVICE_COLUMNS
LIST_COLUMNS = frozenset({"area", "needs"})
BOOL_COLUMNS = frozenset({"active", "disability_required", "requires_consent"})
MAX_ROWS = 5_000
_TRUE = {"true", "yes", "1", "y", "да"}
_FALSE = {"false", "no", "0", "n", "нет"}


# -- export --------------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def service_row(service: DirectoryService, organisation: Organisation) -> list[Any]:
    row = [_cell(getattr(organisation, c)) for c in ORGANISATION_COLUMNS]
    for column in SERVICE_COLUMNS:
        value = getattr(service, column)
        if column in LIST_COLUMNS:
            row.append("; ".join(value))
        elif column == "documents":
            row.append("; ".join(f"{d['code']}={d['label']}" for d in value))
        else:
            row.append(_cell(value))
    return row


def write_csv(session: Session, out: IO[str]) -> int:
    """Every service, active or not, by organisation code then service code; returns the row count."""
    services = list_services(session, active_only=False)
    organisations = organisations_by_id(session, (s.organisation_id for s in services))
    rows = sorted(
        ((organisations[s.organisation_id], s) for s in services), key=lambda pair: (pair[0].code, pair[1].code)
    )
    write_rows(out, COLUMNS, (service_row(s, o) for o, s in rows))
    return len(rows)


# -- import --------------------------------------------------------------------------------------


def _unquote(text: str) -> str:
    """Undo the export's formula guard: a leading apostrophe before a formula character."""
    if text.startswith("'") and text[1:2] in ("=", "+", "-", "@"):
        return text[1:]
    return text


def _value(column: str, raw: str, problems: list[tuple[int, str, str]], line: int) -> Any:
    text = _unquote(raw.strip())
    if column in LIST_COLUMNS:
        return [part.strip() for part in text.split(";") if part.strip()]
    if column == "documents":
        documents = []
        for part in (p.strip() for p in text.split(";")):
            if not part:
                continue
            code, sep, label = part.partition("=")
            if not sep or not code.strip() or not label.strip():
                problems.append((line, column, f"a document is code=label, got {part!r}"))
                continue
            documents.append({"code": code.strip(), "label": label.strip()})
        return documents
    if text == "":
        return None
    if column in BOOL_COLUMNS:
        if text.casefold() in _TRUE:
            return True
        if text.casefold() in _FALSE:
            return False
        problems.append((line, column, f"true or false, got {text!r}"))
        return None
    return text


def _validation_problems(exc: ValidationError, line: int, prefix: str) -> list[tuple[int, str, str]]:
    found = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = [str(part) for part in error["loc"]]
        column = prefix + loc[0] if loc else "row"
        found.append((line, column, error["msg"]))
    return found


def read_records(text: str) -> tuple[list[OrganisationIn], list[ServiceRecord]]:
    """Parse and validate the whole file; ``ImportRefused`` with every problem, or the records."""
    problems: list[tuple[int, str, str]] = []
    reader = csv.DictReader(text.lstrip("\ufeff").splitlines())
    header = reader.fieldnames or []
    missing = [c for c in ("organisation_code", "organisation_name", "code", "name", "category") if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    problems += [(1, c, "required column missing") for c in missing]
    problems += [(1, c, "unknown column") for c in unknown]
    if problems:
        raise ImportRefused(problems)
    organisations: list[tuple[int, OrganisationIn]] = []
    services: list[tuple[int, ServiceRecord]] = []
    for index, row in enumerate(reader):
        line = index + 2
        if index >= MAX_ROWS:
            raise ImportRefused([(line, "row", f"at most {MAX_ROWS} services in one file")])
        if None in row:
            problems.append((line, "row", "more cells than columns"))
            continue
        org_values = {
            c: v
            for c in ORGANISATION_COLUMNS
            if (v := _value(c, row.get(f"organisation_{c}") or "", problems, line)) is not None
        }
        svc_values = {c: v for c in SERVICE_COLUMNS if (v := _value(c, row.get(c) or "", problems, line)) is not None}
        try:
            organisations.append((line, OrganisationIn(**org_values)))
        except ValidationError as exc:
            problems += _validation_problems(exc, line, "organisation_")
        try:
            services.append((line, ServiceRecord(**svc_values, organisation_code=org_values.get("code", ""))))
        except ValidationError as exc:
            problems += [p for p in _validation_problems(exc, line, "") if p[1] != "organisation_code"]
    distinct = check_organisations(organisations, problems)
    check_services(services, problems)
    if problems:
        raise ImportRefused(sorted(set(problems)))
    return list(distinct.values()), [s for _, s in services]


def import_csv(session: Session, text: str, *, actor: str, what: str = "csv") -> ImportResult:
    organisations, services = read_records(text)
    return upsert(session, organisations, services, actor=actor, what=what)
