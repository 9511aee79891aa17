"""Certificates for the sandbox: a throw-away CA, a server certificate and a client certificate.

The CA signs a server certificate for ``127.0.0.1``/``localhost``/``::1`` (SAN with IP and DNS
entries) and a client certificate that the simulated tenant registers for certificate
authentication (an MSAL ``client_assertion`` signed with its RSA key). Everything is generated
fresh at start and written to the state directory: clients need the CA (``ca_bundle``) and
the client certificate with its key, as PEM (``client_certificate``) and as a password-protected
PKCS#12 file (``client_certificate_pfx``, password ``sandbox``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["ClientCertificate", "TlsMaterial", "generate_tls"]

_VALID_FOR = dt.timedelta(days=30)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientCertificate:
    """The certificate registered with the simulated app registration."""

    path: Path  # PEM: certificate followed by its unencrypted PKCS#8 private key
    pfx_path: Path  # the same as PKCS#12, protected by ``pfx_password``
    pfx_password: str
    certificate_pem: str
    private_key_pem: str
    public_key: rsa.RSAPublicKey
    thumbprint_sha1: str  # hex, upper case (how the Entra portal shows it)
    thumbprint_sha256: str  # hex, upper case


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsMaterial:
    """Paths and objects the server and its clients need."""

    directory: Path
    ca_bundle: Path  # PEM of the CA certificate: what clients pass as ``verify``
    server_cert: Path
    server_key: Path
    client: ClientCertificate

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context (TLS 1.2+) holding the server certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.server_cert), str(self.server_key))
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "importer sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        os.chmod(path, 0o600)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def generate_tls(
    directory: Path, *, hosts: tuple[str, ...] = ("127.0.0.1", "::1", "localhost")
) -> TlsMaterial:
    """Generate the CA, server and client certificates and write the files into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("importer sandbox CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_ski = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())

    server_key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    client_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    client_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("importer sandbox client"))
        .issuer_name(ca_name)
        .public_key(client_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    ca_path = directory / "ca.pem"
    server_cert_path = directory / "server.pem"
    server_key_path = directory / "server-key.pem"
    client_path = directory / "client-certificate.pem"
    _write(ca_path, _pem(ca_cert))
    _write(server_cert_path, _pem(server_cert) + _pem(ca_cert))
    _write(server_key_path, _key_pem(server_key), private=True)
    client_cert_pem = _pem(client_cert)
    client_key_pem = _key_pem(client_key)
    _write(client_path, client_cert_pem + client_key_pem, private=True)
    pfx_path = directory / "client-certificate.pfx"
    pfx_password = "sandbox"
    pfx = pkcs12.serialize_key_and_certificates(
        b"importer sandbox client",
        client_key,
        client_cert,
        None,
        serialization.BestAvailableEncryption(pfx_password.encode()),
    )
    _write(pfx_path, pfx, private=True)
    client = ClientCertificate(
        path=client_path,
        pfx_path=pfx_path,
        pfx_password=pfx_password,
        certificate_pem=client_cert_pem.decode("ascii"),
        private_key_pem=client_key_pem.decode("ascii"),
        public_key=client_key.public_key(),
        thumbprint_sha1=client_cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - thumbprint, not security
        thumbprint_sha256=client_cert.fingerprint(hashes.SHA256()).hex().upper(),
    )
    return TlsMaterial(
        directory=directory,
        ca_bundle=ca_path,
        server_cert=server_cert_path,
        server_key=server_key_path,
        client=client,
    )
