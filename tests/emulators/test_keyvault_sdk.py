"""The unmodified Key Vault SDKs against the emulator: create -> CSR -> merge -> get -> secret."""

from __future__ import annotations

import base64
import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.keyvault.certificates import CertificateContentType, CertificatePolicy, KeyCurveName, KeyType
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.fixtures.keyvault import clear_challenge_caches

DER = serialization.Encoding.DER
PEM = serialization.Encoding.PEM


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def unknown_policy(subject: str, **kwargs: object) -> CertificatePolicy:
    return CertificatePolicy(issuer_name="Unknown", subject=subject, **kwargs)  # type: ignore[arg-type]


def spki(obj: object) -> bytes:
    return obj.public_key().public_bytes(DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]


def test_create_merge_get_and_download_with_minimal_calls(kv_client, kv_secret_client, kv_control, chain_ca):
    name = unique("merge")
    client = kv_client()
    clear_challenge_caches()
    kv_control.clear_requests()

    operation = client.begin_create_certificate(
        name, unknown_policy("CN=app.example.test", san_dns_names=["app.example.test"]), _polling_interval=0.01
    ).result()
    assert operation.status == "inProgress"
    chain = chain_ca.sign(operation.csr)
    merged = client.merge_certificate(name, [c.public_bytes(DER) for c in chain])

    calls = [(r["method"], r["path"], r["status"]) for r in kv_control.requests() if r["vault"] == "kv1"]
    assert calls == [
        ("POST", f"/certificates/{name}/create", 401),  # the bearer challenge
        ("POST", f"/certificates/{name}/create", 202),
        ("POST", f"/certificates/{name}/pending/merge", 201),
    ]
    assert merged.cer == chain[0].public_bytes(DER)
    assert merged.properties.version and merged.id.endswith(merged.properties.version)

    fetched = client.get_certificate(name)
    assert fetched.cer == chain[0].public_bytes(DER)
    assert fetched.properties.x509_thumbprint == chain[0].fingerprint(hashes.SHA1())  # noqa: S303 - x5t
    assert client.get_certificate_operation(name).status == "completed"

    secret = kv_secret_client().get_secret(name)
    assert secret.properties.content_type == "application/x-pkcs12"
    key, leaf, extra = pkcs12.load_key_and_certificates(base64.b64decode(secret.value), None)
    assert leaf == chain[0]
    assert [c.subject for c in extra] == [chain[1].subject, chain[2].subject]
    assert spki(key) == spki(leaf)


