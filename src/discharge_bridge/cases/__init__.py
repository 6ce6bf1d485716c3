"""Coordination cases: one per admission under coordination, its assessment, readiness, barriers and log."""
