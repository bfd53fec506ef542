"""dns-01 through Azure DNS: the solver against the Azure DNS emulator, and end to end with pebble validating
over real DNS (its ``-dnsserver`` is the emulator's name server), no ``PEBBLE_VA_ALWAYS_VALID``."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator

import pytest
from localazure.emulators.azuredns import AzureDnsEmulator

from localazure import servers, tools
from renewal.ca.acme import AcmeAuthority
from renewal.ca.base import CaConfigError, CaUnavailable, Denied, Issued
from renewal.ca.dns01 import (
    AzureDnsSolver,
    DnsZone,
    NameServer,
    parse_name_servers,
    parse_zones,
    propagation_gap,
    record_name,
    solver_from_env,
    zone_for,
)
from renewal.clients import ConnectionConfigError, StaticTokenCredential
from tests.fixtures.servers import make_csr, serve_or_skip, verify_chain

pytestmark = [pytest.mark.pebble, pytest.mark.timeout(120)]

SUBSCRIPTION = "00000000-0000-0000-0000-0000000000d1"
GROUP = "dns-rg"
ZONE = "dns01.certlc.test"
OTHER_ZONE = "other.certlc.test"  # in Azure DNS, but not configured for certlc
TXT_WRITER = "certlc-local-officer"  # the emulator's token for the template's custom role


@pytest.fixture(scope="module")
def azure_dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureDnsEmulator]:
    """Two name servers: the first always current, the second frozen by the tests that need a lagging one."""
    with AzureDnsEmulator(tmp_path_factory.mktemp("azuredns"), name_servers=2) as emulator:
        emulator.add_zone(SUBSCRIPTION, GROUP, ZONE)
        emulator.add_zone(SUBSCRIPTION, GROUP, OTHER_ZONE)
        yield emulator


@pytest.fixture(scope="module")
def current_ns(azure_dns: AzureDnsEmulator) -> NameServer:
    return NameServer("127.0.0.1", azure_dns.name_servers[0].port)


@pytest.fixture(scope="module")
def lagging_ns(azure_dns: AzureDnsEmulator) -> Iterator[NameServer]:
    server = azure_dns.name_servers[1]
    server.freeze()
    yield NameServer("127.0.0.1", server.port)
    server.thaw()


def _pebble(tmp_path_factory: pytest.TempPathFactory, dns_server: str) -> Iterator[servers.PebbleServer]:
    start = functools.partial(
        servers.start_pebble, tmp_path_factory.mktemp("pebble-dns01"), always_valid=False, dns_server=dns_server
    )
    with serve_or_skip("pebble", tools.ensure_pebble, start) as server:
        yield server


@pytest.fixture(scope="module")
def dns_pebble(tmp_path_factory, current_ns) -> Iterator[servers.PebbleServer]:
    """pebble validating dns-01 against the zone's current name server."""
    yield from _pebble(tmp_path_factory, str(current_ns))


@pytest.fixture(scope="module")
def lagging_pebble(tmp_path_factory, lagging_ns) -> Iterator[servers.PebbleServer]:
    """pebble validating against a name server that stopped receiving the zone's updates."""
    yield from _pebble(tmp_path_factory, str(lagging_ns))


def make_solver(azure_dns: AzureDnsEmulator, *name_servers: NameServer, token: str = TXT_WRITER, **kwargs):
    return AzureDnsSolver(
        parse_zones(f"{ZONE}={SUBSCRIPTION}/{GROUP}"),
        StaticTokenCredential(token),
        endpoint=azure_dns.url,
        ca_bundle=str(azure_dns.ca_bundle),
        name_servers=name_servers,
        **kwargs,
    )


def make_authority(pebble: servers.PebbleServer, solver: AzureDnsSolver, tmp_path) -> AcmeAuthority:
    return AcmeAuthority(
        pebble.directory_url, account_key_path=tmp_path / "account.pem", ca_bundle=str(pebble.ca_bundle), solver=solver
    )


def txt_sets(azure_dns: AzureDnsEmulator) -> dict[str, list[str]]:
    """The zone's TXT record sets as Azure DNS holds them: name -> values."""
    zone = azure_dns.store.zone(SUBSCRIPTION, GROUP, ZONE)
    return {
        name: ["".join(record["value"]) for record in record_set.records]
        for (rtype, name), record_set in zone.record_sets.items()
        if rtype == "TXT"
    }


