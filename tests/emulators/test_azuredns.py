"""The Azure DNS emulator: the ARM operations through azure-mgmt-dns and raw HTTPS, and its name servers over UDP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceModifiedError, ResourceNotFoundError
from azure.mgmt.dns import DnsManagementClient
from azure.mgmt.dns.models import ARecord, RecordSet, TxtRecord
from dnslib import QTYPE, RCODE, DNSRecord
from localazure.emulators.azuredns import AzureDnsEmulator

from renewal.clients import StaticTokenCredential

pytestmark = pytest.mark.timeout(60)

SUB, GROUP, ZONE = "sub-emu", "rg-emu", "emu.certlc.test"
API = "?api-version=2018-05-01"
CONTRIBUTOR, TXT_WRITER = "certlc-local-dns-contributor", "certlc-local-officer"  # the emulator's default tokens


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureDnsEmulator]:
    with AzureDnsEmulator(tmp_path_factory.mktemp("azuredns")) as running:
        running.add_zone(SUB, GROUP, ZONE)
        yield running


def client(emulator: AzureDnsEmulator, token: str = CONTRIBUTOR) -> DnsManagementClient:
    return DnsManagementClient(
        StaticTokenCredential(token), SUB, base_url=emulator.url, connection_verify=str(emulator.ca_bundle)
    )


def ask(emulator: AzureDnsEmulator, name: str, qtype: str, server: int = 0) -> DNSRecord:
    question = DNSRecord.question(name, qtype)
    return DNSRecord.parse(question.send("127.0.0.1", emulator.name_servers[server].port, timeout=3))


def raw(emulator: AzureDnsEmulator, method: str, path: str, token: str | None = TXT_WRITER, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{emulator.url}/subscriptions/{SUB}/resourceGroups/{GROUP}/providers/Microsoft.Network/dnsZones/{path}"
    return requests.request(method, url, headers=headers, verify=str(emulator.ca_bundle), timeout=10, **kwargs)


def test_record_sets_round_trip_with_etags_and_are_served_over_dns(emulator) -> None:
    sets = client(emulator).record_sets
    created = sets.create_or_update(
        GROUP, ZONE, "_acme-challenge.www", "TXT", RecordSet(ttl=60, txt_records=[TxtRecord(value=["one"])])
    )
    assert created.fqdn == f"_acme-challenge.www.{ZONE}." and created.etag

    updated = sets.create_or_update(
        GROUP,
        ZONE,
        "_acme-challenge.www",
        "TXT",
        RecordSet(ttl=60, txt_records=[TxtRecord(value=["one"]), TxtRecord(value=["two"])]),
        if_match=created.etag,
    )
    assert updated.etag != created.etag
    answer = ask(emulator, f"_acme-challenge.www.{ZONE}", "TXT")
    assert answer.header.aa == 1
    assert sorted(str(rr.rdata) for rr in answer.rr) == ['"one"', '"two"'] and answer.rr[0].ttl == 60

    with pytest.raises(HttpResponseError) as stale:
        sets.create_or_update(GROUP, ZONE, "_acme-challenge.www", "TXT", RecordSet(ttl=1), if_match=created.etag)
    assert stale.value.status_code == 412
    with pytest.raises(HttpResponseError) as exists:
        sets.create_or_update(GROUP, ZONE, "_acme-challenge.www", "TXT", RecordSet(ttl=1), if_none_match="*")
    assert exists.value.status_code == 412
    with pytest.raises(ResourceModifiedError):
        sets.delete(
            GROUP, ZONE, "_acme-challenge.www", "TXT", if_match=created.etag, error_map={412: ResourceModifiedError}
        )

    sets.delete(GROUP, ZONE, "_acme-challenge.www", "TXT", if_match=updated.etag)
    with pytest.raises(ResourceNotFoundError):
        sets.get(GROUP, ZONE, "_acme-challenge.www", "TXT")
    assert ask(emulator, f"_acme-challenge.www.{ZONE}", "TXT").header.rcode == RCODE.NXDOMAIN
    assert raw(emulator, "DELETE", f"{ZONE}/TXT/_acme-challenge.www{API}").status_code == 204  # nothing left to delete


def test_a_records_and_the_zone_as_azure_shows_them(emulator) -> None:
    dns = client(emulator)
    dns.record_sets.create_or_update(
        GROUP, ZONE, "www", "A", RecordSet(ttl=300, a_records=[ARecord(ipv4_address="127.0.0.1")])
    )
    answer = ask(emulator, f"www.{ZONE}", "A")
    assert [(QTYPE[rr.rtype], str(rr.rdata)) for rr in answer.rr] == [("A", "127.0.0.1")]
    assert ask(emulator, f"www.{ZONE}", "TXT").header.rcode == RCODE.NOERROR  # the name exists, no TXT
    assert ask(emulator, "www.elsewhere.test", "A").header.rcode == RCODE.REFUSED  # not a hosted zone

    zone = dns.zones.get(GROUP, ZONE)
    assert zone.name_servers[0] == "ns1-01.azure-dns.com." and zone.number_of_record_sets >= 1
    dns.record_sets.delete(GROUP, ZONE, "www", "A")


def test_a_frozen_name_server_keeps_serving_the_old_zone(tmp_path) -> None:
    with AzureDnsEmulator(tmp_path, name_servers=2) as two:
        two.add_zone(SUB, GROUP, ZONE)
        two.name_servers[1].freeze()
        client(two).record_sets.create_or_update(
            GROUP, ZONE, "new", "TXT", RecordSet(ttl=60, txt_records=[TxtRecord(value=["v"])])
        )
        assert len(ask(two, f"new.{ZONE}", "TXT", server=0).rr) == 1
        assert ask(two, f"new.{ZONE}", "TXT", server=1).header.rcode == RCODE.NXDOMAIN
        two.name_servers[1].thaw()
        assert len(ask(two, f"new.{ZONE}", "TXT", server=1).rr) == 1


@pytest.mark.parametrize(
    "body,message",
    [
        (None, "must be a JSON object"),
        ({"properties": {"TTL": "60"}}, "at properties.TTL"),
        ({"properties": {"TXTRecords": [{"value": "not-a-list"}]}}, "at properties.TXTRecords.0.value"),
        ({"properties": {"TXTRecords": [{"value": [None]}]}}, "at properties.TXTRecords.0.value.0"),
        ({"properties": {"ARecords": [{"ipv4Address": "127.0.0.1"}]}}, "of type TXT cannot carry ARecords"),
    ],
)
def test_bodies_are_checked_against_the_specification(emulator, body, message) -> None:
    response = raw(emulator, "PUT", f"{ZONE}/TXT/bad{API}", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "BadRequest" and message in response.json()["error"]["message"]


def test_an_a_record_must_be_an_ipv4_address(emulator) -> None:
    response = raw(
        emulator,
        "PUT",
        f"{ZONE}/A/bad{API}",
        token=CONTRIBUTOR,
        json={"properties": {"ARecords": [{"ipv4Address": "::1"}]}},
    )
    assert response.status_code == 400 and "not a valid IPv4 address" in response.json()["error"]["message"]


def test_the_api_version_is_required_and_checked(emulator) -> None:
    missing = raw(emulator, "GET", ZONE)
    assert (missing.status_code, missing.json()["error"]["code"]) == (400, "MissingApiVersionParameter")
    unknown = raw(emulator, "GET", f"{ZONE}?api-version=2099-01-01")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (400, "InvalidApiVersionParameter")


def test_a_token_is_required_and_roles_are_enforced(emulator) -> None:
    anonymous = raw(emulator, "GET", f"{ZONE}{API}", token=None)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Bearer ")
    assert raw(emulator, "GET", f"{ZONE}{API}", token="forged").status_code == 401
    # the custom role: the zone and TXT record sets only
    assert raw(emulator, "GET", f"{ZONE}{API}").status_code == 200
    denied = raw(emulator, "PUT", f"{ZONE}/A/www{API}", json={"properties": {"ARecords": []}})
    assert denied.status_code == 403 and "Microsoft.Network/dnsZones/A/write" in denied.json()["error"]["message"]
    reader = raw(emulator, "PUT", f"{ZONE}/TXT/x{API}", token="certlc-local-reader", json={"properties": {}})
    assert reader.status_code == 403
    assert raw(emulator, "GET", f"{ZONE}{API}", token="certlc-local-none").status_code == 403


def test_a_zone_it_does_not_host_is_not_found(emulator) -> None:
    response = raw(emulator, "GET", f"nowhere.test{API}")
    assert response.status_code == 404 and response.json()["error"]["code"] == "ResourceNotFound"
