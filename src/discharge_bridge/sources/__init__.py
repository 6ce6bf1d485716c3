"""Sources: the hospitals' FHIR endpoints this deployment watches."""
