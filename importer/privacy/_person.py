"""One person: look them up in Entra and Assets, and gather what the importer holds (export)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from importer.privacy._pseudonyms import Pseudonymizer, account_key

if TYPE_CHECKING:
    from importer.assets import AssetsObject, ResolvedSchema
    from importer.config import Settings
    from importer.runtime import Runtime
    from importer.state import AuditRecord, CachedAccount, IdMapEntry

__all__ = ["Holding", "Holdings", "Person", "collect", "find_person", "resolve"]

_AUDIT_SCAN = 10_000  # newest audit records searched by export


@dataclass(frozen=True, slots=True, kw_only=True)
class Person:
    """One person as found: the address asked about, their Graph ids, UPNs and mails."""

    query: str
    graph_ids: tuple[str, ...]  # in Entra now, or keys of their Assets objects
    in_entra: tuple[str, ...]  # the Graph ids Entra still has
    addresses: tuple[str, ...]  # the query, plus UPNs and mails Entra or Assets hold for them

    def log_pseudonyms(self, pseudonyms: Pseudonymizer) -> list[str]:
        """Every pseudonym the logs may hold for them: addresses and Graph ids (query first)."""
        values = (self.query, *self.addresses, *self.graph_ids)
        return list(dict.fromkeys(pseudonyms(v) for v in values))


def _user_entries(settings: Settings) -> list[Any]:
    return [e for e in settings.mapping.object_types if e.source == "users"]


def _address_attributes(entry: Any) -> list[str]:
    """Attributes of a users entry that hold a UPN or mail as text (not the Jira user attribute)."""
    return [
        name
        for name, spec in entry.attributes.items()
        if spec.from_ in ("userPrincipalName", "mail") and not spec.user and not spec.template
    ]


def _entra_users(rt: Runtime, who: str) -> list[dict[str, Any]]:
    """Users whose UPN or mail is ``who`` (``$filter`` by each; Graph compares case-insensitively)."""
    graph = rt.graph()
    literal = who.strip().replace("'", "''")
    found: dict[str, dict[str, Any]] = {}
    for prop in ("userPrincipalName", "mail"):
        query = quote(f"{prop} eq '{literal}'", safe="")
        url = f"{graph.graph_url}/v1.0/users?$filter={query}&$select=id,userPrincipalName,mail"
        body = graph.send("GET", url, route="/v1.0/users")
        for user in body.get("value", []) if isinstance(body, dict) else []:
            if isinstance(user, dict) and isinstance(user.get("id"), str):
                found.setdefault(user["id"].lower(), user)
    return list(found.values())


def resolve(rt: Runtime) -> ResolvedSchema:
    """The managed types of the configured schema (as a sync resolves them)."""
    from importer.assets import resolve_schema
    from importer.sync import requirements

    return resolve_schema(rt.assets(), rt.settings.assets.schema_key, requirements(rt.settings))


def find_person(rt: Runtime, who: str, schema: ResolvedSchema) -> Person:
    """Look ``who`` (an email or UPN) up in Entra and in the managed Assets user objects."""
    from importer.assets.aql import aql_in

    users = _entra_users(rt, who)
    in_entra = [u["id"].lower() for u in users]
    addresses = [who.strip()]
    for user in users:
        addresses += [v for v in (user.get("userPrincipalName"), user.get("mail")) if isinstance(v, str)]
    ids = list(in_entra)
    objects = rt.objects()
    for entry in _user_entries(rt.settings):
        rtype = schema.type(entry.object_type)
        for attr in _address_attributes(entry):
            wanted = list(dict.fromkeys((who.strip(), who.strip().lower())))
            for obj in objects.iter_objects(rtype, ql=aql_in(rtype.id, attr, wanted)):
                if obj.key:
                    ids.append(obj.key.lower())
                    addresses += [str(obj.values[a]) for a in _address_attributes(entry) if obj.values.get(a)]
    return Person(
        query=who.strip(),
        graph_ids=tuple(dict.fromkeys(ids)),
        in_entra=tuple(in_entra),
        addresses=tuple(dict.fromkeys(a for a in addresses if a)),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Holding:
    """One managed record about the person: their user object, or a device they own."""

    type: str  # mapping entry name
    object_type: str
    source_id: str  # Graph id
    role: str  # "person" | "owned_device"
    entry: IdMapEntry | None = None  # the id map entry in state
    asset: AssetsObject | None = None  # the Assets object
    attribute: str | None = None  # owned devices: the reference attribute that points at them
    unlinked: Any = None  # owned devices: that attribute's value without them

    def state_json(self) -> dict[str, Any]:
        """The id map entry, for ``privacy export``."""
        assert self.entry is not None
        return {
            "type": self.type,
            "role": self.role,
            "entra_id": self.source_id,
            "object_id": self.entry.object_id,
            "content_hash": self.entry.content_hash,
        }

    def assets_json(self, statuses: Mapping[tuple[str, str], Mapping[str, str]]) -> dict[str, Any]:
        """The Assets object with every attribute the importer manages, for ``privacy export``.

        ``statuses`` maps (object type, status attribute) to status names by id.
        """
        obj = self.asset
        assert obj is not None
        values = {k: statuses.get((self.object_type, k), {}).get(str(v), v) for k, v in obj.values.items()}
        return {
            "object_type": self.object_type,
            "role": self.role,
            "entra_id": self.source_id,
            "object_id": obj.id,
            "object_key": obj.object_key,
            "label": obj.label,
            "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()},
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Holdings:
    """Everything the importer holds about one person."""

    person: Person
    pseudonym: str  # of the query: what `privacy pseudonym` prints, the audit subject
    log_pseudonyms: tuple[str, ...]
    account_keys: tuple[str, ...]
    records: tuple[Holding, ...] = ()
    accounts: tuple[CachedAccount, ...] = ()
    audit: tuple[AuditRecord, ...] = ()
    log_lines: tuple[tuple[str, int, Any], ...] = ()
    statuses: Mapping[tuple[str, str], Mapping[str, str]] = field(default_factory=dict)

    def describe(self) -> list[str]:
        """What is held, in a few lines without personal values (for ``privacy forget``)."""
        entries = sum(1 for h in self.records if h.entry is not None)
        objects = [h for h in self.records if h.asset is not None]
        devices = sum(1 for h in objects if h.role == "owned_device")
        where = "still in Entra" if self.person.in_entra else "not in Entra"
        return [
            f"person {self.pseudonym} ({where}; {len(self.person.graph_ids)} Entra ids known)",
            f"  state: {entries} id map entries, {len(self.accounts)} cached account lookups",
            f"  Assets: {len(objects) - devices} user objects, {devices} devices they own",
            f"  logs: {len(self.log_lines)} lines under their pseudonyms (deleted with the log files)",
        ]

    def as_json(self, settings: Settings) -> dict[str, Any]:
        """The ``privacy export`` document."""
        return {
            "format_version": 1,
            "instance": settings.instance,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "subject": {
                "query": self.person.query,
                "pseudonym": self.pseudonym,
                "log_pseudonyms": list(self.log_pseudonyms),
                "in_entra": list(self.person.in_entra),
                "entra_ids": list(self.person.graph_ids),
            },
            "state": {
                "id_map": [h.state_json() for h in self.records if h.entry is not None],
                "account_cache": [
                    {"key": a.key, "account_id": a.account_id, "cached_at": a.cached_at.isoformat()}
                    for a in self.accounts
                ],
                "audit": [
                    {
                        "at": r.at.isoformat(),
                        "action": r.action,
                        "subject": r.subject,
                        "detail": dict(r.detail),
                    }
                    for r in self.audit
                ],
            },
            "assets": [h.assets_json(self.statuses) for h in self.records if h.asset is not None],
            "logs": {
                "directory": str(settings.logging.dir),
                "retention_days": settings.logging.retention_days,
                "lines": [{"file": f, "line": n, "entry": e} for f, n, e in self.log_lines],
            },
        }


def collect(rt: Runtime, person: Person, schema: ResolvedSchema) -> Holdings:
    """Gather state entries, cached accounts, audit records, Assets objects and log lines."""
    from importer.assets.aql import aql_in
    from importer.logs import iter_log_lines

    settings, state, objects = rt.settings, rt.state, rt.objects()
    records: list[Holding] = []
    owners: dict[str, list[AssetsObject]] = {}  # users entry name -> their objects
    for entry in _user_entries(settings):
        rtype = schema.type(entry.object_type)
        mapped = state.get_id_entries(entry.name, person.graph_ids) if person.graph_ids else {}
        found = objects.find_by_keys(rtype, person.graph_ids) if person.graph_ids else {}
        for sid in sorted(set(mapped) | set(found)):
            obj = found.get(sid)
            records.append(
                Holding(
                    type=entry.name,
                    object_type=entry.object_type,
                    source_id=sid,
                    role="person",
                    entry=mapped.get(sid),
                    asset=obj,
                )
            )
            if obj is not None:
                owners.setdefault(entry.name, []).append(obj)
    for entry in settings.mapping.object_types:
        for attr, spec in entry.attributes.items():
            users = owners.get(spec.reference or "")
            if not users:
                continue
            rtype = schema.type(entry.object_type)
            ids = {u.id for u in users}
            refs = [u.object_key or u.id for u in users]  # AQL matches a reference by object key
            devices = {
                o.key: o
                for o in objects.iter_objects(rtype, ql=aql_in(rtype.id, attr, refs))
                if o.key and _without(o.values.get(attr), ids) != o.values.get(attr)
            }
            mapped = state.get_id_entries(entry.name, devices) if devices else {}
            records += [
                Holding(
                    type=entry.name,
                    object_type=entry.object_type,
                    source_id=sid,
                    role="owned_device",
                    entry=mapped.get(sid),
                    asset=obj,
                    attribute=attr,
                    unlinked=_without(obj.values.get(attr), ids),
                )
                for sid, obj in sorted(devices.items())
            ]
    pseudonyms = rt.pseudonyms
    log_pids = person.log_pseudonyms(pseudonyms)
    keys = list(dict.fromkeys(account_key(pseudonyms, a) for a in (person.query, *person.addresses)))
    accounts = state.get_accounts(keys)
    audit = [r for r in state.list_audit(_AUDIT_SCAN) if r.subject in log_pids]
    lines = list(iter_log_lines(settings.logging.dir, log_pids))
    return Holdings(
        person=person,
        pseudonym=log_pids[0],
        log_pseudonyms=tuple(log_pids),
        account_keys=tuple(keys),
        records=tuple(records),
        accounts=tuple(accounts.values()),
        audit=tuple(audit),
        log_lines=tuple(lines),
        statuses=_status_names(schema, records),
    )


def _without(value: object, ids: set[str]) -> object:
    """A reference value with the given object ids taken out (None when nothing is left)."""
    if isinstance(value, tuple):
        kept = tuple(v for v in value if str(v) not in ids)
        return kept if len(kept) > 1 else (kept[0] if kept else None)
    return None if value is not None and str(value) in ids else value


def _status_names(schema: ResolvedSchema, records: list[Holding]) -> dict[tuple[str, str], dict[str, str]]:
    """Status attributes of the exported objects, with status names by id (``2``: ``Active``)."""
    names = {s.id: s.name for s in schema.statuses.values()}
    out: dict[tuple[str, str], dict[str, str]] = {}
    for object_type in {h.object_type for h in records if h.asset is not None}:
        for attr, definition in schema.type(object_type).attributes.items():
            if definition.kind == "status":
                out[(object_type, attr)] = names
    return out
