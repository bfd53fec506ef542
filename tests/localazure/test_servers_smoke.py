"""The real servers start, answer and behave as the product relies on."""

from __future__ import annotations

import base64
import datetime

import pytest
import requests
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from localazure.ports import poll_until

from tests.fixtures.servers import make_csr, verify_chain


@pytest.mark.azurite
def test_azurite_visibility_timeout_and_dequeue_count(queue_client) -> None:
    queue = queue_client()
    queue.send_message('{"vault": "kv1"}')

    first = next(iter(queue.receive_messages(visibility_timeout=1)))
    assert first.content == '{"vault": "kv1"}'
    assert first.dequeue_count == 1
    assert list(queue.receive_messages(visibility_timeout=1)) == []

    again: list = []
    poll_until(lambda: again.extend(queue.receive_messages(visibility_timeout=30)) or bool(again), timeout=10)
    assert again[0].id == first.id
    assert again[0].dequeue_count == 2


@pytest.mark.azurite
def test_azurite_messages_are_base64_on_the_wire_like_the_functions_host(queue_client) -> None:
    queue = queue_client()
    queue.send_message("renew kv1/web")
    raw = queue_client(queue.queue_name, create=False, message_decode_policy=None)
    assert next(iter(raw.peek_messages())).content == base64.b64encode(b"renew kv1/web").decode()


@pytest.mark.pebble
def test_pebble_issues_a_chain_that_verifies_against_its_root(pebble) -> None:
    import josepy
    from acme import client, messages
    from cryptography.hazmat.primitives.asymmetric import ec

    key = josepy.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    net = client.ClientNetwork(key, alg=josepy.ES256, verify_ssl=str(pebble.ca_bundle), user_agent="certlc-tests")
    acme = client.ClientV2(client.ClientV2.get_directory(pebble.directory_url, net), net)
    net.account = acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))

    order = acme.new_order(make_csr("smoke.certlc.test"))
    for authz in order.authorizations:
        challenge = next(c for c in authz.body.challenges if c.chall.typ == "http-01")
        acme.answer_challenge(challenge, challenge.response(key))
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=30)
    done = acme.poll_and_finalize(order, deadline)

    leaf = verify_chain(done.fullchain_pem, pebble.roots_pem(), "smoke.certlc.test")
    assert leaf.subject.rfc4514_string() == "CN=smoke.certlc.test"


@pytest.mark.cfssl
def test_cfssl_signs_a_csr_with_its_ca(cfssl_server) -> None:
    response = requests.post(
        f"{cfssl_server.url}/api/v1/cfssl/sign",
        json={"certificate_request": make_csr("api.certlc.test", key_type="ec").decode(), "profile": "server"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    leaf = verify_chain(response.json()["result"]["certificate"], cfssl_server.ca_pem, "api.certlc.test")
    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]  # the "server" profile, not the default


@pytest.mark.cfssl
def test_cfssl_refuses_a_bad_csr_with_its_error_code(cfssl_server) -> None:
    response = requests.post(
        f"{cfssl_server.url}/api/v1/cfssl/sign", json={"certificate_request": "not a csr"}, timeout=10
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == 9002
