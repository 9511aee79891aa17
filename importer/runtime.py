"""Composition root: build the importer's parts (vault, state, HTTP clients) from ``Settings``.

The CLI verbs, the daemon and the demo all start from a validated ``Settings`` and need the
same parts wired the same way; this module is the one place that does it. Nothing here
decides anything about syncing.
"""

from __future__ import annotations

import base64
import binascii
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from importer.config import is_secret_ref, secret_name
from importer.errors import ConfigError, ConfigProblem, CredentialError
from importer.http import Http, HttpSettings, RateLimiter, RequestStats, RetryBudget

if TYPE_CHECKING:
    from importer.assets import AccountResolver, AssetsClient, AssetsObjects
    from importer.config import Settings
    from importer.graph import GraphClient
    from importer.privacy import Pseudonymizer
    from importer.state import StateStore
    from importer.vault import Secret, Vault, VaultSettings

__all__ = [
    "Runtime",
    "holder_name",
    "http_settings",
    "open_runtime",
    "open_state",
    "pid_namespace",
    "vault_settings",
]

PEPPER = "log_pepper"


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


def http_settings(settings: Settings) -> HttpSettings:
    """HTTP policy values from the ``http`` section."""
    h = settings.http
    return HttpSettings(
        timeout_s=h.timeout_s,
        connect_timeout_s=h.connect_timeout_s,
        ca_bundle=str(h.ca_bundle) if h.ca_bundle else None,
        max_retries=h.max_retries,
        max_retry_wait_s=h.max_retry_wait_s,
        retry_budget=h.retry_budget,
        requests_per_minute=h.requests_per_minute,
        max_concurrency=h.max_concurrency,
    )


def open_state(settings: Settings) -> StateStore:
    """The configured state store (not yet initialised)."""
    from importer.state import open_state as _open

    s = settings.state
    return _open(
        s.backend,
        path=str(s.path),
        table=s.table,
        region=s.region,
        endpoint_url=s.endpoint_url,
        instance=settings.instance,
        retention_days=settings.logging.retention_days,
    )


def pid_namespace() -> str | None:
    """This process's PID namespace (two containers can share a host name but not their processes)."""
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:[").removesuffix("]")
    except OSError:
        return None


def holder_name() -> str:
    """Who holds a lease: host, process (and its PID namespace), never a person."""
    ns = pid_namespace()
    return f"{socket.gethostname()}:{os.getpid()}" + (f"@{ns}" if ns else "")


def _secret_refs(settings: Settings) -> dict[str, str]:
    """Config key path -> vault name for every secret reference in the settings."""
    refs: dict[str, str] = {}
    candidates: dict[str, str | None] = {
        "entra.tenant_id": settings.entra.tenant_id,
        "entra.client_id": settings.entra.client_id,
        "entra.client_secret": settings.entra.client_secret,
        "entra.certificate.password": settings.entra.certificate.password
        if settings.entra.certificate
        else None,
        "assets.email": settings.assets.email,
        "assets.api_token": settings.assets.api_token,
    }
    for path, value in candidates.items():
        if value is not None and is_secret_ref(value):
            refs[path] = secret_name(value)
    return refs


