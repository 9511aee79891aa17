"""The simulated Microsoft Entra authority: what MSAL's ``ConfidentialClientApplication`` calls.

Routes (``{tenant}`` is the tenant id or its ``*.onmicrosoft.com`` domain):

- ``GET /{tenant}/v2.0/.well-known/openid-configuration``: endpoints pointing at this server;
  an unknown tenant gets 400 ``invalid_tenant`` (AADSTS90002), which MSAL turns into ValueError.
- ``POST /{tenant}/oauth2/v2.0/token``: client credentials with ``client_secret`` or with a
  ``client_assertion`` signed by the registered certificate (PS256 or RS256). Errors carry the
  real AADSTS body shape (``error``, ``error_description`` with trace/correlation/timestamp
  lines, ``error_codes``, ``timestamp``, ``trace_id``, ``correlation_id``, ``error_uri``).
- ``GET /common/discovery/instance``: instance metadata (MSAL asks after a token error unless
  ``instance_discovery=False``).
- ``GET /{tenant}/discovery/v2.0/keys``: an empty key set (the sandbox's tokens are opaque).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from importer.sandbox.base import SandboxRequest, SandboxResponse
from importer.sandbox.tenant import ALL_PERMISSIONS, SimClock, TenantIdentity, TenantSettings
from importer.sandbox.tls import ClientCertificate
from importer.sandbox.tokens import AccessTokenCodec, b64url, b64url_decode

__all__ = ["JWT_BEARER", "AuthorityService"]

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_OPENID = re.compile(r"^/([^/]+)/v2\.0/\.well-known/openid-configuration$")
_TOKEN = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")
_KEYS = re.compile(r"^/([^/]+)/discovery/v2\.0/keys$")
_NO_CACHE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
_UNKNOWN_APP = (
    "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen "
    "if the application has not been installed by the administrator of the tenant or consented to by any "
    "user in the tenant. You may have sent your authentication request to the wrong tenant."
)
_BAD_SCOPE = (
    "The provided request must include a 'scope' input parameter. The provided value for the input parameter "
    "'scope' is not valid. The scope {scope} is not valid."
)
_BAD_SECRET = (
    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "
    "not the client secret ID, for a secret added to app '{client_id}'."
)
_EXPIRED_SECRET = (
    "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new "
    "keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added "
    "security: https://aka.ms/certCreds."
)
_UNKNOWN_CERT = (
    "The certificate with identifier used to sign the client assertion is not registered on application. "
    "[Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}']"
)
_NO_TENANT = (
    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the "
    "correct cloud. Check with your subscription administrator, this may happen if there are no active "
    "subscriptions for the tenant."
)


class _TokenError(Exception):
    def __init__(self, status: int, error: str, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.code, self.message = status, error, code, message


class AuthorityService:
    """OpenID discovery, instance discovery and the client-credentials token endpoint."""

    name = "authority"

    def __init__(
        self,
        *,
        identity: TenantIdentity,
        settings: TenantSettings,
        clock: SimClock,
        client_certificate: ClientCertificate,
        access_tokens: AccessTokenCodec,
    ) -> None:
        self._identity = identity
        self._settings = settings
        self._clock = clock
        self._cert = client_certificate
        self._tokens = access_tokens
        self._thumbprints = {
            b64url(bytes.fromhex(client_certificate.thumbprint_sha256)),
            b64url(bytes.fromhex(client_certificate.thumbprint_sha1)),
        }

    def handle(self, request: SandboxRequest) -> SandboxResponse | None:
        """Answer the authority's routes; None for any other path."""
        path = request.path
        if path == "/common/discovery/instance" and request.method == "GET":
            return self._instance_discovery(request)
        if (match := _OPENID.match(path)) and request.method == "GET":
            return self._openid_configuration(request, match.group(1))
        if (match := _TOKEN.match(path)) and request.method == "POST":
            return self._token(request, match.group(1))
        if (match := _KEYS.match(path)) and request.method == "GET":
            return SandboxResponse(status=200, body={"keys": []}, route="/{id}/discovery/v2.0/keys")
        return None

    def _known(self, tenant: str) -> bool:
        return tenant.lower() in (self._identity.tenant_id, self._identity.tenant_domain)

    def _instance_discovery(self, request: SandboxRequest) -> SandboxResponse:
        host = urlsplit(request.base_url).netloc
        endpoint = request.arg("authorization_endpoint") or ""
        tenant = (urlsplit(endpoint).path.strip("/").split("/") or ["common"])[0] or "common"
        body = {
            "tenant_discovery_endpoint": f"{request.base_url}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        }
        return SandboxResponse(status=200, body=body, route="/common/discovery/instance")

    def _openid_configuration(self, request: SandboxRequest, tenant: str) -> SandboxResponse:
        route = "/{id}/v2.0/.well-known/openid-configuration"
        if not self._known(tenant):
            return self._error(request, route, _tenant_not_found(tenant), error="invalid_tenant")
        base, tid = request.base_url, self._identity.tenant_id
        body = {
            "token_endpoint": f"{base}/{tid}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/{tid}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{tid}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base}/oidc/userinfo",
            "authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/{tid}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "tid", "ver", "oid"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": urlsplit(base).netloc,
            "rbac_url": "https://pas.windows.net",
        }
        return SandboxResponse(status=200, body=body, route=route)

    def _token(self, request: SandboxRequest, tenant: str) -> SandboxResponse:
        route = "/{id}/oauth2/v2.0/token"
        try:
            form = {
                k: v[0] for k, v in parse_qs(request.body.decode("utf-8"), keep_blank_values=True).items()
            }
            claims = self._check(request, tenant, form)
        except _TokenError as exc:
            return self._error(request, route, exc)
        except UnicodeDecodeError:
            return self._error(request, route, _missing("grant_type"))
        lifetime = self._settings.token_lifetime
        body = {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self._tokens.issue(claims),
        }
        return SandboxResponse(status=200, body=body, route=route, headers=dict(_NO_CACHE))

    def _check(self, request: SandboxRequest, tenant: str, form: dict[str, str]) -> dict[str, Any]:
        identity = self._identity
        if not self._known(tenant):
            raise _tenant_not_found(tenant, error="invalid_request")
        grant = form.get("grant_type")
        if not grant:
            raise _missing("grant_type")
        if grant != "client_credentials":
            raise _TokenError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
            )
        client_id = form.get("client_id")
        if not client_id:
            raise _missing("client_id")
        if client_id.lower() != identity.client_id:
            raise _TokenError(
                400,
                "unauthorized_client",
                700016,
                _UNKNOWN_APP.format(client_id=client_id, tenant=identity.tenant_id),
            )
        scope = form.get("scope")
        if not scope:
            raise _missing("scope")
        expected = f"{request.base_url}/.default"
        if scope.split() != [expected]:
            raise _TokenError(
                400,
                "invalid_scope",
                70011,
                _BAD_SCOPE.format(scope=scope),
            )
        if "client_assertion" in form:
            audiences = {f"{request.base_url}/{t}/oauth2/v2.0/token" for t in (identity.tenant_id, tenant)}
            self._check_assertion(form, audiences)
        elif "client_secret" in form:
            if form["client_secret"] != identity.client_secret:
                raise _TokenError(
                    401,
                    "invalid_client",
                    7000215,
                    _BAD_SECRET.format(client_id=identity.client_id),
                )
            if self._settings.secret_expired:
                raise _TokenError(
                    401,
                    "invalid_client",
                    7000222,
                    _EXPIRED_SECRET.format(client_id=identity.client_id),
                )
        else:
            raise _TokenError(
                401,
                "invalid_client",
                7000218,
                _missing("client_assertion' or 'client_secret").message,
            )
        now = int(self._clock.now())
        return {
            "aud": request.base_url,
            "iss": f"https://sts.windows.net/{identity.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + self._settings.token_lifetime,
            "appid": identity.client_id,
            "app_displayname": identity.app_display_name,
            "idtyp": "app",
            "oid": identity.client_id,
            "sub": identity.client_id,
            "tid": identity.tenant_id,
            "roles": sorted(self._settings.permissions & set(ALL_PERMISSIONS)),
            "ver": "1.0",
        }

    def _check_assertion(self, form: dict[str, str], audiences: set[str]) -> None:
        if form.get("client_assertion_type") != JWT_BEARER:
            raise _TokenError(
                400,
                "invalid_request",
                50027,
                "JWT token is invalid or malformed. client_assertion_type must be " + JWT_BEARER + ".",
            )
        parts = form["client_assertion"].split(".")
        try:
            if len(parts) != 3:
                raise ValueError("not three parts")
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            signature = b64url_decode(parts[2])
        except ValueError as exc:
            raise _TokenError(400, "invalid_request", 50027, "JWT token is invalid or malformed.") from exc
        thumbprint = str(header.get("x5t#S256") or header.get("x5t") or "").rstrip("=")
        if thumbprint not in self._thumbprints:
            raise _TokenError(
                401,
                "invalid_client",
                700027,
                _UNKNOWN_CERT.format(thumbprint=thumbprint),
            )
        signed = f"{parts[0]}.{parts[1]}".encode("ascii", "replace")
        alg = header.get("alg")
        pad: padding.AsymmetricPadding
        if alg == "PS256":
            pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
        elif alg == "RS256":
            pad = padding.PKCS1v15()
        else:
            raise _TokenError(
                401, "invalid_client", 700027, f"Client assertion algorithm '{alg}' is not supported."
            )
        try:
            self._cert.public_key.verify(signature, signed, pad, hashes.SHA256())
        except InvalidSignature as exc:
            raise _TokenError(
                401, "invalid_client", 700027, "Client assertion failed signature validation."
            ) from exc
        client_id = self._identity.client_id
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            raise _TokenError(
                401,
                "invalid_client",
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter.",
            )
        if claims.get("aud") not in audiences:
            raise _TokenError(
                401,
                "invalid_client",
                700212,
                f"Client assertion audience claim does not match: '{claims.get('aud')}'.",
            )
        now = time.time()  # assertions are signed with the client's real clock, not the simulated one
        exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat", 0))
        if (
            not isinstance(exp, int | float)
            or exp < now - 300
            or (isinstance(nbf, int | float) and nbf > now + 300)
        ):
            raise _TokenError(
                401,
                "invalid_client",
                700024,
                f"Client assertion is not within its valid time range. Current time: {_aad_time(now)}, "
                f"expiry time of assertion {_aad_time(exp) if isinstance(exp, int | float) else 'missing'}.",
            )

    def _error(
        self, request: SandboxRequest, route: str, exc: _TokenError, *, error: str | None = None
    ) -> SandboxResponse:
        trace_id = str(uuid.uuid4())
        correlation_id = request.headers.get("client-request-id") or str(uuid.uuid4())
        stamp = _aad_time(self._clock.now())
        description = (
            f"AADSTS{exc.code}: {exc.message}\r\nTrace ID: {trace_id}\r\n"
            f"Correlation ID: {correlation_id}\r\nTimestamp: {stamp}"
        )
        body = {
            "error": error or exc.error,
            "error_description": description,
            "error_codes": [exc.code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"{request.base_url}/error?code={exc.code}",
        }
        headers = dict(_NO_CACHE, **{"x-ms-request-id": trace_id, "client-request-id": correlation_id})
        return SandboxResponse(status=exc.status, body=body, route=route, headers=headers)


def _aad_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(epoch))


def _missing(parameter: str) -> _TokenError:
    return _TokenError(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{parameter}'.",
    )


def _tenant_not_found(tenant: str, *, error: str = "invalid_tenant") -> _TokenError:
    return _TokenError(
        400,
        error,
        90002,
        _NO_TENANT.format(tenant=tenant),
    )
