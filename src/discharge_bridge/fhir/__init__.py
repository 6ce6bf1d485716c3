"""The FHIR edge: a small synchronous FHIR R4 client with retry, paging and SMART auth.

Everything public is re-exported here; the underscore modules are private. ``fields`` is the one
public module: the tolerant readers of resource fields (codes, references, dates) that ingest and
risk share, imported by name from ``discharge_bridge.fhir.fields``.
"""

from . import fields
from ._auth import AuthConfig, BearerTokenAuth, build_auth
from ._bulk import BadLine, BulkExportClient, BulkExportFailed, ExportFile, ExportManifest, ExportProgress
from ._client import FhirClient, SearchPage
from ._exceptions import (
    FhirAuthError,
    FhirError,
    FhirFatalError,
    FhirNotFound,
    FhirPagingLoop,
    FhirTemporaryError,
    FhirUnreadablePage,
)
from ._retry import RetryPolicy
from ._smart import SmartBackendAuth

__all__ = [
    "AuthConfig",
    "BadLine",
    "BearerTokenAuth",
    "BulkExportClient",
    "BulkExportFailed",
    "ExportFile",
    "ExportManifest",
    "ExportProgress",
    "FhirAuthError",
    "FhirClient",
    "FhirError",
    "FhirFatalError",
    "FhirNotFound",
    "FhirPagingLoop",
    "FhirTemporaryError",
    "FhirUnreadablePage",
    "RetryPolicy",
    "SearchPage",
    "SmartBackendAuth",
    "build_auth",
    "fields",
]
