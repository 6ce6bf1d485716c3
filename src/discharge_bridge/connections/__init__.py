"""Hospital IT connects an EHR: setting a source up, checking the connection, its sync status."""
