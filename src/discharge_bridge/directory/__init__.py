"""The service directory: organisations and the help they give (FHIR Organization / HealthcareService)."""
