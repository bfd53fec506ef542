"""The local Event Grid publisher, delivering the Key Vault emulator's certificate events, against a real webhook
receiver that answers the handshakes with the host webhook's functions; each delivered event is checked with the
product's parser, one event at a time."""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from localazure.emulators.eventgrid import Event, EventGridPublisher, SubscriptionError
from localazure.emulators.keyvault.events import certificate_event

from certlc.host.eventgrid_protocol import decode_delivery
from renewal.eventgrid.schema import CERTIFICATE_EVENT_TYPES, CLOUD_EVENTS_SCHEMA, EVENT_GRID_SCHEMA
from renewal.events import Ignored, outcome, parse_event
from renewal.messages import RenewalRequest
from renewal.vaults import parse_allow_list
from tests.fixtures.mail import HttpReceiver, TlsMaterial, make_tls_material

VAULT_URL = "https://127.0.0.1:54321"
ALLOW = parse_allow_list(f"kv1={VAULT_URL}")
CLEAN_SAMPLE = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "events"
    / "reference"
    / "certificate-derived"
    / "certificate-near-expiry.eventgrid.clean.json"
)


@pytest.fixture(scope="session")
def receiver_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HttpReceiver, TlsMaterial]]:
    material = make_tls_material(tmp_path_factory.mktemp("eventgrid-tls"))
    running = HttpReceiver(material)
    running.start()
    yield running, material
    running.stop()


@pytest.fixture
def publisher() -> Iterator[EventGridPublisher]:
    running = EventGridPublisher(event_types=CERTIFICATE_EVENT_TYPES, retry_delays=(0.01, 0.02, 0.03))
    yield running
    running.close()


def _each_event(body: bytes) -> list[RenewalRequest | Ignored]:
    """A delivery as the host splits it, each event as the ``event`` function parses it (raises if rejected)."""
    return [outcome(parse_event(event, ALLOW)) for event in decode_delivery(body)]


def _event(event_type: str = "CertificateNearExpiry", name: str = "web-frontend") -> Event:
    return certificate_event(
        f"Microsoft.KeyVault.{event_type}",
        vault="kv1",
        vault_url=VAULT_URL,
        name=name,
        version=uuid.uuid4().hex,
        nbf=1714557600,
        exp=1722333600,
        when=datetime(2024, 7, 1, 12, 0, 0, 123456, tzinfo=UTC),
    )


def _version(event: Event) -> str:
    return event.data["Version"]


def test_event_grid_subscription_runs_the_validation_handshake(http_receiver: HttpReceiver, publisher) -> None:
    path, url = http_receiver.endpoint()
    subscription = publisher.subscribe(url)
    (handshake,) = http_receiver.received(path, "POST")
    assert handshake.headers["aeg-event-type"] == "SubscriptionValidation"
    assert handshake.body[0]["eventType"] == "Microsoft.EventGrid.SubscriptionValidationEvent"
    assert subscription["schema"] == EVENT_GRID_SCHEMA
    assert publisher.subscriptions() == [subscription]


def test_cloud_events_subscription_runs_the_options_handshake(http_receiver: HttpReceiver, publisher) -> None:
    path, url = http_receiver.endpoint()
    assert publisher.subscribe(url, schema="CloudEvents")["schema"] == CLOUD_EVENTS_SCHEMA
    (handshake,) = http_receiver.received(path)
    assert (handshake.method, handshake.headers["webhook-request-origin"]) == ("OPTIONS", "eventgrid.azure.net")


def test_event_grid_delivery_parses_into_the_right_renewal_request(http_receiver: HttpReceiver, publisher) -> None:
    path, url = http_receiver.endpoint()
    publisher.subscribe(url)
    event = _event()
    publisher.publish(event)
    assert publisher.flush()
    (delivery,) = http_receiver.notifications(path)
    assert delivery.headers["content-type"] == "application/json; charset=utf-8"
    assert delivery.headers["aeg-delivery-count"] == "0"
    assert isinstance(delivery.body, list)
    (request,) = _each_event(delivery.raw)
    (logged,) = publisher.deliveries()
    assert isinstance(request, RenewalRequest)
    assert (request.vault, request.name, request.version, request.trigger, request.event_id) == (
        "kv1",
        "web-frontend",
        _version(event),
        "near_expiry",
        logged["event_id"],
    )
    assert (logged["status"], logged["attempts"], logged["schema"]) == ("delivered", 1, EVENT_GRID_SCHEMA)
    json.dumps([publisher.deliveries(), publisher.subscriptions()])  # the emulator's admin API serves both


