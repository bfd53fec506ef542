"""Certificate events raised on the emulated clock, recorded by a fake and delivered by Event Grid."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from azure.keyvault.certificates import CertificateClient, CertificatePolicy
from localazure.emulators.keyvault import start
from localazure.emulators.keyvault.control import EmulatorControl
from localazure.emulators.keyvault.emulator import Emulator

from renewal.clients import StaticTokenCredential
from renewal.eventgrid.schema import CERTIFICATE_NEW_VERSION_CREATED
from tests.fixtures.keyvault import clear_challenge_caches
from tests.fixtures.mail import HttpReceiver

DAY = 86400


class RecordingPublisher:
    """Stands in for the Event Grid publisher: remembers what the emulator published."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def publish(self, event: Any) -> None:
        self.events.append(event)

    def of(self, name: str) -> list[str]:
        """The event types raised for certificate ``name``, without ``Microsoft.KeyVault.``."""
        return [e.event_type.removeprefix("Microsoft.KeyVault.") for e in self.events if e.subject == name]


def client_for(emulator: Emulator) -> CertificateClient:
    """An SDK client that sees the bearer challenge afresh."""
    clear_challenge_caches()
    return CertificateClient(
        emulator.url,
        StaticTokenCredential(emulator.token),
        connection_verify=emulator.ca_bundle,
        verify_challenge_resource=False,
    )


@pytest.fixture
def recorded(tmp_path) -> Iterator[tuple[Emulator, RecordingPublisher, CertificateClient, EmulatorControl]]:
    publisher = RecordingPublisher()
    emulator = start(tmp_path / "state", publisher=publisher)
    client = client_for(emulator)
    control = EmulatorControl(emulator.admin_url, emulator.ca_bundle)
    yield emulator, publisher, client, control
    client.close()
    control.close()
    emulator.stop()


def create(client: CertificateClient, name: str, months: int) -> Any:
    policy = CertificatePolicy(issuer_name="Self", subject=f"CN={name}", validity_in_months=months)
    return client.begin_create_certificate(name, policy, _polling_interval=0.01).result()


def test_near_expiry_and_expired_once_each(recorded):
    emulator, publisher, client, control = recorded
    cert = create(client, "app", 2)
    assert publisher.of("app") == ["CertificateNewVersionCreated"]
    exp = int(cert.properties.expires_on.timestamp())
    now = emulator.clock.epoch()

    control.advance(exp - now - 31 * DAY)
    assert publisher.of("app") == ["CertificateNewVersionCreated"]
    control.advance(2 * DAY)
    assert publisher.of("app") == ["CertificateNewVersionCreated", "CertificateNearExpiry"]
    control.advance(DAY)
    assert publisher.of("app").count("CertificateNearExpiry") == 1
    control.advance(40 * DAY)
    assert publisher.of("app") == ["CertificateNewVersionCreated", "CertificateNearExpiry", "CertificateExpired"]
    control.advance(400 * DAY)
    assert len(publisher.of("app")) == 3

    expired = publisher.events[-1]
    assert (expired.resource, expired.data["VaultName"], expired.data["Version"]) == (
        "Microsoft.KeyVault/vaults/kv1",
        "kv1",
        cert.properties.version,
    )
    assert expired.data["Id"] == f"{emulator.url}/certificates/app/{cert.properties.version}"
    assert (expired.data["NBF"], expired.data["EXP"]) == (str(int(cert.properties.not_before.timestamp())), str(exp))
    assert expired.event_time.timestamp() >= exp


def test_only_the_current_version_raises_expiry(recorded):
    emulator, publisher, client, control = recorded
    old = create(client, "rotated", 2)
    new = create(client, "rotated", 24)
    control.advance(int(old.properties.expires_on.timestamp()) - emulator.clock.epoch() + DAY)
    assert publisher.of("rotated") == ["CertificateNewVersionCreated", "CertificateNewVersionCreated"]

    control.advance(int(new.properties.expires_on.timestamp()) - emulator.clock.epoch() + DAY)
    expiring = [e.data["Version"] for e in publisher.events if e.event_type != CERTIFICATE_NEW_VERSION_CREATED]
    assert expiring == [new.properties.version, new.properties.version]


def test_a_jump_past_expiry_raises_both_in_order(recorded):
    _emulator, publisher, client, control = recorded
    cert = create(client, "jump", 1)
    control.set_now(cert.properties.expires_on.replace(year=cert.properties.expires_on.year + 1).isoformat())
    assert publisher.of("jump")[1:] == ["CertificateNearExpiry", "CertificateExpired"]


def test_a_restart_does_not_raise_again_what_the_state_folder_records(tmp_path):
    """The state folder keeps the raised events by their short names (the format state folders already hold)."""
    state = tmp_path / "state"
    first = RecordingPublisher()
    with start(state, publisher=first) as emulator, client_for(emulator) as client:
        cert = create(client, "kept", 1)
        emulator.clock.set(cert.properties.expires_on + timedelta(days=1))
    assert first.of("kept") == ["CertificateNewVersionCreated", "CertificateNearExpiry", "CertificateExpired"]
    recorded = json.loads((state / "vaults" / "kv1" / "kept.json").read_text())
    assert recorded["versions"][-1]["events_sent"] == ["CertificateNearExpiry", "CertificateExpired"]

    again = RecordingPublisher()
    with start(state, publisher=again) as emulator:
        emulator.events.check_expiry()
    assert again.events == []


def test_real_event_grid_delivery_in_both_schemas(tmp_path, http_receiver: HttpReceiver):
    grid_path, grid_url = http_receiver.endpoint()
    cloud_path, cloud_url = http_receiver.endpoint()
    with start(tmp_path / "state") as emulator:
        control = EmulatorControl(emulator.admin_url, emulator.ca_bundle)
        control.subscribe(grid_url, "EventGridSchema", ["CertificateNearExpiry"])
        control.subscribe(cloud_url, "CloudEventSchemaV1_0")
        assert len(control.call("GET", "subscriptions")) == 2
        client = client_for(emulator)
        cert = create(client, "delivered", 2)
        control.advance(int(cert.properties.expires_on.timestamp()) - emulator.clock.epoch() - 10 * DAY)
        assert control.flush_events()
        log = control.events()
        client.close()
        control.close()

    grid = [delivery.body for delivery in http_receiver.notifications(grid_path)]
    cloud = [delivery.body for delivery in http_receiver.notifications(cloud_path)]
    assert [e["eventType"] for batch in grid for e in batch] == ["Microsoft.KeyVault.CertificateNearExpiry"]
    assert grid[0][0]["data"]["ObjectName"] == "delivered"
    assert [e["type"] for e in cloud] == [
        "Microsoft.KeyVault.CertificateNewVersionCreated",
        "Microsoft.KeyVault.CertificateNearExpiry",
    ]
    assert cloud[1]["data"]["Version"] == cert.properties.version
    assert {entry["status"] for entry in log} == {"delivered"}
