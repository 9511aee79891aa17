"""The simulated Entra authority, driven by the real msal 1.39 and by raw requests."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from importer.sandbox.app import Sandbox
from importer.sandbox.testing import certificate_credential, msal_app

SAMPLES = Path("/work/shared/reference/samples/graph/fake-authority")
ERROR_KEYS = {
    "error",
    "error_description",
    "error_codes",
    "timestamp",
    "trace_id",
    "correlation_id",
    "error_uri",
}


def token_post(
    sb: Sandbox, http: requests.Session, tenant: str | None = None, **form: str
) -> requests.Response:
    info = sb.info()
    data = {
        "grant_type": "client_credentials",
        "client_id": info["client_id"],
        "client_secret": info["client_secret"],
        "scope": info["graph_scope"],
        **form,
    }
    return http.post(f"{sb.base_url}/{tenant or info['tenant_id']}/oauth2/v2.0/token", data=data, timeout=10)


def assert_aadsts(body: dict[str, Any], *, error: str, code: int) -> None:
    assert body.keys() >= ERROR_KEYS
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert "\r\nTrace ID: " in body["error_description"]
    assert "\r\nCorrelation ID: " in body["error_description"]
    assert body["error_uri"].endswith(f"/error?code={code}")


def test_msal_gets_a_token_with_the_client_secret_then_from_its_cache(
    sb: Sandbox, http: requests.Session
) -> None:
    app = msal_app(sb)
    first = app.acquire_token_for_client([sb.graph_scope])
    assert first["token_source"] == "identity_provider"
    assert first["token_type"] == "Bearer"
    assert first["expires_in"] == 3599
    assert app.acquire_token_for_client([sb.graph_scope])["token_source"] == "cache"
    users = http.get(
        f"{sb.base_url}/v1.0/users", headers={"Authorization": f"Bearer {first['access_token']}"}
    )
    assert users.status_code == 200


def test_msal_gets_a_token_with_the_registered_certificate_ps256(sb: Sandbox, http: requests.Session) -> None:
    result = msal_app(sb, credential=certificate_credential(sb)).acquire_token_for_client([sb.graph_scope])
    assert "access_token" in result, result
    users = http.get(
        f"{sb.base_url}/v1.0/users", headers={"Authorization": f"Bearer {result['access_token']}"}
    )
    assert users.status_code == 200


def test_msal_gets_a_token_with_the_certificate_by_sha1_thumbprint_rs256(sb: Sandbox) -> None:
    assert sb.tls is not None
    credential = {"private_key": sb.tls.client.private_key_pem, "thumbprint": sb.tls.client.thumbprint_sha1}
    result = msal_app(sb, credential=credential).acquire_token_for_client([sb.graph_scope])
    assert "access_token" in result, result


def test_the_client_certificate_file_holds_certificate_and_key(sb: Sandbox) -> None:
    pem = Path(sb.info()["client_certificate"]).read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    key = serialization.load_pem_private_key(pem, password=None)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]


def _other_certificate() -> dict[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stranger")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return {
        "private_key": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        "public_certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
    }


def test_a_certificate_the_app_does_not_know_is_refused_aadsts700027(sb: Sandbox) -> None:
    result = msal_app(sb, credential=_other_certificate()).acquire_token_for_client([sb.graph_scope])
    assert_aadsts(result, error="invalid_client", code=700027)


def test_wrong_secret_is_aadsts7000215_with_the_real_error_shape(sb: Sandbox, http: requests.Session) -> None:
    result = msal_app(sb, credential="not-the-secret").acquire_token_for_client([sb.graph_scope])
    assert_aadsts(result, error="invalid_client", code=7000215)
    raw = token_post(sb, http, client_secret="not-the-secret")
    assert raw.status_code == 401
    assert raw.headers["Cache-Control"] == "no-store, no-cache"


def test_expired_secret_switch_is_aadsts7000222(sb: Sandbox, http: requests.Session) -> None:
    sb.set_tenant(secret_expired=True)
    result = msal_app(sb).acquire_token_for_client([sb.graph_scope])
    assert_aadsts(result, error="invalid_client", code=7000222)
    assert token_post(sb, http).status_code == 401
    sb.set_tenant(secret_expired=False)
    assert token_post(sb, http).status_code == 200


def test_unknown_client_id_is_aadsts700016(sb: Sandbox, http: requests.Session) -> None:
    stranger = str(uuid.uuid4())
    result = msal_app(sb, client_id=stranger).acquire_token_for_client([sb.graph_scope])
    assert_aadsts(result, error="unauthorized_client", code=700016)
    raw = token_post(sb, http, client_id=stranger)
    assert raw.status_code == 400
    assert stranger in raw.json()["error_description"]


def test_unknown_tenant_is_aadsts90002_and_msal_refuses_to_start(sb: Sandbox, http: requests.Session) -> None:
    raw = token_post(sb, http, tenant=str(uuid.uuid4()))
    assert raw.status_code == 400
    assert_aadsts(raw.json(), error="invalid_request", code=90002)
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        msal_app(sb, tenant=str(uuid.uuid4()))


def test_a_scope_other_than_graph_default_is_aadsts70011_in_the_sample_shape(sb: Sandbox) -> None:
    result = msal_app(sb).acquire_token_for_client(["https://graph.microsoft.com/.default"])
    sample = json.loads((SAMPLES / "token-error-invalid-scope-aadsts70011.json").read_text())
    assert sample.keys() <= result.keys()
    assert_aadsts(result, error="invalid_scope", code=70011)


def test_the_client_request_id_comes_back_as_correlation_id(sb: Sandbox, http: requests.Session) -> None:
    info = sb.info()
    response = http.post(
        f"{info['authority']}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": info["client_id"], "client_secret": "x"},
        headers={"client-request-id": "c0ffee00-0000-4000-8000-000000000001"},
    )
    assert response.json()["correlation_id"] == "c0ffee00-0000-4000-8000-000000000001"


@pytest.mark.parametrize(
    ("form", "status", "code"),
    [
        pytest.param({"grant_type": ""}, 400, 900144, id="no-grant-type"),
        pytest.param({"grant_type": "password"}, 400, 70003, id="unsupported-grant"),
        pytest.param({"scope": ""}, 400, 900144, id="no-scope"),
        pytest.param(
            {"client_assertion": "a.b.c", "client_assertion_type": "wrong"},
            400,
            50027,
            id="bad-assertion-type",
        ),
    ],
)
def test_malformed_token_requests_get_aadsts_errors(
    sb: Sandbox, http: requests.Session, form: dict[str, str], status: int, code: int
) -> None:
    response = token_post(sb, http, **form)
    assert response.status_code == status
    assert response.json()["error_codes"] == [code]


def test_token_response_has_the_documented_fields(sb: Sandbox, http: requests.Session) -> None:
    body = token_post(sb, http).json()
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert body["access_token"].count(".") == 2


def test_token_lifetime_is_a_tenant_setting(sb: Sandbox, http: requests.Session) -> None:
    sb.set_tenant(token_lifetime=900)
    assert token_post(sb, http).json()["expires_in"] == 900


def test_openid_configuration_points_at_the_sandbox(sb: Sandbox, http: requests.Session) -> None:
    body = http.get(f"{sb.base_url}/{sb.tenant_id}/v2.0/.well-known/openid-configuration").json()
    sample = json.loads((SAMPLES / "openid-configuration-minimal.json").read_text())
    assert sample.keys() <= body.keys()
    assert body["token_endpoint"] == f"{sb.base_url}/{sb.tenant_id}/oauth2/v2.0/token"
    assert body["issuer"] == f"{sb.base_url}/{sb.tenant_id}/v2.0"
    by_domain = http.get(f"{sb.base_url}/{sb.tenant_domain}/v2.0/.well-known/openid-configuration")
    assert by_domain.json()["token_endpoint"] == body["token_endpoint"]


def test_unknown_tenant_discovery_is_400_invalid_tenant(sb: Sandbox, http: requests.Session) -> None:
    response = http.get(f"{sb.base_url}/{uuid.uuid4()}/v2.0/.well-known/openid-configuration")
    assert response.status_code == 400
    assert_aadsts(response.json(), error="invalid_tenant", code=90002)


def test_instance_discovery_answers_in_the_sample_shape(sb: Sandbox, http: requests.Session) -> None:
    response = http.get(
        f"{sb.base_url}/common/discovery/instance",
        params={
            "api-version": "1.1",
            "authorization_endpoint": f"{sb.base_url}/{sb.tenant_id}/oauth2/v2.0/authorize",
        },
    )
    sample = json.loads((SAMPLES / "instance-discovery.json").read_text())
    body = response.json()
    assert sample.keys() <= body.keys()
    assert (
        body["tenant_discovery_endpoint"]
        == f"{sb.base_url}/{sb.tenant_id}/v2.0/.well-known/openid-configuration"
    )
    assert body["metadata"][0]["aliases"] == [sb.authority_host]


def test_msal_gets_a_token_with_the_pfx_file(sb: Sandbox) -> None:
    info = sb.info()
    credential = {
        "private_key_pfx_path": info["client_certificate_pfx"],
        "passphrase": info["client_certificate_pfx_password"],
        "public_certificate": True,
    }
    result = msal_app(sb, credential=credential).acquire_token_for_client([sb.graph_scope])
    assert "access_token" in result, result
