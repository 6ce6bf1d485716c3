"""discharge_bridge: discharge coordination on top of a hospital's FHIR R4 server."""

__version__ = "0.1.0"
