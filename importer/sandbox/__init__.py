"""A simulated Entra ID tenant and Jira Assets workspace, served over real HTTPS on 127.0.0.1.

``Sandbox`` (``importer.sandbox.app``) runs it in-process; ``importer sandbox serve``
(``importer.sandbox.cli``) runs it as a process. See ``README.md`` in this package for what it
covers and what it does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importer.sandbox.app import Sandbox

__all__ = ["Sandbox"]


def __getattr__(name: str) -> Any:
    """Import ``Sandbox`` on first use, so ``importer --help`` stays fast."""
    if name == "Sandbox":
        from importer.sandbox.app import Sandbox

        return Sandbox
    raise AttributeError(name)
