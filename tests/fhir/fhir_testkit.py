"""Constants and small fakes shared by the FHIR edge tests (imported, not a fixture module)."""

from __future__ import annotations

from dataclasses import dataclass

# Deliberately an IP and odd port: servers advertise "localhost:8090" in their links.
BASE = "http://127.0.0.1:54321/fhir"


@dataclass
class FakeClock:
    """Wall-clock stand-in that only moves when told to."""

    now: float

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
