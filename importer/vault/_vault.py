"""The ``Vault``: create or open a vault file, get and set secrets, rotate its keys.

This is the orchestration layer; the document format, key handling, KMS access and file I/O
live in the sibling modules. Decrypted values are registered with the log redactor through
``importer.vault.register_secret`` (looked up at call time, so it can be observed in tests).
"""

from __future__ import annotations

import hmac
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from cryptography.exceptions import InvalidTag

import importer.vault as _package
from importer.vault._errors import (
    MissingSecretError,
    RequireMismatchError,
    VaultExistsError,
    VaultTamperedError,
    VaultUsageError,
    WrongKeyError,
)
from importer.vault._file import _read_vault, _store
from importer.vault._format import _NAME, FORMAT, FORMAT_VERSION, _b64, _Box, _Doc, _parse, _PassKek, _to_json
from importer.vault._keys import _aad, _combine, _encrypt, _hkdf, _mac, _scrypt, _unseal, _wipe, _wrap
from importer.vault._kms import KmsClient, _context, _Kms
from importer.vault._secret import Secret, SecretInfo
from importer.vault._settings import (
    DEFAULT_SCRYPT,
    LOG_PEPPER,
    SOURCES,
    ScryptParams,
    VaultSettings,
    _check_new_passphrase,
    _passphrase,
)

__all__ = ["Vault", "check_name"]

_MAX_VALUE = 64 * 1024


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _require(path: Path, sources: Iterable[str]) -> tuple[str, ...]:
    wanted = set(sources)
    if not wanted or wanted - set(SOURCES):
        raise VaultUsageError(path, "key sources must be passphrase and/or kms")
    return tuple(s for s in SOURCES if s in wanted)


def check_name(path: Path, name: str) -> None:
    """Refuse a name that cannot be a secret's (``VaultUsageError``); the name is not echoed."""
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
            # A plain `rotate` keeps every source the vault has unless told otherwise, so it is
            # refused when the configuration drops one; naming the sources always works.
            fix = "importer secrets rotate " + " ".join(f"--require {s}" for s in settings.require)
            raise RequireMismatchError(
                path,
                f"{path} is protected by {'+'.join(doc.require)} but the configuration requires "
                f"{'+'.join(settings.require)}: run `{fix}` to re-wrap it as configured, "
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
        check_name(self.path, name)
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
