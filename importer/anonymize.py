"""The log anonymizer: personal values become keyed pseudonyms; secrets and free text are scrubbed.

``Anonymize`` is the structlog processor ``importer.logs`` puts in front of every renderer (see
that module for the chain and what each key class becomes); ``scrub_text`` cleans one piece of
free text and also serves the CLI's error messages, health reasons and run records.

Free text, in order: every value the vault decrypted (also URL-encoded) is redacted; URL
credentials, bearer/basic tokens and JWTs are redacted; query strings are dropped; e-mail
addresses and UPNs (``#EXT#`` guests, ``%40``-encoded, non-ASCII or NFD), MAC addresses, GUIDs
(except request and correlation ids) and IP addresses (except loopback) become pseudonyms;
control characters, line separators and bidi overrides are escaped as ``\\uXXXX``.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import threading
from collections.abc import Mapping, MutableMapping
from typing import Any, Protocol
from urllib.parse import quote, quote_plus, unquote

import structlog

from importer.privacy import LOG_KIND, PSEUDONYM_RE

__all__ = [
    "PERSONAL_KEYS",
    "SECRET_KEYS",
    "Anonymize",
    "register_secret",
    "registered_secrets",
    "scrub_text",
    "set_pseudonymizer",
]

PERSONAL_KEYS = frozenset({
    "upn", "mail", "email", "name", "display_name", "given_name", "surname", "user", "owner",
    "employee_id", "ip", "user_id", "source_id", "person", "user_principal_name", "label",
    "account_id", "who", "first_name", "last_name", "full_name", "username", "login", "phone",
    "mobile_phone", "business_phones", "manager", "device_name", "owner_id", "mail_nickname",
    "other_mails", "proxy_addresses", "emails", "mails", "upns", "names", "users", "owners",
    "user_ids", "source_ids", "ip_address", "client_ip", "remote_addr", "employee_number",
})  # fmt: skip
SECRET_KEYS = frozenset({
    "token", "secret", "password", "authorization", "api_token", "client_secret", "access_token",
    "refresh_token", "id_token", "passphrase", "cookie", "set_cookie", "pepper", "private_key",
    "assertion", "client_assertion", "api_key", "encryption_string", "proxy_authorization",
})  # fmt: skip
_ID_KEYS = ("request_id", "client_request_id", "correlation_id", "trace_id", "x_request_id", "atl_traceid")
_SECRET_SUFFIXES = ("token", "secret", "password", "passphrase", "apikey", "privatekey", "keymaterial")


_NOT_ALNUM = re.compile(r"[\W_]+")


@functools.lru_cache(maxsize=4096)  # a few hundred distinct keys, on every log line
def _norm(key: str) -> str:
    """``displayName``, ``display_name``, ``display-name`` and ``Display Name`` are one key."""
    return _NOT_ALNUM.sub("", key.lower())


_PERSONAL = frozenset(map(_norm, PERSONAL_KEYS))
_SECRET = frozenset(map(_norm, SECRET_KEYS))
_IDS = frozenset(map(_norm, _ID_KEYS))
_MULTILINE = frozenset({"exception", "stackinfo", "traceback"})
_STRUCTLOG_META = frozenset({"_record", "_from_structlog"})  # ProcessorFormatter's own, not rendered


class _Pseudonymizer(Protocol):
    def pseudonym(self, value: str, *, kind: str = "") -> str: ...


_lock = threading.Lock()
_secrets: set[str] = set()
_ordered: tuple[str, ...] = ()  # longest first, so no part of a longer secret is left over
_pseudonymizer: _Pseudonymizer | None = None
_by_instance: dict[str, _Pseudonymizer] = {}


def register_secret(value: str) -> None:
    """Remember a decrypted secret so that every log line has it redacted (URL-encoded too)."""
    global _ordered  # noqa: PLW0603 - one process-wide registry, read on every log line
    if not value or len(value) < 4:
        return
    with _lock:
        _secrets.update({value, quote(value, safe=""), quote_plus(value, safe="")})
        _ordered = tuple(sorted(_secrets, key=len, reverse=True))


def registered_secrets() -> frozenset[str]:
    """Every secret value registered so far."""
    with _lock:
        return frozenset(_secrets)


def set_pseudonymizer(pseudonymizer: _Pseudonymizer | None, *, instance: str | None = None) -> None:
    """Install the keyed pseudonymizer (built from the vault's pepper) used for personal values.

    With ``instance``, it is used for events bound to that installation (a daemon serving
    several installations logs each one's people under that installation's own pepper, so
    ``importer privacy pseudonym`` finds them); it also becomes the default for unbound events.
    """
    global _pseudonymizer  # noqa: PLW0603 - one process-wide logging configuration
    _pseudonymizer = pseudonymizer
    if instance is not None:
        with _lock:
            if pseudonymizer is None:
                _by_instance.pop(instance, None)
            else:
                _by_instance[instance] = pseudonymizer


def _pid(value: str) -> str:
    chosen = _pseudonymizer
    if _by_instance:
        bound = structlog.contextvars.get_contextvars().get("instance")
        chosen = _by_instance.get(bound, chosen) if isinstance(bound, str) else chosen
    if chosen is None:
        return "pid:unkeyed"  # before the vault is open there is no pepper: drop the value
    return chosen.pseudonym(value, kind=LOG_KIND)


# -- free text ----------------------------------------------------------------------------------

_MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"  # combining marks (NFD)
_LOCAL = rf"[\w{_MARKS}.%+\-#!$&*^`{{|}}~]"
_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@:]+:[^/\s@]+@")
_BEARER = re.compile(r"(?i)\b(bearer|basic)(?:\s+|%20|\+)[A-Za-z0-9._~+/=\-]{16,}")  # not prose: 16+
_JWT = re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*")
_URL_QUERY = re.compile(r"(?i)((?:\b[a-z][a-z0-9+.\-]*://|(?<![\w/.])/)[^\s?#\"'<>]*)\?[^\s\"'<>#]*")
# An apostrophe only inside the local part (o'brien@...): a quote before an address is not in it.
_EMAIL = re.compile(rf"{_LOCAL}+(?:'{_LOCAL}+)*(?:@|%40)[\w{_MARKS}\-]+(?:\.[\w{_MARKS}\-]+)*")
_GUID = re.compile(
    r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(?![0-9A-Fa-f])"
)
_REQUEST_ID = re.compile(r"(?i)(request[-_ ]?id|correlation[-_ ]?id|trace[-_ ]?id)([\"':= ]+)$")
_MAC = re.compile(r"(?<![\w:\-])[0-9A-Fa-f]{2}([:\-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}(?![\w:\-])")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?=[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:)[0-9A-Fa-f:.]{2,45}(?:%\w+)?(?![\w:])")
_BIDI = "\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_CONTROL_ML = re.compile(rf"[\x00-\x08\x0b-\x1f{_BIDI}]")  # tracebacks keep their line breaks
_CONTROL = re.compile(rf"[\x00-\x1f{_BIDI}]")


def _ip(m: re.Match[str]) -> str:
    text = m.group(0)
    core = text.rstrip(".")  # an address at the end of a sentence
    try:
        address = ipaddress.ip_address(core.split("%", 1)[0])
    except ValueError:
        return text  # a version number or a time of day, not an address
    if address.is_loopback or address.is_unspecified:
        return text
    return _pid(str(address)) + text[len(core) :]


def scrub_text(text: str, *, keep_ids: bool = False, multiline: bool = False) -> str:
    """Remove secrets and personal values from free text (messages, exceptions, URLs).

    Args:
        keep_ids: leave GUIDs alone (the text is a request or correlation id).
        multiline: keep line breaks and tabs (tracebacks); otherwise they are escaped too.
    """
    if not text:
        return text
    for value in _ordered:
        if value in text:
            text = text.replace(value, "[redacted]")
    # Each pattern runs only where it could match: most log values are short and plain.
    if "://" in text and "@" in text:
        text = _CREDENTIALS.sub(r"\1[redacted]@", text)
    lowered = text.lower()
    if "bearer" in lowered or "basic" in lowered:
        text = _BEARER.sub(lambda m: f"{m.group(1)} [redacted]", text)
    if "eyJ" in text:
        text = _JWT.sub("[redacted-jwt]", text)
    if "?" in text:
        text = _URL_QUERY.sub(r"\1?[query removed]", text)
    if "@" in text or "%40" in text:
        text = _EMAIL.sub(lambda m: _pid(unquote(m.group(0))), text)
    colons, dashes = text.count(":"), text.count("-")
    if colons >= 5 or dashes >= 5:
        text = _MAC.sub(lambda m: _pid(m.group(0).replace("-", ":")), text)
    if not keep_ids and dashes >= 4:
        source = text

        def guid(m: re.Match[str]) -> str:
            if _REQUEST_ID.search(source[max(0, m.start() - 20) : m.start()]):
                return m.group(0)  # request and correlation ids name no one; support needs them
            return _pid(m.group(0))

        text = _GUID.sub(guid, source)
    if text.count(".") >= 3:
        text = _IPV4.sub(_ip, text)
    if colons >= 2:
        text = _IPV6.sub(_ip, text)
    if text.isprintable():
        return text
    return (_CONTROL_ML if multiline else _CONTROL).sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


# -- the processor ------------------------------------------------------------------------------

_DEPTH = 8


def _personal(value: Any, depth: int = 0) -> Any:
    """A personal value as its pseudonym (lists and mappings element by element)."""
    if value is None or isinstance(value, bool) or value == "":
        return value
    if depth > _DEPTH:
        return "[nested]"
    if isinstance(value, Mapping):
        return {scrub_text(str(k)): _personal(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_personal(v, depth + 1) for v in value]
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    if PSEUDONYM_RE.fullmatch(text):
        return text  # already a pseudonym (audit subjects, privacy commands)
    return _pid(text)


def _field(key: str, value: Any, depth: int = 0) -> Any:
    """One field, by what its key says it holds."""
    norm = _norm(key)
    if norm in _SECRET or norm.endswith(_SECRET_SUFFIXES):
        return "[redacted]"
    if norm in _PERSONAL:
        return _personal(value, depth)
    return _scrub(value, depth, keep_ids=norm in _IDS, multiline=norm in _MULTILINE)


def _scrub(value: Any, depth: int = 0, *, keep_ids: bool = False, multiline: bool = False) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return scrub_text(value, keep_ids=keep_ids, multiline=multiline)
    if depth > _DEPTH:
        return "[nested]"
    if isinstance(value, Mapping):
        return {scrub_text(str(k)): _field(str(k), v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_scrub(v, depth + 1, keep_ids=keep_ids) for v in value]
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return scrub_text(text, keep_ids=keep_ids, multiline=multiline)


class Anonymize:
    """Replace personal values with keyed pseudonyms, redact secrets, scrub free text."""

    def __call__(
        self, logger: object, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        try:
            for key in list(event):
                if key not in _STRUCTLOG_META:
                    event[key] = _field(str(key), event[key])
        except Exception as exc:  # a bug here costs one line, never the run, never a value in clear
            kept = {k: event[k] for k in ("_record", "_from_structlog", "level", "timestamp") if k in event}
            event.clear()
            event.update(kept, event="log_event_withheld", error_type=type(exc).__name__)
        return event
