# -*- coding: utf-8 -*-
# Copyright: k8snet.fabric contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""TLS material for Ingress Secrets: check a certificate/key pair, or generate one (self-signed
or signed by a given CA), with the hosts as SANs. Keys are written 0600 and never returned."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os

from ansible_collections.k8snet.fabric.plugins.module_utils.k8s.errors import ValidationError

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover
    HAS_CRYPTOGRAPHY = False


def _load_cert(path: str, label: str):
    try:
        with open(path, "rb") as handle:
            return x509.load_pem_x509_certificate(handle.read())
    except (OSError, ValueError) as exc:
        raise ValidationError(f"{label}: {path!r} is not a readable PEM certificate ({exc})") from exc


def _load_key(path: str, label: str):
    try:
        with open(path, "rb") as handle:
            return serialization.load_pem_private_key(handle.read(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ValidationError(f"{label}: {path!r} is not a readable unencrypted PEM private key "
                              f"({type(exc).__name__})") from exc


def _public(obj) -> bytes:
    return obj.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def inspect(cert_path: str, key_path: str, hosts: list[str], warn_days: int) -> dict:
    """Facts about a pair; ValidationError when the key does not belong to the certificate."""
    if not HAS_CRYPTOGRAPHY:
        raise ValidationError("the cryptography Python package is required for TLS material")
    cert = _load_cert(cert_path, "cert_path")
    key = _load_key(key_path, "key_path")
    if _public(cert) != _public(key):
        raise ValidationError(f"key_path: the key in {key_path!r} does not match the certificate in {cert_path!r}")
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in sans.get_values_for_type(x509.DNSName)] + \
                [str(n) for n in sans.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    not_after = cert.not_valid_after_utc
    days_left = (not_after - datetime.datetime.now(datetime.timezone.utc)).days
    missing = [h for h in hosts if not any(_covers(n, h) for n in names)]
    warnings = []
    if days_left < warn_days:
        warnings.append(f"certificate {cert_path} expires in {days_left} days ({not_after:%Y-%m-%d}); rotate it")
    if missing:
        warnings.append(f"certificate {cert_path} does not cover {', '.join(missing)} (SANs: {', '.join(names) or 'none'})")
    return {"not_after": not_after.isoformat(), "days_left": days_left, "sans": names,
            "fingerprint_sha256": hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
            "warnings": warnings}


def _covers(name: str, host: str) -> bool:
    if name.startswith("*."):
        return host.count(".") == name.count(".") and host.endswith(name[1:])
    return name == host


def pair_from_secret(client, namespace: str, name: str) -> tuple[bytes, bytes] | None:
    """tls.crt and tls.key of a kubernetes.io/tls Secret, or None when there is no such pair."""
    secret = client.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}", allow=(404,))
    data = (secret or {}).get("data") or {}
    if not data.get("tls.crt") or not data.get("tls.key"):
        return None
    return base64.b64decode(data["tls.crt"]), base64.b64decode(data["tls.key"])


def write_pair(cert_path: str, key_path: str, cert_pem: bytes, key_pem: bytes) -> None:
    """Write a certificate and its key (0600) - material read back from a cluster's Secret."""
    os.makedirs(os.path.dirname(os.path.abspath(key_path)), exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(cert_path)), exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_pem)
    os.chmod(key_path, 0o600)
    with open(cert_path, "wb") as handle:
        handle.write(cert_pem)


def generate(cert_path: str, key_path: str, hosts: list[str], days: int,
             ca_cert_path: str | None = None, ca_key_path: str | None = None) -> None:
    """A new key and certificate for ``hosts`` (self-signed, or signed by the given CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_cert = _load_cert(ca_cert_path, "ca_cert_path") if ca_cert_path else None
    issuer_key = _load_key(ca_key_path, "ca_key_path") if ca_key_path else key
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    sans = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    cert = (x509.CertificateBuilder().subject_name(subject)
            .issuer_name(issuer_cert.subject if issuer_cert else subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256()))
    os.makedirs(os.path.dirname(os.path.abspath(key_path)), exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    with open(cert_path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
