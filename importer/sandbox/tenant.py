"""The simulated tenant's identity, its settings, and its clock.

``TenantIdentity`` holds the ids and credentials (all derived from the seed, so a given seed
always gives the same tenant). ``TenantSettings`` holds what the control API may change at run
time: granted permissions, Intune, token lifetime, an expired secret, delta-token expiry and
the few knobs that make delta rounds look like the real ones (page size, replays, empty pages).
``SimClock`` is wall-clock time plus an offset that only ever grows, so tests can make a week
pass in a second.
"""

from __future__ import annotations

import random
import string
import threading
import time
import uuid
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = [
    "ALL_PERMISSIONS",
    "DELTA_EXPIRY_MODES",
    "SettingsError",
    "SimClock",
    "TenantIdentity",
    "TenantSettings",
    "seeded_uuid",
]

ALL_PERMISSIONS = ("User.Read.All", "Device.Read.All", "DeviceManagementManagedDevices.Read.All")
DELTA_EXPIRY_MODES = ("sync_state_not_found", "gone")


class SettingsError(ValueError):
    """A control request asked for a setting that does not exist or has a wrong value."""


def seeded_uuid(rng: random.Random) -> str:
    """A version-4 GUID string drawn from ``rng`` (deterministic for a seeded generator)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class SimClock:
    """Simulated time: the wall clock plus an offset that ``advance`` increases."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Seconds since the epoch, as the simulated tenant sees them."""
        return time.time() + self._offset

    @property
    def offset(self) -> float:
        """Seconds the clock has been advanced so far."""
        return self._offset

    def advance(self, seconds: float) -> None:
        """Move simulated time forward (never backward)."""
        if seconds < 0:
            raise SettingsError("advance_clock must be >= 0")
        with self._lock:
            self._offset += seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantIdentity:
    """Ids and credentials of the simulated tenant, app registration and Jira site."""

    tenant_id: str
    tenant_domain: str
    client_id: str
    client_secret: str
    app_display_name: str
    workspace_id: str
    jira_email: str
    jira_api_token: str

    @classmethod
    def from_seed(cls, seed: int) -> TenantIdentity:
        """Derive every id and credential from ``seed``."""
        rng = random.Random(f"importer-sandbox-identity:{seed}")
        tenant_id = seeded_uuid(rng)
        client_id = seeded_uuid(rng)
        secret_chars = string.ascii_letters + string.digits + "_.-~"
        prefix = "".join(rng.choice(string.ascii_letters) for _ in range(3)) + str(rng.randrange(10))
        client_secret = prefix + "Q~" + "".join(rng.choice(secret_chars) for _ in range(34))
        token_chars = string.ascii_letters + string.digits + "-_"
        jira_api_token = (
            "ATATT3xFfGF0"
            + "".join(rng.choice(token_chars) for _ in range(180))
            + "="
            + "".join(rng.choice("0123456789ABCDEF") for _ in range(8))
        )
        return cls(
            tenant_id=tenant_id,
            tenant_domain="contoso.onmicrosoft.com",
            client_id=client_id,
            client_secret=client_secret,
            app_display_name="importer (sandbox)",
            workspace_id=seeded_uuid(rng),
            jira_email="importer-bot@contoso.com",
            jira_api_token=jira_api_token,
        )


@dataclass(slots=True, kw_only=True)
class TenantSettings:
    """Run-time settings of the simulated tenant (changed through ``POST /_sandbox/tenant``)."""

    permissions: set[str] = field(default_factory=lambda: set(ALL_PERMISSIONS))
    intune_enabled: bool = True
    token_lifetime: int = 3599  # seconds; keep > 300 or MSAL asks for a new token on every call
    secret_expired: bool = False
    delta_expiry_mode: str = "sync_state_not_found"
    delta_token_max_age: float = 7 * 86400.0  # seconds of simulated time
    delta_generation: int = 0  # bumped by expire_delta_tokens: every older token then fails
    delta_page_size: int = 200
    replay_every: int = 40  # about one object in N appears twice in a delta round; 0 = never
    empty_page_every: int = 9  # about one page in N comes back empty with a nextLink; 0 = never
    list_page_size: int = 100  # /users and /devices without $top

    def update(self, values: dict[str, Any], clock: SimClock) -> None:
        """Apply a control request; raises ``SettingsError`` and changes nothing when invalid."""
        pending: dict[str, Any] = {}
        known = {f.name for f in fields(self)} - {"delta_generation"}
        for key, value in values.items():
            if key == "advance_clock":
                if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                    raise SettingsError("advance_clock must be a number of seconds >= 0")
            elif key == "expire_delta_tokens":
                if not isinstance(value, bool):
                    raise SettingsError("expire_delta_tokens must be true or false")
            elif key not in known:
                raise SettingsError(f"unknown tenant setting {key!r}")
            else:
                pending[key] = _check(key, value)
        for key, value in pending.items():
            setattr(self, key, value)
        if values.get("expire_delta_tokens"):
            self.delta_generation += 1
        if "advance_clock" in values:
            clock.advance(float(values["advance_clock"]))

    def as_dict(self, clock: SimClock) -> dict[str, Any]:
        """The settings as JSON-ready values (plus the clock offset)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["permissions"] = sorted(self.permissions)
        out["clock_offset"] = clock.offset
        out["now"] = clock.now()
        return out


def _check(key: str, value: Any) -> Any:
    if key == "permissions":
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            raise SettingsError("permissions must be a list of strings")
        unknown = set(value) - set(ALL_PERMISSIONS)
        if unknown:
            raise SettingsError(f"unknown permissions {sorted(unknown)}; known: {list(ALL_PERMISSIONS)}")
        return set(value)
    if key in ("intune_enabled", "secret_expired"):
        if not isinstance(value, bool):
            raise SettingsError(f"{key} must be true or false")
        return value
    if key == "delta_expiry_mode":
        if value not in DELTA_EXPIRY_MODES:
            raise SettingsError(f"delta_expiry_mode must be one of {list(DELTA_EXPIRY_MODES)}")
        return value
    if key == "delta_token_max_age":
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise SettingsError("delta_token_max_age must be a number of seconds > 0")
        return float(value)
    minimum = {"token_lifetime": 1, "delta_page_size": 1, "list_page_size": 1}.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SettingsError(f"{key} must be an integer >= {minimum}")
    return value
