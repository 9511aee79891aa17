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
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import os
import re
import shlex
import stat
import tempfile
import unicodedata
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, NoReturn, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

import importer.vault as _package
from importer.errors import ConfigError, ConfigProblem, CredentialError

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
FORMAT = "importer-vault"
FORMAT_VERSION = 1
SOURCES = ("passphrase", "kms")  # canonical order, also the order the KEKs are combined in
MIN_PASSPHRASE_LENGTH = 12
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_TIME = "%Y-%m-%dT%H:%M:%SZ"
_MAX_FILE = 4 * 1024 * 1024
_MAX_VALUE = 64 * 1024


# --- errors -----------------------------------------------------------------------------------


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


# --- values -----------------------------------------------------------------------------------


class Secret:
    """A decrypted credential; prints as ``***``, call :meth:`reveal` at the point of use."""

    __slots__ = ("_value",)
    __hash__: ClassVar[None] = None  # type: ignore[assignment]  # a hash would tell values apart

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The plain value; pass it straight to the API that needs it, never to a log."""
        return self._value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a Secret cannot be pickled or copied into storage")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: object) -> Secret:
        return self


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretInfo:
    """A secret's name and when it was last set; never its value."""

    name: str
    set_at: datetime


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


class KmsClient(Protocol):
    """The three boto3 KMS calls the vault makes (a boto3 ``kms`` client fits)."""

    def generate_data_key(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def decrypt(self, **kwargs: Any) -> Mapping[str, Any]: ...
    def describe_key(self, **kwargs: Any) -> Mapping[str, Any]: ...


# --- the document -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Box:
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class _Record:
    box: _Box
    set_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class _PassKek:
    params: ScryptParams
    salt: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class _KmsKek:
    key_id: str
    context: Mapping[str, str]
    blob: bytes
    sealed_nonce: bytes | None  # set when the blob is sealed under the passphrase KEK


@dataclass(frozen=True, slots=True, kw_only=True)
class _Doc:
    vault_id: str
    instance: str
    created_at: datetime
    require: tuple[str, ...]
    passphrase: _PassKek | None
    kms: _KmsKek | None
    data_key: _Box
    secrets: Mapping[str, _Record] = field(default_factory=dict)


class _Bad(Exception):
    """A structural problem found while parsing; becomes VaultCorruptError."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _box_json(box: _Box) -> dict[str, Any]:
    return {"nonce": _b64(box.nonce), "ciphertext": _b64(box.ciphertext)}


def _to_json(doc: _Doc) -> dict[str, Any]:
    kek: dict[str, Any] = {}
    if doc.passphrase is not None:
        prm = doc.passphrase.params
        kek["passphrase"] = {
            "kdf": "scrypt",
            "n": prm.n,
            "r": prm.r,
            "p": prm.p,
            "salt": _b64(doc.passphrase.salt),
        }
    if doc.kms is not None:
        sealed = doc.kms.sealed_nonce
        kek["kms"] = {
            "key_id": doc.kms.key_id,
            "encryption_context": dict(doc.kms.context),
            "ciphertext_blob": _b64(doc.kms.blob),
            "sealed_nonce": None if sealed is None else _b64(sealed),
        }
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "vault_id": doc.vault_id,
        "instance": doc.instance,
        "created_at": doc.created_at.strftime(_TIME),
        "require": list(doc.require),
        "kek": kek,
        "data_key": _box_json(doc.data_key),
        "secrets": {
            name: {**_box_json(rec.box), "set_at": rec.set_at.strftime(_TIME)}
            for name, rec in sorted(doc.secrets.items())
        },
    }


def _obj(value: object, where: str, keys: Iterable[str]) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != set(keys):
        raise _Bad(f"{where} must be an object with exactly the fields {', '.join(sorted(keys))}")
    return value


def _str(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _Bad(f"{where} must be a non-empty string")
    return value


def _int(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Bad(f"{where} must be an integer")
    return value


def _bytes(value: object, where: str, *, size: int | None = None, least: int = 1) -> bytes:
    try:
        data = base64.b64decode(_str(value, where), validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        raise _Bad(f"{where} is not valid base64") from None
    if (size is not None and len(data) != size) or len(data) < least:
        raise _Bad(f"{where} has the wrong length")
    return data


def _time(value: object, where: str) -> datetime:
    try:
        return datetime.strptime(_str(value, where), _TIME).replace(tzinfo=UTC)
    except ValueError:
        raise _Bad(f"{where} is not a UTC timestamp") from None


def _box(value: object, where: str, extra: Iterable[str] = ()) -> _Box:
    obj = _obj(value, where, ("nonce", "ciphertext", *extra))
    return _Box(
        nonce=_bytes(obj["nonce"], f"{where}.nonce", size=12),
        ciphertext=_bytes(obj["ciphertext"], where, least=16),
    )


def _from_json(top: dict[str, Any]) -> _Doc:
    keys = (
        "format",
        "version",
        "vault_id",
        "instance",
        "created_at",
        "require",
        "kek",
        "data_key",
        "secrets",
        "mac",
    )
    top = _obj(top, "the document", keys)
    require = top["require"]
    if not isinstance(require, list) or not require or require != [s for s in SOURCES if s in require]:
        raise _Bad("require must list passphrase and/or kms, in that order")
    kek = _obj(top["kek"], "kek", require)
    vault_id = _str(top["vault_id"], "vault_id")
    if not re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", vault_id):
        raise _Bad("vault_id is not a UUID")
    passphrase = kms = None
    if "passphrase" in kek:
        raw = _obj(kek["passphrase"], "kek.passphrase", ("kdf", "n", "r", "p", "salt"))
        if raw["kdf"] != "scrypt":
            raise _Bad("kek.passphrase.kdf must be scrypt")
        try:
            prm = ScryptParams(n=_int(raw["n"], "n"), r=_int(raw["r"], "r"), p=_int(raw["p"], "p"))
        except ValueError:
            raise _Bad("kek.passphrase has scrypt parameters out of range") from None
        passphrase = _PassKek(params=prm, salt=_bytes(raw["salt"], "kek.passphrase.salt", least=16))
    if "kms" in kek:
        raw = _obj(kek["kms"], "kek.kms", ("key_id", "encryption_context", "ciphertext_blob", "sealed_nonce"))
        context = _obj(
            raw["encryption_context"], "kek.kms.encryption_context", ("importer:instance", "importer:vault")
        )
        sealed = raw["sealed_nonce"]
        if (sealed is None) == ("passphrase" in require):
            raise _Bad("kek.kms.sealed_nonce must be set exactly when a passphrase is also required")
        kms = _KmsKek(
            key_id=_str(raw["key_id"], "kek.kms.key_id"),
            context={k: _str(v, f"kek.kms.encryption_context.{k}") for k, v in context.items()},
            blob=_bytes(raw["ciphertext_blob"], "kek.kms.ciphertext_blob"),
            sealed_nonce=None if sealed is None else _bytes(sealed, "kek.kms.sealed_nonce", size=12),
        )
    secrets_raw = top["secrets"]
    if not isinstance(secrets_raw, dict) or not all(_NAME.fullmatch(n) for n in secrets_raw):
        raise _Bad("secrets must be an object keyed by secret names")
    return _Doc(
        vault_id=vault_id,
        instance=_str(top["instance"], "instance"),
        created_at=_time(top["created_at"], "created_at"),
        require=tuple(require),
        passphrase=passphrase,
        kms=kms,
        data_key=_box(top["data_key"], "data_key"),
        secrets={
            name: _Record(
                box=_box(rec, f"secrets.{name}", ("set_at",)), set_at=_time(rec["set_at"], f"{name}.set_at")
            )
            for name, rec in secrets_raw.items()
        },
    )


def _mac_input(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _render(body: Mapping[str, Any], mac: bytes) -> bytes:
    document = {**body, "mac": {"alg": "HMAC-SHA256", "value": _b64(mac)}}
    return (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=True) + "\n").encode("ascii")


# --- cryptography -----------------------------------------------------------------------------


def _aad(vault_id: str, *parts: str) -> bytes:
    return json.dumps([FORMAT, FORMAT_VERSION, vault_id, *parts], separators=(",", ":")).encode()


def _hkdf(ikm: bytes | bytearray, info: str, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info.encode()).derive(bytes(ikm))


def _seal(key: bytes | bytearray, data: bytes | bytearray, aad: bytes) -> _Box:
    nonce = os.urandom(12)
    return _Box(nonce=nonce, ciphertext=AESGCM(bytes(key)).encrypt(nonce, bytes(data), aad))


def _unseal(key: bytes | bytearray, box: _Box, aad: bytes) -> bytes:
    return AESGCM(bytes(key)).decrypt(box.nonce, box.ciphertext, aad)  # raises InvalidTag


def _scrypt(passphrase: str, kek: _PassKek) -> bytearray:
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    prm = kek.params
    return bytearray(Scrypt(salt=kek.salt, length=32, n=prm.n, r=prm.r, p=prm.p).derive(secret))


def _combine(doc_id: str, require: tuple[str, ...], parts: list[bytearray]) -> bytes:
    """One KEK from every required source: losing any one of them loses the vault."""
    return _hkdf(b"".join(parts), f"{FORMAT}/{FORMAT_VERSION}/kek/{'+'.join(require)}", doc_id.encode())


def _mac(dek: bytes | bytearray, body: Mapping[str, Any]) -> bytes:
    key = _hkdf(dek, f"{FORMAT}/{FORMAT_VERSION}/mac")
    return hmac.digest(key, _mac_input(body), "sha256")


def _wipe(buf: bytearray | None) -> None:
    if buf is not None:
        buf[:] = bytes(len(buf))  # best effort: Python keeps no promise about other copies


# --- passphrase and KMS -----------------------------------------------------------------------


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
    return found


def _check_new_passphrase(path: Path, passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise VaultUsageError(
            path, f"the encryption string must be at least {MIN_PASSPHRASE_LENGTH} characters"
        )


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


def _read_vault(path: Path) -> bytes:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise VaultNotFoundError(
            path, f"no vault at {path}: create one with `importer secrets init`"
        ) from None
    except OSError as exc:
        raise VaultPermissionError(path, f"cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise VaultCorruptError(path, f"{path} is not a regular file")
    if info.st_mode & 0o077:
        raise VaultPermissionError(
            path,
            f"refusing to read {path}: its mode {stat.S_IMODE(info.st_mode):04o} lets group or others "
            f"read it; fix it with `chmod 600 {shlex.quote(str(path))}`",
        )
    if info.st_size > _MAX_FILE:
        raise VaultCorruptError(path, f"{path} is too large to be a vault ({info.st_size} bytes)")
    try:
        return path.read_bytes()
    except OSError as exc:  # e.g. owned by another user: run the command as the importer's user
        raise VaultPermissionError(
            path, f"cannot read {path}: {exc.strerror} (it belongs to uid {info.st_uid})"
        ) from None


def _parse(path: Path, raw: bytes) -> tuple[_Doc, bytes]:
    """Parse and check the structure; any change to the bytes is caught here or by the MAC later."""
    try:
        top = json.loads(raw.decode("ascii"))
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, absurd integers, nesting
        if not raw.endswith(b"\n}\n"):  # only the top-level object closes at column 0
            raise VaultTruncatedError(
                path,
                f"{path} is truncated ({len(raw)} bytes; the document ends early): restore it from a backup",
            ) from None
        raise VaultCorruptError(
            path, f"{path} is corrupted (not valid JSON): restore it from a backup"
        ) from None
    if not isinstance(top, dict) or top.get("format") != FORMAT:
        raise VaultCorruptError(path, f"{path} is not an importer vault file (or its header is corrupted)")
    version = top.get("version")
    if version != FORMAT_VERSION:
        raise VaultVersionError(
            path,
            f"{path} has vault format version {version!r}; this importer reads version {FORMAT_VERSION} only",
        )
    try:
        doc = _from_json(top)
        mac = _bytes(_obj(top["mac"], "mac", ("alg", "value"))["value"], "mac.value", size=32)
    except _Bad as exc:
        raise VaultCorruptError(path, f"{path} is corrupted: {exc}; restore it from a backup") from None
    if _render(_to_json(doc), mac) != raw:
        raise VaultTamperedError(
            path, f"{path} was modified: it is not byte for byte what the importer wrote (edited or damaged)"
        )
    return doc, mac


def _write(path: Path, data: bytes, *, exclusive: bool) -> None:
    """Write atomically: a 0600 temp file in the same directory, fsync, rename, fsync the directory."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise VaultWriteError(path, f"cannot write {path}: {exc.strerror}; nothing was changed") from None
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if not exclusive:
            os.replace(tmp, path)
        elif _link(tmp, path):  # a hard link never replaces an existing file
            os.unlink(tmp)
        elif path.exists():  # no hard links on this filesystem: check, then rename
            raise FileExistsError
        else:
            os.replace(tmp, path)
    except FileExistsError:
        raise VaultExistsError(path, f"{path} already exists; refusing to overwrite a vault") from None
    except OSError as exc:
        raise VaultWriteError(
            path, f"cannot write {path}: {exc.strerror}; the old file is unchanged"
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _link(src: str, dst: Path) -> bool:
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError:
        return False
    return True


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _store(path: Path, doc: _Doc, dek: bytearray, previous: bytes | None) -> bytes:
    """Authenticate and write ``doc``; ``previous`` None means create (never overwrite)."""
    body = _to_json(doc)
    data = _render(body, _mac(dek, body))
    if previous is not None:
        try:
            current: bytes | None = path.read_bytes()
        except FileNotFoundError:
            current = None
        if current != previous:
            raise VaultChangedError(
                path,
                f"{path} changed on disk since it was opened (another command?); nothing was written, retry",
            )
    _write(path, data, exclusive=previous is None)
    return data


def _encrypt(dek: bytearray, vault_id: str, name: str, value: str, set_at: datetime) -> _Record:
    key = _hkdf(dek, f"{FORMAT}/{FORMAT_VERSION}/secrets")
    return _Record(box=_seal(key, value.encode("utf-8"), _aad(vault_id, "secret", name)), set_at=set_at)


def _wrap(
    kms: _Kms,
    vault_id: str,
    require: tuple[str, ...],
    kek_p: bytearray | None,
    key_id: str | None,
    dek: bytearray,
) -> tuple[_KmsKek | None, _Box]:
    """Seal ``dek`` under every required source (a fresh KMS data key each time)."""
    parts = [kek_p] if kek_p is not None else []
    kms_kek = kek_k = None
    try:
        if key_id is not None:
            ctx = _context(kms.settings.instance, vault_id)
            kek_k, blob, arn = kms.generate(key_id, ctx)
            parts.append(kek_k)
            sealed = None
            if kek_p is not None:  # two-key mode: KMS access alone does not even reach the blob
                box = _seal(kek_p, blob, _aad(vault_id, "kms_blob"))
                blob, sealed = box.ciphertext, box.nonce
            kms_kek = _KmsKek(key_id=arn, context=ctx, blob=blob, sealed_nonce=sealed)
        kek = _combine(vault_id, require, parts)
        return kms_kek, _seal(kek, dek, _aad(vault_id, "data_key", *require))
    finally:
        _wipe(kek_k)


def _require(path: Path, sources: Iterable[str]) -> tuple[str, ...]:
    wanted = set(sources)
    if not wanted or wanted - set(SOURCES):
        raise VaultUsageError(path, "key sources must be passphrase and/or kms")
    return tuple(s for s in SOURCES if s in wanted)


def _check_name(path: Path, name: str) -> None:
    if not _NAME.fullmatch(name):
        raise VaultUsageError(
            path,
            "invalid secret name (not echoed, in case it was a value): use 1-63 lower-case letters, digits "
            "and _, starting with a letter",
        )


class Vault:
    """An open, verified vault, from :meth:`create` or :meth:`open`; values come out as :class:`Secret`."""

    def __init__(
        self,
        *,
        settings: VaultSettings,
        environ: Mapping[str, str],
        kms: _Kms,
        doc: _Doc,
        dek: bytearray,
        kek_p: bytearray | None,
        raw: bytes,
    ) -> None:
        self._settings, self._environ, self._kms = settings, environ, kms
        self._doc, self._dek, self._kek_p, self._raw = doc, dek, kek_p, raw

    @classmethod
    def create(
        cls,
        settings: VaultSettings,
        *,
        passphrase: str | None = None,
        environ: Mapping[str, str] = os.environ,
        kms_client: KmsClient | None = None,
        scrypt: ScryptParams = DEFAULT_SCRYPT,
    ) -> Vault:
        """Create a new vault with a generated ``log_pepper``; refuses to overwrite an existing file.

        Args:
            settings: where, and which key sources (``settings.require``).
            passphrase: the encryption string; default: from the environment or the passphrase file.
            environ: where ``IMPORTER_ENCRYPTION_STRING(_FILE)`` are looked up.
            kms_client: a boto3 KMS client; default: one built from the settings.
            scrypt: scrypt cost; only tests lower it.
        """
        path = settings.path
        if path.exists():
            raise VaultExistsError(path, f"{path} already exists; refusing to overwrite a vault")
        if passphrase is not None and "passphrase" not in settings.require:
            raise VaultUsageError(
                path, "an encryption string was given but vault.require does not include passphrase"
            )
        kms, vault_id, now = _Kms(settings, kms_client), str(uuid.uuid4()), _now()
        kek_p = pass_kek = None
        if "passphrase" in settings.require:
            phrase = passphrase if passphrase is not None else _passphrase(settings, environ, path)
            _check_new_passphrase(path, phrase)
            pass_kek = _PassKek(params=scrypt, salt=os.urandom(16))
            kek_p = _scrypt(phrase, pass_kek)
        dek = bytearray(os.urandom(32))
        key_id = settings.kms_key_id if "kms" in settings.require else None
        kms_kek, box = _wrap(kms, vault_id, settings.require, kek_p, key_id, dek)
        pepper = _b64(os.urandom(32))
        doc = _Doc(
            vault_id=vault_id,
            instance=settings.instance,
            created_at=now,
            require=settings.require,
            passphrase=pass_kek,
            kms=kms_kek,
            data_key=box,
            secrets={LOG_PEPPER: _encrypt(dek, vault_id, LOG_PEPPER, pepper, now)},
        )
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        raw = _store(path, doc, dek, None)
        _package.register_secret(pepper)
        return cls(settings=settings, environ=environ, kms=kms, doc=doc, dek=dek, kek_p=kek_p, raw=raw)

    @classmethod
    def open(
        cls,
        settings: VaultSettings,
        *,
        environ: Mapping[str, str] = os.environ,
        kms_client: KmsClient | None = None,
        check_require: bool = True,
    ) -> Vault:
        """Open and verify the vault; nothing is decrypted until :meth:`get`.

        Raises a :class:`VaultError` subclass when the file is missing, too open, damaged,
        tampered with, of another version, or the key sources are wrong or unavailable.
        ``check_require=False`` (used by ``rotate``) accepts a vault weaker than ``settings.require``.
        """
        path = settings.path
        raw = _read_vault(path)
        doc, mac = _parse(path, raw)
        if check_require and not set(settings.require) <= set(doc.require):
            raise RequireMismatchError(
                path,
                f"{path} is protected by {'+'.join(doc.require)} but the configuration requires "
                f"{'+'.join(settings.require)}: run `importer secrets rotate` to re-wrap it, "
                "or correct vault.require",
            )
        kms = _Kms(settings, kms_client)
        kek_p = kek_k = None
        try:
            parts: list[bytearray] = []
            if doc.passphrase is not None:
                kek_p = _scrypt(_passphrase(settings, environ, path), doc.passphrase)
                parts.append(kek_p)
            if doc.kms is not None:
                blob = doc.kms.blob
                if doc.kms.sealed_nonce is not None and kek_p is not None:
                    sealed = _Box(nonce=doc.kms.sealed_nonce, ciphertext=blob)
                    blob = _unseal(kek_p, sealed, _aad(doc.vault_id, "kms_blob"))
                ctx = _context(settings.instance, doc.vault_id)
                kek_k = kms.decrypt(settings.kms_key_id or doc.kms.key_id, blob, ctx, doc.kms.context)
                parts.append(kek_k)
            kek = _combine(doc.vault_id, doc.require, parts)
            dek = bytearray(_unseal(kek, doc.data_key, _aad(doc.vault_id, "data_key", *doc.require)))
        except InvalidTag:
            _wipe(kek_p)
            why = "wrong encryption string, or the file was tampered with"
            if doc.passphrase is None:
                why = "the data key does not unwrap under the KMS key, so the file was tampered with"
            raise WrongKeyError(path, f"cannot decrypt {path}: {why}") from None
        finally:
            _wipe(kek_k)
        if not hmac.compare_digest(_mac(dek, _to_json(doc)), mac):
            _wipe(dek)
            _wipe(kek_p)
            raise VaultTamperedError(
                path, f"{path} failed its integrity check: it was modified after the importer wrote it"
            )
        return cls(settings=settings, environ=environ, kms=kms, doc=doc, dek=dek, kek_p=kek_p, raw=raw)

    @property
    def path(self) -> Path:
        """The vault file."""
        return self._settings.path

    @property
    def require(self) -> tuple[str, ...]:
        """The key sources that protect this vault now."""
        return self._doc.require

    def names(self) -> list[SecretInfo]:
        """Every secret's name and when it was set, sorted by name; no values."""
        return [SecretInfo(name=n, set_at=r.set_at) for n, r in sorted(self._doc.secrets.items())]

    def get(self, name: str) -> Secret:
        """Decrypt one secret (registering it with the log redactor); MissingSecretError if absent."""
        record = self._doc.secrets.get(name)
        if record is None:
            raise MissingSecretError(self.path, [name])
        key = _hkdf(self._dek, f"{FORMAT}/{FORMAT_VERSION}/secrets")
        try:
            value = _unseal(key, record.box, _aad(self._doc.vault_id, "secret", name)).decode("utf-8")
        except (InvalidTag, UnicodeDecodeError):
            raise VaultTamperedError(
                self.path,
                f"{self.path}: secret {name!r} does not decrypt under its own name; the file was altered",
            ) from None
        _package.register_secret(value)
        return Secret(value)

    def resolve(self, refs: Iterable[str]) -> dict[str, Secret]:
        """Decrypt every named secret; MissingSecretError lists *all* the missing names at once."""
        names = list(dict.fromkeys(refs))
        missing = [n for n in names if n not in self._doc.secrets]
        if missing:
            raise MissingSecretError(self.path, missing)
        return {n: self.get(n) for n in names}

    def set(self, name: str, value: str) -> None:
        """Store (or replace) one secret and write the file atomically."""
        _check_name(self.path, name)
        if not value or len(value) > _MAX_VALUE or "\x00" in value:
            raise VaultUsageError(
                self.path, f"the value for {name} must be 1 to {_MAX_VALUE} characters, no NUL"
            )
        try:
            record = _encrypt(self._dek, self._doc.vault_id, name, value, _now())
        except UnicodeEncodeError:
            raise VaultUsageError(self.path, f"the value for {name} is not valid text") from None
        self._commit(replace(self._doc, secrets={**self._doc.secrets, name: record}), self._dek)
        _package.register_secret(value)

    def delete(self, name: str) -> None:
        """Remove one secret; MissingSecretError if absent."""
        if name not in self._doc.secrets:
            raise MissingSecretError(self.path, [name])
        secrets = {n: r for n, r in self._doc.secrets.items() if n != name}
        self._commit(replace(self._doc, secrets=secrets), self._dek)

    def verify(self) -> list[str]:
        """Decrypt every secret; returns their names (raises on the first that fails)."""
        for name in self._doc.secrets:
            self.get(name)
        return sorted(self._doc.secrets)

    def rotate(
        self,
        *,
        new_passphrase: str | None = None,
        to_kms: str | None = None,
        require: Iterable[str] | None = None,
        data_key: bool = False,
        scrypt: ScryptParams = DEFAULT_SCRYPT,
    ) -> None:
        """Re-wrap the data key under fresh key-encryption keys, and optionally replace the data key.

        Args:
            new_passphrase: a new encryption string; the old one stops working.
            to_kms: wrap under this KMS key (moving a passphrase-only vault to KMS unless
                ``require`` or the configuration also asks for the passphrase).
            require: the key sources afterwards; default: the configuration's ``vault.require``.
                Without it (or ``to_kms``), dropping a source the vault has is refused.
            data_key: generate a new data key and re-encrypt every value under it.
            scrypt: scrypt cost for a new passphrase; only tests lower it.
        """
        doc, path, settings = self._doc, self.path, self._settings
        if require is not None:
            target = _require(path, require)
        elif to_kms is not None:
            target = settings.require if "kms" in settings.require else ("kms",)
        else:
            target = settings.require
            dropped = [s for s in doc.require if s not in target]
            if dropped:
                raise VaultUsageError(
                    path,
                    f"rotating as configured would remove the {'+'.join(dropped)} protection of {path}; "
                    "name the key sources you want explicitly (--require) to do that",
                )
        if new_passphrase is not None and "passphrase" not in target:
            raise VaultUsageError(
                path,
                "a new encryption string was given, but the rotated vault would not use one "
                "(add --require passphrase)",
            )
        kek_p, pass_kek = None, None
        if "passphrase" in target:
            if new_passphrase is None and self._kek_p is not None and doc.passphrase is not None:
                kek_p, pass_kek = bytearray(self._kek_p), doc.passphrase
            else:
                phrase = (
                    new_passphrase
                    if new_passphrase is not None
                    else _passphrase(settings, self._environ, path)
                )
                _check_new_passphrase(path, phrase)
                pass_kek = _PassKek(params=scrypt, salt=os.urandom(16))
                kek_p = _scrypt(phrase, pass_kek)
        key_id = None
        if "kms" in target:
            key_id = to_kms or settings.kms_key_id or (doc.kms.key_id if doc.kms else None)
            if not key_id:
                raise VaultUsageError(
                    path, "no KMS key to wrap under: pass --to-kms KEY_ID or set vault.kms_key_id"
                )
        dek = bytearray(os.urandom(32)) if data_key else bytearray(self._dek)
        try:
            secrets = dict(doc.secrets)
            if data_key:
                secrets = {
                    n: _encrypt(dek, doc.vault_id, n, self.get(n).reveal(), r.set_at)
                    for n, r in secrets.items()
                }
            kms_kek, box = _wrap(self._kms, doc.vault_id, target, kek_p, key_id, dek)
            new = replace(
                doc, require=target, passphrase=pass_kek, kms=kms_kek, data_key=box, secrets=secrets
            )
            self._commit(new, dek)
        except BaseException:
            _wipe(dek)
            _wipe(kek_p)
            raise
        _wipe(self._dek)
        _wipe(self._kek_p)
        self._dek, self._kek_p = dek, kek_p

    def close(self) -> None:
        """Overwrite the keys held in memory (best effort); the vault cannot be used afterwards."""
        _wipe(self._dek)
        _wipe(self._kek_p)

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        sources, count = "+".join(self.require), len(self._doc.secrets)
        return f"Vault(path={str(self.path)!r}, require={sources}, secrets={count})"

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a Vault cannot be pickled")

    def _commit(self, doc: _Doc, dek: bytearray) -> None:
        self._raw = _store(self.path, doc, dek, self._raw)
        self._doc = doc
