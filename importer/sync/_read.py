"""Reading Entra for a run: each source by delta link or in full, then device owners."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

import structlog

from importer.errors import CredentialError
from importer.mapping import CompiledEntry
from importer.sync._schema import requirements

if TYPE_CHECKING:
    from importer.assets import ResolvedSchema
    from importer.config import Settings
    from importer.graph import OwnersRead, SourceRead
    from importer.runtime import Runtime
    from importer.sync._model import RunOptions, Work

__all__ = ["read_owners", "read_sources", "source_fingerprint"]

_log = structlog.get_logger("importer.sync")


def read_sources(
    rt: Runtime,
    opts: RunOptions,
    schema: ResolvedSchema,
    chosen: Iterable[CompiledEntry],
    warnings: list[str],
) -> tuple[dict[str, SourceRead], set[str]]:
    """Read every source the chosen types use; returns the reads and the sources read in full.

    A source is read in full on the first run, with ``--full``, when its delta link expired, and
    when its ``$select`` or mapping changed since the link was stored (its fingerprint).
    """
    graph = rt.graph()
    intune = rt.settings.entra.owners == "intune"
    selects: dict[str, set[str]] = {}
    for e in chosen:
        selects.setdefault(e.entry.source, set()).update(e.select)
    reads: dict[str, SourceRead] = {}
    full: set[str] = set()
    for source in sorted(selects):
        select = sorted(selects[source])
        fingerprint = source_fingerprint(rt.settings, schema, source, select)
        delta = rt.state.get_delta(source)
        link = None if opts.full or delta is None or delta.select_fingerprint != fingerprint else delta.link
        if link is None and delta is not None and delta.select_fingerprint != fingerprint:
            _log.info("full_read_forced", source=source, reason="mapping or $select changed")
        read = graph.read(source, select=select, delta_link=link, intune_owners=intune)  # type: ignore[arg-type]
        if read.full_read_needed:
            _log.warning("delta_link_expired", source=source)
            warnings.append(f"{source}: the delta link had expired; this run read everything")
            read = graph.read(source, select=select, intune_owners=intune)  # type: ignore[arg-type]
            link = None
        if isinstance(read.error, CredentialError):
            raise read.error
        if not read.complete:
            warnings.append(f"{source}: the read from Entra did not complete ({read.error})")
        _log.info(
            "source_read",
            source=source,
            mode="incremental" if link else "full",
            records=len(read.records),
            removed=len(read.removed),
            pages=read.pages,
            complete=read.complete,
        )
        reads[source] = read
        if link is None:
            full.add(source)
    return reads, full


def source_fingerprint(settings: Settings, schema: ResolvedSchema, source: str, select: list[str]) -> str:
    """What a stored delta link was read for: the ``$select``, the mapping and the target ids."""
    from importer.graph import effective_select, select_fingerprint

    intune = settings.entra.owners == "intune"
    base = select_fingerprint(effective_select(source, select, intune_owners=intune))  # type: ignore[arg-type]
    mapping = [
        e.model_dump(mode="json", by_alias=True) for e in settings.mapping.object_types if e.source == source
    ]
    # The ids of the types and attributes written: one deleted and recreated in Assets (empty
    # now) must be refilled by a full run, which the id map's content hashes would skip.
    wanted = {r.name: [a.name for a in r.attributes] for r in requirements(settings)}
    ids = sorted(
        (schema.type(e.object_type).id, name, schema.type(e.object_type).attribute(name).id)
        for e in settings.mapping.object_types
        if e.source == source
        for name in wanted[e.object_type]
    )
    extra = hashlib.sha256(
        json.dumps([mapping, settings.entra.owners, ids], sort_keys=True).encode()
    ).hexdigest()[:16]
    return f"{base}+{extra}"


def read_owners(rt: Runtime, works: list[Work], warnings: list[str]) -> tuple[OwnersRead | None, set[str]]:
    """The owners of the devices read; returns them and the devices whose owner could not be read."""
    devices = {r.id: r for w in works if w.entry.uses_owner for r in w.read.records}
    if not devices:
        return None, set()
    owners = rt.graph().read_owners(list(devices.values()), intune=rt.settings.entra.owners == "intune")
    if owners.complete:
        return owners, set()
    warnings.append(
        f"device owners: {len(owners.failed)} could not be read ({owners.error}); their owner is left as is"
    )
    return owners, set(owners.failed)
