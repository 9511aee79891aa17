"""App-only tokens: MSAL through our HTTP layer, clouds, credentials, and what each AADSTS code means."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import responses
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from structlog.testing import capture_logs

from importer.errors import ApiThrottledError, CredentialError, RetriableError, TransportError
from importer.graph import ClientCertificate, ClientSecret, GraphAuth, GraphCredentialError
from importer.graph.auth import CLOUDS
from importer.graph.credentials import load_certificate
from importer.http import Http

from .conftest import CLIENT, GRAPH, LOGIN, SECRET, TENANT, FakeAuthority, FakeClock, Reply, sample


def _aadsts(code: int, error: str = "invalid_client") -> dict[str, Any]:
    """An authority error body in the real AADSTS shape (see the 70011 sample)."""
    return {
        "error": error,
        "error_description": f"AADSTS{code}: something went wrong.\r\nTrace ID: t\r\nCorrelation ID: c",
        "error_codes": [code],
        "timestamp": "2026-11-29 12:00:00Z",
        "trace_id": "8a08a7db-d914-4012-8159-067fdc6e4900",
        "correlation_id": f"corr-{code}",
    }


def test_token_comes_from_msal_through_our_http_and_is_cached(
    auth: GraphAuth, authority: FakeAuthority
) -> None:
    """The first call asks the authority, the next ones hit MSAL's cache; all counted as 'authority'."""
    assert auth.token() == "token-1"
    assert auth.headers() == {"Authorization": "Bearer token-1"}
    assert len(authority.token_posts) == 1
    post = authority.token_posts[0]
    assert post["grant_type"] == ["client_credentials"]
    assert post["scope"] == [f"{GRAPH}/.default"]
    assert post["client_id"] == [CLIENT]
    routes = {key[2] for key in auth._http.stats.counts if key[0] == "authority"}
    assert routes == {"/{tenant}/v2.0/.well-known/openid-configuration", "/{tenant}/oauth2/v2.0/token"}


def test_one_msal_app_per_tenant_and_credential(http: Http, authority: FakeAuthority) -> None:
    """Two GraphAuth objects for the same app share MSAL's app object, so its token cache is reused."""
    first = GraphAuth(tenant_id=TENANT, client_id=CLIENT, credential=ClientSecret(SECRET), http=http)
    second = GraphAuth(tenant_id=TENANT, client_id=CLIENT, credential=ClientSecret(SECRET), http=http)
    assert first.token() == second.token()
    assert authority.discovery_gets == 1
    assert len(authority.token_posts) == 1
    rotated = GraphAuth(tenant_id=TENANT, client_id=CLIENT, credential=ClientSecret(SECRET + "2"), http=http)
    rotated.token()
    assert len(authority.token_posts) == 2  # a rotated secret is another app


def test_invalidate_drops_the_cached_token(auth: GraphAuth, authority: FakeAuthority) -> None:
    """After Graph's 401 the token is dropped and the next call fetches a new one."""
    assert auth.token() == "token-1"
    auth.invalidate()
    assert auth.token() == "token-2"


def test_invalidate_works_when_the_alias_lookup_fails(auth: GraphAuth, authority: FakeAuthority) -> None:
    """remove_tokens_for_client asks the public cloud for aliases; if that fails, the token still goes."""
    assert auth.token() == "token-1"
    authority.instance_status = 404
    auth.invalidate()
    assert auth.token() == "token-2"


@pytest.mark.parametrize(
    ("cloud", "login", "graph"),
    [
        pytest.param("global", "login.microsoftonline.com", "https://graph.microsoft.com", id="global"),
        pytest.param("usgov", "login.microsoftonline.us", "https://graph.microsoft.us", id="usgov"),
        pytest.param(
            "usgov-dod", "login.microsoftonline.us", "https://dod-graph.microsoft.us", id="usgov-dod"
        ),
        pytest.param(
            "china", "login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn", id="china"
        ),
    ],
)
def test_cloud_table(http: Http, cloud: str, login: str, graph: str) -> None:
    """Each national cloud has its own login host, Graph root and scope."""
    auth = GraphAuth(
        tenant_id=TENANT, client_id=CLIENT, credential=ClientSecret(SECRET), cloud=cloud, http=http
    )
    assert CLOUDS[cloud].authority_host == login
    assert auth.authority == f"https://{login}/{TENANT}"
    assert auth.graph_url == graph
    assert auth.scope == f"{graph}/.default"


