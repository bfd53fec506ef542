"""Queue bodies: our own requests and raw Key Vault events, as JSON or base64 of JSON."""

from __future__ import annotations

import base64
import json

import pytest

from renewal.events import IgnoredQueueMessage, InvalidQueueMessage, parse_queue_message
from renewal.messages import FIELD_LIMITS, InvalidMessage, RenewalRequest
from renewal.vaults import parse_allow_list

ALLOW = parse_allow_list("sample-kv")
VERSION = "ee059b2bb5bc48398a53b168c6cdcb10"
TOPIC = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/sample-kv"
DATA = {
    "Id": f"https://sample-kv.vault.azure.net/certificates/web-frontend/{VERSION}",
    "VaultName": "sample-kv",
    "ObjectType": "Certificate",
    "ObjectName ": "web-frontend",
    "Version": f" {VERSION}",
    "NBF": "1559081980",
    "EXP": "1561673980",
}
EVENT_GRID = {
    "id": "e-1",
    "topic": TOPIC,
    "subject": "web-frontend",
    "eventType": "Microsoft.KeyVault.CertificateNearExpiry",
    "eventTime": "2019-07-25T01:08:33.1036736Z",
    "data": DATA,
    "dataVersion": "1",
    "metadataVersion": "1",
}
CLOUD_EVENT = {
    "specversion": "1.0",
    "id": "e-2",
    "source": TOPIC,
    "subject": "web-frontend",
    "type": "Microsoft.KeyVault.CertificateExpired",
    "time": "2019-07-25T01:08:33.1036736Z",
    "data": DATA,
}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("encode", [str, str.encode, _b64], ids=["json", "bytes", "base64"])
def test_own_request_round_trips(encode) -> None:
    request = RenewalRequest(vault="sample-kv", name="web-frontend", trigger="manual", version=VERSION)
    assert parse_queue_message(encode(request.to_json()), ALLOW) == request


@pytest.mark.parametrize("encode", [str, _b64], ids=["json", "base64"])
@pytest.mark.parametrize(
    ("event", "reason", "event_id"), [(EVENT_GRID, "near_expiry", "e-1"), (CLOUD_EVENT, "expired", "e-2")]
)
def test_raw_event_from_event_grid_queue_subscription(encode, event: dict, reason: str, event_id: str) -> None:
    request = parse_queue_message(encode(json.dumps(event)), ALLOW)
    assert (request.vault, request.name, request.version, request.trigger, request.event_id) == (
        "sample-kv",
        "web-frontend",
        VERSION,
        reason,
        event_id,
    )


def test_new_version_created_is_ignored_not_failed() -> None:
    event = {**EVENT_GRID, "eventType": "Microsoft.KeyVault.CertificateNewVersionCreated"}
    with pytest.raises(IgnoredQueueMessage) as caught:
        parse_queue_message(json.dumps(event), ALLOW)
    assert caught.value.reason == "new_version_created"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "not_json"),
        ("!!! not base64 !!!", "not_base64"),
        (_b64("not json either"), "not_json"),
        ("[1, 2]", "not_an_object"),
        (json.dumps([EVENT_GRID]), "not_an_object"),
        ('{"hello": "world"}', "unknown_message"),
        (json.dumps({"schema": 2, "vault": "sample-kv", "name": "a", "reason": "manual"}), "invalid_request"),
        (json.dumps({"schema": 1, "vault": "evil.com#", "name": "a", "reason": "manual"}), "vault_not_allowed"),
        (json.dumps({"schema": 1, "vault": "sample-kv", "name": "a/../b", "reason": "manual"}), "invalid_object_name"),
        (json.dumps({"schema": 1, "vault": "sample-kv", "name": "a\n", "reason": "manual"}), "invalid_object_name"),
        (
            json.dumps({"schema": 1, "vault": "sample-kv", "name": "a", "reason": "manual", "version": "../x"}),
            "invalid_version",
        ),
        (json.dumps({**EVENT_GRID, "eventType": "Microsoft.KeyVault.SecretNearExpiry"}), "unsupported_event_type"),
        (json.dumps({**EVENT_GRID, "topic": TOPIC.replace("sample-kv", "other-kv")}), "topic_mismatch"),
        ("{" + " " * 70_000 + "}", "too_large"),
    ],
)
def test_anything_else_is_an_invalid_message_with_a_reason(body: str, reason: str) -> None:
    with pytest.raises(InvalidQueueMessage) as caught:
        parse_queue_message(body, ALLOW)
    assert caught.value.reason == reason
    assert isinstance(caught.value, InvalidMessage)


def test_the_trigger_is_written_under_both_names_and_read_from_either() -> None:
    """``trigger`` was ``reason`` in the previous release: messages in flight across an upgrade keep working."""
    request = RenewalRequest(vault="sample-kv", name="web-frontend", trigger="manual", version=VERSION)
    body = json.loads(request.to_json())
    assert (body["trigger"], body["reason"]) == ("manual", "manual")
    legacy = {k: v for k, v in body.items() if k != "trigger"}
    assert parse_queue_message(json.dumps(legacy), ALLOW).trigger == "manual"
    current = {k: v for k, v in body.items() if k != "reason"}
    assert parse_queue_message(json.dumps(current), ALLOW) == request


@pytest.mark.parametrize("field,limit", sorted(FIELD_LIMITS.items()))
def test_every_text_field_of_a_request_is_bounded_when_read(field, limit):
    """A value Key Vault or a tag would refuse later (after the CA signed) is refused at the door instead."""
    body = json.loads(RenewalRequest("kv1", "web", "manual").to_json())
    body[field] = "a" * limit
    assert RenewalRequest.from_dict(dict(body))  # at the limit: accepted
    body[field] = "a" * (limit + 1)
    with pytest.raises(InvalidMessage, match=rf"'{field}' is {limit + 1} characters long, over {limit}"):
        RenewalRequest.from_dict(body)
