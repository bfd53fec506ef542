"""What a first real deployment would hit, one test per Azure-side limit or ordering rule (infra/README.md says
what each rests on): the Flex instance cap and memory sizes, the alert that races its table, the identity that
must be granted before the site, the event route, private CA bundles, an existing system topic elsewhere, the
dns-01 role's dependency, and the secrets Key Vault references read."""

import json

import pytest

from tests.infra.arm import RESOURCE_GROUP, SUBSCRIPTION_ID, Scope, copy_indexes
from tests.infra.template import (
    DEPLOYMENT,
    MAIN,
    README,
    ROOT,
    VAULTS,
    app_principal,
    app_settings,
    evaluated,
    scope,
)

ALERTS = json.loads((ROOT / "infra" / "alerts.json").read_text(encoding="utf-8"))
HOST = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
DEPLOYMENTS = "Microsoft.Resources/deployments"  # as resourceId() spells it
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
QUEUE_SENDER = "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a"
PEM = "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"


def deployment_named(name: str, outer: Scope | None = None) -> dict:
    (found,) = [d for d in evaluated(DEPLOYMENT, outer) if d["name"] == name]
    return found


def dependencies_of(outer: Scope) -> dict[str, list[str]]:
    """Each top-level resource's name with its dependsOn, evaluated (a copy loop's name stays as it is)."""
    found = {}
    for resource in MAIN["resources"]:
        for index in copy_indexes(outer, resource)[:1]:  # a loop's first instance stands for all; none if empty
            here = outer.at(index)
            found[str(here.value(resource["name"]))] = [here.value(d) for d in resource.get("dependsOn", [])]
    return found


# 1. Flex Consumption's instance cap


def test_the_instance_cap_is_the_supported_minimum_and_not_sold_as_key_vault_pacing():
    cap = MAIN["parameters"]["maximumInstanceCount"]
    assert (cap["defaultValue"], cap["minValue"]) == (40, 40)
    assert "Key Vault calls under" not in cap["metadata"]["description"]
    assert "per function group" in cap["metadata"]["description"]
    (site,) = evaluated("Microsoft.Web/sites")
    assert site["properties"]["functionAppConfig"]["scaleAndConcurrency"]["maximumInstanceCount"] == 40
    queues = HOST["extensions"]["queues"]  # what bounds one instance's renewals at once
    assert queues["batchSize"] >= 1 and queues["newBatchThreshold"] >= 0
    assert "Azure/azure-functions-host#10523" in README and "MicrosoftDocs/azure-docs#128255" in README


# 7. instance memory the API accepts


def test_instance_memory_offers_only_sizes_the_api_accepts():
    assert MAIN["parameters"]["instanceMemoryMB"]["allowedValues"] == [2048, 4096]
    assert "azure-rest-api-specs#40898" in README


# 2. the coverage alert and its table


def test_alerts_skip_query_validation_and_nothing_waits_for_them():
    rules = ALERTS["resources"]
    assert len(rules) == 2  # the coverage alert and the heartbeat alert
    for rule in rules:
        assert rule["type"] == "Microsoft.Insights/scheduledQueryRules"
        assert rule["properties"]["skipQueryValidation"] is True
    monitoring = next(r for r in MAIN["resources"] if r.get("comments", "").startswith("infra/monitoring.json"))
    kinds = {r["type"] for r in monitoring["properties"]["template"]["resources"]}
    assert "Microsoft.Insights/scheduledQueryRules" not in kinds  # not beside the tables the app settings wait for
    outer = scope()
    alerts = outer.value("[variables('alertsDeploymentName')]")
    assert alerts in dependencies_of(outer)
    alerts_id = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RESOURCE_GROUP}/providers/{DEPLOYMENTS}/{alerts}"
    for name, needs in dependencies_of(outer).items():
        assert alerts_id.lower() not in [str(n).lower() for n in needs], f"{name} waits for the alerts"
    assert deployment_named(alerts)["dependsOn"] == [
        f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RESOURCE_GROUP}/providers/{DEPLOYMENTS}/"
        + outer.value("[variables('monitoringDeploymentName')]")
    ]


# 3. the first publish: an identity granted before the site exists


def test_the_site_starts_with_an_identity_already_granted_host_storage_and_the_lock():
    outer = scope()
    (identity,) = evaluated("Microsoft.ManagedIdentity/userAssignedIdentities")
    app = outer.parameter("appName")
    needs = [str(n) for n in dependencies_of(outer)[app]]
    for grant in ("storage-roles", "lock-role"):
        assert any(n.endswith(f"/{DEPLOYMENTS}/{app}-{grant}") for n in needs), grant
        principal = deployment_named(f"{app}-{grant}")["properties"]["parameters"]["principalId"]["value"]
        assert str(principal) == app_principal()
        grants = dependencies_of(outer)[f"{app}-{grant}"]
        assert not any(str(n).endswith(f"/Microsoft.Web/sites/{app}") for n in grants), "a grant waits for the site"
    assert any(n.endswith(f"/userAssignedIdentities/{identity['name']}") for n in needs)


