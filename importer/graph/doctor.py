"""``importer doctor`` for the Entra side: can we get a token, and read what the sync reads?

Each check costs one small request (``$top=1&$select=id``) and ends in a ``Check`` with a fix text
an administrator can act on: the exact permission and the admin-consent hint, or what the AADSTS
code means.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from importer.errors import ApiError, ImporterError
from importer.graph.credentials import GraphCredentialError
from importer.graph.errors import PERMISSIONS, GraphPermissionError, Need, permission_error
from importer.graph.models import Check

if TYPE_CHECKING:
    from importer.graph.client import GraphClient

__all__ = ["probe"]

_CONSENT = "grant admin consent (Entra admin center > App registrations > API permissions)"


def probe(client: GraphClient, *, intune: bool) -> list[Check]:
    """Run the checks in order; once no token can be had, the reads are reported as skipped."""
    checks = [_token_check(client)]
    targets: list[tuple[str, Need, str]] = [
        ("graph_users", "users", "/v1.0/users?$top=1&$select=id"),
        ("graph_devices", "devices", "/v1.0/devices?$top=1&$select=id"),
    ]
    if intune:
        targets.append(("graph_intune", "intune", "/v1.0/deviceManagement/managedDevices?$top=1&$select=id"))
    for name, need, path in targets:
        if not checks[0].ok:
            checks.append(Check(name=name, ok=False, detail="skipped: no token", fix=checks[0].fix))
            continue
        checks.append(_read_check(client, name, need, path))
    return checks


def _token_check(client: GraphClient) -> Check:
    auth = client.auth
    where = f"authority {auth.authority_base}, scope {auth.scope}"
    try:
        auth.token()
    except GraphCredentialError as exc:
        return Check(name="entra_token", ok=False, detail=str(exc), fix=exc.fix)
    except ImporterError as exc:
        return Check(
            name="entra_token",
            ok=False,
            detail=f"no token ({where}): {exc}",
            fix="check entra.cloud / entra.authority_host, the network path and http.ca_bundle",
        )
    return Check(name="entra_token", ok=True, detail=f"a token was issued ({where})")


def _read_check(client: GraphClient, name: str, need: Need, path: str) -> Check:
    permission = PERMISSIONS[need]
    try:
        body = client.get(f"{client.graph_url}{path}")
    except ImporterError as raw:
        exc = permission_error(raw, need)
        if isinstance(exc, GraphPermissionError):
            return Check(
                name=name,
                ok=False,
                detail=f"Graph refused the read: HTTP 403 {exc.code or ''}".rstrip(),
                fix=f"add the application permission {permission} and {_CONSENT}",
            )
        if isinstance(exc, GraphCredentialError):
            return Check(name=name, ok=False, detail=str(exc), fix=exc.fix)
        status = exc.status if isinstance(exc, ApiError) else None
        fix = "check entra.graph_url and the network path; retry later if Graph is throttling or failing"
        if need == "intune" and status == 400:
            fix = "the tenant may have no Intune licence; set owners to registeredOwners or license Intune"
        return Check(name=name, ok=False, detail=str(exc), fix=fix)
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        return Check(name=name, ok=False, detail=f"{path}: the answer is not a Graph collection", fix=None)
    return Check(name=name, ok=True, detail=f"{path.split('?', maxsplit=1)[0]} can be read ({permission})")
