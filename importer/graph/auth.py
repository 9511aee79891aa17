"""App-only (client credentials) tokens for Microsoft Graph, through MSAL and our HTTP layer.

One ``msal.ConfidentialClientApplication`` per process, tenant and credential: MSAL's token cache
lives in the app object, so a new app per call would fetch a new token every time. A token is
asked for before each Graph request (a cache hit, refreshed by MSAL five minutes before expiry),
and dropped once when Graph answers 401.

MSAL's own HTTP goes through ``importer.http.Http`` (service ``authority``) so timeouts, the CA
bundle, retries and request counting apply to it as well: a 408 or 429 from the token endpoint
is retried after its ``Retry-After`` like any throttle, and only the other 4xx answers reach MSAL.
Token errors become ``GraphCredentialError`` (a ``CredentialError``, exit code 4) with a message
per AADSTS code; an answer MSAL cannot read (not JSON) is a ``TransportError`` (retriable). The
secret, the token, the tenant's identifiers and the authority's answer never appear in a message,
and MSAL's own logger, which would print an unreadable token answer, is kept quiet.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msal
import structlog

from importer.errors import CredentialError, TransportError, api_error_for_status
from importer.graph.credentials import (
    ClientCertificate,
    ClientSecret,
    GraphCredentialError,
    credential_error,
    load_certificate,
)
from importer.http import Http, HttpResponse
from importer.logs import register_secret

__all__ = ["CLOUDS", "ClientCertificate", "ClientSecret", "Cloud", "GraphAuth", "reset_app_cache"]

_log = structlog.get_logger("importer.graph.auth")
# MSAL logs a token answer that is not JSON whole, at ERROR ("Token response is not in json
# format: <body>"), and logs nothing else there that we use; token() reports such an answer itself.
logging.getLogger("msal.oauth2cli.oauth2").setLevel(logging.CRITICAL)


@dataclass(frozen=True, slots=True)
class Cloud:
    """Where a national cloud's authority and Graph live."""

    authority_host: str
    graph_url: str


CLOUDS: Mapping[str, Cloud] = {
    "global": Cloud("login.microsoftonline.com", "https://graph.microsoft.com"),
    "usgov": Cloud("login.microsoftonline.us", "https://graph.microsoft.us"),
    "usgov-dod": Cloud("login.microsoftonline.us", "https://dod-graph.microsoft.us"),
    "china": Cloud("login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
}


class _MsalResponse:
    """The response shape MSAL's ``http_client`` contract asks for."""

    def __init__(self, response: HttpResponse, service: str, method: str, route: str) -> None:
        self.status_code = response.status
        self.text = response.text
        self.headers = dict(response.headers)
        self._where = (service, method, route)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            service, method, route = self._where
            raise api_error_for_status(self.status_code)(
                service=service, method=method, route=route, status=self.status_code
            )


# The 4xx answers MSAL reads (OAuth error bodies: AADSTS codes). 408 and 429 are not answers about
# the credential: Http retries them, honouring Retry-After, and raises them typed when they last.
_CLIENT_ERRORS = frozenset(range(400, 500)) - {408, 429}


class _MsalHttp:
    """MSAL's ``http_client``: every authority call goes through our ``Http`` (service ``authority``)."""

    def __init__(self, http: Http) -> None:
        self.http = http
        self._local = threading.local()

    @property
    def last_error(self) -> Mapping[str, Any] | None:
        """The JSON body of the last 4xx this thread saw from the authority."""
        return getattr(self._local, "error", None)

    @property
    def last_call(self) -> tuple[str, str, int | None]:
        """Method, route and status of the last authority call this thread made."""
        found: tuple[str, str, int | None] | None = getattr(self._local, "call", None)
        return found or ("POST", "/{tenant}/oauth2/v2.0/token", None)

    def get(self, url: str, params: Any = None, headers: Any = None, **_: Any) -> _MsalResponse:
        return self._send("GET", url, params=params, data=None, headers=headers)

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **_: Any
    ) -> _MsalResponse:
        return self._send("POST", url, params=params, data=data, headers=headers)

    def close(self) -> None:
        """Nothing to close: the session belongs to ``Http``."""

    def _send(self, method: str, url: str, *, params: Any, data: Any, headers: Any) -> _MsalResponse:
        route = _authority_route(url)
        self._local.call = (method, route, None)
        response = self.http.request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            route=route,
            idempotent=True,  # a token request has no side effect; repeating it is safe
            expect_json=True,  # every 2xx the authority sends is JSON: a cut one is retried
            accept_statuses=_CLIENT_ERRORS,
        )
        self._local.call = (method, route, response.status)
        self._local.error = (
            response.body if response.status >= 400 and isinstance(response.body, dict) else None
        )
        return _MsalResponse(response, self.http.service, method, route)