def test_override_host_turns_instance_discovery_off(rsps: responses.RequestsMock, http: Http) -> None:
    """With an overridden authority (the sandbox) MSAL never calls Microsoft's discovery endpoint,
    not even after a token error."""
    host = "https://127.0.0.1:8443"
    authority = FakeAuthority(rsps, host=host)
    authority.refuse(_aadsts(7000215))
    auth = GraphAuth(
        tenant_id=TENANT,
        client_id=CLIENT,
        credential=ClientSecret(SECRET),
        authority_host="127.0.0.1:8443",
        graph_url="https://127.0.0.1:8443/graph/",
        http=http,
    )
    assert auth.graph_url == "https://127.0.0.1:8443/graph"
    with pytest.raises(GraphCredentialError, match="AADSTS7000215"):
        auth.token()
    assert not [c for c in rsps.calls if "/common/discovery/instance" in c.request.url]
    with pytest.raises(GraphCredentialError, match="AADSTS7000215"):
        auth.token()  # MSAL keeps an HTTP 400 token answer for 60 s: no second POST
    assert len(authority.token_posts) == 1


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param(7000222, "client secret has expired", id="expired-secret"),
        pytest.param(
            7000215, "Value (shown once when it is created), not the secret ID", id="invalid-secret"
        ),
        pytest.param(700016, "was not found in the tenant", id="app-not-found"),
        pytest.param(90002, "tenant (entra.tenant_id) was not found", id="tenant-not-found"),
        pytest.param(70011, "scope is not valid", id="invalid-scope"),
        pytest.param(9999999, "token request was refused (invalid_client)", id="generic"),
    ],
)
def test_each_aadsts_code_has_a_precise_message(
    auth: GraphAuth, authority: FakeAuthority, code: int, expected: str
) -> None:
    """Token errors become CredentialError (exit 4) with a message per AADSTS code, never the secret."""
    authority.refuse(_aadsts(code))
    with capture_logs() as logs, pytest.raises(GraphCredentialError) as caught:
        auth.token()
    error = caught.value
    assert isinstance(error, CredentialError)
    assert error.exit_code == 4
    assert expected in str(error)
    assert f"AADSTS{code}" in str(error)
    assert f"corr-{code}" in str(error)
    assert error.aadsts == code
    assert error.fix
    assert SECRET not in str(error) + repr(error) + repr(auth) + json.dumps(logs, default=str)


def test_invalid_scope_sample_body(auth: GraphAuth, authority: FakeAuthority) -> None:
    """The verbatim AADSTS70011 body from the reference samples."""
    authority.refuse(sample("fake-authority/token-error-invalid-scope-aadsts70011.json"))
    with pytest.raises(GraphCredentialError, match="scope is not valid") as caught:
        auth.token()
    assert caught.value.correlation_id == "78adae38-0ef1-4147-b30e-00e5e93bdac0"


def test_unknown_tenant_at_discovery(auth: GraphAuth, authority: FakeAuthority) -> None:
    """A tenant that does not exist fails at OIDC discovery (400 AADSTS90002): a CredentialError."""
    body = _aadsts(90002, "invalid_tenant")
    authority.oidc = Reply(status=400, body=body)
    with pytest.raises(GraphCredentialError, match="tenant") as caught:
        auth.token()
    assert caught.value.aadsts == 90002


def test_multi_tenant_aliases_and_unknown_clouds_are_refused(http: Http) -> None:
    """acquire_token_for_client on /common is unreliable; an unknown cloud is a typo."""
    with pytest.raises(CredentialError, match="tenant"):
        GraphAuth(tenant_id="common", client_id=CLIENT, credential=ClientSecret(SECRET), http=http)
    with pytest.raises(CredentialError, match="cloud"):
        GraphAuth(
            tenant_id=TENANT, client_id=CLIENT, credential=ClientSecret(SECRET), cloud="mars", http=http
        )


class VaultSecret:
    """What importer.vault.Secret looks like: the value only on reveal()."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "***"


def test_vault_secret_objects_are_accepted(http: Http, authority: FakeAuthority) -> None:
    """A vault Secret is revealed only when MSAL needs it; ClientSecret's repr hides it."""
    credential = ClientSecret(VaultSecret(SECRET))
    assert SECRET not in repr(credential)
    auth = GraphAuth(tenant_id=TENANT, client_id=CLIENT, credential=credential, http=http)
    assert auth.token() == "token-1"
    assert authority.token_posts[0]["client_secret"] == [SECRET]