def test_every_identity_based_connection_names_the_user_assigned_identity():
    settings = app_settings()
    client_id = f"https://reference.invalid/Microsoft.ManagedIdentity/userAssignedIdentities/{scope().parameter('appName')}-identity/clientId"
    for connection in ("AzureWebJobsStorage", "CertlcStorage"):
        assert settings[f"{connection}__credential"] == "managedidentity"
        assert settings[f"{connection}__clientId"] == client_id
    assert settings["AZURE_CLIENT_ID"] == client_id  # DefaultAzureCredential: Key Vault, Logs Ingestion, DNS
    roles = evaluated("Microsoft.Authorization/roleAssignments")
    app_roles = [a for a in roles if str(a["properties"]["principalId"]) == app_principal()]
    assert len(app_roles) == 3 + 1 + 2 + 1  # host storage, lock, each vault, the DCR
    assert str(scope().value(MAIN["outputs"]["principalId"])["value"]) == app_principal()


def test_the_publish_step_waits_for_the_grants_with_a_clear_message():
    assert "func azure functionapp publish" in README
    assert "retrying in" in README  # the documented loop says what it waits for


# 4. the event route: checked before the second pass, or straight onto the queue


def test_the_second_pass_is_checked_not_guessed():
    assert "certlc doctor --app" in README


def test_events_can_go_straight_to_the_renewal_queue_in_the_first_pass():
    outer = scope(createEventSubscriptions=False, eventDestination="storageQueue")
    subscriptions = evaluated("Microsoft.EventGrid/systemTopics/eventSubscriptions", outer)
    assert len(subscriptions) == len(VAULTS)
    storage = outer.parameter("storageAccountName")
    for subscription in subscriptions:
        properties = subscription["properties"]
        assert properties["destination"] is None  # no webhook, no function key
        delivery = properties["deliveryWithResourceIdentity"]
        assert delivery["identity"] == {"type": "SystemAssigned"}
        assert delivery["destination"]["endpointType"] == "StorageQueue"
        target = delivery["destination"]["properties"]
        assert target["queueName"] == app_settings()["CERTLC_QUEUE_NAME"]
        assert target["resourceId"].endswith(f"/Microsoft.Storage/storageAccounts/{storage}")
        assert properties["eventDeliverySchema"] == "EventGridSchema"
    senders = [
        a
        for a in evaluated("Microsoft.Authorization/roleAssignments", outer)
        if a["properties"]["roleDefinitionId"].endswith(QUEUE_SENDER)
    ]
    assert [str(a["properties"]["principalId"]) for a in senders] == [
        f"https://reference.invalid/Microsoft.EventGrid/systemTopics/{t}/identity/principalId"
        for t in ("kv-payments-certlc", "kv-web-events")
    ]
    assert evaluated("Microsoft.EventGrid/systemTopics/eventSubscriptions", scope(createEventSubscriptions=False)) == []


# 5. private CAs over TLS


@pytest.mark.parametrize(
    "parameter,setting",
    [
        ("cfsslCaBundle", "CERTLC_CFSSL_CA_BUNDLE"),
        ("acmeCaBundle", "CERTLC_ACME_CA_BUNDLE"),
        ("adcsCaBundle", "CERTLC_ADCS_CA_BUNDLE"),
        ("adcsLdapCaBundle", "CERTLC_ADCS_LDAP_CA_BUNDLE"),
        ("smtpCaBundle", "CERTLC_SMTP_CA_BUNDLE"),
        ("webhookCaBundle", "CERTLC_WEBHOOK_CA_BUNDLE"),
    ],
)
def test_a_ca_bundle_is_pem_text_or_a_key_vault_reference(parameter, setting):
    assert app_settings()[setting] == ""
    (config,) = evaluated("Microsoft.Web/sites/config", scope(**{parameter: PEM}))
    assert config["properties"][setting] == PEM
    uri = "https://kv-ops.vault.azure.net/secrets/corp-ca"
    outer = scope(**{parameter: uri})
    (config,) = evaluated("Microsoft.Web/sites/config", outer)
    assert config["properties"][setting] == f"@Microsoft.KeyVault(SecretUri={uri})"
    grants = [
        a
        for a in evaluated("Microsoft.Authorization/roleAssignments", outer)
        if a["properties"]["roleDefinitionId"].endswith(SECRETS_USER)
    ]
    assert [a["scope"] for a in grants] == ["Microsoft.KeyVault/vaults/kv-ops/secrets/corp-ca"]


