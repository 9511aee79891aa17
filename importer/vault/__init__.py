"""Credential vault: each secret under a data key, the data key under the operator's master key(s).

"Double encryption" here means envelope encryption. Every value is sealed with AES-256-GCM under
one random data key; the data key is sealed under a key-encryption key (KEK) that the operator
controls: derived with scrypt from their encryption string, or an AWS KMS data key, or both at
once (then the KMS ciphertext is itself sealed under the passphrase KEK and the two KEKs are
combined with HKDF, so neither alone opens the vault). The whole document carries an HMAC-SHA256
under a key derived from the data key, so any changed byte is detected.

File format, version 1: one canonical JSON document (sorted keys, indent 2, ASCII, final newline)::

    format, version, vault_id, instance, created_at, require: ["passphrase", "kms"]
    kek.passphrase  {kdf: "scrypt", n, r, p, salt}
    kek.kms         {key_id, encryption_context, ciphertext_blob, sealed_nonce (two-key mode)}
    data_key        {nonce, ciphertext}                 the data key under the KEK
    secrets.<name>  {nonce, ciphertext, set_at}         AAD binds vault id, version and name
    mac             {alg: "HMAC-SHA256", value}         over everything else, canonical form

Errors, all ``CredentialError`` (exit code 4); messages never hold a value or the passphrase::

    VaultError                 names the file (``path``)
    ├── VaultNotFoundError, VaultExistsError, VaultPermissionError, VaultChangedError, VaultWriteError
    ├── VaultCorruptError      not a vault / malformed      └── VaultTruncatedError
    ├── VaultTamperedError     integrity check failed
    ├── VaultVersionError      unknown format version
    ├── WrongKeyError          wrong encryption string, or tampered
    ├── PassphraseMissingError, RequireMismatchError, VaultUsageError
    ├── MissingSecretError     also a KeyError; lists every missing name
    └── KmsError               AWS KMS refused or failed (codes mapped in ``_kms_error``)
        ├── KmsAccessDeniedError, KmsContextError, KmsKeyMismatchError, KmsUnavailableError
        └── KmsKeyUnavailableError ── KmsKeyDisabledError, KmsKeyPendingDeletionError, KmsKeyNotFoundError

Layout: ``_settings`` (names, key sources, scrypt cost, the passphrase lookup), ``_format`` (the
document: parse, render), ``_keys`` (sealing, KEKs, MAC), ``_kms`` (AWS KMS), ``_file`` (reading
and atomic writes), ``_vault`` (the ``Vault``), ``_secret`` (``Secret``), ``_errors``.
"""

from __future__ import annotations

# Also reachable as importer.vault.os / importer.vault.register_secret: tests patch ``os.link``,
# ``os.replace`` and ``register_secret`` through the package, and ``_vault`` calls the latter as
# ``importer.vault.register_secret`` so that patch still takes effect.
import os as os

from importer.logs import register_secret as register_secret
from importer.vault._errors import (
    KmsAccessDeniedError,
    KmsContextError,
    KmsError,
    KmsKeyDisabledError,
    KmsKeyMismatchError,
    KmsKeyNotFoundError,
    KmsKeyPendingDeletionError,
    KmsKeyUnavailableError,
    KmsUnavailableError,
    MissingSecretError,
    PassphraseMissingError,
    RequireMismatchError,
    VaultChangedError,
    VaultCorruptError,
    VaultError,
    VaultExistsError,
    VaultNotFoundError,
    VaultPermissionError,
    VaultTamperedError,
    VaultTruncatedError,
    VaultUsageError,
    VaultVersionError,
    VaultWriteError,
    WrongKeyError,
)
from importer.vault._format import FORMAT_VERSION
from importer.vault._format import _Box as _Box
from importer.vault._format import _PassKek as _PassKek
from importer.vault._keys import _aad as _aad
from importer.vault._keys import _scrypt as _scrypt
from importer.vault._keys import _unseal as _unseal
from importer.vault._kms import KmsClient
from importer.vault._secret import Secret, SecretInfo
from importer.vault._settings import (
    DEFAULT_SCRYPT,
    ENTRA_CERT_PASSWORD,
    ENTRA_CLIENT_ID,
    ENTRA_CLIENT_SECRET,
    ENTRA_TENANT_ID,
    ENV_PASSPHRASE,
    ENV_PASSPHRASE_FILE,
    JIRA_API_TOKEN,
    JIRA_EMAIL,
    LOG_PEPPER,
    SOURCES,
    WELL_KNOWN,
    ScryptParams,
    VaultSettings,
    has_passphrase_source,
)
from importer.vault._vault import Vault, check_name

__all__ = [
    "DEFAULT_SCRYPT",
    "ENTRA_CERT_PASSWORD",
    "ENTRA_CLIENT_ID",
    "ENTRA_CLIENT_SECRET",
    "ENTRA_TENANT_ID",
    "ENV_PASSPHRASE",
    "ENV_PASSPHRASE_FILE",
    "FORMAT_VERSION",
    "JIRA_API_TOKEN",
    "JIRA_EMAIL",
    "LOG_PEPPER",
    "SOURCES",
    "WELL_KNOWN",
    "KmsAccessDeniedError",
    "KmsClient",
    "KmsContextError",
    "KmsError",
    "KmsKeyDisabledError",
    "KmsKeyMismatchError",
    "KmsKeyNotFoundError",
    "KmsKeyPendingDeletionError",
    "KmsKeyUnavailableError",
    "KmsUnavailableError",
    "MissingSecretError",
    "PassphraseMissingError",
    "RequireMismatchError",
    "ScryptParams",
    "Secret",
    "SecretInfo",
    "Vault",
    "VaultChangedError",
    "VaultCorruptError",
    "VaultError",
    "VaultExistsError",
    "VaultNotFoundError",
    "VaultPermissionError",
    "VaultSettings",
    "VaultTamperedError",
    "VaultTruncatedError",
    "VaultUsageError",
    "VaultVersionError",
    "VaultWriteError",
    "WrongKeyError",
    "check_name",
    "has_passphrase_source",
]
