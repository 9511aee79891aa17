"""Load, interpolate and validate the configuration file; report every problem at once.

Reading: YAML through ``yaml.safe_load`` only. Then ``${VAR}`` / ``${VAR:-default}`` in any
string reads the environment. ``secret:NAME`` stays a reference that the vault resolves later.
Validation is strict (unknown keys are errors) and happens in two passes over the same
document, so a single run of ``importer config check`` lists every problem with its key path:

1. shape and types (pydantic models below, ``extra="forbid"``);
2. meaning (``_check_mapping``): source fields exist, transforms fit the field's type,
   references name a mapped type, filters parse, labels and keys are consistent.

This is the only module that uses pydantic; the rest of the importer reads the frozen models.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from importer.errors import ConfigError, ConfigProblem
from importer.mapping import check_mapping

__all__ = [
    "ENV_CONFIG",
    "AssetsSettings",
    "AttributeSpec",
    "EntraSettings",
    "HttpConfig",
    "LoggingConfig",
    "MappingConfig",
    "MarkConfig",
    "ObjectTypeMapping",
    "ScheduleConfig",
    "Settings",
    "StateConfig",
    "SyncConfig",
    "VaultConfig",
    "config_json_schema",
    "is_secret_ref",
    "load_settings",
    "parse_settings",
    "secret_name",
]

ENV_CONFIG = "IMPORTER_CONFIG"
_SECRET_RE = re.compile(r"^secret:([A-Za-z0-9_.\-]+)$")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_EVERY_RE = re.compile(r"^@every\s+(\d+(?:\.\d+)?)\s*(s|m|h)$")


def is_secret_ref(value: object) -> bool:
    """True for a ``secret:NAME`` reference."""
    return isinstance(value, str) and bool(_SECRET_RE.match(value))


def secret_name(value: str) -> str:
    """The vault name in a ``secret:NAME`` reference."""
    match = _SECRET_RE.match(value)
    if not match:
        raise ValueError(f"not a secret reference: {value!r}")
    return match.group(1)


def _must_be_secret_ref(value: str) -> str:
    if not is_secret_ref(value):
        raise ValueError(
            "must be a vault reference like secret:NAME; secrets are never written in the config "
            "(store it with `importer secrets set NAME`)"
        )
    return value


SecretRef = Annotated[
    str,
    AfterValidator(_must_be_secret_ref),
    Field(json_schema_extra={"pattern": r"^secret:[A-Za-z0-9_.\-]+$"}),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# -- sections ---------------------------------------------------------------------------------


class EntraCertificate(_Model):
    """A certificate credential for the Entra app registration."""

    path: Path = Field(description="PEM holding the private key and certificate, or a .pfx/.p12 file")
    password: SecretRef | None = Field(None, description="vault reference for the key or PFX password")


class EntraSettings(_Model):
    """Microsoft Entra ID: the tenant, the app registration and the cloud."""

    tenant_id: str = Field(description="tenant GUID or domain, or secret:NAME")
    client_id: str = Field(description="application (client) id, or secret:NAME")
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
    email: str | None = Field(None, description="Atlassian account email, or secret:NAME")
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


class StateConfig(_Model):
    """Where runs keep delta links, the id map, run records and the lease."""

    backend: Literal["sqlite", "dynamodb"] = "sqlite"
    path: Path = Path("state.db")
    table: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    lease_s: float = Field(300.0, ge=10, le=3600, description="lease duration; renewed while a run works")


class ScheduleConfig(_Model):
    """When the daemon runs (cron expressions, or `@every 30s` / `@every 15m` / `@every 2h`)."""

    incremental: str | None = "*/15 * * * *"
    full: str | None = "0 3 * * *"
    timezone: str = "UTC"

    @field_validator("incremental", "full")
    @classmethod
    def _when(cls, value: str | None) -> str | None:
        if value is None or _EVERY_RE.match(value.strip()):
            return value
        fields = value.split()
        if len(fields) != 5:
            raise ValueError("a 5-field cron expression (minute hour day month weekday) or '@every 15m'")
        from importer.schedule import base_trigger  # the scheduler's own reading (crontab weekdays)

        try:
            base_trigger(value, "UTC")
        except ValueError as exc:
            raise ValueError(f"invalid cron expression: {exc}") from None
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


# -- loading ------------------------------------------------------------------------------------


def load_settings(
    path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read, interpolate and validate a config file; raise ``ConfigError`` listing every problem.

    ``path`` defaults to ``$IMPORTER_CONFIG`` or ``./config.yaml``. Relative paths inside the
    file (vault, state, logs, certificate, CA bundle) are relative to the file's directory.
    """
    env = os.environ if environ is None else environ
    file = Path(path or env.get(ENV_CONFIG) or "config.yaml")
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {file} (use --config or ${ENV_CONFIG})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {file}: {exc.__class__.__name__}") from None
    return parse_settings(text, source=file, environ=env)


