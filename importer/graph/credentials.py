"""Entra credentials and what the authority says about them.

A credential is a client secret or a certificate (a PEM file with key and certificate, or a PFX
with its password). Secrets come from the vault as ``str`` or as objects with ``reveal()``; they
are revealed only when MSAL needs them and never appear in a message or a ``repr``. The
authority's refusals become ``GraphCredentialError`` (exit code 4) with a message per AADSTS code.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from importer.errors import CredentialError

__all__ = [
    "AADSTS_MESSAGES",
    "ClientCertificate",
    "ClientSecret",
    "GraphCredentialError",
    "Revealable",
    "aadsts_of",
    "credential_error",
    "load_certificate",
]


@runtime_checkable
class Revealable(Protocol):
    """A secret held by the vault (``importer.vault.Secret``): its value only on ``reveal()``."""

    def reveal(self) -> str:
        """The secret's value."""


def _reveal(value: str | Revealable | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.reveal()


class ClientSecret:
    """A client secret (the secret's *Value* in the app registration, not its ID)."""

    __slots__ = ("_value",)

    def __init__(self, value: str | Revealable) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret's value."""
        return _reveal(self._value) or ""

    def __repr__(self) -> str:
        return "ClientSecret(***)"


class ClientCertificate:
    """A certificate credential: a PEM file holding key and certificate, or a PFX with a password."""

    __slots__ = ("_password", "path")

    def __init__(self, path: str | os.PathLike[str], password: str | Revealable | None = None) -> None:
        self.path = str(path)
        self._password = password

    def reveal_password(self) -> str | None:
        """The key's password, if any."""
        return _reveal(self._password)

    @property
    def is_pfx(self) -> bool:
        """True for a PKCS#12 file (``.pfx`` / ``.p12``)."""
        return self.path.lower().endswith((".pfx", ".p12"))

    def __repr__(self) -> str:
        return f"ClientCertificate(path={self.path!r}, password=***)"


class GraphCredentialError(CredentialError):
    """The Entra authority refused to issue a token, or the credential could not be used.

    Attributes:
        aadsts: the AADSTS error number, when the authority sent one.
        correlation_id: the authority's correlation id, for Microsoft support.
        fix: what the operator should do.
    """

    def __init__(
        self, what: str, *, fix: str, aadsts: int | None = None, correlation_id: str | None = None
    ) -> None:
        self.aadsts = aadsts
        self.correlation_id = correlation_id
        self.fix = fix
        code = f" (AADSTS{aadsts})" if aadsts is not None else ""
        cid = f"; correlation id {correlation_id}" if correlation_id else ""
        super().__init__(f"Entra login failed: {what}{code}. Fix: {fix}{cid}")


# AADSTS number -> (what happened, how to fix it). Messages name config keys, never their values.
AADSTS_MESSAGES: Mapping[int, tuple[str, str]] = {
    7000222: (
        "the client secret has expired",
        "create a new client secret under App registrations > Certificates & secrets and store "
        "its value with `importer secrets set entra_client_secret`",
    ),
    7000215: (
        "the client secret is not valid",
        "store the secret's Value (shown once when it is created), not the secret ID, and check "
        "that it belongs to this app registration",
    ),
    700016: (
        "the application (entra.client_id) was not found in the tenant (entra.tenant_id)",
        "check entra.client_id and entra.tenant_id, and that the app is registered in or consented "
        "to that tenant, in the cloud set by entra.cloud",
    ),
    90002: (
        "the tenant (entra.tenant_id) was not found",
        "check entra.tenant_id (the directory GUID or a verified domain) and entra.cloud",
    ),
    70011: (
        "the scope is not valid",
        "check entra.cloud and entra.graph_url: the scope is the Graph root of the tenant's cloud "
        "followed by /.default",
    ),
    500011: (
        "Microsoft Graph is not known in this tenant's cloud",
        "check entra.cloud and entra.graph_url",
    ),
    700027: (
        "the certificate is not accepted for this application",
        "upload the certificate's public part to the app registration (Certificates & secrets), "
        "or point entra.certificate at the right file",
    ),
    7000112: ("the application is disabled", "enable the app registration's service principal"),
}


def aadsts_of(body: Mapping[str, Any] | None) -> tuple[int | None, str | None]:
    """The AADSTS number and correlation id of an authority error body."""
    if not body:
        return None, None
    code: int | None = None
    codes = body.get("error_codes")
    if isinstance(codes, list) and codes and isinstance(codes[0], int):
        code = codes[0]
    else:
        found = re.search(r"AADSTS(\d+)", str(body.get("error_description", "")))
        code = int(found.group(1)) if found else None
    cid = body.get("correlation_id")
    return code, cid if isinstance(cid, str) else None


def credential_error(body: Mapping[str, Any]) -> GraphCredentialError:
    code, cid = aadsts_of(body)
    if code is not None and code in AADSTS_MESSAGES:
        what, fix = AADSTS_MESSAGES[code]
        return GraphCredentialError(what, fix=fix, aadsts=code, correlation_id=cid)
    error = body.get("error")
    label = error if isinstance(error, str) and re.fullmatch(r"[a-z_]{1,40}", error) else "error"
    return GraphCredentialError(
        f"the token request was refused ({label})",
        fix="look the AADSTS code up at https://login.microsoftonline.com/error and check the "
        "entra section of the configuration",
        aadsts=code,
        correlation_id=cid,
    )


def load_certificate(path: str, password: str | None, *, pfx: bool) -> dict[str, Any]:
    """Check the certificate file opens with its password and build MSAL's credential dict."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key, pkcs12

    fix = "check entra.certificate.path and entra.certificate.password"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise GraphCredentialError(f"the certificate file cannot be read ({exc.strerror})", fix=fix) from None
    secret = password.encode("utf-8") if password else None
    if pfx:
        try:
            key, cert, _ = pkcs12.load_key_and_certificates(data, secret)
        except (ValueError, TypeError):
            raise GraphCredentialError("the PFX file cannot be opened (wrong password?)", fix=fix) from None
        if key is None or cert is None:
            raise GraphCredentialError(
                "the PFX file must hold both the private key and the certificate", fix=fix
            )
        result: dict[str, Any] = {"private_key_pfx_path": path, "public_certificate": True}
        if password:
            result["passphrase"] = password
        return result
    text = data.decode("utf-8", errors="replace")
    keys = re.findall(
        r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----.+?-----END (?:[A-Z]+ )?PRIVATE KEY-----", text, re.S
    )
    certs = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.S)
    if not keys or not certs:
        raise GraphCredentialError("the PEM file must hold a private key and a certificate", fix=fix)
    try:
        load_pem_private_key(keys[0].encode("ascii"), secret)
    except (ValueError, TypeError):
        raise GraphCredentialError(
            "the private key cannot be opened (wrong or missing password?)", fix=fix
        ) from None
    result = {"private_key": keys[0], "public_certificate": certs[0]}  # MSAL computes the SHA-256 thumbprint
    if password:
        result["passphrase"] = password
    return result
