"""The consumers emulator: ARM's answers through the official SDKs and raw HTTPS (token, role, api-version,
subscription, malformed bodies), and a TLS front whose handshakes show what each service serves: a pinned reference
its version for good, a versionless one the newest version as of its last poll."""

from __future__ import annotations

import hashlib
import socket
import ssl
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from localazure.emulators.consumers import ConsumersEmulator, vault_id

from renewal.clients import StaticTokenCredential

pytestmark = pytest.mark.timeout(120)

SUB, GROUP = "sub-consumers", "rg-consumers"
READER, OFFICER, NONE = "certlc-local-reader", "certlc-local-officer", "certlc-local-none"
GATEWAYS = f"/subscriptions/{SUB}/providers/Microsoft.Network/applicationGateways"


@pytest.fixture(scope="module")
def emulator(keyvault_emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsumersEmulator]:
    with ConsumersEmulator(
        tmp_path_factory.mktemp("consumers"),
        vaults=keyvault_emulator.vault_urls,
        keyvault_ca_bundle=keyvault_emulator.ca_bundle,
    ) as running:
        running.add_subscription(SUB)
        yield running


class Vault:
    """kv1 of the Key Vault emulator: certificates made and renewed (a new version) by name."""

    def __init__(self, keyvault_emulator: Any) -> None:
        from renewal.clients import certificate_client

        self.url = keyvault_emulator.vault_urls["kv1"]
        env = {"CERTLC_KEYVAULT_CA_BUNDLE": keyvault_emulator.ca_bundle, "CERTLC_LOCAL_TOKEN": keyvault_emulator.token}
        self.client = certificate_client(self.url, env)

    def new_version(self, name: str) -> tuple[str, str]:
        """A new version of ``name``: (version, SHA-1 thumbprint upper-case)."""
        from azure.keyvault.certificates import CertificatePolicy

        made = self.client.begin_create_certificate(name, CertificatePolicy.get_default()).result()
        return made.properties.version, made.properties.x509_thumbprint.hex().upper()

    def secret_url(self, name: str, version: str = "") -> str:
        return f"{self.url}/secrets/{name}" + (f"/{version}" if version else "")