def parse_settings(
    text: str, *, source: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Validate configuration text (see ``load_settings``)."""
    label = str(source) if source else None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise ConfigError(f"not valid YAML: {where}{problem}", source=label) from None
    except RecursionError:  # the YAML parser recurses per nesting level
        raise ConfigError("not valid YAML: nested too deeply to be a configuration", source=label) from None
    if raw is None:
        raise ConfigError("the file is empty", source=label)
    if not isinstance(raw, dict):
        raise ConfigError(
            "the top level must be a mapping of keys (instance:, entra:, assets:, ...)", source=label
        )
    problems: list[ConfigProblem] = []
    data = _interpolate(raw, "", os.environ if environ is None else environ, problems)
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc))
    problems.extend(check_mapping(data.get("mapping"), data.get("sync")))
    problems.extend(_check_credentials(data))
    if problems:
        raise ConfigError(_dedupe(problems), source=label)
    assert settings is not None
    base = source.parent if source else Path.cwd()
    return _with_paths_resolved(settings, base, source)


def _interpolate(
    node: Any,
    path: str,
    env: Mapping[str, str],
    problems: list[ConfigProblem],
    ancestors: frozenset[int] = frozenset(),
) -> Any:
    if isinstance(node, dict | list):
        if id(node) in ancestors:  # `a: &x [*x]`: a YAML alias inside its own anchor
            problems.append(ConfigProblem(path, "refers to itself (a recursive YAML &anchor / *alias)"))
            return None
        ancestors = ancestors | {id(node)}
    if isinstance(node, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(
                ConfigProblem(path, f"environment variable {name} is not set (write ${{{name}:-default}})")
            )
            return ""

        return _ENV_RE.sub(sub, node)
    if isinstance(node, dict):
        return {k: _interpolate(v, _join(path, k), env, problems, ancestors) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, f"{path}[{i}]", env, problems, ancestors) for i, v in enumerate(node)]
    return node


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _loc_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after[_must_be_secret_ref(), str]",) or part.startswith(("function-", "str")):
            continue
        else:
            out = _join(out, part)
    return out


_FRIENDLY = {
    "missing": "required key is missing",
    "extra_forbidden": "unknown key",
}


def _pydantic_problems(exc: ValidationError) -> Iterator[ConfigProblem]:
    for err in exc.errors(include_url=False):
        path = _loc_path(tuple(err["loc"]))
        kind = err["type"]
        message = _FRIENDLY.get(kind, err["msg"])
        if kind == "value_error":
            message = err["msg"].removeprefix("Value error, ")
        elif kind == "extra_forbidden":
            message = f"unknown key {path.rsplit('.', 1)[-1]!r}" + _expected_keys(path)
        elif kind not in _FRIENDLY and "input" in err and not isinstance(err["input"], (dict, list)):
            message = f"{message} (got {_show(err['input'])})"
        yield ConfigProblem(path, message)


def _expected_keys(path: str) -> str:
    """List the keys a section accepts, to make an 'unknown key' error actionable."""
    parent = path.rsplit(".", 1)[0] if "." in path else ""
    model: type[BaseModel] | None = Settings
    for part in re.split(r"\.|\[\d+\]", parent):
        if not part or model is None:
            continue
        field = model.model_fields.get(part) or next(
            (f for f in model.model_fields.values() if f.alias == part), None
        )
        model = _model_of(field.annotation) if field is not None else None
    if model is None:
        return ""
    names = sorted(f.alias or n for n, f in model.model_fields.items() if n != "source")
    return f"; expected one of: {', '.join(names)}"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_credentials(data: Mapping[str, Any]) -> Iterator[ConfigProblem]:
    entra = data.get("entra")
    if isinstance(entra, dict):
        has_secret = entra.get("client_secret") is not None
        has_cert = entra.get("certificate") is not None
        if has_secret == has_cert:
            yield ConfigProblem("entra", "set exactly one of client_secret (secret:NAME) or certificate")
    assets = data.get("assets")
    if isinstance(assets, dict) and assets.get("auth", "basic") == "basic" and not assets.get("email"):
        yield ConfigProblem("assets.email", "required with auth: basic (the Atlassian account's email)")
    state = data.get("state")
    if isinstance(state, dict) and state.get("backend") == "dynamodb" and not state.get("table"):
        yield ConfigProblem("state.table", "required with backend: dynamodb")


def _dedupe(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in problems:
        if (p.path, p.message) not in seen:
            seen.add((p.path, p.message))
            out.append(p)
    return out


def _with_paths_resolved(settings: Settings, base: Path, source: Path | None) -> Settings:
    def fix(p: Path | None) -> Path | None:
        return None if p is None else (p if p.is_absolute() else (base / p))

    updates: dict[str, Any] = {
        "vault": settings.vault.model_copy(
            update={"path": fix(settings.vault.path), "passphrase_file": fix(settings.vault.passphrase_file)}
        ),
        "state": settings.state.model_copy(update={"path": fix(settings.state.path)}),
        "logging": settings.logging.model_copy(update={"dir": fix(settings.logging.dir)}),
        "http": settings.http.model_copy(update={"ca_bundle": fix(settings.http.ca_bundle)}),
        "source": source,
    }
    if settings.entra.certificate is not None:
        cert = settings.entra.certificate.model_copy(update={"path": fix(settings.entra.certificate.path)})
        updates["entra"] = settings.entra.model_copy(update={"certificate": cert})
    return settings.model_copy(update=updates)


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file, for editors (``importer config schema``)."""
    schema = Settings.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "importer configuration"
    schema.get("properties", {}).pop("source", None)
    return schema