def txt_puts(azure_dns: AzureDnsEmulator, since: int) -> list[tuple[str, list[str]]]:
    return [
        (request["path"].rsplit("/", 1)[1], ["".join(r["value"]) for r in request["body"]["properties"]["TXTRecords"]])
        for request in azure_dns.arm.requests[since:]
        if request["method"] == "PUT" and "/TXT/" in request["path"]
    ]


# -- end to end with pebble -------------------------------------------------------------------------


def test_pebble_issues_over_real_dns_and_the_records_are_gone_afterwards(
    azure_dns, dns_pebble, current_ns, tmp_path
) -> None:
    since = len(azure_dns.arm.requests)
    authority = make_authority(dns_pebble, make_solver(azure_dns, current_ns), tmp_path)

    result = authority.submit(make_csr(f"www.{ZONE}", ZONE), "server")

    assert isinstance(result, Issued), result
    verify_chain(result.chain_pem, dns_pebble.roots_pem(), f"www.{ZONE}")
    assert {name for name, _ in txt_puts(azure_dns, since)} == {"_acme-challenge.www", "_acme-challenge"}
    assert txt_sets(azure_dns) == {}


def test_a_wildcard_and_its_apex_share_one_record_set(azure_dns, dns_pebble, current_ns, tmp_path) -> None:
    since = len(azure_dns.arm.requests)
    authority = make_authority(dns_pebble, make_solver(azure_dns, current_ns), tmp_path)

    result = authority.submit(make_csr(ZONE, f"*.{ZONE}"), "server")

    assert isinstance(result, Issued), result
    verify_chain(result.chain_pem, dns_pebble.roots_pem(), f"any.{ZONE}")
    puts = txt_puts(azure_dns, since)
    assert [name for name, _ in puts] == ["_acme-challenge"] * 3
    (_, first), (_, merged), (_, after_first_cleanup) = puts
    assert len(first) == 1 and len(merged) == 2 and merged[0] == first[0]  # the second value added, not replaced
    assert after_first_cleanup == merged[1:]  # the first cleanup removed only its own value
    assert txt_sets(azure_dns) == {}


def test_a_value_someone_else_keeps_there_stays(azure_dns, dns_pebble, current_ns, tmp_path) -> None:
    zone = azure_dns.store.zone(SUBSCRIPTION, GROUP, ZONE)
    from localazure.emulators.azuredns.store import RecordSet

    azure_dns.store.put(
        zone, "TXT", "_acme-challenge.kept", RecordSet(3600, {"owner": "dns-team"}, [{"value": ["theirs"]}]), None, None
    )
    authority = make_authority(dns_pebble, make_solver(azure_dns, current_ns), tmp_path)

    assert isinstance(authority.submit(make_csr(f"kept.{ZONE}"), "server"), Issued)

    assert txt_sets(azure_dns) == {"_acme-challenge.kept": ["theirs"]}
    kept = azure_dns.store.get(zone, "TXT", "_acme-challenge.kept")
    assert (kept.ttl, kept.metadata) == (3600, {"owner": "dns-team"})
    azure_dns.store.delete(zone, "TXT", "_acme-challenge.kept", None)


def test_an_invalid_challenge_is_denied_and_still_cleaned_up(azure_dns, lagging_pebble, current_ns, tmp_path) -> None:
    """The solver waits for the one name server it was told about; pebble asks one that lags behind."""
    authority = make_authority(lagging_pebble, make_solver(azure_dns, current_ns), tmp_path)

    result = authority.submit(make_csr(f"lag.{ZONE}"), "server")

    assert isinstance(result, Denied)
    assert "(dns-01): unauthorized" in result.reason and f"_acme-challenge.lag.{ZONE}" in result.reason, result.reason
    assert txt_sets(azure_dns) == {}


def test_a_name_server_that_never_has_the_value_times_out_transient_and_cleaned_up(
    azure_dns, current_ns, lagging_ns
) -> None:
    solver = make_solver(azure_dns, current_ns, lagging_ns, timeout=1.5)

    with pytest.raises(CaUnavailable) as caught:
        solver.present(f"slow.{ZONE}", "token-slow", "value-slow")

    message = str(caught.value)
    assert f"_acme-challenge.slow.{ZONE}" in message and "within 1.5 s" in message
    assert f"{lagging_ns} does not answer it yet" in message and str(current_ns) + " " not in message
    assert txt_sets(azure_dns) == {}


