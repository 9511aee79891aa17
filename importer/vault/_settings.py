"""Vault configuration: secret names, key sources, scrypt cost, and where the passphrase comes from.

The encryption string is looked up in ``IMPORTER_ENCRYPTION_STRING``, then in the file named by
``IMPORTER_ENCRYPTION_STRING_FILE``, then in ``vault.passphrase_file``; it is never a command-line
argument and never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from importer.errors import ConfigError, ConfigProblem
from importer.vault._errors import PassphraseMissingError, VaultUsageError

__all__ = [
    "DEFAULT_SCRYPT",
    "ENTRA_CERT_PASSWORD",
    "ENTRA_CLIENT_ID",
    "ENTRA_CLIENT_SECRET",
    "ENTRA_TENANT_ID",
    "ENV_PASSPHRASE",
    "ENV_PASSPHRASE_FILE",
    "JIRA_API_TOKEN",
    "JIRA_EMAIL",
    "LOG_PEPPER",
    "MIN_PASSPHRASE_LENGTH",
    "SOURCES",
    "WELL_KNOWN",
    "ScryptParams",
    "VaultSettings",
    "has_passphrase_source",
]

ENTRA_TENANT_ID = "entra_tenant_id"
ENTRA_CLIENT_ID = "entra_client_id"
# S105: these are the names secrets are stored under, not secret values.
ENTRA_CLIENT_SECRET = "entra_client_secret"  # noqa: S105
ENTRA_CERT_PASSWORD = "entra_cert_password"  # noqa: S105
JIRA_EMAIL = "jira_email"
JIRA_API_TOKEN = "jira_api_token"  # noqa: S105
LOG_PEPPER = "log_pepper"
WELL_KNOWN = (
    ENTRA_TENANT_ID,
    ENTRA_CLIENT_ID,
    ENTRA_CLIENT_SECRET,
    ENTRA_CERT_PASSWORD,
    JIRA_EMAIL,
    JIRA_API_TOKEN,
    LOG_PEPPER,
)
ENV_PASSPHRASE = "IMPORTER_ENCRYPTION_STRING"  # noqa: S105  (a variable name)
ENV_PASSPHRASE_FILE = "IMPORTER_ENCRYPTION_STRING_FILE"  # noqa: S105
SOURCES = ("passphrase", "kms")  # canonical order, also the order the KEKs are combined in
MIN_PASSPHRASE_LENGTH = 12


@dataclass(frozen=True, slots=True, kw_only=True)
class ScryptParams:
    """scrypt cost parameters; the default (n = 2**15, r = 8, p = 1) is the interactive recommendation."""

    n: int = 2**15
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        ok = 2 <= self.n <= 2**20 and self.n & (self.n - 1) == 0 and 1 <= self.r <= 32 and 1 <= self.p <= 16
        if not ok or 128 * self.n * self.r * self.p > 2**30:
            raise ValueError("scrypt parameters out of range")


DEFAULT_SCRYPT = ScryptParams()


@dataclass(frozen=True, slots=True, kw_only=True)
class VaultSettings:
    """Where the vault is and which master keys protect it (config section ``vault``)."""

    path: Path
    instance: str
    kms_key_id: str | None = None
    kms_region: str | None = None
    kms_endpoint_url: str | None = None
    passphrase_file: Path | None = None
    require: tuple[str, ...] = ()  # empty: ("kms",) when a KMS key is set, else ("passphrase",)

    def __post_init__(self) -> None:
        require = self.require or (("kms",) if self.kms_key_id else ("passphrase",))
        unknown = sorted(set(require) - set(SOURCES))
        if unknown:
            raise ConfigError([ConfigProblem("vault.require", f"unknown key source {unknown[0]!r}")])
        if "kms" in require and not self.kms_key_id:
            raise ConfigError([ConfigProblem("vault.kms_key_id", "required when vault.require has kms")])
        object.__setattr__(self, "require", tuple(s for s in SOURCES if s in require))


def _find_passphrase(settings: VaultSettings, environ: Mapping[str, str], path: Path) -> str | None:
    value = environ.get(ENV_PASSPHRASE)
    if value:
        return value
    name = environ.get(ENV_PASSPHRASE_FILE) or (
        str(settings.passphrase_file) if settings.passphrase_file else ""
    )
    if not name:
        return None
    try:
        text = Path(name).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise PassphraseMissingError(
            path, f"cannot read the encryption string file {name} for {path}: {reason}"
        ) from None
    if not text:
        raise PassphraseMissingError(path, f"the encryption string file {name} for {path} is empty")
    return text


def has_passphrase_source(settings: VaultSettings, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether an encryption string is configured (env var, env-named file or vault.passphrase_file)."""
    return bool(environ.get(ENV_PASSPHRASE) or environ.get(ENV_PASSPHRASE_FILE) or settings.passphrase_file)


def _passphrase(settings: VaultSettings, environ: Mapping[str, str], path: Path) -> str:
    found = _find_passphrase(settings, environ, path)
    if found is None:
        raise PassphraseMissingError(
            path,
            f"no encryption string for {path}: set {ENV_PASSPHRASE}, or {ENV_PASSPHRASE_FILE} to the path "
            "of a file that holds it, or vault.passphrase_file in the configuration",
        )
    from importer.anonymize import register_secret

    register_secret(found)  # the encryption string is redacted from every log line, like the secrets
    return found


def _check_new_passphrase(path: Path, passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise VaultUsageError(
            path, f"the encryption string must be at least {MIN_PASSPHRASE_LENGTH} characters"
        )
