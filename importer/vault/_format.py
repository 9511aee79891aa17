"""The vault file as a document: parse and check it, render it canonically, the MAC's input.

One canonical JSON document (sorted keys, indent 2, ASCII, final newline); parsing re-renders
the document and compares bytes, so any edit outside the MAC'd values is refused as well.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from importer.vault._errors import (
    VaultCorruptError,
    VaultTamperedError,
    VaultTruncatedError,
    VaultVersionError,
)
from importer.vault._settings import SOURCES, ScryptParams

__all__ = ["FORMAT", "FORMAT_VERSION"]

FORMAT = "importer-vault"
FORMAT_VERSION = 1
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_TIME = "%Y-%m-%dT%H:%M:%SZ"


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
        ciphertext=_bytes(obj["ciphertext"], f"{where}.ciphertext", least=16),
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
            prm = ScryptParams(
                n=_int(raw["n"], "kek.passphrase.n"),
                r=_int(raw["r"], "kek.passphrase.r"),
                p=_int(raw["p"], "kek.passphrase.p"),
            )
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
                box=_box(rec, f"secrets.{name}", ("set_at",)),
                set_at=_time(rec["set_at"], f"secrets.{name}.set_at"),
            )
            for name, rec in secrets_raw.items()
        },
    )


def _mac_input(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _render(body: Mapping[str, Any], mac: bytes) -> bytes:
    document = {**body, "mac": {"alg": "HMAC-SHA256", "value": _b64(mac)}}
    return (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=True) + "\n").encode("ascii")


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
