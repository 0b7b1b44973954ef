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

from ansible_collections.k8snet.fabric.plugins.module_utils.plan import checks
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover
    HAS_CRYPTOGRAPHY = False


def _read(path: str, label: str, what: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ValidationError(f"{label}: {path!r} is not a readable {what} ({exc})") from exc


def _load_cert(pem: bytes, label: str, where: str):
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise ValidationError(f"{label}: {where!r} is not a readable PEM certificate ({exc})") from exc


def _load_key(pem: bytes, label: str, where: str):
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"{label}: {where!r} is not a readable unencrypted PEM private key "
                              f"({type(exc).__name__})") from exc


def _public(obj) -> bytes:
    return obj.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def read_pair(cert_path: str, key_path: str) -> tuple[bytes, bytes]:
    """The PEM bytes of a certificate file and its key file."""
    return (_read(cert_path, "cert_path", "PEM certificate"),
            _read(key_path, "key_path", "unencrypted PEM private key"))


def inspect(cert_pem: bytes, key_pem: bytes, hosts: list[str], warn_days: int,
            where: tuple[str, str] = ("", "")) -> dict:
    """Facts about a pair; ValidationError when the key does not belong to the certificate.
    ``where`` (certificate, key) names the pair's origin in messages (paths, or a Secret)."""
    if not HAS_CRYPTOGRAPHY:
        raise ValidationError("the cryptography Python package is required for TLS material")
    cert_where, key_where = where
    cert = _load_cert(cert_pem, "cert_path", cert_where)
    key = _load_key(key_pem, "key_path", key_where)
    if _public(cert) != _public(key):
        raise ValidationError(f"key_path: the key in {key_where!r} does not match the certificate in {cert_where!r}")
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
        warnings.append(f"certificate {cert_where} expires in {days_left} days ({not_after:%Y-%m-%d}); rotate it")
    if missing:
        warnings.append(f"certificate {cert_where} does not cover {', '.join(missing)} (SANs: {', '.join(names) or 'none'})")
    return {"not_after": not_after.isoformat(), "days_left": days_left, "sans": names, "uncovered_hosts": missing,
            "fingerprint_sha256": fingerprint(cert),
            "warnings": warnings}


def renewal_due(facts: dict, renew_days: int) -> str:
    """Why a pair the module generated is replaced now ('' when it is not): it expires in fewer
    than ``renew_days`` days, or it does not cover every host asked for."""
    if renew_days and facts["days_left"] < renew_days:
        return f"expires in {facts['days_left']} days, fewer than renew_days {renew_days}"
    if facts["uncovered_hosts"]:
        return f"does not cover {', '.join(facts['uncovered_hosts'])}"
    return ""


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
    """Write a certificate and its key (0600)."""
    os.makedirs(os.path.dirname(os.path.abspath(key_path)), exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(cert_path)), exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_pem)
    os.chmod(key_path, 0o600)
    with open(cert_path, "wb") as handle:
        handle.write(cert_pem)


def generate(hosts: list[str], days: int, ca_cert_path: str | None = None,
             ca_key_path: str | None = None) -> tuple[bytes, bytes]:
    """A new key and certificate for ``hosts`` (self-signed, or signed by the given CA), as PEM
    bytes (certificate, key); nothing is written."""
    if not HAS_CRYPTOGRAPHY:
        raise ValidationError("the cryptography Python package is required for TLS material")
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_cert = _load_cert(_read(ca_cert_path, "ca_cert_path", "PEM certificate"), "ca_cert_path",
                             ca_cert_path) if ca_cert_path else None
    issuer_key = _load_key(_read(ca_key_path, "ca_key_path", "unencrypted PEM private key"), "ca_key_path",
                           ca_key_path) if ca_key_path else key
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
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


