"""Composition root: build the importer's parts (vault, state, HTTP clients) from ``Settings``.

The CLI verbs, the daemon and the demo all start from a validated ``Settings`` and need the
same parts wired the same way; this module is the one place that does it. Nothing here
decides anything about syncing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from importer.config import is_secret_ref, secret_name
from importer.errors import ConfigError, ConfigProblem, CredentialError, ImporterError
from importer.http import Http, HttpSettings, RateLimiter, RequestStats, RetryBudget

if TYPE_CHECKING:
    from importer.assets import AccountResolver, AssetsClient, AssetsObjects
    from importer.config import Settings
    from importer.graph import GraphClient
    from importer.privacy import Pseudonymizer
    from importer.state import Installation, StateStore
    from importer.vault import Secret, Vault, VaultSettings

__all__ = [
    "Runtime",
    "holder_name",
    "http_settings",
    "open_runtime",
    "open_state",
    "open_vault",
    "pid_namespace",
    "pseudonymizer_from",
    "read_secrets",
    "state_present",
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


def state_present(settings: Settings, store: StateStore) -> bool:
    """Whether the configured state store exists, found out without creating it or writing to it."""
    if settings.state.backend == "sqlite":
        path = settings.state.path
        return path.is_file() and path.stat().st_size > 0  # SQLite would create the schema in an empty file
    # A read on a missing table fails with TableMissing; importer.state does not export it (yet).
    from importer.state._dynamo_io import TableMissing

    try:
        store.get_installation()
    except TableMissing:
        return False
    return True


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


def _same_site(a: str, b: str) -> bool:
    """Whether two site URLs name one site (scheme and host compared without case)."""
    x, y = urlsplit(a.rstrip("/")), urlsplit(b.rstrip("/"))
    return (x.scheme.lower(), x.netloc.lower(), x.path) == (y.scheme.lower(), y.netloc.lower(), y.path)


@dataclass
class Runtime:
    """The parts of one installation, built once per process (or per CLI command).

    A ``read_only`` runtime (``importer doctor``, ``secrets verify --online``) never creates the
    state store and never writes to it: the installation record is checked, not recorded.
    """

    settings: Settings
    secrets: Mapping[str, Secret]
    state: StateStore
    pseudonyms: Pseudonymizer
    stats: RequestStats = field(default_factory=RequestStats)
    budget: RetryBudget = field(default_factory=RetryBudget)
    assets_limiter: RateLimiter | None = None
    read_only: bool = False
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

    def state_present(self) -> bool:
        """Whether the state store exists (always, unless read-only: the others create it)."""
        if not self.read_only:
            return True
        if "state_present" not in self._parts:
            self._parts["state_present"] = state_present(self.settings, self.state)
        present: bool = self._parts["state_present"]
        return present

    def assets(self) -> AssetsClient:
        """The Assets client, once the state store is known to belong to this site and tenant.

        The installation record (site, workspace id, tenant pseudonym) is checked and then
        written (not by a read-only runtime); on Cloud the workspace id is discovered once and
        kept there.

        Raises:
            ConfigError: the state store belongs to another Assets site or workspace.
            CredentialError: it belongs to another Entra tenant, or the log pepper changed.
        """
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
            now = datetime.now(UTC)
            inst = self._installation()
            tenant = self.pseudonyms.pseudonym(self.value(self.settings.entra.tenant_id), kind="tenant")
            self._check_installation(inst, tenant)
            workspace: str | None = None
            if a.flavor == "datacenter":
                client = AssetsClient.datacenter(http, site_url=a.site_url, auth=auth)
            else:
                workspace = a.workspace_id or (inst.workspace_id if inst else None)
                if workspace is None:
                    workspace = discover_workspace(http, a.site_url, auth=auth)
                client = AssetsClient.cloud(http, api_url=a.api_url, workspace_id=workspace, auth=auth)
            if not self.read_only:
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
            self._parts["assets"] = client
            self._parts["auth"] = auth
        result: AssetsClient = self._parts["assets"]
        return result

    def _installation(self) -> Installation | None:
        if self.read_only:
            try:
                if not self.state_present():
                    return None  # nothing to compare with, and reading would create the store
            except ImporterError:
                return None  # doctor reports the state store's own problem
        return self.state.get_installation()

    def _check_installation(self, inst: Installation | None, tenant: str) -> None:
        """Refuse a state store written for another site, workspace or tenant.

        Its id map holds another workspace's object ids and its delta links another tenant's
        changes: used here, a run would update the wrong objects or remove the right ones.
        """
        if inst is None:
            return
        a = self.settings.assets
        source = str(self.settings.source) if self.settings.source else None
        new_store = (
            "use a new state store (state.path or state.table) or another `instance` name for it; "
            "the first run there is a full run, which finds objects already in Assets by their key attribute"
        )
        if not _same_site(inst.site_url, a.site_url):
            raise ConfigError(
                [
                    ConfigProblem(
                        "assets.site_url",
                        f"this state store belongs to the Assets site {inst.site_url}, not {a.site_url}: "
                        f"its id map and delta links are that site's. To sync {a.site_url}, {new_store}. "
                        f"If {inst.site_url} is still the right site, correct assets.site_url",
                    )
                ],
                source=source,
            )
        if a.workspace_id and inst.workspace_id and a.workspace_id != inst.workspace_id:
            raise ConfigError(
                [
                    ConfigProblem(
                        "assets.workspace_id",
                        f"this state store belongs to the Assets workspace {inst.workspace_id}, not "
                        f"{a.workspace_id}: its id map holds that workspace's objects. For another "
                        f"workspace, {new_store}",
                    )
                ],
                source=source,
            )
        if inst.tenant_pseudonym != tenant:
            raise CredentialError(
                "this state store belongs to another Entra tenant (its tenant pseudonym differs), or "
                f"the vault's {PEPPER} was changed since the store was written (the tenant is kept "
                f"as a pseudonym keyed by it). If {PEPPER} was replaced, restore the previous one from "
                f"a backup of the vault {self.settings.vault.path}; for another tenant, {new_store}, "
                "so nothing is removed by mistake"
            )

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


def _no_pepper(settings: Settings) -> CredentialError:
    return CredentialError(
        f"the vault {settings.vault.path} holds no {PEPPER}. If it held one before, restore the vault "
        "from a backup rather than creating a new pepper: a new one gives everyone new pseudonyms, "
        "so `importer privacy export` no longer finds the log lines written so far, and the state "
        "store is refused (its tenant pseudonym no longer matches). For a new installation: "
        f"`openssl rand -base64 32 | importer secrets set {PEPPER} --stdin`"
    )


def read_secrets(
    settings: Settings, vault: Vault, *, refs: Mapping[str, str] | None = None
) -> dict[str, Secret]:
    """Decrypt the secrets the configuration names, and the log pepper; then close the vault.

    Args:
        refs: config key path -> vault name; default: every ``secret:NAME`` in ``settings``.

    Raises:
        ConfigError: a ``secret:NAME`` in the config is not in the vault (all such names listed).
        CredentialError: the vault holds no log pepper, or a value does not decrypt.
    """
    from importer.vault import MissingSecretError

    refs = _secret_refs(settings) if refs is None else refs
    try:
        return vault.resolve([*refs.values(), PEPPER])
    except MissingSecretError as exc:
        missing = [
            ConfigProblem(
                path,
                f"secret {name!r} is not in the vault {settings.vault.path} "
                f"(add it with `importer secrets set {name}`)",
            )
            for path, name in refs.items()
            if name in exc.names
        ]
        if missing:
            raise ConfigError(missing, source=str(settings.source) if settings.source else None) from None
        raise _no_pepper(settings) from None
    finally:
        vault.close()  # the values are decrypted: wipe the keys from memory


def pseudonymizer_from(settings: Settings, pepper: Secret) -> Pseudonymizer:
    """The pseudonymizer keyed by the vault's ``log_pepper``.

    Raises:
        CredentialError: the pepper is shorter than ``MIN_PEPPER_BYTES``.
    """
    from importer.privacy import MIN_PEPPER_BYTES, Pseudonymizer, pepper_bytes

    key = pepper_bytes(pepper.reveal())
    if len(key) < MIN_PEPPER_BYTES:
        raise CredentialError(
            f"the {PEPPER} in the vault {settings.vault.path} is too short: it must be at least "
            f"{MIN_PEPPER_BYTES} bytes (after base64 decoding; `importer secrets init` makes 32). "
            f"Restore the previous {PEPPER} from a backup of the vault if there was one; otherwise "
            f"replace it: `openssl rand -base64 32 | importer secrets set {PEPPER} --stdin --force`"
        )
    return Pseudonymizer(key)


def open_runtime(
    settings: Settings,
    *,
    vault: Vault | None = None,
    state: StateStore | None = None,
    read_only: bool = False,
) -> Runtime:
    """Decrypt the credentials, open the state store and return the wired parts.

    The vault (``vault`` too, when given) is closed once the secrets are decrypted. The state
    store is created if needed, unless ``read_only``: then nothing is created or written.

    Raises:
        ConfigError: a ``secret:NAME`` in the config is not in the vault (all such names listed).
        CredentialError: the vault cannot be opened, it holds no log pepper, or the pepper is too short.
    """
    from importer.logs import set_pseudonymizer

    secrets = read_secrets(settings, vault or open_vault(settings))
    pseudonyms = pseudonymizer_from(settings, secrets[PEPPER])
    set_pseudonymizer(pseudonyms, instance=settings.instance)
    store = state or open_state(settings)
    if not read_only:
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
        read_only=read_only,
    )
