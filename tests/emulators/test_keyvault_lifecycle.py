"""Listing with paging, policy, tags, import and delete through the unmodified SDK."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import trustme
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.certificates import CertificateContentType, CertificatePolicy
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.fixtures.pki import issued, pem_bundle


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def key_and_cert():
    now = datetime.now(UTC)
    return issued(trustme.CA(), "imported.example.test", now - timedelta(days=1), now + timedelta(days=90))


def pfx(key, cert, password: bytes | None = None) -> bytes:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return pkcs12.serialize_key_and_certificates(b"x", key, cert, None, encryption)


def test_thirty_certificates_list_completely_in_pages(kv_client, kv_control, key_and_cert):
    client = kv_client("kv2")
    prefix = unique("bulk")
    names = {f"{prefix}-{i:02d}" for i in range(30)}
    blob = pfx(*key_and_cert)
    for name in names:
        client.import_certificate(name, blob)
    kv_control.clear_requests()

    listed = [p.name for p in client.list_properties_of_certificates(max_page_size=10)]
    assert sorted(n for n in listed if n.startswith(prefix)) == sorted(names)
    assert len(listed) == len(set(listed))
    pages = [r for r in kv_control.requests() if r["path"] == "/certificates" and r["status"] == 200]
    assert len(pages) >= 3
    assert pages[0]["query"]["maxresults"] == "10"
    assert all("$skiptoken" in p["query"] for p in pages[1:])


def test_versions_page_and_bad_page_size_is_rejected(kv_client, key_and_cert):
    client = kv_client()
    name = unique("versions")
    blob = pfx(*key_and_cert)
    versions = {client.import_certificate(name, blob).properties.version for _ in range(12)}
    listed = {p.version for p in client.list_properties_of_certificate_versions(name, max_page_size=5)}
    assert listed == versions and len(versions) == 12

    with pytest.raises(HttpResponseError) as error:
        list(client.list_properties_of_certificates(max_page_size=26))
    assert error.value.status_code == 400


def test_import_pfx_with_password_and_pem(kv_client, kv_secret_client, key_and_cert):
    key, cert = key_and_cert
    client = kv_client()
    name = unique("pfxpwd")
    imported = client.import_certificate(name, pfx(key, cert, b"s3cret"), password="s3cret", tags={"team": "a"})
    assert imported.cer == cert.public_bytes(serialization.Encoding.DER)
    assert imported.properties.tags == {"team": "a"}
    assert imported.policy.issuer_name == "Unknown"
    assert imported.policy.san_dns_names == ["imported.example.test"]
    assert imported.policy.key_type == "EC"

    with pytest.raises(HttpResponseError) as wrong:
        client.import_certificate(unique("badpwd"), pfx(key, cert, b"s3cret"), password="nope")
    assert wrong.value.status_code == 400

    pem_name = unique("pem")
    pem = pem_bundle(key, cert)
    policy = CertificatePolicy.get_default()
    policy._content_type = CertificateContentType.pem
    client.import_certificate(pem_name, pem, policy=policy)
    secret = kv_secret_client().get_secret(pem_name)
    assert secret.properties.content_type == "application/x-pem-file"
    assert x509.load_pem_x509_certificates(secret.value.encode()) == [cert]


def test_policy_and_properties_updates(kv_client):
    client = kv_client()
    name = unique("props")
    cert = client.begin_create_certificate(name, CertificatePolicy.get_default(), _polling_interval=0.01).result()

    updated = client.update_certificate_properties(name, tags={"certlc-state": "ok"}, enabled=False)
    assert updated.properties.tags == {"certlc-state": "ok"} and updated.properties.enabled is False
    by_version = client.update_certificate_properties(name, cert.properties.version, enabled=True)
    assert by_version.properties.enabled is True and by_version.properties.tags == {"certlc-state": "ok"}

    policy = client.get_certificate_policy(name)
    assert (policy.subject, policy.validity_in_months, policy.issuer_name) == ("CN=DefaultPolicy", 12, "Self")
    shorter = CertificatePolicy(issuer_name="Self", subject="CN=DefaultPolicy", validity_in_months=6)
    assert client.update_certificate_policy(name, shorter).validity_in_months == 6
    assert client.get_certificate_policy(name).validity_in_months == 6


def test_delete_then_deleted_then_purge(kv_client):
    client = kv_client()
    name = unique("gone")
    client.begin_create_certificate(name, CertificatePolicy.get_default(), _polling_interval=0.01).result()
    deleted = client.begin_delete_certificate(name, _polling_interval=0.01).result()
    assert deleted.name == name and deleted.recovery_id.endswith(f"/deletedcertificates/{name}")
    with pytest.raises(ResourceNotFoundError):
        client.get_certificate(name)
    assert client.get_deleted_certificate(name).name == name
    client.purge_deleted_certificate(name)
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_certificate(name)


def test_vaults_are_separate(kv_client):
    name = unique("only-kv1")
    kv_client("kv1").begin_create_certificate(name, CertificatePolicy.get_default(), _polling_interval=0.01).result()
    with pytest.raises(ResourceNotFoundError):
        kv_client("kv2").get_certificate(name)
    assert kv_client("kv1").get_certificate(name).id.startswith(kv_client("kv1").vault_url)


def test_invalid_name_is_rejected(kv_client):
    with pytest.raises(HttpResponseError) as error:
        kv_client().get_certificate("bad_name")
    assert error.value.status_code == 400 and error.value.error.code == "BadParameter"
