"""Key Vault events, one at a time as the ``event`` function sees them, against the published samples and
the malformed-event corpus (the delivery-level cases are the host webhook's: tests/host)."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from renewal.events import (
    CLOUD_EVENTS_SCHEMA,
    EVENT_GRID_SCHEMA,
    MAX_EVENT_BYTES,
    Ignored,
    RejectedEvent,
    from_functions_event,
    outcome,
    parse_event,
)
from renewal.messages import RenewalRequest
from renewal.vaults import Vault, parse_allow_list

CORPUS = Path(__file__).resolve().parents[1] / "data" / "events"
SAMPLES = CORPUS / "reference"
SAMPLE_VERSION = "ee059b2bb5bc48398a53b168c6cdcb10"
ALLOW = parse_allow_list("sample-kv")


def _samples(pattern: str) -> list[Path]:
    found = sorted(SAMPLES.glob(pattern))
    assert found, f"no reference sample matches {pattern} under {SAMPLES}"
    return found


def _sample(relative: str) -> Path:
    return SAMPLES / relative


def _clean() -> dict:
    return json.loads(_sample("certificate-derived/certificate-near-expiry.eventgrid.clean.json").read_text())


@dataclass
class Outcomes:
    """What the ``event`` function makes of each event of a delivery, called once per event as the host does."""

    requests: list[RenewalRequest] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)
    rejected: list[tuple[int, RejectedEvent]] = field(default_factory=list)  # (position in the delivery, why)


def _events(body: bytes) -> list[Any]:
    decoded = json.loads(body)
    return decoded if isinstance(decoded, list) else [decoded]


def _each_event(body: bytes, allow: dict[str, Vault] = ALLOW) -> Outcomes:
    result = Outcomes()
    for index, event in enumerate(_events(body)):
        try:
            parsed = outcome(parse_event(event, allow))
        except RejectedEvent as exc:
            result.rejected.append((index, exc))
            continue
        (result.ignored if isinstance(parsed, Ignored) else result.requests).append(parsed)
    return result


@pytest.mark.parametrize("path", _samples("certificate-derived/certificate-*expir*.json"), ids=lambda p: p.name)
def test_certificate_samples_become_one_renewal_each(path: Path) -> None:
    result = _each_event(path.read_bytes())
    assert result.rejected == []
    assert len(result.requests) == 1
    request = result.requests[0]
    assert (request.vault, request.name, request.version) == ("sample-kv", "web-frontend", SAMPLE_VERSION)
    assert request.trigger == ("expired" if "expired" in path.name else "near_expiry")
    assert request.event_id == "00eccf70-95a7-4e7c-8299-2eb17ee9ad64"


def test_new_version_created_is_accepted_but_ignored() -> None:
    path = _sample("certificate-derived/certificate-new-version-created.eventgrid.json")
    result = _each_event(path.read_bytes())
    assert (result.requests, result.rejected) == ([], [])
    assert [i.reason for i in result.ignored] == ["new_version_created"]
    assert result.ignored[0].event.version == SAMPLE_VERSION


@pytest.mark.parametrize("path", _samples("secret-new-version-created.*.json"), ids=lambda p: p.name)
def test_published_secret_samples_are_rejected_as_unsupported(path: Path) -> None:
    result = _each_event(path.read_bytes())
    assert result.requests == []
    assert [exc.reason for _, exc in result.rejected] == ["unsupported_event_type"]
    assert "SecretNewVersionCreated" in result.rejected[0][1].message


def test_sample_fields_are_parsed_leniently() -> None:
    path = _sample("certificate-derived/certificate-near-expiry.cloudevents.json")
    event = parse_event(json.loads(path.read_text())[0], ALLOW)
    assert event.schema == CLOUD_EVENTS_SCHEMA
    assert event.short_type == "CertificateNearExpiry"
    assert event.not_before == datetime.fromtimestamp(1559081980, UTC)
    assert event.expires_on == datetime.fromtimestamp(1561673980, UTC)
    assert event.event_time == datetime(2019, 7, 25, 1, 8, 33, 103673, tzinfo=UTC)
    assert event.vault.url == "https://sample-kv.vault.azure.net"


def test_a_validation_event_that_reaches_the_function_renews_nothing() -> None:
    # the host answers the handshake (tests/host/test_eventgrid_protocol.py); were it ever passed on,
    # the function would refuse it
    result = _each_event(_sample("subscription-validation-event.eventgrid.json").read_bytes())
    assert (result.requests, result.ignored) == ([], [])
    assert [exc.reason for _, exc in result.rejected] == ["unsupported_event_type"]


def _manifest() -> dict:
    return json.loads((CORPUS / "manifest.json").read_text())


def _event_cases() -> list[dict]:
    cases = [c for c in _manifest()["cases"] if "delivery_reason" not in c]
    assert len(cases) >= 25
    return cases


@pytest.mark.parametrize("case", _event_cases(), ids=lambda c: c["file"])
def test_malformed_corpus_gives_its_specific_reason(case: dict) -> None:
    allow = parse_allow_list(_manifest()["allow_list"])
    result = _each_event((CORPUS / case["file"]).read_bytes(), allow)
    assert [exc.reason for _, exc in result.rejected] == case["rejected"], [str(e) for _, e in result.rejected]
    assert len(result.requests) == case["accepted"]


def test_corpus_covers_every_file() -> None:
    listed = {c["file"] for c in _manifest()["cases"]}
    assert listed == {p.name for p in CORPUS.iterdir() if p.is_file()} - {"manifest.json"}
    assert len(listed) >= 25


def test_mixed_array_refuses_each_bad_event_and_keeps_the_good_ones() -> None:
    body = (CORPUS / "mixed-array.json").read_bytes()
    result = _each_event(body, parse_allow_list("sample-kv"))
    assert [(index, exc.reason) for index, exc in result.rejected] == [
        (1, "not_an_object"),
        (2, "vault_not_allowed"),
        (3, "not_an_object"),
    ]
    assert _events(body)[2]["id"] == "6f1f5e0c-3a5e-4a0e-9c33-000000000002"  # the id the function logs with it
    assert sorted(r.name for r in result.requests) == ["api-gateway", "web-frontend"]
    assert [r.event_id for r in result.requests] == [_events(body)[0]["id"], _events(body)[4]["id"]]


def test_oversized_event_is_rejected() -> None:
    event = _clean()
    event["data"]["Padding"] = "x" * MAX_EVENT_BYTES
    result = _each_event(json.dumps([event, _clean()]).encode())
    assert [(index, exc.reason) for index, exc in result.rejected] == [(0, "too_large")]
    assert len(result.requests) == 1


def _certificate_version(request: RenewalRequest) -> tuple[str, str, str]:
    return (request.vault.lower(), request.name.lower(), request.version.lower())


def test_duplicates_ask_for_the_same_certificate_version() -> None:
    # Each delivery of the same news asks to renew the same certificate version; the workflow renews a version
    # once (per-certificate lock, then a superseded version is skipped), so duplicates collapse there.
    same_id = _clean()
    same_cert = _clean()
    same_cert["id"] = "another-delivery-of-the-same-news"
    expired = _clean()
    expired["id"] = "expired-1"
    expired["eventType"] = "Microsoft.KeyVault.CertificateExpired"
    result = _each_event(json.dumps([_clean(), same_id, same_cert, expired]).encode())
    assert [r.trigger for r in result.requests] == ["near_expiry", "near_expiry", "near_expiry", "expired"]
    assert {_certificate_version(r) for r in result.requests} == {("sample-kv", "web-frontend", SAMPLE_VERSION)}
    assert [r.event_id for r in result.requests] == [
        "00eccf70-95a7-4e7c-8299-2eb17ee9ad64",
        "00eccf70-95a7-4e7c-8299-2eb17ee9ad64",
        "another-delivery-of-the-same-news",
        "expired-1",
    ]


def test_cloud_event_and_event_grid_forms_of_one_event_ask_for_the_same_renewal() -> None:
    cloud = _sample("certificate-derived/certificate-near-expiry.cloudevents.json")
    events = [parse_event(_clean(), ALLOW), parse_event(json.loads(cloud.read_text())[0], ALLOW)]
    assert {e.schema for e in events} == {EVENT_GRID_SCHEMA, CLOUD_EVENTS_SCHEMA}
    requests = [outcome(event) for event in events]
    assert all(isinstance(r, RenewalRequest) for r in requests)
    first, second = ((r.vault, r.name, r.version, r.trigger, r.event_id) for r in requests)
    assert first == second == ("sample-kv", "web-frontend", SAMPLE_VERSION, "near_expiry", first[4])


def test_allow_list_entry_not_the_event_decides_the_vault_url() -> None:
    allow = parse_allow_list("Sample-KV=https://127.0.0.1:8443")
    event = parse_event(_clean(), allow)
    assert event.vault.url == "https://127.0.0.1:8443"
    assert outcome(event).vault == "Sample-KV"


def test_id_on_the_configured_emulator_url_is_accepted() -> None:
    allow = parse_allow_list("sample-kv=https://127.0.0.1:8443")
    event = _clean()
    event["data"]["Id"] = f"https://127.0.0.1:8443/certificates/web-frontend/{event['data']['Version']}"
    assert parse_event(event, allow).name == "web-frontend"
    event["data"]["Id"] = f"https://127.0.0.1:9999/certificates/web-frontend/{event['data']['Version']}"
    with pytest.raises(RejectedEvent) as caught:
        parse_event(event, allow)
    assert caught.value.reason == "id_mismatch"


@pytest.mark.parametrize("epoch", [1559081980, "1559081980", " 1559081980 ", 1559081980.0])
def test_epochs_accept_numbers_and_digit_strings(epoch: object) -> None:
    event = _clean()
    event["data"]["NBF"] = epoch
    assert parse_event(event, ALLOW).not_before == datetime.fromtimestamp(1559081980, UTC)


@pytest.mark.parametrize("epoch", ["-5", "1e9", "\u0661\u0662", 1.5, 10**13, [1]])
def test_epochs_reject_everything_else(epoch: object) -> None:
    event = _clean()
    event["data"]["EXP"] = epoch
    with pytest.raises(RejectedEvent) as caught:
        parse_event(event, ALLOW)
    assert caught.value.reason == "invalid_timestamp"


def test_the_workers_trigger_values_convert_and_parse() -> None:
    """Both values the worker's converter can hand the event function, built by the converter itself."""
    from azure.functions.meta import Datum

    decode = func.get_binding_registry().get("eventGridTrigger").decode
    clean = _clean()
    cloud = json.loads(_sample("certificate-derived/certificate-near-expiry.cloudevents.json").read_text())[0]
    for body, schema in ((clean, EVENT_GRID_SCHEMA), (cloud, CLOUD_EVENTS_SCHEMA)):
        event = parse_event(from_functions_event(decode(Datum(json.dumps(body), "json"), trigger_metadata={})), ALLOW)
        assert (event.schema, event.name, event.version) == (schema, "web-frontend", SAMPLE_VERSION)
        assert event.event_time is not None and event.event_time.tzinfo is not None


def test_snake_case_keys_are_accepted() -> None:
    clean = _clean()
    clean["event_type"] = clean.pop("eventType")
    clean["event_time"] = clean.pop("eventTime")
    assert parse_event(clean, ALLOW).event_type == "Microsoft.KeyVault.CertificateNearExpiry"


def test_messages_do_not_echo_huge_input() -> None:
    event = copy.deepcopy(_clean())
    event["subject"] = "s" * 5000
    with pytest.raises(RejectedEvent) as caught:
        parse_event(event, ALLOW)
    assert caught.value.reason == "subject_mismatch"
    assert len(str(caught.value)) < 300
