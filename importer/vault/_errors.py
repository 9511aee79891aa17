"""The vault's errors: all ``CredentialError`` (exit code 4), each naming the vault file.

Messages never hold a secret value or the encryption string. The tree is drawn in the
``importer.vault`` package docstring; ``KmsError`` subclasses are chosen by ``_kms._kms_error``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from importer.errors import CredentialError

__all__ = [
    "KmsAccessDeniedError",
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
    "VaultChangedError",
    "VaultCorruptError",
    "VaultError",
    "VaultExistsError",
    "VaultNotFoundError",
    "VaultPermissionError",
    "VaultTamperedError",
    "VaultTruncatedError",
    "VaultUsageError",
    "VaultVersionError",
    "VaultWriteError",
    "WrongKeyError",
]


class VaultError(CredentialError):
    """The vault at ``path`` cannot be used as asked; the message says why and what to do."""

    def __init__(self, path: Path | str, message: str) -> None:
        self.path = str(path)
        super().__init__(message)


class VaultNotFoundError(VaultError):
    """There is no vault file yet."""


class VaultExistsError(VaultError):
    """``create`` refuses to overwrite an existing vault."""


class VaultPermissionError(VaultError):
    """The vault file is readable by group or others."""


class VaultChangedError(VaultError):
    """Another process changed the vault since it was opened; nothing was written."""


class VaultWriteError(VaultError):
    """The vault could not be written (disk full, read-only, no permission); the old file stands."""


class VaultCorruptError(VaultError):
    """The file is not a well-formed vault document."""


class VaultTruncatedError(VaultCorruptError):
    """The file ends early."""


class VaultTamperedError(VaultError):
    """The integrity check failed: the file changed after the importer wrote it."""


class VaultVersionError(VaultError):
    """The file uses a format version this importer does not read."""


class WrongKeyError(VaultError):
    """The key-encryption key does not unwrap the data key."""


class PassphraseMissingError(VaultError):
    """Passphrase mode is required but no encryption string was supplied."""


class RequireMismatchError(VaultError):
    """The vault is protected by fewer key sources than the configuration requires."""


class VaultUsageError(VaultError):
    """A request the vault cannot carry out (bad name, empty value, impossible rotation)."""


class MissingSecretError(VaultError, KeyError):
    """One or more secrets are not in the vault; ``names`` lists all of them."""

    def __init__(self, path: Path | str, names: Iterable[str]) -> None:
        self.names = tuple(names)
        listed = ", ".join(self.names)
        noun = "secret" if len(self.names) == 1 else "secrets"
        super().__init__(path, f"{path} is missing the {noun} {listed}: add with `importer secrets set NAME`")

    def __str__(self) -> str:
        return str(self.args[0])


class KmsError(VaultError):
    """AWS KMS refused or failed a call needed to open or write the vault."""


class KmsAccessDeniedError(KmsError):
    """KMS denied access (IAM or key policy, or a different key)."""


class KmsContextError(KmsError):
    """KMS would not decrypt with this installation's encryption context."""


class KmsKeyMismatchError(KmsError):
    """The vault's data key was encrypted under another KMS key."""


class KmsUnavailableError(KmsError):
    """KMS could not be reached or failed; trying later may work."""


class KmsKeyUnavailableError(KmsError):
    """The KMS key exists but cannot be used in its current state."""


class KmsKeyDisabledError(KmsKeyUnavailableError):
    """The KMS key is disabled."""


class KmsKeyPendingDeletionError(KmsKeyUnavailableError):
    """The KMS key is scheduled for deletion."""


class KmsKeyNotFoundError(KmsKeyUnavailableError):
    """The KMS key does not exist (in this region)."""
