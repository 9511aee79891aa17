"""Graph-specific errors, each a branch of ``importer.errors`` saying what the operator does next.

::

    ApiAuthError
    └── GraphPermissionError      403: the app lacks a permission or admin consent (named in the message)
    SourceIncompleteError
    ├── DeltaLinkExpiredError      the stored delta link is void: run a full read
    └── BrokenPagingError          a page was malformed, an item had no id, or the chain ended early
"""

from __future__ import annotations

from typing import Literal

from importer.errors import ApiAuthError, ApiError, SourceIncompleteError

__all__ = [
    "PERMISSIONS",
    "BrokenPagingError",
    "DeltaLinkExpiredError",
    "GraphPermissionError",
    "is_delta_expired",
    "permission_error",
]

Need = Literal["users", "devices", "owners", "intune"]

# What each read needs, least privileged first (graph-api.md section 5).
PERMISSIONS: dict[Need, str] = {
    "users": "User.Read.All",
    "devices": "Device.Read.All",
    "owners": "Device.Read.All",
    "intune": "DeviceManagementManagedDevices.Read.All",
}

_EXPIRED_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid"})


class GraphPermissionError(ApiAuthError):
    """Graph refused a read for lack of an application permission or of admin consent."""

    def __init__(self, base: ApiError, *, permission: str) -> None:
        self.permission = permission
        self.fix = f"grant the application permission {permission} and admin consent"
        super().__init__(**base.origin(), detail=self.fix)


class DeltaLinkExpiredError(SourceIncompleteError):
    """The delta link is no longer valid (400 syncStateNotFound, 410 Gone, resyncRequired)."""


class BrokenPagingError(SourceIncompleteError):
    """A page could not be used, so the read cannot be complete."""


def _codes(error: ApiError) -> set[str]:
    return {part.lower() for part in (error.code or "").split("/") if part}


def is_delta_expired(error: BaseException) -> bool:
    """True when ``error`` says the delta token is void and a full read is needed."""
    if not isinstance(error, ApiError):
        return False
    return error.status == 410 or (error.status in (400, 404) and bool(_codes(error) & _EXPIRED_CODES))


def permission_error(error: BaseException, need: Need) -> BaseException:
    """Name the missing permission on a 403; any other error comes back unchanged."""
    if (
        isinstance(error, ApiAuthError)
        and not isinstance(error, GraphPermissionError)
        and error.status == 403
    ):
        return GraphPermissionError(error, permission=PERMISSIONS[need])
    return error