# 6. a vault whose system topic lives in another resource group


def test_an_existing_system_topic_is_used_where_it_lives_and_never_created():
    vaults = [
        {"name": "kv-payments", "resourceGroup": "rg-payments"},
        {
            "name": "kv-web",
            "resourceGroup": "rg-web",
            "systemTopicName": "kv-web-events",
            "systemTopicResourceGroup": "rg-events",
        },
    ]
    outer = scope(vaults=vaults)
    assert [t["name"] for t in evaluated("Microsoft.EventGrid/systemTopics", outer)] == ["kv-payments-certlc"]
    events = deployment_named("certlc-events-kv-web", outer)
    assert events["resourceGroup"] == "rg-events"
    assert deployment_named("certlc-events-kv-payments", outer)["resourceGroup"] == "rg-payments"
    writers = [
        str(a["properties"]["principalId"])
        for a in evaluated("Microsoft.Authorization/roleAssignments", outer)
        if a["scope"].endswith("/eventgrid-deadletter")
    ]
    assert writers[1] == "https://reference.invalid/Microsoft.EventGrid/systemTopics/kv-web-events/identity/principalId"
    access = next(r for r in MAIN["resources"] if r.get("copy", {}).get("name") == "vaultAccess")
    output = access["properties"]["template"]["outputs"]["systemTopicPrincipalId"]["value"]
    assert "parameters('systemTopicResourceGroup')" in output  # read from the topic's own resource group


# 8. dependencies ARM resolves in this (resource-group) template


def declared_ids(outer: Scope) -> set[str]:
    """The id ARM gives each top-level resource of a resource-group template: resourceId() in that group."""
    ids = set()
    for resource in MAIN["resources"]:
        for index in copy_indexes(outer, resource)[:1]:
            here = outer.at(index)
            names = str(here.value(resource["name"])).split("/")
            kind = resource["type"].split("/")
            children = (f"{t}/{n}" for t, n in zip(kind[2:], names[1:], strict=True))
            path = "/".join([f"{kind[0]}/{kind[1]}/{names[0]}", *children])
            ids.add(f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RESOURCE_GROUP}/providers/{path}".lower())
    return ids


def test_every_dependency_is_an_id_arm_resolves_in_this_template():
    outer = scope(acmeDnsZones=[{"name": "example.com", "resourceGroup": "rg-dns"}])
    ids = declared_ids(outer)
    loops = {r["copy"]["name"] for r in MAIN["resources"] if "copy" in r}
    for name, needs in dependencies_of(outer).items():
        for need in needs:
            assert str(need) in loops or str(need).lower() in ids, f"{name} depends on {need}, not declared here"


# 9. Key Vault references the app resolves


def test_each_referenced_secret_and_only_it_is_readable_by_the_app():
    outer = scope(
        vaults=[*VAULTS, {"name": "kv-ops", "resourceGroup": "rg-ops", "subscriptionId": "sub-ops"}],
        acmeAccountKeySecretUri="https://kv-ops.vault.azure.net/secrets/acme-account",
        smtpPasswordSecretUri="https://KV-Shared.vault.azure.net/secrets/smtp/0123456789abcdef",
        secretVaults=[{"name": "kv-shared", "resourceGroup": "rg-shared"}],
        webhookUrlsSecretUri="https://kv-local.vault.azure.net/secrets/hooks",
        cfsslCaBundle=PEM,
    )
    grants = [
        a
        for a in evaluated("Microsoft.Authorization/roleAssignments", outer)
        if a["properties"]["roleDefinitionId"].endswith(SECRETS_USER)
    ]
    assert [a["scope"] for a in grants] == [
        "Microsoft.KeyVault/vaults/kv-ops/secrets/acme-account",
        "Microsoft.KeyVault/vaults/kv-shared/secrets/smtp",
        "Microsoft.KeyVault/vaults/kv-local/secrets/hooks",
    ]
    assert {str(a["properties"]["principalId"]) for a in grants} == {app_principal(outer)}
    placed = [
        (d["subscriptionId"], d["resourceGroup"])
        for d in evaluated(DEPLOYMENT, outer)
        if d["name"].startswith("certlc-secret-")
    ]
    assert placed == [("sub-ops", "rg-ops"), (SUBSCRIPTION_ID, "rg-shared"), (SUBSCRIPTION_ID, RESOURCE_GROUP)]
    app = outer.parameter("appName")
    assert "secretAccess" in dependencies_of(outer)[f"{app}/appsettings"]  # granted before the references load
