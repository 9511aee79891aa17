"""Composition of the sandbox: data, services, TLS and the server, usable in-process.

```python
with Sandbox(users=200, devices=150, seed=1) as sb:
    info = sb.info()             # what ``importer sandbox serve`` prints as JSON
    sb.mutate(update_users=3)    # the control API, in-process
```

Jira accounts for the Assets side are seeded from the Entra users (``seed_jira_accounts``):
an enabled member with a mail and a given name (people, not rooms or service accounts) gets an
Atlassian account with that mail and display name unless ``crc32(id) % 10 == 0`` (so ~90%
have one); guests and disabled users never do; then one mail (two from 100 seeded accounts
on) gets a second account, so looking it up is ambiguous.
"""

from __future__ import annotations

import gc
import ipaddress
import os
import random
import secrets
import shutil
import tempfile
import time
import zlib
from pathlib import Path
from types import TracebackType
from typing import Any

from importer.sandbox.authority import AuthorityService
from importer.sandbox.base import Service
from importer.sandbox.control import ControlService
from importer.sandbox.data import USER_FIELDS, generate_tenant
from importer.sandbox.directory import Directory
from importer.sandbox.faults import Faults
from importer.sandbox.graph import GraphService
from importer.sandbox.server import SandboxServer
from importer.sandbox.stats import RequestStats
from importer.sandbox.tenant import SimClock, TenantIdentity, TenantSettings
from importer.sandbox.tls import TlsMaterial, generate_tls
from importer.sandbox.tokens import AccessTokenCodec, TokenCodec

__all__ = ["Sandbox", "seed_jira_accounts"]

_U = {name: i for i, name in enumerate(USER_FIELDS)}
_FREEZE_AT = 20_000  # objects; see start()


