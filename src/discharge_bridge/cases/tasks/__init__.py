"""The action plan: a case's tasks with FHIR Task status values and only the allowed transitions."""