def _certificate(
    tmp_path: Path, *, password: str | None
) -> tuple[Path, Path, rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "importer-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    pem = tmp_path / "app.pem"
    pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    pfx = tmp_path / "app.pfx"
    pfx.write_bytes(pkcs12.serialize_key_and_certificates(b"importer", key, cert, None, encryption))
    return pem, pfx, key, cert


def _jwt_header(assertion: str) -> dict[str, Any]:
    head = assertion.split(".", maxsplit=1)[0]
    return dict(json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))))


@pytest.mark.parametrize("kind", [pytest.param("pem", id="pem"), pytest.param("pfx", id="pfx")])
def test_certificate_credentials_sign_a_client_assertion(
    tmp_path: Path, http: Http, authority: FakeAuthority, kind: str
) -> None:
    """PEM (key + certificate) and PFX (with password) both log in with a PS256 assertion and x5t#S256."""
    password = "pfx-Pa55-canary" if kind == "pfx" else None
    pem, pfx, _, cert = _certificate(tmp_path, password=password)
    credential = ClientCertificate(pfx if kind == "pfx" else pem, password=password)
    auth = GraphAuth(tenant_id=TENANT, client_id=CLIENT, credential=credential, http=http)
    assert auth.token() == "token-1"
    post = authority.token_posts[0]
    assert post["client_assertion_type"] == ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]
    assert "client_secret" not in post
    header = _jwt_header(post["client_assertion"][0])
    thumb = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256())).decode().rstrip("=")
    assert header["alg"] == "PS256"
    assert header["x5t#S256"].rstrip("=") == thumb  # msal 1.39 keeps the base64 padding
    assert "x5c" in header


def test_msal_credential_shapes(tmp_path: Path) -> None:
    """PEM -> private_key + public_certificate (MSAL computes SHA-256); PFX -> path, passphrase, True."""
    pem, pfx, _, _ = _certificate(tmp_path, password="pw-123")
    from_pem = load_certificate(str(pem), "pw-123", pfx=False)
    assert set(from_pem) == {"private_key", "public_certificate", "passphrase"}
    assert from_pem["public_certificate"].startswith("-----BEGIN CERTIFICATE-----")
    from_pfx = load_certificate(str(pfx), "pw-123", pfx=True)
    assert from_pfx == {"private_key_pfx_path": str(pfx), "passphrase": "pw-123", "public_certificate": True}


@pytest.mark.parametrize(
    ("kind", "password", "match"),
    [
        pytest.param("pfx", "wrong-canary-pw", "wrong password", id="pfx-wrong-password"),
        pytest.param("pem", None, "wrong or missing password", id="pem-missing-password"),
        pytest.param("missing", None, "cannot be read", id="missing-file"),
    ],
)
def test_unusable_certificates_are_credential_errors(
    tmp_path: Path, http: Http, authority: FakeAuthority, kind: str, password: str | None, match: str
) -> None:
    """A certificate that does not open is a CredentialError naming the config keys, not the password."""
    pem, pfx, _, _ = _certificate(tmp_path, password="right-pw")
    path = {"pfx": pfx, "pem": pem, "missing": tmp_path / "nope.pem"}[kind]
    auth = GraphAuth(
        tenant_id=TENANT, client_id=CLIENT, credential=ClientCertificate(path, password), http=http
    )
    with pytest.raises(GraphCredentialError, match=match) as caught:
        auth.token()
    assert "entra.certificate" in str(caught.value)
    assert "wrong-canary-pw" not in str(caught.value)
    assert not authority.token_posts


def test_authority_shares_the_run_http_settings(clock: FakeClock, authority: FakeAuthority) -> None:
    """Given the Graph Http, the authority calls reuse its stats, budget and clock under 'authority'."""
    graph_http = Http("graph", clock=clock)
    auth = GraphAuth(tenant_id=TENANT, client_id=CLIENT, credential=ClientSecret(SECRET), http=graph_http)
    auth.token()
    assert graph_http.stats.by_service() == {"authority": 2}
    assert LOGIN in auth.authority


