"""The Entra source: MSAL app-only auth and Microsoft Graph reads of users, devices and owners.

``GraphAuth`` issues tokens; ``GraphClient`` reads. Every read comes back as a value saying
whether it is complete; only a credential error is raised.
"""

from __future__ import annotations

from importer.graph.auth import CLOUDS, GraphAuth, reset_app_cache
from importer.graph.client import GraphClient
from importer.graph.credentials import ClientCertificate, ClientSecret, GraphCredentialError
from importer.graph.errors import BrokenPagingError, DeltaLinkExpiredError, GraphPermissionError
from importer.graph.models import (
    Check,
    DeviceOwner,
    GraphRecord,
    GraphSource,
    OwnersRead,
    SourceRead,
    effective_select,
    select_fingerprint,
)

__all__ = [
    "CLOUDS",
    "BrokenPagingError",
    "Check",
    "ClientCertificate",
    "ClientSecret",
    "DeltaLinkExpiredError",
    "DeviceOwner",
    "GraphAuth",
    "GraphClient",
    "GraphCredentialError",
    "GraphPermissionError",
    "GraphRecord",
    "GraphSource",
    "OwnersRead",
    "SourceRead",
    "effective_select",
    "reset_app_cache",
    "select_fingerprint",
]
