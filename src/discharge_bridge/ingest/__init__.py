"""Ingest: fetch, parse, normalise and store FHIR resources, idempotently."""
