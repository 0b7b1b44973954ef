"""The testbed's certificates: one CA, the apiservers' serving cert, client certs, SA keys."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Client identities: file stem -> (common name, organisations). system:masters is the
# admin; the limited user has only what tests/testbed/rbac/ grants it.
# The control plane's components use the identities Kubernetes' bootstrap RBAC grants (the
# controller-manager then acts through per-controller service accounts); kwok plays every
# kubelet and needs node and pod status everywhere. Their "system:" names keep them out of
# Testbed.writes().
CLIENTS = {
    "admin": ("k8snet-admin", ("system:masters",)),
    "limited": ("k8snet-limited", ("k8snet:limited",)),
    "kube-controller-manager": ("system:kube-controller-manager", ()),
    "kube-scheduler": ("system:kube-scheduler", ()),
    "kwok": ("system:kwok", ("system:masters",)),
    # The data plane's enforcers: read-only (rbac/kube-router.yaml).
    "kube-router": ("system:kube-router", ()),
    # kube-proxy as Kubernetes' bootstrap RBAC knows it (system:node-proxier is bound to it).
    "kube-proxy": ("system:kube-proxy", ()),
    # The clusters' DNS: read-only (rbac/coredns.yaml).
    "coredns": ("system:coredns", ()),
    # external-dns: reads its sources, updates DNSEndpoint status (rbac/external-dns.yaml).
    "external-dns": ("system:external-dns", ()),
    # Envoy Gateway's control plane (rbac/envoy-gateway.yaml; its namespace's Role is applied
    # when the data plane starts it).
    "envoy-gateway": ("system:envoy-gateway", ()),
}


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _cert(subject: x509.Name, key, issuer_cert, issuer_key, *, ca=False, usages=(), sans=()):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer_cert.subject if issuer_cert else subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name(attrs + [x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def generate(pki_dir: Path) -> None:
    """Write ca, apiserver, one cert per client, and the service-account key pair."""
    pki_dir.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM

    ca_key = _key()
    ca = _cert(_name("k8snet-testbed-ca"), ca_key, None, None, ca=True)
    (pki_dir / "ca.crt").write_bytes(ca.public_bytes(pem))
    _write_key(ca_key, pki_dir / "ca.key")

    server_key = _key()
    server = _cert(_name("kube-apiserver"), server_key, ca, ca_key,
                   usages=(ExtendedKeyUsageOID.SERVER_AUTH,),
                   sans=(x509.DNSName("localhost"), x509.DNSName("kubernetes.default.svc"),
                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))))
    (pki_dir / "apiserver.crt").write_bytes(server.public_bytes(pem))
    _write_key(server_key, pki_dir / "apiserver.key")

    for stem, (cn, orgs) in CLIENTS.items():
        key = _key()
        cert = _cert(_name(cn, orgs), key, ca, ca_key, usages=(ExtendedKeyUsageOID.CLIENT_AUTH,))
        (pki_dir / f"{stem}.crt").write_bytes(cert.public_bytes(pem))
        _write_key(key, pki_dir / f"{stem}.key")

    sa_key = _key()
    _write_key(sa_key, pki_dir / "sa.key")
    (pki_dir / "sa.pub").write_bytes(sa_key.public_key().public_bytes(
        pem, serialization.PublicFormat.SubjectPublicKeyInfo))
