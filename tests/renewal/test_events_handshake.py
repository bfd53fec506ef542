"""Subscription validation (Event Grid schema) and CloudEvents abuse protection (OPTIONS)."""

from __future__ import annotations

import json

import pytest

from renewal.events import (
    RejectedEvent,
    abuse_protection_headers,
    parse_delivery,
    validation_code,
    validation_response,
)
from renewal.vaults import parse_allow_list

VALIDATION = {
    "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
    "topic": "/subscriptions/xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
    "subject": "",
    "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6", "validationUrl": "https://example.invalid/"},
    "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
    "eventTime": "2022-10-28T04:23:35.1981776Z",
    "metadataVersion": "1",
    "dataVersion": "1",
}


def test_validation_code_and_response() -> None:
    code = validation_code(VALIDATION)
    assert validation_response(code) == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}


def test_ordinary_events_have_no_validation_code() -> None:
    assert validation_code({**VALIDATION, "eventType": "Microsoft.KeyVault.CertificateExpired"}) is None
    assert validation_code("not an event") is None


@pytest.mark.parametrize("data", [None, {"validationCode": 7}, {"validationCode": "has spaces in it"}, {}])
def test_malformed_validation_event_is_rejected(data: object) -> None:
    result = parse_delivery(json.dumps([{**VALIDATION, "data": data}]), parse_allow_list("kv1"))
    assert result.validation_response is None
    assert len(result.rejected) == 1
    assert result.rejected[0].reason in {"missing_field", "wrong_field_type"}


def test_abuse_protection_echoes_the_origin() -> None:
    headers = abuse_protection_headers({"webhook-request-origin": "eventgrid.azure.net"})
    assert headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    assert headers["WebHook-Allowed-Rate"] == "*"
    limited = abuse_protection_headers({"WebHook-Request-Origin": "EventGrid.azure.net"}, allowed_rate=120)
    assert limited["WebHook-Allowed-Rate"] == "120"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [({}, "missing_field"), ({"WebHook-Request-Origin": "attacker.example"}, "origin_not_allowed")],
)
def test_abuse_protection_refuses(headers: dict, reason: str) -> None:
    with pytest.raises(RejectedEvent) as caught:
        abuse_protection_headers(headers)
    assert caught.value.reason == reason


def test_any_origin_when_asked() -> None:
    headers = abuse_protection_headers({"WebHook-Request-Origin": "sender.example"}, allowed_origins=("*",))
    assert headers["WebHook-Allowed-Origin"] == "sender.example"
