"""The configuration's shape: one frozen pydantic model per section, strict (unknown keys are errors)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from importer.vault._format import _NAME as _VAULT_NAME  # the names a vault can store

ENV_CONFIG = "IMPORTER_CONFIG"
_REF_PREFIX = "secret:"
_SECRET_RE = re.compile(rf"{_REF_PREFIX}({_VAULT_NAME.pattern})")  # used with fullmatch
_NAME_FORM = "lower-case letters, digits and _, starting with a letter, at most 63 characters"
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def is_secret_ref(value: object) -> bool:
    """True for a ``secret:NAME`` reference."""
    return isinstance(value, str) and bool(_SECRET_RE.fullmatch(value))


def secret_name(value: str) -> str:
    """The vault name in a ``secret:NAME`` reference."""
    match = _SECRET_RE.fullmatch(value)
    if not match:
        raise ValueError(f"not a secret reference: {value!r}")
    return match.group(1)


def _storable_name(value: str) -> str:
    """Refuse a ``secret:NAME`` whose NAME the vault could never store (it would never resolve)."""
    if value.startswith(_REF_PREFIX) and not is_secret_ref(value):
        # the name is not repeated: it may be a secret pasted after "secret:" by mistake
        raise ValueError(
            f"the name after secret: cannot be stored in the vault: use {_NAME_FORM} "
            "(e.g. secret:jira_api_token)"
        )
    return value


def _must_be_secret_ref(value: str) -> str:
    _storable_name(value)
    if not is_secret_ref(value):
        raise ValueError(
            "must be a vault reference like secret:NAME; secrets are never written in the config "
            "(store it with `importer secrets set NAME`)"
        )
    return value


SecretRef = Annotated[
    str,
    AfterValidator(_must_be_secret_ref),
    Field(json_schema_extra={"pattern": f"^{_SECRET_RE.pattern}$"}),
]
# A plain value or a vault reference (tenant and client ids, the Atlassian email).
PlainOrSecret = Annotated[str, AfterValidator(_storable_name)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# -- sections ---------------------------------------------------------------------------------


class EntraCertificate(_Model):
    """A certificate credential for the Entra app registration."""

    path: Path = Field(description="PEM holding the private key and certificate, or a .pfx/.p12 file")
    password: SecretRef | None = Field(None, description="vault reference for the key or PFX password")


class EntraSettings(_Model):
    """Microsoft Entra ID: the tenant, the app registration and the cloud."""

    tenant_id: PlainOrSecret = Field(description="tenant GUID or domain, or secret:NAME")
    client_id: PlainOrSecret = Field(description="application (client) id, or secret:NAME")
    client_secret: SecretRef | None = Field(None, description="vault reference to the client secret value")
    certificate: EntraCertificate | None = Field(
        None, description="certificate credential instead of a secret"
    )
    cloud: Literal["global", "usgov", "usgov-dod", "china"] = "global"
    authority_host: str | None = Field(None, description="override, e.g. 127.0.0.1:8443 for the sandbox")
    graph_url: str | None = Field(None, description="override of the Graph root URL")
    owners: Literal["registered", "intune"] = Field(
        "registered",
        description="device owners from registeredOwners, or the Intune primary user (needs "
        "DeviceManagementManagedDevices.Read.All)",
    )

    @field_validator("tenant_id")
    @classmethod
    def _tenant(cls, value: str) -> str:
        if value.lower() in {"common", "organizations", "consumers"}:
            raise ValueError("must be your tenant's GUID or domain, not a multi-tenant alias")
        return value

    @field_validator("authority_host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and ("/" in value or not value):
            raise ValueError("a host[:port] without scheme or path, e.g. login.microsoftonline.com")
        return value


class AssetsSettings(_Model):
    """Jira Service Management Assets: where and as whom to write."""

    flavor: Literal["cloud", "datacenter"] = "cloud"
    site_url: str = Field(
        description="https://<site>.atlassian.net (Cloud) or the Jira base URL (Data Center)"
    )
    api_url: str = Field("https://api.atlassian.com", description="Cloud API gateway")
    workspace_id: str | None = Field(None, description="discovered from site_url when null")
    auth: Literal["basic", "pat"] = Field(
        "basic", description="basic (email + API token) or pat (Data Center)"
    )
    email: PlainOrSecret | None = Field(None, description="Atlassian account email, or secret:NAME")
    api_token: SecretRef = Field(description="vault reference to the API token (or the PAT)")
    schema_key: str = Field("ENTRA", alias="schema", description="object schema key")

    @field_validator("site_url", "api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")


class HttpConfig(_Model):
    """HTTP policy shared by every client."""

    ca_bundle: Path | None = Field(None, description="CA bundle that wins over REQUESTS_CA_BUNDLE")
    timeout_s: float = Field(30.0, gt=0, le=600, description="read timeout per request")
    connect_timeout_s: float = Field(10.0, gt=0, le=120)
    max_concurrency: int = Field(8, ge=1, le=64, description="parallel Assets writes")
    requests_per_minute: int = Field(900, ge=1, le=100_000, description="Assets budget for this instance")
    max_retries: int = Field(6, ge=0, le=20)
    max_retry_wait_s: float = Field(120.0, gt=0, le=3600, description="longest single wait honoured")
    retry_budget: int = Field(500, ge=0, description="token bucket for retries per run (5 per retry)")


class VaultConfig(_Model):
    """The encrypted credential store."""

    path: Path = Path("secrets.vault")
    kms_key_id: str | None = Field(None, description="AWS KMS key id or ARN wrapping the data key")
    kms_region: str | None = None
    kms_endpoint_url: str | None = None
    passphrase_file: Path | None = Field(
        None, description="file holding the encryption string (IMPORTER_ENCRYPTION_STRING[_FILE] win)"
    )
    require: list[Literal["passphrase", "kms"]] | None = Field(
        None,
        description="master keys that must all be present; default: kms if a key is set, else passphrase",
    )

    @field_validator("require")
    @classmethod
    def _kms_needs_a_key(
        cls, value: list[Literal["passphrase", "kms"]] | None, info: ValidationInfo
    ) -> list[Literal["passphrase", "kms"]] | None:
        # kms_key_id is validated first (field order); when it failed, that error says enough
        if value and "kms" in value and "kms_key_id" in info.data and not info.data["kms_key_id"]:
            raise ValueError(
                "lists kms, but vault.kms_key_id is not set (the AWS KMS key that wraps the data key)"
            )
        return value


class StateConfig(_Model):
    """Where runs keep delta links, the id map, run records and the lease."""

    backend: Literal["sqlite", "dynamodb"] = "sqlite"
    path: Path = Path("state.db")
    table: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    lease_s: float = Field(300.0, ge=10, le=3600, description="lease duration; renewed while a run works")


class ScheduleConfig(_Model):
    """When the daemon runs (cron expressions, or `@every 30s` / `@every 15m` / `@every 2h`).

    Each expression is checked with the daemon's own parser (``importer.schedule.base_trigger``).
    """

    incremental: str | None = "*/15 * * * *"
    full: str | None = "0 3 * * *"
    timezone: str = "UTC"

    @field_validator("incremental", "full")
    @classmethod
    def _when(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from importer.schedule import base_trigger  # the daemon's own reading, so it never refuses

        try:
            base_trigger(value, "UTC")
        except ValueError as exc:
            kind = "interval" if value.strip().startswith("@") else "cron expression"
            raise ValueError(f"invalid {kind}: {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Berlin)") from None
        return value


class SyncConfig(_Model):
    """What to do with objects that disappear, and the deletion guard."""

    missing: Literal["ignore", "mark", "delete"] = "mark"
    delete_max: int = Field(50, ge=0, description="more marks + deletes than this refuse the plan")
    delete_max_percent: float = Field(5.0, ge=0, le=100, description="... or more than this % of a type")
    max_failure_percent: float = Field(40.0, gt=0, le=100, description="abort apply above this failure rate")


class LoggingConfig(_Model):
    """Anonymized JSON log files and their retention."""

    dir: Path = Path("logs")
    retention_days: int = Field(60, ge=1, le=60, description="log files and run records older than this go")
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


# -- mapping ------------------------------------------------------------------------------------

Kind = Literal[
    "text", "textarea", "integer", "double", "boolean", "date", "datetime", "url", "email", "select",
    "reference", "user", "status",
]  # fmt: skip


class AttributeSpec(_Model):
    """One Assets attribute and where its value comes from (a plain string means ``from``)."""

    from_: str | None = Field(None, alias="from", description="source field (e.g. displayName; owner)")
    template: str | None = Field(None, description='e.g. "{givenName} {surname}"')
    transform: list[str | dict[str, Any]] = Field(
        default_factory=list, description="lower, upper, strip, date, {map: {...}}, {truncate: N}"
    )
    default: str | int | float | bool | None = Field(None, description="value when the source is null")
    reference: str | None = Field(None, description="name of the mapped type this attribute points to")
    user: bool = Field(False, description="write the Atlassian account found for this email")
    type: Kind | None = Field(None, description="Assets attribute type; inferred when omitted")
    options: list[str] = Field(default_factory=list, description="Select options (schema apply)")
    clear_on_null: bool = Field(False, description="blank the Assets value when the source is null")

    @classmethod
    def coerce(cls, value: object) -> object:
        """Accept the short form ``Attribute: sourceField``."""
        return {"from": value} if isinstance(value, str) else value


class MarkConfig(_Model):
    """How an object is marked when its source record disappears."""

    attribute: str = "Entra Status"
    value: str = "Removed from Entra"
    active: str | None = Field("Active", description="value written while the record exists")
    type: Literal["status", "select", "text"] = "status"


class ObjectTypeMapping(_Model):
    """One source (users, devices) mapped to one Assets object type."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="id used by references, e.g. users")
    source: Literal["users", "devices"]
    object_type: str = Field(min_length=1, description="Assets object type name")
    description: str = "Synced from Microsoft Entra ID by importer"
    icon: str | None = Field(None, description="icon name from Assets' global icons (schema apply)")
    key: str = Field("Entra Object ID", description="unique text attribute holding the Graph id")
    label: str = Field("Name", description="label attribute; must be one of the mapped attributes")
    filter: list[str] = Field(default_factory=list, description='e.g. userType == "Member"; all must hold')
    missing: Literal["ignore", "mark", "delete"] | None = Field(None, description="default: sync.missing")
    mark: MarkConfig = Field(default_factory=MarkConfig)
    attributes: dict[str, Annotated[AttributeSpec, Field()]] = Field(min_length=1)

    @field_validator("attributes", mode="before")
    @classmethod
    def _short_forms(cls, value: object) -> object:
        if isinstance(value, Mapping):
            return {k: AttributeSpec.coerce(v) for k, v in value.items()}
        return value

    @field_validator("filter", mode="before")
    @classmethod
    def _one_filter(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class MappingConfig(_Model):
    """Which Entra records become which Assets objects."""

    object_types: list[ObjectTypeMapping] = Field(min_length=1)


class Settings(_Model):
    """A whole, validated configuration."""

    instance: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$", description="names this installation"
    )
    entra: EntraSettings
    assets: AssetsSettings
    http: HttpConfig = Field(default_factory=HttpConfig)
    vault: VaultConfig = Field(default_factory=VaultConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    mapping: MappingConfig
    source: Path | None = Field(None, exclude=True, description="(set by the loader) the file read")

    def missing_policy(self, entry: ObjectTypeMapping) -> Literal["ignore", "mark", "delete"]:
        """The missing-object policy of one mapped type."""
        return entry.missing or self.sync.missing
