"""The host webhook's handshakes and delivery checks as pure functions, against the published samples and the
delivery-level cases of the malformed-event corpus."""

from __future__ import annotations

import json
from email.message import Message
from http import HTTPStatus
from pathlib import Path

import pytest

from certlc.host.eventgrid_protocol import (
    ANY_ORIGIN,
    MAX_DELIVERY_BYTES,
    MAX_EVENTS_PER_DELIVERY,
    MAX_JSON_DEPTH,
    Refused,
    abuse_protection_headers,
    answer_validation,
    check_envelope,
    content_length,
    decode_delivery,
    validation_code,
    validation_response,
)

CORPUS = Path(__file__).resolve().parents[1] / "data" / "events"
SAMPLES = CORPUS / "reference"
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


def _refused(call, *args, **kwargs) -> Refused:
    with pytest.raises(Refused) as caught:
        call(*args, **kwargs)
    return caught.value


def _headers(*pairs: tuple[str, str]) -> Message:
    message = Message()
    for name, value in pairs:
        message[name] = value
    return message


# --- handshakes ----------------------------------------------------------------------------------------------


def test_validation_code_and_response() -> None:
    code = validation_code(VALIDATION)
    assert validation_response(code) == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}


def test_the_published_validation_sample_gets_the_published_answer() -> None:
    body = (SAMPLES / "subscription-validation-event.eventgrid.json").read_bytes()
    expected = json.loads((SAMPLES / "subscription-validation-response.json").read_text())
    assert answer_validation(decode_delivery(body)) == expected


def test_ordinary_events_have_no_validation_code() -> None:
    assert validation_code({**VALIDATION, "eventType": "Microsoft.KeyVault.CertificateExpired"}) is None
    assert validation_code("not an event") is None
    refused = _refused(answer_validation, [{**VALIDATION, "eventType": "Microsoft.KeyVault.CertificateExpired"}])
    assert (refused.status, refused.reason) == (HTTPStatus.BAD_REQUEST, "not_a_validation_event")
    assert _refused(answer_validation, []).reason == "not_a_validation_event"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "missing_field"),
        ({}, "missing_field"),
        ({"validationCode": 7}, "wrong_field_type"),
        ({"validationCode": "has spaces in it"}, "wrong_field_type"),
    ],
)
def test_malformed_validation_event_is_refused(data: object, reason: str) -> None:
    refused = _refused(answer_validation, [{**VALIDATION, "data": data}])
    assert (refused.status, refused.reason) == (HTTPStatus.BAD_REQUEST, reason)


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
    refused = _refused(abuse_protection_headers, headers)
    assert (refused.status, refused.reason) == (HTTPStatus.BAD_REQUEST, reason)


def test_any_origin_when_asked() -> None:
    headers = abuse_protection_headers({"WebHook-Request-Origin": "sender.example"}, allowed_origins=ANY_ORIGIN)
    assert headers["WebHook-Allowed-Origin"] == "sender.example"


# --- the delivery ------------------------------------------------------------------------------------------


def _delivery_cases() -> list[dict]:
    cases = [c for c in json.loads((CORPUS / "manifest.json").read_text())["cases"] if "delivery_reason" in c]
    assert len(cases) >= 7
    return cases


@pytest.mark.parametrize("case", _delivery_cases(), ids=lambda c: c["file"])
def test_malformed_corpus_delivery_gives_its_specific_reason(case: dict) -> None:
    refused = _refused(decode_delivery, (CORPUS / case["file"]).read_bytes())
    assert (refused.status, refused.reason) == (HTTPStatus.BAD_REQUEST, case["delivery_reason"]), refused.message


def test_a_delivery_is_an_array_of_objects_or_one_object_kept_as_sent() -> None:
    event = {"id": "1", "topic": "t", "eventType": "x", "data": {"ObjectName ": "web"}}
    assert decode_delivery(json.dumps([event, event]).encode()) == [event, event]
    assert decode_delivery(b"\xef\xbb\xbf" + json.dumps(event).encode()) == [event]
    assert list(decode_delivery(json.dumps(event).encode())[0]["data"]) == ["ObjectName "]