@dataclass
class Runtime:
    """The parts of one installation, built once per process (or per CLI command)."""

    settings: Settings
    secrets: Mapping[str, Secret]
    state: StateStore
    pseudonyms: Pseudonymizer
    stats: RequestStats = field(default_factory=RequestStats)
    budget: RetryBudget = field(default_factory=RetryBudget)
    assets_limiter: RateLimiter | None = None
    _parts: dict[str, Any] = field(default_factory=dict)

    def value(self, ref_or_plain: str) -> str:
        """A config value that may be a ``secret:NAME`` reference, resolved."""
        if is_secret_ref(ref_or_plain):
            return self.secrets[secret_name(ref_or_plain)].reveal()
        return ref_or_plain

    def secret(self, ref_or_plain: str) -> Any:
        """Like ``value`` but keeps a vault ``Secret`` wrapped (for credentials)."""
        return self.secrets[secret_name(ref_or_plain)] if is_secret_ref(ref_or_plain) else ref_or_plain

    def new_run(self) -> None:
        """Fresh request counts and retry budget for the next run."""
        self.stats.counts.clear()
        self.stats.throttled_waits = 0
        self.stats.waited_s = 0.0
        self.budget.refund(self.budget.capacity)

    def http(self, service: str) -> Http:
        """The shared ``Http`` for a service (graph, authority, assets)."""
        key = f"http:{service}"
        if key not in self._parts:
            limiter = self.assets_limiter if service == "assets" else None
            self._parts[key] = Http(
                service, http_settings(self.settings), stats=self.stats, budget=self.budget, limiter=limiter
            )
        http: Http = self._parts[key]
        return http

    def graph(self) -> GraphClient:
        """The Graph client (MSAL app-only auth)."""
        if "graph" not in self._parts:
            from importer.graph import ClientCertificate, ClientSecret, GraphAuth, GraphClient

            entra = self.settings.entra
            credential: ClientSecret | ClientCertificate
            if entra.certificate is not None:
                password = self.secret(entra.certificate.password) if entra.certificate.password else None
                credential = ClientCertificate(path=entra.certificate.path, password=password)
            else:
                assert entra.client_secret is not None
                credential = ClientSecret(self.secret(entra.client_secret))
            auth = GraphAuth(
                tenant_id=self.value(entra.tenant_id),
                client_id=self.value(entra.client_id),
                credential=credential,
                cloud=entra.cloud,
                authority_host=entra.authority_host,
                graph_url=entra.graph_url,
                http=self.http("authority"),
            )
            self._parts["graph"] = GraphClient(
                self.http("graph"), auth, max_concurrency=min(8, self.settings.http.max_concurrency)
            )
        client: GraphClient = self._parts["graph"]
        return client

    def assets(self) -> AssetsClient:
        """The Assets client; on Cloud the workspace id is discovered once and kept in state."""
        if "assets" not in self._parts:
            from importer.assets import AssetsClient, BasicAuth, BearerAuth, discover_workspace
            from importer.state import Installation

            a = self.settings.assets
            auth = (
                BearerAuth(self.secret(a.api_token))
                if a.auth == "pat"
                else BasicAuth(self.secret(a.email or ""), self.secret(a.api_token))
            )
            http = self.http("assets")
            if a.flavor == "datacenter":
                client = AssetsClient.datacenter(http, site_url=a.site_url, auth=auth)
            else:
                now = datetime.now(UTC)
                inst = self.state.get_installation()
                workspace = a.workspace_id or (
                    inst.workspace_id if inst and inst.site_url == a.site_url else None
                )
                if workspace is None:
                    workspace = discover_workspace(http, a.site_url, auth=auth)
                tenant = self.pseudonyms.pseudonym(self.value(self.settings.entra.tenant_id), kind="tenant")
                if inst is not None and inst.tenant_pseudonym != tenant:
                    raise CredentialError(
                        "this state store belongs to another Entra tenant (its tenant pseudonym differs); "
                        "use a new state store for a new tenant so nothing is removed by mistake"
                    )
                self.state.put_installation(
                    Installation(
                        instance=self.settings.instance,
                        site_url=a.site_url,
                        workspace_id=workspace,
                        tenant_pseudonym=tenant,
                        first_seen=inst.first_seen if inst else now,
                        last_seen=now,
                    )
                )
                client = AssetsClient.cloud(http, api_url=a.api_url, workspace_id=workspace, auth=auth)
            self._parts["assets"] = client
            self._parts["auth"] = auth
        result: AssetsClient = self._parts["assets"]
        return result

    def objects(self) -> AssetsObjects:
        """Object reads and writes over the Assets client."""
        if "objects" not in self._parts:
            from importer.assets import AssetsObjects

            self._parts["objects"] = AssetsObjects(self.assets())
        objects: AssetsObjects = self._parts["objects"]
        return objects

    def accounts(self, cache: Mapping[str, str | None]) -> AccountResolver:
        """A fresh email ─► accountId resolver for one run, seeded from state."""
        from importer.assets import AccountResolver

        self.assets()
        return AccountResolver(
            self.http("assets"), self.settings.assets.site_url, auth=self._parts["auth"], cache=cache
        )

    def close(self) -> None:
        """Close connections and the state store."""
        for key, part in self._parts.items():
            if key.startswith("http:"):
                part.close()
        self.state.close()


def open_vault(settings: Settings, *, environ: Mapping[str, str] | None = None) -> Vault:
    """Open the configured vault (errors are ``CredentialError`` with a clear message)."""
    from importer.vault import Vault

    return Vault.open(vault_settings(settings), environ=os.environ if environ is None else environ)


def open_runtime(
    settings: Settings, *, vault: Vault | None = None, state: StateStore | None = None
) -> Runtime:
    """Decrypt the credentials, open the state store and return the wired parts.

    Raises:
        ConfigError: a ``secret:NAME`` in the config is not in the vault (all such names listed).
        CredentialError: the vault cannot be opened, or it holds no log pepper.
    """
    from importer.logs import set_pseudonymizer
    from importer.privacy import Pseudonymizer

    vault = vault or open_vault(settings)
    refs = _secret_refs(settings)
    known = {info.name for info in vault.names()}
    missing = [
        ConfigProblem(
            path,
            f"secret {name!r} is not in the vault {settings.vault.path} "
            f"(add it with `importer secrets set {name}`)",
        )
        for path, name in refs.items()
        if name not in known
    ]
    if missing:
        raise ConfigError(missing, source=str(settings.source) if settings.source else None)
    if PEPPER not in known:
        raise CredentialError(
            f"the vault {settings.vault.path} holds no {PEPPER}; "
            f"create one with `importer secrets set {PEPPER}` (32 random bytes, base64)"
        )
    secrets = {name: vault.get(name) for name in {*refs.values(), PEPPER}}
    try:
        pepper = base64.b64decode(secrets[PEPPER].reveal(), validate=True)
    except (binascii.Error, ValueError):
        pepper = secrets[PEPPER].reveal().encode("utf-8")
    pseudonyms = Pseudonymizer(pepper)
    set_pseudonymizer(pseudonyms, instance=settings.instance)
    store = state or open_state(settings)
    store.init()
    limiter = RateLimiter(settings.http.requests_per_minute)
    budget = RetryBudget(settings.http.retry_budget)
    return Runtime(
        settings=settings,
        secrets=secrets,
        state=store,
        pseudonyms=pseudonyms,
        budget=budget,
        assets_limiter=limiter,
    )
