"""SMART App Launch (EHR launch and standalone): the case page opened inside the EHR."""
