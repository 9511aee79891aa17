"""Privacy: keyed pseudonyms, and a person's rights (see what is held about them, be forgotten).

A pseudonym is ``pid:`` + 16 base32 characters of HMAC-SHA256(pepper, kind ‖ 0x00 ‖ value),
with the value normalised first (stripped, NFC, case-folded, so ``Ann@X.com`` and
``ann@x.com`` are one person). The pepper is a random secret kept in the vault
(``log_pepper``), so a pseudonym cannot be reversed by hashing a list of known emails; the same
value always gets the same pseudonym, so support can follow one case through the logs. Every
personal value in a log line (under any personal key, or found in free text) and in a
``--redact`` plan uses the kind ``LOG_KIND``: ``importer privacy pseudonym EMAIL`` prints
exactly what the logs hold for that address. The account cache in state uses its own kind
(``ACCOUNT_KIND``), so its keys cannot be matched against the logs.

``find_person`` looks one person up (Entra by UPN and mail, Assets by the attributes mapped
from them, which also finds people already gone from Entra); ``collect`` gathers what the
importer holds about them (``privacy export``); ``forget_plan`` and ``forget`` remove them
from state and, optionally, delete their Assets user object and unlink their devices through
the usual plan and apply (``privacy forget``). Personal values stay out of every log line and
audit record: only the person's pseudonym is written.

Layout: ``_pseudonyms`` (imported by the log anonymizer, so it imports nothing of the
importer), ``_person`` (lookup and export), ``_forget``.
"""

from __future__ import annotations

from importer.privacy._forget import ForgetResult, forget, forget_plan
from importer.privacy._person import Holding, Holdings, Person, collect, find_person, resolve
from importer.privacy._pseudonyms import (
    ACCOUNT_KIND,
    LOG_KIND,
    MIN_PEPPER_BYTES,
    PREFIX,
    PSEUDONYM_RE,
    Pseudonymizer,
    account_key,
    open_pseudonymizer,
    pepper_bytes,
)

__all__ = [
    "ACCOUNT_KIND",
    "LOG_KIND",
    "MIN_PEPPER_BYTES",
    "PREFIX",
    "PSEUDONYM_RE",
    "ForgetResult",
    "Holding",
    "Holdings",
    "Person",
    "Pseudonymizer",
    "account_key",
    "collect",
    "find_person",
    "forget",
    "forget_plan",
    "open_pseudonymizer",
    "pepper_bytes",
    "resolve",
]
