"""CSV exports that a spreadsheet opens safely: text starting like a formula is quoted.

Exported cells hold text other people chose (a user name typed at the sign-in form, an id the EHR
sent): a leading ``=``, ``+``, ``-``, ``@``, tab or carriage return would make Excel or LibreOffice
run it (OWASP "CSV injection"); a leading apostrophe makes it plain text.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> object:
    """``value`` as a CSV cell: text quoted when it starts like a formula; numbers and dates as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_rows(out: IO[str], header: list[str], rows: Iterable[Iterable[object]]) -> None:
    """A header and rows, every text cell made safe."""
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([cell(value) for value in row] for row in rows)