def test_a_name_outside_the_configured_zones_is_a_configuration_error(azure_dns, dns_pebble, tmp_path) -> None:
    since = len(azure_dns.arm.requests)
    authority = make_authority(dns_pebble, make_solver(azure_dns), tmp_path)

    with pytest.raises(CaConfigError, match=rf"no Azure DNS zone for 'www.{OTHER_ZONE}' in CERTLC_ACME_DNS_ZONES"):
        authority.submit(make_csr(f"www.{OTHER_ZONE}"), "server")

    assert azure_dns.arm.requests[since:] == []


# -- the solver on its own ----------------------------------------------------------------------------


def test_an_identity_without_the_role_is_told_which_role_to_assign(azure_dns, current_ns) -> None:
    solver = make_solver(azure_dns, current_ns, token="certlc-local-reader")

    with pytest.raises(CaConfigError) as caught:
        solver.present(f"ro.{ZONE}", "token-ro", "value-ro")

    assert f"may not write the TXT record set _acme-challenge.ro in Azure DNS zone {ZONE}" in str(caught.value)
    assert "assign it the template's DNS TXT role on the zone (403 AuthorizationFailed" in str(caught.value)


def test_a_zone_azure_dns_does_not_have_is_a_configuration_error(azure_dns) -> None:
    solver = AzureDnsSolver(
        parse_zones(f"gone.certlc.test={SUBSCRIPTION}/{GROUP}"),
        StaticTokenCredential(TXT_WRITER),
        endpoint=azure_dns.url,
        ca_bundle=str(azure_dns.ca_bundle),
    )
    with pytest.raises(CaConfigError, match=r"could not read the zone: no Azure DNS zone gone\.certlc\.test"):
        solver.present("www.gone.certlc.test", "t", "v")


def test_without_name_servers_configured_the_zones_own_are_asked(azure_dns) -> None:
    solver = make_solver(azure_dns)
    assert solver._zone_name_servers(parse_zones(f"{ZONE}={SUBSCRIPTION}/{GROUP}")[0]) == (
        NameServer("ns1-01.azure-dns.com"),
        NameServer("ns2-01.azure-dns.net"),
        NameServer("ns3-01.azure-dns.org"),
        NameServer("ns4-01.azure-dns.info"),
    )


