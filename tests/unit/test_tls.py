"""The TLS helpers behind tls_certificate: generation, facts and the renewal rule."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import hashes, serialization

from ansible_collections.k8snet.fabric.plugins.module_utils import tls_certificate
from tests.helpers import write_root_ca
from ansible_collections.k8snet.fabric.plugins.module_utils.errors import ValidationError


def test_a_generated_pair_covers_its_hosts_for_its_days():
    cert, key = tls_certificate.generate(["shop.example.com", "10.0.0.1"], 90)
    facts = tls_certificate.inspect(cert, key, ["shop.example.com", "10.0.0.1"], warn_days=30, where=("c", "k"))
    assert facts["days_left"] in (89, 90) and facts["sans"] == ["shop.example.com", "10.0.0.1"]
    assert facts["uncovered_hosts"] == [] and facts["warnings"] == []
    assert tls_certificate.renewal_due(facts, 30) == ""


def test_renewal_is_due_near_expiry_or_for_a_host_not_covered():
    cert, key = tls_certificate.generate(["shop.example.com"], 10)
    near = tls_certificate.inspect(cert, key, ["shop.example.com"], warn_days=30, where=("c", "k"))
    assert tls_certificate.renewal_due(near, 30) == f"expires in {near['days_left']} days, fewer than renew_days 30"
    assert tls_certificate.renewal_due(near, 0) == ""  # 0: never for expiry
    assert near["warnings"] == [f"certificate c expires in {near['days_left']} days ({near['not_after'][:10]}); rotate it"]
    wider = tls_certificate.inspect(cert, key, ["shop.example.com", "staging.shop.example.com"], warn_days=0, where=("c", "k"))
    assert tls_certificate.renewal_due(wider, 0) == "does not cover staging.shop.example.com"


def test_a_pair_signed_by_a_ca_names_it_as_issuer_and_verifies(tmp_path):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "fabric test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    (tmp_path / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "ca.key").write_bytes(ca_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    cert_pem, _key = tls_certificate.generate(["shop.example.com"], 30, str(tmp_path / "ca.crt"), str(tmp_path / "ca.key"))
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.issuer == name
    cert.verify_directly_issued_by(ca)


def test_a_key_of_another_certificate_is_refused_naming_both():
    cert, _key = tls_certificate.generate(["a.example.com"], 30)
    _cert, other = tls_certificate.generate(["a.example.com"], 30)
    with pytest.raises(ValidationError, match=r"key_path: the key in 'b.key' does not match the certificate in 'a.crt'"):
        tls_certificate.inspect(cert, other, [], 0, where=("a.crt", "b.key"))


def test_files_that_are_not_there_or_not_pem_are_named(tmp_path):
    with pytest.raises(ValidationError, match=r"cert_path: '.*/none.crt' is not a readable PEM certificate"):
        tls_certificate.read_pair(str(tmp_path / "none.crt"), str(tmp_path / "none.key"))
    with pytest.raises(ValidationError, match=r"cert_path: 'x.crt' is not a readable PEM certificate"):
        tls_certificate.inspect(b"not pem", b"not pem", [], 0, where=("x.crt", "x.key"))


def test_an_intermediate_ca_is_signed_by_the_root_may_sign_leaves_only_and_ends_with_thewrite_root_ca(tmp_path):
    root_cert, root_key = tls_certificate.load_ca(*write_root_ca(tmp_path, days=100), "root_ca")
    cert_pem, key_pem = tls_certificate.issue_intermediate(root_cert, root_key, {"O": "Istio", "CN": "Intermediate CA",
                                                                                 "L": "us-east"}, days=730)
    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.verify_directly_issued_by(root_cert)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert (constraints.ca, constraints.path_length) == (True, 0)
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert cert.not_valid_after_utc == root_cert.not_valid_after_utc  # capped at the root's end
    assert cert.subject.rfc4514_string() == "L=us-east,CN=Intermediate CA,O=Istio"
    assert tls_certificate.intermediate_renewal_due(cert_pem, key_pem, root_cert, renew_days=30) == ""
    left = tls_certificate.intermediate_facts(cert_pem)["days_left"]
    assert tls_certificate.intermediate_renewal_due(cert_pem, key_pem, root_cert, renew_days=200) == \
        f"expires in {left} days, fewer than renew_days 200"


def test_an_intermediate_under_another_root_or_with_another_key_is_replaced(tmp_path):
    root_cert, root_key = tls_certificate.load_ca(*write_root_ca(tmp_path), "root_ca")
    other_cert, other_key = tls_certificate.load_ca(*write_root_ca(tmp_path, name="other"), "root_ca")
    cert_pem, key_pem = tls_certificate.issue_intermediate(other_cert, other_key, {"CN": "x"}, days=30)
    assert tls_certificate.intermediate_renewal_due(cert_pem, key_pem, root_cert, 10) == "is not signed by the root"
    mine, _key = tls_certificate.issue_intermediate(root_cert, root_key, {"CN": "x"}, days=30)
    assert tls_certificate.intermediate_renewal_due(mine, key_pem, root_cert, 10) == "holds a key that does not match its certificate"
    leaf, leaf_key = tls_certificate.generate(["a.example.com"], 30)
    assert tls_certificate.intermediate_renewal_due(leaf, leaf_key, root_cert, 10) == "is not a CA certificate"
    assert tls_certificate.intermediate_renewal_due(b"", b"", root_cert, 10).startswith("is not a readable PEM certificate")


def test_a_root_that_is_no_ca_or_not_the_keys_certificate_is_named(tmp_path):
    leaf_cert, _leaf_key = write_root_ca(tmp_path, ca=False, name="leaf")
    _other_cert, other_key = write_root_ca(tmp_path, name="other")
    with pytest.raises(ValidationError, match=r"root_ca.cert_file: '.*leaf.crt' is not a CA certificate"):
        tls_certificate.load_ca(leaf_cert, other_key, "root_ca")
    root_cert, _root_key = write_root_ca(tmp_path)
    with pytest.raises(ValidationError, match=r"root_ca.key_file: the key in '.*other.key' does not match"):
        tls_certificate.load_ca(root_cert, other_key, "root_ca")
    with pytest.raises(ValidationError, match=r"root_ca.cert_file: '.*none.crt' is not a readable PEM certificate"):
        tls_certificate.load_ca(str(tmp_path / "none.crt"), other_key, "root_ca")
