"""``importer doctor``: check each piece in order and say, for each, ok or what to fix.

Order: configuration, vault (every ``secret:NAME`` decrypts), state store (exists, reachable,
lease holder), Entra (token, users, devices, Intune when the mapping uses it), Assets (workspace,
schema matches the mapping, objects readable, Atlassian account search). Every check costs at
most one or two small requests; nothing is written anywhere: the runtime is opened read-only,
so a missing state store is reported (not created) and the installation record is only compared
with the configuration (site, workspace, tenant), never updated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from importer.errors import ImporterError, SchemaDriftError

if TYPE_CHECKING:
    from importer.config import Settings
    from importer.runtime import Runtime

__all__ = ["Finding", "run_checks"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One check: its name, whether it passed, what was seen, and how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None


def run_checks(settings: Settings, *, only_credentials: bool = False) -> list[Finding]:
    """Run every check; later checks that need an earlier part are reported as skipped."""
    from importer.runtime import open_runtime

    found = [
        Finding("config", True, f"{settings.source or 'config'} is valid (instance {settings.instance})")
    ]
    try:
        rt = open_runtime(settings, read_only=True)
    except ImporterError as exc:
        found.append(
            Finding(
                "vault", False, str(exc), "see docs/secrets.md; `importer secrets list` shows what is set"
            )
        )
        return found
    try:
        found.append(Finding("vault", True, f"{settings.vault.path} opens and every secret:NAME decrypts"))
        if not only_credentials:
            found.append(_state(rt))
        found += _entra(rt)
        found += _assets(rt, schema=not only_credentials)
    finally:
        rt.close()
    return found


def _guard(name: str, fix: str, check: Callable[[], Finding]) -> Finding:
    try:
        return check()
    except ImporterError as exc:
        return Finding(name, False, str(exc), fix)


def _state(rt: Runtime) -> Finding:
    def check() -> Finding:
        s = rt.settings.state
        if not rt.state_present():
            where = f"SQLite state file {s.path}" if s.backend == "sqlite" else f"DynamoDB table {s.table!r}"
            return Finding(
                "state", False, f"missing: {where} does not exist yet", "run `importer state init`"
            )
        info = rt.state.lease_info()
        runs = rt.state.list_runs(limit=1)
        last = (
            f"; last run {runs[0].outcome} at {runs[0].started_at:%Y-%m-%d %H:%M} UTC"
            if runs
            else "; no runs yet"
        )
        holder = f"held by {info.owner}" if info.owner and not info.released else "free"
        return Finding("state", True, f"{rt.settings.state.backend} store reachable; lease {holder}{last}")

    return _guard(
        "state", "check state.path (permissions) or the DynamoDB table, region and credentials", check
    )


def _entra(rt: Runtime) -> list[Finding]:
    intune = rt.settings.entra.owners == "intune"
    try:
        checks = rt.graph().probe(intune=intune)
    except ImporterError as exc:
        return [Finding("entra", False, str(exc), "check the entra section and the app registration")]
    return [Finding(c.name, c.ok, c.detail, c.fix) for c in checks]


def _assets(rt: Runtime, *, schema: bool) -> list[Finding]:
    from importer.sync import requirements

    out: list[Finding] = []

    def workspace() -> Finding:
        client = rt.assets()
        return Finding("assets_access", True, f"Assets reachable at {client.base_url}")

    access = _guard(
        "assets_access",
        "check assets.site_url, assets.email and assets.api_token (an API token, "
        "not the password) and that the account has an Assets role",
        workspace,
    )
    out.append(access)
    if not access.ok:
        return out
    if schema:

        def resolve() -> Finding:
            from importer.assets import resolve_schema

            try:
                resolved = resolve_schema(
                    rt.assets(), rt.settings.assets.schema_key, requirements(rt.settings)
                )
            except SchemaDriftError as exc:
                return Finding(
                    "assets_schema",
                    False,
                    f"{len(exc.problems)} problem(s): " + "; ".join(exc.problems),
                    "run `importer schema plan`, then `importer schema apply`",
                )
            types = ", ".join(sorted(resolved.types))
            return Finding(
                "assets_schema",
                True,
                f"schema {rt.settings.assets.schema_key} has everything the mapping needs ({types})",
            )

        out.append(_guard("assets_schema", "run `importer schema plan`", resolve))

    def accounts() -> Finding:
        resolver = rt.accounts({})
        resolver.resolve("doctor-probe@example.invalid")
        return Finding("jira_accounts", True, "Atlassian account search answers (used for User attributes)")

    out.append(_guard("jira_accounts", "the account needs the Browse users and groups permission", accounts))
    return out
