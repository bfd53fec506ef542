"""infra/main.json on its own: well-formed references, hardening, least-privilege roles, outputs."""

import re

import pytest

from tests.infra.arm import RESOURCE_GROUP, SUBSCRIPTION_ID, ArmError, Scope, calls, expressions, parse
from tests.infra.template import DEPLOYMENT, MAIN, README, evaluated, only, resources, scope, templates

ROLES = {  # built-in role definition ids, as infra/README.md cites them
    "a4417e6f-fecd-4de8-b567-7b0420556985": "Key Vault Certificates Officer",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",  # on single secrets only (see below)
    "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a": "Storage Queue Data Message Sender",
}
TOO_BROAD = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "00482a5a-887f-4fb3-b363-3b7fe8e74483": "Key Vault Administrator",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor",
}
# Every optional grant switched on: a Key Vault reference (a secret) and events straight onto the queue.
EVERYTHING = {
    "smtpPasswordSecretUri": "https://kv-ops.vault.azure.net/secrets/smtp",
    "eventDestination": "storageQueue",
}
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def reference_problems(template: dict) -> list[str]:
    """Undeclared parameters()/variables() and declared parameters nothing uses, in one template scope."""
    used: dict[str, set[str]] = {"parameters": set(), "variables": set()}
    for text in expressions({k: v for k, v in template.items() if k not in ("parameters", "$schema")}):
        for call in calls(parse(text)):
            if call[1] in used and call[2] and call[2][0][0] == "lit":
                used[call[1]].add(call[2][0][1])
    for spec in template.get("parameters", {}).values():  # defaults may use other parameters
        for text in expressions(spec):
            used["parameters"].update(c[2][0][1] for c in calls(parse(text)) if c[1] == "parameters")
    problems = []
    for kind, names in used.items():
        problems += [f"{kind}('{n}') is not declared" for n in sorted(names - set(template.get(kind, {})))]
    problems += [
        f"parameter {n} is never used" for n in sorted(set(template.get("parameters", {})) - used["parameters"])
    ]
    return problems


@pytest.mark.parametrize("where,template", list(templates()), ids=[w for w, _ in templates()])
def test_every_reference_is_declared_and_every_parameter_used(where, template):
    assert reference_problems(template) == []


def test_the_reference_check_finds_a_typo_and_an_unused_parameter():
    broken = {
        "parameters": {"used": {"type": "string"}, "spare": {"type": "string"}},
        "resources": [{"name": "[format('{0}{1}', parameters('used'), variables('missing'))]"}],
    }
    assert reference_problems(broken) == ["variables('missing') is not declared", "parameter spare is never used"]


def test_every_expression_parses():
    for where, template in templates():
        for text in expressions(template):
            assert parse(text), (where, text)
    with pytest.raises(ArmError):
        parse("[format('{0}', parameters('a')]")


def test_every_resource_has_an_api_version_and_nested_templates_use_the_inner_scope():
    for resource in resources():
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", resource["apiVersion"]), resource["type"]
        if resource["type"].lower() == DEPLOYMENT:
            assert resource["properties"]["expressionEvaluationOptions"] == {"scope": "inner"}
            assert resource["properties"]["mode"] == "Incremental"


def declared_keys(outer: Scope) -> set[str]:
    keys = set()
    for resource in outer.template["resources"]:
        if "copy" in resource:
            keys.add(resource["copy"]["name"])
        for instance in evaluated(resource["type"], outer):
            if instance["type"] == resource["type"]:
                keys.add(f"{instance['type']}/{instance['name']}".lower())
    return keys


def dependency_key(text: str, outer: Scope) -> str:
    if not text.startswith("["):
        return text  # a copy loop's name
    resource_id = outer.value(text)
    namespace, path = resource_id.split("/providers/", 1)[1].split("/", 1)
    parts = path.split("/")
    return f"{namespace}/{'/'.join(parts[0::2])}/{'/'.join(parts[1::2])}".lower()


def test_every_dependency_is_a_resource_of_the_template():
    outer = scope(acmeDnsZones=[{"name": "example.com", "resourceGroup": "rg-dns"}])  # the conditional DNS role too
    declared = declared_keys(outer)
    for resource in MAIN["resources"]:
        for text in resource.get("dependsOn", []):
            index_scope = outer.at(0) if "copyIndex" in text else outer
            assert dependency_key(text, index_scope) in declared, (resource["type"], text)


def test_role_definitions_are_the_documented_built_in_roles_and_nothing_broader():
    skip = {"microsoft.insights/workbooks", DEPLOYMENT}  # a workbook's item ids; nested templates come separately
    text = str([r for r in resources() if r["type"].lower() not in skip] + [t.get("variables") for _, t in templates()])
    assert set(GUID.findall(text)) <= set(ROLES), "an unexpected GUID: add it to ROLES and infra/README.md"
    assert not set(TOO_BROAD) & set(GUID.findall(text.lower()))
    for role_id, name in ROLES.items():
        assert role_id in README and name in README
    assignments = evaluated("Microsoft.Authorization/roleAssignments", scope(**EVERYTHING))
    assert {a["properties"]["roleDefinitionId"].rsplit("/", 1)[1] for a in assignments} == set(ROLES)
    for assignment in assignments:
        assert assignment["properties"]["principalType"] == "ServicePrincipal"
    for resource in resources():
        if resource["type"] == "Microsoft.Authorization/roleAssignments":
            assert resource["name"].startswith("[guid("), "role assignment names must be deterministic"


