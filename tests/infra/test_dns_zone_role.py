"""dns-01's role in infra/main.json: a custom role with exactly what the solver needs, on each zone only."""

from localazure.emulators.azuredns.arm import ROLES

from renewal.ca.dns01 import DnsZone, parse_zones
from tests.infra.arm import SUBSCRIPTION_ID
from tests.infra.template import app_principal, app_settings, evaluated, scope

ZONES = [
    {"name": "example.com", "resourceGroup": "rg-dns"},
    {"name": "example.org", "resourceGroup": "rg-dns"},
    {"name": "example.net", "resourceGroup": "rg-other", "subscriptionId": "sub-dns"},
]


def test_without_zones_there_is_no_dns_role_and_no_zones_setting():
    assert evaluated("Microsoft.Authorization/roleDefinitions") == []
    assert app_settings()["CERTLC_ACME_DNS_ZONES"] == ""
    assert app_settings()["CERTLC_ACME_CHALLENGE"] == "http-01"


def test_the_custom_role_grants_exactly_what_the_solver_uses():
    """The same actions as the emulator's txt-writer role, which the solver's tests run under."""
    (role,) = evaluated("Microsoft.Authorization/roleDefinitions", scope(acmeDnsZones=ZONES))
    (permissions,) = role["properties"]["permissions"]
    assert set(permissions["actions"]) == set(ROLES["txt-writer"])
    assert permissions["notActions"] == permissions["dataActions"] == []
    assert role["properties"]["type"] == "customRole"
    assert role["properties"]["assignableScopes"] == [
        f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg-dns",
        "/subscriptions/sub-dns/resourceGroups/rg-other",
    ]


def test_the_role_is_assigned_to_the_app_on_each_zone_and_nowhere_else():
    outer = scope(acmeDnsZones=ZONES)
    (role,) = evaluated("Microsoft.Authorization/roleDefinitions", outer)
    assignments = [
        a
        for a in evaluated("Microsoft.Authorization/roleAssignments", outer)
        if a["properties"]["roleDefinitionId"].endswith(f"/roleDefinitions/{role['name']}")
    ]
    assert [a["scope"] for a in assignments] == [f"Microsoft.Network/dnsZones/{z['name']}" for z in ZONES]
    for assignment in assignments:
        assert assignment["properties"]["principalType"] == "ServicePrincipal"
        assert str(assignment["properties"]["principalId"]) == app_principal(outer)
    deployments = [
        d for d in evaluated("Microsoft.Resources/deployments", outer) if d["name"].startswith("certlc-dns-")
    ]
    assert [(d["subscriptionId"], d["resourceGroup"]) for d in deployments] == [
        (SUBSCRIPTION_ID, "rg-dns"),
        (SUBSCRIPTION_ID, "rg-dns"),
        ("sub-dns", "rg-other"),
    ]


def test_the_deployed_zones_setting_is_what_the_solver_reads():
    import tests.infra.template as template

    settings = template.scope(acmeDnsZones=ZONES).value(template.MAIN["variables"]["appSettings"])
    assert parse_zones(settings["CERTLC_ACME_DNS_ZONES"]) == (
        DnsZone("example.com", SUBSCRIPTION_ID, "rg-dns"),
        DnsZone("example.org", SUBSCRIPTION_ID, "rg-dns"),
        DnsZone("example.net", "sub-dns", "rg-other"),
    )