def test_pending_csr_follows_the_policy(kv_client):
    name = unique("policy")
    client = kv_client()
    policy = unknown_policy(
        "CN=svc, O=certlc",
        san_dns_names=["svc.example.test", "alt.example.test"],
        san_emails=["ops@example.test"],
        san_user_principal_names=["svc@example.test"],
        key_type=KeyType.ec,
        key_curve_name=KeyCurveName.p_384,
        enhanced_key_usage=[ExtendedKeyUsageOID.SERVER_AUTH.dotted_string],
        key_usage=["digitalSignature"],
    )
    client.begin_create_certificate(name, policy, _polling_interval=0.01).result()
    csr = x509.load_der_x509_csr(client.get_certificate_operation(name).csr)

    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=svc,O=certlc"  # Key Vault subjects read like RFC 4514
    key = csr.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1"
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["svc.example.test", "alt.example.test"]
    assert san.get_values_for_type(x509.RFC822Name) == ["ops@example.test"]
    assert len(san.get_values_for_type(x509.OtherName)) == 1
    assert list(csr.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    usage = csr.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_encipherment


@pytest.mark.parametrize("size", [3072, 4096])
def test_rsa_sizes(kv_client, size):
    name = unique(f"rsa{size}")
    client = kv_client()
    client.begin_create_certificate(
        name, unknown_policy("CN=rsa", key_type=KeyType.rsa, key_size=size), _polling_interval=0.01
    ).result()
    key = x509.load_der_x509_csr(client.get_certificate_operation(name).csr).public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == size


@pytest.mark.parametrize("form", ["der", "pem", "base64-text"])
def test_merge_accepts_what_the_sdk_sends(kv_client, chain_ca, form):
    name = unique(f"form-{form}")
    client = kv_client()
    operation = client.begin_create_certificate(name, unknown_policy("CN=f"), _polling_interval=0.01).result()
    leaf, issuer, _root = chain_ca.sign(operation.csr)
    blobs = {
        "der": [leaf.public_bytes(DER), issuer.public_bytes(DER)],
        "pem": [leaf.public_bytes(PEM) + issuer.public_bytes(PEM)],
        "base64-text": [base64.b64encode(leaf.public_bytes(DER))],
    }[form]
    merged = client.merge_certificate(name, blobs)
    assert merged.cer == leaf.public_bytes(DER)


def test_merge_errors_match_key_vault(kv_client, chain_ca):
    client = kv_client()
    name = unique("wrongkey")
    client.begin_create_certificate(name, unknown_policy("CN=w"), _polling_interval=0.01).result()
    other = unique("other")
    other_op = client.begin_create_certificate(other, unknown_policy("CN=o"), _polling_interval=0.01).result()
    wrong_chain = chain_ca.sign(other_op.csr)

    with pytest.raises(HttpResponseError) as mismatch:
        client.merge_certificate(name, [wrong_chain[0].public_bytes(DER)])
    assert mismatch.value.status_code == 400
    assert mismatch.value.error.code == "BadParameter"

    with pytest.raises(ResourceExistsError) as conflict:
        client.begin_create_certificate(name, unknown_policy("CN=w"), _polling_interval=0.01)
    assert conflict.value.status_code == 409

    with pytest.raises(ResourceNotFoundError) as missing:
        client.merge_certificate(unique("nopending"), [wrong_chain[0].public_bytes(DER)])
    assert missing.value.error.code == "PendingCertificateNotFound"


def test_self_signed_and_pem_secret(kv_client, kv_secret_client):
    name = unique("selfpem")
    client = kv_client()
    policy = CertificatePolicy.get_default()
    policy._content_type = CertificateContentType.pem
    cert = client.begin_create_certificate(name, policy, _polling_interval=0.01).result()
    leaf = x509.load_der_x509_certificate(cert.cer)
    assert leaf.issuer == leaf.subject
    assert client.get_certificate_policy(name).content_type == CertificateContentType.pem

    secret = kv_secret_client().get_secret(name, cert.properties.version)
    assert secret.properties.content_type == "application/x-pem-file"
    key = serialization.load_pem_private_key(secret.value.encode(), None)
    certs = x509.load_pem_x509_certificates(secret.value.encode())
    assert certs == [leaf]
    assert spki(key) == spki(leaf)


def test_reuse_key_keeps_the_key(kv_client, chain_ca):
    name = unique("reuse")
    client = kv_client()
    policy = unknown_policy("CN=r", reuse_key=True)
    first = client.begin_create_certificate(name, policy, _polling_interval=0.01).result()
    client.merge_certificate(name, [chain_ca.sign(first.csr)[0].public_bytes(DER)])
    second = client.begin_create_certificate(name, policy, _polling_interval=0.01).result()
    assert spki(x509.load_der_x509_csr(first.csr)) == spki(x509.load_der_x509_csr(second.csr))

    fresh = unique("fresh")
    a = client.begin_create_certificate(fresh, unknown_policy("CN=f"), _polling_interval=0.01).result()
    client.merge_certificate(fresh, [chain_ca.sign(a.csr)[0].public_bytes(DER)])
    b = client.begin_create_certificate(fresh, unknown_policy("CN=f"), _polling_interval=0.01).result()
    assert spki(x509.load_der_x509_csr(a.csr)) != spki(x509.load_der_x509_csr(b.csr))