def _loopback(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise ValueError(f"the sandbox binds loopback addresses only, not {host!r}")


def seed_jira_accounts(assets: Any, directory: Directory, *, seed: int) -> dict[str, list[str]]:
    """Create the Jira accounts for the Entra users (rule in the module docstring); mail -> accountIds."""
    accounts: dict[str, list[str]] = {}
    users = directory.users
    for oid in users.order:
        rec = users.records[oid]
        mail = rec[_U["mail"]]
        if (
            rec[_U["userType"]] == "Member"
            and rec[_U["accountEnabled"]] is True
            and mail
            and rec[_U["givenName"]] is not None
            and zlib.crc32(oid.encode()) % 10 != 0
        ):
            accounts[mail] = [assets.add_jira_user(mail, rec[_U["displayName"]])]
    rng = random.Random(f"importer-sandbox-jira:{seed}")
    for mail in rng.sample(sorted(accounts), min(len(accounts), 1 if len(accounts) < 100 else 2)):
        display = next(
            users.records[o][_U["displayName"]] for o in users.order if users.records[o][_U["mail"]] == mail
        )
        second = assets.add_jira_user(mail, display)
        if second not in accounts[mail]:
            accounts[mail].append(second)
    return accounts


class Sandbox:
    """A simulated Entra tenant and Assets workspace served over HTTPS on a loopback address."""

    def __init__(
        self,
        *,
        users: int = 100,
        devices: int = 100,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: Path | str | None = None,
        schema_key: str = "ENTRA",
        jira_accounts: bool = True,
    ) -> None:
        self.host = _loopback(host)
        self.port = port
        self.seed = seed
        self.user_count, self.device_count = users, devices
        self.schema_key = schema_key
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self._own_dir: Path | None = None
        self._seed_jira = jira_accounts
        self._frozen = False
        self.identity = TenantIdentity.from_seed(seed)
        self.clock = SimClock()
        self.settings = TenantSettings()
        self.faults = Faults(seed=seed)
        self.stats_counter = RequestStats()
        self.timings: dict[str, float] = {}
        self.jira_accounts: dict[str, list[str]] = {}
        self.config_path: str | None = None  # written by the lead's config writer (--write-config)
        self.directory: Directory | None = None
        self.tls: TlsMaterial | None = None
        self.server: SandboxServer | None = None
        self.authority: AuthorityService | None = None
        self.graph: GraphService | None = None
        self.assets: Any = None
        self.control: ControlService | None = None

    # ---- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Generate the data, start the services and serve; returns self (cleans up if it fails)."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Sandbox:
        started = time.perf_counter()
        enabled = gc.isenabled()
        gc.disable()  # allocation-heavy and nothing to collect: the collector would only slow it down
        try:
            generated, generator = generate_tenant(
                self.seed, users=self.user_count, devices=self.device_count
            )
            self.directory = Directory(generated, generator, seed=self.seed)
        finally:
            if enabled:
                gc.enable()
        self.timings["generate_s"] = time.perf_counter() - started
        mark = time.perf_counter()
        directory = self._state_dir or Path(tempfile.mkdtemp(prefix="importer-sandbox-"))
        self._own_dir = None if self._state_dir else directory
        self.tls = generate_tls(directory)
        self.timings["tls_s"] = time.perf_counter() - mark
        key = secrets.token_bytes(32)
        access = AccessTokenCodec(key)
        self.authority = AuthorityService(
            identity=self.identity,
            settings=self.settings,
            clock=self.clock,
            client_certificate=self.tls.client,
            access_tokens=access,
        )
        self.graph = GraphService(
            directory=self.directory,
            identity=self.identity,
            settings=self.settings,
            clock=self.clock,
            access_tokens=access,
            page_tokens=TokenCodec(key, purpose="paging"),
            faults=self.faults,
        )
        mark = time.perf_counter()
        self.assets = self._make_assets()
        if self.assets is not None and self._seed_jira:
            self.jira_accounts = seed_jira_accounts(self.assets, self.directory, seed=self.seed)
        self.timings["assets_s"] = time.perf_counter() - mark
        self.control = ControlService(
            directory=self.directory,
            settings=self.settings,
            clock=self.clock,
            faults=self.faults,
            stats=self.stats_counter,
            assets=self.assets,
            info=self.info,
        )
        services: dict[str, Service] = {
            "authority": self.authority,
            "graph": self.graph,
            "control": self.control,
        }
        if self.assets is not None:
            services["assets"] = self.assets
        self.server = SandboxServer(
            host=self.host,
            port=self.port,
            context=self.tls.server_context(),
            services=services,
            faults=self.faults,
            stats=self.stats_counter,
        )
        if self.user_count + self.device_count >= _FREEZE_AT:
            # Millions of long-lived records make every full GC pass take ~0.3 s (a slow page now
            # and then); moving them out of the collector's sight keeps page times flat.
            gc.collect()
            gc.freeze()
            self._frozen = True
        self.server.start()
        self.port = self.server.port
        self.timings["start_s"] = time.perf_counter() - started
        return self

    def _make_assets(self) -> Any:
        try:
            from importer.sandbox.assets import AssetsService
        except ImportError:  # the Assets side is optional for Graph-only use
            return None
        return AssetsService(
            workspace_id=self.identity.workspace_id,
            email=self.identity.jira_email,
            api_token=self.identity.jira_api_token,
            schema_key=self.schema_key,
            seed=self.seed,
        )

    def stop(self) -> None:
        """Stop serving and remove the generated files (unless they live in ``state_dir``)."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None
        if self._frozen:
            gc.unfreeze()
            self._frozen = False

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- connection details -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``https://127.0.0.1:PORT``: Graph, authority, site and Assets all live here."""
        if self.server is None:
            raise RuntimeError("the sandbox is not running")
        return self.server.base_url

    def info(self) -> dict[str, Any]:
        """Everything a client (or a config writer) needs, as JSON-ready values."""
        if self.tls is None:
            raise RuntimeError("the sandbox is not running")
        base, ident = self.base_url, self.identity
        host = base.removeprefix("https://")
        return {
            "authority_host": host,
            "authority": f"{base}/{ident.tenant_id}",
            "tenant_id": ident.tenant_id,
            "tenant_domain": ident.tenant_domain,
            "client_id": ident.client_id,
            "client_secret": ident.client_secret,
            "client_certificate": str(self.tls.client.path),
            "client_certificate_pfx": str(self.tls.client.pfx_path),
            "client_certificate_pfx_password": self.tls.client.pfx_password,
            "client_certificate_thumbprint": self.tls.client.thumbprint_sha1,
            "graph_url": base,
            "graph_scope": f"{base}/.default",
            "site_url": base,
            "assets_api_url": base,
            "workspace_id": ident.workspace_id,
            "schema_key": self.schema_key,
            "jira_email": ident.jira_email,
            "jira_api_token": ident.jira_api_token,
            "ca_bundle": str(self.tls.ca_bundle),
            "control_url": f"{base}/_sandbox",
            "config": self.config_path,
            "users": self.user_count,
            "devices": self.device_count,
            "seed": self.seed,
            "pid": os.getpid(),
        }

    def __getattr__(self, name: str) -> Any:
        """``sb.tenant_id``, ``sb.graph_url``... : the keys of ``info()`` as attributes."""
        if name.startswith("_") or self.__dict__.get("tls") is None or self.__dict__.get("server") is None:
            raise AttributeError(name)
        info = self.info()
        if name in info:
            return info[name]
        raise AttributeError(name)

    # ---- the control API, in-process ----------------------------------------------------------

    def _ctl(self) -> ControlService:
        if self.control is None:
            raise RuntimeError("the sandbox is not running")
        return self.control

    def mutate(self, *, seed: int | None = None, **counts: int) -> dict[str, Any]:
        """Like ``POST /_sandbox/mutate``."""
        return self._ctl().mutate({**counts, **({"seed": seed} if seed is not None else {})})

    def set_faults(self, **knobs: Any) -> dict[str, Any]:
        """Like ``POST /_sandbox/faults`` (``service=None`` means graph and assets)."""
        return self._ctl().set_faults(knobs)

    def set_tenant(self, **settings: Any) -> dict[str, Any]:
        """Like ``POST /_sandbox/tenant``."""
        return self._ctl().set_tenant(settings)

    def stats(self) -> dict[str, Any]:
        """Like ``GET /_sandbox/stats``."""
        return self._ctl().stats()

    def reset_stats(self) -> None:
        """Like ``POST /_sandbox/stats/reset``."""
        self._ctl().reset_stats()

    def reset(self) -> None:
        """Back to a clean run state: no faults, default tenant settings, zero stats (data and clock stay)."""
        self.faults.configure({"reset": True})
        fresh = TenantSettings()
        for name in TenantSettings.__dataclass_fields__:
            if name != "delta_generation":
                setattr(self.settings, name, getattr(fresh, name))
        if self.assets is not None:
            self.assets.set_rate_limit(None)
            self.assets.reset_rate_window()
        self.stats_counter.reset()
