"""Referrals to the service directory, followed until the help arrives (ServiceRequest + Task)."""
