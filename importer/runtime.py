"""Composition root: build the importer's parts (vault, state, HTTP clients) from ``Settings``.

The CLI verbs, the daemon and the sandbox demo all start from a validated ``Settings`` and need
the same parts wired the same way; this module is the one place that does it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importer.config import Settings
    from importer.vault import VaultSettings

__all__ = ["vault_settings"]


def vault_settings(settings: Settings) -> VaultSettings:
    """The vault's settings from the ``vault`` section (paths already resolved by the loader)."""
    from importer.vault import VaultSettings

    v = settings.vault
    return VaultSettings(
        path=v.path,
        instance=settings.instance,
        kms_key_id=v.kms_key_id,
        kms_region=v.kms_region,
        kms_endpoint_url=v.kms_endpoint_url,
        passphrase_file=v.passphrase_file,
        require=tuple(v.require) if v.require else (("kms",) if v.kms_key_id else ("passphrase",)),
    )