def test_cloud_event_delivery_parses_into_the_right_renewal_request(http_receiver: HttpReceiver, publisher) -> None:
    path, url = http_receiver.endpoint()
    publisher.subscribe(url, schema=CLOUD_EVENTS_SCHEMA)
    event = _event("CertificateExpired")
    publisher.publish(event)
    assert publisher.flush()
    (delivery,) = http_receiver.notifications(path)
    assert delivery.headers["content-type"] == "application/cloudevents+json; charset=utf-8"
    body = delivery.body
    assert (body["specversion"], body["source"]) == (
        "1.0",
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/certlc-local"
        "/providers/Microsoft.KeyVault/vaults/kv1",
    )
    (request,) = _each_event(delivery.raw)
    assert isinstance(request, RenewalRequest)
    assert (request.name, request.version, request.trigger) == ("web-frontend", _version(event), "expired")


def test_new_version_created_is_delivered_and_ignored_by_the_product(http_receiver: HttpReceiver, publisher) -> None:
    path, url = http_receiver.endpoint()
    publisher.subscribe(url)
    publisher.publish(_event("CertificateNewVersionCreated"))
    assert publisher.flush()
    (delivery,) = http_receiver.notifications(path)
    (result,) = _each_event(delivery.raw)
    assert isinstance(result, Ignored) and result.reason == "new_version_created"


def test_payload_has_the_shape_of_the_published_sample(http_receiver: HttpReceiver, publisher) -> None:
    sample = json.loads(CLEAN_SAMPLE.read_text())
    path, url = http_receiver.endpoint()
    publisher.subscribe(url)
    event = _event()
    publisher.publish(event)
    assert publisher.flush()
    (sent,) = http_receiver.notifications(path)[0].body
    assert list(sent) == list(sample)
    assert list(sent["data"]) == list(sample["data"])
    assert sent["data"]["Id"] == f"{VAULT_URL}/certificates/web-frontend/{_version(event)}"
    assert (sent["data"]["NBF"], sent["data"]["EXP"]) == ("1714557600", "1722333600")
    assert sent["eventTime"] == "2024-07-01T12:00:00.1234560Z"
    assert re.fullmatch(r"[0-9a-f-]{36}", sent["id"])


def test_failing_receiver_is_retried_until_it_accepts(http_receiver: HttpReceiver, publisher) -> None:
    path, url = http_receiver.endpoint()
    publisher.subscribe(url)
    http_receiver.script(path, [500, 0, 200])
    publisher.publish(_event())
    assert publisher.flush()
    attempts = http_receiver.notifications(path)
    assert [a.headers["aeg-delivery-count"] for a in attempts] == ["0", "1", "2"]
    assert len({a.raw for a in attempts}) == 1
    (logged,) = publisher.deliveries()
    assert (logged["status"], logged["attempts"], logged["last_status_code"]) == ("delivered", 3, 200)


def test_receiver_that_keeps_failing_is_dead_lettered(http_receiver: HttpReceiver, publisher) -> None:
    path, url = http_receiver.endpoint()
    publisher.subscribe(url)
    http_receiver.script(path, [503] * 10)
    publisher.publish(_event())
    assert publisher.flush()
    (logged,) = publisher.deliveries()
    assert (logged["status"], logged["attempts"], logged["last_error"]) == ("dead-lettered", 4, "HTTP 503")
    assert len(http_receiver.notifications(path)) == 4


def test_bad_request_is_not_retried(http_receiver: HttpReceiver, publisher) -> None:
    path, url = http_receiver.endpoint()
    publisher.subscribe(url)
    http_receiver.script(path, [400, 200])
    publisher.publish(_event())
    assert publisher.flush()
    assert [(d["status"], d["attempts"]) for d in publisher.deliveries()] == [("dead-lettered", 1)]


def test_event_type_filter(http_receiver: HttpReceiver, publisher) -> None:
    expired_path, expired_url = http_receiver.endpoint()
    every_path, every_url = http_receiver.endpoint()
    publisher.subscribe(expired_url, event_types=["Microsoft.KeyVault.CertificateExpired"])
    publisher.subscribe(every_url, schema=CLOUD_EVENTS_SCHEMA)
    publisher.publish(_event("CertificateNearExpiry"))
    publisher.publish(_event("CertificateExpired"))
    assert publisher.flush()
    assert [n.body[0]["eventType"] for n in http_receiver.notifications(expired_path)] == [
        "Microsoft.KeyVault.CertificateExpired"
    ]
    assert sorted(n.body["type"] for n in http_receiver.notifications(every_path)) == [
        "Microsoft.KeyVault.CertificateExpired",
        "Microsoft.KeyVault.CertificateNearExpiry",
    ]
    assert len(publisher.deliveries()) == 3


