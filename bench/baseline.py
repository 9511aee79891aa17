"""A naive sync, as a simple script would do it: the yardstick the importer is compared with.

For every Entra record, read with a plain Graph list (``$select``, ``$top=999``) and, for a
device, its owner with one ``GET /devices/{id}/registeredOwners``: one AQL query by key, then
``POST /object/create`` or ``PUT /object/{id}`` with every mapped attribute (empty ones
included, as such scripts send the whole record). No state, no delta, no content hashes, no
bulk reads, no concurrency: every run does all of it. Emails for User attributes are looked up
one by one (``/rest/api/3/user/search``, remembered for the rest of the run). Nothing is ever
marked or deleted.

It writes the same values as the importer (it reuses the importer's mapping, value normalising
and Assets client), so the two are compared on the same work. Run by ``bench.child``:
``python -m bench.child OUT.json baseline --config importer.yaml``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]


def main(argv: list[str]) -> int:
    """``--config PATH``: sync once, naively; print one summary line; exit 0 when nothing failed."""
    if len(argv) != 2 or argv[0] != "--config":
        print("usage: baseline --config PATH", file=sys.stderr)
        return 2
    from importer.config import load_settings
    from importer.logs import configure_logging
    from importer.runtime import open_runtime

    settings = load_settings(Path(argv[1]))
    configure_logging(level="warning", console=False)
    rt = open_runtime(settings)
    started = time.monotonic()
    try:
        counts = _Naive(rt).run()
    finally:
        rt.close()
    print(
        f"baseline in {time.monotonic() - started:.1f}s: {counts['created']} created, "
        f"{counts['updated']} updated, {counts['failed']} failed"
    )
    return 1 if counts["failed"] else 0


class _Naive:
    def __init__(self, rt: Any) -> None:
        from importer.assets import resolve_schema
        from importer.mapping import compile_mapping
        from importer.sync import requirements

        self.rt = rt
        self.s = rt.settings
        self.compiled = compile_mapping(self.s)
        self.schema = resolve_schema(rt.assets(), self.s.assets.schema_key, requirements(self.s))
        self.objects = rt.objects()
        self.accounts = rt.accounts({})  # per-run cache only; never prefetched
        self.object_ids: dict[str, dict[str, str]] = {}  # entry name -> Graph id -> Assets object id
        self.counts = {"created": 0, "updated": 0, "failed": 0}

    def run(self) -> dict[str, int]:
        # Referenced types first, so a device's owner already has an object id.
        entries = sorted(
            self.s.mapping.object_types, key=lambda e: any(a.reference for a in e.attributes.values())
        )
        for entry in entries:
            self._sync_entry(self.compiled[entry.name])
        return self.counts

    def _sync_entry(self, compiled: Any) -> None:
        from importer.mapping import map_record

        entry = compiled.entry
        rtype = self.schema.type(entry.object_type)
        graph = self.rt.graph()
        read = graph.read_list(entry.source, select=list(compiled.select))
        ids = self.object_ids.setdefault(entry.name, {})
        for rec in read.records:
            owner = self._owner(rec.id) if compiled.uses_owner else None
            desired = map_record(compiled, rec.id, rec.fields, owner=owner)
            if desired is None:
                continue
            values = self._values(rtype, entry, desired.values)
            values[entry.key] = rec.id
            try:
                found = self.objects.find_by_keys(rtype, [rec.id]).get(rec.id)  # one AQL query
                if found is None:
                    ids[rec.id] = self.objects.create_object(
                        rtype, {k: v for k, v in values.items() if v is not None}
                    )
                    self.counts["created"] += 1
                else:
                    self.objects.update_object(found.id, rtype, values)  # every attribute, every time
                    ids[rec.id] = found.id
                    self.counts["updated"] += 1
            except Exception as exc:  # a script logs and goes on
                self.counts["failed"] += 1
                print(f"failed {entry.name}: {type(exc).__name__}", file=sys.stderr)

    def _owner(self, device_id: str) -> str | None:
        graph = self.rt.graph()
        try:
            body = graph.get(f"{graph.graph_url}/v1.0/devices/{device_id}/registeredOwners?$select=id")
        except Exception:
            return None
        owners = body.get("value", []) if isinstance(body, dict) else []
        return (
            str(owners[0]["id"]) if owners and isinstance(owners[0], dict) and owners[0].get("id") else None
        )

    def _values(self, rtype: Any, entry: Any, raw: Any) -> dict[str, object]:
        from importer.assets import normalize
        from importer.mapping import AccountEmail, Ref

        out: dict[str, object] = {}
        for name, value in raw.items():
            if isinstance(value, Ref):
                out[name] = self.object_ids.get(value.type, {}).get(value.source_id)
            elif isinstance(value, AccountEmail):
                out[name] = self.accounts.resolve(value.email)
            else:
                try:
                    out[name] = normalize(rtype.attribute(name), value)
                except ValueError:
                    out[name] = None
        if self.s.missing_policy(entry) != "ignore" and entry.mark.active:
            mark = entry.mark
            out[mark.attribute] = (
                self.schema.status_id(mark.active)
                if mark.type == "status"
                else normalize(rtype.attribute(mark.attribute), mark.active)
            )
        return out
