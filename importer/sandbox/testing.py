"""Pytest helpers for any test package that needs the sandbox.

```python
# tests/<pkg>/conftest.py
from importer.sandbox.testing import sandbox_fixture

sandbox = sandbox_fixture(scope="session", users=50, devices=40, seed=3)


def test_something(sandbox):
    session = http_session(sandbox)
    token = get_token(sandbox, session)
```

The fixture yields a running ``Sandbox`` and stops it at the end of its scope; with
``reset_after_each=True`` (a function-scoped wrapper is added) faults, tenant settings and
request counts go back to defaults after every test. Sessions never trust the environment
(``REQUESTS_CA_BUNDLE`` would override ``verify``) and never use a proxy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

import pytest
import requests

from importer.sandbox.app import Sandbox

__all__ = [
    "GraphGet",
    "certificate_credential",
    "get_token",
    "graph_getter",
    "http_session",
    "msal_app",
    "sandbox_fixture",
]

GraphGet = Callable[..., requests.Response]
Scope = Literal["session", "package", "module", "class", "function"]


def sandbox_fixture(
    *, scope: Scope = "session", users: int = 50, devices: int = 40, seed: int = 0, **tenant: Any
) -> Callable[..., Iterator[Sandbox]]:
    """A pytest fixture yielding a running ``Sandbox`` (tenant settings from ``tenant`` applied)."""

    @pytest.fixture(scope=scope)
    def _sandbox() -> Iterator[Sandbox]:
        with Sandbox(users=users, devices=devices, seed=seed) as sb:
            if tenant:
                sb.set_tenant(**tenant)
            yield sb
            if sb.server is not None and sb.server.errors:
                raise AssertionError("the sandbox failed internally:\n" + "\n".join(sb.server.errors))

    return _sandbox


def http_session(sb: Sandbox) -> requests.Session:
    """A ``requests.Session`` that trusts the sandbox's CA and ignores proxy/CA environment variables."""
    session = requests.Session()
    session.trust_env = False
    session.verify = sb.info()["ca_bundle"]
    return session


def get_token(sb: Sandbox, session: requests.Session | None = None) -> str:
    """An access token for the sandbox's Graph, fetched with the client secret (no MSAL)."""
    info = sb.info()
    response = (session or http_session(sb)).post(
        f"{info['authority']}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": info["client_id"],
            "client_secret": info["client_secret"],
            "scope": info["graph_scope"],
        },
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def certificate_credential(sb: Sandbox) -> dict[str, str]:
    """MSAL's ``client_credential`` for the registered certificate (PEM key + public certificate)."""
    if sb.tls is None:
        raise RuntimeError("the sandbox is not running")
    return {"private_key": sb.tls.client.private_key_pem, "public_certificate": sb.tls.client.certificate_pem}


def msal_app(
    sb: Sandbox,
    *,
    credential: str | dict[str, Any] | None = None,
    client_id: str | None = None,
    tenant: str | None = None,
    session: requests.Session | None = None,
) -> Any:
    """A fresh ``msal.ConfidentialClientApplication`` for the sandbox (the secret unless told otherwise)."""
    import msal

    info = sb.info()
    return msal.ConfidentialClientApplication(
        client_id or info["client_id"],
        client_credential=credential if credential is not None else info["client_secret"],
        authority=f"{sb.base_url}/{tenant or info['tenant_id']}",
        instance_discovery=False,
        http_client=session or http_session(sb),
    )


def graph_getter(sb: Sandbox, session: requests.Session, token: str) -> GraphGet:
    """``get(path_or_url, headers=None, **options)``: a GET on the sandbox's Graph with ``token``.

    ``options`` are OData query options without their ``$`` (``top=50``, ``select="id"``); a full
    URL (a nextLink or deltaLink) is sent verbatim.
    """

    def get(target: str, *, headers: dict[str, str] | None = None, **options: Any) -> requests.Response:
        url = target if target.startswith("https://") else sb.base_url + target
        query = {k if k.startswith("$") else f"${k}": v for k, v in options.items()} or None
        auth = {"Authorization": f"Bearer {token}"}
        return session.get(url, params=query, headers={**auth, **(headers or {})}, timeout=30)

    return get