def scopes_of(role_id: str, **parameters: object) -> list[str]:
    assignments = evaluated("Microsoft.Authorization/roleAssignments", scope(**parameters))
    return sorted(a["scope"] for a in assignments if role_id in a["properties"]["roleDefinitionId"])


def test_each_role_sits_on_the_narrowest_scope():
    storage = scope().parameter("storageAccountName")
    app_dcr = f"{scope().parameter('appName')}-dcr"
    assert scopes_of("a4417e6f-fecd-4de8-b567-7b0420556985") == [
        "Microsoft.KeyVault/vaults/kv-payments",
        "Microsoft.KeyVault/vaults/kv-web",
    ]
    assert scopes_of("3913510d-42f4-4e42-8a64-420c390055eb") == [f"Microsoft.Insights/dataCollectionRules/{app_dcr}"]
    containers = f"Microsoft.Storage/storageAccounts/{storage}/blobServices/default/containers"
    dead_letters, locks = f"{containers}/eventgrid-deadletter", f"{containers}/certlc-locks"
    # one per topic on the dead-letter container, and the app's on the lock container
    assert scopes_of("ba92f5b4-2d11-453d-a403-e96b0029c9fe") == [locks, dead_letters, dead_letters]
    for host_role in ("b7e6dc6d", "0a9a7e1f", "974c5e8b"):
        assert scopes_of(host_role) == [f"Microsoft.Storage/storageAccounts/{storage}"]
    assert scopes_of("4633458b") == scopes_of("c6a89b2d") == []  # neither without a reference or the queue route
    assert scopes_of("4633458b", **EVERYTHING) == ["Microsoft.KeyVault/vaults/kv-ops/secrets/smtp"]
    queue = f"Microsoft.Storage/storageAccounts/{storage}/queueServices/default/queues/certlc-renewals"
    assert scopes_of("c6a89b2d", **EVERYTHING) == [queue, queue]  # each system topic, the renewal queue only


def test_dead_letter_writer_is_each_system_topic_identity():
    assignments = evaluated("Microsoft.Authorization/roleAssignments")
    writers = [str(a["properties"]["principalId"]) for a in assignments if a["scope"].endswith("/eventgrid-deadletter")]
    assert writers == [
        "https://reference.invalid/Microsoft.EventGrid/systemTopics/kv-payments-certlc/identity/principalId",
        "https://reference.invalid/Microsoft.EventGrid/systemTopics/kv-web-events/identity/principalId",
    ]
    for topic in evaluated("Microsoft.EventGrid/systemTopics"):
        assert topic["identity"] == {"type": "SystemAssigned"}
        assert topic["properties"]["topicType"] == "Microsoft.KeyVault.vaults"


def test_storage_takes_identities_only():
    storage = only("Microsoft.Storage/storageAccounts")["properties"]
    assert storage["minimumTlsVersion"] == "TLS1_2"
    assert storage["allowBlobPublicAccess"] is False
    assert storage["allowSharedKeyAccess"] is False
    assert storage["supportsHttpsTrafficOnly"] is True
    text = str(MAIN)
    assert "listKeys" not in text and "AccountKey=" not in text and "sas" not in text.lower().split()


def test_flex_consumption_python_311_with_a_managed_identity():
    plan = only("Microsoft.Web/serverfarms")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"} and plan["properties"]["reserved"] is True
    (site,) = evaluated("Microsoft.Web/sites")
    (identity,) = evaluated("Microsoft.ManagedIdentity/userAssignedIdentities")
    group = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RESOURCE_GROUP}"
    identity_id = f"{group}/providers/{identity['type']}/{identity['name']}"
    assert site["kind"] == "functionapp,linux"
    assert site["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {identity_id: {}}}
    assert site["properties"]["keyVaultReferenceIdentity"] == identity_id
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["deployment"]["storage"]["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": identity_id,
    }
    assert site["properties"]["httpsOnly"] is True


def test_vnet_integration_is_optional():
    subnet = "/subscriptions/s/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v/subnets/functions"
    (without,) = evaluated("Microsoft.Web/sites")
    (with_subnet,) = evaluated("Microsoft.Web/sites", scope(subnetId=subnet))
    assert without["properties"]["virtualNetworkSubnetId"] is None
    assert with_subnet["properties"]["virtualNetworkSubnetId"] == subnet


def test_application_insights_is_workspace_based_on_the_monitoring_workspace():
    (insights,) = evaluated("Microsoft.Insights/components")
    (workspace,) = evaluated("Microsoft.OperationalInsights/workspaces")
    assert insights["properties"]["WorkspaceResourceId"].endswith(f"/workspaces/{workspace['name']}")


def test_outputs():
    outputs = scope().value(MAIN["outputs"])
    assert {"functionAppName", "principalId", "queueUrl", "dceEndpoint", "dcrId"} <= set(outputs)
    storage = scope().parameter("storageAccountName")
    assert outputs["queueUrl"]["value"] == f"https://{storage}.queue.core.windows.net/certlc-renewals"
    assert outputs["dcrId"]["value"].endswith(f"/dataCollectionRules/{scope().parameter('appName')}-dcr")


def test_every_parameter_is_described_here_and_in_the_readme():
    for name, spec in MAIN["parameters"].items():
        assert spec["metadata"]["description"], name
        assert f"`{name}`" in README, f"infra/README.md does not describe parameter {name}"