@pytest.fixture(scope="module")
def vault(keyvault_emulator: Any) -> Iterator[Vault]:
    made = Vault(keyvault_emulator)
    yield made
    made.client.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def handshake(emulator: ConsumersEmulator, host: str) -> str:
    """The SHA-1 thumbprint (upper-case hex) of the leaf the TLS front serves for SNI ``host``."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(emulator.tls_address, timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha1(der).hexdigest().upper()  # noqa: S324 - Key Vault's thumbprint is SHA-1


def arm(emulator: ConsumersEmulator, method: str, path: str, token: str | None = OFFICER, **kwargs: Any):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kwargs.pop("headers", {}))
    kwargs.setdefault("params", {"api-version": "2025-05-01"})
    return requests.request(
        method, f"{emulator.url}{path}", headers=headers, verify=str(emulator.ca_bundle), timeout=10, **kwargs
    )


def network(emulator: ConsumersEmulator, token: str = OFFICER) -> Any:
    from azure.mgmt.network import NetworkManagementClient

    return NetworkManagementClient(
        StaticTokenCredential(token),
        SUB,
        base_url=emulator.url,
        credential_scopes=[f"{emulator.url}/.default"],
        connection_verify=str(emulator.ca_bundle),
        retry_total=0,
        polling_interval=0,
    )


def test_a_pinned_gateway_listener_serves_its_version_until_the_reference_moves(emulator, vault) -> None:
    name = unique("gw-cert")
    old, old_thumbprint = vault.new_version(name)
    gateway = emulator.add_app_gateway(
        SUB, GROUP, unique("gw"), {"www": (["www.pinned.test"], vault.secret_url(name, old))}
    )
    new, new_thumbprint = vault.new_version(name)

    emulator.advance(timedelta(days=30))
    emulator.refresh()
    assert handshake(emulator, "www.pinned.test") == old_thumbprint  # pinned: never picks up the new version

    client = network(emulator)
    found = client.application_gateways.get(GROUP, gateway.rsplit("/", 1)[-1])
    found.ssl_certificates[0].key_vault_secret_id = vault.secret_url(name, new)
    written = client.application_gateways.begin_create_or_update(GROUP, found.name, found).result()
    assert written.ssl_certificates[0].key_vault_secret_id.endswith(new)
    assert handshake(emulator, "www.pinned.test") == new_thumbprint and new_thumbprint != old_thumbprint


def test_a_versionless_listener_serves_the_newest_version_after_its_pickup_interval(emulator, vault) -> None:
    name = unique("gw-latest")
    _, first = vault.new_version(name)
    emulator.add_app_gateway(
        SUB, GROUP, unique("gw"), {"api": (["api.latest.test", "alt.latest.test"], vault.secret_url(name))}
    )
    assert handshake(emulator, "api.latest.test") == first
    _, second = vault.new_version(name)

    emulator.advance(timedelta(hours=3, minutes=59))
    assert handshake(emulator, "api.latest.test") == first  # Application Gateway polls every 4 hours
    emulator.advance(timedelta(minutes=2))
    assert handshake(emulator, "api.latest.test") == second
    assert handshake(emulator, "alt.latest.test") == second


def test_a_host_nobody_binds_fails_the_handshake(emulator) -> None:
    with pytest.raises(ssl.SSLError):
        handshake(emulator, "nobody.unbound.test")


def test_arm_checks_token_role_api_version_and_subscription(emulator) -> None:
    assert arm(emulator, "GET", GATEWAYS, token=None).status_code == 401
    assert arm(emulator, "GET", GATEWAYS, token="not-a-token").status_code == 401
    refused = arm(emulator, "GET", GATEWAYS, token=NONE)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "AuthorizationFailed"
    stale = arm(emulator, "GET", GATEWAYS, params={"api-version": "2019-01-01"})
    assert stale.status_code == 400 and "2025-05-01" in stale.json()["error"]["message"]
    assert arm(emulator, "GET", GATEWAYS, params={}).json()["error"]["code"] == "MissingApiVersionParameter"
    other = arm(emulator, "GET", GATEWAYS.replace(SUB, "sub-elsewhere"))
    assert other.status_code == 404 and other.json()["error"]["code"] == "SubscriptionNotFound"
    assert arm(emulator, "GET", GATEWAYS).status_code == 200


def test_the_reader_role_may_not_write(emulator, vault) -> None:
    gateway = emulator.add_app_gateway(SUB, GROUP, unique("gw"), {"ro": (["ro.test"], vault.secret_url("anything"))})
    client = network(emulator, READER)
    found = client.application_gateways.get(GROUP, gateway.rsplit("/", 1)[-1])
    with pytest.raises(HttpResponseError) as refused:
        client.application_gateways.begin_create_or_update(GROUP, found.name, found).result()
    assert refused.value.status_code == 403


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda body: body.update(properties=[]), "InvalidRequestContent"),
        (
            lambda body: body["properties"]["sslCertificates"][0]["properties"].update(keyVaultSecretId=7),
            "InvalidRequestContent",
        ),
        (
            lambda body: body["properties"]["sslCertificates"][0]["properties"].update(
                keyVaultSecretId="https://x/keys/k"
            ),
            "InvalidRequestContent",
        ),
        (
            lambda body: body["properties"]["httpListeners"][0]["properties"]["sslCertificate"].update(id="/nowhere"),
            "InvalidResourceReference",
        ),
    ],
)
def test_a_malformed_gateway_is_refused_as_arm_refuses_it(emulator, vault, change, code) -> None:
    gateway = emulator.add_app_gateway(SUB, GROUP, unique("gw"), {"bad": (["bad.test"], vault.secret_url("anything"))})
    body = emulator.resource(gateway)
    change(body)
    answer = arm(emulator, "PUT", gateway, json=body)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == code, answer.text
    assert arm(emulator, "PUT", gateway, data=b"{not json").status_code == 400
    assert emulator.resource(gateway)["properties"]["sslCertificates"][0]["properties"]["keyVaultSecretId"].endswith(
        "/secrets/anything"
    )


def test_front_door_secrets_pinned_and_latest(emulator, vault, keyvault_emulator) -> None:
    kv = vault_id(SUB, GROUP, "kv1")
    name = unique("afd")
    old, old_thumbprint = vault.new_version(name)
    emulator.add_front_door(SUB, GROUP, "fd", "pinned", "pinned.afd.test", f"{kv}/secrets/{name}", version=old)
    emulator.add_front_door(SUB, GROUP, "fd", "latest", "latest.afd.test", f"{kv}/secrets/{name}", use_latest=True)
    assert handshake(emulator, "latest.afd.test") == old_thumbprint
    _, new_thumbprint = vault.new_version(name)
    emulator.refresh()
    assert handshake(emulator, "pinned.afd.test") == old_thumbprint
    assert handshake(emulator, "latest.afd.test") == new_thumbprint

    bad = arm(
        emulator,
        "PUT",
        f"/subscriptions/{SUB}/resourceGroups/{GROUP}/providers/Microsoft.Cdn/profiles/fd/secrets/bad",
        json={
            "properties": {"parameters": {"type": "CustomerCertificate", "secretSource": {"id": "https://x/secrets/y"}}}
        },
        params={"api-version": "2024-02-01"},
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "InvalidRequestContent"


def test_app_service_syncs_the_newest_version_within_a_day(emulator, vault) -> None:
    name = unique("web")
    _, first = vault.new_version(name)
    certificate, _ = emulator.add_web_app(
        SUB, GROUP, unique("site"), ["shop.web.test"], vault_id(SUB, GROUP, "kv1"), name
    )
    assert emulator.resource(certificate)["properties"]["thumbprint"] == first
    assert handshake(emulator, "shop.web.test") == first
    _, second = vault.new_version(name)
    emulator.advance(timedelta(hours=24))
    assert handshake(emulator, "shop.web.test") == second
    assert emulator.resource(certificate)["properties"]["thumbprint"] == second  # the binding followed


def test_api_management_and_container_apps_serve_their_references(emulator, vault) -> None:
    name = unique("apim")
    version, thumbprint = vault.new_version(name)
    emulator.add_api_management(SUB, GROUP, unique("apim"), {"api.apim.test": vault.secret_url(name, version)})
    emulator.add_container_app(SUB, GROUP, "env", unique("app"), "app.aca.test", vault.secret_url(name))
    vault.new_version(name)
    assert handshake(emulator, "api.apim.test") == thumbprint
    assert handshake(emulator, "app.aca.test") != thumbprint  # versionless, first read after the second version


def test_a_write_under_a_stale_etag_is_refused(emulator, vault) -> None:
    gateway = emulator.add_app_gateway(
        SUB, GROUP, unique("gw"), {"etag": (["etag.test"], vault.secret_url("anything"))}
    )
    body = emulator.resource(gateway)
    stale = arm(emulator, "PUT", gateway, json=body, headers={"If-Match": 'W/"not-this-one"'})
    assert stale.status_code == 412 and stale.json()["error"]["code"] == "PreconditionFailed"
    fresh = arm(
        emulator, "PUT", gateway, json=body, headers={"Authorization": f"Bearer {OFFICER}", "If-Match": body["etag"]}
    )
    assert fresh.status_code == 200 and fresh.json()["etag"] != body["etag"]
