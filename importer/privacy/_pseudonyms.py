"""Keyed pseudonyms: ``pid:`` + HMAC-SHA256 under the vault's pepper (see ``importer.privacy``).

The log anonymizer imports this module, so it imports nothing of the importer at load time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importer.config import Settings

__all__ = [
    "ACCOUNT_KIND",
    "LOG_KIND",
    "MIN_PEPPER_BYTES",
    "PREFIX",
    "PSEUDONYM_RE",
    "Pseudonymizer",
    "account_key",
    "open_pseudonymizer",
    "pepper_bytes",
]

PREFIX = "pid:"
LOG_KIND = "person"  # logs, --redact plans, `privacy pseudonym`: one kind, so they all agree
ACCOUNT_KIND = "acct"  # keys of the accountId cache in state
PSEUDONYM_RE = re.compile(r"pid:[a-z2-7]{16}")
MIN_PEPPER_BYTES = 16  # `importer secrets init` generates 32


class Pseudonymizer:
    """Keyed pseudonyms under one pepper."""

    def __init__(self, pepper: bytes) -> None:
        if len(pepper) < MIN_PEPPER_BYTES:
            raise ValueError(f"the pseudonym pepper must be at least {MIN_PEPPER_BYTES} bytes")
        self._pepper = bytes(pepper)

    def __repr__(self) -> str:
        return "Pseudonymizer(***)"

    def pseudonym(self, value: str, *, kind: str = LOG_KIND) -> str:
        """The pseudonym of ``value`` (``kind`` separates domains, e.g. ``acct`` for cache keys)."""
        text = unicodedata.normalize("NFC", value.strip()).casefold()
        mac = hmac.new(self._pepper, kind.encode() + b"\x00" + text.encode("utf-8"), hashlib.sha256)
        return PREFIX + base64.b32encode(mac.digest()[:10]).decode("ascii").lower()

    def __call__(self, value: str) -> str:
        """The pseudonym the logs use for ``value`` (``--redact`` plans show the same)."""
        return self.pseudonym(value, kind=LOG_KIND)


def pepper_bytes(text: str) -> bytes:
    """The pepper from its vault text: base64 (as ``secrets set`` documents), else the text's bytes."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return text.encode("utf-8")


def account_key(pseudonyms: Pseudonymizer, email: str) -> str:
    """The key of an email's cached accountId in state (what the sync writes)."""
    return pseudonyms.pseudonym(email, kind=ACCOUNT_KIND)


def open_pseudonymizer(settings: Settings) -> Pseudonymizer:
    """The pseudonymizer from the vault's pepper alone (no state store, no network)."""
    from importer.logs import set_pseudonymizer
    from importer.runtime import PEPPER, open_vault, pseudonymizer_from, read_secrets

    secrets = read_secrets(settings, open_vault(settings), refs={})
    pseudonyms = pseudonymizer_from(settings, secrets[PEPPER])
    set_pseudonymizer(pseudonyms)
    return pseudonyms
