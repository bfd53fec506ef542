"""Event Grid → queue → renew → merge → notify through function_app.py's functions on the local stack."""

from __future__ import annotations

import base64
import uuid

import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from renewal.x509info import alt_names, public_key_der
from tests.pipeline.helpers import (
    alerts_for,
    audit,
    client,
    near_expiry_event,
    secret_client,
    seed,
    settle,
    unique,
    versions,
)


def _key_of(cer: bytes) -> bytes:
    return public_key_der(x509.load_der_x509_certificate(cer).public_key())


def test_near_expiry_event_renews_with_policy_tags_and_chain(stack, alerts):
    name = unique("web")
    sans = (f"{name}.example.com", f"www.{name}.example.com", "api.example.org")
    tags = {"Recipient": "web-team@example.com; ops@example.com", "owner": "web"}
    old = seed(stack, name, days_left=20, sans=sans, tags=tags, key_size=3072)
    settle(stack)

    kv = client(stack)
    all_versions = versions(stack, name)
    assert len(all_versions) == 2, "the NearExpiry event should have produced exactly one new version"
    new = kv.get_certificate(name)
    assert new.properties.version != old.properties.version
    assert new.policy.san_dns_names == list(sans) and new.policy.key_size == 3072
    assert new.policy.issuer_name == "Unknown" and new.policy.subject == f"CN={sans[0]}"
    leaf = x509.load_der_x509_certificate(bytes(new.cer))
    assert alt_names(leaf.extensions).dns == frozenset(sans)
    assert leaf.public_key().key_size == 3072
    assert _key_of(bytes(new.cer)) != _key_of(bytes(old.cer)), "key rotation is the default"
    assert leaf.issuer.rfc4514_string() == "CN=certlc local CA,O=certlc"
    assert {k: new.properties.tags[k] for k in tags} == tags
    assert new.properties.tags["certlc-last-outcome"].startswith("renewed")

    secret = secret_client(stack).get_secret(name, new.properties.version)
    chain = x509.load_pem_x509_certificates(secret.value.encode()) if "BEGIN" in secret.value else None
    if chain is None:  # PKCS#12 content type
        from cryptography.hazmat.primitives.serialization import pkcs12

        bundle = pkcs12.load_pkcs12(base64.b64decode(secret.value), None)
        chain = [bundle.cert.certificate] + [c.certificate for c in bundle.additional_certs]
        key = bundle.key
    else:
        key = serialization.load_pem_private_key(secret.value.encode(), None)
    assert len(chain) == 2 and chain[1].subject.rfc4514_string() == "CN=certlc local CA,O=certlc"
    assert public_key_der(key.public_key()) == public_key_der(leaf.public_key())

    events = [r["event"] for r in audit(stack, name)]
    for step in ("renewal_initiated", "csr_created", "submitted", "issued", "merged", "notified"):
        assert step in events, f"audit trail misses {step}: {events}"
    renewed = [a for a in alerts_for(alerts, name) if a["kind"] == "renewed"]
    assert len(renewed) == 1 and renewed[0]["new_version"] == new.properties.version
    assert set(renewed[0]["recipients"]) == {"web-team@example.com", "ops@example.com", "pki@example.com"}


def test_reuse_key_policy_keeps_the_key(stack):
    name = unique("reuse")
    old = seed(stack, name, days_left=10, reuse_key=True)
    settle(stack)
    new = client(stack).get_certificate(name)
    assert len(versions(stack, name)) == 2
    assert _key_of(bytes(new.cer)) == _key_of(bytes(old.cer))


def _deliver(stack, events: list[dict]) -> None:
    response = requests.post(
        stack.host.eventgrid_url("event"), json=events, headers={"aeg-event-type": "Notification"}, timeout=30
    )
    assert response.status_code == 200, response.text


def test_event_for_an_already_replaced_version_does_nothing(stack):
    name = unique("stale")
    old = seed(stack, name, days_left=15)
    settle(stack)
    assert len(versions(stack, name)) == 2
    _deliver(stack, [near_expiry_event(stack, name, old.properties.version)])
    settle(stack)
    assert len(versions(stack, name)) == 2
    assert any(r["event"] == "skipped" and r.get("reason") == "superseded" for r in audit(stack, name))


def test_duplicate_deliveries_renew_once(stack):
    name = unique("dup")
    old = seed(stack, name, days_left=400, lifetime_days=500)  # not due: no event of its own
    settle(stack)
    event = near_expiry_event(stack, name, old.properties.version)
    client(stack).update_certificate_properties(name, tags={"certlc-renew-before-days": "500"})
    twin = dict(event, id=str(uuid.uuid4()))
    _deliver(stack, [event, event])  # the same event twice in one delivery
    _deliver(stack, [twin])  # and again, as Event Grid's at-least-once delivery may do
    settle(stack)
    assert len(versions(stack, name)) == 2


def test_self_issued_and_opted_out_certificates_are_left_to_key_vault(stack):
    self_name, opted = unique("selfsigned"), unique("optout")
    kv = client(stack)
    from azure.keyvault.certificates import CertificatePolicy

    kv.begin_create_certificate(self_name, CertificatePolicy.get_default(), _polling_interval=0.05).result()
    seed(stack, opted, days_left=400, lifetime_days=500, tags={"certlc-renew": "false"})
    for name in (self_name, opted):
        version = kv.get_certificate(name).properties.version
        _deliver(stack, [near_expiry_event(stack, name, version)])
    settle(stack)
    assert len(versions(stack, self_name)) == 1 and len(versions(stack, opted)) == 1
    assert [r.get("reason") for r in audit(stack, self_name) if r["event"] == "skipped"] == ["keyvault_auto_renew"]
    assert [r.get("reason") for r in audit(stack, opted) if r["event"] == "skipped"] == ["opted_out"]


def test_a_cloudevents_delivery_renews(stack):
    name = unique("cloudevent")
    old = seed(stack, name, days_left=400, lifetime_days=500, tags={"certlc-renew-before-days": "450"})
    settle(stack)
    event = near_expiry_event(stack, name, old.properties.version)
    cloud_event = {
        "specversion": "1.0",
        "id": event["id"],
        "source": event["topic"],
        "subject": name,
        "type": event["eventType"],
        "time": event["eventTime"],
        "data": event["data"],
    }
    response = requests.post(
        stack.host.eventgrid_url("event"),
        json=cloud_event,
        headers={"Content-Type": "application/cloudevents+json; charset=utf-8"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    settle(stack)
    assert len(versions(stack, name)) == 2
