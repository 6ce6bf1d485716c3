"""Validated screening tools answered at the bedside: BRASS and ISAR as FHIR Questionnaires."""
