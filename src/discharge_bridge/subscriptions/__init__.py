"""Push from the EHR: FHIR Subscriptions (classic R4 and the Backport IG), their webhook and recovery."""
