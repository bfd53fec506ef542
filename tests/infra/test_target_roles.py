"""Targets' grants in infra/main.json: nothing by default, each opt-in grant only when its parameter is set, and
custom roles with exactly the actions docs/targets.md lists (discovery reads; one writer per service type)."""

from __future__ import annotations

import pytest

from tests.infra.arm import SUBSCRIPTION_ID, Placeholder
from tests.infra.template import MAIN, ROOT, app_principal, app_settings, evaluated, scope

ROLE_DEFINITION, ROLE_ASSIGNMENT = "Microsoft.Authorization/roleDefinitions", "Microsoft.Authorization/roleAssignments"
DEPLOYMENT = "Microsoft.Resources/deployments"
TARGETS_DOC = (ROOT / "docs" / "targets.md").read_text(encoding="utf-8")

READ = {
    "Microsoft.Network/applicationGateways/read",
    "Microsoft.Web/certificates/read",
    "Microsoft.Web/sites/read",
    "Microsoft.Web/sites/slots/read",
    "Microsoft.Cdn/profiles/read",
    "Microsoft.Cdn/profiles/secrets/read",
    "Microsoft.Cdn/profiles/customdomains/read",
    "Microsoft.ApiManagement/service/read",
    "Microsoft.App/managedEnvironments/read",
    "Microsoft.App/managedEnvironments/certificates/read",
    "Microsoft.App/containerApps/read",
}
GATEWAY = "/subscriptions/sub-net/resourceGroups/rg-edge/providers/Microsoft.Network/applicationGateways/agw-eu"
SUBNET = "/subscriptions/sub-net/resourceGroups/rg-vnet/providers/Microsoft.Network/virtualNetworks/vnet/subnets/agw"
GATEWAY_IDENTITY = (
    "/subscriptions/sub-net/resourceGroups/rg-edge/providers/Microsoft.ManagedIdentity/userAssignedIdentities/agw-id"
)
WEB_CERTIFICATE = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg-web/providers/Microsoft.Web/certificates/www"
FRONT_DOOR = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg-fd/providers/Microsoft.Cdn/profiles/fd-main"
APIM = "/subscriptions/sub-api/resourceGroups/rg-api/providers/Microsoft.ApiManagement/service/apim-eu"
ENVIRONMENT = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg-aca/providers/Microsoft.App/managedEnvironments/cae"
# parameter -> (resource ids, exactly the actions of its custom role)
ROLLOUT = {
    "rolloutAppGatewayIds": (
        [GATEWAY],
        {"Microsoft.Network/applicationGateways/read", "Microsoft.Network/applicationGateways/write"},
    ),
    "rolloutAppGatewayLinkedIds": (
        [SUBNET, GATEWAY_IDENTITY],
        {
            "Microsoft.Network/virtualNetworks/subnets/read",
            "Microsoft.Network/virtualNetworks/subnets/join/action",
            "Microsoft.Network/publicIPAddresses/read",
            "Microsoft.Network/publicIPAddresses/join/action",
            "Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies/read",
            "Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies/join/action",
            "Microsoft.ManagedIdentity/userAssignedIdentities/read",
            "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action",
        },
    ),
    "rolloutAppServiceCertificateIds": (
        [WEB_CERTIFICATE],
        {"Microsoft.Web/certificates/read", "Microsoft.Web/certificates/write"},
    ),
    "rolloutFrontDoorProfileIds": (
        [FRONT_DOOR],
        {
            "Microsoft.Cdn/profiles/read",
            "Microsoft.Cdn/profiles/secrets/read",
            "Microsoft.Cdn/profiles/secrets/write",
            "Microsoft.Cdn/profiles/customdomains/read",
            "Microsoft.Cdn/profiles/customdomains/write",
        },
    ),
    "rolloutApiManagementIds": (
        [APIM],
        {"Microsoft.ApiManagement/service/read", "Microsoft.ApiManagement/service/write"},
    ),
    "rolloutContainerAppsEnvironmentIds": (
        [ENVIRONMENT],
        {
            "Microsoft.App/managedEnvironments/read",
            "Microsoft.App/managedEnvironments/certificates/read",
            "Microsoft.App/managedEnvironments/certificates/write",
        },
    ),
}
SCOPES = [{"subscriptionId": "sub-a"}, {"subscriptionId": "sub-b", "resourceGroup": "rg-web"}]
EVERYTHING = {
    "targetDiscoveryScopes": SCOPES,
    "rollout": "update",
    **{name: ids for name, (ids, _) in ROLLOUT.items()},
}


