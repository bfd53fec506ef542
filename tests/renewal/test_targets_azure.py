"""Target discovery and rollout writes through the official management SDKs, against the consumers emulator, with
the TLS front showing what each service serves before and after."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from localazure.emulators.consumers import ConsumersEmulator, vault_id

from renewal.clients import StaticTokenCredential
from renewal.targets.azure import discover as discovery
from renewal.targets.azure.discover import Reference, discover, parse_reference, settings_from_env
from renewal.targets.azure.pickup import PICKUP
from renewal.targets.azure.rollout import RolloutError, update_reference
from renewal.targets.probe import probe
from renewal.vaults import parse_allow_list
from tests.emulators.test_consumers import Vault

pytestmark = pytest.mark.timeout(120)

GROUP = "rg-targets"
OFFICER, NETWORK_READER, READER = "certlc-local-officer", "certlc-local-network-reader", "certlc-local-reader"


@pytest.fixture(scope="module")
def emulator(keyvault_emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsumersEmulator]:
    with ConsumersEmulator(
        tmp_path_factory.mktemp("consumers-targets"),
        vaults=keyvault_emulator.vault_urls,
        keyvault_ca_bundle=keyvault_emulator.ca_bundle,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def vault(keyvault_emulator: Any) -> Iterator[Vault]:
    made = Vault(keyvault_emulator)
    yield made
    made.client.close()


@pytest.fixture(scope="module")
def vaults(keyvault_emulator: Any) -> dict[str, Any]:
    return parse_allow_list(",".join(f"{name}={url}" for name, url in keyvault_emulator.vault_urls.items()))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def find(emulator: ConsumersEmulator, vaults: Any, *subscriptions: str, token: str = OFFICER) -> discovery.Discovery:
    return discover(
        subscriptions,
        StaticTokenCredential(token),
        base_url=emulator.url,
        timeout=10,
        vaults=vaults,
        connection_verify=str(emulator.ca_bundle),
    )


def move(emulator: ConsumersEmulator, target: Any, version: str, token: str = OFFICER) -> Any:
    return update_reference(
        target,
        version,
        StaticTokenCredential(token),
        base_url=emulator.url,
        timeout=10,
        connection_verify=str(emulator.ca_bundle),
    )


def served(emulator: ConsumersEmulator, host: str) -> str | None:
    """What a TLS handshake with SNI ``host`` gets from the service (renewal.targets.probe), as a thumbprint."""
    address, port = emulator.tls_address
    return probe(host, port, connect=address, timeout=5, now=lambda: datetime.now(UTC)).thumbprint


def differences(before: Any, after: Any, path: str = "") -> list[str]:
    """The paths whose values differ between two JSON documents."""
    if isinstance(before, dict) and isinstance(after, dict):
        return [
            d for k in sorted(set(before) | set(after)) for d in differences(before.get(k), after.get(k), f"{path}.{k}")
        ]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            d for i, (b, a) in enumerate(zip(before, after, strict=True)) for d in differences(b, a, f"{path}[{i}]")
        ]
    return [] if before == after else [path]


def seed_all(emulator: ConsumersEmulator, vault: Vault, subscription: str) -> dict[str, Any]:
    """One reference of each kind, pinned where the service allows it, and what they serve."""
    name = unique("all")
    old, old_thumbprint = vault.new_version(name)
    emulator.add_subscription(subscription)
    kv = vault_id(subscription, GROUP, "kv1")
    seeded = {"name": name, "old": old, "old_thumbprint": old_thumbprint}
    seeded["gateway"] = emulator.add_app_gateway(
        subscription,
        GROUP,
        "gw",
        {
            "www": ([f"www.{subscription}.gw.test", f"WWW2.{subscription}.gw.test"], vault.secret_url(name, old)),
            "api": ([f"api.{subscription}.gw.test"], vault.secret_url(name)),
        },
    )
    seeded["fd_secret"], _ = emulator.add_front_door(
        subscription, GROUP, "fd", "shop", f"shop.{subscription}.fd.test", f"{kv}/secrets/{name}", version=old
    )
    seeded["web_certificate"], _ = emulator.add_web_app(
        subscription, GROUP, "site", [f"web.{subscription}.test"], kv, name
    )
    seeded["apim"] = emulator.add_api_management(
        subscription, GROUP, "apim", {f"api.{subscription}.apim.test": vault.secret_url(name, old)}
    )
    seeded["aca_certificate"], _ = emulator.add_container_app(
        subscription, GROUP, "env", "app", f"app.{subscription}.aca.test", vault.secret_url(name, old)
    )
    return seeded


def test_discovery_finds_each_kind_with_hosts_pickup_and_version(emulator, vault, vaults) -> None:
    subscription = str(uuid.uuid4())  # a subscription id is a GUID
    seeded = seed_all(emulator, vault, subscription)

    found = find(emulator, vaults, subscription)

    assert found.problems == ()
    targets = {(t.kind, t.name): t for t in found.of("KV1", seeded["name"].upper())}
    gateway = seeded["gateway"]
    www = targets[("app_gateway", "gw/www")]
    assert www.hosts == (f"www.{subscription}.gw.test", f"www2.{subscription}.gw.test") and www.pickup == "pinned"
    assert www.pinned_version == seeded["old"] and www.resource_id == f"{gateway}/sslCertificates/cert-www"
    api = targets[("app_gateway", "gw/api")]
    assert api.pickup == "versionless" and api.pinned_version is None and api.pickup_within == timedelta(hours=4)
    shop = targets[("front_door", "fd/shop")]
    assert shop.hosts == (f"shop.{subscription}.fd.test",) and shop.pinned_version == seeded["old"]
    assert shop.resource_id == seeded["fd_secret"] and shop.pickup_within == PICKUP["front_door"].within
    web = next(t for t in targets.values() if t.kind == "app_service")
    assert (
        web.hosts == (f"web.{subscription}.test",)
        and web.pickup == "versionless"
        and web.resource_id == seeded["web_certificate"]
    )
    apim = targets[("api_management", f"apim/api.{subscription}.apim.test")]
    assert (
        apim.pinned_version == seeded["old"]
        and apim.resource_id == f"{seeded['apim']}/hostnameConfigurations/api.{subscription}.apim.test"
    )
    aca = targets[("container_apps", "env/app-cert")]
    assert aca.hosts == (f"app.{subscription}.aca.test",) and aca.resource_id == seeded["aca_certificate"]
    assert all(t.source == "discovered" for t in targets.values()) and len(targets) == 6
    assert found.calls == 7 + 2 * 1 + 1  # the bound the docstring states: one Front Door profile, one environment


def test_a_type_the_identity_may_not_read_or_a_missing_subscription_does_not_stop_the_rest(
    emulator, vault, vaults
) -> None:
    subscription = str(uuid.uuid4())  # a subscription id is a GUID
    seeded = seed_all(emulator, vault, subscription)

    found = find(emulator, vaults, "sub-nobody-has", subscription, token=NETWORK_READER)

    assert {t.kind for t in found.of("kv1", seeded["name"])} == {"app_gateway"}
    denied = {p.resource_type: p.message for p in found.problems if p.subscription == subscription}
    assert set(denied) == {name for name, _ in discovery.FINDERS} - {"Microsoft.Network/applicationGateways"}
    assert all("Reader" in message and "403" in message for message in denied.values())
    missing = [p for p in found.problems if p.subscription == "sub-nobody-has"]
    assert len(missing) == len(discovery.FINDERS) and "SubscriptionNotFound" in missing[0].message


@pytest.mark.parametrize("kind", ["app_gateway", "front_door", "api_management", "container_apps"])
def test_rollout_moves_a_pinned_reference_and_the_service_then_serves_the_new_version(
    emulator, vault, vaults, kind
) -> None:
    subscription = str(uuid.uuid4())  # a subscription id is a GUID
    seeded = seed_all(emulator, vault, subscription)
    target = next(
        t
        for t in find(emulator, vaults, subscription).of("kv1", seeded["name"])
        if t.kind == kind and t.pickup == "pinned"
    )
    holder = {
        "app_gateway": seeded["gateway"],
        "front_door": seeded["fd_secret"],
        "api_management": seeded["apim"],
        "container_apps": seeded["aca_certificate"],
    }[kind]
    new, new_thumbprint = vault.new_version(seeded["name"])
    host = target.hosts[0]
    emulator.refresh()
    assert served(emulator, host) == seeded["old_thumbprint"]
    before = emulator.resource(holder)

    done = move(emulator, target, new)

    after = emulator.resource(holder)
    changed = [path for path in differences(before, after) if path != ".etag"]  # every write has a new etag
    assert after["etag"] != before["etag"]
    expected = {
        "app_gateway": [".properties.sslCertificates[0].properties.keyVaultSecretId"],
        "front_door": [".properties.parameters.secretVersion"],
        "api_management": [".properties.hostnameConfigurations[0].keyVaultId"],
        "container_apps": [".properties.certificateKeyVaultProperties.keyVaultUrl"],
    }[kind]
    assert changed == expected, changed
    assert done.before.endswith(seeded["old"]) and done.after.endswith(new)
    assert served(emulator, host) == new_thumbprint != seeded["old_thumbprint"]
    again = next(
        t for t in find(emulator, vaults, subscription).of("kv1", seeded["name"]) if t.resource_id == target.resource_id
    )
    assert again.pinned_version == new


def test_rollout_leaves_a_reference_pinned_to_another_version_alone(emulator, vault, vaults) -> None:
    subscription = str(uuid.uuid4())  # a subscription id is a GUID
    seeded = seed_all(emulator, vault, subscription)
    target = next(t for t in find(emulator, vaults, subscription).of("kv1", seeded["name"]) if t.name == "gw/www")
    stale = type(target)(**{**target.__dict__, "pinned_version": "0" * 32})
    before = emulator.resource(seeded["gateway"])
    writes = len([r for r in emulator.arm.requests if r["method"] != "GET"])

    with pytest.raises(RolloutError, match="left alone"):
        move(emulator, stale, "1" * 32)
    with pytest.raises(RolloutError, match="pinned"):
        move(
            emulator,
            next(t for t in find(emulator, vaults, subscription).of("kv1", seeded["name"]) if t.name == "gw/api"),
            "1" * 32,
        )
    web = next(t for t in find(emulator, vaults, subscription).of("kv1", seeded["name"]) if t.kind == "app_service")
    with pytest.raises(RolloutError, match="newest version by themselves"):
        move(emulator, web, "1" * 32)
    assert emulator.resource(seeded["gateway"]) == before
    assert len([r for r in emulator.arm.requests if r["method"] != "GET"]) == writes


def test_rollout_without_the_write_role_names_the_role(emulator, vault, vaults) -> None:
    subscription = str(uuid.uuid4())  # a subscription id is a GUID
    seeded = seed_all(emulator, vault, subscription)
    target = next(t for t in find(emulator, vaults, subscription).of("kv1", seeded["name"]) if t.name == "gw/www")
    with pytest.raises(RolloutError, match="Network Contributor") as refused:
        move(emulator, target, "1" * 32, token=READER)
    assert not refused.value.transient


def test_references_parse_public_and_local_urls_and_resource_ids(vaults, keyvault_emulator) -> None:
    local = keyvault_emulator.vault_urls["kv2"]
    assert parse_reference("https://Contoso-KV.vault.azure.net/secrets/www/abc123") == Reference(
        "contoso-kv", "www", "abc123"
    )
    assert parse_reference("https://contoso.vault.azure.cn/secrets/www/") == Reference("contoso", "www")
    assert parse_reference(f"{local}/secrets/www", vaults) == Reference("kv2", "www")
    assert parse_reference(f"{local}/secrets/www") is None  # a local URL only through the allow-list
    rid = "/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/KV/secrets/Www"
    assert parse_reference(rid).key == ("kv", "www")
    for bad in (
        "",
        "https://example.com/secrets/x",
        "https://kv.vault.azure.net/keys/x",
        "http://kv.vault.azure.net/secrets/x",
    ):
        assert parse_reference(bad) is None


def test_settings() -> None:
    assert settings_from_env({}).subscriptions == ()
    a, b = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"
    settings = settings_from_env(
        {"CERTLC_TARGET_SUBSCRIPTIONS": f" {a}, {b} ", "CERTLC_TARGET_ARM_ENDPOINT": "https://127.0.0.1:9/"}
    )
    assert settings.subscriptions == (a, b) and settings.endpoint == "https://127.0.0.1:9"
    for bad in ("a/b", "my-subscription", a[:-1]):  # a name or a typo, not an id
        with pytest.raises(discovery.TargetConfigError, match="CERTLC_TARGET_SUBSCRIPTIONS"):
            settings_from_env({"CERTLC_TARGET_SUBSCRIPTIONS": bad})
    with pytest.raises(discovery.TargetConfigError, match="CERTLC_TARGET_ARM_ENDPOINT"):
        settings_from_env({"CERTLC_TARGET_ARM_ENDPOINT": "http://x"})


def test_a_gateway_listener_on_another_port_is_probed_there(emulator, vault, vaults) -> None:
    subscription = str(uuid.uuid4())  # a subscription id is a GUID
    emulator.add_subscription(subscription)
    gateway = emulator.add_app_gateway(
        subscription, GROUP, "gw", {"alt": ([f"alt.{subscription}.test"], vault.secret_url("x"))}
    )
    body = emulator.resource(gateway)
    body["properties"]["frontendPorts"] = [
        {"name": "p8443", "id": f"{gateway}/frontendPorts/p8443", "properties": {"port": 8443}}
    ]
    body["properties"]["httpListeners"][0]["properties"]["frontendPort"] = {"id": f"{gateway}/frontendPorts/p8443"}
    emulator.put(gateway, body)
    (target,) = find(emulator, vaults, subscription).of("kv1", "x")
    assert target.port == 8443 and target.hosts == (f"alt.{subscription}.test",)


def test_discovery_from_app_settings_probes_at_the_local_front(emulator, vault, vaults) -> None:
    subscription = str(uuid.uuid4())  # a subscription id is a GUID
    seeded = seed_all(emulator, vault, subscription)
    host, port = emulator.tls_address
    env = {
        "CERTLC_TARGET_SUBSCRIPTIONS": subscription,
        "CERTLC_TARGET_ARM_ENDPOINT": emulator.url,
        "CERTLC_TARGET_ARM_CA_BUNDLE": str(emulator.ca_bundle),
        "CERTLC_TARGET_CONNECT": f"{host}:{port}",
        "CERTLC_LOCAL_TOKEN": OFFICER,
    }
    found = discovery.discover_from_env(env, vaults, timeout=10)
    targets = found.of("kv1", seeded["name"])
    assert len(targets) == 6 and all(t.connect == host and t.port == port for t in targets)
    www = next(t for t in targets if t.name == "gw/www")
    assert (
        probe(www.hosts[0], www.port, connect=www.connect, timeout=5, now=lambda: datetime.now(UTC)).thumbprint
        == (seeded["old_thumbprint"])
    )
    assert discovery.discover_from_env({}, vaults, timeout=10) is None
    with pytest.raises(discovery.TargetConfigError, match="loopback"):
        settings_from_env({"CERTLC_TARGET_CONNECT": "10.0.0.1:443"})
