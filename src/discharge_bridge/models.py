"""Every table, imported in one place so Alembic and ``SQLModel.metadata`` see the whole schema."""

from discharge_bridge.ingest.models import (
    ClinicalSnapshot,
    ConformanceIssue,
    DeadLetter,
    EncounterSnapshot,
    PatientSnapshot,
)
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.sources.models import Source, SyncRun

__all__ = [
    "ClinicalSnapshot",
    "ConformanceIssue",
    "DeadLetter",
    "EncounterSnapshot",
    "PatientSnapshot",
    "RiskAssessment",
    "Source",
    "SyncRun",
]
