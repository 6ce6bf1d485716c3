"""What can go wrong with a source's settings (``sources.service`` re-exports both)."""

from __future__ import annotations


class SourceError(ValueError):
    """A source definition that cannot be saved, with what to fix."""


class SourceNotFound(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no source named {name!r} (see `discharge-bridge sources list`)")