def test_an_array_with_a_non_object_is_refused() -> None:
    refused = _refused(decode_delivery, (CORPUS / "mixed-array.json").read_bytes())
    assert (refused.reason, refused.message) == ("not_an_object", "event 1 is a str, not a JSON object")


def test_not_utf8_is_not_json() -> None:
    assert _refused(decode_delivery, b'{"id": "\xff"}').reason == "not_json"


def test_oversized_delivery_is_refused_before_parsing() -> None:
    refused = _refused(decode_delivery, b"[" + b" " * MAX_DELIVERY_BYTES + b"]")
    assert (refused.status, refused.reason) == (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too_large")


def test_at_most_5000_events() -> None:
    assert len(decode_delivery(json.dumps([{}] * MAX_EVENTS_PER_DELIVERY).encode())) == MAX_EVENTS_PER_DELIVERY
    refused = _refused(decode_delivery, json.dumps([{}] * (MAX_EVENTS_PER_DELIVERY + 1)).encode())
    assert (refused.status, refused.reason) == (HTTPStatus.BAD_REQUEST, "too_many_events")


def _nested(depth: int) -> bytes:
    """An array holding one event whose data nests to ``depth`` levels in all."""
    return b'[{"data": ' + b'{"a": ' * (depth - 3) + b"{}" + b"}" * (depth - 3) + b"}]"


def test_json_nesting_is_limited() -> None:
    assert decode_delivery(_nested(MAX_JSON_DEPTH))
    for body in (_nested(MAX_JSON_DEPTH + 1), b"[" * 100_000 + b"]" * 100_000):
        refused = _refused(decode_delivery, body)
        assert (refused.status, refused.reason) == (HTTPStatus.BAD_REQUEST, "too_deep")


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ((), HTTPStatus.LENGTH_REQUIRED, "length_required"),
        ((("Transfer-Encoding", "chunked"),), HTTPStatus.LENGTH_REQUIRED, "length_required"),
        ((("Content-Length", "12abc"),), HTTPStatus.BAD_REQUEST, "invalid_length"),
        ((("Content-Length", "-1"),), HTTPStatus.BAD_REQUEST, "invalid_length"),
        ((("Content-Length", "5"), ("Content-Length", "6")), HTTPStatus.BAD_REQUEST, "invalid_length"),
        ((("Content-Length", str(MAX_DELIVERY_BYTES + 1)),), HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too_large"),
        ((("Content-Length", "9" * 40),), HTTPStatus.BAD_REQUEST, "invalid_length"),
    ],
)
def test_content_length_is_checked_first(headers: tuple, status: HTTPStatus, reason: str) -> None:
    refused = _refused(content_length, _headers(*headers))
    assert (refused.status, refused.reason) == (status, reason)


def test_content_length_within_the_limit() -> None:
    assert content_length(_headers(("Content-Length", str(MAX_DELIVERY_BYTES)))) == MAX_DELIVERY_BYTES
    assert content_length(_headers(("Content-Length", " 7 "), ("Content-Length", "7"))) == 7


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"id": "1"}, "unknown_schema"),
        ({"id": "1", "eventType": "x"}, "missing_field"),
        ({"specversion": "1.0", "id": "1", "type": "x"}, "missing_field"),
    ],
)
def test_an_event_needs_its_schemas_envelope(event: dict, reason: str) -> None:
    assert _refused(check_envelope, event).reason == reason


def test_both_envelopes_pass() -> None:
    check_envelope({"id": "1", "topic": "t", "eventType": "x"})
    check_envelope({"specversion": "1.0", "id": "1", "source": "s", "type": "x"})
    sample = json.loads((SAMPLES / "certificate-derived" / "certificate-near-expiry.cloudevents.json").read_text())
    for event in sample:
        check_envelope(event)
