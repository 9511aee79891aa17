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

from importer.config._load import config_json_schema, load_settings, parse_settings
from importer.config._models import (
    ENV_CONFIG,
    AssetsSettings,
    AttributeSpec,
    EntraSettings,
    HttpConfig,
    LoggingConfig,
    MappingConfig,
    MarkConfig,
    ObjectTypeMapping,
    ScheduleConfig,
    Settings,
    StateConfig,
    SyncConfig,
    VaultConfig,
    is_secret_ref,
    secret_name,
)

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

# Layout: ``_models.py`` (the sections as pydantic models), ``_load.py`` (YAML, environment,
# validation passes, error paths, JSON Schema).
