"""Intune ``managedDevice`` records, built on request from the device, its owner and its Intune data.

Field names and order follow the official sample (``samples/graph/managedDevices-list.json``).
``azureADDeviceId`` is the Entra device's ``deviceId`` (not its object ``id``); the primary user
(``userId``, ``userPrincipalName``, ``userDisplayName``, ``emailAddress``) is the device's
registered owner, still shown while that user is only soft-deleted, and empty strings when the
device has none (as Intune writes them). Fields Intune leaves empty in list responses
(``ethernetMacAddress``, ``udid``, ``iccid``, ``meid``, ``physicalMemoryInBytes``) are null or 0.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from importer.sandbox.base import SandboxRequest
from importer.sandbox.data import DEVICE_FIELDS, MANAGED_FIELDS, USER_FIELDS
from importer.sandbox.directory import HARD, Directory
from importer.sandbox.odata import GraphError, dollar_params, parse_top
from importer.sandbox.tenant import TenantSettings
from importer.sandbox.tokens import TokenCodec

__all__ = ["INTUNE_CONTEXT", "get_managed", "list_managed", "managed_item", "select_managed"]

INTUNE_CONTEXT = "{base}/v1.0/$metadata#deviceManagement/managedDevices"
_D = {name: i for i, name in enumerate(DEVICE_FIELDS)}
_U = {name: i for i, name in enumerate(USER_FIELDS)}
_M = {name: i for i, name in enumerate(MANAGED_FIELDS)}
_OS = {"MacMDM": "macOS", "IPad": "iOS"}
_NEVER = "0001-01-01T00:00:00Z"


def managed_item(directory: Directory, device_id: str) -> dict[str, Any] | None:
    """The ``managedDevice`` for an Entra device, or None when Intune does not manage it."""
    intune = directory.managed.get(device_id)
    if intune is None:
        return None
    device = directory.devices.records[device_id]
    owner_id = directory.owners.get(device_id)
    owner = None
    if owner_id is not None and directory.users.state.get(owner_id) != HARD:
        owner = directory.users.records.get(owner_id)
    os_name = device[_D["operatingSystem"]]
    upn = owner[_U["userPrincipalName"]] if owner else ""
    enrolled = intune[_M["enrolledDateTime"]]
    return {
        "@odata.type": "#microsoft.graph.managedDevice",
        "id": intune[_M["id"]],
        "userId": owner[_U["id"]] if owner else "",
        "deviceName": device[_D["displayName"]],
        "managedDeviceOwnerType": intune[_M["managedDeviceOwnerType"]],
        "deviceActionResults": [],
        "enrolledDateTime": enrolled,
        "lastSyncDateTime": intune[_M["lastSyncDateTime"]],
        "operatingSystem": _OS.get(os_name, os_name),
        "complianceState": intune[_M["complianceState"]],
        "jailBroken": "False" if os_name in ("iOS", "IPad", "Android") else "Unknown",
        "managementAgent": intune[_M["managementAgent"]],
        "osVersion": device[_D["operatingSystemVersion"]],
        "easActivated": False,
        "easDeviceId": "",
        "easActivationDateTime": _NEVER,
        "azureADRegistered": True,
        "deviceEnrollmentType": intune[_M["deviceEnrollmentType"]],
        "activationLockBypassCode": None,
        "emailAddress": (owner[_U["mail"]] or "") if owner else "",
        "azureADDeviceId": device[_D["deviceId"]],
        "deviceRegistrationState": "registered",
        "deviceCategoryDisplayName": "Unknown",
        "isSupervised": intune[_M["isSupervised"]],
        "exchangeLastSuccessfulSyncDateTime": _NEVER,
        "exchangeAccessState": "none",
        "exchangeAccessStateReason": "none",
        "remoteAssistanceSessionUrl": None,
        "remoteAssistanceSessionErrorDetails": None,
        "isEncrypted": intune[_M["isEncrypted"]],
        "userPrincipalName": upn,
        "model": device[_D["Model"]] or "",
        "manufacturer": device[_D["Manufacturer"]] or "",
        "imei": intune[_M["imei"]],
        "complianceGracePeriodExpirationDateTime": "9999-12-31T23:59:59Z",
        "serialNumber": intune[_M["serialNumber"]],
        "phoneNumber": "",
        "androidSecurityPatchLevel": "",
        "userDisplayName": owner[_U["displayName"]] if owner else "",
        "configurationManagerClientEnabledFeatures": None,
        "wiFiMacAddress": intune[_M["wiFiMacAddress"]],
        "deviceHealthAttestationState": None,
        "subscriberCarrier": "",
        "meid": None,
        "totalStorageSpaceInBytes": intune[_M["totalStorageSpaceInBytes"]],
        "freeStorageSpaceInBytes": intune[_M["freeStorageSpaceInBytes"]],
        "managedDeviceName": f"{upn.split('@')[0] or 'userless'}_{_OS.get(os_name, os_name)}_{enrolled[:10]}",
        "partnerReportedThreatState": "unknown",
        "requireUserEnrollmentApproval": None,
        "managementCertificateExpirationDate": "2026-06-01T00:00:00Z",
        "iccid": None,
        "udid": None,
        "notes": None,
        "ethernetMacAddress": None,
        "physicalMemoryInBytes": 0,
    }


_NAMES: dict[str, str] = {}


def select_managed(item: dict[str, Any], select: str | None) -> dict[str, Any]:
    """Apply ``$select`` (case-insensitive) to a managedDevice; ``id`` and ``@odata.type`` always stay."""
    if select is None:
        return item
    if not _NAMES:
        _NAMES.update({key.lower(): key for key in item if not key.startswith("@")})
    out: dict[str, Any] = {"@odata.type": item["@odata.type"]}
    for raw in select.split(","):
        if not raw.strip():
            continue
        name = _NAMES.get(raw.strip().lower())
        if name is None:
            raise GraphError(
                400,
                "BadRequest",
                f"Could not find a property named '{raw.strip()}' on type 'microsoft.graph.managedDevice'.",
            )
        out[name] = item[name]
    out.setdefault("id", item["id"])
    return out


def _check_allowed(settings: TenantSettings) -> None:
    """403 when the tenant has no Intune or the app lacks DeviceManagementManagedDevices.Read.All."""
    if settings.intune_enabled and "DeviceManagementManagedDevices.Read.All" in settings.permissions:
        return
    if settings.intune_enabled:
        detail = (
            "Application is not authorized to perform this operation. Application must have one of the "
            "following scopes: DeviceManagementManagedDevices.Read.All, "
            "DeviceManagementManagedDevices.ReadWrite.All"
        )
    else:
        detail = "Request not applicable to target tenant."
    message = {
        "_version": 3,
        "Message": f"{detail} - Operation ID (for customer support): 00000000-0000-0000-0000-000000000000",
        "CustomApiErrorPhrase": "",
        "RetryAfter": None,
        "ErrorSourceService": "",
        "HttpHeaders": "{}",
    }
    raise GraphError(403, "Forbidden", json.dumps(message))  # Intune nests its error as a JSON string


def list_managed(
    directory: Directory, settings: TenantSettings, codec: TokenCodec, request: SandboxRequest
) -> dict[str, Any]:
    """One page of ``GET /deviceManagement/managedDevices`` (pages of 1000; ``$select``, ``$top``)."""
    _check_allowed(settings)
    params = dollar_params(request)
    position = 0
    if "$skiptoken" in params:
        state = codec.decode(params.pop("$skiptoken"))
        if state is None or state.get("t") != "m" or state.get("q") != params:
            raise GraphError(400, "BadRequest", "The specified page token value is not valid.")
        position = int(state["p"])
    if "$filter" in params or "$expand" in params or "$orderby" in params:
        raise GraphError(400, "BadRequest", "The sandbox supports only $select and $top on managedDevices.")
    top = min(parse_top(params.get("$top"), default=1000, maximum=999_999), 1000)
    select = params.get("$select")
    order, index = directory.managed_order, position
    value: list[dict[str, Any]] = []
    while index < len(order) and len(value) < top:
        item = managed_item(directory, order[index])
        index += 1
        if item is not None:
            value.append(select_managed(item, select))
    while index < len(order) and order[index] not in directory.managed:
        index += 1
    body: dict[str, Any] = {"@odata.context": INTUNE_CONTEXT.format(base=request.base_url)}
    if index < len(order):
        token = codec.encode({"t": "m", "p": index, "q": params})
        query = "".join(f"{k}={quote(v, safe=',$')}&" for k, v in params.items())
        body["@odata.nextLink"] = (
            f"{request.base_url}/v1.0/deviceManagement/managedDevices?{query}$skiptoken={token}"
        )
    body["value"] = value
    return body


def get_managed(
    directory: Directory, settings: TenantSettings, request: SandboxRequest, key: str
) -> dict[str, Any]:
    """``GET /deviceManagement/managedDevices/{id}``."""
    _check_allowed(settings)
    for device, record in directory.managed.items():
        if record[_M["id"]] == key.lower():
            item = managed_item(directory, device)
            if item is not None:
                body = {"@odata.context": INTUNE_CONTEXT.format(base=request.base_url) + "/$entity"}
                body.update(select_managed(item, dollar_params(request).get("$select")))
                return body
    raise GraphError(404, "ResourceNotFound", f"Resource not found for the segment '{key}'.")