def test_the_authority_honours_the_environments_ca_bundle_and_proxy(
    clock: FakeClock, authority: FakeAuthority, rsps: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sharing the Graph session, the token calls still use REQUESTS_CA_BUNDLE and HTTPS_PROXY."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/corp/ca.pem")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.test:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    auth = GraphAuth(
        tenant_id=TENANT, client_id=CLIENT, credential=ClientSecret(SECRET), http=Http("graph", clock=clock)
    )
    auth.token()
    token_calls = [c for c in rsps.calls if c.request.url.endswith("/oauth2/v2.0/token")]
    assert token_calls
    for call in token_calls:
        kwargs = call.request.req_kwargs  # type: ignore[attr-defined]
        assert kwargs["verify"] == "/etc/corp/ca.pem"
        assert kwargs["proxies"].get("https") == "http://proxy.corp.test:3128"


_THROTTLE_BODY = {
    "error": "temporarily_unavailable",
    "error_description": "AADSTS50196: loop",
    "error_codes": [50196],
}


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Reply(status=429, body=_THROTTLE_BODY, headers={"Retry-After": "2"}), id="429-json"),
        pytest.param(
            Reply(status=429, raw="<html>Too Many Requests</html>", headers={"Retry-After": "2"}),
            id="429-html",
        ),
        pytest.param(Reply(status=408, raw="", headers={"Retry-After": "2"}), id="408"),
    ],
)
def test_a_throttled_token_request_is_retried_after_its_retry_after(
    auth: GraphAuth, authority: FakeAuthority, clock: FakeClock, reply: Reply
) -> None:
    """A 429/408 from the token endpoint says nothing about the credential: wait, ask again."""
    authority.answer(reply)
    assert auth.token() == "token-2"
    assert len(authority.token_posts) == 2
    assert len(clock.sleeps) == 1
    assert clock.sleeps[0] >= 2.0


def test_a_token_endpoint_that_keeps_throttling_is_a_retriable_error_not_a_config_error(
    auth: GraphAuth, authority: FakeAuthority
) -> None:
    """Exit 1 (try later), never exit 4 ('fix your config')."""
    for _ in range(10):
        authority.answer(Reply(status=429, body=_THROTTLE_BODY, headers={"Retry-After": "1"}))
    with pytest.raises(ApiThrottledError) as caught:
        auth.token()
    assert not isinstance(caught.value, CredentialError)
    assert isinstance(caught.value, RetriableError)
    assert caught.value.exit_code == 1
    assert caught.value.service == "authority"
    assert len(authority.token_posts) == 4  # 1 + http.max_retries (3)


@pytest.mark.parametrize(
    ("status", "match"),
    [
        pytest.param(400, "could not be read", id="400-html"),
        pytest.param(200, "non-JSON", id="200-html"),
    ],
)
def test_an_unreadable_token_answer_is_a_transport_error_and_its_body_is_never_logged(
    auth: GraphAuth, authority: FakeAuthority, caplog: pytest.LogCaptureFixture, status: int, match: str
) -> None:
    """A proxy's HTML page instead of a token answer: a retriable TransportError; the page (which may
    name people or hold tokens) is in neither the error nor any log line, MSAL's included."""
    page = "<html>Blocked by proxy for jane.doe@contoso.com PAGE-CANARY</html>"
    for _ in range(4):
        authority.answer(Reply(status=status, raw=page))
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs, pytest.raises(TransportError, match=match) as caught:
        auth.token()
    error = caught.value
    assert isinstance(error, RetriableError)
    assert error.service == "authority"
    assert error.route == "/{tenant}/oauth2/v2.0/token"
    assert "PAGE-CANARY" not in str(error) + repr(error)
    assert "PAGE-CANARY" not in caplog.text
    assert "PAGE-CANARY" not in json.dumps(logs, default=str)
    assert error.__cause__ is None


def test_an_unreadable_discovery_answer_names_neither_the_tenant_nor_the_page(
    auth: GraphAuth, authority: FakeAuthority
) -> None:
    """A 404 web page at OIDC discovery (a wrong authority_host) is a config error; MSAL's
    message, which quotes the discovery URL and the page, is not chained to it."""
    authority.oidc = Reply(status=404, raw="<html>Not here PAGE-CANARY</html>")
    with pytest.raises(GraphCredentialError, match="configuration could not be read") as caught:
        auth.token()
    error = caught.value
    assert error.__cause__ is None
    assert error.__suppress_context__
    assert "PAGE-CANARY" not in str(error)
    assert TENANT not in str(error)