def target_deployments(outer) -> list[dict]:
    return [
        d
        for d in evaluated(DEPLOYMENT, outer)
        if d["name"].startswith("certlc-targets-") or d["name"].startswith("certlc-rollout-")
    ]


def actions(role: dict) -> set[str]:
    (permissions,) = role["properties"]["permissions"]
    assert permissions["notActions"] == permissions["dataActions"] == permissions["notDataActions"] == []
    assert role["properties"]["type"] == "customRole"
    return set(permissions["actions"])


def assignments_of(role: dict, outer) -> list[dict]:
    return [
        a
        for a in evaluated(ROLE_ASSIGNMENT, outer)
        if a["properties"]["roleDefinitionId"].endswith(f"/roleDefinitions/{role['name']}")
    ]


def test_nothing_is_granted_for_targets_by_default():
    for name in ("targetDiscoveryScopes", "targetSubscriptions", *ROLLOUT):
        assert MAIN["parameters"][name]["defaultValue"] == [], name
    assert MAIN["parameters"]["rollout"]["defaultValue"] == "report"
    assert MAIN["parameters"]["rollout"]["allowedValues"] == ["report", "update"]
    assert evaluated(ROLE_DEFINITION) == []
    assert target_deployments(scope()) == []
    settings = app_settings()
    assert settings["CERTLC_ROLLOUT"] == "report"
    assert settings["CERTLC_TARGET_SUBSCRIPTIONS"] == ""


def test_the_discovery_role_carries_only_the_read_actions_of_the_five_types():
    (role,) = evaluated(ROLE_DEFINITION, scope(targetDiscoveryScopes=SCOPES))
    assert actions(role) == READ
    assert all(action.endswith("/read") for action in actions(role))
    assert role["properties"]["assignableScopes"] == [
        "/subscriptions/sub-a",
        "/subscriptions/sub-b/resourceGroups/rg-web",
    ]


def test_the_discovery_role_is_assigned_to_the_app_at_each_scope_and_nowhere_else():
    outer = scope(targetDiscoveryScopes=SCOPES)
    (role,) = evaluated(ROLE_DEFINITION, outer)
    deployments = target_deployments(outer)
    # a whole subscription: a subscription-scope deployment (location, no resource group); a group: that group
    assert [(d["subscriptionId"], d.get("resourceGroup"), d.get("location")) for d in deployments] == [
        ("sub-a", None, "westeurope"),
        ("sub-b", "rg-web", None),
    ]
    assignments = assignments_of(role, outer)
    assert len(assignments) == 2
    for assignment in assignments:
        assert "scope" not in assignment  # at the deployment's own scope: the subscription or the group
        assert assignment["properties"]["principalType"] == "ServicePrincipal"
        assert str(assignment["properties"]["principalId"]) == app_principal(outer)
    assert evaluated(ROLE_ASSIGNMENT, outer) == evaluated(ROLE_ASSIGNMENT) + assignments  # nothing else is added


def test_target_subscriptions_follow_the_discovery_scopes_unless_given():
    def setting(**parameters):
        outer = scope(**parameters)
        return outer.value(MAIN["variables"]["appSettings"])["CERTLC_TARGET_SUBSCRIPTIONS"]

    repeated = [*SCOPES, {"subscriptionId": "sub-a", "resourceGroup": "rg-x"}]
    assert setting(targetDiscoveryScopes=repeated) == "sub-a,sub-b"
    assert setting(targetDiscoveryScopes=SCOPES, targetSubscriptions=["sub-c"]) == "sub-c"
    assert setting(rollout="update") == ""  # rollout alone names no subscription