# -- certificate authorities (a mesh's plugged intermediate CA under the user's root) -----------
def fingerprint(cert) -> str:
    """SHA-256 of a certificate's DER, as reports name certificates."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _is_ca(cert) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def load_ca(cert_path: str, key_path: str, label: str) -> tuple:
    """A CA's certificate and key from files, checked: a CA certificate (basicConstraints CA),
    the key that belongs to it, not expired. ValidationError naming ``label`` and the files."""
    if not HAS_CRYPTOGRAPHY:
        raise ValidationError("the cryptography Python package is required for TLS material")
    cert = _load_cert(_read(cert_path, f"{label}.cert_file", "PEM certificate"), f"{label}.cert_file", cert_path)
    key = _load_key(_read(key_path, f"{label}.key_file", "unencrypted PEM private key"), f"{label}.key_file", key_path)
    if not _is_ca(cert):
        raise ValidationError(f"{label}.cert_file: {cert_path!r} is not a CA certificate (no basicConstraints CA:TRUE)")
    if _public(cert) != _public(key):
        raise ValidationError(f"{label}.key_file: the key in {key_path!r} does not match the certificate in {cert_path!r}")
    if cert.not_valid_after_utc <= datetime.datetime.now(datetime.timezone.utc):
        raise ValidationError(f"{label}.cert_file: {cert_path!r} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    return cert, key


def issue_intermediate(issuer_cert, issuer_key, subject: dict, days: int) -> tuple[bytes, bytes]:
    """A new intermediate CA signed by ``issuer_cert``/``issuer_key`` (what Istio's
    tools/certs Makefile makes per cluster): an ECDSA P-256 key, CA:TRUE with path length 0,
    keyCertSign; valid ``days`` but never past the issuer's own end. PEM (certificate, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    oids = {"O": NameOID.ORGANIZATION_NAME, "CN": NameOID.COMMON_NAME, "L": NameOID.LOCALITY_NAME}
    name = x509.Name([x509.NameAttribute(oids[k], v) for k, v in subject.items()])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(min(now + datetime.timedelta(days=days), issuer_cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()), critical=False)
            .sign(issuer_key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def intermediate_facts(cert_pem: bytes) -> dict:
    """What a run reports of an intermediate CA (never its key)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return {"not_after": cert.not_valid_after_utc.isoformat(), "fingerprint_sha256": fingerprint(cert),
            "days_left": (cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)).days}


def intermediate_renewal_due(cert_pem: bytes, key_pem: bytes, issuer_cert, renew_days: int) -> str:
    """Why an intermediate CA is replaced ('' when it is kept): unreadable, not a CA, not the
    key's certificate, not signed by ``issuer_cert``, or fewer than ``renew_days`` days left."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        return f"is not a readable PEM certificate and key ({type(exc).__name__})"
    if not _is_ca(cert):
        return "is not a CA certificate"
    if _public(cert) != _public(key):
        return "holds a key that does not match its certificate"
    try:
        cert.verify_directly_issued_by(issuer_cert)
    except (ValueError, TypeError, InvalidSignature):
        return "is not signed by the root"
    days_left = (cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)).days
    if days_left < renew_days:
        return f"expires in {days_left} days, fewer than renew_days {renew_days}"
    return ""


def same_certificate(pem: bytes, cert) -> bool:
    """Whether the first certificate of ``pem`` is ``cert``."""
    try:
        return x509.load_pem_x509_certificate(pem) == cert
    except ValueError:
        return False


# -- cert-manager ------------------------------------------------------------------------------
ISSUER_KINDS = ("Issuer", "ClusterIssuer")


def issuer_ref(text: str, where: str) -> dict:
    """``Kind/name`` of a cert-manager issuer -> its issuerRef; ValidationError naming ``where``."""
    kind, _slash, name = str(text).partition("/")
    bad_name: list[str] = []
    checks.domain(name, where, bad_name)
    if kind not in ISSUER_KINDS or bad_name:
        raise ValidationError(f"{where}.issuer: {text!r} is not Issuer/<name> or ClusterIssuer/<name> "
                              "of cert-manager (e.g. ClusterIssuer/letsencrypt)")
    return {"group": "cert-manager.io", "kind": kind, "name": name}


def cert_manager_problems(settings: dict, where: str) -> list[str]:
    """What a cert-manager Certificate needs of the role's TLS settings (issuer, days, renew_days)."""
    out = []
    try:
        issuer_ref(settings.get("issuer") or "", where)
    except ValidationError as exc:
        out.append(str(exc))
    checks.renewal_window(settings.get("renew_days", 30), settings.get("days", 365), f"{where}.renew_days", out)
    return out


def cert_manager_certificate(secret: str, namespace: str, hosts: list[str], settings: dict) -> dict:
    """cert-manager's Certificate for ``hosts`` into the Secret ``secret``: signed by the issuer,
    valid ``days``, renewed ``renew_days`` before its end with a new ECDSA P-256 key."""
    return {"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": secret, "namespace": namespace},
            "spec": {"secretName": secret, "dnsNames": list(hosts),
                     "issuerRef": issuer_ref(settings["issuer"], "issuer"),
                     "duration": f"{settings.get('days', 365) * 24}h",
                     "renewBefore": f"{settings.get('renew_days', 30) * 24}h",
                     "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}}}
