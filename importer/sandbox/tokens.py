"""Opaque, tamper-evident tokens: paging and delta state, and the access tokens the authority issues.

Paging and delta tokens are base64url(JSON + HMAC): a client can't read the state without effort
and can't change it at all (a modified token fails verification and Graph answers 400). Access
tokens are JWT-shaped (``header.payload.signature``, HMAC-signed) so they look like the real
thing to a client that peeks, but only the sandbox can check them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from typing import Any

__all__ = ["AccessTokenCodec", "TokenCodec", "b64url", "b64url_decode"]

_MAC_BYTES = 16


def b64url(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of ``b64url``; raises ValueError on malformed input."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


class TokenCodec:
    """Encode a small JSON state into an opaque string and back, refusing tampered strings."""

    def __init__(self, key: bytes, *, purpose: str) -> None:
        self._key = hashlib.sha256(key + b"|" + purpose.encode()).digest()

    def encode(self, payload: dict[str, Any]) -> str:
        """The opaque token for ``payload``."""
        data = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
        mac = hmac.new(self._key, data, hashlib.sha256).digest()[:_MAC_BYTES]
        return b64url(data + mac)

    def decode(self, token: str) -> dict[str, Any] | None:
        """The payload, or None when the token is malformed or was not made by this codec."""
        try:
            raw = b64url_decode(token)
        except ValueError:
            return None
        data, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(raw) <= _MAC_BYTES or not hmac.compare_digest(
            mac, hmac.new(self._key, data, hashlib.sha256).digest()[:_MAC_BYTES]
        ):
            return None
        try:
            payload = json.loads(data.decode("utf-8"))
        except ValueError:
            return None
        return payload if isinstance(payload, dict) else None


class AccessTokenCodec:
    """Issue and check JWT-shaped access tokens for the simulated Graph resource."""

    def __init__(self, key: bytes) -> None:
        self._key = hashlib.sha256(key + b"|access-token").digest()
        self._header = b64url(
            json.dumps({"typ": "JWT", "alg": "HS256", "kid": "sandbox"}, separators=(",", ":")).encode()
        )

    def issue(self, claims: dict[str, Any]) -> str:
        """A signed token carrying ``claims`` (plus a unique ``uti``)."""
        body = dict(claims, uti=secrets.token_urlsafe(16))
        payload = b64url(json.dumps(body, separators=(",", ":")).encode("utf-8"))
        signing_input = f"{self._header}.{payload}".encode("ascii")
        return (
            f"{self._header}.{payload}.{b64url(hmac.new(self._key, signing_input, hashlib.sha256).digest())}"
        )

    def check(self, token: str) -> dict[str, Any] | None:
        """The claims when the token was issued here and is unmodified, else None."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        signing_input = f"{parts[0]}.{parts[1]}".encode("ascii", "replace")
        expected = b64url(hmac.new(self._key, signing_input, hashlib.sha256).digest())
        if not hmac.compare_digest(expected, parts[2]):
            return None
        try:
            claims = json.loads(b64url_decode(parts[1]).decode("utf-8"))
        except ValueError:
            return None
        return claims if isinstance(claims, dict) else None
