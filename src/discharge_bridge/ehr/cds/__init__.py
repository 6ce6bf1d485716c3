"""A CDS Hooks 2.0 service: patient-view and encounter-discharge cards from our cases."""
