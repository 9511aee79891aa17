"""AWS KMS as a key source: the client, the encryption context, and KMS errors mapped to advice.

boto3 is imported only when a vault actually uses KMS. Error codes become ``KmsError``
subclasses whose messages say what to run or change; AWS's own message text is never shown.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from importer.vault._errors import (
    KmsAccessDeniedError,
    KmsContextError,
    KmsError,
    KmsKeyDisabledError,
    KmsKeyMismatchError,
    KmsKeyNotFoundError,
    KmsKeyPendingDeletionError,
    KmsUnavailableError,
    VaultTamperedError,
)
from importer.vault._settings import VaultSettings

__all__ = ["KmsClient"]


class KmsClient(Protocol):
    """The three boto3 KMS calls the vault makes (a boto3 ``kms`` client fits)."""

    def generate_data_key(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def decrypt(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def describe_key(self, **kwargs: Any) -> Mapping[str, Any]: ...


def _context(instance: str, vault_id: str) -> dict[str, str]:
    return {"importer:instance": instance, "importer:vault": vault_id}


def _kms_client(settings: VaultSettings, key_id: str) -> KmsClient:
    import boto3
    from botocore.config import Config

    arn = key_id.split(":")
    region = settings.kms_region or (arn[3] if len(arn) > 5 and arn[0] == "arn" else None)
    config = Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 3, "mode": "standard"})
    client: KmsClient = boto3.client(
        "kms", region_name=region, endpoint_url=settings.kms_endpoint_url, config=config
    )
    return client


def _kms_error(
    path: Path, key_id: str, code: str, ctx: Mapping[str, str], stored: Mapping[str, str]
) -> KmsError:
    """Turn a KMS error code into an error that says what to do (no AWS message text, no values)."""
    key = f"{path}: AWS KMS key {key_id}"
    if code == "AccessDeniedException":
        return KmsAccessDeniedError(
            path,
            f"{path}: AWS KMS denied access to key {key_id} ({code}): allow this host's AWS identity "
            "kms:Decrypt and kms:GenerateDataKey on it with the importer's encryption context, and check "
            "that vault.kms_key_id names the key the vault was written with",
        )
    if code == "DisabledException":
        return KmsKeyDisabledError(
            path, f"{key} is disabled ({code}): `aws kms enable-key --key-id {key_id}`"
        )
    if code == "KMSInvalidStateException":
        return KmsKeyPendingDeletionError(
            path,
            f"{key} is scheduled for deletion or otherwise unusable ({code}): "
            f"`aws kms cancel-key-deletion --key-id {key_id}`, then enable it",
        )
    if code == "NotFoundException":
        return KmsKeyNotFoundError(
            path, f"{key} does not exist in this region ({code}): check vault.kms_key_id and vault.kms_region"
        )
    if code == "IncorrectKeyException":
        return KmsKeyMismatchError(
            path,
            f"{path}: the data key was not encrypted under AWS KMS key {key_id} ({code}): set "
            "vault.kms_key_id to the key the vault was written with",
        )
    if code == "InvalidCiphertextException":
        written_for = stored.get("importer:instance")
        hint = f" (it was written for {written_for!r})" if written_for != ctx["importer:instance"] else ""
        return KmsContextError(
            path,
            f"{path}: AWS KMS would not decrypt the data key with the encryption context of instance "
            f"{ctx['importer:instance']!r}{hint} ({code}): the vault belongs to another installation, "
            "or its KMS ciphertext was altered",
        )
    return KmsUnavailableError(path, f"{path}: AWS KMS failed ({code}); try again later")


@contextlib.contextmanager
def _kms_errors(path: Path, key_id: str, ctx: Mapping[str, str], stored: Mapping[str, str]) -> Iterator[None]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
        raise _kms_error(path, key_id, code, ctx, stored) from None
    except BotoCoreError as exc:
        raise KmsUnavailableError(
            path, f"{path}: cannot reach AWS KMS ({type(exc).__name__}); try again later"
        ) from None


def _check_key_state(client: KmsClient, path: Path, key_id: str, ctx: Mapping[str, str]) -> None:
    """Name a disabled or deleted key plainly, before a Decrypt that would only fail."""
    try:
        with _kms_errors(path, key_id, ctx, {}):
            state = client.describe_key(KeyId=key_id)["KeyMetadata"].get("KeyState", "Enabled")
    except KmsAccessDeniedError:
        return  # least-privilege roles may lack kms:DescribeKey; Decrypt then reports the state itself
    codes = {"Disabled": "DisabledException", "PendingDeletion": "KMSInvalidStateException"}
    if state != "Enabled":
        raise _kms_error(path, key_id, codes.get(state, "KMSInvalidStateException"), ctx, {})


@dataclass(frozen=True, slots=True)
class _Kms:
    """KMS access for one vault file: a client per key, errors mapped to what to do."""

    settings: VaultSettings
    client: KmsClient | None
    _cache: dict[str, KmsClient] = field(default_factory=dict)

    def _for(self, key_id: str) -> KmsClient:
        if self.client is not None:
            return self.client
        if key_id not in self._cache:
            self._cache[key_id] = _kms_client(self.settings, key_id)
        return self._cache[key_id]

    def generate(self, key_id: str, ctx: Mapping[str, str]) -> tuple[bytearray, bytes, str]:
        """A fresh 256-bit KEK, its ciphertext blob and the key's ARN."""
        client, path = self._for(key_id), self.settings.path
        _check_key_state(client, path, key_id, ctx)
        with _kms_errors(path, key_id, ctx, {}):
            reply = client.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=dict(ctx))
        return bytearray(reply["Plaintext"]), bytes(reply["CiphertextBlob"]), str(reply["KeyId"])

    def decrypt(
        self, key_id: str, blob: bytes, ctx: Mapping[str, str], stored: Mapping[str, str]
    ) -> bytearray:
        """The KEK behind ``blob``; KMS checks the key and the encryption context."""
        client, path = self._for(key_id), self.settings.path
        _check_key_state(client, path, key_id, ctx)
        with _kms_errors(path, key_id, ctx, stored):
            reply = client.decrypt(CiphertextBlob=blob, EncryptionContext=dict(ctx), KeyId=key_id)
        plain = bytearray(reply["Plaintext"])
        if len(plain) != 32:
            raise VaultTamperedError(
                path, f"{path}: the KMS data key has the wrong length; the file was altered"
            )
        return plain