def test_concurrent_solvers_on_one_name_keep_each_others_values(azure_dns, current_ns) -> None:
    solvers = [make_solver(azure_dns, current_ns) for _ in range(4)]
    errors: list[BaseException] = []

    def present(index: int) -> None:
        try:
            solvers[index].present(f"race.{ZONE}", f"token-{index}", f"value-{index}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=present, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(txt_sets(azure_dns)["_acme-challenge.race"]) == [f"value-{i}" for i in range(4)]
    solvers[1].cleanup(f"race.{ZONE}", "token-1")
    assert sorted(txt_sets(azure_dns)["_acme-challenge.race"]) == ["value-0", "value-2", "value-3"]
    for index in (0, 2, 3):
        solvers[index].cleanup(f"race.{ZONE}", f"token-{index}")
    assert txt_sets(azure_dns) == {}


def test_the_runtime_builds_a_dns01_solver_from_app_settings(azure_dns, dns_pebble, current_ns, tmp_path) -> None:
    from renewal.clock import utc_now
    from renewal.runtime import ca_factory

    env = {
        "CERTLC_ACME_DIRECTORY": dns_pebble.directory_url,
        "CERTLC_ACME_ACCOUNT_KEY": str(tmp_path / "account.pem"),
        "CERTLC_ACME_CA_BUNDLE": str(dns_pebble.ca_bundle),
        "CERTLC_ACME_CHALLENGE": "dns-01",
        "CERTLC_ACME_DNS_ZONES": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/"
        f"Microsoft.Network/dnsZones/{ZONE}",
        "CERTLC_ACME_DNS_ENDPOINT": azure_dns.url,
        "CERTLC_ACME_DNS_CA_BUNDLE": str(azure_dns.ca_bundle),
        "CERTLC_ACME_DNS_NAMESERVERS": str(current_ns),
        "CERTLC_ACME_DNS_TIMEOUT": "20",
        "CERTLC_LOCAL_TOKEN": TXT_WRITER,
    }
    result = ca_factory(env, utc_now)("acme").submit(make_csr(f"settings.{ZONE}"), "")

    assert isinstance(result, Issued), result
    verify_chain(result.chain_pem, dns_pebble.roots_pem(), f"settings.{ZONE}")
    assert txt_sets(azure_dns) == {}


def test_settings_mistakes_are_refused_with_what_to_fix() -> None:
    from renewal.clock import utc_now
    from renewal.runtime import ca_factory

    base = {"CERTLC_ACME_DIRECTORY": "https://127.0.0.1:1/dir", "CERTLC_ACME_ACCOUNT_KEY": "account.pem"}
    with pytest.raises(CaConfigError, match="CERTLC_ACME_CHALLENGE"):
        ca_factory(base | {"CERTLC_ACME_CHALLENGE": "tls-alpn-01"}, utc_now)("acme")
    with pytest.raises(CaConfigError, match="CERTLC_ACME_DNS_ZONES is not set"):
        ca_factory(base | {"CERTLC_ACME_CHALLENGE": "dns-01"}, utc_now)("acme")
    with pytest.raises(ConnectionConfigError, match="not a loopback address"):
        solver_from_env({"CERTLC_ACME_DNS_ZONES": f"{ZONE}=s/g", "CERTLC_LOCAL_TOKEN": TXT_WRITER})
    with pytest.raises(CaConfigError, match="CERTLC_ACME_DNS_TIMEOUT"):
        solver_from_env({"CERTLC_ACME_DNS_ZONES": f"{ZONE}=s/g", "CERTLC_ACME_DNS_TIMEOUT": "soon"})


# -- the pure parts ---------------------------------------------------------------------------------


def test_zones_are_read_in_both_forms_and_mistakes_name_the_entry() -> None:
    arm_id = "/subscriptions/s2/resourceGroups/rg2/providers/Microsoft.Network/dnszones/Sub.Example.COM."
    assert parse_zones(f"example.com=s1/rg1; {arm_id}") == (
        DnsZone("example.com", "s1", "rg1"),
        DnsZone("sub.example.com", "s2", "rg2"),
    )
    with pytest.raises(CaConfigError, match=r"'example\.com/s1' is neither"):
        parse_zones("example.com/s1")
    with pytest.raises(CaConfigError, match="names a zone twice"):
        parse_zones("example.com=s1/rg1,example.com=s2/rg2")
    with pytest.raises(CaConfigError, match="is not set"):
        parse_zones(" ")


def test_the_longest_configured_zone_holds_a_name_and_gives_the_record_name() -> None:
    zones = parse_zones("example.com=s/g sub.example.com=s/g")
    assert zone_for("a.b.sub.example.com", zones) == zones[1]
    assert zone_for("*.example.com", zones) == zones[0]
    assert zone_for("notexample.com", zones) is None
    assert record_name("a.b.sub.example.com", zones[1]) == "_acme-challenge.a.b"
    assert record_name("*.example.com", zones[0]) == "_acme-challenge"
    assert record_name("Example.com.", zones[0]) == "_acme-challenge"


def test_name_servers_setting() -> None:
    assert parse_name_servers("127.0.0.1:5353, ns1.example.net") == (
        NameServer("127.0.0.1", 5353),
        NameServer("ns1.example.net", 53),
    )
    with pytest.raises(CaConfigError, match="'ns:0' is not host or host:port"):
        parse_name_servers("ns:0")


def test_the_value_is_published_only_when_every_name_server_answers_it() -> None:
    assert propagation_gap({"a:53": frozenset({"v", "w"}), "b:53": frozenset({"v"})}, "v") is None
    assert propagation_gap({"a:53": frozenset({"v"}), "b:53": frozenset()}, "v") == "b:53 does not answer it yet"
    assert propagation_gap({"a:53": "did not answer (timeout)"}, "v") == "a:53 did not answer (timeout)"
    assert propagation_gap({}, "v") == "no name servers to ask"