def test_rollout_setting_is_the_parameter():
    outer = scope(rollout="update")
    assert outer.value(MAIN["variables"]["appSettings"])["CERTLC_ROLLOUT"] == "update"


def test_rollout_ids_grant_nothing_while_rollout_is_report():
    outer = scope(**{k: v for k, v in EVERYTHING.items() if k not in ("targetDiscoveryScopes", "rollout")})
    assert evaluated(ROLE_DEFINITION, outer) == []
    assert target_deployments(outer) == []


@pytest.mark.parametrize("parameter", list(ROLLOUT))
def test_each_rollout_role_has_exactly_its_writes_on_each_listed_resource_only(parameter):
    ids, wanted = ROLLOUT[parameter]
    outer = scope(rollout="update", **{parameter: ids})
    (role,) = evaluated(ROLE_DEFINITION, outer)  # only this type's writer: no reader, no other writer
    assert actions(role) == wanted
    groups = sorted({"/".join(i.split("/")[:5]) for i in ids})
    assert sorted(role["properties"]["assignableScopes"]) == groups
    assignments = assignments_of(role, outer)
    assert [a["scope"] for a in assignments] == [i.split("/providers/", 1)[1] for i in ids]
    for assignment in assignments:
        assert str(assignment["properties"]["principalId"]) == app_principal(outer)
        assert assignment["properties"]["principalType"] == "ServicePrincipal"
    assert [(d["subscriptionId"], d["resourceGroup"]) for d in target_deployments(outer)] == [
        (i.split("/")[2], i.split("/")[4]) for i in ids
    ]


def test_every_target_role_is_distinct_and_none_has_a_wildcard():
    roles = evaluated(ROLE_DEFINITION, scope(**EVERYTHING))
    assert len(roles) == 1 + len(ROLLOUT)
    assert len({r["name"] for r in roles}) == len({r["properties"]["roleName"] for r in roles}) == len(roles)
    for role in roles:
        assert not any("*" in action for action in actions(role)), role["properties"]["roleName"]
    writers = [r for r in roles if actions(r) != READ]
    assert {frozenset(actions(r)) for r in writers} == {frozenset(a) for _, a in ROLLOUT.values()}


def test_target_assignments_get_new_names_for_a_recreated_identity(monkeypatch):
    outer = scope(**EVERYTHING)
    before = {a["name"] for a in evaluated(ROLE_ASSIGNMENT, outer)} - {a["name"] for a in evaluated(ROLE_ASSIGNMENT)}
    assert len(before) == len(SCOPES) + sum(len(ids) for ids, _ in ROLLOUT.values())
    monkeypatch.setattr(Placeholder, "__str__", lambda self: f"https://reference.invalid{self.path}?recreated")
    after = {a["name"] for a in evaluated(ROLE_ASSIGNMENT, scope(**EVERYTHING))}
    assert before.isdisjoint(after)


def test_docs_targets_lists_every_action_the_template_grants():
    granted = set().union(*(actions(r) for r in evaluated(ROLE_DEFINITION, scope(**EVERYTHING))))
    assert granted == READ.union(*(a for _, a in ROLLOUT.values()))
    missing = sorted(action for action in granted if f"`{action}`" not in TARGETS_DOC)
    assert missing == [], "docs/targets.md does not name these granted actions"


def test_the_deployed_target_settings_are_what_the_code_reads():
    from renewal.targets.azure.discover import settings_from_env
    from renewal.targets.wiring import ROLLOUT_MODES

    subscriptions = ["11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"]
    scopes = [{"subscriptionId": subscriptions[0]}, {"subscriptionId": subscriptions[1], "resourceGroup": "rg-web"}]
    deployed = scope(targetDiscoveryScopes=scopes).value(MAIN["variables"]["appSettings"])
    assert settings_from_env(deployed).subscriptions == tuple(subscriptions)
    assert settings_from_env(app_settings()).subscriptions == ()  # by default: no discovery
    assert tuple(MAIN["parameters"]["rollout"]["allowedValues"]) == ROLLOUT_MODES
