"""What can go wrong with the service directory.

The directory sits below the coordination domain, so these are its own errors; the API and the pages
translate them (a 404, or a 422 naming the field or the CSV line and column).
"""

from __future__ import annotations


class DirectoryError(Exception):
    """Any refusal of the directory; ``message`` is safe to show (no patient data ever reaches here)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OrganisationNotFound(DirectoryError, LookupError):
    def __init__(self, key: object) -> None:
        super().__init__(f"organisation {key} not found")


class ServiceNotFound(DirectoryError, LookupError):
    def __init__(self, key: object) -> None:
        super().__init__(f"service {key} not found")


class InvalidDirectoryInput(DirectoryError):
    """A value refused by a rule that needs the stored directory (a code taken, an unknown organisation)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ImportRefused(DirectoryError):
    """An import with bad rows: nothing was written. ``problems`` are ``(line, column, message)``,
    line 1 being the CSV header (or, for a bundle, the entry's index) and column a field name."""

    def __init__(self, problems: list[tuple[int, str, str]]) -> None:
        self.problems = problems
        lines = "; ".join(f"line {line}, {column}: {message}" for line, column, message in problems[:20])
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        super().__init__(f"the import was refused, nothing was written: {lines}{more}")
