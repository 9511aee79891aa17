"""Key handling: AES-GCM sealing, HKDF, the scrypt KEK, combining KEKs, the MAC, wrapping the data key.

The data key (DEK) seals every value; the DEK is sealed under one KEK that combines every
required source (scrypt of the encryption string, a KMS data key) with HKDF, so losing any one
source loses the vault. Buffers holding keys are ``bytearray`` so they can be wiped.
"""

from __future__ import annotations

import hmac
import json
import os
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from importer.vault._format import FORMAT, FORMAT_VERSION, _Box, _KmsKek, _mac_input, _PassKek, _Record
from importer.vault._kms import _context, _Kms

__all__: list[str] = []


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
