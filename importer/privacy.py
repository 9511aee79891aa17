"""Privacy: keyed pseudonyms for personal values (the log anonymizer and ``--redact`` use them).

A pseudonym is ``pid:`` + 16 base32 characters of HMAC-SHA256(pepper, kind ‖ 0x00 ‖ value),
with the value normalised first (NFC, case-folded for emails/UPNs, lower-cased for GUIDs). The
pepper is a random secret kept in the vault (``log_pepper``), so a pseudonym cannot be reversed
by hashing a list of known emails; the same person always gets the same pseudonym, so support
can follow one case through the logs (``importer privacy pseudonym EMAIL``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata

__all__ = ["PREFIX", "Pseudonymizer"]

PREFIX = "pid:"


class Pseudonymizer:
    """Keyed pseudonyms under one pepper."""

    def __init__(self, pepper: bytes) -> None:
        if len(pepper) < 16:
            raise ValueError("the pseudonym pepper must be at least 16 bytes")
        self._pepper = bytes(pepper)

    def __repr__(self) -> str:
        return "Pseudonymizer(***)"

    def pseudonym(self, value: str, *, kind: str = "") -> str:
        """The pseudonym of ``value`` (``kind`` separates domains, e.g. ``acct`` for cache keys)."""
        text = unicodedata.normalize("NFC", value.strip()).casefold()
        mac = hmac.new(self._pepper, kind.encode() + b"\x00" + text.encode("utf-8"), hashlib.sha256)
        return PREFIX + base64.b32encode(mac.digest()[:10]).decode("ascii").lower()

    def __call__(self, value: str) -> str:
        """Shorthand for ``pseudonym(value)``."""
        return self.pseudonym(value)
