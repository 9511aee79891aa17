"""The values the vault hands out: ``Secret`` (a decrypted credential) and ``SecretInfo``."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, NoReturn

__all__ = ["Secret", "SecretInfo"]


class Secret:
    """A decrypted credential; prints as ``***``, call :meth:`reveal` at the point of use."""

    __slots__ = ("_value",)
    __hash__: ClassVar[None] = None  # type: ignore[assignment]  # a hash would tell values apart

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The plain value; pass it straight to the API that needs it, never to a log."""
        return self._value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a Secret cannot be pickled or copied into storage")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: object) -> Secret:
        return self


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretInfo:
    """A secret's name and when it was last set; never its value."""

    name: str
    set_at: datetime