def test_one_event_id_for_every_subscription(http_receiver: HttpReceiver, publisher) -> None:
    first_path, first_url = http_receiver.endpoint()
    second_path, second_url = http_receiver.endpoint()
    publisher.subscribe(first_url)
    publisher.subscribe(second_url, schema=CLOUD_EVENTS_SCHEMA)
    publisher.publish(_event())
    assert publisher.flush()
    ids = {
        http_receiver.notifications(first_path)[0].body[0]["id"],
        http_receiver.notifications(second_path)[0].body["id"],
    }
    assert len(ids) == 1


def test_flush_times_out_while_a_retry_is_waiting_and_close_cancels_it(http_receiver: HttpReceiver) -> None:
    path, url = http_receiver.endpoint()
    slow = EventGridPublisher(event_types=CERTIFICATE_EVENT_TYPES, retry_delays=(60.0,))
    try:
        slow.subscribe(url)
        http_receiver.script(path, [500])
        slow.publish(_event())
        assert slow.flush(timeout=0.3) is False
        assert [d["status"] for d in slow.deliveries()] == ["pending"]
    finally:
        slow.close()
    assert [d["status"] for d in slow.deliveries()] == ["cancelled"]


@pytest.mark.parametrize("schema", [EVENT_GRID_SCHEMA, CLOUD_EVENTS_SCHEMA])
def test_endpoint_that_fails_the_handshake_is_not_subscribed(
    http_receiver: HttpReceiver, publisher, schema: str
) -> None:
    path, url = http_receiver.endpoint()
    http_receiver.refuse(path)
    with pytest.raises(SubscriptionError, match=r"validation|WebHook-Allowed-Origin"):
        publisher.subscribe(url, schema=schema)
    assert publisher.subscriptions() == []


@pytest.mark.parametrize(
    ("endpoint", "kwargs", "message"),
    [
        ("http://example.com/api", {}, "loopback"),
        ("ftp://127.0.0.1/api", {}, "loopback"),
        ("http://127.0.0.1:99999/api", {}, "not a URL"),
        ("http://127.0.0.1:1/api", {"schema": "Avro"}, "unknown schema"),
        ("http://127.0.0.1:1/api", {"event_types": ["SecretNearExpiry"]}, "unknown event type"),
        ("http://127.0.0.1:1/api", {"event_types": []}, "empty"),
    ],
)
def test_subscription_arguments_are_checked(publisher, endpoint: str, kwargs: dict, message: str) -> None:
    with pytest.raises(SubscriptionError, match=message):
        publisher.subscribe(endpoint, **kwargs)


def test_unreachable_endpoint_cannot_be_subscribed(publisher) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SubscriptionError, match="cannot reach"):
        publisher.subscribe(f"http://127.0.0.1:{port}/api")


def test_https_endpoint_is_trusted_through_the_ca_bundle(receiver_tls: tuple[HttpReceiver, TlsMaterial]) -> None:
    tls_receiver, material = receiver_tls
    path, url = tls_receiver.endpoint()
    untrusting = EventGridPublisher(event_types=CERTIFICATE_EVENT_TYPES)
    try:
        with pytest.raises(SubscriptionError, match="cannot reach"):
            untrusting.subscribe(url)
    finally:
        untrusting.close()
    trusting = EventGridPublisher(event_types=CERTIFICATE_EVENT_TYPES, ca_bundle=str(material.ca_pem))
    try:
        trusting.subscribe(url)
        trusting.publish(_event())
        assert trusting.flush()
    finally:
        trusting.close()
    (delivery,) = tls_receiver.notifications(path)
    (request,) = _each_event(delivery.raw)
    assert isinstance(request, RenewalRequest) and request.name == "web-frontend"


def test_unknown_event_type_is_refused_at_publish(publisher) -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        publisher.publish(_event("SecretNearExpiry"))


def test_the_publisher_knows_no_key_vault(http_receiver: HttpReceiver) -> None:
    """Any source's events: the topic is the event's resource under the publisher's subscription and group."""
    path, url = http_receiver.endpoint()
    made_type = "Contoso.Widgets.WidgetMade"
    other = EventGridPublisher(event_types=(made_type,), subscription_id="sub-1", resource_group="rg")
    try:
        assert other.subscribe(url, event_types=["WidgetMade"])["event_types"] == [made_type]
        made = datetime(2024, 7, 1, tzinfo=UTC)
        other.publish(Event("Contoso.Widgets/widgets/w1", "w1", made_type, made, {"Size": 3}))
        assert other.flush()
        with pytest.raises(ValueError, match="unknown event type"):
            other.publish(_event())
    finally:
        other.close()
    ((sent,),) = [n.body for n in http_receiver.notifications(path)]
    assert (sent["topic"], sent["subject"], sent["data"]) == (
        "/subscriptions/sub-1/resourceGroups/rg/providers/Contoso.Widgets/widgets/w1",
        "w1",
        {"Size": 3},
    )
