"""Logging frame (being written): the registry of secret values the redactor must remove."""

from __future__ import annotations

import threading

__all__ = ["register_secret", "registered_secrets", "scrub_text", "set_pseudonymizer"]

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Remember a decrypted secret so that every log line has it redacted."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def registered_secrets() -> frozenset[str]:
    """Every secret value registered so far."""
    with _lock:
        return frozenset(_secrets)


def scrub_text(text: str) -> str:
    """Remove every registered secret value from free text."""
    for value in sorted(registered_secrets(), key=len, reverse=True):
        text = text.replace(value, "[redacted]")
    return text


_pseudonymizer: object | None = None


def set_pseudonymizer(pseudonymizer: object) -> None:
    """Install the keyed pseudonymizer the anonymizing processor uses (from the vault's pepper)."""
    global _pseudonymizer  # noqa: PLW0603 - one process-wide logging configuration
    _pseudonymizer = pseudonymizer
