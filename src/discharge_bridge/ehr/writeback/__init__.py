"""Write-back: our Flag, RiskAssessment and coordination Tasks kept on the hospital's FHIR server."""