def _authority_route(url: str) -> str:
    """``/{tenant}/oauth2/v2.0/token``: the tenant segment is never counted or logged."""
    parts = urlsplit(url).path.split("/")
    if len(parts) > 1 and parts[1] and parts[1] != "common":
        parts[1] = "{tenant}"
    return "/".join(parts) or "/"


@dataclass(slots=True)
class _CachedApp:
    app: Any
    transport: _MsalHttp
    lock: threading.Lock


_apps: dict[tuple[str, str, str], _CachedApp] = {}
_apps_lock = threading.Lock()


def reset_app_cache() -> None:
    """Forget every cached MSAL application (tests; or after a credential rotation)."""
    with _apps_lock:
        _apps.clear()


class GraphAuth:
    """Bearer tokens for Microsoft Graph, app-only, for one tenant and application.

    Args:
        tenant_id: the directory (tenant) GUID or a verified domain; never ``common``.
        client_id: the application (client) id.
        credential: a client secret or a certificate.
        cloud: ``global``, ``usgov``, ``usgov-dod`` or ``china``.
        authority_host: overrides the cloud's login host; a bare host or an ``https://`` URL
            (the sandbox: ``https://127.0.0.1:PORT``). MSAL's instance discovery against
            Microsoft's real endpoint is then turned off.
        graph_url: overrides the cloud's Graph root.
        http: the HTTP layer; MSAL's calls are counted under service ``authority``.
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        credential: ClientSecret | ClientCertificate,
        cloud: str = "global",
        authority_host: str | None = None,
        graph_url: str | None = None,
        http: Http,
    ) -> None:
        if cloud not in CLOUDS:
            raise CredentialError(
                f"entra.cloud: unknown cloud {cloud!r}; expected one of {', '.join(CLOUDS)}"
            )
        if not tenant_id or tenant_id.lower() in {"common", "organizations", "consumers"}:
            raise CredentialError(
                "entra.tenant_id: a tenant GUID or verified domain is required (not common)"
            )
        defaults = CLOUDS[cloud]
        host = (authority_host or defaults.authority_host).rstrip("/")
        self.authority_base = host if host.startswith("https://") else f"https://{host}"
        self.authority = f"{self.authority_base}/{tenant_id}"
        self.graph_url = (graph_url or defaults.graph_url).rstrip("/")
        self.scope = f"{self.graph_url}/.default"
        self._override = authority_host is not None
        self._client_id = client_id
        self._credential = credential
        self._http = http if http.service == "authority" else _sibling(http)
        self._cached: _CachedApp | None = None
        if os.environ.get("MSAL_FORCE_REGION"):
            _log.warning(
                "msal_region_forced", detail="MSAL_FORCE_REGION is set; tokens come from a regional host"
            )

    def __repr__(self) -> str:
        host = urlsplit(self.authority_base).netloc
        return f"GraphAuth(authority_host={host!r}, graph_url={self.graph_url!r})"

    # -- tokens ---------------------------------------------------------------------------------

    def token(self) -> str:
        """A valid access token for Graph (from MSAL's cache when it has one)."""
        cached = self._app()
        with cached.lock:  # one token request at a time, even with many reader threads
            try:
                result = cached.app.acquire_token_for_client(scopes=[self.scope])
            except ValueError as exc:  # json.JSONDecodeError: an answer (e.g. a proxy's page) not JSON
                method, route, status = cached.transport.last_call
                raise TransportError(
                    service=self._http.service,
                    method=method,
                    route=route,
                    status=status,
                    detail=f"the authority's answer could not be read ({type(exc).__name__})",
                ) from None
        if isinstance(result, dict) and isinstance(result.get("access_token"), str):
            if result.get("token_source") == "identity_provider":
                _log.info("token_acquired", service="authority", expires_in=result.get("expires_in"))
            return str(result["access_token"])
        error = credential_error(result if isinstance(result, dict) else {})
        _log.warning("token_refused", aadsts=error.aadsts, correlation_id=error.correlation_id)
        raise error

    def headers(self) -> dict[str, str]:
        """Request headers carrying a fresh bearer token."""
        return {"Authorization": f"Bearer {self.token()}"}

    def invalidate(self) -> None:
        """Drop the cached token (after Graph said 401), so the next call fetches a new one."""
        cached = self._app()
        with cached.lock:
            try:
                cached.app.remove_tokens_for_client()
            except Exception:  # the alias lookup it makes on public clouds may fail
                # This app object's cache holds only our app-only tokens: drop them directly.
                cache = cached.app.token_cache
                for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                    cache.remove_at(entry)
        _log.info("token_dropped", reason="graph_401")

    # -- the MSAL application --------------------------------------------------------------------

    def _app(self) -> _CachedApp:
        if self._cached is not None:
            return self._cached
        key = (self.authority, self._client_id, self._fingerprint())
        with _apps_lock:
            cached = _apps.get(key)
            if cached is None:
                cached = self._build()
                _apps[key] = cached
            else:
                cached.transport.http = self._http  # the latest run's Http carries the counting
        self._cached = cached
        return cached

    def _fingerprint(self) -> str:
        digest = hashlib.sha256()
        if isinstance(self._credential, ClientSecret):
            digest.update(b"secret\0" + self._credential.reveal().encode("utf-8"))
        else:
            digest.update(b"cert\0" + self._credential.path.encode("utf-8") + b"\0")
            digest.update((self._credential.reveal_password() or "").encode("utf-8"))
            with contextlib.suppress(OSError):  # reported precisely when the app is built
                digest.update(Path(self._credential.path).read_bytes())
        return digest.hexdigest()

    def _build(self) -> _CachedApp:
        transport = _MsalHttp(self._http)
        credential = self._msal_credential()
        try:
            app = msal.ConfidentialClientApplication(
                self._client_id,
                client_credential=credential,
                authority=self.authority,
                http_client=transport,
                instance_discovery=False if self._override else None,
                app_name="importer",
            )
        except ValueError as exc:
            body = transport.last_error
            if body is not None:
                raise credential_error(body) from None
            # Not chained: MSAL's message quotes the discovery URL (the tenant) and the answer.
            raise GraphCredentialError(
                f"the authority's configuration could not be read ({type(exc).__name__})",
                fix="check entra.tenant_id, entra.cloud and entra.authority_host",
            ) from None
        return _CachedApp(app=app, transport=transport, lock=threading.Lock())

    def _msal_credential(self) -> str | dict[str, Any]:
        credential = self._credential
        if isinstance(credential, ClientSecret):
            secret = credential.reveal()
            if not secret:
                raise CredentialError("entra.client_secret is empty")
            register_secret(secret)
            return secret
        password = credential.reveal_password()
        if password:
            register_secret(password)
        return load_certificate(credential.path, password, pfx=credential.is_pfx)


def _sibling(http: Http) -> Http:
    """An ``Http`` for the authority sharing the run's settings, stats, budget, clock and session
    (with the session's proxy and CA handling)."""
    return http.for_service("authority")
