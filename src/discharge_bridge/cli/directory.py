"""``discharge-bridge directory``: import and export the service directory.

An import is recorded in the audit trail of administration as done by ``cli:<the operating-system
user>`` (each organisation and service created or changed, and the import with its counts)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from discharge_bridge.cli.common import cli_actor, console, err, fail, ready_database
from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.directory import csv_io, fhir_io
from discharge_bridge.directory.errors import DirectoryError, ImportRefused

app = typer.Typer(no_args_is_help=True, help="The service directory: organisations and the help they give.")


@app.command("import")
def directory_import(
    file: Annotated[
        Path, typer.Argument(help="A CSV file (.csv) or a FHIR Bundle (.json).", exists=True, dir_okay=False)
    ],
) -> None:
    """Upsert organisations and services by code, all or nothing; every bad row is listed."""
    ready_database()
    suffix = file.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise fail("the file must end in .csv (CSV) or .json (a FHIR Bundle)")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read {file}: {exc}") from None
    try:
        with session_scope(get_engine()) as session:
            if suffix == ".csv":
                result = csv_io.import_csv(session, text, actor=cli_actor(), what=file.name)
            else:
                try:
                    data = json.loads(text)
                except ValueError as exc:
                    raise fail(f"{file} is not JSON: {exc}") from None
                result = fhir_io.import_bundle(session, data, actor=cli_actor(), what=file.name)
    except ImportRefused as exc:
        where = "entry" if suffix == ".json" else "line"
        for line, column, message in exc.problems:
            err.print(f"{file.name}: {where} {line}, {column}: {message}")
        raise fail(f"nothing was imported: {len(exc.problems)} problem(s)") from None
    except DirectoryError as exc:
        raise fail(exc.message) from None
    console.print(
        f"organisations: {result.organisations_created} added, {result.organisations_updated} changed; "
        f"services: {result.services_created} added, {result.services_updated} changed; "
        f"{result.unchanged} unchanged"
    )


@app.command("export")
def directory_export(
    fmt: Annotated[str, typer.Option("--format", help="csv | fhir")] = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
) -> None:
    """Every organisation and service, as CSV or as a FHIR R4 Bundle."""
    if fmt not in ("csv", "fhir"):
        raise fail("--format must be csv or fhir")
    ready_database()
    with session_scope(get_engine()) as session:
        if fmt == "csv":
            buffer = io.StringIO()
            csv_io.write_csv(session, buffer)
            text = buffer.getvalue()
        else:
            text = json.dumps(fhir_io.bundle(session), ensure_ascii=False, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"written to {output}")
