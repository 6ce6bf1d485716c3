"""A person's consent to share their data with non-clinical organisations (FHIR Consent)."""
