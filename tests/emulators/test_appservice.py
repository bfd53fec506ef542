"""The App Service emulator over raw HTTPS: ARM's answers (token, role before lookup, api-version, paging), what it
refuses to serve, and each Key Vault reference status it can report, decided by the Key Vault emulator."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from localazure.emulators.appservice import AppServiceEmulator
from localazure.emulators.appservice.schemas import check_served

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
API = {"api-version": "2024-04-01"}
READER, NONE = "certlc-local-reader", "certlc-local-none"  # the emulator's default tokens


@pytest.fixture(scope="module")
def emulator(keyvault_emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServiceEmulator]:
    with AppServiceEmulator(
        tmp_path_factory.mktemp("appservice"),
        vaults=keyvault_emulator.vault_urls,
        keyvault_ca_bundle=keyvault_emulator.ca_bundle,
        page_size=3,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def secret(keyvault_emulator: Any) -> tuple[str, str]:
    """A certificate's secret in kv1 (the Key Vault emulator keeps no other kind): its name and version."""
    from azure.keyvault.certificates import CertificatePolicy

    from renewal.clients import certificate_client

    name = f"ref-{uuid.uuid4().hex[:8]}"
    env = {"CERTLC_KEYVAULT_CA_BUNDLE": keyvault_emulator.ca_bundle, "CERTLC_LOCAL_TOKEN": keyvault_emulator.token}
    with certificate_client(keyvault_emulator.vault_urls["kv1"], env) as client:
        created = client.begin_create_certificate(name, CertificatePolicy.get_default()).result()
    return name, created.properties.version


def get(emulator: AppServiceEmulator, path: str, token: str | None = READER, **params: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = path if path.startswith("https://") else f"{emulator.url}{path}"
    return requests.get(url, params=params, headers=headers, verify=str(emulator.ca_bundle), timeout=10)


def every_page(emulator: AppServiceEmulator, path: str) -> list[dict[str, Any]]:
    items, answer = [], get(emulator, path, **API).json()
    items += answer["value"]
    while "nextLink" in answer:
        answer = get(emulator, answer["nextLink"]).json()
        items += answer["value"]
    return items


def app(emulator: AppServiceEmulator, **kwargs: Any) -> Any:
    return emulator.add_app("sub-emu", "rg-emu", f"app-{uuid.uuid4().hex[:6]}", **kwargs)


def test_the_functions_listed_are_what_the_worker_indexed_from_the_published_folder(emulator) -> None:
    site = app(emulator)
    assert every_page(emulator, f"{site.arm_id}/functions") == []  # the first template pass: no code yet

    emulator.publish(site, ROOT)
    listed = every_page(emulator, f"{site.arm_id}/functions")

    assert [f["name"] for f in listed] == [f"{site.name}/{n}" for n in ("event", "renew", "sweep", "ingest")]
    assert listed[0]["id"] == f"{site.arm_id}/functions/event"
    assert {b["type"] for b in listed[0]["properties"]["config"]["bindings"]} == {"eventGridTrigger", "queue"}


def test_arm_checks_the_token_then_the_role_then_the_app(emulator) -> None:
    missing = "/subscriptions/sub-emu/resourceGroups/rg-emu/providers/Microsoft.Web/sites/nope/functions"

    assert get(emulator, missing, token=None, **API).status_code == 401
    assert get(emulator, missing, token="not-a-token", **API).json()["error"]["code"] == "InvalidAuthenticationToken"
    refused = get(emulator, missing, token=NONE, **API)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "AuthorizationFailed"
    gone = get(emulator, missing, **API)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "ResourceNotFound"


def test_the_api_version_is_required_and_must_be_the_specifications(emulator) -> None:
    site = app(emulator)

    assert get(emulator, f"{site.arm_id}/functions").json()["error"]["code"] == "MissingApiVersionParameter"
    assert get(emulator, f"{site.arm_id}/functions", **{"api-version": "2016-08-01"}).status_code == 400


def test_an_answer_the_specification_does_not_allow_is_never_served() -> None:
    with pytest.raises(AssertionError, match=r"invalid FunctionEnvelopeCollection at value\.0\.properties"):
        check_served("FunctionEnvelopeCollection", {"value": [{"properties": {"status": "Running"}}]})
    with pytest.raises(AssertionError, match=r"invalid ApiKVReferenceCollection at value\.0\.properties\.status"):
        check_served("ApiKVReferenceCollection", {"value": [{"properties": {"status": "Broken"}}]})
    with pytest.raises(AssertionError, match="'value' is a required property"):
        check_served("ApiKVReferenceCollection", {})


def test_each_reference_status_is_what_the_vault_answered(emulator, keyvault_emulator, secret) -> None:
    name, version = secret
    kv1 = keyvault_emulator.vault_urls["kv1"]
    site = app(
        emulator,
        settings={
            "LATEST": f"@Microsoft.KeyVault(SecretUri={kv1}/secrets/{name})",
            "VERSIONED": f"@Microsoft.KeyVault(VaultName=kv1;SecretName={name};SecretVersion={version})",
            "PLAIN": "not a reference",
            "MISSING": "@Microsoft.KeyVault(VaultName=kv1;SecretName=no-such-secret)",
            "OLD_VERSION": f"@Microsoft.KeyVault(SecretUri={kv1}/secrets/{name}/{'0' * 32})",
            "ELSEWHERE": f"@Microsoft.KeyVault(SecretUri=https://kv9.vault.azure.net/secrets/{name})",
            "GARBLED": "@Microsoft.KeyVault(SecretName=only-half)",
        },
    )

    references = every_page(emulator, f"{site.arm_id}/config/configreferences/appsettings")
    found = {r["name"]: r["properties"] for r in references}

    assert {setting: p["status"] for setting, p in found.items()} == {
        "LATEST": "Resolved",
        "VERSIONED": "Resolved",
        "MISSING": "SecretNotFound",
        "OLD_VERSION": "SecretVersionNotFound",
        "ELSEWHERE": "VaultNotFound",
        "GARBLED": "InvalidSyntax",
    }
    assert found["LATEST"]["activeVersion"] == found["VERSIONED"]["activeVersion"] == version
    assert found["LATEST"]["vaultName"] == "kv1" and found["ELSEWHERE"]["vaultName"] == "kv9"
    assert found["MISSING"]["secretName"] == "no-such-secret"
    assert found["LATEST"]["source"] == "KeyVault" and found["LATEST"]["identityType"] == "SystemAssigned"


def test_the_apps_identity_decides_whether_it_may_read_the_secret(emulator, keyvault_emulator, secret) -> None:
    setting = {"SECRET": f"@Microsoft.KeyVault(VaultName=kv1;SecretName={secret[0]})"}
    path = "/config/configreferences/appsettings"

    reader = app(emulator, settings=setting, identity_token="certlc-local-reader")  # certificates, not secrets
    nobody = app(emulator, settings=setting, identity_token=None)

    assert every_page(emulator, reader.arm_id + path)[0]["properties"]["status"] == "AccessToKeyVaultDenied"
    assert every_page(emulator, nobody.arm_id + path)[0]["properties"]["status"] == "MSINotEnabled"
