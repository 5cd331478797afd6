"""``sqlembed tls selfsigned``: a private CA and a server certificate SQL Server will accept.

SQL Server validates the endpoint's certificate and the SAN must match the host or IP in the
URL (contract A9). A one-off CA signs the server certificate; its key is discarded after signing,
so the CA can sign nothing else. Users trust ``ca.crt`` once.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    cert: Path
    key: Path


def write_selfsigned(out: Path, hosts: list[str], ips: list[str], days: int = 825) -> TlsFiles:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not hosts:
        raise ValueError("at least one --host is needed")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"sqlembed local CA for {hosts[0]}")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(h) for h in dict.fromkeys(hosts)]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in dict.fromkeys(ips)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    out.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(out / "ca.crt", out / "server.crt", out / "server.key")
    pem = serialization.Encoding.PEM
    files.ca_cert.write_bytes(ca.public_bytes(pem))
    # Full chain, so clients that only trust the CA can build the path.
    files.cert.write_bytes(cert.public_bytes(pem) + ca.public_bytes(pem))
    fd = os.open(files.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return files


def trust_instructions(files: TlsFiles, host: str, port: int = 8888) -> str:
    return f"""\
Wrote {files.cert} (chain), {files.key} (mode 600) and {files.ca_cert}.

Serve with:   sqlembed serve --host 0.0.0.0 --tls-cert {files.cert} --tls-key {files.key}

Make SQL Server trust it (the URL host must be one of the certificate's names):
  SQL Server on Linux / container: copy {files.ca_cert.name} to
      /var/opt/mssql/security/ca-certificates/sqlembed-ca.crt
    (e.g. a read-only volume mount in compose), then restart SQL Server.
  SQL Server on Windows (PowerShell as administrator):
      Import-Certificate -FilePath {files.ca_cert.name} -CertStoreLocation Cert:\\LocalMachine\\Root
    then restart the SQL Server service.
Then: CREATE EXTERNAL MODEL ... LOCATION = 'https://{host}:{port}/api/embed'
"""


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The service's TLS settings: TLS 1.2 or newer only (contract A9), Python's default ciphers."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx
